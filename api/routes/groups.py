"""Duplicate groups: cursor-paginated list, detail, resolve, restore."""
from __future__ import annotations

import threading
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from starlette.concurrency import run_in_threadpool

from api import services
from api.deps import IndexDep, SessionDep
from api.schemas import Error, GroupDetail, GroupsResponse, ResolveRequest, ResolveResponse
from indexer import resolution
from indexer.index import Index

router = APIRouter(prefix="/groups", tags=["groups"])
GroupId = Annotated[int, Path(ge=1, le=2**62)]
_decisions = threading.Lock()  # one resolve/restore at a time: file moves and catalog stay in step

ERRORS = {400: {"model": Error}, 404: {"model": Error}, 409: {"model": Error}}


@router.get("", response_model=GroupsResponse, responses={400: {"model": Error}})
def list_groups(index: IndexDep, s: SessionDep,
                sort: Annotated[Literal["size", "reclaimable", "newest"], Query(
                    description="newest: most recently formed or changed first")] = "size",
                unresolved: bool = False,
                min_size: Annotated[int, Query(ge=2, le=1_000_000)] = 2,
                cursor: Annotated[str | None, Query(max_length=200)] = None,
                limit: Annotated[int, Query(ge=1, le=200)] = 50) -> dict:
    return services.group_page(index, s, sort=sort, unresolved=unresolved, min_size=min_size, cursor=cursor,
                               limit=limit)


@router.get("/{group_id}", response_model=GroupDetail, responses={404: {"model": Error}})
def get_group(index: IndexDep, s: SessionDep, group_id: GroupId) -> dict:
    return services.group_detail(index, s, group_id)


def do_resolve(index: Index, group_id: int, req: ResolveRequest) -> dict:
    with _decisions, index.catalog.session() as s:
        out = resolution.resolve(s, group_id=group_id, action=req.action, keep=req.keep,
                                 quarantine_dir=index.settings.quarantine_dir, vectors_fn=index.store.get,
                                 commit=s.commit)
    return out.as_dict()


def do_restore(index: Index, group_id: int) -> dict:
    with _decisions, index.catalog.session() as s:
        out = resolution.restore(s, group_id=group_id, quarantine_dir=index.settings.quarantine_dir, commit=s.commit)
    return out.as_dict()


@router.post("/{group_id}/resolve", response_model=ResolveResponse, responses=ERRORS)
async def resolve(index: IndexDep, group_id: GroupId, req: ResolveRequest) -> dict:
    """Decide a group. ``move_others``/``trash_others`` move every member not in ``keep`` into the
    quarantine folder (restorable); ``keep_all`` records "not duplicates" so no rescan regroups them."""
    return await run_in_threadpool(do_resolve, index, group_id, req)


@router.post("/{group_id}/restore", response_model=ResolveResponse, responses=ERRORS)
async def restore(index: IndexDep, group_id: GroupId) -> dict:
    """Move the files of the group's last move/trash back where they were."""
    return await run_in_threadpool(do_restore, index, group_id)
