"""Query by example: the nearest indexed photos to an image, an indexed photo or a vector, with the verdict
the link step would give each (duplicate, or only similar)."""
from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from sqlalchemy import or_, select

from indexer.catalog import Image, Pair
from indexer.features import PhotoFeatures
from indexer.featurestore import FeatureSource, of_file
from indexer.fsnames import to_text
from indexer.linkrule import CROWD_K, decide
from indexer.parts import Parts

log = logging.getLogger(__name__)


def similar_to_pixels(ix: Parts, pixels: np.ndarray, k: int = 10,
                      source: os.PathLike | bytes | None = None) -> list[dict]:
    """Nearest indexed photos to model pixels (S, S, 3). With ``source`` (the query's file or bytes), a hit is a
    duplicate when the link rule would link it to the query (``indexer/linkrule.py``), as the link step would."""
    vec = ix.embedder.embed(pixels[None])
    query = None
    if source is not None:
        def query() -> tuple[PhotoFeatures, str]:
            data = source if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()
            return of_file(bytes(data), ix.settings.max_pixels), hashlib.sha256(data).hexdigest()
    return similar_to_vector(ix, vec[0], k, query_features=query)


def similar_to_vector(ix: Parts, vec: np.ndarray, k: int = 10, exclude: int | None = None,
                      query_features: Callable[[], tuple[PhotoFeatures, str]] | None = None) -> list[dict]:
    """``is_duplicate``: for an indexed query (``exclude``), whether a stored pair or its group joins the two;
    for another (``query_features``: its link features and content hash), the link rule's verdict on its
    ``verify_per_photo`` most similar hits, as the link step decides a photo's candidates (the rest: no)."""
    hits = ix.store.search(vec[None], max(k, CROWD_K + 1) + (1 if exclude is not None else 0))[0]
    hits = [(i, s) for i, s in hits if i != exclude]
    crowd = hits[CROWD_K - 1][1] if len(hits) >= CROWD_K else -1.0
    hits = hits[:k]
    rule, st = ix.rule, ix.settings
    confirmed: set[int] = set()
    with ix.catalog.session() as s:
        rows = {img.id: img for img in s.scalars(select(Image).where(Image.id.in_([i for i, _ in hits])))}
        if exclude is not None:
            own = s.get(Image, exclude)
            group = own.group_id if own is not None else None
            confirmed = {i for i, r in rows.items() if group is not None and r.group_id == group}
            for a, b in s.execute(select(Pair.a_id, Pair.b_id).where(or_(
                    (Pair.a_id == exclude) & Pair.b_id.in_(list(rows)), (Pair.b_id == exclude) & Pair.a_id.in_(list(rows))))):
                confirmed.add(b if a == exclude else a)
        elif query_features is not None:
            candidates = [(i, sim) for i, sim in hits if i in rows and sim >= rule.floor][:st.verify_per_photo]
            if candidates:
                confirmed = _decide_query(ix, s, query_features, candidates, rows, crowd)
    return [{"id": i, "path": to_text(rows[i].path), "similarity": round(sim, 6),
             "is_duplicate": i in confirmed, "group_id": rows[i].group_id}
            for i, sim in hits if i in rows]


def _decide_query(ix: Parts, s, query_features: Callable[[], tuple[PhotoFeatures, str]],
                  candidates: list[tuple[int, float]], rows: dict[int, Image], crowd: float) -> set[int]:
    """The candidates the link rule links to the query (a byte-identical one always)."""
    try:
        q, sha = query_features()
    except Exception:  # an unusable query: only a byte-identical photo can be confirmed, and there is none to tell
        log.warning("no link features for the query: no hit is called a duplicate", exc_info=True)
        return set()
    out = {i for i, _ in candidates if rows[i].sha256 == sha}
    st = ix.settings
    src = FeatureSource(s, max_pixels=st.max_pixels, max_bytes=st.max_file_bytes, threads=st.decode_workers or None)
    feats = src.get([i for i, _ in candidates if i not in out])
    for i, sim in candidates:
        f = feats.get(i)
        try:
            if i not in out and f is not None and decide(ix.rule, sim, q, f, crowd, rows[i].crowd) is not None:
                out.add(i)
        except Exception:  # an OpenCV error on odd keypoints: this hit is not called a duplicate
            log.warning("deciding the query against image %s failed", i, exc_info=True)
    return out


def similar_to_id(ix: Parts, image_id: int, k: int = 10) -> list[dict]:
    """Nearest photos to an indexed one (itself left out); KeyError when it has no vector."""
    vec = ix.store.get([image_id]).get(image_id)
    if vec is None:
        raise KeyError(image_id)
    return similar_to_vector(ix, vec, k, exclude=image_id)
