"""The Milvus vector store (Milvus Lite file or a Milvus server), one collection per model behind an alias.

Milvus Lite facts this design follows: a Lite file is locked by one process (we raise StoreBusy with
a clear message instead of hanging); a reopened collection must be loaded before search; search
latency grows with the number of *calls*, so every search here is batched; a range search with a
limit may return fewer than all hits, so neighbour queries escalate k when a result comes back full;
and its search is slow at 100k vectors, so top-k search on a Lite store runs on an exact in-memory
faiss copy kept in step with every write (``indexer/memindex.py`` says why and what it costs).

Writes, reads and linking use this model's collection. Searches (``search`` without a collection:
``/similar``, ``dupesift similar``) answer from the collection the alias points at, and only while it
holds this model's vectors: a query vector is never compared with another model's. So a process still
on the old model keeps answering while a new model's collection is built, and stops with a clear
ModelError once the alias has been swapped away from it (the old collection may then be dropped); a
process already on the new model gets that error until the swap.
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from indexer.errors import DupesiftError, ModelError, StoreBusy
from indexer.memindex import MemIndex

# pymilvus logs every failed RPC with a traceback, milvus_lite a lock conflict: we raise clear errors instead
for _name in ("pymilvus", "pymilvus.decorators", "milvus_lite"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)

_lite_users: dict[str, int] = {}  # Lite path -> open VectorStores in this process (the server is per process)
_mem: dict[tuple[str, str], MemIndex] = {}  # (Lite path, collection) -> its in-memory search copy

SEARCH_CHUNK = 512  # vectors per search call
MAX_TOPK = 16384  # Milvus' top-k ceiling


def collection_name(alias: str, model_id: str) -> str:
    """The physical collection that holds ``model_id``'s vectors, e.g. ``dupesift_images__effnet_v1``."""
    return f"{alias}__{re.sub(r'[^0-9A-Za-z_]', '_', model_id)}"


