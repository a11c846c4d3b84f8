"""An exact in-memory faiss copy of a Milvus Lite collection, for top-k search.

Why: Milvus Lite searches unsealed (growing) segments by brute force through a slow path. Measured
here at 100k x 256-d vectors: 3.9 s per query right after inserting, 195 ms (FLAT) / 68 ms
(IVF_FLAT, nprobe 16) only after a 7.5 s flush; faiss' IndexFlatIP answers the same query exactly
in a few milliseconds. A Lite file is owned by one process (its lock), so every write to it passes
through this process and the copy cannot go stale. Milvus stays the store of record; a Milvus
server is searched directly. Memory: 4 bytes x dim per vector (100 MB at 100k x 256-d).
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator

import numpy as np

Loader = Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]]


class MemIndex:
    """Exact inner-product search over (id, vector) rows, filled from the store on first search."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._index = None
        self._lock = threading.Lock()

    def _built(self, load: Loader):
        if self._index is None:
            import faiss

            index = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
            for ids, vecs in load():
                index.add_with_ids(np.ascontiguousarray(vecs, dtype=np.float32), ids.astype(np.int64))
            self._index = index
        return self._index

    def warm(self, load: Loader) -> None:
        """Build the copy now (a server does this at start-up, off the request path)."""
        with self._lock:
            self._built(load)

    def upsert(self, ids: Iterable[int], vectors: np.ndarray) -> None:
        with self._lock:
            if self._index is None:
                return  # not built yet: the build reads the store, which already has these rows
            ids = np.fromiter((int(i) for i in ids), dtype=np.int64)
            self._index.remove_ids(ids)
            self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)

    def delete(self, ids: Iterable[int]) -> None:
        with self._lock:
            if self._index is not None:
                self._index.remove_ids(np.fromiter((int(i) for i in ids), dtype=np.int64))

    def get(self, ids: Iterable[int]) -> dict[int, np.ndarray] | None:
        """Stored vectors by id from memory (missing ids absent), or None before the copy is built."""
        with self._lock:
            if self._index is None:
                return None
            out = {}
            for i in ids:
                try:
                    out[int(i)] = self._index.reconstruct(int(i))
                except RuntimeError:  # not stored
                    pass
            return out

    def search(self, vectors: np.ndarray, k: int, load: Loader) -> list[list[tuple[int, float]]]:
        """Top-k (id, cosine) per query, best first; ``load`` yields every stored row for the build."""
        with self._lock:
            index = self._built(load)
            if index.ntotal == 0:
                return [[] for _ in range(len(vectors))]
            scores, ids = index.search(np.ascontiguousarray(vectors, dtype=np.float32), min(k, index.ntotal))
        return [[(int(i), float(s)) for i, s in zip(row_ids, row_scores) if i >= 0]
                for row_ids, row_scores in zip(ids, scores)]
