"""The one ingest flow: prepare (scan, diff) -> embed batches -> link -> finish.

``run`` calls the steps in order in this process (the command line, the API's background ingest, an in-process
reindex); the queue calls the same steps from separate worker processes, with the job row between them
(``indexer/stages.py``, for ``workers/tasks.py``).

Crash safety: a photo is registered (status ``pending``, id assigned) and committed before any work on it; its
vector is upserted under that id before the catalog marks it ``indexed``; pairs are searched for photos whose
``linked`` flag is still false. A killed run therefore repeats at most one batch, under the same ids, and never
loses or duplicates a photo. Nothing is forgotten on weak evidence (``indexer/scan.py``), and at the start of
every ingest the catalog is checked against the vector store: photos marked indexed whose vector is missing go
back to ``pending`` and are embedded again.
"""
from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import update

from indexer import jobs
from indexer.catalog import Root
from indexer.catalog.models import utcnow
from indexer.embedding import OnBatch, embed_batches
from indexer.errors import DupesiftError
from indexer.fsnames import to_text
from indexer.linking import LinkPlan
from indexer.linking import link as link_step
from indexer.modelswitch import (
    activate_if_complete,
    check_model_and_threshold,
    drop_old_collections,
    heal_store,
    needs_embedding,
)
from indexer.parts import Parts
from indexer.phases import JobPhases
from indexer.progress import Progress, Quiet
from indexer.remeasure import rechoose, remeasure
from indexer.removal import remove
from indexer.report import group_counts
from indexer.scan import diff, normalise_root, register_roots, scan
from indexer.summary import IngestSummary


@dataclass
class Prepared:
    """What ``prepare`` leaves for the other steps."""

    todo: list[int]  # pending photos to embed
    root_ids: dict[str, int]
    unreadable: list[dict] = field(default_factory=list)  # {"path", "reason", "message"}: not listed by the scan


def check_roots(paths: Iterable[str]) -> list[str]:
    """The roots to ingest, normalised; a DupesiftError names any that does not exist."""
    roots = [normalise_root(p) for p in paths]
    missing = [r for r in roots if not os.path.exists(r)]
    if missing:
        raise DupesiftError(f"no such file or folder: {', '.join(missing)}")
    return roots


def prepare(ix: Parts, roots: list[str], summary: IngestSummary, *, prune_empty: bool = False) -> Prepared:
    """Relink on a new model or rule, re-embed vectors the store lost, scan the roots, register new and changed
    files as pending and forget deleted ones. A root that had photos and now scans to none keeps them (with a
    warning) unless ``prune_empty``."""
    t = time.perf_counter()
    check_model_and_threshold(ix)
    healed = heal_store(ix)
    if healed:
        summary.healed += len(healed)
        summary.warnings.append(
            f"{len(healed)} photos were marked indexed but had no vector in {ix.store.collection} "
            "(vector store replaced or lost?): they are embedded again")
    root_ids = register_roots(ix.catalog, roots)
    result = scan(roots)
    unreadable = [{"path": to_text(p), "reason": "unreadable", "message": to_text(m)} for p, m in result.unreadable]
    unreadable += [{"path": to_text(p), "reason": "bad name", "message": m} for p, m in result.unstorable]
    summary.seen, summary.ignored, summary.ignored_why = len(result.files), result.ignored, dict(result.ignored_why)
    summary.failed.extend(unreadable)
    d = diff(ix.catalog, ix.spec.model_id, roots, root_ids, result.files,
             unreadable=[p for p, _ in result.unreadable], prune_empty=prune_empty)
    summary.unchanged, summary.changed = d.unchanged, summary.changed + d.changed
    summary.kept_unreadable += d.kept
    summary.warnings.extend(d.warnings)
    summary.timings.scan = time.perf_counter() - t
    if d.removed:
        remove(ix, d.removed)
        summary.removed = len(d.removed)
    return Prepared(d.todo, root_ids, unreadable)


