"""The link step: neighbour pairs of every photo not linked yet, checked, stored, and their groups updated.

A pair at or above the threshold is a duplicate (``visual``); a pair in the verification band below it is one
only when keypoint matching confirms the two are one picture (``verified``, ``indexer/verify.py``), and each photo
has only its ``verify_per_photo`` most similar band neighbours verified. The slow part, searching and reading the
files of band pairs, is ``plan_link``, done without any lock; ``link`` writes under the catalog lock ``groups``, so
a user's decision (``indexer/resolution.py``) never lands between reading the "not duplicates" list and storing
the pairs it should have dropped, and never waits for files. Under the lock the plan is used only for photos
whose content and model are unchanged since; the rest is searched and verified again there.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from indexer import verify
from indexer.catalog import Image, ImageStatus
from indexer.catalog.queries import execute_in, paths_of, rows_in
from indexer.grouping import regroup
from indexer.locks import catalog_lock
from indexer.pairs import PairList, pairs_faiss, pairs_milvus
from indexer.pairstore import drop_declined, existing_pairs, indexed_among, insert_pairs, unlink_all
from indexer.parts import Parts
from indexer.progress import Progress
from indexer.summary import IngestSummary

Mark = tuple[str | None, str | None]  # (content hash, model id): what a photo's vector depends on


@dataclass
class LinkPlan:
    """A link step's slow part, done before the lock ``groups``: the neighbour pairs of the photos unlinked
    then, and verdicts on pairs of the verification band. Under the lock it is used only for photos whose
    content and model (``marks``) are unchanged; anything else is searched or verified again there."""

    unlinked: frozenset[int]
    marks: dict[int, Mark]  # indexed photo -> (sha256, model id) when planned
    found: PairList
    verdicts: dict[tuple[int, int], bool | None] = field(default_factory=dict)  # None: a photo unreadable
    failed: dict[int, str] = field(default_factory=dict)  # photo -> why verification could not read it


def link(ix: Parts, summary: IngestSummary | None = None, plan: LinkPlan | None = None,
         progress: Progress | None = None) -> int:
    """Find neighbours of every photo not linked yet, store the pairs, update their groups; returns the
    number of pairs stored. Plans first (without the lock) unless ``plan`` is given."""
    summary = summary or IngestSummary()
    plan = plan if plan is not None else plan_link(ix, summary, progress)  # an empty plan is a plan
    with catalog_lock(ix.catalog, "groups"):
        return _write(ix, summary, plan)


def relink_all(ix: Parts) -> int:
    """Pair the whole library again (one bulk all-pairs search: faiss, on the GPU with faiss-gpu) and
    recompute every group; returns the number of pairs stored."""
    with catalog_lock(ix.catalog, "groups"), ix.catalog.session() as s:
        unlink_all(s)
    return link(ix)  # searches and verifies before it takes the lock again to write


def plan_link(ix: Parts, summary: IngestSummary | None = None, progress: Progress | None = None) -> LinkPlan:
    """Neighbour pairs of the unlinked photos, with verdicts on those in the verification band. Takes
    no lock: ``link`` re-checks under it that no photo involved has changed (``LinkPlan.marks``)."""
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
    found = neighbours(ix, unlinked, total)
    with ix.catalog.session() as s:
        marks.update(_marks(s, {x for a, b, _ in found for x in (a, b)} - set(marks)))
        found = [p for p in found if p[0] in marks and p[1] in marks]
        band = _unstored_band(ix, s, drop_declined(s, found))
        plan = LinkPlan(frozenset(unlinked), marks, found)
        _check_band(ix, s, band, plan, summary, progress)
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
            found = plan.found  # nothing involved changed since planning: the same search
        else:
            found = neighbours(ix, unlinked, total)
            indexed = indexed_among(s, {x for a, b, _ in found for x in (a, b)})
            found = [p for p in found if p[0] in indexed and p[1] in indexed]
        found = drop_declined(s, found)
        sure = [p for p in found if p[2] >= ix.threshold]
        band = _unstored_band(ix, s, found)
        marks.update(_marks(s, {x for a, b, _ in band for x in (a, b)} - set(marks)))
        fresh = LinkPlan(frozenset(unlinked), marks, [])
        for p in band:  # verdicts of planning hold for pairs whose two photos are unchanged
            key = (p[0], p[1])
            if key in plan.verdicts and all(plan.marks.get(x) == marks.get(x) for x in key):
                fresh.verdicts[key] = plan.verdicts[key]
        for i, why in plan.failed.items():
            fresh.failed.setdefault(i, why)
        _check_band(ix, s, [p for p in band if (p[0], p[1]) not in fresh.verdicts], fresh, summary)
        verified = [p for p in band if fresh.verdicts.get((p[0], p[1])) is True]
        insert_pairs(s, sure)
        insert_pairs(s, verified, kind="verified")
        found = sure + verified
        # a pair whose photo could not be read is not decided: its unlinked photo stays unlinked, so that
        # the next link step (the next ingest) reads it again
        undecided = [p for p in band if fresh.verdicts.get((p[0], p[1])) is None]
        held = {x for p in undecided for x in p[:2]} & set(unlinked)
        execute_in(s, update(Image).values(linked=True), Image.id, [i for i in unlinked if i not in held])
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
        regroup(s, touched, ix.store.get)
        summary.timings.group += time.perf_counter() - t
    return len(found)


def neighbours(ix: Parts, ids: list[int], total: int) -> PairList:
    """Pairs of ``ids`` with every photo down to the verification band below the threshold (``total``: the
    indexed photos; a large share of them new is searched in bulk, by faiss over all vectors)."""
    if not ids:
        return []
    st = ix.settings
    thr = ix.threshold - st.verify_band
    cap = {"sure": ix.threshold, "band_k": st.verify_per_photo} if st.verify_band > 0 else {}
    if len(ids) >= st.bulk_fraction * max(total, 1):
        all_ids, all_vecs = ix.store.all_vectors()
        pos = {int(i): n for n, i in enumerate(all_ids)}
        q = np.array([i for i in ids if i in pos], dtype=np.int64)
        return pairs_faiss(all_ids, all_vecs, q, all_vecs[[pos[int(i)] for i in q]] if len(q) else all_vecs[:0],
                           thr, **cap)
    vecs = ix.store.get(ids)
    q = [i for i in ids if i in vecs]
    return pairs_milvus(ix.store, q, np.stack([vecs[i] for i in q]) if q else np.zeros((0, ix.spec.dim)),
                        thr, st.neighbour_k, **cap)


def _unstored_band(ix: Parts, s: Session, found: PairList) -> PairList:
    """The pairs below the threshold (the verification band) not stored already: a pair stored as exact,
    or verified by an earlier link, is not read again."""
    band = [p for p in found if p[2] < ix.threshold]
    if band:
        stored = existing_pairs(s, {a for a, _, _ in band})
        band = [p for p in band if (p[0], p[1]) not in stored]
    return band


def _check_band(ix: Parts, s: Session, band: PairList, plan: LinkPlan, summary: IngestSummary,
                progress: Progress | None = None) -> None:
    """Verify ``band`` (``indexer.verify``: its files are read) into ``plan.verdicts``: True confirmed,
    False not, None undecided (a photo could not be read; ``plan.failed`` says why)."""
    if not band:
        return
    t = time.perf_counter()
    st = ix.settings
    if progress is not None:
        progress.start(len(band), "verifying near-threshold pairs")
    v = verify.Verifier(lambda ids: paths_of(s, ids), min_inliers=st.verify_min_inliers,
                        max_pixels=st.max_pixels, max_bytes=st.max_file_bytes,
                        threads=st.decode_workers or None,  # the decode pool's share of the machine
                        on_progress=(lambda n: progress.advance(n, 0)) if progress is not None else None)
    confirmed = {(a, b) for a, b, _ in v.verify(band)}
    undecided = {(a, b) for a, b, _ in v.undecided}
    for a, b, _ in band:
        plan.verdicts[(a, b)] = None if (a, b) in undecided else (a, b) in confirmed
    plan.failed.update(v.failed)
    summary.timings.verify += time.perf_counter() - t


def _unlinked(s: Session) -> list[int]:
    return list(s.scalars(select(Image.id).where(Image.status == ImageStatus.indexed, Image.linked.is_(False))))


def _indexed_count(s: Session) -> int:
    return s.scalar(select(func.count()).select_from(Image).where(Image.status == ImageStatus.indexed)) or 0


def _marks(s: Session, ids: set[int]) -> dict[int, Mark]:
    """(content hash, model) of each indexed photo among ``ids``: what its vector depends on."""
    return {i: (h, m) for i, h, m in rows_in(
        s, select(Image.id, Image.sha256, Image.model_id).where(Image.status == ImageStatus.indexed), Image.id, ids)}
