"""The share of a checked pair's overlap whose content agrees (``Pair.cover``; indexer/verify.py ``agreement_cover``)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06

Pairs stored before this revision get NULL, read as before (a checked link). The link rule's description names
the cover, so the next ingest or reindex relinks a library from before and fills it in.
"""
import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('pairs') as batch:
        batch.add_column(sa.Column('cover', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('pairs') as batch:
        batch.drop_column('cover')
