"""Duplicate groups: the pair graph merged by a disjoint set, guarded against chains, with stable ids.

Groups are transitive (A~B and A~C puts B and C together even when B and C were never paired), which lets one
wrong pair join two whole groups. So pairs are merged strongest first (exact, then verified, then the rest, by
similarity), and a pair that would join two groups of several photos each (or a photo to a group) is held back
unless the two sides are alike as a whole: their mean cosine at least ``CHAIN_MEAN`` and no two of their photos
below ``CHAIN_MIN`` (complete linkage's worst pair). A byte-identical pair always merges. Photos the camera took at
two moments (their EXIF capture times: ``two_moments``) never share a group but by identical bytes: two shots of a
burst. A photo that holds two pictures side by side (a collage: ``composed``) joins no group but by identical bytes. ``regroup``
recomputes only the pair-connected components that touch the given images, so an incremental ingest merges
groups and a removal splits only the group it left.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import replace
from datetime import datetime

import numpy as np
from disjoint_set import DisjointSet
from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from indexer import featurestore, keeper, verify
from indexer.catalog.models import DupGroup, Image, Pair, utcnow
from indexer.catalog.queries import execute_in, rows_in, scalars_in

VectorsFn = Callable[[list[int]], dict[int, np.ndarray]]
# The chain guard (module docstring); chosen on our own libraries: bench/README.md, "Link rule"
CHAIN_MEAN = 0.3
CHAIN_MIN = 0.0
KIND_RANK = {"exact": 3, "verified": 2, "framed": 2, "pixels": 1, "soft": 1, "visual": 1}
# Links on the look alone: small colour copies or the cosine, no check of the pictures' content cell by cell. A
# group that needs one of them to hold together is left out of bulk review (bench/README.md, "Small subjects on
# one ground").
LOOK_KINDS = frozenset({"pixels", "visual"})
# A checked link whose content agrees over less than this share of the two pictures' overlap (``Pair.cover``)
# counts as a look-alike link too: different plain pictures under one logo or text agree on that alone
# (bench/README.md, "Checked on a small part").
MIN_COVER = 0.3
# A member whose photos outside are all collages may go unticked only if the keeper holds at least this share of
# its keypoints (``keeper.holds_both``): copies measure 1.0 on the collage probe, a collage in the group 0.54.
HOLDS_ALL = 0.99
# Two capture times this many seconds apart (a multiple) are one moment on two clocks: a time-zone fix of a copy
# moves its EXIF time by whole quarter hours, at most a day and two hours (UTC-12 to UTC+14).
CLOCK_SHIFT = 900
MAX_CLOCK_SHIFT = 26 * 3600
# A group of more photos than this is left out of bulk review too: the more photos one decision moves, the more a
# wrong link costs, and frames of a fixed camera link one to the next (bench/README.md, "Large groups").
MAX_BULK = 20
# A checked link under whose fit this many cells of content moved (``Pair.shifted``) joins two frames of a camera that
# did not move, not two copies: the group is left out of bulk review (bench/README.md, "Content that moved").
MAX_SHIFTED = 6
# A group whose checked links fall apart into two parts of this many photos or more when one link is taken out is
# left out too: two views of one scene, each beside its own copy, join on the one link their overlap gave, where the
# copies of one photo link every one to every other (bench/README.md, "One link between two parts").
MIN_PART = 2
# A photo whose checked links reach two groups holds both pictures in one place (one over the other: a copy of
# both, as where the guard split one photo's copies) when their matched areas in it (the inliers' boxes) overlap by
# at least this share of the smaller; below it, the two pictures lie side by side in it: a collage, a picture of its
# own (bench/README.md, "A photo beside other photos").
MIN_SIDE_OVERLAP = 0.25


def components(nodes: Iterable[int], edges: Iterable[tuple[int, int]]) -> list[list[int]]:
    """Connected components (size >= 2) of the graph, largest first."""
    ds: DisjointSet = DisjointSet()
    for n in nodes:
        ds.find(n)
    for a, b in edges:
        ds.union(a, b)
    comps = [sorted(c) for c in ds.itersets() if len(c) > 1]
    return sorted(comps, key=lambda c: (-len(c), c[0]))


def strength(kind: str, similarity: float) -> float:
    """The order pairs are merged in: by kind of evidence, then by similarity."""
    return KIND_RANK.get(kind, 0) + float(similarity)


def clusters(edges: Iterable[tuple[int, int, str, float]], vectors: VectorsFn,
             taken: Mapping[int, str | None] | None = None) -> list[list[int]]:
    """The groups (size >= 2, largest first) of pairs (a, b, kind, similarity), merged strongest first with
    the chain guard (see the module docstring); a merge that would hold two capture times (``taken``:
    ``Image.taken_at`` by id; ``two_moments``) is refused but for identical bytes: two shots, not one photo."""
    edges = sorted(edges, key=lambda e: (-strength(e[2], e[3]), e[0], e[1]))
    nodes = sorted({x for a, b, _, _ in edges for x in (a, b)})
    vecs = vectors(nodes) if nodes else {}
    parent = {n: n for n in nodes}
    members = {n: [n] for n in nodes}
    times = {n: {t} if (t := (taken or {}).get(n)) else set() for n in nodes}

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b, kind, _ in edges:
        x, y = find(a), find(b)
        if x == y or (kind != "exact" and (any(two_moments(t, u) for t in times[x] for u in times[y])
                                           or not _alike(members[x], members[y], vecs))):
            continue
        if len(members[x]) < len(members[y]):
            x, y = y, x
        parent[y] = x
        members[x] += members.pop(y)
        times[x] |= times.pop(y)
    comps = [sorted(m) for m in members.values() if len(m) > 1]
    return sorted(comps, key=lambda c: (-len(c), c[0]))


def _alike(xs: list[int], ys: list[int], vecs: dict[int, np.ndarray]) -> bool:
    """Whether two sides may merge: two single photos always (their pair passed the link rule); else mean
    cosine >= CHAIN_MEAN and no cross pair below CHAIN_MIN (photos without a vector are not counted)."""
    if len(xs) == 1 and len(ys) == 1:
        return True
    a = [vecs[i] for i in xs if i in vecs]
    b = [vecs[i] for i in ys if i in vecs]
    if not a or not b:
        return True
    sims = np.stack(a) @ np.stack(b).T
    return float(sims.mean()) >= CHAIN_MEAN and float(sims.min()) >= CHAIN_MIN


def look_alike(kind: str, cover: float | None) -> bool:
    """Whether a stored pair's evidence is the look alone (``LOOK_KINDS``) or a check that agreed on a small part
    of the pictures only (``MIN_COVER``)."""
    return kind in LOOK_KINDS or (cover is not None and cover < MIN_COVER)


def two_moments(a: str | None, b: str | None) -> bool:
    """Whether two capture times (``Image.taken_at``) are both known and name two moments: two shots, not one
    photo. A copy keeps its original's time, or loses its sub-second digits, or carries it shifted by whole
    quarter hours (a camera clock set to another time zone, fixed in an editor): none of these count."""
    if a is None or b is None or a == b:
        return False
    ta, tb = _moment(a), _moment(b)
    if ta is None or tb is None:
        return False
    (sa, fa), (sb, fb) = ta, tb
    if sa == sb:
        return fa is not None and fb is not None and fa != fb
    shift = abs(sa - sb)
    return not (shift % CLOCK_SHIFT == 0 and shift <= MAX_CLOCK_SHIFT and (fa is None or fb is None or fa == fb))


def _moment(taken: str) -> tuple[int, float | None] | None:
    """(whole seconds since 0001-01-01, the fraction of a second or None) of a capture time; None if malformed."""
    try:
        t = datetime.strptime(taken[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    digits = taken[20:] if len(taken) > 20 and taken[19] == "." else ""
    return int((t - datetime(1, 1, 1)).total_seconds()), int(digits) / 10 ** len(digits) if digits.isdigit() else None


def two_frames(shifted: int | None) -> bool:
    """Whether a stored pair's content moved under its fit (``Pair.shifted`` at least ``MAX_SHIFTED``)."""
    return shifted is not None and shifted >= MAX_SHIFTED


