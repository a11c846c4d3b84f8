"""Groups held together only by look-alike links (indexer/grouping.py ``LOOK_KINDS``): left out of bulk review

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""
from collections import defaultdict

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

LOOK_KINDS = ("pixels", "visual")  # indexer.grouping.LOOK_KINDS when this revision was written


def upgrade() -> None:
    with op.batch_alter_table('dup_groups') as batch:
        batch.add_column(sa.Column('look_only', sa.Boolean(), nullable=True))
    conn = op.get_bind()
    group_of = dict(conn.execute(sa.text("SELECT id, group_id FROM images WHERE group_id IS NOT NULL")).all())
    members: dict[int, list[int]] = defaultdict(list)
    for i, g in group_of.items():
        members[g].append(i)
    parent = {i: i for i in group_of}

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b, kind in conn.execute(sa.text("SELECT a_id, b_id, kind FROM pairs")):
        if kind not in LOOK_KINDS and a in group_of and group_of.get(b) == group_of[a]:
            parent[find(a)] = find(b)
    for g, ids in members.items():
        conn.execute(sa.text("UPDATE dup_groups SET look_only = :v WHERE id = :g"),
                     {"v": len({find(i) for i in ids}) > 1, "g": g})


def downgrade() -> None:
    with op.batch_alter_table('dup_groups') as batch:
        batch.drop_column('look_only')
