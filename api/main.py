"""The FastAPI application factory: JSON API + web UI, one Index per process."""
from __future__ import annotations

import asyncio
import logging
import threading
from contextlib import asynccontextmanager
from pathlib import Path

import anyio.to_thread
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from api import errors, services
from api.guards import Guard, HostAllowList, is_loopback
from api.metrics import Metrics
from api.routes import docs, groups, health, images, ingest, similar, web
from api.uploads import BodyLimit
from indexer import __version__, resolution
from indexer.config import Settings, get_settings
from indexer.errors import DupesiftError
from indexer.index import Index
from indexer.jobs import close_orphans
from indexer.thumbnails import PixelBudget

STATIC = Path(__file__).resolve().parent / "static"
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
# Seconds an idle keep-alive connection stays open (uvicorn's default is 5). Under load a client can take longer
# than 5 s to send its next request, and one sent as the server closes the connection fails (no response).
KEEP_ALIVE_S = 75


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
    async def lifespan(app: FastAPI):
        index = Index(settings)
        with index.catalog.session() as s:  # finish (roll back) file moves a crash interrupted
            resolution.recover(s, settings.quarantine_dir)
        close_orphans(index.catalog)  # ingests whose server process died are not "running" any more
        app.state.index = index
        # sync routes run on this many threads, and the catalog's pool has a connection for each
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.api_threads
        app.state.upload_gate = asyncio.Semaphore(settings.upload_decodes)  # on the serving event loop
        app.state.thumbnail_budget = PixelBudget(settings.thumbnail_decode_pixels)
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
                  docs_url=None, redoc_url=None)  # api/routes/docs.py serves them without a CDN
    app.state.settings, app.state.host = settings, host
    app.state.auth_required, app.state.max_upload_bytes = auth_required, max_upload_bytes
    app.state.metrics = Metrics()
    errors.install(app)

    app.state.metrics.install(app)
    app.add_middleware(BodyLimit)  # counts bytes before any router, form parser or spool sees them
    # outermost: Host, token and origin are checked before a byte of the body is read
    app.add_middleware(Guard, hosts=HostAllowList(host, settings.allowed_hosts), token=settings.api_token,
                       auth_required=auth_required)
    for r in (health.router, similar.router, groups.router, images.router, ingest.router, docs.router, web.router):
        app.include_router(r)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.mount(docs.ASSETS_URL, docs.assets, name="docs-assets")
    return app
