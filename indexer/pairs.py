"""Neighbour pairs within the duplicate threshold: faiss for the bulk pass, Milvus for new photos."""
from __future__ import annotations

import numpy as np

from indexer.vectors import VectorStore

PairList = list[tuple[int, int, float]]  # (a, b, cosine) with a < b


def _keep(best: dict[tuple[int, int], float], a: int, b: int, s: float) -> None:
    """Record pair (a, b) once, as (smaller id, larger id), with its highest similarity; no self-pairs."""
    if a != b:
        key = (a, b) if a < b else (b, a)
        if s > best.get(key, -2.0):
            best[key] = s


def _canonical(pairs: PairList) -> PairList:
    best: dict[tuple[int, int], float] = {}
    for a, b, s in pairs:
        _keep(best, a, b, s)
    return [(a, b, s) for (a, b), s in sorted(best.items())]


def _capped(hits: list[tuple[int, float]], sure: float | None, band_k: int | None) -> list[tuple[int, float]]:
    """One photo's hits: every one at or above ``sure``, and its ``band_k`` most similar below it."""
    if sure is None or band_k is None:
        return hits
    above = [h for h in hits if h[1] >= sure]
    below = sorted((h for h in hits if h[1] < sure), key=lambda h: -h[1])[:band_k]
    return above + below


def pairs_faiss(ids: np.ndarray, vectors: np.ndarray, query_ids: np.ndarray, query_vectors: np.ndarray,
                threshold: float, *, sure: float | None = None, band_k: int | None = None) -> PairList:
    """Exact pairs (query × all) with cosine >= threshold, by faiss range search on an IndexFlatIP.

    With ``sure`` and ``band_k``: of a query's pairs below ``sure`` (the verification band), only its
    ``band_k`` most similar are kept, so that a library of many look-alikes gives pairs in proportion to its
    photos, not to their square."""
    import faiss

    if len(ids) == 0 or len(query_ids) == 0:
        return []
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    best: dict[tuple[int, int], float] = {}  # a pair found from both ends is kept once
    step = 4096
    for start in range(0, len(query_ids), step):
        q = np.ascontiguousarray(query_vectors[start : start + step], dtype=np.float32)
        # faiss' range search keeps scores strictly greater than the radius; nudge it to make >= inclusive.
        lims, sims, idx = index.range_search(q, float(np.nextafter(np.float32(threshold), np.float32(-2))))
        for row in range(len(q)):
            qa = int(query_ids[start + row])
            hits = [(int(ids[j]), float(min(s, 1.0))) for j, s in
                    zip(idx[lims[row] : lims[row + 1]], sims[lims[row] : lims[row + 1]]) if s >= threshold]
            for j, s in _capped(hits, sure, band_k):
                _keep(best, qa, j, s)
    return [(a, b, s) for (a, b), s in sorted(best.items())]


def pairs_all(ids: np.ndarray, vectors: np.ndarray, threshold: float) -> PairList:
    """Every pair in the collection within the threshold (the bulk pass)."""
    return pairs_faiss(ids, vectors, ids, vectors, threshold)


def pairs_milvus(store: VectorStore, query_ids: list[int], query_vectors: np.ndarray, threshold: float,
                 k: int, *, sure: float | None = None, band_k: int | None = None) -> PairList:
    """Pairs of the new photos against everything stored, by batched Milvus search (top ``k`` per photo;
    ``sure`` and ``band_k`` as for ``pairs_faiss``)."""
    hits = store.neighbours_within(query_vectors, threshold, k)
    return _canonical([(int(a), j, min(s, 1.0)) for a, row in zip(query_ids, hits)
                       for j, s in _capped([(int(j), float(s)) for j, s in row], sure, band_k)])
