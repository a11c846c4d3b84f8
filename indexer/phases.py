"""The phases of an ingest on its job row, so a page or ``GET /jobs/{id}`` can say what the job is doing now.

An in-process ingest goes through ``PHASES`` in order; each has a state (waiting, running, done) and, where it
counts something, done/total. ``JobPhases`` is also a ``Progress``: the steps that report progress (the embed
batches, the link step's candidate pairs) move the current phase's counts. Writes to the row are throttled.
"""
from __future__ import annotations

import time

from sqlalchemy import update

from indexer.catalog import Catalog
from indexer.catalog.models import Job, utcnow
from indexer.progress import Progress

PHASES = (
    ("scan", "scan folders"),
    ("embed", "decode and embed"),
    ("link", "link and group (search and verify pairs)"),
    ("finish", "finish"),
)
WRITE_EVERY_S = 0.5


class JobPhases:
    """The job row's ``phases``: ``{"current": name, "steps": [{"name", "label", "state", "done", "total"}]}``."""

    def __init__(self, catalog: Catalog, job_id: str, forward: Progress | None = None) -> None:
        self.catalog, self.job_id, self.forward = catalog, job_id, forward
        self.steps = [{"name": n, "label": label, "state": "waiting", "done": 0, "total": 0} for n, label in PHASES]
        self.current: str | None = None
        self._written = 0.0

    def _step(self, name: str) -> dict:
        return next(s for s in self.steps if s["name"] == name)

    def begin(self, name: str, total: int = 0) -> None:
        if self.current is not None:
            self._step(self.current)["state"] = "done"
        self.current = name
        self._step(name).update(state="running", total=total, done=0)
        self._write(force=True)

    def end(self, done: int | None = None) -> None:
        if self.current is not None:
            step = self._step(self.current)
            step["state"] = "done"
            if done is not None:
                step["done"] = step["total"] = done
        self.current = None
        self._write(force=True)

    # Progress: the reporting steps move the current phase
    def start(self, total: int, description: str) -> None:
        if self.forward is not None:
            self.forward.start(total, description)
        if self.current is not None:
            self._step(self.current).update(total=total, done=0, detail=description)
            self._write()

    def advance(self, done: int, failed: int) -> None:
        if self.forward is not None:
            self.forward.advance(done, failed)
        if self.current is not None:
            self._step(self.current)["done"] = done + failed
            self._write()

    def as_dict(self) -> dict:
        return {"current": self.current, "steps": [dict(s) for s in self.steps]}

    def _write(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._written < WRITE_EVERY_S:
            return
        self._written = now
        with self.catalog.session() as s:
            s.execute(update(Job).where(Job.id == self.job_id).values(phases=self.as_dict(), updated_at=utcnow()))
