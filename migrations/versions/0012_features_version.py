"""The version of kept link features: a page flag of an older version is not read as current

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06

Rows kept before this revision get NULL: the link step reads the version from a row's packed features the first
time it needs the row (``indexer.featurestore.stale``), so no blob is read here.
"""
import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('features') as batch:
        batch.add_column(sa.Column('version', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('features') as batch:
        batch.drop_column('version')
