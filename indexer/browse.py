"""Group listing for the API and web UI: keyset (cursor) pagination on indexed columns.

Offsets get slower with every page; a keyset ``WHERE (size, id) < (:size, :id) ORDER BY size DESC,
id DESC LIMIT n`` walks the ``size`` index (SQLite stores the rowid ``id`` in every index, so the
tie-break is free) and costs the same on page 1 and page 5,000 of 100k groups.
"""
from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session

from indexer.catalog.models import DupGroup, Image
from indexer.views import GroupView

SORTS = {
    "size": DupGroup.size,
    "reclaimable": DupGroup.reclaimable_bytes,
    "newest": DupGroup.updated_at,  # last formed or changed (ids are reused, so id order is not age)
}
MAX_LIMIT = 200
CURSOR_MAX = 2**63 - 1  # cursor values are compared with BIGINT columns; larger ones overflow the driver
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = datetime.resolution


class BadCursor(ValueError):
    pass


@dataclass
class Page:
    groups: list[dict]
    next_cursor: str | None
    total: int


def _cursor_value(v: int | datetime) -> int:
    """A sort value as a cursor integer: datetimes as microseconds since the epoch (naive = UTC, as stored)."""
    if isinstance(v, datetime):
        v = v if v.tzinfo else v.replace(tzinfo=UTC)
        return (v - EPOCH) // _MICROSECOND
    return int(v)


def encode_cursor(sort: str, value: int | datetime, gid: int) -> str:
    raw = json.dumps([sort, _cursor_value(value), int(gid)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str) -> tuple[int | datetime, int]:
    """(sort value, group id) of a cursor; BadCursor for anything ``encode_cursor`` did not make."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        s, v, gid = json.loads(raw)
        if s != sort or not all(isinstance(x, int) and not isinstance(x, bool) and abs(x) <= CURSOR_MAX
                                for x in (v, gid)):
            raise ValueError
        value: int | datetime = EPOCH + v * _MICROSECOND if sort == "newest" else v
    except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise BadCursor("invalid cursor: pass back the next_cursor of the previous page with the same sort") from None
    return value, gid


def list_groups(session: Session, *, sort: str = "size", unresolved: bool = False, min_size: int = 2,
                cursor: str | None = None, limit: int = 50, previews: int = 4, count: bool = True) -> Page:
    """One page of groups, with up to ``previews`` member ids each (keeper first)."""
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {', '.join(SORTS)}")
    limit = max(1, min(int(limit), MAX_LIMIT))
    col = SORTS[sort]
    where = [DupGroup.size >= min_size]
    if unresolved:
        where.append(DupGroup.resolution.is_(None))
    q = select(DupGroup).where(*where)
    if cursor:
        v, gid = decode_cursor(cursor, sort)
        q = q.where(tuple_(col, DupGroup.id) < (v, gid))
    order = [col.desc(), DupGroup.id.desc()]
    rows = list(session.scalars(q.order_by(*order).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    total = int(session.scalar(select(func.count()).select_from(DupGroup).where(*where)) or 0) if count else -1
    prev: dict[int, list[int]] = {}
    if rows and previews:
        for gid, iid in session.execute(select(Image.group_id, Image.id).where(
                Image.group_id.in_([g.id for g in rows])).order_by(Image.group_id, Image.id)):
            prev.setdefault(gid, []).append(iid)
    out = []
    for g in rows:
        ids = prev.get(g.id, [])
        if g.keeper_id in ids:
            ids = [g.keeper_id] + [i for i in ids if i != g.keeper_id]
        out.append(summary_dict(g) | {"preview_ids": ids[:previews]})
    nxt = None
    if more and rows:
        last = rows[-1]
        nxt = encode_cursor(sort, getattr(last, col.key), last.id)
    return Page(out, nxt, total)


def summary_dict(g: DupGroup) -> dict:
    return GroupView.fields_of(g)


def totals(session: Session) -> dict:
    n, members, reclaim = session.execute(select(
        func.count(), func.coalesce(func.sum(DupGroup.size), 0), func.coalesce(func.sum(DupGroup.reclaimable_bytes), 0)
    ).select_from(DupGroup)).one()
    unresolved, unresolved_bytes = session.execute(select(
        func.count(), func.coalesce(func.sum(DupGroup.reclaimable_bytes), 0)).select_from(DupGroup)
        .where(DupGroup.resolution.is_(None))).one()
    return {"groups": int(n), "duplicates": int(members) - int(n), "reclaimable_bytes": int(reclaim),
            "unresolved_groups": int(unresolved), "unresolved_reclaimable_bytes": int(unresolved_bytes)}
