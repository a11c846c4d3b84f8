"""Paths in their lossless UTF-8 form (indexer/fsnames.py): a U+FFFD already in a stored path is doubled

Before 0006 a path was stored as it was, and one with bytes that are not UTF-8 could not be stored at all; so
the only stored paths whose meaning changes are those that contain U+FFFD, which the new form writes twice.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

MARK = '\ufffd'


def _rewrite(old: str, new: str) -> None:
    for table in ('images', 'roots'):
        op.get_bind().execute(
            sa.text(f"UPDATE {table} SET path = REPLACE(path, :old, :new) WHERE path LIKE :has"),
            {"old": old, "new": new, "has": f"%{MARK}%"})


def upgrade() -> None:
    _rewrite(MARK, MARK * 2)


def downgrade() -> None:
    _rewrite(MARK * 2, MARK)
