"""The sharpening rims at a photo's edges (``Image.halo``; indexer/keeper.py ``halo``)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07

Photos indexed before this revision get NULL. ``keeper.VERSION`` rose with it, so the grouped photos of an older
library are read once more after its next link step (indexer/remeasure.py) and get theirs; until then their
groups' keepers are chosen by pixels alone, as for any photo measured by an older version.
"""
import sqlalchemy as sa
from alembic import op

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('images') as batch:
        batch.add_column(sa.Column('halo', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('images') as batch:
        batch.drop_column('halo')
