"""An ingest split into steps that separate processes can run: plan -> embed batches -> finish.

This is the queue's version of ``Index.ingest`` (same parts, same catalog states), with no Celery
in it: ``workers/tasks.py`` calls these. Every step is idempotent:

- ``plan`` registers files and records the job's image ids; run twice, it registers nothing twice
  (paths are unique) and re-plans only what is still pending.
- ``embed`` only touches ids still ``pending``; a batch delivered again after its commit is a no-op,
  one delivered again before its commit redoes the same upserts under the same ids.
- ``finish`` links and groups once nothing of the job is pending. It runs under the catalog lock
  ``groups``, so concurrent finishers (and jobs) never interleave their pair and group writes.
"""
from __future__ import annotations

import logging
import os
import time

from sqlalchemy import func, select, update

from indexer.catalog import Image, ImageStatus, Job, Pair, Root
from indexer.catalog.models import utcnow
from indexer.errors import DupesiftError
from indexer.jobs import FINISHED, add_progress, count_in_ranges, in_ranges, set_status, to_ranges
from indexer.locks import catalog_lock
from indexer.pipeline import Index, IngestSummary, _chunks
from indexer.scan import normalise_root, scan

log = logging.getLogger(__name__)


def plan(index: Index, job_id: str) -> list[list[int]] | None:
    """Scan the job's roots, register new/changed files, remove deleted ones; return the batches.
    None when the job row is gone or already finished (the task then returns quietly)."""
    cat = index.catalog
    with cat.session() as s:
        job = s.get(Job, job_id)
        if job is None or job.status in FINISHED:
            return None
        params = dict(job.params or {})
        if job.started_at is None:
            job.started_at = utcnow()
        job.status, job.updated_at = "running", utcnow()
    roots = [normalise_root(p) for p in params.get("paths", [])]
    missing = [r for r in roots if not os.path.exists(r)]
    if missing:
        raise DupesiftError(f"no such file or folder: {', '.join(missing)}")
    summary = IngestSummary(job_id=job_id)
    t = time.perf_counter()
    with catalog_lock(cat, "groups"):  # may delete pairs (new model/threshold): not while a finisher links
        index._check_model_and_threshold()
    index.heal_store(summary)  # indexed photos whose vector the store lost go back to pending (and into todo)
    root_ids = index._register_roots(roots)
    result = scan(roots)
    todo, removed, unchanged = index._diff(roots, root_ids, result.files, summary,
                                           unreadable=[p for p, _ in result.unreadable],
                                           prune_empty=bool(params.get("prune_empty")))
    if removed:
        with catalog_lock(cat, "groups"):  # remove() regroups
            index.remove(removed)
    previous = [i for a, b in params.get("ranges", []) for i in range(a, b + 1)]
    ids = sorted(set(previous) | set(todo))
    params.update(
        ranges=to_ranges(ids), root_ids=sorted(root_ids.values()), planned=True,
        unreadable=[{"path": p, "reason": "unreadable", "message": m} for p, m in result.unreadable][:1000])
    partial = {"seen": len(result.files), "ignored": result.ignored, "unchanged": unchanged,
               "changed": summary.changed, "removed": len(removed), "kept_unreadable": summary.kept_unreadable,
               "healed": summary.healed, "warnings": summary.warnings, "scan_s": round(time.perf_counter() - t, 3)}
    if params.get("partial"):  # a redelivered plan: keep what the first run saw removed/changed/healed
        first = params["partial"]
        for k in ("removed", "changed", "healed"):
            partial[k] += first.get(k, 0)
        partial["warnings"] = [*first.get("warnings", []),
                               *(w for w in summary.warnings if w not in first.get("warnings", []))]
    params["partial"] = partial
    with cat.session() as s:
        s.execute(update(Job).where(Job.id == job_id).values(params=params, total=len(ids), updated_at=utcnow()))
    return [list(c) for c in _chunks(todo, index.settings.batch_size)]


def embed(index: Index, job_id: str | None, image_ids: list[int]) -> tuple[int, int]:
    """Decode, embed and store the ids that are still pending; returns (indexed, failed)."""
    with index.catalog.session() as s:
        pending = sorted(s.scalars(select(Image.id).where(Image.id.in_([int(i) for i in image_ids]),
                                                          Image.status == ImageStatus.pending)))
    if not pending:
        return 0, 0
    summary = index.process(pending, summary=IngestSummary(job_id=None))  # job_id None: no absolute progress
    n_ok, n_bad = summary.indexed, len(summary.failed)
    if job_id:
        add_progress(index.catalog, job_id, n_ok, n_bad)
    return n_ok, n_bad


