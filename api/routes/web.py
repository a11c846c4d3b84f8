"""The web UI: server-rendered Jinja2 pages, htmx (vendored under /static) for partial updates.

Group review lives here (the list, a group, its decisions, compare); the quarantine and bulk review pages are in
``web_quarantine.py`` and ``web_bulk.py``. Every error of these routes is a page (``api/webpage.py``).
"""
from __future__ import annotations

import secrets
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Path, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from api import decisions, review, services, uploads
from api.deps import TOKEN_COOKIE, IndexDep, SessionDep
from api.errors import ApiError
from api.routes import web_bulk, web_quarantine
from api.schemas import ResolveRequest, ResolveResponse
from api.webpage import PageRoute, error_for, error_page, is_htmx, page, templates
from indexer import browse, bulk, resolution
from indexer.catalog.models import DupGroup, Image, ImageStatus, Job
from indexer.errors import DupesiftError
from indexer.grouping import MAX_BULK
from indexer.index import Index
from indexer.views import MemberView

templates.env.globals.update(member_facts=review.member_facts, group_facts=review.group_facts,
                             lost_on=review.LOST_ON, max_bulk=MAX_BULK)  # the group cards; bulk review's limit
router = APIRouter(include_in_schema=False, route_class=PageRoute)

Sort = Literal["reclaimable", "size", "spread", "newest"]
SORT_LABELS = (("reclaimable", "space that can be freed"), ("size", "number of photos"),
               ("spread", "weakest link first (least alike)"), ("newest", "recently changed"))
Folder = Annotated[str | None, Query(max_length=4096)]
GroupId = Annotated[int, Path(ge=1, le=2**62)]  # as the JSON routes: a larger id is no group (and no SQL error)


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


# -- the list ------------------------------------------------------------------------------------
@router.get("/ui/groups")
def groups_page(request: Request, index: IndexDep, s: SessionDep, sort: Sort = "reclaimable",
                unresolved: bool = False, folder: Folder = None,
                min_size: Annotated[int, Query(ge=2, le=1_000_000)] = 2,
                cursor: Annotated[str | None, Query(max_length=200)] = None,
                limit: Annotated[int, Query(ge=1, le=200)] = 48, after: int | None = None,
                look_only: bool = False) -> HTMLResponse:
    folder = (folder or "").strip() or None
    pg = browse.list_groups(s, sort=sort, unresolved=unresolved, cursor=cursor, limit=limit, previews=4,
                            min_size=min_size, folder=folder, look_only=look_only)
    offer = bulk.summary(s, min_size=min_size, folder=folder)
    return page(request, "groups.html", page=pg, sort=sort, sorts=SORT_LABELS, unresolved=unresolved, folder=folder,
                min_size=min_size, cursor=cursor, limit=limit, totals=browse.totals(s), offer=offer, look_only=look_only,
                roots=services.library_roots(index), after=_after_banner(index, after))


# -- one group -----------------------------------------------------------------------------------
def _group_ctx(index: Index, s, group_id: int, sort: str = "reclaimable") -> dict:
    g = services.group_detail(index, s, group_id)
    members = review.keeper_first(g)
    prev, nxt = browse.neighbours(s, group_id, sort=sort)
    return {"g": g, "members": members[:review.MEMBERS_SHOWN], "more": len(members) - review.MEMBERS_SHOWN,
            "shown": review.MEMBERS_SHOWN, "prev": prev, "next": nxt, "names": {m.id: m.path for m in g.members},
            "sort": sort, "can_undo": _undoable(index, group_id)}


def _undoable(index: Index, group_id: int) -> bool:
    return group_id in resolution.latest_decisions(index.settings.quarantine_dir)


@router.get("/ui/groups/{group_id}")
def group_page(request: Request, index: IndexDep, s: SessionDep, group_id: GroupId, sort: Sort = "reclaimable",
               after: int | None = None) -> HTMLResponse:
    try:
        ctx = _group_ctx(index, s, group_id, sort)
    except ApiError as exc:
        if exc.status == 404 and _undoable(index, group_id):  # kept all: the group is gone until undone
            return page(request, "gone.html", status=404, group_id=group_id)
        raise
    return page(request, "group.html", after=_after_banner(index, after), **ctx)


