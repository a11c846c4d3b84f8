"""Shared dependencies: the one Index a server process holds (Milvus Lite allows one process)."""
from __future__ import annotations

import ipaddress
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Annotated, TypeVar
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from indexer.config import Settings
from indexer.index import Index

T = TypeVar("T")


# The dependencies are async (no I/O): a sync one takes a worker thread per request just to run.
async def get_index(request: Request) -> Index:
    return request.app.state.index


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_session(index: Annotated[Index, Depends(get_index)]) -> AsyncIterator[Session]:
    """A read session for one request; writers commit explicitly through ``index.catalog.session()``.

    An async generator on purpose: its exit (which returns the connection to the pool) then runs on the event
    loop. A sync one exits on a worker thread, and with every thread waiting for a connection none was left to
    give one back: /groups locked up above ~55 concurrent requests."""
    with index.catalog.session() as s:
        yield s


async def read(index: Index, fn: Callable[..., T], *args: object, **kw: object) -> T:
    """``fn(index, session, *args, **kw)`` on a worker thread, in a session that is closed (its connection back
    in the pool) before the thread returns. JSON routes use this rather than ``SessionDep``: a sync route's
    response is validated on another worker thread after it returns, and a request that held its connection
    while waiting for that thread starved the threads that were waiting for a connection."""
    def call() -> T:
        with index.catalog.session() as s:
            return fn(index, s, *args, **kw)

    return await run_in_threadpool(call)


IndexDep = Annotated[Index, Depends(get_index)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]


def is_loopback(host: str) -> bool:
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


TOKEN_COOKIE = "dupesift_token"


async def require_token(request: Request) -> None:
    """Bearer auth, enforced whenever the server binds a non-loopback address.

    Browsers (the web UI) may carry the token in the ``dupesift_token`` cookie instead (see /ui/login).
    """
    if not request.app.state.auth_required or request.url.path == "/ui/login":
        return
    expected = request.app.state.settings.api_token or ""
    header = request.headers.get("authorization", "")
    given = header[7:].strip() if header.lower().startswith("bearer ") else request.cookies.get(TOKEN_COOKIE, "")
    if not given or not secrets.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(401, "missing or wrong bearer token (Authorization: Bearer $DUPESIFT_API_TOKEN)",
                            headers={"WWW-Authenticate": "Bearer"})


UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


async def require_same_origin(request: Request) -> None:
    """Refuse a state-changing request that a browser sent from another site (CSRF).

    A loopback server needs no token, so without this any web page could post plain forms to
    ``/ui/groups/{id}/resolve``. Browsers name the sending page in ``Origin`` (or ``Referer``); it must be
    this server's own host. Requests with neither (curl, scripts) cannot be forged by a page and pass.
    """
    if request.method not in UNSAFE_METHODS:
        return
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source:
        return
    try:
        netloc = urlsplit(source).netloc.lower()
    except ValueError:
        netloc = ""
    # X-Forwarded-Host (a reverse proxy's) is safe to accept: a page cannot set it without a CORS preflight
    own = {h.strip().lower() for h in (request.headers.get("host", ""), request.headers.get("x-forwarded-host", ""))}
    if not netloc or netloc not in own - {""}:
        raise HTTPException(403, f"cross-site request refused: it was sent from {source[:200]!r}, not from this "
                                 f"server ({request.headers.get('host', '')}); use the web UI served here")
