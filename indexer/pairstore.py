"""Stored pairs: what the link step and the batch store read and write in the ``pairs`` table.

A pair is stored once, as (smaller id, larger id), with its similarity and the evidence that links it (``Pair.kind``:
``exact`` byte-identical, else what the link rule found: ``verified``, ``framed``, ``pixels``, ``soft`` or ``visual``, with the inliers
and content agreement of a verified pair; ``indexer/linkrule.py``). Pairs a user marked "not duplicates" are never stored again: decisions are keyed by the two photos'
content hashes (``NotDuplicate``), so they hold across rescans, moves and reindexes.
"""
from __future__ import annotations

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from indexer.batching import chunks
from indexer.catalog import Image, ImageStatus, NotDuplicate, Pair
from indexer.catalog.models import DERIVED_PAIR_KINDS
from indexer.catalog.queries import execute_in, rows_in, scalars_in
from indexer.linkrule import Evidence
from indexer.locks import catalog_lock
from indexer.pairs import PairList
from indexer.parts import Parts


def existing_pairs(s: Session, a_ids: set[int]) -> set[tuple[int, int]]:
    """The stored pairs (a, b) whose smaller id is one of ``a_ids``."""
    return set(rows_in(s, select(Pair.a_id, Pair.b_id), Pair.a_id, a_ids))


def insert_evidence(s: Session, linked: list[tuple[int, int, Evidence]]) -> None:
    """Store linked pairs (a < b) with the evidence the link rule found, those not stored yet."""
    if not linked:
        return
    existing = existing_pairs(s, {a for a, _, _ in linked})
    rows = [{"a_id": a, "b_id": b, "similarity": e.similarity, "kind": e.kind, "inliers": e.inliers,
             "agreement": e.agreement, "cover": e.cover, "shifted": e.shifted} for a, b, e in linked
            if (a, b) not in existing]
    for chunk in chunks(rows, 5000):
        s.execute(insert(Pair), chunk)


def delete_pairs_of(s: Session, image_ids: list[int]) -> None:
    """Every stored pair with one of ``image_ids`` on either side."""
    execute_in(s, delete(Pair), lambda c: or_(Pair.a_id.in_(c), Pair.b_id.in_(c)), image_ids)


def unlink_all(s: Session) -> None:
    """Forget every pair the link step found (exact pairs hold whatever the model) and mark every photo
    unlinked: the next link step pairs the whole library again."""
    s.execute(update(Image).values(linked=False))
    s.execute(delete(Pair).where(Pair.kind.in_(DERIVED_PAIR_KINDS)))


def drop_declined(s: Session, found: PairList) -> PairList:
    """Remove pairs a user marked "not duplicates" (decisions are keyed by content hash)."""
    if not found or s.scalar(select(func.count()).select_from(NotDuplicate)) == 0:
        return found
    ids = {x for a, b, _ in found for x in (a, b)}
    sha: dict[int, str] = dict(rows_in(s, select(Image.id, Image.sha256), Image.id, ids))

    def key(a: int, b: int) -> tuple[str, str]:
        return tuple(sorted((sha.get(a) or "", sha.get(b) or "")))  # type: ignore[return-value]

    asked = {key(a, b) for a, b, _ in found}
    declined = {tuple(row) for row in rows_in(
        s, select(NotDuplicate.sha_a, NotDuplicate.sha_b),
        lambda c: NotDuplicate.sha_a.in_([x[0] for x in c]) & NotDuplicate.sha_b.in_([x[1] for x in c]),
        asked, size=200)}
    return [p for p in found if key(p[0], p[1]) not in declined]


def indexed_among(s: Session, ids: set[int]) -> set[int]:
    """Which of ``ids`` are indexed photos."""
    return set(scalars_in(s, select(Image.id).where(Image.status == ImageStatus.indexed), Image.id, ids))


def store_exact_pairs(ix: Parts, exact_pairs: list[tuple[int, int]]) -> None:
    """Pairs of byte-identical photos, under the lock ``groups`` so that a "not duplicates" decision
    is either seen here or made after these pairs exist (and then removes them with its group).
    A separate transaction from the batch's: if the process dies between the two, the photos are
    unlinked and the link step finds the same pairs from their identical vectors."""
    with catalog_lock(ix.catalog, "groups"), ix.catalog.session() as s:
        found = drop_declined(s, [(a, b, 1.0) for a, b in exact_pairs])  # a user may keep both
        live = indexed_among(s, {x for a, b, _ in found for x in (a, b)})
        kept = [(a, b) for a, b, _ in found if a in live and b in live]  # not removed since
        existing = existing_pairs(s, {a for a, _ in kept})  # a link step may have been first
        for a, b in kept:
            if (a, b) in existing:
                s.execute(update(Pair).where(Pair.a_id == a, Pair.b_id == b).values(similarity=1.0, kind="exact"))
            else:
                s.add(Pair(a_id=a, b_id=b, similarity=1.0, kind="exact"))