def _after_banner(index: Index, after: int | None) -> dict | None:
    """What the previous decision did (shown with its undo after auto-advance), when it can still be undone."""
    if after is None:
        return None
    last = resolution.latest_decisions(index.settings.quarantine_dir).get(after)
    if last is None:
        return None
    return {"group_id": after, "words": review.decision_words(last.get("action"), len(last.get("moves", [])))}


@router.get("/ui/groups/{group_id}/members")
def more_members(request: Request, index: IndexDep, s: SessionDep, group_id: GroupId,
                 start: Annotated[int, Query(ge=0)] = 0) -> HTMLResponse:
    """The next cards of a large group, appended inside the same form (ticks already made are kept)."""
    ctx = _group_ctx(index, s, group_id)
    members = review.keeper_first(ctx["g"])
    end = start + review.MEMBERS_SHOWN
    return page(request, "_members.html", g=ctx["g"], members=members[start:end], offset=start,
                more=len(members) - end, shown=review.MEMBERS_SHOWN)


@router.post("/ui/groups/{group_id}/resolve")
async def group_resolve(request: Request, index: IndexDep, group_id: GroupId,
                        action: Annotated[str, Form()], keep: Annotated[list[int] | None, Form()] = None,
                        advance: Annotated[bool, Form()] = False,
                        sort: Annotated[Sort, Form()] = "reclaimable") -> Response:
    with index.catalog.session() as s:
        at = browse.position(s, group_id, sort)
    try:
        req = ResolveRequest(action=action, keep=keep or [])  # type: ignore[arg-type]
        out = await run_in_threadpool(decisions.resolve, index, group_id, req.action, req.keep)
    except (DupesiftError, ValueError) as exc:
        return error_for(request, exc)
    if advance and is_htmx(request):
        with index.catalog.session() as s:
            _, nxt = browse.neighbours(s, group_id, sort=sort, unresolved=True, at=at) if at else (None, None)
            nxt = nxt or browse.first(s, sort=sort, unresolved=True, exclude=group_id)
        where = (f"/ui/groups/{nxt}?sort={sort}&after={group_id}" if nxt
                 else f"/ui/groups?sort={sort}&unresolved=true&after={group_id}")
        return Response(status_code=204, headers={"HX-Location": where})
    return _after(request, index, group_id, out)


@router.post("/ui/groups/{group_id}/restore")
async def group_restore(request: Request, index: IndexDep, group_id: GroupId,
                        image: Annotated[list[int] | None, Form()] = None,
                        back: Annotated[bool, Form()] = False) -> Response:
    """Undo the group's last decision (keep all included); ``image``: only these moved files; ``back``: then
    show the group (from the undo offered after auto-advance)."""
    try:
        out = await run_in_threadpool(decisions.restore, index, group_id, image)
    except DupesiftError as exc:
        return error_for(request, exc)
    gid = out.groups_after[0] if out.groups_after else group_id
    if back and is_htmx(request):
        return Response(status_code=204, headers={"HX-Location": f"/ui/groups/{gid}"})
    return _after(request, index, gid, out)


def _after(request: Request, index: Index, group_id: int, out: ResolveResponse) -> HTMLResponse:
    with index.catalog.session() as s:
        try:
            ctx = _group_ctx(index, s, group_id)
        except ApiError:
            ctx = {"g": None, "group_id": group_id, "can_undo": _undoable(index, group_id)}
    words = review.decision_words(out.action, len(out.moved))
    if out.action == "restore":
        words = f"undone: {len(out.moved)} file(s) back where they were" if out.moved else "undone: grouped again"
    return page(request, "_group_body.html", done=words, **ctx)


