"""Numbers and listings of an index: the counts every caller shows (``status``, the API's ``/stats`` and
``/metrics``, an ingest's summary) computed in one place, and the groups with their members."""
from __future__ import annotations

import os

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from indexer import browse, featurestore
from indexer.catalog import DupGroup, Image, ImageStatus, NotDuplicate, Pair, Root
from indexer.catalog.db import safe_url
from indexer.catalog.queries import scalars_in, under_prefix
from indexer.modelswitch import needs_embedding
from indexer.parts import Parts
from indexer.views import GroupListing


def image_counts(s: Session) -> dict[str, int]:
    """Photos per catalog status (``indexed``, ``pending``, ``failed``)."""
    return {(k.value if hasattr(k, "value") else str(k)): int(v)
            for k, v in s.execute(select(Image.status, func.count()).group_by(Image.status))}


def indexed_count(s: Session) -> int:
    return int(s.scalar(select(func.count()).select_from(Image).where(Image.status == ImageStatus.indexed)) or 0)


def pair_count(s: Session) -> int:
    return int(s.scalar(select(func.count()).select_from(Pair)) or 0)


def group_counts(s: Session) -> dict[str, int]:
    """Groups, and duplicates: the photos in groups beyond one keeper per group."""
    t = browse.totals(s)
    return {"groups": t["groups"], "duplicates": t["duplicates"]}


def groups(ix: Parts, min_size: int = 2) -> list[dict]:
    """Every duplicate group with its members, largest first (the `groups --json` contract)."""
    with ix.catalog.session() as s:
        rows = list(s.scalars(select(DupGroup).where(DupGroup.size >= min_size)
                              .order_by(DupGroup.size.desc(), DupGroup.id)))
        members: dict[int, list[Image]] = {}
        for img in scalars_in(s, select(Image).order_by(Image.id), Image.group_id, [g.id for g in rows]):
            members.setdefault(img.group_id, []).append(img)
        pages = featurestore.pages(s, [m.id for ms in members.values() for m in ms])
        return [GroupListing.of(g, members.get(g.id, []), pages).model_dump() for g in rows]


def status(ix: Parts) -> dict:
    """Counts, model, threshold and where everything is stored (``dupesift status``)."""
    with ix.catalog.session() as s:
        counts, pairs, g = image_counts(s), pair_count(s), group_counts(s)
        roots = list(s.scalars(select(Root.path).order_by(Root.path)))
    st, spec = ix.settings, ix.spec
    return {
        "images": counts, "pairs": pairs, "groups": g["groups"], "duplicates": g["duplicates"],
        "model": {"name": spec.name, "version": spec.version, "id": spec.model_id, "path": str(st.model_path),
                  "dim": spec.dim, "input_size": spec.input_size, "providers": ix.embedder.providers},
        "threshold": ix.threshold,
        "threshold_source": "DUPESIFT_THRESHOLD" if st.threshold is not None else "model calibration",
        "link_rule": ix.link_rule,  # the band below the threshold that keypoint verification may link
        "data_dir": str(st.data_dir),
        "catalog": safe_url(st.sqlalchemy_url),
        "milvus": st.milvus_target, "collection": ix.store.collection, "alias": st.collection,
        "roots": roots,
        "vectors": ix.store.count(),  # in this model's collection; equals images.indexed when in step
        "needs_embedding": needs_embedding(ix),  # root -> photos waiting for a vector of this model
    }


def stats(ix: Parts, s: Session) -> dict:
    """Counts for people reviewing groups (the API's ``/stats``): decisions taken and space to reclaim."""
    resolved = {r: int(n) for r, n in s.execute(select(DupGroup.resolution, func.count())
                                                 .where(DupGroup.resolution.is_not(None)).group_by(DupGroup.resolution))}
    q = str(ix.settings.quarantine_dir).rstrip(os.sep) + os.sep
    return {"images": image_counts(s), "pairs": pair_count(s), **browse.totals(s), "resolved": resolved,
            "not_duplicates": int(s.scalar(select(func.count()).select_from(NotDuplicate)) or 0),
            "quarantined_files": int(s.scalar(select(func.count()).select_from(Image)
                                              .where(under_prefix(Image.path, q))) or 0),
            "threshold": ix.threshold, "model": ix.spec.model_id}
