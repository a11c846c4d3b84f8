"""Pages among the link features: linking gives a page more candidates (indexer/pagecheck.py)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('features') as batch:
        batch.add_column(sa.Column('page', sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('features') as batch:
        batch.drop_column('page')
