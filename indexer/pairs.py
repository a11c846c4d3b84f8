"""Neighbour pairs within the duplicate threshold: faiss for the bulk pass, Milvus for new photos."""
from __future__ import annotations

import numpy as np

from indexer.vectors import VectorStore

PairList = list[tuple[int, int, float]]  # (a, b, cosine) with a < b
TOPK_START = 64  # first k of a capped search; grown eightfold for the queries it cuts short


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


def _complete(sims: np.ndarray, k: int, total: int, threshold: float, sure: float, band_k: int) -> bool:
    """Whether one query's top ``k`` (descending) holds every hit ``_capped`` keeps: all of them down to
    ``threshold``, or every one at or above ``sure`` and ``band_k`` more below it."""
    return k >= total or sims[-1] < threshold or int((sims < sure).sum()) >= band_k


def _capped_topk(index, vectors: np.ndarray, threshold: float, sure: float, band_k: int, k0: int
                 ) -> list[list[tuple[int, float]]]:
    """Each query's hits down to ``threshold`` that ``_capped`` keeps, by top-k search that grows k only
    for the queries whose top k may still cut one off. A wide band then costs k per photo, not every
    look-alike above its floor (a range search returns those all: thousands per photo in a large library)."""
    total = index.ntotal
    out: list[list[tuple[int, float]]] = [[] for _ in range(len(vectors))]
    todo, k = np.arange(len(vectors)), min(max(k0, band_k + 1), total)
    while len(todo):
        sims, idx = index.search(np.ascontiguousarray(vectors[todo]), k)
        again = []
        for row, q in enumerate(todo):
            if _complete(sims[row], k, total, threshold, sure, band_k):
                out[q] = [(int(j), float(v)) for j, v in zip(idx[row], sims[row]) if j >= 0 and v >= threshold]
            else:
                again.append(q)
        todo, k = np.asarray(again, dtype=np.int64), min(k * 8, total)
    return out


def pairs_faiss(ids: np.ndarray, vectors: np.ndarray, query_ids: np.ndarray, query_vectors: np.ndarray,
                threshold: float, *, sure: float | None = None, band_k: int | None = None) -> PairList:
    """Exact pairs (query × all) with cosine >= threshold on an IndexFlatIP: a range search, or with ``sure``
    and ``band_k`` a growing top-k search.

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
        if sure is not None and band_k is not None:
            rows = _capped_topk(index, q, threshold, sure, band_k, TOPK_START)
        else:
            # faiss' range search keeps scores strictly greater than the radius; nudge it to make >= inclusive.
            lims, sims, idx = index.range_search(q, float(np.nextafter(np.float32(threshold), np.float32(-2))))
            rows = [[(int(j), float(s)) for j, s in zip(idx[lims[r] : lims[r + 1]], sims[lims[r] : lims[r + 1]])
                     if s >= threshold] for r in range(len(q))]
        for row, hits in enumerate(rows):
            qa = int(query_ids[start + row])
            for j, s in _capped([(int(ids[j]), min(s, 1.0)) for j, s in hits], sure, band_k):
                _keep(best, qa, j, s)
    return [(a, b, s) for (a, b), s in sorted(best.items())]


def pairs_all(ids: np.ndarray, vectors: np.ndarray, threshold: float) -> PairList:
    """Every pair in the collection within the threshold (the bulk pass)."""
    return pairs_faiss(ids, vectors, ids, vectors, threshold)


def pairs_milvus(store: VectorStore, query_ids: list[int], query_vectors: np.ndarray, threshold: float,
                 k: int, *, sure: float | None = None, band_k: int | None = None) -> PairList:
    """Pairs of the new photos against everything stored, by batched Milvus search (top ``k`` per photo;
    ``sure`` and ``band_k`` as for ``pairs_faiss``)."""
    hits = store.neighbours_within(query_vectors, threshold, k, sure=sure, band_k=band_k)
    return _canonical([(int(a), j, min(s, 1.0)) for a, row in zip(query_ids, hits)
                       for j, s in _capped([(int(j), float(s)) for j, s in row], sure, band_k)])
