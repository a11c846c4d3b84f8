"""Neighbour pairs (indexer/pairs.py): the verification band is capped per photo, the same way in both paths."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from indexer.pairs import pairs_faiss, pairs_milvus
from indexer.vectors import VectorStore

DIM, SURE, LOW = 16, 0.9, 0.5


def _library() -> tuple[np.ndarray, np.ndarray]:
    """Photo 0, two photos above SURE to it, ten in the band [LOW, SURE) at known cosines, five far ones."""
    base = np.zeros(DIM, np.float32)
    base[0] = 1
    cosines = [0.97, 0.95] + [0.85 - 0.03 * i for i in range(10)] + [0.1] * 5
    vecs = [base]
    for n, c in enumerate(cosines):
        other = np.zeros(DIM, np.float32)
        other[1 + n % (DIM - 1)] = 1  # orthogonal to base; photos share axes only far from each other
        v = c * base + np.sqrt(1 - c * c) * other
        vecs.append(v / np.linalg.norm(v))
    return np.arange(100, 100 + len(vecs), dtype=np.int64), np.stack(vecs).astype(np.float32)


def test_band_is_capped_per_photo_and_sure_pairs_are_not(tmp_path: Path) -> None:
    ids, vecs = _library()
    q = ids[:1]
    every = pairs_faiss(ids, vecs, q, vecs[:1], LOW)
    assert len(every) == 12 and all(a == 100 for a, _, _ in every)
    capped = pairs_faiss(ids, vecs, q, vecs[:1], LOW, sure=SURE, band_k=3)
    got = sorted((b, round(s, 3)) for _, b, s in capped)
    assert got == [(101, 0.97), (102, 0.95), (103, 0.85), (104, 0.82), (105, 0.79)]  # both sure, top 3 band
    store = VectorStore(str(tmp_path / "m.db"), alias="t", dim=DIM, model_id="m1")
    try:
        store.upsert(ids.tolist(), vecs)
        by_milvus = pairs_milvus(store, [100], vecs[:1], LOW, 64, sure=SURE, band_k=3)
        assert [(a, b) for a, b, _ in by_milvus] == [(a, b) for a, b, _ in capped]
    finally:
        store.close()


def test_a_pair_in_either_photos_top_band_is_kept() -> None:
    """Union: a pair beyond one photo's cap but within the other's is kept (found once, a < b)."""
    ids, vecs = _library()
    pairs = pairs_faiss(ids, vecs, ids, vecs, LOW, sure=SURE, band_k=1)
    band = {(a, b) for a, b, s in pairs if s < SURE}
    sim = vecs @ vecs.T
    expected = set()
    for i in range(len(ids)):  # each photo's single most similar band neighbour
        cand = [(sim[i, j], j) for j in range(len(ids)) if j != i and LOW <= sim[i, j] < SURE]
        if cand:
            j = max(cand)[1]
            expected.add((int(ids[min(i, j)]), int(ids[max(i, j)])))
    assert band == expected
    assert (100, 103) in band and (100, 112) in band  # 103 is 0's pick; 112 (cosine 0.58) picks 0 itself
    assert {(a, b) for a, b, s in pairs if s >= SURE} == {(100, 101), (100, 102), (101, 102)}


def test_milvus_keeps_the_same_capped_pairs_as_faiss(tmp_path: Path) -> None:
    ids, vecs = _library()
    store = VectorStore(str(tmp_path / "m.db"), alias="t", dim=DIM, model_id="m1")
    try:
        store.upsert(ids.tolist(), vecs)
        for k in (1, 2, None):
            by_faiss = pairs_faiss(ids, vecs, ids, vecs, LOW, sure=SURE, band_k=k)
            by_milvus = pairs_milvus(store, ids.tolist(), vecs, LOW, 64, sure=SURE, band_k=k)
            assert [(a, b) for a, b, _ in by_milvus] == [(a, b) for a, b, _ in by_faiss], k
    finally:
        store.close()


def test_the_link_step_caps_each_photos_candidates(settings_factory) -> None:
    """The link step's neighbour search (linking.neighbours), by faiss (bulk) and by Milvus (a few new photos),
    keeps a new photo's verify_per_photo most similar candidates down to the band below the threshold, however
    similar the rest (no pair is sure by its cosine alone), and measures its crowd: the similarity of its
    CROWD_K-th nearest photo."""
    from indexer.index import Index
    from indexer.linking import neighbours
    from indexer.linkrule import CROWD_K

    with Index(settings_factory(verify_per_photo=3)) as index:
        thr, band, dim = index.threshold, index.settings.verify_band, index.spec.dim
        cosines = [0.97, 0.95] + [thr - 0.02 - 0.015 * i for i in range(10)] + [0.1] * 3
        base = np.zeros(dim, np.float32)
        base[0] = 1
        vecs = [base]
        for n, c in enumerate(cosines):
            other = np.zeros(dim, np.float32)
            other[1 + n] = 1
            vecs.append(c * base + np.sqrt(1 - c * c) * other)
        vecs = np.stack(vecs).astype(np.float32)
        ids = list(range(1, len(vecs) + 1))
        index.store.upsert(ids, vecs)
        assert all(thr - band <= c < thr for c in cosines[2:12])  # ten band neighbours of photo 1
        expected = [(1, 2), (1, 3), (1, 4)]  # the 3 nearest, two of them above the threshold
        kth = sorted(cosines, reverse=True)[CROWD_K - 1]
        for bulk in (0.01, 1.0):  # one new photo of 16: faiss; then Milvus
            index.settings.bulk_fraction = bulk
            found, crowd = neighbours(index, [1], len(ids))
            assert [(a, b) for a, b, _ in found] == expected
            assert crowd == {1: pytest.approx(kth, abs=1e-5)}
        assert "3 per photo" in index.link_rule


def test_capped_search_grows_k_past_many_sure_pairs_and_matches_the_full_search(tmp_path: Path) -> None:
    """The capped search asks faiss and Milvus for a photo's top k only and grows k while it may cut a kept
    pair off: here 150 photos above SURE to one another (past the first k of 64) and a band below them.
    Both give what capping every pair down to the floor gives."""
    rng = np.random.default_rng(0)
    centre = rng.normal(size=DIM).astype(np.float32)
    centre /= np.linalg.norm(centre)
    vecs = []
    for c in [0.999] * 150 + list(np.linspace(0.85, 0.55, 40)):  # a tight cluster, then a spread band
        other = rng.normal(size=DIM).astype(np.float32)
        other -= (other @ centre) * centre
        other /= np.linalg.norm(other)
        vecs.append(c * centre + np.sqrt(1 - c * c) * other)
    vecs = np.stack(vecs + [rng.normal(size=DIM) for _ in range(60)]).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ids = np.arange(1000, 1000 + len(vecs), dtype=np.int64)
    sim = vecs @ vecs.T
    expected = set()
    for i in range(len(ids)):  # the reference: every hit down to LOW, then each photo's cap
        sure = [j for j in range(len(ids)) if j != i and sim[i, j] >= SURE]
        band = sorted((j for j in range(len(ids)) if j != i and LOW <= sim[i, j] < SURE), key=lambda j: -sim[i, j])
        expected |= {(int(ids[min(i, j)]), int(ids[max(i, j)])) for j in sure + band[:5]}
    by_faiss = pairs_faiss(ids, vecs, ids, vecs, LOW, sure=SURE, band_k=5)
    assert {(a, b) for a, b, _ in by_faiss} == expected
    assert sum(s >= SURE for _, _, s in by_faiss) == 150 * 149 // 2
    store = VectorStore(str(tmp_path / "m.db"), alias="t", dim=DIM, model_id="m1")
    try:
        store.upsert(ids.tolist(), vecs)
        by_milvus = pairs_milvus(store, ids.tolist(), vecs, LOW, 64, sure=SURE, band_k=5)
        assert [(a, b) for a, b, _ in by_milvus] == [(a, b) for a, b, _ in by_faiss]
    finally:
        store.close()
