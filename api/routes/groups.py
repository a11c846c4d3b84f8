"""Duplicate groups: cursor-paginated list, detail, resolve, restore."""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from starlette.concurrency import run_in_threadpool

from api import decisions, services
from api.deps import IndexDep, read
from api.schemas import Error, GroupDetail, GroupsResponse, ResolveRequest, ResolveResponse

router = APIRouter(prefix="/groups", tags=["groups"])
ID_MAX = 2**62  # ids above it (the catalog's are 64-bit) are refused with 422, never sent to the database
GroupId = Annotated[int, Path(ge=1, le=ID_MAX)]

ERRORS = {400: {"model": Error}, 404: {"model": Error}, 409: {"model": Error}}


@router.get("", response_model=GroupsResponse, responses={400: {"model": Error}})
async def list_groups(index: IndexDep,
                sort: Annotated[Literal["size", "reclaimable", "newest", "spread"], Query(
                    description="newest: most recently formed or changed first; spread: weakest link first")] = "size",
                unresolved: bool = False,
                min_size: Annotated[int, Query(ge=2, le=1_000_000)] = 2,
                cursor: Annotated[str | None, Query(max_length=200)] = None,
                limit: Annotated[int, Query(ge=1, le=200)] = 50,
                look_only: Annotated[bool, Query(description="only the groups bulk review leaves out: held together "
                                                 "by look-alike links alone ('pixels', 'visual') or a check on a "
                                                 "small part, holding two capture times or a pair whose "
                                                 "content moved, hanging on one link between two parts, "
                                                 "holding a photo with a checked link to a photo outside "
                                                 "them, or too large")] = False
                ) -> GroupsResponse:
    return await read(index, services.group_page, sort=sort, unresolved=unresolved, min_size=min_size, cursor=cursor,
                      limit=limit, look_only=look_only)


@router.get("/{group_id}", response_model=GroupDetail, responses={404: {"model": Error}})
async def get_group(index: IndexDep, group_id: GroupId) -> GroupDetail:
    return await read(index, services.group_detail, group_id)


@router.post("/{group_id}/resolve", response_model=ResolveResponse, responses=ERRORS)
async def resolve(index: IndexDep, group_id: GroupId, req: ResolveRequest) -> ResolveResponse:
    """Decide a group. ``move_others``/``trash_others`` move every member not in ``keep`` into the
    quarantine folder (restorable); ``keep_all`` records "not duplicates" so no rescan regroups them."""
    return await run_in_threadpool(decisions.resolve, index, group_id, req.action, req.keep)


@router.post("/{group_id}/restore", response_model=ResolveResponse, responses=ERRORS)
async def restore(index: IndexDep, group_id: GroupId) -> ResolveResponse:
    """Move the files of the group's last move/trash back where they were."""
    return await run_in_threadpool(decisions.restore, index, group_id)