def look_only(members: Iterable[int], pairs: Iterable[tuple[int, int, str, float | None, int | None]],
              taken: dict[int, str | None] | None = None, beyond: bool = False) -> bool:
    """Whether bulk review leaves ``members`` (one group) to a person: they are more than ``MAX_BULK``, a photo of
    theirs has a checked link to a photo outside them (``beyond``: ``reaching_out``), they hold two capture times
    (``taken``: ``Image.taken_at`` by id, where known; ``two_moments``: ``clusters`` refuses such a merge, so this
    guards groups formed otherwise), hold a pair whose content moved (``two_frames``),
    fall apart without their look-alike links (``look_alike``) or hang on one link between two parts (``bridged``);
    ``pairs``: (a, b, kind, cover, shifted) of the stored pairs among them. Frames of a camera that did not move
    link one to the next, each pair differing little, so one pair that shows the people moved is enough."""
    members, pairs = list(members), list(pairs)
    if len(members) > MAX_BULK or beyond:
        return True
    times = sorted({taken.get(m) for m in members} - {None}) if taken else []
    if any(two_moments(t, u) for k, t in enumerate(times) for u in times[k + 1:]):  # joined by identical bytes
        return True
    if any(two_frames(shifted) for *_, shifted in pairs):
        return True
    links = [(a, b) for a, b, kind, cover, _ in pairs if not look_alike(kind, cover)]
    checked = components(members, links)
    return not (len(checked) == 1 and len(checked[0]) == len(members)) or bridged(members, links)


