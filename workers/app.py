"""The Celery app, configured from dupesift settings. Per-process state (ONNX session, Milvus and
catalog connections) is opened in ``worker_process_init``, i.e. after the prefork pool forks.

There is no eager fallback: without ``DUPESIFT_BROKER_URL`` importing this module fails, so the
embedder never runs silently inside a web or CLI process.
"""
from __future__ import annotations

import logging
import os
import time

from celery import Celery
from celery.signals import worker_process_init, worker_process_shutdown
from celery.utils.log import get_task_logger
from kombu import Queue

from indexer.errors import DupesiftError
from indexer.index import Index
from workers.gpu import maybe_fp16
from workers.settings import WorkerSettings, load_worker_settings

logger = get_task_logger(f"{__name__}.celery")

QUEUES = ("gpu", "cpu", "default")  # gpu: embed batches; cpu: scan, link, regroup, reindex


def make_app(settings: WorkerSettings) -> Celery:
    if not settings.broker_url:
        raise DupesiftError("DUPESIFT_BROKER_URL is not set (e.g. redis://127.0.0.1:6379/0): "
                            "queued work needs a broker; without one, ingest in-process (no --queue)")
    app = Celery("dupesift", broker=settings.broker_url, backend=settings.result_backend or None)
    transport: dict = {"visibility_timeout": settings.visibility_timeout}
    if settings.queue_prefix and settings.broker_url.startswith(("redis://", "rediss://", "unix://")):
        transport["global_keyprefix"] = settings.queue_prefix
    app.conf.update(
        task_acks_late=True,  # a task is acked after it ran: a dead worker's batch is redelivered
        task_reject_on_worker_lost=True,  # ... also when the pool process was killed mid-task
        worker_prefetch_multiplier=1,  # batches are long: do not hoard them in a worker that may die
        task_ignore_result=True,  # progress lives in the catalog's jobs table
        task_serializer="json", accept_content=["json"], result_serializer="json",
        broker_transport_options=transport,
        broker_connection_retry_on_startup=True,
        task_default_queue="default",
        task_queues=[Queue(q) for q in QUEUES],
        task_routes={
            "dupesift.embed_batch": {"queue": "gpu"},
            "dupesift.scan": {"queue": "cpu"},
            "dupesift.finish": {"queue": "cpu"},
            "dupesift.link": {"queue": "cpu"},
            "dupesift.regroup": {"queue": "cpu"},
            "dupesift.reindex": {"queue": "cpu"},
        },
        worker_hijack_root_logger=False,
        imports=("workers.tasks",),  # loaded by the worker at start (no circular import here)
    )
    if settings.result_backend and settings.queue_prefix and settings.result_backend.startswith("redis"):
        app.conf.result_backend_transport_options = {"global_keyprefix": settings.queue_prefix}
    if settings.timezone:
        app.conf.timezone = settings.timezone
    else:
        app.conf.enable_utc = False  # crontab in the host's local time
    from workers.schedule import beat_schedule

    app.conf.beat_schedule = beat_schedule(settings)
    app.conf.dupesift_settings = settings
    return app


settings = load_worker_settings()
app = make_app(settings)


# -- per-process state ---------------------------------------------------------------------------
_index: Index | None = None


def worker_settings() -> WorkerSettings:
    """Settings for a worker process: decode inline (the pool's processes are the parallelism)."""
    overrides: dict = {}
    if "DUPESIFT_DECODE_WORKERS" not in os.environ:
        overrides["decode_workers"] = 1
    return settings.model_copy(update=overrides)


def get_index() -> Index:
    """This process's Index (ONNX session + Milvus + catalog), opened once."""
    global _index
    if _index is None:
        st = worker_settings()
        last: Exception | None = None
        for attempt in range(5):  # several workers starting at once race on migrations / collection creation
            try:
                _index = Index(st)
                break
            except Exception as exc:  # noqa: BLE001 - retried, then raised
                last = exc
                logger.warning("opening the index failed (attempt %d): %s", attempt + 1, exc)
                time.sleep(1 + attempt)
        else:
            raise last  # type: ignore[misc]
        maybe_fp16(_index, st)
        logger.info("index open: model %s, providers %s, store %s", _index.spec.model_id,
                    _index.embedder.providers, st.milvus_target)
    return _index


@worker_process_init.connect(weak=False)
def _open_index(**_: object) -> None:
    get_index()


@worker_process_shutdown.connect(weak=False)
def _close_index(**_: object) -> None:
    global _index
    if _index is not None:
        try:
            _index.close()
        finally:
            _index = None


logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
