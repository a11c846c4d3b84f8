"""Users' decisions on groups (``indexer/resolution.py``), one at a time per server process, so that file moves
and the catalog stay in step; run on the threadpool by the routes, JSON and web alike."""
from __future__ import annotations

import threading

from api.schemas import ResolveResponse
from indexer import resolution
from indexer.catalog.models import DupGroup
from indexer.errors import DupesiftError
from indexer.index import Index

_decisions = threading.Lock()


def resolve(index: Index, group_id: int, action: str, keep: list[int], batch: str | None = None
            ) -> ResolveResponse:
    with _decisions, index.catalog.session() as s:
        out = resolution.resolve(s, group_id=group_id, action=action, keep=keep,
                                 quarantine_dir=index.settings.quarantine_dir, vectors_fn=index.store.get,
                                 commit=s.commit, batch=batch)
    return ResolveResponse(**out.as_dict())


def restore(index: Index, group_id: int, image_ids: list[int] | None = None, last: dict | None = None
            ) -> ResolveResponse:
    """Undo the group's last decision (keep all included), or bring back only ``image_ids`` of its moved files."""
    with _decisions, index.catalog.session() as s:
        out = resolution.restore(s, group_id=group_id, quarantine_dir=index.settings.quarantine_dir, commit=s.commit,
                                 vectors_fn=index.store.get, image_ids=image_ids, last=last)
    return ResolveResponse(**out.as_dict())


def resolve_many(index: Index, plan: list[tuple[int, int]], batch: str) -> tuple[list[ResolveResponse], list[str]]:
    """Move the copies of each group of ``plan`` (group id, keeper), one group at a time; a group that cannot be
    decided (changed since, files gone, held back from bulk review: ``bulk.plan`` never lists it) is reported
    and skipped."""
    done, errors = [], []
    for gid, keeper in plan:
        with index.catalog.session() as s:
            g = s.get(DupGroup, gid)
            if g is None or g.keeper_id != keeper or g.resolution is not None:
                errors.append(f"group {gid}: changed since the list was made; review it on its own")
                continue
            if g.look_only is not False:
                errors.append(f"group {gid}: held back from bulk review; review it on its own")
                continue
        try:
            done.append(resolve(index, gid, "move_others", [keeper], batch=batch))
        except DupesiftError as exc:
            errors.append(f"group {gid}: {exc}")
    return done, errors


def restore_many(index: Index, batch: str) -> tuple[list[ResolveResponse], list[str]]:
    """Undo every group whose latest decision is the bulk decision ``batch`` (the journals are read once)."""
    done, errors = [], []
    latest = resolution.latest_decisions(index.settings.quarantine_dir)
    for gid, last in sorted(latest.items()):
        if last.get("batch") != batch:
            continue
        try:
            done.append(restore(index, gid, last=last))
        except DupesiftError as exc:
            errors.append(f"group {gid}: {exc}")
    return done, errors
