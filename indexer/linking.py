"""The link step: candidate pairs of every photo not linked yet, decided by the link rule, stored with their
evidence, and their groups updated.

Each unlinked photo's candidates are its ``verify_per_photo`` most similar neighbours down to ``verify_band``
below the threshold (so the work grows with the library, not with its square; a page, ``verify_per_page``); ``indexer/linkrule.py`` decides
each from the two photos' link features (kept in the catalog by the decode that embedded them:
``indexer/featurestore.py``) and their crowds. Candidates are decided most similar first, and a pair whose two
photos are already joined (one group before, or by a pair linked in this step) is not checked: it would change
no group. The slow part is ``plan_link``, done without any lock; ``link`` writes under the catalog lock
``groups``, so a user's decision (``indexer/resolution.py``) never lands between reading the "not duplicates"
list and storing the pairs it should have dropped. Under the lock the plan is used only for photos whose content
and model are unchanged since; the rest is searched and decided again there.
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from disjoint_set import DisjointSet
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from indexer import featurestore
from indexer.catalog import Image, ImageStatus
from indexer.catalog.queries import execute_in, rows_in
from indexer.config import Settings
from indexer.featurestore import FeatureSource
from indexer.grouping import regroup
from indexer.linkrule import CROWD_K, Evidence, decide
from indexer.locks import catalog_lock
from indexer.pairs import PairList, pairs_faiss, pairs_milvus
from indexer.pairstore import drop_declined, existing_pairs, indexed_among, insert_evidence, unlink_all
from indexer.parts import Parts
from indexer.progress import Progress
from indexer.summary import IngestSummary

log = logging.getLogger(__name__)

Mark = tuple[str | None, str | None]  # (content hash, model id): what a photo's vector depends on
UNDECIDED = "undecided"  # a verdict: a photo's file could not be read now, try again at the next link step
CHECK_CHUNK = 256  # candidate pairs decided between progress reports
# Candidates at least this similar are all decided, beyond the per-photo cap (near-identical files; a photo's own
# hit, which the search returns too, then never takes a slot); the rule still decides each.
UNCAPPED = 0.9999
Verdict = Evidence | None | str


@dataclass
class LinkPlan:
    """A link step's slow part, done before the lock ``groups``: the candidate pairs of the photos unlinked
    then, the crowd of each, and the rule's verdict on each candidate. Under the lock it is used only for
    photos whose content and model (``marks``) are unchanged; anything else is searched or decided again."""

    unlinked: frozenset[int]
    marks: dict[int, Mark]  # indexed photo -> (sha256, model id) when planned
    found: PairList
    crowd: dict[int, float] = field(default_factory=dict)  # unlinked photo -> its crowd
    verdicts: dict[tuple[int, int], Verdict] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)  # photo -> why its file could not be read


def link(ix: Parts, summary: IngestSummary | None = None, plan: LinkPlan | None = None,
         progress: Progress | None = None) -> int:
    """Find and decide the candidates of every photo not linked yet, store the pairs, update their groups;
    returns the number of pairs stored. Plans first (without the lock) unless ``plan`` is given."""
    summary = summary or IngestSummary()
    plan = plan if plan is not None else plan_link(ix, summary, progress)  # an empty plan is a plan
    with catalog_lock(ix.catalog, "groups"):
        return _write(ix, summary, plan)


def relink_all(ix: Parts) -> int:
    """Pair the whole library again (one bulk all-pairs search: faiss, on the GPU with faiss-gpu) and
    recompute every group; returns the number of pairs stored."""
    with catalog_lock(ix.catalog, "groups"), ix.catalog.session() as s:
        unlink_all(s)
    return link(ix)  # searches and decides before it takes the lock again to write


def plan_link(ix: Parts, summary: IngestSummary | None = None, progress: Progress | None = None) -> LinkPlan:
    """Candidate pairs of the unlinked photos, with the rule's verdicts. Takes no lock: ``link`` re-checks
    under it that no photo involved has changed (``LinkPlan.marks``)."""
    summary = summary or IngestSummary()
    t = time.perf_counter()
    with ix.catalog.session() as s:
        unlinked = _unlinked(s)
        if not unlinked:
            return LinkPlan(frozenset(), {}, [])
        # read before the search: a photo re-embedded during it then no longer matches its mark. A
        # partner re-embedded during it is unlinked again, which ``_write`` sees as a changed set.
        marks = _marks(s, set(unlinked))
        total = _indexed_count(s)
    found, crowd = neighbours(ix, unlinked, total)
    with ix.catalog.session() as s:
        marks.update(_marks(s, {x for a, b, _ in found for x in (a, b)} - set(marks)))
        found = [p for p in found if p[0] in marks and p[1] in marks]
        plan = LinkPlan(frozenset(unlinked), marks, found, crowd)
        _decide(ix, s, _unstored(s, drop_declined(s, found)), plan, summary, progress)
    summary.timings.link += time.perf_counter() - t
    return plan


def _write(ix: Parts, summary: IngestSummary, plan: LinkPlan) -> int:
    """The link step's writes, under the lock: the plan where it still holds, a new search where not."""
    t = time.perf_counter()
    with ix.catalog.session() as s:
        unlinked = _unlinked(s)
        failed_grouped = list(s.scalars(select(Image.id).where(Image.status != ImageStatus.indexed,
                                                               Image.group_id.is_not(None))))
        if not unlinked and not failed_grouped:
            return 0
        total = _indexed_count(s)
        marks = _marks(s, set(unlinked) | set(plan.marks))
        if plan.unlinked == set(unlinked) and all(marks.get(i) == m for i, m in plan.marks.items()):
            found, crowd = plan.found, plan.crowd  # nothing involved changed since planning: the same search
        else:
            found, crowd = neighbours(ix, unlinked, total)
            indexed = indexed_among(s, {x for a, b, _ in found for x in (a, b)})
            found = [p for p in found if p[0] in indexed and p[1] in indexed]
        candidates = _unstored(s, drop_declined(s, found))
        marks.update(_marks(s, {x for a, b, _ in candidates for x in (a, b)} - set(marks)))
        fresh = LinkPlan(frozenset(unlinked), marks, [], crowd)
        for p in candidates:  # verdicts of planning hold for pairs whose two photos are unchanged
            key = (p[0], p[1])
            if key in plan.verdicts and all(plan.marks.get(x) == marks.get(x) for x in key):
                fresh.verdicts[key] = plan.verdicts[key]
        for i, why in plan.failed.items():
            fresh.failed.setdefault(i, why)
        _decide(ix, s, [p for p in candidates if (p[0], p[1]) not in fresh.verdicts], fresh, summary)
        linked = [(p[0], p[1], v) for p in candidates if isinstance(v := fresh.verdicts.get((p[0], p[1])), Evidence)]
        insert_evidence(s, linked)
        # a pair whose photo could not be read is not decided: its unlinked photo stays unlinked, so that
        # the next link step (the next ingest) reads it again
        undecided = [p for p in candidates if fresh.verdicts.get((p[0], p[1])) == UNDECIDED]
        held = {x for p in undecided for x in p[:2]} & set(unlinked)
        done = [i for i in unlinked if i not in held]
        execute_in(s, update(Image).values(linked=True), Image.id, done)
        if crowds := [{"id": i, "crowd": crowd[i]} for i in done if i in crowd]:
            s.execute(update(Image), crowds)
        if held:
            why = next(((x, fresh.failed[x]) for p in undecided for x in p[:2] if x in fresh.failed),
                       (None, "unreadable"))
            summary.warnings.append(
                f"{len(held)} photos have candidate pairs not decided: a photo could not be read "
                f"(e.g. image {why[0]}: {why[1]}); they are tried again at the next ingest")
        summary.verified_pairs += sum(1 for _, _, v in linked if v.kind in ("verified", "framed"))
        summary.timings.link += time.perf_counter() - t
        t = time.perf_counter()
        touched = set(unlinked) | set(failed_grouped) | {x for a, b, _ in linked for x in (a, b)}
        regroup(s, touched, ix.store.get)
        summary.timings.group += time.perf_counter() - t
    return len(linked)


