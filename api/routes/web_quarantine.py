"""The quarantine page: what decisions moved there, from where, its total size; restore a file or a group; and
"empty the quarantine", the one permanent delete, behind a confirmation page that lists what goes."""
from __future__ import annotations

from itertools import groupby
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from api import decisions
from api.deps import IndexDep, SessionDep
from api.webpage import PageRoute, error_page, page
from indexer import quarantine

router = APIRouter(include_in_schema=False, route_class=PageRoute)


def _view(index, s) -> dict:
    held = quarantine.contents(s, index.settings.quarantine_dir)
    groups = [(gid, list(files)) for gid, files in groupby(held, key=lambda h: h.group_id)]
    return {"held": held, "groups": groups, "total": sum(h.bytes for h in held),
            "folder": str(index.settings.quarantine_dir)}


@router.get("/ui/quarantine")
def quarantine_page(request: Request, index: IndexDep, s: SessionDep) -> HTMLResponse:
    return page(request, "quarantine.html", **_view(index, s))


@router.get("/ui/quarantine/empty")
def confirm_empty(request: Request, index: IndexDep, s: SessionDep) -> HTMLResponse:
    """The confirmation step: what would be deleted for good, and how much space it frees."""
    return page(request, "empty.html", **_view(index, s))


@router.post("/ui/quarantine/empty")
async def empty(request: Request, index: IndexDep, ids: Annotated[str, Form(max_length=10_000_000)],
                confirm: Annotated[str, Form()] = "") -> HTMLResponse:
    """Delete the files the confirmation page listed (``ids``) and still in the quarantine."""
    if confirm != "delete":
        return error_page(request, 400, "not confirmed: nothing was deleted")
    try:
        wanted = [int(x) for x in ids.split(",") if x.strip()]
    except ValueError:
        return error_page(request, 400, "the list of files to delete is malformed: nothing was deleted")
    deleted, freed = await run_in_threadpool(quarantine.empty, index, wanted)
    with index.catalog.session() as s:
        return page(request, "quarantine.html", emptied={"files": deleted, "bytes": freed}, **_view(index, s))


@router.post("/ui/quarantine/restore")
async def restore(request: Request, index: IndexDep, group: Annotated[int, Form()],
                  image: Annotated[int | None, Form()] = None) -> HTMLResponse:
    """Bring back one file, or every file of a group, to where it was."""
    out = await run_in_threadpool(decisions.restore, index, group, [image] if image is not None else None)
    with index.catalog.session() as s:
        return page(request, "quarantine.html", restored=f"{len(out.moved)} file(s) back where they were.",
                    **_view(index, s))
