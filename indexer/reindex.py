"""The nightly reindex: rescan every registered root; rebuild the vectors when the model changed.

New and changed files are embedded, deleted ones removed, pairs and groups updated (this is
``Index.ingest`` over all roots). When the configured model differs from the one the alias serves,
its vectors go to a new collection (``<alias>__<model id>``) while the alias keeps pointing at the
old one, so searches answer throughout; at the end the alias is swapped atomically (``alter_alias``)
and the old collection dropped. Interrupted halfway, the next run resumes: photos already embedded
with the new model are unchanged for ``_diff`` and are skipped.

Roots that no longer exist (an unmounted disk) are skipped, not emptied: deleting a whole library
because a mount point is missing would be worse than keeping stale rows one more night.
"""
from __future__ import annotations

import logging
import os

from sqlalchemy import select

from indexer.catalog import Catalog, Root
from indexer.jobs import create_job
from indexer.pipeline import Index, IngestSummary, Progress
from indexer.stages import drop_old_collections

log = logging.getLogger(__name__)


def registered_roots(catalog: Catalog) -> tuple[list[str], list[str]]:
    """(roots that exist, roots that are missing) among those ever ingested."""
    with catalog.session() as s:
        roots = list(s.scalars(select(Root.path).order_by(Root.path)))
    return [r for r in roots if os.path.exists(r)], [r for r in roots if not os.path.exists(r)]


def reindex_params(catalog: Catalog) -> dict:
    present, missing = registered_roots(catalog)
    return {"paths": present, "missing_roots": missing, "drop_old": True}


def reindex(index: Index, progress: Progress | None = None, job_id: str | None = None) -> IngestSummary:
    """Run a reindex in this process (the Celery task runs the same steps through the queue)."""
    params = reindex_params(index.catalog)
    for r in params["missing_roots"]:
        log.warning("root %s is missing: skipped (its photos stay in the catalog)", r)
    job_id = create_job(index.catalog, "reindex", params, job_id)
    if not params["paths"]:
        summary = IngestSummary(job_id=job_id)
        index._job_finish(summary, "done", "no registered roots")
        return summary
    summary = index.ingest(params["paths"], progress, job_id)  # activates (swaps) the alias at the end
    dropped = drop_old_collections(index)
    if dropped:
        log.info("dropped old collections %s", ", ".join(dropped))
    return summary
