"""The web UI: server-rendered Jinja2 pages, htmx (vendored under /static) for partial updates."""
from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime
from pathlib import Path as FsPath
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from api import decisions, services, uploads
from api.deps import TOKEN_COOKIE, IndexDep, SessionDep
from api.errors import ApiError, status_for
from api.routes.groups import ID_MAX, GroupId
from api.schemas import ResolveRequest, ResolveResponse
from indexer import browse
from indexer.catalog.models import Image, ImageStatus, Job
from indexer.errors import DupesiftError
from indexer.index import Index
from indexer.views import MemberView

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(FsPath(__file__).resolve().parents[1] / "templates"))


def _bytes(n: int | None) -> str:
    n = float(n or 0)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


templates.env.filters["bytes"] = _bytes
templates.env.filters["basename"] = os.path.basename
templates.env.filters["date"] = lambda t: datetime.fromtimestamp(t or 0, UTC).strftime("%Y-%m-%d %H:%M")


def page(request: Request, template: str, status: int = 200, **ctx) -> HTMLResponse:
    return templates.TemplateResponse(request, template, ctx, status_code=status)


def error_fragment(request: Request, exc: Exception) -> HTMLResponse:
    """The error as a fragment, with the status the JSON API gives it (``api.errors.STATUS``)."""
    return page(request, "_error.html", status=status_for(exc), message=str(exc))


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/ui/groups", status_code=307)


@router.get("/ui/login")
def login_form(request: Request) -> HTMLResponse:
    """The login form; the token travels in a POST body, never in a URL (access logs, history, Referer)."""
    return page(request, "login.html")


@router.post("/ui/login")
def login(request: Request, token: Annotated[str, Form(max_length=1000)] = "") -> Response:
    expected = request.app.state.settings.api_token or ""
    if request.app.state.auth_required and not secrets.compare_digest(token.encode(), expected.encode()):
        return page(request, "login.html", status=401, message="wrong token")
    r = RedirectResponse("/ui/groups", status_code=303)
    r.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
    return r


@router.get("/ui/groups")
def groups_page(request: Request, index: IndexDep, s: SessionDep,
                sort: Literal["size", "reclaimable", "newest"] = "reclaimable", unresolved: bool = False,
                cursor: Annotated[str | None, Query(max_length=200)] = None,
                limit: Annotated[int, Query(ge=1, le=200)] = 48) -> HTMLResponse:
    pg = browse.list_groups(s, sort=sort, unresolved=unresolved, cursor=cursor, limit=limit, previews=4)
    return page(request, "groups.html", page=pg, sort=sort, unresolved=unresolved, cursor=cursor, limit=limit,
                totals=browse.totals(s))


@router.get("/ui/groups/{group_id}")
def group_page(request: Request, index: IndexDep, s: SessionDep, group_id: GroupId) -> HTMLResponse:
    try:
        g = services.group_detail(index, s, group_id)
    except ApiError as exc:
        return page(request, "_error.html", status=status_for(exc), message=str(exc), full=True)
    return page(request, "group.html", g=g)


@router.post("/ui/groups/{group_id}/resolve")
async def group_resolve(request: Request, index: IndexDep, group_id: GroupId,
                        action: Annotated[str, Form()], keep: Annotated[list[int] | None, Form()] = None
                        ) -> HTMLResponse:
    try:
        req = ResolveRequest(action=action, keep=keep or [])  # type: ignore[arg-type]
        out = await run_in_threadpool(decisions.resolve, index, group_id, req.action, req.keep)
    except (DupesiftError, ValueError) as exc:
        return error_fragment(request, exc)
    return _after(request, index, group_id, out)


@router.post("/ui/groups/{group_id}/restore")
async def group_restore(request: Request, index: IndexDep, group_id: GroupId) -> HTMLResponse:
    try:
        out = await run_in_threadpool(decisions.restore, index, group_id)
    except DupesiftError as exc:
        return error_fragment(request, exc)
    return _after(request, index, group_id, out)


def _after(request: Request, index: Index, group_id: int, out: ResolveResponse) -> HTMLResponse:
    with index.catalog.session() as s:
        try:
            g = services.group_detail(index, s, group_id)
        except ApiError:
            g = None
    return page(request, "_group_body.html", g=g, done=out)


@router.get("/ui/compare")
def compare(request: Request, s: SessionDep, ids: Annotated[str, Query(max_length=200)]) -> HTMLResponse:
    try:
        wanted = [int(x) for x in ids.split(",") if x.strip()][:4]
        if any(not 1 <= i <= ID_MAX for i in wanted):
            raise ValueError
    except ValueError:
        return page(request, "_error.html", status=400, message=f"ids must be a comma-separated list of ids from 1 to {ID_MAX}", full=True)
    imgs = {i.id: i for i in s.scalars(select(Image).where(Image.id.in_(wanted), Image.status == ImageStatus.indexed))}
    return page(request, "compare.html", images=[MemberView.of(imgs[i]) for i in wanted if i in imgs])  # printable paths


@router.get("/ui/search")
def search_page(request: Request) -> HTMLResponse:
    return page(request, "search.html")


@router.post("/ui/search")
async def search(request: Request, index: IndexDep, file: UploadFile,
                 k: Annotated[int, Form(ge=1, le=200)] = 24) -> HTMLResponse:
    try:
        data = await uploads.read_upload(request, file)
        hits = await uploads.search_upload(request, index, data, k)
    except DupesiftError as exc:
        return error_fragment(request, exc)
    return page(request, "_results.html", results=hits, threshold=index.threshold, query_name=file.filename)


@router.get("/ui/ingest")
def ingest_page(request: Request, index: IndexDep, s: SessionDep) -> HTMLResponse:
    jobs = [services.job_out(s, j, failures=0) for j in s.scalars(select(Job).order_by(Job.created_at.desc()).limit(10))]
    return page(request, "ingest.html", roots=services.library_roots(index), jobs=jobs)


@router.post("/ui/ingest")
def ingest_start(request: Request, index: IndexDep, path: Annotated[str, Form(max_length=4096)]) -> HTMLResponse:
    try:
        paths = services.check_paths([path.strip()], services.library_roots(index))
        job_id = request.app.state.ingest.start(paths)
    except ApiError as exc:
        return error_fragment(request, exc)
    with index.catalog.session() as s:
        job = services.job_out(s, s.get(Job, job_id))
    return page(request, "_job.html", job=job)


@router.get("/ui/jobs/{job_id}")
def job_fragment(request: Request, s: SessionDep, job_id: str) -> HTMLResponse:
    job = s.get(Job, job_id)
    if job is None:
        return page(request, "_error.html", status=404, message=f"no job {job_id}")
    return page(request, "_job.html", job=services.job_out(s, job))
