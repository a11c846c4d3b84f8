"""The ingest flow (``indexer/ingest.py``) for the queue: its steps run by separate processes, with the job
row between them. No Celery in it: ``workers/tasks.py`` calls these. Every step is idempotent:

- ``plan`` registers files and records the job's image ids; run twice, it registers nothing twice
  (paths are unique) and re-plans only what is still pending.
- ``embed`` only touches ids still ``pending``; a batch delivered again after its commit is a no-op,
  one delivered again before its commit redoes the same upserts under the same ids.
- ``finish`` links and groups once nothing of the job is pending. It runs under the catalog lock
  ``groups``, so concurrent finishers (and jobs) never interleave their pair and group writes.
"""
from __future__ import annotations

from sqlalchemy import select

from indexer import ingest, jobs
from indexer.batching import chunks
from indexer.catalog import Image, ImageStatus, Pair
from indexer.catalog.models import utcnow
from indexer.catalog.queries import scalars_in
from indexer.linking import plan_link
from indexer.locks import catalog_lock
from indexer.parts import Parts
from indexer.summary import IngestSummary

PLANNED = ("seen", "ignored", "ignored_why", "unchanged", "changed", "removed", "kept_unreadable", "healed", "warnings")
RECOUNTED = ("removed", "changed", "healed")  # a redelivered plan adds to what the first run saw


def plan(ix: Parts, job_id: str) -> list[list[int]] | None:
    """Scan the job's roots, register new/changed files, remove deleted ones; return the batches.
    None when the job row is gone or already finished (the task then returns quietly)."""
    params = jobs.take_up(ix.catalog, job_id)
    if params is None:
        return None
    roots = ingest.check_roots(params.get("paths", []))
    summary = IngestSummary(job_id=job_id)
    prepared = ingest.prepare(ix, roots, summary, prune_empty=bool(params.get("prune_empty")))
    previous = [i for a, b in params.get("ranges", []) for i in range(a, b + 1)]
    ids = sorted(set(previous) | set(prepared.todo))
    params.update(ranges=jobs.to_ranges(ids), root_ids=sorted(prepared.root_ids.values()), planned=True,
                  unreadable=prepared.unreadable[:1000])
    partial = {k: getattr(summary, k) for k in PLANNED} | {"scan_s": round(summary.timings.scan, 3)}
    if params.get("partial"):  # a redelivered plan: keep what the first run saw removed/changed/healed
        first = params["partial"]
        for k in RECOUNTED:
            partial[k] += first.get(k, 0)
        partial["warnings"] = [*first.get("warnings", []),
                               *(w for w in summary.warnings if w not in first.get("warnings", []))]
    params["partial"] = partial
    jobs.set_params(ix.catalog, job_id, params, total=len(ids))
    return list(chunks(prepared.todo, ix.settings.batch_size))


def embed(ix: Parts, job_id: str | None, image_ids: list[int]) -> tuple[int, int]:
    """Decode, embed and store the ids that are still pending; returns (indexed, failed)."""
    with ix.catalog.session() as s:
        pending = list(scalars_in(s, select(Image.id).where(Image.status == ImageStatus.pending), Image.id,
                                  {int(i) for i in image_ids}))
    if not pending:
        return 0, 0
    n_ok, n_bad = ingest.embed(ix, sorted(pending), IngestSummary())
    if job_id:
        jobs.add_progress(ix.catalog, job_id, n_ok, n_bad)
    return n_ok, n_bad


def pending_count(ix: Parts, job_id: str) -> int | None:
    """Images of the job still waiting; None when the job is gone, finished or not planned yet."""
    state = jobs.unfinished(ix.catalog, job_id)
    if state is None or not state[0].get("planned"):
        return None
    with ix.catalog.session() as s:
        return jobs.count_in_ranges(s, state[0].get("ranges", []), Image.status == ImageStatus.pending)


def finish(ix: Parts, job_id: str) -> bool:
    """When nothing of the job is pending: link, group, swap the alias, close the job. True if closed now."""
    if pending_count(ix, job_id) != 0:
        return False
    cat = ix.catalog
    summary = IngestSummary(job_id=job_id)
    link_plan = plan_link(ix, summary)  # searching and verifying before the lock: decisions on groups never wait
    with catalog_lock(cat, "groups"):
        state = jobs.unfinished(cat, job_id)
        if state is None:
            return False  # another finisher closed it while we waited for the lock
        params, started = state
        ingest.link(ix, summary, link_plan)
        ingest.finish(ix, summary, params.get("root_ids", []), drop_old=bool(params.get("drop_old")))
        ranges = params.get("ranges", [])
        with cat.session() as s:
            indexed = jobs.count_in_ranges(s, ranges, Image.status == ImageStatus.indexed)
            failed = jobs.count_in_ranges(s, ranges, Image.status == ImageStatus.failed)
            exact = jobs.count_in_ranges(s, ranges, Pair.kind == "exact", column=Pair.b_id)
        partial = params.get("partial", {})
        warnings = [*partial.get("warnings", []), *summary.warnings]
        for k in PLANNED:
            setattr(summary, k, partial.get(k, getattr(summary, k)))
        summary.warnings, summary.timings.scan = warnings, partial.get("scan_s", 0.0)
        summary.indexed, summary.exact_copies = indexed, exact
        failed += len(params.get("unreadable", []))
        summary.seconds = round((utcnow() - started).total_seconds(), 3) if started else 0.0
        jobs.finish_job(cat, job_id, "done", summary.job_summary(failed=failed), done=indexed, failed=failed)
    return True
