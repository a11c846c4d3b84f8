"""Link evidence: pair inliers and agreement, a photo's crowd, and the features linking reads back

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('pairs') as batch:
        batch.add_column(sa.Column('inliers', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('agreement', sa.Float(), nullable=True))
    with op.batch_alter_table('images') as batch:
        batch.add_column(sa.Column('crowd', sa.Float(), nullable=True))
    op.create_table(
        'features',
        sa.Column('image_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                  sa.ForeignKey('images.id', ondelete='CASCADE'), primary_key=True),
        sa.Column('sha256', sa.String(64), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table('features')
    with op.batch_alter_table('images') as batch:
        batch.drop_column('crowd')
    with op.batch_alter_table('pairs') as batch:
        batch.drop_column('agreement')
        batch.drop_column('inliers')
