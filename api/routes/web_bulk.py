"""Bulk review: the suggested keepers of every unresolved group of a filter at once, after a confirmation
page that says what moves where and how to undo it; and the undo of such a batch."""
from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from api import decisions
from api.deps import IndexDep, SessionDep
from api.webpage import PageRoute, error_page, page
from indexer import bulk
from indexer.catalog.models import DupGroup, Image

router = APIRouter(include_in_schema=False, route_class=PageRoute)
LISTED = 500  # groups the confirmation lists one by one (all of them are decided)
Folder = Annotated[str | None, Query(max_length=4096)]


@router.get("/ui/bulk")
def confirm(request: Request, index: IndexDep, s: SessionDep, folder: Folder = None,
            min_size: Annotated[int, Query(ge=2, le=1_000_000)] = 2) -> HTMLResponse:
    folder = (folder or "").strip() or None
    plan = bulk.plan(s, min_size=min_size, folder=folder)
    shown = plan.groups[:LISTED]
    keepers = dict(s.execute(select(Image.id, Image.path).where(Image.id.in_([k for _, k in shown]))).all())
    sizes = dict(s.execute(select(DupGroup.id, DupGroup.size).where(DupGroup.id.in_([g for g, _ in shown]))).all())
    rows = [(g, keepers.get(k, ""), sizes.get(g, 0) - 1) for g, k in shown]
    return page(request, "bulk.html", plan=plan, rows=rows, folder=folder, min_size=min_size,
                quarantine=str(index.settings.quarantine_dir))


@router.post("/ui/bulk")
async def apply(request: Request, index: IndexDep, plan: Annotated[str, Form(max_length=10_000_000)]) -> HTMLResponse:
    """Decide each listed group with its listed keeper (a group whose keeper changed since is skipped)."""
    try:
        pairs = bulk.decode(plan)
    except ValueError:
        return error_page(request, 400, "the list of groups is malformed: nothing was moved")
    batch = uuid.uuid4().hex
    done, errors = await run_in_threadpool(decisions.resolve_many, index, pairs, batch)
    return page(request, "bulk_done.html", batch=batch, groups=len(done), files=sum(len(d.moved) for d in done),
                errors=errors, undone=False)


@router.post("/ui/bulk/{batch}/undo")
async def undo(request: Request, index: IndexDep, batch: str) -> HTMLResponse:
    if not bulk.batch_groups(index.settings.quarantine_dir, batch):
        return error_page(request, 404, "nothing left to undo in this bulk decision")
    done, errors = await run_in_threadpool(decisions.restore_many, index, batch)
    return page(request, "bulk_done.html", batch=batch, groups=len(done), files=sum(len(d.moved) for d in done),
                errors=errors, undone=True)
