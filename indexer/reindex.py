"""The nightly reindex: rescan every registered root; rebuild the vectors when the model changed.

New and changed files are embedded, deleted ones removed, pairs and groups updated (this is
``Index.ingest`` over all roots). When the configured model differs from the one the alias serves
(the model id names the weights too: ``indexer.modelspec``), its vectors go to a new collection
(``<alias>__<model id>``) while the alias keeps pointing at the old one, so processes still on the old
model keep answering searches from it throughout (a process on the new model cannot compare its
vectors with the old ones: its searches raise ModelError until the swap). At the end the alias is
swapped atomically (``alter_alias``) and the old collection dropped, but only once every photo has a
vector of the new model (``modelswitch.drop_old_collections``): photos under a missing root keep theirs.
Interrupted halfway, the next run resumes: photos already embedded with the new model are unchanged
for the scan's diff and are skipped.

Roots that no longer exist (an unmounted disk) are skipped, not emptied: deleting a whole library
because a mount point is missing would be worse than keeping stale rows one more night.
"""
from __future__ import annotations

import logging
import os

from sqlalchemy import select

from indexer import ingest
from indexer.catalog import Catalog, Root
from indexer.jobs import create_job, finish_job
from indexer.parts import Parts
from indexer.progress import Progress
from indexer.summary import IngestSummary

log = logging.getLogger(__name__)


def registered_roots(catalog: Catalog) -> tuple[list[str], list[str]]:
    """(roots that exist, roots that are missing) among those ever ingested."""
    with catalog.session() as s:
        roots = list(s.scalars(select(Root.path).order_by(Root.path)))
    return [r for r in roots if os.path.exists(r)], [r for r in roots if not os.path.exists(r)]


def reindex_params(catalog: Catalog) -> dict:
    present, missing = registered_roots(catalog)
    return {"paths": present, "missing_roots": missing, "drop_old": True}


def reindex(ix: Parts, progress: Progress | None = None, job_id: str | None = None) -> IngestSummary:
    """Run a reindex in this process (the Celery task runs the same steps through the queue)."""
    params = reindex_params(ix.catalog)
    for r in params["missing_roots"]:
        log.warning("root %s is missing: skipped (its photos stay in the catalog)", r)
    job_id = create_job(ix.catalog, "reindex", params, job_id)
    if not params["paths"]:
        summary = IngestSummary(job_id=job_id)
        finish_job(ix.catalog, job_id, "done", summary.job_summary(), "no registered roots")
        return summary
    summary = ingest.run(ix, params["paths"], progress, job_id, drop_old=True)  # swaps the alias at the end
    if summary.dropped_collections:
        log.info("dropped old collections %s", ", ".join(summary.dropped_collections))
    return summary