def reaching_out(members: Iterable[int], pairs: Iterable[tuple[int, int, str, float | None]]) -> list[int]:
    """The ``members`` (one group) with a checked link (not ``look_alike``) to a photo outside them: the chain guard
    refused that merge, or the photo outside holds pictures side by side (``composed``). A collage links to each
    photo it holds, and a picture that holds another (a photo inside a page or a frame) to both, so such a photo may
    be the only place where another picture is kept; ``pairs``: (a, b, kind, cover) of the stored pairs that touch
    them."""
    return sorted(_outside(members, pairs))


def _outside(members: Iterable[int], pairs: Iterable[tuple[int, int, str, float | None]]) -> dict[int, set[int]]:
    """Each of ``members`` with a checked link to a photo outside them, and those photos (``reaching_out``)."""
    inside = set(members)
    out: dict[int, set[int]] = defaultdict(set)
    for a, b, kind, cover in pairs:
        if (a in inside) != (b in inside) and not look_alike(kind, cover):
            m, x = (a, b) if a in inside else (b, a)
            out[m].add(x)
    return out


def same_moment(members: Iterable[int], pairs: Iterable[tuple[int, int, str, float | None]],
                times_of: Callable[[int], set[str]]) -> list[tuple[int, int, str, float | None]]:
    """``pairs`` (a, b, kind, cover) touching ``members`` (one group) but those to a photo of another moment
    (``two_moments`` between the capture times of its group, or its own, ``times_of``, and theirs): another shot
    of a burst, or a copy of one, holds nothing of the group's picture."""
    inside = set(members)
    mine = {t for m in inside for t in times_of(m)}
    return [p for p in pairs if not any(two_moments(t, u) for x in p[:2] if x not in inside
                                        for t in times_of(x) for u in mine)]


def moments_of(group_of: Mapping[int, Hashable | None], taken: Mapping[int, str | None]) -> Callable[[int], set[str]]:
    """A photo's known capture times (``same_moment``'s ``times_of``): those of its group's members (``group_of``:
    photo -> group, None or absent for a photo in none; ``taken``: ``Image.taken_at`` by id, of every member), or
    its own."""
    by_group: dict[Hashable, set[str]] = defaultdict(set)
    for i, g in group_of.items():
        if g is not None and (t := taken.get(i)):
            by_group[g].add(t)

    def times_of(x: int) -> set[str]:
        if (g := group_of.get(x)) is not None:
            return by_group.get(g, set())
        return {t} if (t := taken.get(x)) else set()

    return times_of


def group_times(session: Session, photos: Iterable[int]) -> Callable[[int], set[str]]:
    """``moments_of`` for ``photos`` as the catalog groups them."""
    photos = set(photos)
    rows = list(rows_in(session, select(Image.id, Image.group_id, Image.taken_at), Image.id, photos))
    rows += rows_in(session, select(Image.id, Image.group_id, Image.taken_at), Image.group_id,
                    {g for _, g, _ in rows if g is not None})
    return moments_of({i: g for i, g, _ in rows}, {i: t for i, _, t in rows})


