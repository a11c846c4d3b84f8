"""The records dupesift shows of a group and its members: one definition for `groups --json` and the API.

The API's response models extend these (``api/schemas.py``), so a field added here reaches both, and a field
the API shows is always in the command line's output too.
"""
from __future__ import annotations

from collections.abc import Collection, Sequence

from pydantic import BaseModel

from indexer import keeper
from indexer.catalog.models import DupGroup, Image
from indexer.fsnames import to_text


class MemberView(BaseModel):
    id: int
    path: str  # fsnames.to_text: a byte that is not UTF-8 shows as U+FFFD and its two hex digits
    bytes: int
    width: int | None
    height: int | None
    format: str | None
    mtime: float
    sha256: str | None
    camera_exif: bool = False  # still carries the camera's EXIF (make/model/date taken): a keeper criterion
    taken_at: str | None = None  # the camera's capture time (EXIF), None when the file has none
    similarity_to_keeper: float | None
    # The keeper evidence (indexer/keeper.py), None where the photo was never measured
    effective_pixels: int | None = None  # pixels of real picture: the content box's, scaled by the detail present
    detail: float | None = None  # effective resolution over resolution along a side
    border: float | None = None  # share of the frame that is padding, border, rotation fill or a caption bar
    colour: float | None = None  # colourfulness, 0 for grey
    tint: float | None = None  # share of the colour that is one hue (sepia, a tint)
    clipped: float | None = None  # share of pixels clipped at black or white
    noise: float | None = None
    blockiness: float | None = None  # JPEG block edges over other edges (about 1 = none)
    jpeg_quality: int | None = None  # from the quantisation tables; None when not a JPEG
    halo: float | None = None  # overshoot at edges over their step: the rims a sharpening filter draws
    held: float | None = None  # share of the group's picture it holds (a crop holds part); None when not known
    keeper_score: float | None = None  # the picture score the keeper rule ranks by
    decided_by: str | None = None  # the evidence this member lost to the keeper on; None for the keeper

    @classmethod
    def of(cls, m: Image, explained: tuple[float, str | None] | None = None) -> MemberView:
        a = keeper.from_row(m)
        facts = {} if a is None else {
            "effective_pixels": round(a.effective_pixels(m.width or 0, m.height or 0)),
            "detail": round(a.detail_scale, 4), "border": round(a.border, 4), "colour": round(a.colour, 2),
            "tint": round(a.tint, 3), "clipped": round(a.clipped, 4), "noise": round(a.noise, 3),
            "blockiness": round(a.blockiness, 3), "jpeg_quality": a.jpeg_quality, "halo": round(a.halo, 3)}
        if m.held is not None:
            facts["held"] = round(m.held, 4)
        if explained is not None:
            facts |= {"keeper_score": round(explained[0], 4), "decided_by": explained[1]}
        return cls(id=m.id, path=to_text(m.path), bytes=m.bytes, width=m.width, height=m.height, format=m.format,
                   mtime=m.mtime, sha256=m.sha256, camera_exif=bool(m.camera_exif), taken_at=m.taken_at,
                   similarity_to_keeper=None if m.similarity_to_keeper is None else round(m.similarity_to_keeper, 6),
                   **facts)


def member_views(keeper_id: int | None, members: Sequence[Image], pages: Collection[int] = ()
                 ) -> tuple[list[MemberView], dict[str, int]]:
    """A group's members, keeper first, each with the evidence it lost on; and for each attribute the member
    that holds its best value (``keeper.winners``); ``pages``: the members that are pages
    (``featurestore.pages``), as the keeper rule saw them."""
    cands = [keeper.candidate(m, m.id in pages) for m in members]
    explained = keeper.explain(keeper_id, cands)
    views = [MemberView.of(m, explained[m.id]) for m in members]
    views.sort(key=lambda v: (v.id != keeper_id, -(v.keeper_score or 0.0), v.id))
    return views, keeper.winners(cands)


class GroupView(BaseModel):
    id: int
    size: int
    keeper: int | None
    keeper_reason: str | None
    max_distance: float  # 1 - the lowest cosine between two members: a large value exposes chaining
    total_bytes: int
    reclaimable_bytes: int
    resolution: str | None
    resolved_at: str | None = None
    updated_at: str | None = None
    look_only: bool | None = None  # bulk review leaves it out (``indexer.grouping.look_only``)
    best: dict[str, int] = {}  # attribute -> the member holding its best value (MemberView's fields, "pixels", "age")

    @classmethod
    def fields_of(cls, g: DupGroup) -> dict:
        return {"id": g.id, "size": g.size, "keeper": g.keeper_id, "keeper_reason": g.keeper_reason,
                "max_distance": round(g.max_distance or 0.0, 6), "total_bytes": g.total_bytes,
                "reclaimable_bytes": g.reclaimable_bytes, "resolution": g.resolution,
                "resolved_at": g.resolved_at.isoformat() if g.resolved_at else None,
                "updated_at": g.updated_at.isoformat() if g.updated_at else None, "look_only": g.look_only}


class GroupListing(GroupView):
    """A group with its members (``dupesift groups --json``)."""

    members: list[MemberView]

    @classmethod
    def of(cls, g: DupGroup, members: list[Image], pages: Collection[int] = ()) -> GroupListing:
        views, best = member_views(g.keeper_id, members, pages)
        return cls(**GroupView.fields_of(g), members=views, best=best)
