"""What the review pages show beyond the API's records: members keeper first, the last decision in words, the
compare table with its differences, and why two photos are grouped (the stored pair's evidence)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.schemas import GroupDetail, Member
from api.webpage import human_bytes
from indexer.catalog.models import Image, Pair
from indexer.grouping import look_alike, two_frames, two_moments
from indexer.views import MemberView

MEMBERS_SHOWN = 48  # cards a group page shows at first; the rest load on request ("show more")


LOST_ON = {  # keeper.choose's ``decided_by``, in a user's words
    "effective_pixels": "less real detail (upscaled, shrunk or cropped)", "border": "a border, padding or caption",
    "colour": "less colour (grey or faded)", "tint": "a colour cast (sepia or tint)",
    "clipped": "blown-out or crushed areas", "noise": "added noise or grain", "blockiness": "JPEG blocking",
    "quality": "lower JPEG quality", "cropped": "a crop: the keeper holds more of the picture",
    "saturated": "colour pushed beyond the others' (saturation or a vivid filter)",
    "levels": "brightness or contrast moved from the others' (an exposure or levels edit)",
    "halo": "sharpening rims at its edges (a sharpen or enhance filter)",
    "tie": "the same picture; file age or camera data decided"}


FACTS = (  # (g.best key, the phrase of a member's value, or None when it has none)
    ("border", lambda m: None if m.border is None else ("no border" if m.border < 0.01 else f"border {m.border:.0%}")),
    ("colour", lambda m: None if m.colour is None else ("grey" if m.colour < 1 else "colour")),
    ("jpeg_quality", lambda m: None if m.jpeg_quality is None else f"JPEG quality {m.jpeg_quality}"),
    ("camera_exif", lambda m: "camera data" if m.camera_exif else None),
)


@dataclass(frozen=True)
class GroupFacts:
    """What every member's facts are measured against, computed once per group page (not once per card)."""

    most_detail: int  # the group's most effective pixels
    detail_differs: bool
    differs: frozenset[str]  # FACTS keys whose phrase is not the same for every member


def group_facts(g: GroupDetail) -> GroupFacts:
    detail = [o.effective_pixels or 0 for o in g.members]
    most = max(detail, default=0)
    return GroupFacts(most, any(d < most for d in detail),
                      frozenset(key for key, phrase in FACTS if len({phrase(o) for o in g.members}) > 1))


def member_facts(g: GroupDetail, m: Member, ctx: GroupFacts) -> list[tuple[str, bool]]:
    """The keeper evidence of a member as short phrases, each with whether this member holds the group's best
    value of it (``g.best``); no mark where every member reads the same. ``ctx``: ``group_facts(g)``, made once
    for a page of cards."""
    facts = []
    if m.effective_pixels is not None and ctx.most_detail > 0:  # a score, so shown against the group's best
        share = round(100 * m.effective_pixels / ctx.most_detail)
        facts.append((f"real detail {share} %", share == 100 and ctx.detail_differs))
    for key, phrase in FACTS:
        text = phrase(m)
        if text is not None:
            facts.append((text, key in ctx.differs and g.best.get(key) == m.id))
    if g.best.get("age") == m.id and len(g.members) > 1:
        facts.append(("oldest file", True))
    return facts


def keeper_first(g: GroupDetail) -> list[Member]:
    """The keeper, then the others from most to least similar to it (ties by id)."""
    return sorted(g.members, key=lambda m: (not m.is_keeper, -(m.similarity_to_keeper or 0.0), m.id))


def decision_words(action: str | None, files: int) -> str:
    if action == "keep_all":
        return "kept all its photos (marked as not duplicates)"
    if action in ("move_others", "trash_others"):
        return f"moved {files} cop{'y' if files == 1 else 'ies'} to the quarantine"
    return "restored"


def why_grouped(kind: str | None, similarity: float, threshold: float, inliers: int | None,
                agreement: float | None, cover: float | None = None,
                taken: tuple[str | None, str | None] = (None, None), shifted: int | None = None) -> str:
    """One sentence a person can check: what evidence linked the two photos (``taken``: their capture times;
    ``shifted``: the cells of content that moved under the fit, ``Pair.shifted``)."""
    text = _why(kind, similarity, threshold, inliers, agreement)
    if kind in ("verified", "framed") and look_alike(kind, cover):
        text += (f"; but what agrees is only {cover:.0%} of what the two pictures share, the rest plain (one logo or "
                 "text on two plain pictures can do that), so this link alone keeps the group out of bulk decisions")
    if kind != "exact" and two_moments(*taken):
        text += (f"; but the camera took them at two moments ({taken[0]} and {taken[1]}): two shots of a burst look "
                 "this alike, so this link alone keeps the group out of bulk decisions")
    if two_frames(shifted):
        text += (f"; but {shifted} patches of the picture moved between them, the rest still: two frames of a camera "
                 "that did not move (people crossing the scene) look this alike, so this link alone keeps the group "
                 "out of bulk decisions")
    return text