def may_hold_another(session: Session, members: Iterable[int], pairs: Iterable[tuple[int, int, str, float | None]],
                     keeper_id: int | None) -> list[int]:
    """The ``reaching_out`` members that may be the only place of another picture, so the group page ticks them to
    keep. Not one whose every photo outside is a collage (``collages``: it holds the member's picture beside
    another and joins no group) and whose whole picture the keeper holds (``HOLDS_ALL``; a collage in the group
    is held only in part); nor the keeper when every other member holds its whole picture (a keeper that is a
    collage holds more than they do); ``pairs``: as for ``reaching_out``."""
    inside = set(members)
    outside = _outside(inside, pairs)
    if not outside:
        return []
    apart = collages(session, {x for xs in outside.values() for x in xs})
    asked = [m for m, xs in outside.items() if not xs - apart]
    if keeper_id is None or not asked:  # without a keeper, nothing says what a member holds
        return sorted(outside) if keeper_id is None else sorted(m for m, xs in outside.items() if xs - apart)
    others = [m for m in inside if m != keeper_id] if keeper_id in asked else [m for m in asked if m != keeper_id]
    kps = featurestore.keypoints(session, {*others, keeper_id})
    share = {m: keeper.holds_both(kps[keeper_id], kps[m]) if m in kps and keeper_id in kps else None for m in others}
    whole = {m for m, both in share.items() if both is not None and both[0] >= HOLDS_ALL}
    keeper_whole = all(both is not None and both[1] >= HOLDS_ALL for both in share.values())
    return sorted(m for m, xs in outside.items()
                  if xs - apart or (m == keeper_id and not keeper_whole) or (m != keeper_id and m not in whole))


def bridged(members: Iterable[int], links: Iterable[tuple[int, int]]) -> bool:
    """Whether one of ``links`` alone holds ``members`` together between two parts of ``MIN_PART`` photos or
    more each (a bridge of the graph; groups asked are at most ``MAX_BULK``)."""
    return any(True for _ in bridges(members, links))


