"""Users' decisions on groups (``indexer/resolution.py``), one at a time per server process, so that file moves
and the catalog stay in step; run on the threadpool by the routes, JSON and web alike."""
from __future__ import annotations

import threading

from api.schemas import ResolveResponse
from indexer import resolution
from indexer.index import Index

_decisions = threading.Lock()


def resolve(index: Index, group_id: int, action: str, keep: list[int]) -> ResolveResponse:
    with _decisions, index.catalog.session() as s:
        out = resolution.resolve(s, group_id=group_id, action=action, keep=keep,
                                 quarantine_dir=index.settings.quarantine_dir, vectors_fn=index.store.get,
                                 commit=s.commit)
    return ResolveResponse(**out.as_dict())


def restore(index: Index, group_id: int) -> ResolveResponse:
    with _decisions, index.catalog.session() as s:
        out = resolution.restore(s, group_id=group_id, quarantine_dir=index.settings.quarantine_dir, commit=s.commit)
    return ResolveResponse(**out.as_dict())