def _features(s: Session, st: Settings) -> FeatureSource:
    """Link features for one step, read with the decode pool's limits and share of the machine."""
    return FeatureSource(s, max_pixels=st.max_pixels, max_bytes=st.max_file_bytes, threads=st.decode_workers or None)


def neighbours(ix: Parts, ids: list[int], total: int) -> tuple[PairList, dict[int, float]]:
    """The candidate pairs of ``ids`` (each one's ``verify_per_photo`` most similar photos down to the rule's
    floor; a page's ``verify_per_page``) and the crowd of each (its similarity to its ``CROWD_K``-th nearest
    other photo). ``total``: the indexed photos; a large share of them new is searched in bulk, by faiss over
    all vectors."""
    if not ids:
        return [], {}
    st = ix.settings
    with ix.catalog.session() as s:
        if stale := featurestore.stale(s, ids):  # kept by an older version: is the photo a page now?
            _features(s, st).get(stale)
        pages = featurestore.pages(s, ids)
    found: dict[tuple[int, int], float] = {}
    crowd: dict[int, float] = {}
    every = ix.store.all_vectors() if len(ids) >= st.bulk_fraction * max(total, 1) else None
    for part, band_k in (([i for i in ids if i not in pages], st.verify_per_photo),
                         ([i for i in ids if i in pages], st.verify_per_page)):
        if part:
            pairs, crowds = _neighbours(ix, part, band_k, every)
            found.update(((a, b), c) for a, b, c in pairs)
            crowd.update(crowds)
    return [(a, b, c) for (a, b), c in sorted(found.items())], crowd