class VectorStore:
    """Vectors keyed by catalog image id. Inner product on unit vectors = cosine similarity."""

    def __init__(self, uri: str, *, alias: str, dim: int, model_id: str, token: str | None = None) -> None:
        from pymilvus import MilvusClient

        self.uri, self.alias, self.dim, self.model_id = uri, alias, dim, model_id
        self.is_lite = not uri.startswith(("http://", "https://", "tcp://", "unix:"))
        if self.is_lite:
            Path(uri).parent.mkdir(parents=True, exist_ok=True)
        try:
            self.client = MilvusClient(uri, token=token or "")
        except Exception as exc:
            if self.is_lite and _lite_locked_elsewhere(uri):
                raise StoreBusy(
                    f"the Milvus Lite store {uri} is open in another process (a running `dupesift serve` "
                    "or ingest?). Stop it, ingest through the server (POST /ingest), or point "
                    "DUPESIFT_MILVUS_URI at a Milvus server."
                ) from exc
            raise DupesiftError(f"cannot open the vector store at {uri}: {exc}") from exc
        if self.is_lite:
            key = os.path.abspath(uri)
            _lite_users[key] = _lite_users.get(key, 0) + 1
        self.collection = collection_name(alias, model_id)
        self._ensure_collection(self.collection)
        self.mem = _mem.setdefault((os.path.abspath(uri), self.collection), MemIndex(dim)) if self.is_lite else None

    # -- collections and the alias -------------------------------------------------------------
    def _ensure_collection(self, name: str) -> None:
        from pymilvus import DataType

        c = self.client
        if not c.has_collection(name):
            schema = c.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
            index = c.prepare_index_params()
            index.add_index("vector", index_type="FLAT", metric_type="IP")
            c.create_collection(name, schema=schema, index_params=index, consistency_level="Strong")
        c.load_collection(name)  # needed after every reopen

    def active_collection(self) -> str | None:
        """The collection the alias points at, or None before the first activation."""
        prefix = f"{self.alias}__"
        for name in self.client.list_collections():
            if name.startswith(prefix) and self.alias in self.client.list_aliases(name).get("aliases", []):
                return name
        return None

    def alias_target(self) -> str | None:
        """The collection the alias points at now (one RPC), or None when there is no alias yet."""
        try:
            return self.client.describe_alias(self.alias)["collection_name"]
        except Exception:  # noqa: BLE001 - "no such alias" has no stable error code across Milvus versions
            return self.active_collection()

    def serving_collection(self) -> str:
        """The collection a search with this model's vectors answers from: the alias's, which must be this
        model's; before the first activation (no alias) this model's own collection."""
        target = self.alias_target()
        if target is None or target == self.collection:
            return self.collection
        raise ModelError(
            f"the index serves {target}, built by another model than this process's ({self.model_id}): "
            "its vectors cannot be compared with this model's. If the model was just changed, searches answer "
            "once a reindex (the nightly one, or `dupesift ingest` of every root) has rebuilt the index with it; "
            "if the index was rebuilt with a new model, restart this process with that model "
            "(DUPESIFT_MODEL_PATH).")

    def activate(self) -> None:
        """Point the alias at this model's collection (atomic swap when it pointed elsewhere)."""
        current = self.active_collection()
        if current == self.collection:
            return
        if current is None:
            self.client.create_alias(self.collection, self.alias)
        else:
            self.client.alter_alias(self.collection, self.alias)

    def other_collections(self) -> list[str]:
        prefix = f"{self.alias}__"
        return [n for n in self.client.list_collections() if n.startswith(prefix) and n != self.collection]

    def drop(self, name: str) -> None:
        if name == self.active_collection():
            raise DupesiftError(f"refusing to drop {name}: the alias {self.alias} points at it")
        self.client.drop_collection(name)
        if self.is_lite:
            _mem.pop((os.path.abspath(self.uri), name), None)

    # -- data ----------------------------------------------------------------------------------
    def upsert(self, ids: Iterable[int], vectors: np.ndarray) -> None:
        ids = [int(i) for i in ids]
        if not ids:
            return
        vectors = np.asarray(vectors, dtype=np.float32)
        rows = [{"id": i, "vector": v} for i, v in zip(ids, vectors.tolist())]
        for start in range(0, len(rows), 2000):
            self.client.upsert(self.collection, rows[start : start + 2000])
        if self.mem is not None:
            self.mem.upsert(ids, vectors)

    def delete(self, ids: Iterable[int]) -> None:
        ids = [int(i) for i in ids]
        for start in range(0, len(ids), 5000):
            self.client.delete(self.collection, ids=ids[start : start + 5000])
        if self.mem is not None:
            self.mem.delete(ids)

    def get(self, ids: Iterable[int]) -> dict[int, np.ndarray]:
        """Vectors for the given ids (missing ids are absent from the result)."""
        ids = [int(i) for i in ids]
        if self.mem is not None and (cached := self.mem.get(ids)) is not None:
            return cached
        out: dict[int, np.ndarray] = {}
        for start in range(0, len(ids), 1000):
            for row in self.client.get(self.collection, ids=ids[start : start + 1000], output_fields=["vector"]):
                out[int(row["id"])] = np.asarray(row["vector"], dtype=np.float32)
        return out

    def count(self) -> int:
        res = self.client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(res[0]["count(*)"]) if res else 0

    def iter_all(self, batch: int = 4096) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every (ids, vectors) in the collection, a batch at a time."""
        it = self.client.query_iterator(self.collection, batch_size=batch, filter="", output_fields=["id", "vector"])
        try:
            while rows := it.next():
                ids = np.fromiter((r["id"] for r in rows), dtype=np.int64, count=len(rows))
                vecs = np.asarray([r["vector"] for r in rows], dtype=np.float32).reshape(len(rows), self.dim)
                yield ids, vecs
        finally:
            it.close()

    def all_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        parts = list(self.iter_all())
        if not parts:
            return np.zeros(0, dtype=np.int64), np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def search(self, vectors: np.ndarray, k: int, *, collection: str | None = None) -> list[list[tuple[int, float]]]:
        """Top-k (id, cosine) per query vector, best first. Queries are sent in large batches.

        Without ``collection``: from the alias's collection, which must hold this model's vectors
        (``serving_collection``; ModelError otherwise)."""
        vectors = np.asarray(vectors, dtype=np.float32)
        target = collection or self.serving_collection()
        k = max(1, min(int(k), MAX_TOPK))
        if self.mem is not None and target == self.collection:
            return self.mem.search(vectors, k, self.iter_all)
        out: list[list[tuple[int, float]]] = []
        for start in range(0, len(vectors), SEARCH_CHUNK):
            chunk = vectors[start : start + SEARCH_CHUNK]
            try:
                res = self.client.search(
                    target, data=chunk.tolist(), limit=k, anns_field="vector",
                    search_params={"metric_type": "IP"}, output_fields=[],
                )
            except Exception:
                if collection is None:  # swapped and dropped since we looked: say so, not "no such collection"
                    self.serving_collection()
                raise
            out.extend([(int(h["id"]), float(h["distance"])) for h in hits] for hits in res)
        return out

    def warm(self) -> None:
        """Load what search needs into memory (the Lite search copy); a no-op on a Milvus server."""
        if self.mem is not None:
            self.mem.warm(self.iter_all)

    def neighbours_within(self, vectors: np.ndarray, threshold: float, k: int, *, sure: float | None = None,
                          band_k: int | None = None) -> list[list[tuple[int, float]]]:
        """Every stored vector with cosine >= threshold for each query: top-k, escalating k while a
        result list comes back full (a full list may have cut off more hits above the threshold).

        With ``sure`` and ``band_k`` (the link step's cap), a full list is enough once it holds ``band_k``
        hits below ``sure``: the rest of the band would be capped off anyway."""
        def short(hits: list[tuple[int, float]], k: int) -> bool:
            if len(hits) < k or hits[-1][1] < threshold:
                return False
            return sure is None or band_k is None or sum(s < sure for _, s in hits) < band_k

        # linking: this model's vectors against this model's collection, whatever the alias serves yet
        results = self.search(vectors, k, collection=self.collection)
        pending = [i for i, hits in enumerate(results) if short(hits, k)]
        while pending and k < MAX_TOPK:
            k = min(k * 8, MAX_TOPK)
            redo = self.search(vectors[pending], k, collection=self.collection)
            for i, hits in zip(pending, redo):
                results[i] = hits
            pending = [i for i in pending if short(results[i], k)]
        return [[(j, s) for j, s in hits if s >= threshold] for hits in results]

    def close(self) -> None:
        """Close the connection; for Lite, stop this process's embedded server when no store uses it,
        which releases the file lock (otherwise it is held until the process exits)."""
        try:
            self.client.close()
        except Exception:  # noqa: BLE001, S110 - a connection that is already gone needs no closing
            pass
        if self.is_lite:
            key = os.path.abspath(self.uri)
            _lite_users[key] = _lite_users.get(key, 1) - 1
            if _lite_users[key] <= 0:
                _lite_users.pop(key, None)
                for mem_key in [m for m in _mem if m[0] == key]:
                    del _mem[mem_key]
                try:
                    from milvus_lite.server_manager import server_manager_instance

                    server_manager_instance.release_server(self.uri)
                except ImportError:
                    pass


def _lite_locked_elsewhere(uri: str) -> bool:
    """True when another process holds the Milvus Lite lock on ``uri``."""
    import fcntl

    lock = Path(uri) / "LOCK"  # milvus_lite.db.LOCK_FILENAME
    for candidate in [lock] if lock.exists() else []:
        fd = os.open(candidate, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError:
            return True
        finally:
            os.close(fd)
    return False
