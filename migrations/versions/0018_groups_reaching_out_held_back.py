"""Groups with a photo that has a checked link to a photo outside them are left out of bulk review
(indexer/grouping.py ``reaching_out``)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07

Groups formed before this revision and offered to bulk review are checked here; later ones are checked when they
form. Only a data change: the downgrade leaves the marks, as a regroup under the older rule would recompute them.
"""
import sqlalchemy as sa
from alembic import op

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None

# indexer.grouping's constants when this revision was written
LOOK_KINDS = ("pixels", "visual")
MIN_COVER = 0.3


def upgrade() -> None:
    conn = op.get_bind()
    offered = {g for (g,) in conn.execute(sa.text("SELECT id FROM dup_groups WHERE look_only = :no"), {"no": False})}
    if not offered:
        return
    group_of = dict(conn.execute(sa.text("SELECT id, group_id FROM images WHERE group_id IS NOT NULL")).all())
    held: set[int] = set()
    for a, b, kind, cover in conn.execute(sa.text("SELECT a_id, b_id, kind, cover FROM pairs")):
        ga, gb = group_of.get(a), group_of.get(b)
        if ga != gb and kind not in LOOK_KINDS and (cover is None or cover >= MIN_COVER):
            held.update(g for g in (ga, gb) if g in offered)
    for g in sorted(held):
        conn.execute(sa.text("UPDATE dup_groups SET look_only = :held WHERE id = :g"), {"held": True, "g": g})


def downgrade() -> None:
    pass
