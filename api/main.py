"""The FastAPI application factory: JSON API + web UI, one Index per process."""
from __future__ import annotations

import asyncio
import json
import logging
import threading
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import errors, services
from api.deps import is_loopback, require_same_origin, require_token
from api.metrics import Metrics
from api.routes import groups, health, images, ingest, similar, web
from indexer import __version__, resolution
from indexer.config import Settings, get_settings
from indexer.errors import DupesiftError
from indexer.jobs import close_orphans
from indexer.index import Index

STATIC = Path(__file__).resolve().parent / "static"
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
BODY_SLACK = 64 * 1024  # multipart boundaries and headers around a file of exactly the limit


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a request body passes the limit (FastAPI re-raises HTTPException
    unchanged from its body parsing, so the form parser stops there)."""


class BodyLimit:
    """Pure ASGI: refuse a request body over ``app.state.max_upload_bytes`` with 413.

    Checks Content-Length up front, then counts the bytes ``receive()`` hands over, so a chunked body
    (no Content-Length) or one longer than it claims is cut off at the limit instead of being spooled
    to disk in full by the multipart parser.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = scope["app"].state.max_upload_bytes
        message = f"upload is over the {limit / (1024 * 1024):g} MB limit"
        allowed = limit + BODY_SLACK
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > allowed:
            await _refuse(send, message)
            return
        seen, over, started = 0, False, False

        async def counted() -> Message:
            nonlocal seen, over
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > allowed:
                    over = True
                    raise BodyTooLarge(413, message)
            return msg

        async def guarded(msg: Message) -> None:
            nonlocal started
            if over:  # whatever the app made of the cut-off body, the answer is our 413 (sent below)
                return
            started = started or msg["type"] == "http.response.start"
            await send(msg)

        try:
            await self.app(scope, counted, guarded)
        except Exception:  # noqa: BLE001 - once over the limit, any failure is the cut-off body's
            if not over:
                raise
        if over and not started:
            await _refuse(send, message)


async def _refuse(send: Send, message: str) -> None:
    body = json.dumps({"detail": message}).encode()
    await send({"type": "http.response.start", "status": 413, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close")]})  # the rest of the body is never read: close rather than keep alive
    await send({"type": "http.response.body", "body": body})


def _warm(index: Index) -> None:
    try:
        index.store.warm()
    except Exception as exc:  # noqa: BLE001 - the first search builds it instead
        logging.getLogger(__name__).warning("search copy not preloaded: %s", exc)


def create_app(settings: Settings | None = None, *, host: str = "127.0.0.1",
               max_upload_bytes: int = MAX_UPLOAD_BYTES) -> FastAPI:
    """The app for ``settings``. Binding a non-loopback ``host`` requires ``DUPESIFT_API_TOKEN``."""
    settings = settings or get_settings()
    auth_required = not is_loopback(host)
    if auth_required and not settings.api_token:
        raise DupesiftError(f"refusing to serve on {host} without a token: set DUPESIFT_API_TOKEN "
                            "(or bind 127.0.0.1)")

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        index = Index(settings)
        with index.catalog.session() as s:  # finish (roll back) file moves a crash interrupted
            resolution.recover(s, settings.quarantine_dir)
        close_orphans(index.catalog)  # ingests whose server process died are not "running" any more
        app.state.index = index
        app.state.upload_gate = asyncio.Semaphore(settings.upload_decodes)  # on the serving event loop
        # the first /similar would otherwise pay for loading the search copy of a Lite store
        threading.Thread(target=_warm, args=(index,), name="warm-search", daemon=True).start()
        app.state.ingest = services.IngestRunner(index)
        try:
            yield
        finally:
            app.state.ingest.wait(timeout=120)
            index.close()

    app = FastAPI(title="dupesift", version=__version__, lifespan=lifespan,
                  description="Find duplicate and similar photos. Web UI at /ui/groups.",
                  dependencies=[Depends(require_token), Depends(require_same_origin)])
    app.state.settings, app.state.host = settings, host
    app.state.auth_required, app.state.max_upload_bytes = auth_required, max_upload_bytes
    app.state.metrics = Metrics()
    errors.install(app)

    app.state.metrics.install(app)
    app.add_middleware(BodyLimit)  # outermost: counts bytes before any router, form parser or spool sees them
    for r in (health.router, similar.router, groups.router, images.router, ingest.router, web.router):
        app.include_router(r)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
