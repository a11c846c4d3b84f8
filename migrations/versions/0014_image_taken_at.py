"""The camera's capture time of a photo (``Image.taken_at``; indexer/decode.py ``capture_time``)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06

Photos indexed before this revision get NULL (no capture time known), read as before. ``keeper.VERSION`` rose
with it, so the grouped photos of an older library are read once more after its next link step
(indexer/remeasure.py) and get theirs.
"""
import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('images') as batch:
        batch.add_column(sa.Column('taken_at', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('images') as batch:
        batch.drop_column('taken_at')
