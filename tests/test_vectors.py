"""The vector store on real Milvus Lite: the in-memory search copy always answers like Milvus; searches go
through the alias and never compare one model's vectors with another's."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from indexer.errors import DupesiftError, ModelError
from indexer.vectors import VectorStore
from tests.conftest import milvus_server


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _milvus_topk(store: VectorStore, q: np.ndarray, k: int) -> list[list[int]]:
    res = store.client.search(store.collection, data=q.tolist(), limit=k, anns_field="vector",
                              search_params={"metric_type": "IP"})
    return [[int(h["id"]) for h in hits] for hits in res]


def test_memory_copy_follows_every_write_and_matches_milvus(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    dim, uri = 32, str(tmp_path / "milvus.db")
    store = VectorStore(uri, alias="t", dim=dim, model_id="m1")
    other = None
    try:
        ids, vecs = np.arange(1, 501), _unit(rng, 500, dim)
        store.upsert(ids[:300], vecs[:300])
        q = _unit(rng, 20, dim)
        first = store.search(q, 10)  # builds the copy from the store
        assert [[i for i, _ in hits] for hits in first] == _milvus_topk(store, q, 10)
        # writes after the build: new rows, a changed vector, deletions
        store.upsert(ids[300:], vecs[300:])
        changed = _unit(rng, 1, dim)
        store.upsert([7], changed)
        store.delete([1, 2, 3])
        q = np.concatenate([q, changed, vecs[:3]])
        got = store.search(q, 10)
        assert [[i for i, _ in hits] for hits in got] == _milvus_topk(store, q, 10)
        assert got[20][0][0] == 7 and abs(got[20][0][1] - 1.0) < 1e-5
        assert all(i not in (1, 2, 3) for hits in got for i, _ in hits)
        # reads come from the copy once built, and agree with Milvus
        from_mem = store.get([7, 1, 400, 9999])
        assert sorted(from_mem) == [7, 400] and np.allclose(from_mem[7], changed[0], atol=1e-6)
        direct = {int(r["id"]): r["vector"] for r in store.client.get(store.collection, ids=[7, 400])}
        assert all(np.allclose(from_mem[i], direct[i], atol=1e-6) for i in (7, 400))
        # brute force agrees on the scores too
        live = {int(i): v for i, v in zip(ids, vecs) if i not in (1, 2, 3)}
        live[7] = changed[0]
        keys = np.array(sorted(live))
        mat = np.stack([live[int(i)] for i in keys])
        best = np.argsort(-(q @ mat.T), axis=1)[:, :10]
        assert [[int(keys[j]) for j in row] for row in best] == [[i for i, _ in hits] for hits in got]
        # a second store on the same file in this process shares the copy; another model's is separate
        other = VectorStore(uri, alias="t", dim=dim, model_id="m2")
        assert other.search(q, 5) == [[] for _ in q]
        assert store.search(q, 5) == [hits[:5] for hits in got]
    finally:
        if other is not None:
            other.close()
        store.close()
    reopened = VectorStore(uri, alias="t", dim=dim, model_id="m1")  # rebuilt from the file
    try:
        assert [[i for i, _ in hits] for hits in reopened.search(q, 10)] == [[i for i, _ in hits] for hits in got]
    finally:
        reopened.close()


@pytest.fixture(params=["lite", "server"])
def store_uri(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A Milvus Lite file, or a milvus-lite server (the Milvus server protocol, as a deployment has)."""
    if request.param == "lite":
        yield str(tmp_path / "milvus.db")
    else:
        with milvus_server(tmp_path / "milvus") as uri:
            yield uri


def test_search_answers_through_the_alias_and_only_with_its_own_model(store_uri: str) -> None:
    """During a rebuild the old model's process answers from the alias; the new model's process links on its
    own collection but cannot search the old one; after the swap the roles turn; nothing searchable is
    dropped while the alias points at it, and a process left on a dropped collection gets a ModelError."""
    rng = np.random.default_rng(1)
    dim = 16
    old = VectorStore(store_uri, alias="t", dim=dim, model_id="m1")
    new = VectorStore(store_uri, alias="t", dim=dim, model_id="m2")
    try:
        old_vecs, new_vecs = _unit(rng, 50, dim), _unit(rng, 50, dim)
        old.upsert(range(1, 51), old_vecs)
        old.activate()
        new.upsert(range(1, 21), new_vecs[:20])  # the rebuild is under way
        assert old.search(old_vecs[:2], 1) == [[(1, pytest.approx(1.0, abs=1e-5))], [(2, pytest.approx(1.0, abs=1e-5))]]
        with pytest.raises(ModelError, match="another model"):
            new.search(new_vecs[:1], 3)  # its vectors are not comparable with the alias's
        assert [j for j, _ in new.neighbours_within(new_vecs[:1], 0.99, 5)[0]] == [1]  # linking: its own collection
        with pytest.raises(DupesiftError, match="alias"):
            new.drop(old.collection)

        new.upsert(range(21, 51), new_vecs[20:])
        new.activate()  # the swap
        assert [h[0][0] for h in new.search(new_vecs[30:32], 1)] == [31, 32]
        with pytest.raises(ModelError, match="another model"):
            old.search(old_vecs[:1], 1)  # never its old-model queries against the new vectors
        new.drop(old.collection)
        assert new.other_collections() == []
        with pytest.raises(ModelError, match="another model"):
            old.search(old_vecs[:1], 1)  # a clear error, not "collection not found"
    finally:
        new.close()
        old.close()
