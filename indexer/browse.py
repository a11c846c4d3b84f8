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
from indexer.catalog.queries import under_prefix
from indexer.views import GroupView

SORTS = {
    "size": DupGroup.size,
    "reclaimable": DupGroup.reclaimable_bytes,
    "newest": DupGroup.updated_at,  # last formed or changed (ids are reused, so id order is not age)
    "spread": DupGroup.max_distance,  # weakest link first: 1 - the lowest similarity in the group (chaining)
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


def _cursor_value(v: float | datetime) -> int | float:
    """A sort value as a cursor number: datetimes as microseconds since the epoch (naive = UTC, as stored),
    the spread as the float it is."""
    if isinstance(v, float):
        return v
    if isinstance(v, datetime):
        v = v if v.tzinfo else v.replace(tzinfo=UTC)
        return (v - EPOCH) // _MICROSECOND
    return int(v)


def encode_cursor(sort: str, value: float | datetime, gid: int) -> str:
    raw = json.dumps([sort, _cursor_value(value), int(gid)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and abs(x) <= CURSOR_MAX


def decode_cursor(cursor: str, sort: str) -> tuple[int | float | datetime, int]:
    """(sort value, group id) of a cursor; BadCursor for anything ``encode_cursor`` did not make."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        s, v, gid = json.loads(raw)
        spread = sort == "spread" and isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 2
        if s != sort or not _is_int(gid) or not (spread or _is_int(v)):
            raise ValueError
        value: int | float | datetime = EPOCH + v * _MICROSECOND if sort == "newest" else v
    except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise BadCursor("invalid cursor: pass back the next_cursor of the previous page with the same sort") from None
    return value, gid


def filters(*, unresolved: bool = False, min_size: int = 2, folder: str | None = None, look_only: bool = False
            ) -> list:
    """The WHERE clauses of a listing: unresolved only, at least ``min_size`` members, a member under ``folder``,
    only the groups bulk review holds back (``look_only``: held together only by look-alike links)."""
    where = [DupGroup.size >= min_size]
    if unresolved:
        where.append(DupGroup.resolution.is_(None))
    if look_only:
        where.append(DupGroup.look_only.is_not(False))
    if folder:
        prefix = folder.rstrip("/") + "/"
        where.append(DupGroup.id.in_(select(Image.group_id).where(under_prefix(Image.path, prefix))))
    return where


def list_groups(session: Session, *, sort: str = "size", unresolved: bool = False, min_size: int = 2,
                cursor: str | None = None, limit: int = 50, previews: int = 4, count: bool = True,
                folder: str | None = None, look_only: bool = False) -> Page:
    """One page of groups, with up to ``previews`` member ids each (keeper first)."""
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {', '.join(SORTS)}")
    limit = max(1, min(int(limit), MAX_LIMIT))
    col = SORTS[sort]
    where = filters(unresolved=unresolved, min_size=min_size, folder=folder, look_only=look_only)
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


def neighbours(session: Session, group_id: int, *, sort: str = "reclaimable", unresolved: bool = False,
               min_size: int = 2, folder: str | None = None, at: tuple | None = None) -> tuple[int | None, int | None]:
    """(previous, next) group ids around ``group_id`` in the listing's order (``at``: its (value, id) when the
    group may be gone, e.g. taken before a decision)."""
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {', '.join(SORTS)}")
    col = SORTS[sort]
    if at is None:
        g = session.get(DupGroup, group_id)
        if g is None:
            return None, None
        at = (getattr(g, col.key), g.id)
    where = filters(unresolved=unresolved, min_size=min_size, folder=folder)
    nxt = session.scalar(select(DupGroup.id).where(*where, tuple_(col, DupGroup.id) < at)
                         .order_by(col.desc(), DupGroup.id.desc()).limit(1))
    prev = session.scalar(select(DupGroup.id).where(*where, tuple_(col, DupGroup.id) > at)
                          .order_by(col.asc(), DupGroup.id.asc()).limit(1))
    return prev, nxt


def position(session: Session, group_id: int, sort: str = "reclaimable") -> tuple | None:
    """The (sort value, id) of a group, for ``neighbours(at=...)``."""
    g = session.get(DupGroup, group_id)
    return None if g is None else (getattr(g, SORTS[sort].key), g.id)


def first(session: Session, *, sort: str = "reclaimable", unresolved: bool = False, exclude: int | None = None
          ) -> int | None:
    """The first group of the listing (other than ``exclude``)."""
    col = SORTS[sort]
    where = filters(unresolved=unresolved)
    if exclude is not None:
        where.append(DupGroup.id != exclude)
    return session.scalar(select(DupGroup.id).where(*where).order_by(col.desc(), DupGroup.id.desc()).limit(1))
