"""camera EXIF flag for the keeper rule; composite indexes for keyset pagination of groups

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('images') as batch:
        batch.add_column(sa.Column('camera_exif', sa.Boolean(), nullable=False, server_default=sa.false()))
    # GET /groups walks (sort column, id) in descending order: one index per sort serves every page
    op.create_index('ix_dup_groups_size_id', 'dup_groups', ['size', 'id'])
    op.create_index('ix_dup_groups_reclaimable_bytes_id', 'dup_groups', ['reclaimable_bytes', 'id'])


def downgrade() -> None:
    op.drop_index('ix_dup_groups_reclaimable_bytes_id', table_name='dup_groups')
    op.drop_index('ix_dup_groups_size_id', table_name='dup_groups')
    with op.batch_alter_table('images') as batch:
        batch.drop_column('camera_exif')
