"""``Index``: an opened index and what callers do with it. Each method hands over to the module of its job."""
from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Self

import numpy as np

from indexer import ingest, linking, report, search
from indexer.linking import LinkPlan
from indexer.parts import Parts
from indexer.progress import Progress
from indexer.removal import remove
from indexer.summary import IngestSummary


class Index(Parts):
    """Catalog + vector store + embedder, opened (``with Index(settings) as index: ...``)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ingest(self, paths: Iterable[str], progress: Progress | None = None, job_id: str | None = None, *,
               prune_empty: bool = False) -> IngestSummary:
        """Index every photo under ``paths``: new and changed files embedded, deleted ones removed
        (``indexer/ingest.py``)."""
        return ingest.run(self, paths, progress, job_id, prune_empty=prune_empty)

    def plan_link(self, summary: IngestSummary | None = None, progress: Progress | None = None) -> LinkPlan:
        return linking.plan_link(self, summary, progress)

    def link(self, summary: IngestSummary | None = None, plan: LinkPlan | None = None,
             progress: Progress | None = None) -> int:
        return linking.link(self, summary, plan, progress)

    def remove(self, image_ids: list[int]) -> None:
        remove(self, image_ids)

    def similar_to_pixels(self, pixels: np.ndarray, k: int = 10,
                          source: os.PathLike | bytes | None = None) -> list[dict]:
        return search.similar_to_pixels(self, pixels, k, source)

    def similar_to_vector(self, vec: np.ndarray, k: int = 10, exclude: int | None = None) -> list[dict]:
        return search.similar_to_vector(self, vec, k, exclude)

    def similar_to_id(self, image_id: int, k: int = 10) -> list[dict]:
        return search.similar_to_id(self, image_id, k)

    def groups(self, min_size: int = 2) -> list[dict]:
        return report.groups(self, min_size)

    def status(self) -> dict:
        return report.status(self)