def _neighbours(ix: Parts, ids: list[int], band_k: int, every: tuple[np.ndarray, np.ndarray] | None
                ) -> tuple[PairList, dict[int, float]]:
    """``neighbours`` of ``ids`` with ``band_k`` candidates each: by faiss over ``every`` (all ids and vectors)
    when given, else by Milvus search."""
    st, floor = ix.settings, ix.rule.floor
    cap = {"sure": UNCAPPED, "band_k": band_k}
    if every is not None:
        all_ids, all_vecs = every
        pos = {int(i): n for n, i in enumerate(all_ids)}
        q = np.array([i for i in ids if i in pos], dtype=np.int64)
        qv = all_vecs[[pos[int(i)] for i in q]] if len(q) else all_vecs[:0]
        found = pairs_faiss(all_ids, all_vecs, q, qv, floor, **cap)
        return found, _crowds_faiss(all_ids, all_vecs, q, qv)
    vecs = ix.store.get(ids)
    q = [i for i in ids if i in vecs]
    qv = np.stack([vecs[i] for i in q]) if q else np.zeros((0, ix.spec.dim), dtype=np.float32)
    found = pairs_milvus(ix.store, q, qv, floor, st.neighbour_k, **cap)
    hits = ix.store.search(qv, CROWD_K + 1, collection=ix.store.collection) if q else []
    return found, {i: _kth(i, h) for i, h in zip(q, hits, strict=True)}


def _crowds_faiss(ids: np.ndarray, vecs: np.ndarray, q: np.ndarray, qv: np.ndarray) -> dict[int, float]:
    import faiss

    if not len(q):
        return {}
    index = faiss.IndexFlatIP(vecs.shape[1])
    index.add(np.ascontiguousarray(vecs, dtype=np.float32))
    sims, idx = index.search(np.ascontiguousarray(qv, dtype=np.float32), min(CROWD_K + 1, len(ids)))
    return {int(i): _kth(int(i), [(int(ids[j]), float(v)) for j, v in zip(row_i, row_s, strict=True) if j >= 0])
            for i, row_i, row_s in zip(q, idx, sims, strict=True)}


