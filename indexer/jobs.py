"""Job rows in the catalog: create, follow, list; progress with files/s and ETA.

A queued job records the image ids it has to process as id ranges (new files get consecutive ids, so
a million-file job is a handful of ranges). Progress and completion are then exact catalog counts,
which stay right when a batch is delivered twice.
"""
from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterable
from datetime import datetime, timezone

from sqlalchemy import func, or_, select, update

from indexer.catalog import Catalog, Image, ImageStatus, Job
from indexer.catalog.models import utcnow

FINISHED = ("done", "failed", "interrupted")


# -- id ranges ------------------------------------------------------------------------------------
def to_ranges(ids: Iterable[int]) -> list[list[int]]:
    """Sorted ids -> [[first, last], ...] inclusive runs."""
    out: list[list[int]] = []
    for i in sorted(set(int(x) for x in ids)):
        if out and i == out[-1][1] + 1:
            out[-1][1] = i
        else:
            out.append([i, i])
    return out


def in_ranges(column, ranges: list[list[int]]):  # noqa: ANN001, ANN201 - SQL expression
    return or_(*[column.between(a, b) if a != b else column == a for a, b in ranges]) if ranges else column.is_(None)


def count_in_ranges(session, ranges: list[list[int]], *where) -> int:  # noqa: ANN001
    total = 0
    for start in range(0, len(ranges), 200):
        total += session.scalar(select(func.count()).select_from(Image).where(
            in_ranges(Image.id, ranges[start:start + 200]), *where)) or 0
    return total


# -- rows -----------------------------------------------------------------------------------------
def create_job(catalog: Catalog, kind: str, params: dict, job_id: str | None = None) -> str:
    job_id = job_id or str(uuid.uuid4())
    with catalog.session() as s:
        s.add(Job(id=job_id, kind=kind, status="queued", params=params, created_at=utcnow(), updated_at=utcnow()))
    return job_id


def this_process() -> dict:
    """Who runs an in-process job: recorded on its row so a later run can tell it died."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def close_orphans(catalog: Catalog) -> list[str]:
    """Mark in-process jobs whose process died (killed, crashed, power cut) as interrupted; returns
    their ids. Only this host's jobs are judged; queued (Celery) jobs carry no runner and are left alone."""
    me = socket.gethostname()
    closed = []
    with catalog.session() as s:
        for job in s.scalars(select(Job).where(Job.status.in_(("queued", "running")))):
            runner = (job.params or {}).get("runner") or {}
            pid = runner.get("pid")
            if runner.get("host") == me and isinstance(pid, int) and pid != os.getpid() and not _alive(pid):
                job.status, job.finished_at, job.updated_at = "interrupted", utcnow(), utcnow()
                job.message = (f"the process running it (pid {pid}) stopped before the end; nothing indexed "
                               "is lost, and ingesting the same paths again resumes where it stopped")
                closed.append(job.id)
    return closed


def get_job(catalog: Catalog, job_id: str) -> dict | None:
    with catalog.session() as s:
        job = s.get(Job, job_id)
        return None if job is None else job_view(job)


def list_jobs(catalog: Catalog, limit: int = 20, status: str | None = None) -> list[dict]:
    with catalog.session() as s:
        q = select(Job).order_by(Job.created_at.desc()).limit(limit)
        if status:
            q = q.where(Job.status == status)
        return [job_view(j) for j in s.scalars(q)]


def add_progress(catalog: Catalog, job_id: str, done: int, failed: int) -> None:
    """Atomic increment (concurrent workers update the same row)."""
    with catalog.session() as s:
        s.execute(update(Job).where(Job.id == job_id).values(
            done=Job.done + done, failed=Job.failed + failed, updated_at=utcnow()))


def set_status(catalog: Catalog, job_id: str, status: str, message: str | None = None) -> None:
    values: dict = {"status": status, "updated_at": utcnow()}
    if status in FINISHED:
        values["finished_at"] = utcnow()
    if message is not None:
        values["message"] = message
    with catalog.session() as s:
        s.execute(update(Job).where(Job.id == job_id, Job.status.not_in(FINISHED)).values(**values))


def failures(catalog: Catalog, job_id: str, limit: int = 1000) -> list[dict]:
    """Files of a queued job that could not be indexed, with reason (the ingest summary's list)."""
    with catalog.session() as s:
        job = s.get(Job, job_id)
        if job is None:
            return []
        ranges = (job.params or {}).get("ranges") or []
        out = list((job.params or {}).get("unreadable") or [])
        for start in range(0, len(ranges), 200):
            for path, reason, msg in s.execute(select(Image.path, Image.error_reason, Image.error_message).where(
                    in_ranges(Image.id, ranges[start:start + 200]), Image.status == ImageStatus.failed).limit(limit)):
                out.append({"path": path, "reason": reason, "message": msg})
        return out[:limit]


def _aware(t: datetime | None) -> datetime | None:
    if t is not None and t.tzinfo is None:  # SQLite returns naive datetimes
        return t.replace(tzinfo=timezone.utc)
    return t


def job_view(job: Job) -> dict:
    """A job as a dict, with files/s over its running time and an ETA while it runs."""
    started, finished, updated = _aware(job.started_at), _aware(job.finished_at), _aware(job.updated_at)
    end = finished or (datetime.now(timezone.utc) if job.status == "running" else updated)
    elapsed = (end - started).total_seconds() if started and end else 0.0
    processed = (job.done or 0) + (job.failed or 0)
    rate = processed / elapsed if elapsed > 0 else 0.0
    left = max(0, (job.total or 0) - processed)
    eta = left / rate if rate > 0 and job.status == "running" else (0.0 if job.status in FINISHED else None)
    return {
        "id": job.id, "kind": job.kind, "status": job.status, "total": job.total or 0, "done": job.done or 0,
        "failed": job.failed or 0, "files_per_s": round(rate, 2), "eta_s": None if eta is None else round(eta, 1),
        "elapsed_s": round(elapsed, 1), "message": job.message,
        "paths": (job.params or {}).get("paths", []),
        "created_at": _iso(job.created_at), "started_at": _iso(started), "finished_at": _iso(finished),
        "summary": job.summary,
    }


def _iso(t: datetime | None) -> str | None:
    return None if t is None else _aware(t).isoformat(timespec="seconds")


__all__ = ["FINISHED", "add_progress", "count_in_ranges", "create_job", "failures", "get_job", "in_ranges",
           "job_view", "list_jobs", "set_status", "to_ranges"]
