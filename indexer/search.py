"""Query by example: the nearest indexed photos to an image, an indexed photo or a vector, with the verdict
the link step would give each (duplicate, or only similar)."""
from __future__ import annotations

import logging
import os
from collections.abc import Callable

import numpy as np
from sqlalchemy import or_, select

from indexer import verify
from indexer.catalog import Image, Pair
from indexer.parts import Parts

log = logging.getLogger(__name__)


def similar_to_pixels(ix: Parts, pixels: np.ndarray, k: int = 10,
                      source: os.PathLike | bytes | None = None) -> list[dict]:
    """Nearest indexed photos to model pixels (S, S, 3). With ``source`` (the query's file or bytes), hits in
    the verification band below the threshold are duplicates when keypoint matching confirms them, as the
    link step would have (``indexer.verify``)."""
    vec = ix.embedder.embed(pixels[None])
    query = None
    if source is not None and ix.settings.verify_band > 0:  # keypoints only when a band hit needs them
        def query() -> verify.Keypoints:
            return verify.keypoints_of(source, ix.settings.max_pixels, ix.settings.max_file_bytes)
    return similar_to_vector(ix, vec[0], k, query_keypoints=query)


def similar_to_vector(ix: Parts, vec: np.ndarray, k: int = 10, exclude: int | None = None,
                      query_keypoints: Callable[[], verify.Keypoints] | None = None) -> list[dict]:
    """``is_duplicate``: at or above the threshold, or in the band below it and verified: for an indexed
    query (``exclude``) by the stored pairs, for another (``query_keypoints``) by matching now."""
    hits = ix.store.search(vec[None], k + (1 if exclude is not None else 0))[0]
    hits = [(i, s) for i, s in hits if i != exclude][:k]
    thr, st = ix.threshold, ix.settings
    band = [i for i, sim in hits if thr - st.verify_band <= sim < thr] if st.verify_band > 0 else []
    with ix.catalog.session() as s:
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
        except Exception:
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


def similar_to_id(ix: Parts, image_id: int, k: int = 10) -> list[dict]:
    """Nearest photos to an indexed one (itself left out); KeyError when it has no vector."""
    vec = ix.store.get([image_id]).get(image_id)
    if vec is None:
        raise KeyError(image_id)
    return similar_to_vector(ix, vec, k, exclude=image_id)