# -- compare -------------------------------------------------------------------------------------
@router.get("/ui/compare")
def compare(request: Request, index: IndexDep, s: SessionDep, ids: Annotated[str, Query(max_length=200)]
            ) -> HTMLResponse:
    try:
        wanted = list(dict.fromkeys(int(x) for x in ids.split(",") if x.strip()))[:4]
    except ValueError:
        return error_page(request, 400, "ids must be a comma-separated list of photo numbers")
    valid = [i for i in wanted if 1 <= i <= 2**62]  # larger ones are no photo (and no SQL integer)
    imgs = {i.id: i for i in s.scalars(select(Image).where(Image.id.in_(valid), Image.status == ImageStatus.indexed))}
    missing = [i for i in wanted if i not in imgs]
    if not wanted or missing:
        return error_page(request, 404, f"no indexed photo {', '.join(map(str, missing))}" if missing
                          else "name two photos to compare")
    images = [imgs[i] for i in wanted]
    gids = {m.group_id for m in images}
    gid = gids.pop() if len(gids) == 1 else None
    grp = s.get(DupGroup, gid) if gid is not None else None
    keeper = grp.keeper_id if grp else None
    resolved = grp is None or bool(grp.resolution)
    views = [MemberView.of(m) for m in images]  # printable paths (indexer/fsnames.py)
    evidence = review.pair_evidence(s, views, index.threshold, index.store.get(wanted))
    return page(request, "compare.html", images=views, rows=review.compare_rows(views, keeper), evidence=evidence,
                group_id=gid, keeper=keeper, can_keep=gid is not None and not resolved)


# -- search and ingest ---------------------------------------------------------------------------
@router.get("/ui/search")
def search_page(request: Request, index: IndexDep) -> HTMLResponse:
    return page(request, "search.html", max_mp=index.settings.upload_max_pixels / 1e6,
                max_jpeg_mp=index.settings.max_pixels / 1e6)


@router.post("/ui/search")
async def search(request: Request, index: IndexDep, file: UploadFile,
                 k: Annotated[int, Form(ge=1, le=200)] = 24) -> HTMLResponse:
    try:
        data = await uploads.read_upload(request, file)
        hits = await uploads.search_upload(request, index, data, k)
    except DupesiftError as exc:
        return error_for(request, exc)
    return page(request, "_results.html", results=hits, threshold=index.threshold, query_name=file.filename)


@router.get("/ui/ingest")
def ingest_page(request: Request, index: IndexDep, s: SessionDep) -> HTMLResponse:
    return page(request, "ingest.html", roots=services.library_roots(index), jobs=_recent_jobs(s))


def _recent_jobs(s) -> list:
    return [services.job_out(s, j, failures=0) for j in s.scalars(select(Job).order_by(Job.created_at.desc()).limit(10))]


@router.get("/ui/jobs")
def jobs_fragment(request: Request, s: SessionDep) -> HTMLResponse:
    """The recent jobs table (the ingest page polls it while a job runs)."""
    return page(request, "_jobs.html", jobs=_recent_jobs(s))


@router.post("/ui/ingest")
def ingest_start(request: Request, index: IndexDep, path: Annotated[str, Form(max_length=4096)]) -> HTMLResponse:
    try:
        paths = services.check_paths([path.strip()], services.library_roots(index))
        job_id = request.app.state.ingest.start(paths)
    except ApiError as exc:
        return error_for(request, exc)
    with index.catalog.session() as s:
        job = services.job_out(s, s.get(Job, job_id))
    return page(request, "_job.html", job=job)


@router.get("/ui/jobs/{job_id}")
def job_fragment(request: Request, s: SessionDep, job_id: str) -> HTMLResponse:
    job = s.get(Job, job_id)
    if job is None:
        return error_page(request, 404, f"no job {job_id}")
    return page(request, "_job.html", job=services.job_out(s, job))


router.include_router(web_quarantine.router)
router.include_router(web_bulk.router)


@router.get("/ui/{rest:path}")  # last: after every page of the routers above
def not_found(request: Request, rest: str) -> HTMLResponse:
    return error_page(request, 404, "no such page")