def bridges(members: Iterable[int], links: Iterable[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    """The links of ``bridged``: each one that alone holds two such parts of ``members`` together."""
    members, links = list(members), list(links)
    for k in range(len(links)):
        parts = components(members, links[:k] + links[k + 1:])
        if len(parts) == 2 and sum(map(len, parts)) == len(members) and min(map(len, parts)) >= MIN_PART:
            yield links[k]


def composed(session: Session, edges: Iterable[tuple[int, int, str, float]], covers: dict[tuple[int, int], float | None],
             comps: list[list[int]]) -> set[int]:
    """The photos that hold two pictures side by side (a collage): their checked links reach two of ``comps`` (the
    chain guard kept those apart) or a photo in none, and the matched keypoints of two of them lie in separate
    places of the photo (``MIN_SIDE_OVERLAP``; the fits from the link features kept in the catalog: no file is
    read). ``covers``: each pair's ``Pair.cover``."""
    comp_of = {m: n for n, comp in enumerate(comps) for m in comp}
    links = [(a, b) for a, b, kind, _ in edges if kind != "exact" and not look_alike(kind, covers.get((a, b)))]
    return _side_by_side(session, links, lambda y: comp_of.get(y, -y - 1))


def collages(session: Session, photos: Iterable[int]) -> set[int]:
    """Those of ``photos`` that ``composed`` calls collages, asked of their stored pairs and present groups: a
    collage joins no group, so a group's photo that links to one is held in it beside another picture, and not
    the other way round."""
    photos = set(photos)
    links = [(a, b) for a, b, kind, cover in rows_in(
        session, select(Pair.a_id, Pair.b_id, Pair.kind, Pair.cover),
        lambda c: or_(Pair.a_id.in_(c), Pair.b_id.in_(c)), photos)
        if kind != "exact" and not look_alike(kind, cover)]
    partners = {y for a, b in links for y in (a, b)}
    group_of = {i: g for i, g in rows_in(session, select(Image.id, Image.group_id), Image.id, partners) if g is not None}
    return _side_by_side(session, [(a, b) for a, b in links if a in photos or b in photos],
                         lambda y: group_of.get(y, -y - 1), photos)


def _side_by_side(session: Session, links: list[tuple[int, int]], part_of: Callable[[int], int],
                  asked_of: set[int] | None = None) -> set[int]:
    """The photos whose ``links`` reach two parts (``part_of``; a photo in none is a part of its own) at separate
    places of the photo; only those of ``asked_of`` when given."""
    reach: dict[int, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for a, b in links:
        for x, y in ((a, b), (b, a)):
            if asked_of is None or x in asked_of:
                reach[x][part_of(y)].append(y)
    asked = {m: list(by.values()) for m, by in reach.items() if len(by) > 1}
    if not asked:
        return set()
    kps = featurestore.keypoints(session, set(asked) | {y for parts in asked.values() for ys in parts for y in ys})
    out = set()
    for m, parts in asked.items():
        boxes = [b for ys in parts if (b := _matched_box(kps, m, ys)) is not None]
        if any(_overlap(p, q) < MIN_SIDE_OVERLAP for k, p in enumerate(boxes) for q in boxes[k + 1:]):
            out.add(m)
    return out


Box = tuple[float, float, float, float]


def _matched_box(kps: dict[int, verify.Keypoints], m: int, partners: list[int]) -> Box | None:
    """The largest of the inliers' boxes in ``m``'s frame of its fits to ``partners``; None without a fit."""
    boxes = []
    for y in partners:
        if m not in kps or y not in kps:
            continue
        f = verify.fit_or_none(kps[m], kps[y])
        if f is not None and f.box is not None:
            boxes.append(f.box)
    return max(boxes, key=_area, default=None)


def _area(b: Box) -> float:
    return max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])


def _overlap(p: Box, q: Box) -> float:
    """The area two boxes share over the smaller one's."""
    common = (max(p[0], q[0]), max(p[1], q[1]), min(p[2], q[2]), min(p[3], q[3]))
    return _area(common) / max(min(_area(p), _area(q)), 1e-9)


def regroup(session: Session, touched: Iterable[int], vectors: VectorsFn) -> set[int]:
    """Recompute the groups around ``touched`` images from stored pairs; returns the live group ids.

    Group ids are kept stable: each new component takes the old id that most of its members had. Each group's
    ``look_only`` is set from its own pairs here, where they are at hand (``look_only``).
    """
    touched = {int(t) for t in touched}
    if not touched:
        return set()
    old_gids = set(scalars_in(session, select(Image.group_id).where(Image.group_id.is_not(None)), Image.id, touched))
    members = set(touched) | set(scalars_in(session, select(Image.id), Image.group_id, old_gids))
    edges: set[tuple[int, int, str, float]] = set()
    checks: dict[tuple[int, int], tuple[float | None, int | None]] = {}
    frontier = set(members)
    while frontier:  # pairs reach outside `members` where the guard held one back: follow them
        found: set[int] = set()
        for a, b, kind, sim, cov, shifted in rows_in(
                session, select(Pair.a_id, Pair.b_id, Pair.kind, Pair.similarity, Pair.cover, Pair.shifted),
                lambda c: or_(Pair.a_id.in_(c), Pair.b_id.in_(c)), frontier):
            edges.add((a, b, kind, sim))
            checks[(a, b)] = (cov, shifted)
            found.update((a, b))
        frontier = found - members
        members |= frontier
        old_gids.update(scalars_in(session, select(Image.group_id).where(Image.group_id.is_not(None)), Image.id,
                                   frontier))
    moments = dict(rows_in(session, select(Image.id, Image.taken_at), Image.id, members))
    comps = clusters(edges, vectors, moments)
    if apart := composed(session, edges, {k: v[0] for k, v in checks.items()}, comps):  # collages: pictures of their own
        comps = clusters({e for e in edges if e[2] == "exact" or not {e[0], e[1]} & apart}, vectors, moments)
    comp_of = {m: n for n, comp in enumerate(comps) for m in comp}
    inside: dict[int, list[tuple[int, int, str, float | None, int | None]]] = defaultdict(list)  # its own pairs
    across: dict[int, list[tuple[int, int, str, float | None]]] = defaultdict(list)  # its pairs to other photos
    for a, b, kind, _ in edges:
        if a in comp_of and comp_of[a] == comp_of.get(b):
            inside[comp_of[a]].append((a, b, kind, *checks[(a, b)]))
        else:  # a photo held in a collage too is left to a person, as ``reaching_out`` asks of the stored pairs
            for n in {comp_of.get(a), comp_of.get(b)} - {None}:
                across[n].append((a, b, kind, checks[(a, b)][0]))

    times_of = moments_of(comp_of, moments)
    current = dict(rows_in(session, select(Image.id, Image.group_id), Image.id, members))
    taken: set[int] = set()
    live: set[int] = set()
    look: dict[bool, list[int]] = {True: [], False: []}
    for n, comp in enumerate(comps):
        votes: dict[int, int] = defaultdict(int)
        for m in comp:
            g = current.get(m)
            if g is not None and g not in taken:
                votes[g] += 1
        if votes:
            gid = max(votes, key=lambda g: (votes[g], -g))
        else:
            group = DupGroup(size=len(comp))
            session.add(group)
            session.flush()
            gid = group.id
        taken.add(gid)
        live.add(gid)
        beyond = reaching_out(comp, same_moment(comp, across[n], times_of))
        look[look_only(comp, inside[n], moments, bool(beyond))].append(gid)
        changed = [m for m in comp if current.get(m) != gid]
        execute_in(session, update(Image).values(group_id=gid), Image.id, changed)
        if changed:  # a photo joined: the user's decision did not cover it, so the group is open again
            session.execute(update(DupGroup).where(DupGroup.id == gid, DupGroup.resolution.is_not(None))
                            .values(resolution=None, resolved_at=None))
    for flag, gids in look.items():
        execute_in(session, update(DupGroup).values(look_only=flag), DupGroup.id, gids)
    in_group = {m for c in comps for m in c}
    loners = [m for m in members if m not in in_group and current.get(m) is not None]
    execute_in(session, update(Image).values(group_id=None, similarity_to_keeper=None, held=None), Image.id, loners)
    execute_in(session, delete(DupGroup), DupGroup.id, old_gids - live)
    refresh_groups(session, live, vectors)
    return live


def refresh_groups(session: Session, gids: Iterable[int], vectors: VectorsFn) -> None:
    """Recompute size, keeper, bytes, similarity to keeper and max_distance of the given groups, and the share of
    its group's picture each member holds (``keeper.holdings``, from the link features kept in the catalog: no
    file is read)."""
    gids = sorted(set(gids))
    pages = featurestore.pages(session, scalars_in(session, select(Image.id), Image.group_id, gids))
    for gid in gids:
        members = list(session.scalars(select(Image).where(Image.group_id == gid)))
        group = session.get(DupGroup, gid)
        if group is None:
            continue
        if len(members) < 2:
            for m in members:
                m.group_id, m.similarity_to_keeper, m.held = None, None, None
            session.delete(group)
            continue
        cands = [keeper.candidate(m, m.id in pages) for m in members]
        kps = featurestore.keypoints(session, [m.id for m in members])
        held = keeper.holdings(kps, keeper.order(cands))
        for m in members:
            m.held = held.get(m.id)
        chosen = keeper.choose([replace(c, held=held.get(c.id)) for c in cands])
        vecs = vectors([m.id for m in members])
        kv = vecs.get(chosen.image_id)
        for m in members:
            v = vecs.get(m.id)
            m.similarity_to_keeper = 1.0 if m.id == chosen.image_id else (
                float(np.clip(kv @ v, -1, 1)) if kv is not None and v is not None else None)
        mat = np.stack([vecs[m.id] for m in members if m.id in vecs]) if vecs else np.zeros((0, 1))
        group.max_distance = float(max(0.0, 1.0 - float((mat @ mat.T).min()))) if len(mat) > 1 else 0.0
        group.size = len(members)
        group.keeper_id, group.keeper_reason = chosen.image_id, chosen.reason
        group.total_bytes = sum(m.bytes or 0 for m in members)
        kept = next(m for m in members if m.id == chosen.image_id)
        group.reclaimable_bytes = group.total_bytes - (kept.bytes or 0)
        group.updated_at = utcnow()
