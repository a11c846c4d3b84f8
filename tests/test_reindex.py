"""The reindex: rescans every root; a model switch builds a new collection behind the alias while
search keeps answering from the old one, swaps atomically, drops the old one, and resumes when cut."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from indexer.config import DEFAULT_MODEL
from indexer.pipeline import Index
from indexer.reindex import reindex
from tests.conftest import mild_copies, photo_files
from tests.conftest import milvus_server as start_milvus_server

pytestmark = pytest.mark.slow


@pytest.fixture
def milvus_server(tmp_path: Path):
    with start_milvus_server(tmp_path / "milvus") as uri:
        yield uri


def library(root: Path) -> Path:
    photos = photo_files(10, offset=800)
    root.mkdir()
    for k, src in enumerate(photos[:2]):
        shutil.copy(src, root / f"orig{k}.jpg")
        mild_copies(src, root / f"edits{k}", f"c{k}")
    for k, src in enumerate(photos[2:]):
        shutil.copy(src, root / f"single{k}.jpg")
    return root  # 18 photos, 2 groups of 5


def groups(index: Index) -> list[list[str]]:
    return sorted(sorted(m["path"] for m in g["members"]) for g in index.groups())


def test_reindex_adds_changes_and_deletes(tmp_path: Path, settings_factory) -> None:
    root = library(tmp_path / "lib")
    with Index(settings_factory()) as index:
        index.ingest([str(root)])
        os.remove(root / "edits0" / "c0_small.jpg")
        shutil.copy(photo_files(1, offset=850)[0], root / "single0.jpg")
        shutil.copy(root / "orig1.jpg", root / "orig1-again.jpg")
        s = reindex(index)
        assert (s.removed, s.changed, s.indexed, s.unchanged) == (1, 1, 2, 16)
        gs = groups(index)
        assert len(gs) == 2 and str(root / "orig1-again.jpg") in gs[0] + gs[1]
        assert all(str(root / "edits0" / "c0_small.jpg") not in g for g in gs)
        assert index.store.count() == 18


class SearchWhileRebuilding:
    """Progress hook: at every batch, another client searches the alias; optionally dies after N batches."""

    def __init__(self, uri: str, alias: str, query: np.ndarray, expect_id: int, old: str, stop_after: int | None):
        from pymilvus import MilvusClient

        self.client, self.alias, self.query, self.expect, self.old = MilvusClient(uri), alias, query, expect_id, old
        self.stop_after, self.batches, self.answers = stop_after, 0, 0

    def start(self, total: int, description: str) -> None:
        pass

    def advance(self, done: int, failed: int) -> None:
        self.batches += 1
        assert self.alias in self.client.list_aliases(self.old)["aliases"]  # not swapped before the end
        hits = self.client.search(self.alias, data=[self.query.tolist()], limit=3, search_params={"metric_type": "IP"})
        assert hits[0][0]["id"] == self.expect and hits[0][0]["distance"] > 0.999
        self.answers += 1
        if self.stop_after and self.batches >= self.stop_after:
            raise KeyboardInterrupt  # the nightly run is cut halfway


def test_model_switch_rebuilds_behind_alias_and_resumes(tmp_path: Path, settings_factory, milvus_server) -> None:
    from indexer.modelspec import read_spec, write_spec

    root = library(tmp_path / "lib")
    base = settings_factory(milvus_uri=milvus_server, batch_size=6, decode_workers=1)
    with Index(base) as old:
        old.ingest([str(root)])
        before = groups(old)
        old_collection = old.store.collection
        q_id = min(old.store.get(range(1, 100)))
        query = old.store.get([q_id])[q_id]
    assert len(before) == 2

    new_model = tmp_path / "model-v2.onnx"  # the same weights, a new version: new vectors, new collection
    shutil.copy(DEFAULT_MODEL, new_model)
    spec = read_spec(new_model)
    write_spec(new_model, type(spec)(**{**spec.__dict__, "version": "2"}))
    with Index(base.model_copy(update={"model_path": new_model})) as new:
        assert new.store.collection != old_collection
        hook = SearchWhileRebuilding(milvus_server, base.collection, query, q_id, old_collection, stop_after=2)
        with pytest.raises(KeyboardInterrupt):
            reindex(new, hook)
        half = new.store.count()
        assert 0 < half < 18 and hook.answers == 2
        assert new.store.active_collection() == old_collection  # interrupted: search still on the old model

        hook = SearchWhileRebuilding(milvus_server, base.collection, query, q_id, old_collection, stop_after=None)
        s = reindex(new, hook)  # resumes: what the cut run embedded is not embedded again
        assert s.indexed == 18 - half and s.unchanged == half and hook.answers >= 1
        assert new.store.active_collection() == new.store.collection
        assert new.store.other_collections() == []  # the old collection was dropped after the swap
        assert new.store.count() == 18 and groups(new) == before
        hits = new.store.search(query[None], 1, collection=base.collection)[0]
        assert hits[0][0] == q_id  # same weights: the alias answers the same
