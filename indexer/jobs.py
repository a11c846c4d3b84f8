"""Job rows in the catalog: every write to them (create, start, progress, finish) and every read (follow,
list, failures); progress with files/s and ETA.

A queued job records the image ids it has to process as id ranges (new files get consecutive ids, so
a million-file job is a handful of ranges). Progress and completion are then exact catalog counts,
which stay right when a batch is delivered twice.
"""
from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from indexer.catalog import Catalog, Image, ImageStatus, Job
from indexer.catalog.models import utcnow
from indexer.fsnames import to_text

FINISHED = ("done", "failed", "interrupted")


# -- id ranges ------------------------------------------------------------------------------------
def to_ranges(ids: Iterable[int]) -> list[list[int]]:
    """Sorted ids -> [[first, last], ...] inclusive runs."""
    out: list[list[int]] = []
    for i in sorted({int(x) for x in ids}):
        if out and i == out[-1][1] + 1:
            out[-1][1] = i
        else:
            out.append([i, i])
    return out


def in_ranges(column, ranges: list[list[int]]):
    return or_(*[column.between(a, b) if a != b else column == a for a, b in ranges]) if ranges else column.is_(None)


RANGES_PER_QUERY = 200


def _range_chunks(ranges: list[list[int]]) -> Iterator[list[list[int]]]:
    for start in range(0, len(ranges), RANGES_PER_QUERY):
        yield ranges[start:start + RANGES_PER_QUERY]


def count_in_ranges(session: Session, ranges: list[list[int]], *where: ColumnElement[bool],
                    column: InstrumentedAttribute[int] = Image.id) -> int:
    """Rows of ``column``'s table whose ``column`` lies in the id ranges (and that match ``where``)."""
    return sum(session.scalar(select(func.count()).select_from(column.class_).where(
        in_ranges(column, chunk), *where)) or 0 for chunk in _range_chunks(ranges))


# -- rows -----------------------------------------------------------------------------------------
def create_job(catalog: Catalog, kind: str, params: dict, job_id: str | None = None) -> str:
    job_id = job_id or str(uuid.uuid4())
    with catalog.session() as s:
        s.add(Job(id=job_id, kind=kind, status="queued", params=params, created_at=utcnow(), updated_at=utcnow()))
    return job_id


def start_job(catalog: Catalog, job_id: str, kind: str, params: dict) -> None:
    """An in-process job starts: its row (created now unless queued before) records this process as its runner,
    so that a later run can tell it died (``close_orphans``, which runs first)."""
    close_orphans(catalog)
    with catalog.session() as s:
        job = s.get(Job, job_id)
        if job is None:
            job = Job(id=job_id, kind=kind, params=params)
            s.add(job)
        job.params = {**(job.params or {}), "runner": this_process()}
        job.status, job.started_at, job.updated_at = "running", utcnow(), utcnow()


def take_up(catalog: Catalog, job_id: str) -> dict | None:
    """A worker takes up a queued job: running from now (its start is kept from the first time). Returns its
    params, or None when the row is gone or the job finished."""
    with catalog.session() as s:
        job = s.get(Job, job_id)
        if job is None or job.status in FINISHED:
            return None
        if job.started_at is None:
            job.started_at = utcnow()
        job.status, job.updated_at = "running", utcnow()
        return dict(job.params or {})


def unfinished(catalog: Catalog, job_id: str) -> tuple[dict, datetime | None] | None:
    """(params, start) of a job still queued or running; None when it is gone or finished."""
    with catalog.session() as s:
        job = s.get(Job, job_id)
        if job is None or job.status in FINISHED:
            return None
        return dict(job.params or {}), _aware(job.started_at)


def set_params(catalog: Catalog, job_id: str, params: dict, total: int | None = None) -> None:
    values: dict = {"params": params, "updated_at": utcnow()}
    if total is not None:
        values["total"] = total
    with catalog.session() as s:
        s.execute(update(Job).where(Job.id == job_id).values(**values))


def set_total(catalog: Catalog, job_id: str, total: int) -> None:
    with catalog.session() as s:
        s.execute(update(Job).where(Job.id == job_id).values(total=total, updated_at=utcnow()))


def set_progress(catalog: Catalog, job_id: str, done: int, failed: int) -> None:
    """Absolute progress of a job one process runs (the queue's workers use ``add_progress``)."""
    with catalog.session() as s:
        s.execute(update(Job).where(Job.id == job_id).values(done=done, failed=failed, updated_at=utcnow()))


def finish_job(catalog: Catalog, job_id: str, status: str, summary: dict, message: str | None = None, *,
               done: int | None = None, failed: int | None = None) -> None:
    """Close a job with its summary (``IngestSummary.job_summary``) and, when given, its final counts."""
    now = utcnow()
    values: dict = {"status": status, "message": message, "summary": summary, "finished_at": now, "updated_at": now}
    if done is not None:
        values.update(done=done, failed=failed)
    with catalog.session() as s:
        s.execute(update(Job).where(Job.id == job_id).values(**values))


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
        for chunk in _range_chunks(ranges):
            for path, reason, msg in s.execute(select(Image.path, Image.error_reason, Image.error_message).where(
                    in_ranges(Image.id, chunk), Image.status == ImageStatus.failed).limit(limit)):
                out.append({"path": to_text(path), "reason": reason, "message": msg})
        return out[:limit]


def _aware(t: datetime | None) -> datetime | None:
    if t is not None and t.tzinfo is None:  # SQLite returns naive datetimes
        return t.replace(tzinfo=UTC)
    return t


def job_view(job: Job) -> dict:
    """A job as a dict, with files/s over its running time and an ETA while it runs."""
    started, finished, updated = _aware(job.started_at), _aware(job.finished_at), _aware(job.updated_at)
    end = finished or (datetime.now(UTC) if job.status == "running" else updated)
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


__all__ = ["FINISHED", "add_progress", "close_orphans", "count_in_ranges", "create_job", "failures", "finish_job",
           "get_job", "in_ranges", "job_view", "list_jobs", "set_params", "set_progress", "set_status", "set_total",
           "start_job", "take_up", "to_ranges", "unfinished"]
