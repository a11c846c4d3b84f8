"""Groups that hang on one link between two parts are left out of bulk review (indexer/grouping.py ``bridged``)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07

Groups formed before this revision and offered to bulk review are checked here; later ones are checked when they
form. Only a data change: the downgrade leaves the marks, as a regroup under the older rule would recompute them.
"""
from collections import defaultdict

import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None

# indexer.grouping's constants when this revision was written
LOOK_KINDS = ("pixels", "visual")
MIN_COVER = 0.3
MIN_PART = 2
MAX_BULK = 20


def upgrade() -> None:
    conn = op.get_bind()
    offered = {g for (g,) in conn.execute(sa.text(
        "SELECT id FROM dup_groups WHERE look_only = :no AND size >= :least AND size <= :most"),
        {"no": False, "least": 2 * MIN_PART, "most": MAX_BULK})}
    if not offered:
        return
    group_of = {i: g for i, g in conn.execute(sa.text("SELECT id, group_id FROM images WHERE group_id IS NOT NULL"))
                if g in offered}
    members: dict[int, list[int]] = defaultdict(list)
    for i, g in group_of.items():
        members[g].append(i)
    links: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for a, b, kind, cover in conn.execute(sa.text("SELECT a_id, b_id, kind, cover FROM pairs")):
        g = group_of.get(a)
        if g is not None and group_of.get(b) == g and kind not in LOOK_KINDS and (cover is None or cover >= MIN_COVER):
            links[g].append((a, b))
    for g, ids in members.items():
        if _bridged(ids, links[g]):
            conn.execute(sa.text("UPDATE dup_groups SET look_only = :held WHERE id = :g"), {"held": True, "g": g})


def _bridged(ids: list[int], links: list[tuple[int, int]]) -> bool:
    """Whether taking one link out leaves two parts of ``MIN_PART`` photos or more each."""
    for k in range(len(links)):
        sizes = _part_sizes(ids, links[:k] + links[k + 1:])
        if len(sizes) == 2 and min(sizes) >= MIN_PART:
            return True
    return False


def _part_sizes(ids: list[int], links: list[tuple[int, int]]) -> list[int]:
    parent = {i: i for i in ids}

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in links:
        parent[find(a)] = find(b)
    sizes: dict[int, int] = defaultdict(int)
    for i in ids:
        sizes[find(i)] += 1
    return list(sizes.values())


def downgrade() -> None:
    pass
