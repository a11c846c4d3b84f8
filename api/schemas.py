"""Request and response models (OpenAPI at /docs). One family per resource; a group and its members extend
the core's records (``indexer/views.py``), so the API and ``dupesift groups --json`` show the same fields."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from indexer.views import GroupView, MemberView


class Error(BaseModel):
    detail: str


# -- similar -------------------------------------------------------------------------------------
class SimilarResult(BaseModel):
    id: int
    path: str
    similarity: float
    is_duplicate: bool = Field(description="the link rule's verdict, as grouping decides (indexer/linkrule.py): "
                               "keypoints and content agree, smooth pictures match, or a clear cosine")
    group_id: int | None = None
    thumbnail_url: str | None = None


class SimilarResponse(BaseModel):
    threshold: float
    results: list[SimilarResult]


# -- groups --------------------------------------------------------------------------------------
class Member(MemberView):
    """A member as ``dupesift groups --json`` shows it (``indexer/views.py``), with what the API adds."""

    is_keeper: bool = False
    quarantined: bool = False
    thumbnail_url: str | None = None
    file_url: str | None = None


class GroupBase(GroupView):
    """A group as ``dupesift groups --json`` shows it (``indexer/views.py``), without its members."""


class Group(GroupBase):
    members: list[Member]


class PairSimilarity(BaseModel):
    a: int
    b: int
    similarity: float
    linked: bool = Field(description="a stored duplicate pair (at or above the threshold, or verified just "
                        "below it), not only computed")
    kind: str | None = Field(None, description="how a linked pair was found (indexer/linkrule.py): 'exact' "
                             "(same bytes), 'verified' (keypoints agree on one transform and the content under "
                             "it), 'framed' (keypoints agree on one transform and the photo inside them agrees: one photo in two "
                             "frames, windows or captions), 'pixels' (plain pictures whose small colour copies match), 'soft' (a photo and "
                             "its blurred or shrunk copy, matched cell by cell) or 'visual' (the cosine alone)")
    declined: bool = Field(False, description="marked 'not duplicates' by a user")
    bridge: bool = Field(False, description="the only checked link between two parts of the group, each of two "
                         "photos or more (indexer/grouping.py bridged): the group is left out of bulk decisions")


class Operation(BaseModel):
    op: str
    kind: str
    action: str | None
    at: str | None
    files: int
    state: str


class GroupDetail(Group):
    keeper_rule: str
    threshold: float
    pairs: list[PairSimilarity]
    also_keep: list[int] = Field(default_factory=list, description="members the group page ticks to keep beside "
                                 "the keeper: where one link alone joins two parts of the group (pairs[].bridge), "
                                 "the best photo of each part the keeper is not in; each of may_hold_another, and "
                                 "where the keeper is one of them, the best member that is not")
    reaching_out: list[int] = Field(default_factory=list, description="members with a checked link to a photo "
                                    "outside this group, whose merge the chain guard refused (indexer/grouping.py "
                                    "reaching_out: a collage, or a picture that holds another): the group is left "
                                    "out of bulk decisions")
    may_hold_another: list[int] = Field(default_factory=list, description="those of reaching_out that may be "
                                        "the only place of another picture, so the page ticks them to keep: all "
                                        "but a member whose photos outside are all collages and whose whole picture "
                                        "the keeper holds (indexer/grouping.py may_hold_another)")
    history: list[Operation]


class GroupsResponse(BaseModel):
    groups: list[Group]
    count: int = Field(description="groups on this page")
    total: int = Field(description="groups matching the filters")
    next_cursor: str | None = None


class ResolveRequest(BaseModel):
    keep: list[int] = Field(default_factory=list, max_length=10_000,
                            description="member ids to keep (keep_all: the members that are not duplicates; "
                                        "empty = all)")
    action: Literal["keep_all", "move_others", "trash_others"]


class MovedFile(BaseModel):
    image_id: int
    src: str
    dst: str


class LeftFile(BaseModel):
    image_id: int
    path: str
    why: str


class ResolveResponse(BaseModel):
    group_id: int
    action: str
    op: str | None
    kept: list[int]
    moved: list[MovedFile]
    groups_after: list[int]
    left: list[LeftFile] = Field(default_factory=list, description=(
        "members not moved because their file changed since it was indexed (rescan them)"))


# -- ingest and jobs -----------------------------------------------------------------------------
class IngestRequest(BaseModel):
    paths: list[str] = Field(min_length=1, max_length=1000, description="folders or files under a library root")
    prune_empty: bool = Field(False, description="forget the photos of a root that now scans to no photos at all "
                              "(by default they are kept with a warning: an unmounted drive looks the same)")


class IngestAccepted(BaseModel):
    job_id: str
    status: str
    url: str


class Failure(BaseModel):
    path: str
    reason: str | None
    message: str | None


class JobOut(BaseModel):
    id: str
    kind: str
    status: str
    params: dict
    total: int
    done: int
    failed: int
    rate: float | None = Field(None, description="photos per second")
    eta_seconds: float | None = None
    message: str | None = None
    summary: dict | None = None
    phases: dict | None = Field(None, description="in-process ingests: the phase now ('current': scan, embed, link "
                                "or finish) and each phase's state and done/total ('steps')")
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    failures: list[Failure] = Field(default_factory=list)


class JobsResponse(BaseModel):
    jobs: list[JobOut]


# -- service -------------------------------------------------------------------------------------
class Health(BaseModel):
    status: str
    model: str
    images: int


class Stats(BaseModel):
    images: dict[str, int]
    pairs: int
    groups: int
    duplicates: int
    reclaimable_bytes: int
    unresolved_groups: int
    unresolved_reclaimable_bytes: int
    resolved: dict[str, int]
    not_duplicates: int
    quarantined_files: int
    threshold: float
    model: str
