"""Shared dependencies: the one Index a server process holds (Milvus Lite allows one process)."""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.guards import TOKEN_COOKIE  # noqa: F401 - the web login sets it; the checks are middleware (api/guards.py)
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
