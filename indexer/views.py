"""The records dupesift shows of a group and its members: one definition for `groups --json` and the API.

The API's response models extend these (``api/schemas.py``), so a field added here reaches both, and a field
the API shows is always in the command line's output too.
"""
from __future__ import annotations

from pydantic import BaseModel

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
    similarity_to_keeper: float | None

    @classmethod
    def of(cls, m: Image) -> MemberView:
        return cls(id=m.id, path=to_text(m.path), bytes=m.bytes, width=m.width, height=m.height, format=m.format,
                   mtime=m.mtime, sha256=m.sha256, camera_exif=bool(m.camera_exif),
                   similarity_to_keeper=None if m.similarity_to_keeper is None else round(m.similarity_to_keeper, 6))


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

    @classmethod
    def fields_of(cls, g: DupGroup) -> dict:
        return {"id": g.id, "size": g.size, "keeper": g.keeper_id, "keeper_reason": g.keeper_reason,
                "max_distance": round(g.max_distance or 0.0, 6), "total_bytes": g.total_bytes,
                "reclaimable_bytes": g.reclaimable_bytes, "resolution": g.resolution,
                "resolved_at": g.resolved_at.isoformat() if g.resolved_at else None,
                "updated_at": g.updated_at.isoformat() if g.updated_at else None}


class GroupListing(GroupView):
    """A group with its members (``dupesift groups --json``)."""

    members: list[MemberView]

    @classmethod
    def of(cls, g: DupGroup, members: list[Image]) -> GroupListing:
        return cls(**GroupView.fields_of(g), members=[MemberView.of(m) for m in members])
