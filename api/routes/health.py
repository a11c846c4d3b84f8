"""Liveness, numbers for people (/stats) and for Prometheus (/metrics)."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from api.deps import IndexDep, SessionDep
from api.schemas import Health, Stats
from indexer import report

router = APIRouter(tags=["service"])


@router.get("/health", response_model=Health)
def health(index: IndexDep, s: SessionDep) -> Health:
    return Health(status="ok", model=index.spec.model_id, images=report.indexed_count(s))


@router.get("/stats", response_model=Stats)
def stats(index: IndexDep, s: SessionDep) -> Stats:
    return Stats(**report.stats(index, s))


@router.get("/metrics", response_class=PlainTextResponse, responses={
    200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})
def metrics(request: Request) -> PlainTextResponse:
    body, ctype = request.app.state.metrics.render()
    return PlainTextResponse(body, media_type=ctype)
