"""A change of model, threshold or link rule, and the vector store's health against the catalog.

A new model means new vectors: every photo embedded by another model goes back to ``pending``, whichever root it
is under, and its vectors go to this model's own collection while the alias keeps serving the old one. The alias
moves (``activate_if_complete``) once this model's collection holds every photo it can, and the old collections
are dropped (``drop_old_collections``) once no photo's latest vector is in them. A new threshold or link rule
means new pairs: every photo is unlinked and linked again by the next link step.
"""
from __future__ import annotations

import logging
import os

import numpy as np
from sqlalchemy import func, or_, select, update

from indexer.catalog import Image, ImageStatus, Root
from indexer.catalog.queries import execute_in
from indexer.locks import catalog_lock
from indexer.pairstore import unlink_all
from indexer.parts import Parts

log = logging.getLogger(__name__)


def check_model_and_threshold(ix: Parts) -> None:
    """A new model means new vectors; a new threshold or link rule means new pairs. Each triggers a relink.

    On a new model every photo embedded by another model goes back to ``pending``, whichever root it
    is under: an ingest of one root re-embeds that root, and the others show as waiting (``status``)."""
    cat = ix.catalog
    with catalog_lock(cat, "groups"):
        model, thr = cat.get_meta("model_id"), cat.get_meta("link_threshold")
        new_model = model != ix.spec.model_id
        new_rule = cat.get_meta("link_rule") != ix.link_rule
        if new_model or new_rule or thr is None or abs(float(thr) - ix.threshold) > 1e-9:
            with cat.session() as s:
                unlink_all(s)
                if new_model:
                    s.execute(update(Image).where(
                        Image.status == ImageStatus.indexed,
                        or_(Image.model_id.is_(None), Image.model_id != ix.spec.model_id),
                    ).values(status=ImageStatus.pending))
            cat.set_meta("link_threshold", repr(ix.threshold))
            cat.set_meta("link_rule", ix.link_rule)
            cat.set_meta("model_id", ix.spec.model_id)


def heal_store(ix: Parts) -> list[int]:
    """Check the catalog against the vector store: photos marked indexed with this model whose vector
    is missing (the store was replaced, lost or restored from an older copy) go back to ``pending``
    so that the ingest of their root embeds them again. Returns their ids."""
    where = (Image.status == ImageStatus.indexed, Image.model_id == ix.spec.model_id)
    with catalog_lock(ix.catalog, "groups"):
        # catalog before store: a vector is upserted before its row says indexed, so a row read
        # here as indexed already has its vector unless the store really lost it
        with ix.catalog.session() as s:
            n_catalog = s.scalar(select(func.count()).select_from(Image).where(*where)) or 0
        if n_catalog == 0 or ix.store.count() == n_catalog:
            return []
        with ix.catalog.session() as s:
            ids = np.fromiter(s.scalars(select(Image.id).where(*where)), dtype=np.int64)
        missing = ids[~np.isin(ids, stored_ids(ix))].tolist()
        with ix.catalog.session() as s:
            execute_in(s, update(Image).values(status=ImageStatus.pending, linked=False), Image.id, missing)
    return missing


def stored_ids(ix: Parts, page: int = 16384) -> np.ndarray:
    """Every id in this model's collection, read back a page at a time."""
    it = ix.store.client.query_iterator(ix.store.collection, batch_size=page, filter="", output_fields=["id"])
    parts: list[np.ndarray] = []
    try:
        while rows := it.next():
            parts.append(np.fromiter((r["id"] for r in rows), dtype=np.int64, count=len(rows)))
    finally:
        it.close()
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def other_model_photos(ix: Parts, *, reachable_only: bool = False) -> int:
    """Photos whose latest vector is another model's: embedded by it, not yet by this one.

    ``reachable_only``: count only those under a root that exists now, which an ingest can re-embed;
    photos under a missing root (an unmounted disk, a deleted library) are left out."""
    with ix.catalog.session() as s:
        rows = s.execute(select(Root.path, func.count(Image.id)).select_from(Image)
                         .outerjoin(Root, Root.id == Image.root_id)
                         .where(Image.model_id.is_not(None), Image.model_id != ix.spec.model_id)
                         .group_by(Root.path)).all()
    return sum(int(n) for path, n in rows if not reachable_only or path is None or os.path.exists(path))


def activate_if_complete(ix: Parts) -> bool:
    """Point the alias at this model's collection once it holds every photo it can: none under an
    existing root still has only another model's vector. Otherwise (after a model change, an ingest
    of one root of several) the alias stays where it is, so searches keep answering from a complete
    index. Returns whether the alias now points at this model's collection."""
    if other_model_photos(ix, reachable_only=True):
        return ix.store.active_collection() == ix.store.collection
    ix.store.activate()
    return True


def drop_old_collections(ix: Parts) -> list[str]:
    """Once the swap is done, drop every other model's collection. Done means: the alias points at this
    model's collection (no search answers from another one: ``VectorStore.search``), and no photo's
    latest vector is in another collection (a photo embedded by another model, not yet re-embedded: under
    a missing root, or by a worker still on the old model). Until then nothing is dropped."""
    store = ix.store
    if store.active_collection() != store.collection:
        return []
    others = other_model_photos(ix)  # under missing roots too: their only vectors are in the old ones
    if others:
        log.info("keeping old collections: %d photos have no vector of %s yet", others, ix.spec.model_id)
        return []
    dropped = []
    for name in store.other_collections():
        store.drop(name)
        dropped.append(name)
    return dropped


def needs_embedding(ix: Parts) -> dict[str, int]:
    """Photos without a vector for the current model (``pending``), per root: what the next ingest
    of those roots will embed."""
    with ix.catalog.session() as s:
        rows = s.execute(select(Root.path, func.count(Image.id)).select_from(Image)
                         .outerjoin(Root, Root.id == Image.root_id)
                         .where(Image.status == ImageStatus.pending).group_by(Root.path)).all()
    return {(path or "(no root)"): int(n) for path, n in sorted(rows, key=lambda r: r[0] or "")}