def _kth(i: int, hits: list[tuple[int, float]]) -> float:
    """The ``CROWD_K``-th most similar other photo's similarity (-1 when the library has fewer)."""
    others = [s for j, s in hits if j != i]
    return float(others[CROWD_K - 1]) if len(others) >= CROWD_K else -1.0


def _unstored(s: Session, found: PairList) -> PairList:
    """The candidates not stored already: a pair stored as exact, or linked by an earlier step, is not
    decided again."""
    if found:
        stored = existing_pairs(s, {a for a, _, _ in found})
        found = [p for p in found if (p[0], p[1]) not in stored]
    return found


def _decide(ix: Parts, s: Session, pairs: PairList, plan: LinkPlan, summary: IngestSummary,
            progress: Progress | None = None) -> None:
    """The rule's verdict on each of ``pairs`` into ``plan.verdicts``: its ``Evidence``, None (not a
    duplicate, or not checked because its photos are joined already) or ``UNDECIDED`` (a photo's file could
    not be read; ``plan.failed`` says why)."""
    if not pairs:
        return
    t = time.perf_counter()
    st, rule = ix.settings, ix.rule
    photos = {x for a, b, _ in pairs for x in (a, b)}
    crowd = {i: c for i, c in rows_in(s, select(Image.id, Image.crowd), Image.id, photos) if c is not None}
    crowd.update(plan.crowd)
    joined = DisjointSet()  # photos one group joins already (linked ones only: an unlinked photo's group is stale)
    groups: dict[int, int] = {}
    for i, g in rows_in(s, select(Image.id, Image.group_id).where(Image.linked.is_(True)), Image.id, photos):
        if g is not None:
            joined.union(i, groups.setdefault(g, i))
    src = _features(s, st)
    if progress is not None:
        progress.start(len(pairs), "checking candidate pairs")
    ordered = sorted(pairs, key=lambda p: (-p[2], p[0], p[1]))
    done = 0
    with ThreadPoolExecutor(st.decode_workers or None) as pool:
        for start in range(0, len(ordered), CHECK_CHUNK):
            chunk = [p for p in ordered[start:start + CHECK_CHUNK] if not joined.connected(p[0], p[1])]
            feats = src.get({x for a, b, _ in chunk for x in (a, b)})

            def one(p: tuple[int, int, float], feats: dict = feats) -> Verdict:
                a, b, cos = p
                if a in src.failed or b in src.failed:
                    return UNDECIDED
                fa, fb = feats.get(a), feats.get(b)
                if fa is None or fb is None:
                    return None
                try:
                    return decide(rule, cos, fa, fb, crowd.get(a), crowd.get(b))
                except Exception:  # an OpenCV error on odd keypoints: not linked, the other pairs go on
                    log.warning("deciding images %s and %s failed", a, b, exc_info=True)
                    return None

            for p, v in zip(chunk, pool.map(one, chunk), strict=True):
                plan.verdicts[(p[0], p[1])] = v
                if isinstance(v, Evidence):
                    joined.union(p[0], p[1])
            done = min(start + CHECK_CHUNK, len(ordered))
            if progress is not None:
                progress.advance(done, 0)
    plan.failed.update(src.failed)
    summary.timings.verify += time.perf_counter() - t


def _unlinked(s: Session) -> list[int]:
    return list(s.scalars(select(Image.id).where(Image.status == ImageStatus.indexed, Image.linked.is_(False))))


def _indexed_count(s: Session) -> int:
    return s.scalar(select(func.count()).select_from(Image).where(Image.status == ImageStatus.indexed)) or 0


def _marks(s: Session, ids: set[int]) -> dict[int, Mark]:
    """(content hash, model) of each indexed photo among ``ids``: what its vector depends on."""
    return {i: (h, m) for i, h, m in rows_in(
        s, select(Image.id, Image.sha256, Image.model_id).where(Image.status == ImageStatus.indexed), Image.id, ids)}
