"""The reindex: rescans every root; a model switch builds a new collection behind the alias while
search keeps answering from the old one, swaps atomically, drops the old one, and resumes when cut."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from indexer.config import DEFAULT_MODEL
from indexer.errors import ModelError
from indexer.index import Index
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


def _unit_query(dim: int) -> np.ndarray:
    return np.full(dim, dim ** -0.5, dtype=np.float32)


def test_other_weights_under_one_name_rebuild_and_a_missing_roots_vectors_are_kept(
        tmp_path: Path, settings_factory) -> None:
    from tests.test_model_identity import nudge_weights

    root, extra = library(tmp_path / "lib"), tmp_path / "extra"
    extra.mkdir()
    for k, src in enumerate(photo_files(2, offset=870)):
        shutil.copy(src, extra / f"x{k}.jpg")
    base = settings_factory(batch_size=6, decode_workers=1)
    with Index(base) as old:
        old.ingest([str(root), str(extra)])
        before, old_id, old_collection = groups(old), old.spec.model_id, old.store.collection

    # a soup or a retrain that kept the name and version: the same spec, other weights
    other = nudge_weights(DEFAULT_MODEL, tmp_path / "other.onnx")
    with Index(base.model_copy(update={"model_path": other})) as new:
        assert (new.spec.name, new.spec.version) == (old.spec.name, old.spec.version)
        assert new.spec.model_id != old_id and new.store.collection != old_collection
        with pytest.raises(ModelError):  # the alias still serves the old weights' vectors
            new.similar_to_vector(_unit_query(new.spec.dim), 3)

        parked = extra.rename(tmp_path / "parked")  # an unmounted disk during the nightly run
        s = reindex(new)
        assert s.indexed == 18 and new.store.active_collection() == new.store.collection
        assert new.store.count() == 18 and len(new.similar_to_vector(_unit_query(new.spec.dim), 3)) == 3
        # the parked photos' only vectors are in the old collection: it is not dropped
        assert new.store.other_collections() == [old_collection]

        parked.rename(extra)
        s = reindex(new)
        assert s.indexed == 2 and new.store.other_collections() == [] and new.store.count() == 20
        assert groups(new) == before


def test_a_data_dir_from_before_weight_ids_is_rebuilt_once_by_the_reindex(tmp_path: Path, settings_factory) -> None:
    """What an existing data dir sees: its collection and catalog name the model ``name-vVERSION``; the
    model now has a longer id, so searches wait for one reindex, which re-embeds into the new collection,
    swaps the alias and drops the old collection."""
    from sqlalchemy import update

    from indexer.catalog import Image
    from indexer.vectors import VectorStore, collection_name

    root = library(tmp_path / "lib")
    base = settings_factory(batch_size=6, decode_workers=1)
    with Index(base) as index:
        index.ingest([str(root)])
        before = groups(index)
        legacy_id = f"{index.spec.name}-v{index.spec.version}"
        # make it the data dir the previous release left behind
        legacy = VectorStore(base.milvus_target, alias=base.collection, dim=index.spec.dim, model_id=legacy_id)
        try:
            legacy.upsert(*index.store.all_vectors())
            legacy.activate()
            index.store.drop(index.store.collection)
        finally:
            legacy.close()
        with index.catalog.session() as s:
            s.execute(update(Image).values(model_id=legacy_id))
        index.catalog.set_meta("model_id", legacy_id)

    with Index(base) as index:
        assert index.store.active_collection() == collection_name(base.collection, legacy_id)
        with pytest.raises(ModelError, match="reindex"):
            index.similar_to_vector(_unit_query(index.spec.dim), 3)
        s = reindex(index)
        assert s.indexed == 18 and index.store.active_collection() == index.store.collection
        assert index.store.other_collections() == [] and index.store.count() == 18
        assert groups(index) == before
        q = min(index.store.get(range(1, 100)))
        assert len(index.similar_to_id(q, 3)) == 3


def test_ingest_of_one_root_after_a_model_change_keeps_the_alias_on_the_complete_index(
        tmp_path: Path, settings_factory) -> None:
    """After a model change the alias moves to the new collection only once it holds every photo of the
    roots that exist: an ingest (in process, or the queue's finish) of one root of several leaves it on
    the old, complete collection, which keeps answering searches; the ingest of the last root swaps it."""
    from indexer import modelswitch, stages
    from indexer.jobs import create_job
    from indexer.modelspec import read_spec, write_spec

    roots = []
    for n, src in enumerate(photo_files(6, offset=880)):
        if n % 2 == 0:
            roots.append(tmp_path / f"root{n // 2}")
            roots[-1].mkdir()
        shutil.copy(src, roots[-1] / f"p{n}.jpg")
    a, b, c = map(str, roots)
    base = settings_factory(batch_size=6, decode_workers=1)
    with Index(base) as old:
        old.ingest([a, b, c])
        old_collection = old.store.collection
        q_id = min(old.store.get(range(1, 100)))
        query = old.store.get([q_id])[q_id]

    new_model = tmp_path / "model-v2.onnx"
    shutil.copy(DEFAULT_MODEL, new_model)
    spec = read_spec(new_model)
    write_spec(new_model, type(spec)(**{**spec.__dict__, "version": "2"}))
    new_settings = base.model_copy(update={"model_path": new_model})
    with Index(new_settings) as new:
        s = new.ingest([a])
        assert s.indexed == 2 and s.needs_embedding == {b: 2, c: 2}
        assert new.store.active_collection() == old_collection  # not onto 2 photos of 6
        assert "previous model" in s.warnings[0]

        job = create_job(new.catalog, "ingest", {"paths": [b]})  # the queue's path: the same rule in finish
        for ids in stages.plan(new, job):
            stages.embed(new, job, ids)
        assert stages.finish(new, job) and new.store.active_collection() == old_collection
    with Index(base) as old:  # a process still on the old model answers for every photo
        hits = old.similar_to_vector(query, 6)
        assert len(hits) == 6 and hits[0]["id"] == q_id

    with Index(new_settings) as new:
        s = new.ingest([c])  # the last root: now the new collection is complete
        assert s.needs_embedding == {} and new.store.active_collection() == new.store.collection
        assert new.store.count() == 6 and new.store.other_collections() == [old_collection]
        assert modelswitch.drop_old_collections(new) == [old_collection]
