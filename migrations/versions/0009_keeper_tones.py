"""Keeper tones: each photo's grey tone curve, measured at decode (indexer/keeper.py ``tone_curve``)

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
    with op.batch_alter_table('images') as batch:
        batch.add_column(sa.Column('tones', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('images') as batch:
        batch.drop_column('tones')