def pending_count(index: Index, job_id: str) -> int | None:
    """Images of the job still waiting; None when the job is gone, finished or not planned yet."""
    with index.catalog.session() as s:
        job = s.get(Job, job_id)
        if job is None or job.status in FINISHED or not (job.params or {}).get("planned"):
            return None
        return count_in_ranges(s, job.params.get("ranges", []), Image.status == ImageStatus.pending)


def link(index: Index) -> int:
    """Pairs for every unlinked photo, then their groups (the writes serialized across processes by
    ``Index.link``, which reads files for verification before it takes the lock)."""
    return index.link()


def finish(index: Index, job_id: str) -> bool:
    """When nothing of the job is pending: link, group, swap the alias, close the job. True if closed now."""
    if pending_count(index, job_id) != 0:
        return False
    cat = index.catalog
    summary = IngestSummary(job_id=job_id)
    plan = index.plan_link(summary)  # searching and verifying before the lock: decisions on groups never wait on it
    with catalog_lock(cat, "groups"):
        with cat.session() as s:
            job = s.get(Job, job_id)
            if job is None or job.status in FINISHED:
                return False  # another finisher closed it while we waited for the lock
            params, started = dict(job.params or {}), job.started_at
        index.link(summary, plan)
        with cat.session() as s:
            for rid in params.get("root_ids", []):
                s.execute(update(Root).where(Root.id == rid).values(last_scan_at=utcnow()))
        index.activate_if_complete()  # not onto a collection missing other roots' photos (a model change)
        dropped = drop_old_collections(index) if params.get("drop_old") else []
        ranges = params.get("ranges", [])
        with cat.session() as s:
            indexed = count_in_ranges(s, ranges, Image.status == ImageStatus.indexed)
            failed = count_in_ranges(s, ranges, Image.status == ImageStatus.failed)
            exact = 0
            for start in range(0, len(ranges), 200):
                exact += s.scalar(select(func.count()).select_from(Pair).where(
                    Pair.kind == "exact", in_ranges(Pair.b_id, ranges[start:start + 200]))) or 0
        g = index.group_counts()
        unreadable = len(params.get("unreadable", []))
        now = utcnow()
        if started is not None and started.tzinfo is None:
            started = started.replace(tzinfo=now.tzinfo)
        out = dict(params.get("partial", {}))
        out.update(needs_embedding=index.needs_embedding(), indexed=indexed, exact_copies=exact, failed=failed + unreadable, groups=g["groups"],
                   duplicates=g["duplicates"], seconds=round((now - started).total_seconds(), 3) if started else 0.0,
                   job_id=job_id, dropped_collections=dropped, collection=index.store.collection,
                   link_s=round(summary.timings.link, 3), group_s=round(summary.timings.group, 3),
                   verified_pairs=summary.verified_pairs, verify_s=round(summary.timings.verify, 3))
        out["warnings"] = [*out.get("warnings", []), *summary.warnings]
        with cat.session() as s:
            s.execute(update(Job).where(Job.id == job_id).values(
                status="done", done=indexed, failed=failed + unreadable, summary=out, finished_at=now, updated_at=now))
    return True


def fail(index: Index, job_id: str, message: str) -> None:
    set_status(index.catalog, job_id, "failed", message)


def drop_old_collections(index: Index) -> list[str]:
    """Once the swap is done, drop every other model's collection. Done means: the alias points at this
    model's collection (no search answers from another one: ``VectorStore.search``), and no photo's
    latest vector is in another collection (a photo embedded by another model, not yet re-embedded: under
    a missing root, or by a worker still on the old model). Until then nothing is dropped."""
    store = index.store
    if store.active_collection() != store.collection:
        return []
    others = index.other_model_photos()  # under missing roots too: their only vectors are in the old ones
    if others:
        log.info("keeping old collections: %d photos have no vector of %s yet", others, index.spec.model_id)
        return []
    dropped = []
    for name in store.other_collections():
        store.drop(name)
        dropped.append(name)
    return dropped
