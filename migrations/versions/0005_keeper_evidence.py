"""Keeper evidence: what a photo holds of the original picture, measured at decode (indexer/keeper.py)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

FLOATS = ('detail', 'border', 'colour', 'tint', 'clipped', 'noise', 'blockiness')


def upgrade() -> None:
    with op.batch_alter_table('images') as batch:
        for name in FLOATS:
            batch.add_column(sa.Column(name, sa.Float(), nullable=True))
        batch.add_column(sa.Column('jpeg_quality', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('analysed_side', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('measured', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('images') as batch:
        for name in ('measured', 'analysed_side', 'jpeg_quality', *reversed(FLOATS)):
            batch.drop_column(name)
