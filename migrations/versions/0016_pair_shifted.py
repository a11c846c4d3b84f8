"""Cells of content that moved under a checked pair's fit (``Pair.shifted``; indexer/linkrule.py ``shifted_cells``)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07

Pairs stored before this revision get NULL, read as before (nothing moved). The link rule's description names the
shifted cells, so the next ingest or reindex relinks a library from before and fills them in.
"""
import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('pairs') as batch:
        batch.add_column(sa.Column('shifted', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('pairs') as batch:
        batch.drop_column('shifted')