def _why(kind: str | None, similarity: float, threshold: float, inliers: int | None, agreement: float | None) -> str:
    if kind == "exact":
        return "identical files (same bytes)"
    if kind == "verified":
        side = "a little under" if similarity < threshold else "at or above"
        parts = [f"look-alike score {similarity:.2f}, {side} the {threshold:.2f} threshold;"]
        parts.append(f"{inliers} matching keypoints agree on one geometric transform" if inliers else
                     "their keypoints agree on one geometric transform")
        if agreement is not None:
            parts.append(f"and {agreement:.0%} of the picture agrees under it")
        return " ".join(parts)
    if kind == "framed":
        share = f"{agreement:.0%} of the photo inside them agrees" if agreement is not None else "the photo inside them agrees"
        return (f"one photo in two frames, windows or captions: {inliers or 'their'} matching keypoints agree on one "
                f"geometric transform and {share}; only what surrounds it differs (look-alike score {similarity:.2f})")
    if kind == "pixels":
        return f"plain pictures whose small colour copies match (look-alike score {similarity:.2f})"
    if kind == "soft":
        return (f"one is the other blurred or shrunk (perhaps also cropped, turned a little or framed): the sharp one, "
                f"blurred as much, matches it in every part they share (look-alike score {similarity:.2f})")
    if kind == "visual":
        return f"look-alike score {similarity:.2f}, at or above the {threshold:.2f} threshold"
    return f"not linked directly (look-alike score {similarity:.2f}): in one group through other photos"


@dataclass
class Row:
    label: str
    values: list[str]
    differs: bool


def _when(t: float | None) -> str:
    return datetime.fromtimestamp(t or 0, UTC).strftime("%Y-%m-%d %H:%M")


def compare_rows(images: list[Image] | list[MemberView], keeper: int | None) -> list[Row]:
    """The attribute table of the compare view; ``differs`` marks a row whose values are not all the same."""
    spec = [
        ("file name", lambda m: os.path.basename(m.path)),
        ("folder", lambda m: os.path.dirname(m.path)),
        ("dimensions", lambda m: f"{m.width}×{m.height}" if m.width else "unknown"),
        ("megapixels", lambda m: f"{(m.width or 0) * (m.height or 0) / 1e6:.1f}"),
        ("file size", lambda m: human_bytes(m.bytes)),
        ("format", lambda m: m.format or "unknown"),
        ("modified", lambda m: _when(m.mtime)),
        ("camera metadata", lambda m: "yes" if m.camera_exif else "no"),
        ("taken (camera clock)", lambda m: m.taken_at or "not recorded"),
        ("suggested keeper", lambda m: "yes" if m.id == keeper else "no"),
        ("similarity to keeper", lambda m: "–" if m.similarity_to_keeper is None else f"{m.similarity_to_keeper:.3f}"),
    ]
    rows = []
    for label, fn in spec:
        values = [fn(m) for m in images]
        rows.append(Row(label, values, len(set(values)) > 1))
    return rows


@dataclass
class Evidence:
    a: str
    b: str
    text: str


def pair_evidence(s: Session, images: list[Image] | list[MemberView], threshold: float, vectors: dict) -> list[Evidence]:
    """Why each two of ``images`` are grouped: the stored pair's evidence, or the cosine when no pair links them."""
    ids = [m.id for m in images]
    names = {m.id: os.path.basename(m.path) for m in images}
    taken = {m.id: m.taken_at for m in images}
    stored = {(p.a_id, p.b_id): p for p in s.scalars(select(Pair).where(Pair.a_id.in_(ids), Pair.b_id.in_(ids)))}
    out = []
    for i, a in enumerate(sorted(ids)):
        for b in sorted(ids)[i + 1:]:
            p = stored.get((a, b))
            if p is not None:
                text = why_grouped(p.kind, p.similarity, threshold, p.inliers, p.agreement, p.cover,
                                   (taken[a], taken[b]), p.shifted)
            elif a in vectors and b in vectors:
                text = why_grouped(None, float(vectors[a] @ vectors[b]), threshold, None, None)
            else:
                continue
            out.append(Evidence(names[a], names[b], text))
    return out