def embed(ix: Parts, image_ids: list[int], summary: IngestSummary, progress: Progress | None = None,
          on_batch: OnBatch | None = None) -> tuple[int, int]:
    """Decode, embed and store pending photos, a committed batch at a time; returns (indexed, failed)."""
    return embed_batches(ix, image_ids, summary, progress, on_batch)


def link(ix: Parts, summary: IngestSummary, plan: LinkPlan | None = None, progress: Progress | None = None) -> int:
    """Keepers chosen by an older rule chosen again; pairs of every unlinked photo, and their groups
    (``indexer/linking.py``); then the keeper evidence of grouped photos measured by an older measure
    (``indexer/remeasure.py``)."""
    rechoose(ix, progress)  # before the link step: a fresh catalog has no group yet and only records the rule
    n = link_step(ix, summary, plan, progress)
    remeasure(ix, progress)
    return n


def finish(ix: Parts, summary: IngestSummary, root_ids: Iterable[int], *, drop_old: bool = False) -> None:
    """Mark the roots scanned, move the alias when this model's collection is complete (and with ``drop_old``
    drop the other models' collections once nothing needs them), and count what the library holds now."""
    with ix.catalog.session() as s:
        for rid in root_ids:
            s.execute(update(Root).where(Root.id == rid).values(last_scan_at=utcnow()))
    swapped = activate_if_complete(ix)  # not onto a collection missing other roots' photos (a model change)
    if drop_old:
        summary.dropped_collections = drop_old_collections(ix)
    with ix.catalog.session() as s:
        g = group_counts(s)
    summary.groups, summary.duplicates = g["groups"], g["duplicates"]
    summary.collection = ix.store.collection
    summary.needs_embedding = needs_embedding(ix)
    if summary.needs_embedding:
        n = sum(summary.needs_embedding.values())
        skips = ("search skips them" if swapped else
                 "searches keep answering from the previous model's index (this model's searches fail)")
        summary.warnings.append(
            f"{n} photos have no vector for the current model ({ix.spec.model_id}) yet: they are in no "
            f"duplicate group and {skips} until you run `dupesift ingest "
            + " ".join(summary.needs_embedding) + "` (or `dupesift reindex` for every root)")


def run(ix: Parts, paths: Iterable[str], progress: Progress | None = None, job_id: str | None = None, *,
        prune_empty: bool = False, drop_old: bool = False) -> IngestSummary:
    """Index every photo under ``paths`` in this process: new and changed files embedded, deleted ones
    removed, pairs and groups updated. The job row (``job_id``'s, created if new) follows it."""
    progress = progress or Quiet()
    t0 = time.perf_counter()
    roots = check_roots(paths)
    summary = IngestSummary(job_id=job_id or str(uuid.uuid4()))
    cat, job = ix.catalog, summary.job_id
    jobs.start_job(cat, job, "ingest", {"paths": roots})
    phases = JobPhases(cat, job, forward=progress)  # the job row says which step runs (indexer/phases.py)
    try:
        phases.begin("scan")
        prepared = prepare(ix, roots, summary, prune_empty=prune_empty)
        phases.end(done=summary.seen)
        phases.begin("embed", total=len(prepared.todo))
        phases.start(len(prepared.todo), "indexing")
        jobs.set_total(cat, job, len(prepared.todo))
        embed(ix, prepared.todo, summary, phases,
              on_batch=lambda done, failed: jobs.set_progress(cat, job, done, failed))
        phases.begin("link")
        link(ix, summary, progress=phases)
        phases.begin("finish")
        finish(ix, summary, prepared.root_ids.values(), drop_old=drop_old)
        phases.end()
    except BaseException as exc:
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        jobs.finish_job(cat, job, status, summary.job_summary(), str(exc))
        raise
    summary.seconds = round(time.perf_counter() - t0, 3)
    jobs.finish_job(cat, job, "done", summary.job_summary())
    return summary
