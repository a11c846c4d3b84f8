"""Liveness, numbers for people (/stats) and for Prometheus (/metrics)."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from api.deps import IndexDep, read
from api.schemas import Health, Stats
from indexer import report

router = APIRouter(tags=["service"])


@router.get("/health", response_model=Health)
async def health(index: IndexDep) -> Health:
    images = await read(index, lambda _, s: report.indexed_count(s))
    return Health(status="ok", model=index.spec.model_id, images=images)


@router.get("/stats", response_model=Stats)
async def stats(index: IndexDep) -> Stats:
    return Stats(**await read(index, report.stats))


@router.get("/metrics", response_class=PlainTextResponse, responses={
    200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})
def metrics(request: Request) -> PlainTextResponse:
    body, ctype = request.app.state.metrics.render()
    return PlainTextResponse(body, media_type=ctype)
