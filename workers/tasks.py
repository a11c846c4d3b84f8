"""Tasks take ids only and are idempotent (see ``indexer/stages.py``); they are acked late and
rejected back to the queue when their worker process dies, and retried with backoff on the named
transient errors below. Anything else fails the task and marks its job failed.

Group merges: ``finish``/``link``/``regroup`` hold the catalog lock ``groups`` (a PostgreSQL advisory
lock) while they write pairs and groups, so any number of workers may consume the ``cpu`` queue and
concurrent jobs still merge groups race-free. We chose a lock over a dedicated single-consumer queue
because correctness then does not depend on how an operator wires queues to workers, and the lock
dies with a killed holder (no stuck singleton). Embedding, the expensive part, never takes it.
"""
from __future__ import annotations

import grpc
from celery import Task
from celery.utils.log import get_task_logger
from pymilvus.exceptions import MilvusException
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError

from indexer import linking, stages
from indexer.errors import StoreBusy
from indexer.jobs import create_job, get_job, set_status, to_ranges
from indexer.reindex import reindex_params
from workers.app import app, get_index, settings

logger = get_task_logger(f"{__name__}.celery")

# Transient: connection loss/deadlock/serialization failure in the catalog, Milvus RPC errors, and a
# unique-key race between two deliveries of the same batch (the retry re-reads state and finds it done).
TRANSIENT = (OperationalError, InterfaceError, IntegrityError, MilvusException, grpc.RpcError,
             ConnectionError, TimeoutError, StoreBusy)

RETRY = {"autoretry_for": TRANSIENT, "retry_backoff": 2, "retry_backoff_max": 120, "retry_jitter": True,
             "max_retries": settings.task_max_retries, "acks_late": True, "reject_on_worker_lost": True}


class JobTask(Task):
    """Marks the job failed when a task gives up (not on worker loss: that task is redelivered)."""

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        job_id = kwargs.get("job_id")
        if job_id:
            try:
                set_status(get_index().catalog, job_id, "failed", f"{self.name}: {type(exc).__name__}: {exc}")
            except Exception as err:  # noqa: BLE001 - the catalog may be what failed
                logger.error("cannot mark job %s failed: %s", job_id, err)


@app.task(name="dupesift.scan", base=JobTask, **RETRY)
def scan(job_id: str) -> None:
    """Register the job's files and fan its pending photos out as embed batches."""
    index = get_index()
    batches = stages.plan(index, job_id)
    if batches is None:
        logger.warning("job %s is gone or finished: nothing to scan", job_id)
        return
    logger.info("job %s: %d batches", job_id, len(batches))
    for ids in batches:
        embed_batch.apply_async(kwargs={"job_id": job_id, "image_ids": ids})
    if not batches:
        finish.apply_async(kwargs={"job_id": job_id})


@app.task(name="dupesift.embed_batch", base=JobTask, **RETRY)
def embed_batch(job_id: str | None, image_ids: list[int]) -> None:
    """Decode + embed + upsert the photos of one batch that are still pending (a bad file fails alone)."""
    index = get_index()
    logger.info("job %s: batch start, ids %s", job_id, to_ranges(image_ids))
    ok, bad = stages.embed(index, job_id, image_ids)
    logger.info("job %s: batch of %d: %d indexed, %d failed", job_id, len(image_ids), ok, bad)
    # Checked after our own commit, so whichever batch commits last sees 0 and closes the job.
    if job_id and stages.pending_count(index, job_id) == 0:
        finish.apply_async(kwargs={"job_id": job_id})


@app.task(name="dupesift.finish", base=JobTask, **RETRY)
def finish(job_id: str) -> None:
    """Link the new photos, merge groups, swap the alias (and drop old collections on a reindex)."""
    if stages.finish(get_index(), job_id):
        logger.info("job %s done", job_id)


@app.task(name="dupesift.link", **RETRY)
def link() -> int:
    """Neighbours of every unlinked photo -> pairs -> groups."""
    return linking.link(get_index())


@app.task(name="dupesift.regroup", **RETRY)
def regroup() -> int:
    """Recompute every visual pair (bulk all-pairs: faiss, on the GPU with faiss-gpu) and all groups."""
    return linking.relink_all(get_index())


@app.task(name="dupesift.reindex", base=JobTask, **RETRY)
def reindex(job_id: str | None = None) -> str:
    """Rescan every registered root (beat runs this nightly); returns the job id."""
    index = get_index()
    params = reindex_params(index.catalog)
    for r in params["missing_roots"]:
        logger.warning("root %s is missing: skipped", r)
    if job_id is None or get_job(index.catalog, job_id) is None:
        job_id = create_job(index.catalog, "reindex", params, job_id)
    scan.apply_async(kwargs={"job_id": job_id})
    return job_id
