"""Groups of more than ``MAX_BULK`` photos are left out of bulk review (indexer/grouping.py ``look_only``)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07

Groups formed before this revision are marked here; later ones are marked when they form. Only a data change:
the downgrade leaves the marks, as a regroup under the older rule would recompute them.
"""
import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

MAX_BULK = 20  # indexer.grouping.MAX_BULK when this revision was written


def upgrade() -> None:
    op.get_bind().execute(sa.text("UPDATE dup_groups SET look_only = :held WHERE size > :cap"),
                          {"held": True, "cap": MAX_BULK})


def downgrade() -> None:
    pass
