"""Prometheus metrics on a per-app registry (several apps in one test process must not collide)."""
from __future__ import annotations

import time

from fastapi import FastAPI, Request

from indexer import browse, report
from indexer.catalog.models import ImageStatus

try:
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        CollectorRegistry,
        Counter,
        Gauge,
        Histogram,
        generate_latest,
    )
except ImportError:  # pragma: no cover - a declared dependency; without it only /metrics is unavailable
    CollectorRegistry = None  # type: ignore[assignment,misc]


class _Off:
    """Stands in for prometheus_client when it is not installed."""

    def labels(self, *a: object) -> _Off:
        return self

    def inc(self, *a: object) -> None:
        pass

    observe = set = inc


class Metrics:
    def __init__(self) -> None:
        self.enabled = CollectorRegistry is not None
        if not self.enabled:
            self.requests = self.latency = self.images = self.groups = _Off()
            self.app = None
            return
        self.registry = CollectorRegistry()
        self.requests = Counter("dupesift_http_requests_total", "HTTP requests", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("dupesift_http_request_seconds", "HTTP request latency", ["method", "route"],
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10),
                                 registry=self.registry)
        self.images = Gauge("dupesift_images", "Photos in the catalog", ["status"], registry=self.registry)
        self.groups = Gauge("dupesift_groups", "Duplicate groups", ["state"], registry=self.registry)
        self.app: FastAPI | None = None

    def install(self, app: FastAPI) -> None:
        self.app = app

        @app.middleware("http")
        async def _measure(request: Request, call_next):
            t = time.perf_counter()
            status = 500
            try:
                response = await call_next(request)
                status = response.status_code
                return response
            finally:
                route = request.scope.get("route")
                name = getattr(route, "path", None) or "unmatched"
                self.requests.labels(request.method, name, str(status)).inc()
                self.latency.labels(request.method, name).observe(time.perf_counter() - t)

    def render(self) -> tuple[bytes, str]:
        if not self.enabled:
            from api.errors import ApiError

            raise ApiError(503, "metrics need the prometheus-client package: pip install prometheus-client")
        index = getattr(self.app.state, "index", None) if self.app else None
        if index is not None:
            with index.catalog.session() as s:
                counts, totals = report.image_counts(s), browse.totals(s)
            for st in ImageStatus:
                self.images.labels(st.value).set(counts.get(st.value, 0))
            self.groups.labels("unresolved").set(totals["unresolved_groups"])
            self.groups.labels("resolved").set(totals["groups"] - totals["unresolved_groups"])
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
