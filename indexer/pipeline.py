"""Ingest = scan -> decode -> embed -> store -> pairs -> groups. The CLI, the API and the workers call this.

Crash safety: a photo is registered (status ``pending``, id assigned) and committed before any
work on it; its vector is upserted under that id before the catalog marks it ``indexed``; pairs
are searched for photos whose ``linked`` flag is still false. A killed run therefore repeats at
most one batch, under the same ids, and never loses or duplicates a photo.

Nothing is forgotten on weak evidence: a photo leaves the catalog only when the scan read its
folder and the file is really gone (not when its folder could not be listed, and not when a root
that had photos scans to none at all, as an unmounted drive does, unless ``prune_empty``). At the
start of every ingest the catalog is checked against the vector store: photos marked indexed whose
vector is missing go back to ``pending`` and are embedded again.
"""
from __future__ import annotations

import errno
import logging
import os
import stat
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Protocol

import numpy as np
from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from indexer.batching import chunks as _chunks
from indexer.catalog import Catalog, DupGroup, Image, ImageStatus, Job, NotDuplicate, Pair, Root
from indexer.catalog.models import DERIVED_PAIR_KINDS, utcnow
from indexer.config import Settings
from indexer.decodepool import CRASH_LIMIT, CRASHED, DecodePool, DecodeResult
from indexer.embedder import OnnxEmbedder
from indexer.errors import DupesiftError
from indexer.grouping import regroup
from indexer.jobs import close_orphans, this_process
from indexer.locks import catalog_lock
from indexer import verify
from indexer.pairs import PairList, pairs_faiss, pairs_milvus
from indexer.scan import normalise_root, scan, under_root
from indexer.vectors import VectorStore

log = logging.getLogger(__name__)

class Progress(Protocol):
    def start(self, total: int, description: str) -> None: ...
    def advance(self, done: int, failed: int) -> None: ...


class _Quiet:
    def start(self, total: int, description: str) -> None:
        pass

    def advance(self, done: int, failed: int) -> None:
        pass


@dataclass
class Timings:
    scan: float = 0.0
    decode: float = 0.0  # waiting for decoded pixels (decode runs in worker processes)
    embed: float = 0.0
    store: float = 0.0
    link: float = 0.0  # searching and storing pairs, verification included
    verify: float = 0.0  # reading and matching the photos of near-threshold pairs (indexer.verify)
    group: float = 0.0


@dataclass
class IngestSummary:
    seen: int = 0
    indexed: int = 0  # newly embedded (or given a twin's vector) in this run
    exact_copies: int = 0  # of those, byte-identical to an indexed file: no model work
    changed: int = 0
    unchanged: int = 0
    removed: int = 0
    ignored: int = 0  # files without an image extension
    failed: list[dict] = field(default_factory=list)  # {"path", "reason", "message"}
    kept_unreadable: int = 0  # not found by the scan, but under a folder it could not read (or an empty root): kept
    healed: int = 0  # marked indexed but missing from the vector store: reset to pending, embedded again
    needs_embedding: dict[str, int] = field(default_factory=dict)  # root -> photos still pending after this run
    warnings: list[str] = field(default_factory=list)
    groups: int = 0
    duplicates: int = 0  # photos in groups, minus one keeper per group
    verified_pairs: int = 0  # pairs below the threshold that verification confirmed
    seconds: float = 0.0
    timings: Timings = field(default_factory=Timings)
    job_id: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class LinkPlan:
    """A link step's slow part, done before the lock ``groups``: the neighbour pairs of the photos unlinked
    then, and verdicts on pairs of the verification band. Under the lock it is used only for photos whose
    content and model (``marks``) are unchanged; anything else is searched or verified again there."""

    unlinked: frozenset[int]
    marks: dict[int, tuple[str | None, str | None]]  # indexed photo -> (sha256, model id) when planned
    found: PairList
    verdicts: dict[tuple[int, int], bool | None] = field(default_factory=dict)  # None: a photo unreadable
    failed: dict[int, str] = field(default_factory=dict)  # photo -> why verification could not read it


