"""The opened parts of an index: settings, catalog, vector store and embedder, and the link rule they set.

Every step of the core (``indexer/ingest.py`` and the modules it calls) takes a ``Parts``; ``Index`` adds the
methods callers use on top of it.
"""
from __future__ import annotations

from indexer import features
from indexer.catalog import Catalog
from indexer.config import Settings
from indexer.embedder import OnnxEmbedder
from indexer.linkrule import LinkRule, rule_of
from indexer.vectors import VectorStore


class Parts:
    """An opened dupesift index: catalog + vector store (+ embedder, loaded on first use)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        settings.ensure_dirs()
        self.catalog = Catalog(settings.sqlalchemy_url, threads=settings.api_threads)
        self._embedder: OnnxEmbedder | None = None
        self.spec = self.embedder.spec
        self.store = VectorStore(settings.milvus_target, alias=settings.collection, dim=self.spec.dim,
                                 model_id=self.spec.model_id, token=settings.milvus_token)

    @property
    def embedder(self) -> OnnxEmbedder:
        if self._embedder is None:
            self._embedder = OnnxEmbedder(self.settings.model_path, threads=self.settings.onnx_threads)
        return self._embedder

    @embedder.setter
    def embedder(self, embedder: OnnxEmbedder) -> None:
        """Use another embedder of the same model (e.g. its fp16 copy on a GPU worker): same weights, same id."""
        if embedder.spec.model_id != self.spec.model_id:
            raise ValueError(f"embedder of {embedder.spec.model_id}, index of {self.spec.model_id}")
        self._embedder = embedder

    @property
    def threshold(self) -> float:
        t = self.settings.threshold
        return float(self.spec.threshold if t is None else t)

    @property
    def rule(self) -> LinkRule:
        """The link rule at this index's threshold and settings (``indexer/linkrule.py``)."""
        return rule_of(self.settings, self.threshold)

    @property
    def link_rule(self) -> str:
        """What decides a pair besides the threshold (stored with the pairs: a change relinks)."""
        return f"{self.rule.describe()}; {self.settings.verify_per_photo} per photo, {self.settings.verify_per_page} per page; features v{features.VERSION}"

    def close(self) -> None:
        self.store.close()
        self.catalog.dispose()