class Index:
    """An opened dupesift index: catalog + vector store (+ embedder, loaded on first use)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        settings.ensure_dirs()
        self.catalog = Catalog(settings.sqlalchemy_url)
        self._embedder: OnnxEmbedder | None = None
        self.spec = self.embedder.spec
        self.store = VectorStore(settings.milvus_target, alias=settings.collection, dim=self.spec.dim,
                                 model_id=self.spec.model_id, token=settings.milvus_token)

    # -- parts ----------------------------------------------------------------------------------
    @property
    def embedder(self) -> OnnxEmbedder:
        if self._embedder is None:
            self._embedder = OnnxEmbedder(self.settings.model_path, threads=self.settings.onnx_threads)
        return self._embedder

    @property
    def threshold(self) -> float:
        t = self.settings.threshold
        return float(self.spec.threshold if t is None else t)

    def close(self) -> None:
        self.store.close()
        self.catalog.dispose()

    def __enter__(self) -> "Index":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- ingest ---------------------------------------------------------------------------------
    def ingest(self, paths: Iterable[str], progress: Progress | None = None, job_id: str | None = None, *,
               prune_empty: bool = False) -> IngestSummary:
        """Index every photo under ``paths``: new and changed files embedded, deleted ones removed.

        A root that had photos and now scans to none keeps them (with a warning) unless ``prune_empty``."""
        progress = progress or _Quiet()
        t0 = time.perf_counter()
        roots = [normalise_root(p) for p in paths]
        missing = [r for r in roots if not os.path.exists(r)]
        if missing:
            raise DupesiftError(f"no such file or folder: {', '.join(missing)}")
        summary = IngestSummary(job_id=job_id or str(uuid.uuid4()))
        self._job_start(summary.job_id, "ingest", {"paths": roots})
        try:
            self._ingest(roots, progress, summary, prune_empty)
        except BaseException as exc:
            self._job_finish(summary, "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed", str(exc))
            raise
        summary.seconds = round(time.perf_counter() - t0, 3)
        self._job_finish(summary, "done", None)
        return summary

    def _ingest(self, roots: list[str], progress: Progress, summary: IngestSummary, prune_empty: bool = False) -> None:
        tm = summary.timings
        t = time.perf_counter()
        self._check_model_and_threshold()
        self.heal_store(summary)
        root_ids = self._register_roots(roots)
        result = scan(roots)
        summary.seen, summary.ignored = len(result.files), result.ignored
        summary.failed.extend({"path": p, "reason": "unreadable", "message": m} for p, m in result.unreadable)
        todo, removed_ids, unchanged = self._diff(roots, root_ids, result.files, summary,
                                                  unreadable=[p for p, _ in result.unreadable], prune_empty=prune_empty)
        summary.unchanged = unchanged
        tm.scan = time.perf_counter() - t
        if removed_ids:
            self.remove(removed_ids)
            summary.removed = len(removed_ids)
        progress.start(len(todo), "indexing")
        self._job_total(summary.job_id, len(todo))
        self.process(todo, progress, summary)
        self.link(summary, progress=progress)
        with self.catalog.session() as s:
            for rid in root_ids.values():
                s.execute(update(Root).where(Root.id == rid).values(last_scan_at=utcnow()))
        swapped = self.activate_if_complete()
        g = self.group_counts()
        summary.groups, summary.duplicates = g["groups"], g["duplicates"]
        summary.needs_embedding = self.needs_embedding()
        if summary.needs_embedding:
            n = sum(summary.needs_embedding.values())
            skips = ("search skips them" if swapped else
                     "searches keep answering from the previous model's index (this model's searches fail)")
            summary.warnings.append(
                f"{n} photos have no vector for the current model ({self.spec.model_id}) yet: they are in no "
                f"duplicate group and {skips} until you run `dupesift ingest "
                + " ".join(summary.needs_embedding) + "` (or `dupesift reindex` for every root)")

    @property
    def link_rule(self) -> str:
        """What decides a visual pair besides the threshold: the verification band, inliers and method."""
        st = self.settings
        return (f"verify {st.verify_band:g} below, {st.verify_per_photo} per photo, {st.verify_min_inliers} inliers, "
                f"{verify.RULE}") if st.verify_band else "cosine only"

    def _check_model_and_threshold(self) -> None:
        """A new model means new vectors; a new threshold or link rule means new pairs. Each triggers a relink.

        On a new model every photo embedded by another model goes back to ``pending``, whichever root it
        is under: an ingest of one root re-embeds that root, and the others show as waiting (``status``)."""
        with catalog_lock(self.catalog, "groups"):
            model, thr = self.catalog.get_meta("model_id"), self.catalog.get_meta("link_threshold")
            new_model = model != self.spec.model_id
            new_rule = self.catalog.get_meta("link_rule") != self.link_rule
            if new_model or new_rule or thr is None or abs(float(thr) - self.threshold) > 1e-9:
                with self.catalog.session() as s:
                    s.execute(update(Image).values(linked=False))
                    s.execute(delete(Pair).where(Pair.kind.in_(DERIVED_PAIR_KINDS)))
                    if new_model:
                        s.execute(update(Image).where(
                            Image.status == ImageStatus.indexed,
                            or_(Image.model_id.is_(None), Image.model_id != self.spec.model_id),
                        ).values(status=ImageStatus.pending))
                self.catalog.set_meta("link_threshold", repr(self.threshold))
                self.catalog.set_meta("link_rule", self.link_rule)
                self.catalog.set_meta("model_id", self.spec.model_id)

    def heal_store(self, summary: IngestSummary | None = None) -> int:
        """Check the catalog against the vector store: photos marked indexed with this model whose vector
        is missing (the store was replaced, lost or restored from an older copy) go back to ``pending``
        so that the ingest of their root embeds them again. Returns how many."""
        model = self.spec.model_id
        where = (Image.status == ImageStatus.indexed, Image.model_id == model)
        with catalog_lock(self.catalog, "groups"):
            # catalog before store: a vector is upserted before its row says indexed, so a row read
            # here as indexed already has its vector unless the store really lost it
            with self.catalog.session() as s:
                n_catalog = s.scalar(select(func.count()).select_from(Image).where(*where)) or 0
            if n_catalog == 0 or self.store.count() == n_catalog:
                return 0
            with self.catalog.session() as s:
                ids = np.fromiter(s.scalars(select(Image.id).where(*where)), dtype=np.int64)
            missing = ids[~np.isin(ids, self._stored_ids())].tolist()
            for chunk in _chunks(missing, 500):
                with self.catalog.session() as s:
                    s.execute(update(Image).where(Image.id.in_(chunk)).values(status=ImageStatus.pending, linked=False))
        if summary is not None and missing:
            summary.healed += len(missing)
            summary.warnings.append(
                f"{len(missing)} photos were marked indexed but had no vector in {self.store.collection} "
                "(vector store replaced or lost?): they are embedded again")
        return len(missing)

    def _stored_ids(self, page: int = 16384) -> np.ndarray:
        """Every id in this model's collection, read back a page at a time."""
        it = self.store.client.query_iterator(self.store.collection, batch_size=page, filter="", output_fields=["id"])
        parts: list[np.ndarray] = []
        try:
            while rows := it.next():
                parts.append(np.fromiter((r["id"] for r in rows), dtype=np.int64, count=len(rows)))
        finally:
            it.close()
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def other_model_photos(self, *, reachable_only: bool = False) -> int:
        """Photos whose latest vector is another model's: embedded by it, not yet by this one.

        ``reachable_only``: count only those under a root that exists now, which an ingest can re-embed;
        photos under a missing root (an unmounted disk, a deleted library) are left out."""
        with self.catalog.session() as s:
            rows = s.execute(select(Root.path, func.count(Image.id)).select_from(Image)
                             .outerjoin(Root, Root.id == Image.root_id)
                             .where(Image.model_id.is_not(None), Image.model_id != self.spec.model_id)
                             .group_by(Root.path)).all()
        return sum(int(n) for path, n in rows if not reachable_only or path is None or os.path.exists(path))

    def activate_if_complete(self) -> bool:
        """Point the alias at this model's collection once it holds every photo it can: none under an
        existing root still has only another model's vector. Otherwise (after a model change, an ingest
        of one root of several) the alias stays where it is, so searches keep answering from a complete
        index. Returns whether the alias now points at this model's collection."""
        if self.other_model_photos(reachable_only=True):
            return self.store.active_collection() == self.store.collection
        self.store.activate()
        return True

    def needs_embedding(self) -> dict[str, int]:
        """Photos without a vector for the current model (``pending``), per root: what the next ingest
        of those roots will embed."""
        with self.catalog.session() as s:
            rows = s.execute(select(Root.path, func.count(Image.id)).select_from(Image)
                             .outerjoin(Root, Root.id == Image.root_id)
                             .where(Image.status == ImageStatus.pending).group_by(Root.path)).all()
        return {(path or "(no root)"): int(n) for path, n in sorted(rows, key=lambda r: r[0] or "")}

    def _register_roots(self, roots: list[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        with self.catalog.session() as s:
            for r in roots:
                row = s.scalar(select(Root).where(Root.path == r))
                if row is None:
                    row = Root(path=r)
                    s.add(row)
                    s.flush()
                out[r] = row.id
        return out

    def _diff(self, roots: list[str], root_ids: dict[str, int], files, summary: IngestSummary, *,
              unreadable: Iterable[str] = (), prune_empty: bool = False) -> tuple[list[int], list[int], int]:
        """Register new files, reset changed ones to pending; return (to process, removed, unchanged).

        A known photo the scan did not find is removed only when it is really gone: not when it lies
        under a folder (or is a file) in ``unreadable``, not when it still exists, and not when its
        root scanned to no photos at all (an unmounted drive leaves an empty mount point) unless
        ``prune_empty``."""
        on_disk = {f.path: f for f in files}
        unreadable = sorted(set(unreadable))
        todo: list[int] = []
        removed: list[int] = []
        unchanged = 0
        model = self.spec.model_id
        with self.catalog.session() as s:
            known: dict[str, Image] = {}
            for r in roots:
                like = r if os.path.isfile(r) else r.rstrip(os.sep) + os.sep + "%"
                for img in s.scalars(select(Image).where(or_(Image.path == r, Image.path.like(like)))):
                    if under_root(img.path, r):
                        known[img.path] = img
            emptied = set() if prune_empty else self._emptied_roots(roots, known, on_disk, unreadable, summary)
            for path, img in known.items():
                f = on_disk.get(path)
                if f is None:
                    unsure = any(under_root(path, u) for u in unreadable) or any(under_root(path, r) for r in emptied)
                    if unsure or (gone := _is_gone(path)) is None:
                        summary.kept_unreadable += 1
                    elif gone:
                        removed.append(img.id)  # else it exists, just not where the scan looks (a hidden folder)
                elif img.status == ImageStatus.indexed and img.bytes == f.size and img.mtime == f.mtime \
                        and img.model_id == model:
                    unchanged += 1
                else:
                    if img.bytes != f.size or img.mtime != f.mtime:
                        img.decode_crashes = 0  # new content: its decoder gets a fresh try
                        if img.status == ImageStatus.indexed:
                            summary.changed += 1
                    img.status, img.bytes, img.mtime = ImageStatus.pending, f.size, f.mtime
                    todo.append(img.id)
            root_of = sorted(root_ids, key=len, reverse=True)
            new = [f for p, f in on_disk.items() if p not in known]
            for chunk in _chunks(new, 1000):
                rows = [dict(path=f.path, bytes=f.size, mtime=f.mtime, status=ImageStatus.pending, linked=False,
                             root_id=next((root_ids[r] for r in root_of if under_root(f.path, r)), None),
                             first_seen_at=utcnow())
                        for f in chunk]
                s.execute(insert(Image), rows)
            if new:
                paths = [f.path for f in new]
                for chunk in _chunks(paths, 500):
                    todo.extend(s.scalars(select(Image.id).where(Image.path.in_(chunk))))
        return sorted(todo), removed, unchanged

    @staticmethod
    def _emptied_roots(roots: list[str], known: dict, on_disk: dict, unreadable: list[str],
                       summary: IngestSummary) -> set[str]:
        """Folder roots that had photos in the catalog and now scan to none (and were readable)."""
        out: set[str] = set()
        for r in roots:
            if not os.path.isdir(r) or r in unreadable:
                continue
            had = sum(1 for p in known if under_root(p, r))
            if had and not any(under_root(p, r) for p in on_disk):
                out.add(r)
                summary.warnings.append(
                    f"{r} has no photos any more but {had} were indexed under it: nothing removed (an unmounted "
                    f"drive or share leaves an empty folder). If you really emptied it, ingest it with --prune-empty "
                    f"(API: \"prune_empty\": true).")
        return out

    def process(self, image_ids: list[int], progress: Progress | None = None,
                summary: IngestSummary | None = None) -> IngestSummary:
        """Decode, embed and store the given (pending) photos, one committed batch at a time."""
        progress = progress or _Quiet()
        summary = summary or IngestSummary()
        if not image_ids:
            return summary
        st = self.settings
        with self.catalog.session() as s:
            paths = dict(self._paths_for(s, image_ids))
        ids = [i for i in image_ids if i in paths]
        done = failed = 0
        with DecodePool(max_pixels=st.max_pixels, max_bytes=st.max_file_bytes, size=self.spec.input_size,
                        workers=st.decode_workers, cpu_seconds=st.decode_cpu_seconds) as pool:
            results = None if pool.inline else pool.map(paths[i] for i in ids)
            for batch_ids in _chunks(ids, st.batch_size):
                t = time.perf_counter()
                if results is None:
                    batch = self._decode_here(pool, batch_ids, paths)
                else:
                    batch = [next(results) for _ in batch_ids]
                summary.timings.decode += time.perf_counter() - t
                n_ok, n_bad = self._store_batch(list(zip(batch_ids, batch)), summary)
                done, failed = done + n_ok, failed + n_bad
                progress.advance(done + failed, failed)
                self._job_progress(summary.job_id, done + failed, failed)
        return summary

    def _decode_here(self, pool: DecodePool, ids: list[int], paths: dict[int, str]) -> list[DecodeResult]:
        """Decode a batch in this process (``decode_workers=1``), so that a file that kills the process
        is found on the next try instead of killing it on every redelivery.

        Each photo's ``decode_crashes`` counts decodes begun and never finished. A batch without any is
        marked once as a whole (one write); a batch with some (a process died on it) is decoded one
        photo at a time, each marked before and unmarked after, so only the culprit's count keeps
        rising; at CRASH_LIMIT it fails as "decoder crashed" without being decoded again. The marks
        are cleared when the batch is stored."""
        with self.catalog.session() as s:
            marks = dict(s.execute(select(Image.id, Image.decode_crashes).where(Image.id.in_(ids))).all())
        if not any(marks.values()):
            self._mark_decoding(ids, 1)
            return [pool.decode_here(paths[i]) for i in ids]
        out = []
        for i in ids:
            if marks.get(i, 0) >= CRASH_LIMIT:
                out.append(DecodeResult(paths[i], False, reason=CRASHED, message=(
                    f"the process decoding this file died {marks[i]} times before finishing it (a decoder "
                    "crash, out of memory or over DUPESIFT_DECODE_CPU_SECONDS); it is not decoded again "
                    "until it changes")))
                continue
            self._mark_decoding([i], 1)
            out.append(pool.decode_here(paths[i]))
            self._mark_decoding([i], -1)
        return out

    def _mark_decoding(self, ids: list[int], step: int) -> None:
        with self.catalog.session() as s:
            s.execute(update(Image).where(Image.id.in_(ids)).values(decode_crashes=Image.decode_crashes + step))

    def _store_batch(self, batch: list[tuple[int, DecodeResult]], summary: IngestSummary) -> tuple[int, int]:
        tm = summary.timings
        ok = [(i, r) for i, r in batch if r.ok]
        bad = [(i, r) for i, r in batch if not r.ok]
        model = self.spec.model_id
        with self.catalog.session() as s:
            # Byte-identical to a photo already indexed with this model (or earlier in this batch)?
            shas = sorted({r.sha256 for _, r in ok})
            twins: dict[str, int] = {}
            for chunk in _chunks(shas, 500):
                for sha, tid in s.execute(select(Image.sha256, func.min(Image.id)).where(
                        Image.sha256.in_(chunk), Image.status == ImageStatus.indexed, Image.model_id == model,
                        Image.id.not_in([i for i, _ in ok])).group_by(Image.sha256)):
                    twins[sha] = tid
            to_embed, copies = [], []
            for i, r in ok:
                if r.sha256 in twins:
                    copies.append((i, r, twins[r.sha256]))
                else:
                    twins[r.sha256] = i
                    to_embed.append((i, r))
            t = time.perf_counter()
            vecs = self.embedder.embed(np.stack([r.pixels for _, r in to_embed])) if to_embed else None
            tm.embed += time.perf_counter() - t
            t = time.perf_counter()
            by_id = {i: v for (i, _), v in zip(to_embed, vecs)} if vecs is not None else {}
            missing = [t_id for _, _, t_id in copies if t_id not in by_id]
            by_id.update(self.store.get(missing))
            ids_out, vec_out, exact_pairs = [], [], []
            for i, r in to_embed:
                ids_out.append(i)
                vec_out.append(by_id[i])
            for i, r, twin in copies:
                if twin in by_id:
                    ids_out.append(i)
                    vec_out.append(by_id[twin])
                    exact_pairs.append((min(i, twin), max(i, twin)))
                else:  # the twin's vector vanished from the store: embed this one after all
                    ids_out.append(i)
                    vec_out.append(self.embedder.embed(r.pixels[None])[0])
            if ids_out:
                self.store.upsert(ids_out, np.stack(vec_out))
            tm.store += time.perf_counter() - t
            done_ids = [i for i, _ in ok]
            for chunk in _chunks(done_ids, 500):  # content may have changed: old pairs no longer hold
                s.execute(delete(Pair).where(or_(Pair.a_id.in_(chunk), Pair.b_id.in_(chunk))))
            now = utcnow()
            if ok:
                s.execute(update(Image), [
                    dict(id=i, status=ImageStatus.indexed, bytes=r.size, sha256=r.sha256, width=r.width,
                         height=r.height, format=r.format, camera_exif=r.camera, model_id=model, linked=False,
                         indexed_at=now, decode_crashes=0,
                         error_reason=None, error_message=None) for i, r in ok])
            if bad:
                s.execute(update(Image), [
                    dict(id=i, status=ImageStatus.failed, sha256=r.sha256, error_reason=r.reason,
                         error_message=r.message, linked=True, model_id=None,
                         decode_crashes=CRASH_LIMIT if r.reason == CRASHED else 0) for i, r in bad])
                self.store.delete([i for i, _ in bad])
                for chunk in _chunks([i for i, _ in bad], 500):
                    s.execute(delete(Pair).where(or_(Pair.a_id.in_(chunk), Pair.b_id.in_(chunk))))
        if exact_pairs:
            self._store_exact_pairs(exact_pairs)
        summary.indexed += len(ok)
        summary.exact_copies += len(copies)
        summary.failed.extend({"path": r.path, "reason": r.reason, "message": r.message} for _, r in bad)
        return len(ok), len(bad)

    # -- pairs and groups -----------------------------------------------------------------------
    def link(self, summary: IngestSummary | None = None, plan: LinkPlan | None = None,
             progress: Progress | None = None) -> int:
        """Find neighbours of every photo not linked yet, store the pairs, update their groups.

        The slow part (searching, and reading the files of near-threshold pairs to verify them) is
        ``plan_link``, done first without the lock unless ``plan`` is given; the writes are under the
        catalog lock ``groups``, so a user's decision (``indexer.resolution``) never lands between reading
        the "not duplicates" list and storing the pairs it should have dropped, and never waits for files."""
        summary = summary or IngestSummary()
        plan = plan if plan is not None else self.plan_link(summary, progress)  # an empty plan is a plan
        with catalog_lock(self.catalog, "groups"):
            return self._link(summary, plan)

    def plan_link(self, summary: IngestSummary | None = None, progress: Progress | None = None) -> LinkPlan:
        """Neighbour pairs of the unlinked photos, with verdicts on those in the verification band. Takes
        no lock: ``link`` re-checks under it that no photo involved has changed (``LinkPlan.marks``)."""
        summary = summary or IngestSummary()
        t = time.perf_counter()
        with self.catalog.session() as s:
            unlinked = list(s.scalars(select(Image.id).where(Image.status == ImageStatus.indexed,
                                                             Image.linked.is_(False))))
            if not unlinked:
                return LinkPlan(frozenset(), {}, [])
            # read before the search: a photo re-embedded during it then no longer matches its mark. A
            # partner re-embedded during it is unlinked again, which ``_link`` sees as a changed set.
            marks = self._marks(s, set(unlinked))
            total = s.scalar(select(func.count()).select_from(Image).where(Image.status == ImageStatus.indexed)) or 0
        found = self._neighbours(unlinked, total)
        with self.catalog.session() as s:
            marks.update(self._marks(s, {x for a, b, _ in found for x in (a, b)} - set(marks)))
            found = [p for p in found if p[0] in marks and p[1] in marks]
            band = self._unstored_band(s, self._drop_declined(s, found))
            plan = LinkPlan(frozenset(unlinked), marks, found)
            self._check_band(s, band, plan, summary, progress)
        summary.timings.link += time.perf_counter() - t
        return plan

    def _link(self, summary: IngestSummary, plan: LinkPlan) -> int:
        t = time.perf_counter()
        with self.catalog.session() as s:
            unlinked = list(s.scalars(select(Image.id).where(Image.status == ImageStatus.indexed, Image.linked.is_(False))))
            failed_grouped = list(s.scalars(select(Image.id).where(Image.status != ImageStatus.indexed,
                                                                   Image.group_id.is_not(None))))
            if not unlinked and not failed_grouped:
                return 0
            total = s.scalar(select(func.count()).select_from(Image).where(Image.status == ImageStatus.indexed)) or 0
            marks = self._marks(s, set(unlinked) | set(plan.marks))
            if plan.unlinked == set(unlinked) and all(marks.get(i) == m for i, m in plan.marks.items()):
                found = plan.found  # nothing involved changed since planning: the same search
            else:
                found = self._neighbours(unlinked, total)
                indexed = self._existing(s, {x for a, b, _ in found for x in (a, b)})
                found = [p for p in found if p[0] in indexed and p[1] in indexed]
            found = self._drop_declined(s, found)
            thr = self.threshold
            sure = [p for p in found if p[2] >= thr]
            band = self._unstored_band(s, found)
            marks.update(self._marks(s, {x for a, b, _ in band for x in (a, b)} - set(marks)))
            fresh = LinkPlan(frozenset(unlinked), marks, [])
            for p in band:  # verdicts of planning hold for pairs whose two photos are unchanged
                key = (p[0], p[1])
                if key in plan.verdicts and all(plan.marks.get(x) == marks.get(x) for x in key):
                    fresh.verdicts[key] = plan.verdicts[key]
            for i, why in plan.failed.items():
                fresh.failed.setdefault(i, why)
            self._check_band(s, [p for p in band if (p[0], p[1]) not in fresh.verdicts], fresh, summary)
            verified = [p for p in band if fresh.verdicts.get((p[0], p[1])) is True]
            self._insert_pairs(s, sure)
            self._insert_pairs(s, verified, kind="verified")
            found = sure + verified
            # a pair whose photo could not be read is not decided: its unlinked photo stays unlinked, so that
            # the next link step (the next ingest) reads it again
            undecided = [p for p in band if fresh.verdicts.get((p[0], p[1])) is None]
            held = {x for p in undecided for x in p[:2]} & set(unlinked)
            for chunk in _chunks([i for i in unlinked if i not in held], 500):
                s.execute(update(Image).where(Image.id.in_(chunk)).values(linked=True))
            if held:
                why = next(((x, fresh.failed[x]) for p in undecided for x in p[:2] if x in fresh.failed),
                           (None, "unreadable"))
                summary.warnings.append(
                    f"{len(held)} photos have near-threshold pairs not verified: a photo could not be read "
                    f"(e.g. image {why[0]}: {why[1]}); they are tried again at the next ingest")
            summary.verified_pairs += len(verified)
            summary.timings.link += time.perf_counter() - t
            t = time.perf_counter()
            touched = set(unlinked) | set(failed_grouped) | {x for a, b, _ in found for x in (a, b)}
            regroup(s, touched, self.store.get)
            summary.timings.group += time.perf_counter() - t
        return len(found)

    def _unstored_band(self, s: Session, found: PairList) -> PairList:
        """The pairs below the threshold (the verification band) not stored already: a pair stored as exact,
        or verified by an earlier link, is not read again."""
        band = [p for p in found if p[2] < self.threshold]
        if band:
            stored = self._existing_pairs(s, {a for a, _, _ in band})
            band = [p for p in band if (p[0], p[1]) not in stored]
        return band

    def _check_band(self, s: Session, band: PairList, plan: LinkPlan, summary: IngestSummary,
                    progress: Progress | None = None) -> None:
        """Verify ``band`` (``indexer.verify``: its files are read) into ``plan.verdicts``: True confirmed,
        False not, None undecided (a photo could not be read; ``plan.failed`` says why)."""
        if not band:
            return
        t = time.perf_counter()
        st = self.settings
        if progress is not None:
            progress.start(len(band), "verifying near-threshold pairs")
        v = verify.Verifier(lambda ids: dict(self._paths_for(s, sorted(ids))), min_inliers=st.verify_min_inliers,
                            max_pixels=st.max_pixels, max_bytes=st.max_file_bytes,
                            threads=st.decode_workers or None,  # the decode pool's share of the machine
                            on_progress=(lambda n: progress.advance(n, 0)) if progress is not None else None)
        confirmed = {(a, b) for a, b, _ in v.verify(band)}
        undecided = {(a, b) for a, b, _ in v.undecided}
        for a, b, _ in band:
            plan.verdicts[(a, b)] = None if (a, b) in undecided else (a, b) in confirmed
        plan.failed.update(v.failed)
        summary.timings.verify += time.perf_counter() - t

    @staticmethod
    def _marks(s: Session, ids: set[int]) -> dict[int, tuple[str | None, str | None]]:
        """(content hash, model) of each indexed photo among ``ids``: what its vector depends on."""
        out: dict[int, tuple[str | None, str | None]] = {}
        for chunk in _chunks(sorted(ids), 500):
            out.update((i, (h, m)) for i, h, m in s.execute(select(Image.id, Image.sha256, Image.model_id).where(
                Image.id.in_(chunk), Image.status == ImageStatus.indexed)))
        return out

    def _neighbours(self, ids: list[int], total: int) -> PairList:
        """Pairs of ``ids`` with every photo down to the verification band below the threshold."""
        if not ids:
            return []
        st = self.settings
        thr = self.threshold - st.verify_band
        cap = {"sure": self.threshold, "band_k": st.verify_per_photo} if st.verify_band > 0 else {}
        if len(ids) >= st.bulk_fraction * max(total, 1):
            all_ids, all_vecs = self.store.all_vectors()
            pos = {int(i): n for n, i in enumerate(all_ids)}
            q = np.array([i for i in ids if i in pos], dtype=np.int64)
            return pairs_faiss(all_ids, all_vecs, q, all_vecs[[pos[int(i)] for i in q]] if len(q) else all_vecs[:0],
                               thr, **cap)
        vecs = self.store.get(ids)
        q = [i for i in ids if i in vecs]
        return pairs_milvus(self.store, q, np.stack([vecs[i] for i in q]) if q else np.zeros((0, self.spec.dim)),
                            thr, st.neighbour_k, **cap)

    @staticmethod
    def _existing(s, ids: set[int]) -> set[int]:  # noqa: ANN001
        out: set[int] = set()
        for chunk in _chunks(sorted(ids), 500):
            out.update(s.scalars(select(Image.id).where(Image.id.in_(chunk), Image.status == ImageStatus.indexed)))
        return out

    def _store_exact_pairs(self, exact_pairs: list[tuple[int, int]]) -> None:
        """Pairs of byte-identical photos, under the lock ``groups`` so that a "not duplicates" decision
        is either seen here or made after these pairs exist (and then removes them with its group).
        A separate transaction from the batch's: if the process dies between the two, the photos are
        unlinked and the link step finds the same pairs from their identical vectors."""
        with catalog_lock(self.catalog, "groups"), self.catalog.session() as s:
            found = self._drop_declined(s, [(a, b, 1.0) for a, b in exact_pairs])  # a user may keep both
            live = self._existing(s, {x for a, b, _ in found for x in (a, b)})
            found = [(a, b) for a, b, _ in found if a in live and b in live]  # not removed since
            existing = self._existing_pairs(s, {a for a, _ in found})  # a link step may have been first
            for a, b in found:
                if (a, b) in existing:
                    s.execute(update(Pair).where(Pair.a_id == a, Pair.b_id == b).values(similarity=1.0, kind="exact"))
                else:
                    s.add(Pair(a_id=a, b_id=b, similarity=1.0, kind="exact"))

    @staticmethod
    def _drop_declined(s, found: PairList) -> PairList:  # noqa: ANN001
        """Remove pairs a user marked "not duplicates" (decisions are keyed by content hash)."""
        if not found or s.scalar(select(func.count()).select_from(NotDuplicate)) == 0:
            return found
        ids = sorted({x for a, b, _ in found for x in (a, b)})
        sha: dict[int, str] = {}
        for chunk in _chunks(ids, 500):
            sha.update((i, h) for i, h in s.execute(select(Image.id, Image.sha256).where(Image.id.in_(chunk))))
        declined = set()
        for a, b, _ in found:
            declined.add(tuple(sorted((sha.get(a) or "", sha.get(b) or ""))))
        keep = set()
        lst = sorted(declined)
        for chunk in _chunks(lst, 200):
            for row in s.execute(select(NotDuplicate.sha_a, NotDuplicate.sha_b).where(
                    NotDuplicate.sha_a.in_([c[0] for c in chunk]), NotDuplicate.sha_b.in_([c[1] for c in chunk]))):
                keep.add(tuple(row))
        return [p for p in found if tuple(sorted((sha.get(p[0]) or "", sha.get(p[1]) or ""))) not in keep]

    @staticmethod
    def _existing_pairs(s: Session, a_ids: set[int]) -> set[tuple[int, int]]:
        """The stored pairs (a, b) whose smaller id is one of ``a_ids``."""
        out: set[tuple[int, int]] = set()
        for chunk in _chunks(sorted(a_ids), 500):
            out.update(s.execute(select(Pair.a_id, Pair.b_id).where(Pair.a_id.in_(chunk))))
        return out

    @staticmethod
    def _insert_pairs(s, found: PairList, kind: str = "visual") -> None:  # noqa: ANN001
        if not found:
            return
        existing = Index._existing_pairs(s, {a for a, _, _ in found})
        rows = [dict(a_id=a, b_id=b, similarity=sim, kind=kind) for a, b, sim in found if (a, b) not in existing]
        for chunk in _chunks(rows, 5000):
            s.execute(insert(Pair), chunk)

    def remove(self, image_ids: list[int]) -> None:
        """Forget photos (deleted from disk): vectors, pairs, and their place in groups (under the lock ``groups``)."""
        if not image_ids:
            return
        with catalog_lock(self.catalog, "groups"):
            self._remove(image_ids)

    def _remove(self, image_ids: list[int]) -> None:
        self.store.delete(image_ids)
        with self.catalog.session() as s:
            gids: set[int] = set()
            for chunk in _chunks(image_ids, 500):
                gids.update(g for g in s.scalars(select(Image.group_id).where(Image.id.in_(chunk))) if g is not None)
                s.execute(delete(Pair).where(or_(Pair.a_id.in_(chunk), Pair.b_id.in_(chunk))))
                s.execute(delete(Image).where(Image.id.in_(chunk)))
            survivors: set[int] = set()
            live: set[int] = set()
            for chunk in _chunks(sorted(gids), 500):
                for i, g in s.execute(select(Image.id, Image.group_id).where(Image.group_id.in_(chunk))):
                    survivors.add(i)
                    live.add(g)
            for chunk in _chunks(sorted(gids - live), 500):  # every member gone: regroup never sees these
                s.execute(delete(DupGroup).where(DupGroup.id.in_(chunk)))
            regroup(s, survivors, self.store.get)

    # -- queries --------------------------------------------------------------------------------
    def similar_to_pixels(self, pixels: np.ndarray, k: int = 10,
                          source: os.PathLike | bytes | None = None) -> list[dict]:
        """Nearest indexed photos to model pixels (S, S, 3). With ``source`` (the query's file or bytes), hits in
        the verification band below the threshold are duplicates when keypoint matching confirms them, as the
        link step would have (``indexer.verify``)."""
        vec = self.embedder.embed(pixels[None])
        query = None
        if source is not None and self.settings.verify_band > 0:  # keypoints only when a band hit needs them
            def query() -> verify.Keypoints:
                return verify.keypoints_of(source, self.settings.max_pixels, self.settings.max_file_bytes)
        return self.similar_to_vector(vec[0], k, query_keypoints=query)

    def similar_to_vector(self, vec: np.ndarray, k: int = 10, exclude: int | None = None,
                          query_keypoints: Callable[[], verify.Keypoints] | None = None) -> list[dict]:
        """``is_duplicate``: at or above the threshold, or in the band below it and verified: for an indexed
        query (``exclude``) by the stored pairs, for another (``query_keypoints``) by matching now."""
        hits = self.store.search(vec[None], k + (1 if exclude is not None else 0))[0]
        hits = [(i, s) for i, s in hits if i != exclude][:k]
        thr, st = self.threshold, self.settings
        band = [i for i, sim in hits if thr - st.verify_band <= sim < thr] if st.verify_band > 0 else []
        with self.catalog.session() as s:
            rows = {img.id: img for img in s.scalars(select(Image).where(Image.id.in_([i for i, _ in hits])))}
            band = [i for i in band if i in rows]
            confirmed: set[int] = set()
            if band and exclude is not None:
                for a, b in s.execute(select(Pair.a_id, Pair.b_id).where(or_(
                        (Pair.a_id == exclude) & Pair.b_id.in_(band), (Pair.b_id == exclude) & Pair.a_id.in_(band)))):
                    confirmed.add(b if a == exclude else a)
        if band and exclude is None and query_keypoints is not None:
            try:
                q = query_keypoints()
            except Exception:  # an unusable query answers by cosine alone, as an unusable photo links
                log.warning("no keypoints for the query: band hits answered by cosine alone", exc_info=True)
                q = None
            if q is not None:  # its verify_per_photo most similar band hits, as the link step verifies a photo's
                v = verify.Verifier(lambda ids: {i: rows[i].path for i in ids}, min_inliers=st.verify_min_inliers,
                                    max_pixels=st.max_pixels, max_bytes=st.max_file_bytes,
                                    threads=st.decode_workers or None)
                confirmed = v.confirm(q, band[:st.verify_per_photo])
        return [{"id": i, "path": rows[i].path, "similarity": round(sim, 6),
                 "is_duplicate": sim >= thr or i in confirmed, "group_id": rows[i].group_id}
                for i, sim in hits if i in rows]

    def similar_to_id(self, image_id: int, k: int = 10) -> list[dict]:
        vec = self.store.get([image_id]).get(image_id)
        if vec is None:
            raise KeyError(image_id)
        return self.similar_to_vector(vec, k, exclude=image_id)

    def group_counts(self) -> dict:
        with self.catalog.session() as s:
            groups = s.scalar(select(func.count()).select_from(DupGroup)) or 0
            members = s.scalar(select(func.coalesce(func.sum(DupGroup.size), 0))) or 0
        return {"groups": int(groups), "duplicates": int(members) - int(groups)}

    def groups(self, min_size: int = 2) -> list[dict]:
        """Every duplicate group with its members (the `groups --json` contract)."""
        with self.catalog.session() as s:
            groups = list(s.scalars(select(DupGroup).where(DupGroup.size >= min_size)
                                    .order_by(DupGroup.size.desc(), DupGroup.id)))
            members: dict[int, list[Image]] = {}
            for chunk in _chunks([g.id for g in groups], 500):
                for img in s.scalars(select(Image).where(Image.group_id.in_(chunk)).order_by(Image.id)):
                    members.setdefault(img.group_id, []).append(img)
        return [group_dict(g, members.get(g.id, [])) for g in groups]

    def status(self) -> dict:
        with self.catalog.session() as s:
            counts = {k: v for k, v in s.execute(select(Image.status, func.count()).group_by(Image.status))}
            roots = list(s.scalars(select(Root.path).order_by(Root.path)))
            pairs = s.scalar(select(func.count()).select_from(Pair)) or 0
        g = self.group_counts()
        st = self.settings
        return {
            "images": {k.value if hasattr(k, "value") else str(k): v for k, v in counts.items()},
            "pairs": pairs, "groups": g["groups"], "duplicates": g["duplicates"],
            "model": {"name": self.spec.name, "version": self.spec.version, "id": self.spec.model_id,
                      "path": str(st.model_path), "dim": self.spec.dim, "input_size": self.spec.input_size,
                      "providers": self.embedder.providers},
            "threshold": self.threshold,
            "threshold_source": "DUPESIFT_THRESHOLD" if st.threshold is not None else "model calibration",
            "link_rule": self.link_rule,  # the band below the threshold that keypoint verification may link
            "data_dir": str(st.data_dir),
            "catalog": _mask(st.sqlalchemy_url),
            "milvus": st.milvus_target, "collection": self.store.collection, "alias": st.collection,
            "roots": roots,
            "vectors": self.store.count(),  # in this model's collection; equals images.indexed when in step
            "needs_embedding": self.needs_embedding(),  # root -> photos waiting for a vector of this model
        }

    # -- jobs -----------------------------------------------------------------------------------
    def _job_start(self, job_id: str, kind: str, params: dict) -> None:
        close_orphans(self.catalog)
        with self.catalog.session() as s:
            job = s.get(Job, job_id)
            if job is None:
                job = Job(id=job_id, kind=kind, params=params)
                s.add(job)
            job.params = {**(job.params or {}), "runner": this_process()}
            job.status, job.started_at, job.updated_at = "running", utcnow(), utcnow()

    def _job_total(self, job_id: str | None, total: int) -> None:
        with self.catalog.session() as s:
            s.execute(update(Job).where(Job.id == job_id).values(total=total, updated_at=utcnow()))

    def _job_progress(self, job_id: str | None, done: int, failed: int) -> None:
        if job_id is None:
            return
        with self.catalog.session() as s:
            s.execute(update(Job).where(Job.id == job_id).values(done=done, failed=failed, updated_at=utcnow()))

    def _job_finish(self, summary: IngestSummary, status: str, message: str | None) -> None:
        with self.catalog.session() as s:
            s.execute(update(Job).where(Job.id == summary.job_id).values(
                status=status, message=message, finished_at=utcnow(), updated_at=utcnow(),
                summary={k: v for k, v in summary.as_dict().items() if k != "failed"} | {"failed": len(summary.failed)}))

    @staticmethod
    def _paths_for(s, ids: list[int]) -> Iterable[tuple[int, str]]:  # noqa: ANN001
        for chunk in _chunks(ids, 500):
            yield from s.execute(select(Image.id, Image.path).where(Image.id.in_(chunk)))


def _is_gone(path: str) -> bool | None:
    """True when ``path`` no longer exists as a regular file, False when it does, None when we cannot
    tell (permission denied, I/O error): a photo is removed only on True."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        return True if exc.errno in (errno.ENOENT, errno.ENOTDIR) else None
    return not stat.S_ISREG(st.st_mode)  # replaced by a link or a folder: the scan indexes those elsewhere


def group_dict(g: DupGroup, members: list[Image]) -> dict:
    return {
        "id": g.id, "size": g.size, "keeper": g.keeper_id, "keeper_reason": g.keeper_reason,
        "max_distance": round(g.max_distance, 6), "total_bytes": g.total_bytes,
        "reclaimable_bytes": g.reclaimable_bytes, "resolution": g.resolution,
        "members": [member_dict(m) for m in members],
    }


def member_dict(m: Image) -> dict:
    return {"id": m.id, "path": m.path, "bytes": m.bytes, "width": m.width, "height": m.height,
            "format": m.format, "mtime": m.mtime, "sha256": m.sha256, "camera_exif": bool(m.camera_exif),
            "similarity_to_keeper": None if m.similarity_to_keeper is None else round(m.similarity_to_keeper, 6)}


def _mask(url: str) -> str:
    from indexer.catalog.db import safe_url

    return safe_url(url)

