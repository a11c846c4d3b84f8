"""Disjoint-set grouping on a real catalog: transitivity, stable ids, splits, keeper rule."""
from __future__ import annotations

import numpy as np
from sqlalchemy import insert, select

from indexer import bulk
from indexer.catalog import Catalog, DupGroup, Image, ImageStatus, Pair
from indexer.grouping import (
    MAX_BULK,
    MAX_SHIFTED,
    MIN_COVER,
    bridged,
    clusters,
    components,
    look_only,
    reaching_out,
    regroup,
)
from indexer.keeper import Attributes, Candidate, choose


def _vectors(ids):  # unit vectors all equal: similarity 1 to the keeper
    return {i: np.ones(4, dtype=np.float32) / 2 for i in ids}


def _catalog(tmp_path, n: int) -> Catalog:
    cat = Catalog(f"sqlite:///{tmp_path / 'c.db'}")
    with cat.session() as s:
        s.execute(insert(Image), [{"id": i, "path": f"/p/{i}.jpg", "bytes": 1000 + i, "mtime": float(i), "width": 100, "height": 100,
                                       "status": ImageStatus.indexed, "linked": True, "sha256": f"{i:064d}"} for i in range(1, n + 1)])
    return cat


def _link(cat: Catalog, pairs) -> set[int]:
    with cat.session() as s:
        s.execute(insert(Pair), [{"a_id": a, "b_id": b, "similarity": 0.9, "kind": "visual"} for a, b in pairs])
        return regroup(s, {x for p in pairs for x in p}, _vectors)


def _groups(cat: Catalog) -> dict[int, set[int]]:
    with cat.session() as s:
        out: dict[int, set[int]] = {}
        for img in s.scalars(select(Image).where(Image.group_id.is_not(None))):
            out.setdefault(img.group_id, set()).add(img.id)
        return out


def test_components_are_transitive() -> None:
    assert components([1, 2, 3, 4], [(1, 2), (1, 3)]) == [[1, 2, 3]]


def test_transitive_group_and_merge(tmp_path) -> None:
    cat = _catalog(tmp_path, 6)
    _link(cat, [(1, 2), (1, 3)])  # B and C never paired directly
    assert list(_groups(cat).values()) == [{1, 2, 3}]
    _link(cat, [(4, 5)])
    g = _groups(cat)
    assert sorted(map(sorted, g.values())) == [[1, 2, 3], [4, 5]]
    first = next(gid for gid, m in g.items() if 1 in m)
    _link(cat, [(3, 4)])  # bridges the two groups: one merged group keeps the larger group's id
    g = _groups(cat)
    assert g == {first: {1, 2, 3, 4, 5}}
    with cat.session() as s:
        assert s.scalar(select(DupGroup.size).where(DupGroup.id == first)) == 5
        assert len(list(s.scalars(select(DupGroup)))) == 1


def test_removal_splits_only_that_group(tmp_path) -> None:
    cat = _catalog(tmp_path, 6)
    _link(cat, [(1, 2), (2, 3), (5, 6)])
    before = _groups(cat)
    other = next(gid for gid, m in before.items() if 5 in m)
    with cat.session() as s:  # remove the bridge photo 2, as Index.remove does
        s.execute(Pair.__table__.delete().where((Pair.a_id == 2) | (Pair.b_id == 2)))
        s.execute(Image.__table__.delete().where(Image.id == 2))
        regroup(s, {1, 3}, _vectors)
    after = _groups(cat)
    assert after == {other: {5, 6}}  # 1 and 3 are alone now; the other group is untouched


def test_keeper_rule_without_evidence() -> None:
    """Photos never measured (indexed before the keeper evidence): pixels, then EXIF, age, file size."""
    def c(i: int, w: int, h: int, b: int, t: float, exif: bool = False) -> Candidate:
        return Candidate(id=i, width=w, height=h, bytes=b, mtime=t, camera_exif=exif)

    a, b, cc = c(1, 100, 100, 500, 5.0), c(2, 200, 100, 400, 9.0), c(3, 200, 100, 450, 9.0)
    k = choose([a, b, cc])
    assert k.image_id == 3 and "largest file" in k.reason
    d = c(4, 50, 50, 450, 1.0)
    assert choose([a, d]).image_id == 1 and "smaller" in choose([a, d]).reason
    # the usual wrong suggestion: a later PNG re-encode is bigger than the original JPEG
    jpeg, png = c(5, 4000, 3000, 3_000_000, 100.0), c(6, 4000, 3000, 20_000_000, 200.0)
    assert choose([png, jpeg]).image_id == 5 and "oldest" in choose([png, jpeg]).reason
    # camera metadata beats age: an export that lost its EXIF, but whose file is older
    export, camera = c(7, 4000, 3000, 3_000_000, 50.0), c(8, 4000, 3000, 2_900_000, 300.0, exif=True)
    assert choose([export, camera]).image_id == 8 and "EXIF" in choose([export, camera]).reason


def test_keeper_rule_with_a_member_never_measured() -> None:
    """A photo indexed before the keeper evidence has none: the whole group goes by pixels, not the measured
    members' effective pixels against the other's raw pixel count."""
    measured = Attributes(detail_scale=0.05, border=0.0, colour=30.0, tint=0.5, clipped=0.0, noise=1.0,
                          blockiness=1.0, analysed_side=1000)
    big = Candidate(id=1, width=1000, height=800, mtime=5.0, attributes=measured)
    old = Candidate(id=2, width=500, height=400, mtime=1.0)
    assert choose([big, old]).image_id == 1


def _link_kinds(cat: Catalog, pairs) -> set[int]:
    """Store pairs (a, b, kind), (a, b, kind, cover) or (a, b, kind, cover, shifted) and regroup them."""
    with cat.session() as s:
        s.execute(insert(Pair), [{"a_id": p[0], "b_id": p[1], "similarity": 0.9, "kind": p[2],
                                  "cover": p[3] if len(p) > 3 else None, "shifted": p[4] if len(p) > 4 else None}
                                 for p in pairs])
        return regroup(s, {x for p in pairs for x in p[:2]}, _vectors)


def test_two_capture_times_are_two_moments_unless_a_copy_could_carry_both() -> None:
    """A burst's shots differ by seconds or hundredths; a copy keeps its original's time, may lose the hundredths,
    or carries it shifted by whole quarter hours (a time-zone fix); an unknown or malformed time tells nothing."""
    from indexer.grouping import two_moments

    t = "2026:07:01 10:00:00"
    assert two_moments(t, "2026:07:01 10:00:01") and two_moments(t + ".12", t + ".22")
    assert two_moments(t, "2026:07:01 10:14:00") and two_moments(t, "2026:07:03 10:00:00")
    assert not two_moments(t + ".12", t + ".12") and not two_moments(t + ".12", t) and not two_moments(t + ".5", t + ".50")
    assert not two_moments(t, "2026:07:01 11:00:00") and not two_moments(t + ".5", "2026:07:01 05:45:00.5")
    assert two_moments(t + ".12", "2026:07:01 11:00:00.22")  # shifted, but the hundredths differ too
    assert not two_moments(t, None) and not two_moments(t, "2026:13:45 99:00:00")


def test_photos_taken_at_two_moments_never_share_a_group_but_by_identical_bytes() -> None:
    """Two shots of a burst (1, 2) link as copies would; a copy without a capture time (3) links to both. The
    strongest link merges first, and no merge may bring two moments into one group; identical bytes (4-5) do."""
    taken = {1: "2026:07:01 10:00:00.12", 2: "2026:07:01 10:00:00.22", 4: "2026:01:01 00:00:00",
             5: "2026:01:01 00:00:07"}
    edges = {(1, 2, "verified", 0.99), (1, 3, "verified", 0.97), (2, 3, "verified", 0.95), (4, 5, "exact", 1.0)}
    assert clusters(edges, _vectors, taken) == [[1, 3], [4, 5]]
    assert clusters(edges, _vectors) == [[1, 2, 3], [4, 5]]


def test_a_link_to_a_shot_of_another_moment_does_not_hold_a_group_back(tmp_path) -> None:
    """Two shots of a burst (1, 3), each beside a copy: 2 keeps 1's capture time, 4 (a messaging app's copy of 3)
    has none and links to 1 as well, more weakly than to 3. The shots never share a group, and 4's link to 1
    reaches a group of another moment than 4's: neither group is held back for it."""
    cat = _catalog(tmp_path, 4)
    with cat.session() as s:
        for i, t in ((1, "2026:07:01 10:00:00.10"), (2, "2026:07:01 10:00:00.10"), (3, "2026:07:01 10:00:00.60")):
            s.get(Image, i).taken_at = t
        s.execute(insert(Pair), [{"a_id": a, "b_id": b, "similarity": sim, "kind": "verified", "cover": 0.8}
                                 for a, b, sim in ((1, 2, 0.95), (3, 4, 0.95), (1, 3, 0.97), (1, 4, 0.9))])
        regroup(s, [1, 2, 3, 4], _vectors)
    with cat.session() as s:
        flags = {tuple(sorted(m)): s.get(DupGroup, gid).look_only for gid, m in _groups(cat).items()}
    assert flags == {(1, 2): False, (3, 4): False}


def test_a_group_held_only_by_look_alike_links_is_left_out_of_bulk_review(tmp_path) -> None:
    """Photo 3 joins 1-2 through a `pixels` link alone (thumbnails: the weakest evidence), so its group is
    look-only and bulk review holds it back; once a verified link joins 3 too, the group is offered."""
    cat = _catalog(tmp_path, 6)
    _link_kinds(cat, [(1, 2, "verified"), (2, 3, "pixels"), (4, 5, "exact"), (5, 6, "visual"), (4, 6, "soft")])
    with cat.session() as s:
        flags = {tuple(sorted(m)): s.get(DupGroup, gid).look_only for gid, m in _groups(cat).items()}
        assert flags == {(1, 2, 3): True, (4, 5, 6): False}  # 6 is also held by a checked (soft) link
        plan, offer = bulk.plan(s), bulk.summary(s)
        assert [g for g, _ in plan.groups] == [next(g for g, m in _groups(cat).items() if 4 in m)]
        assert (plan.count, plan.held_back, offer.count, offer.held_back, offer.files) == (1, 1, 1, 1, 2)
    _link_kinds(cat, [(1, 3, "verified")])
    with cat.session() as s:
        assert not any(g.look_only for g in s.scalars(select(DupGroup)))
        assert (bulk.plan(s).count, bulk.plan(s).held_back) == (2, 0)


def test_a_group_held_only_by_checks_that_agree_on_a_small_part_is_left_out_of_bulk_review(tmp_path) -> None:
    """A verified link whose content agrees over less than ``MIN_COVER`` of the overlap (one logo on two plain
    pictures) counts as a look-alike link: 1-2 hold together only through one, so bulk review holds them back;
    3-4, verified over most of the picture, are offered. A pair stored before the cover was (NULL) stays checked."""
    cat = _catalog(tmp_path, 6)
    _link_kinds(cat, [(1, 2, "verified", MIN_COVER - 0.01), (3, 4, "verified", MIN_COVER), (5, 6, "framed", None)])
    with cat.session() as s:
        flags = {tuple(sorted(m)): s.get(DupGroup, gid).look_only for gid, m in _groups(cat).items()}
        assert flags == {(1, 2): True, (3, 4): False, (5, 6): False}
        assert (bulk.plan(s).count, bulk.plan(s).held_back) == (2, 1)


def test_a_group_larger_than_a_bulk_decision_is_held_back() -> None:
    """A group of more than ``MAX_BULK`` photos, every link checked, is left to a person; one of that many is not."""
    star = [(1, i, "verified", 0.9, 0) for i in range(2, MAX_BULK + 2)]  # every copy linked to the original
    assert not look_only(range(1, MAX_BULK + 1), star[:-1])
    assert look_only(range(1, MAX_BULK + 2), star)


def test_a_group_of_two_capture_times_is_held_back_from_bulk() -> None:
    """Two capture times, both known and different, in one group: two shots of a burst, also where a copy without
    a time joins them; identical bytes or one time and unknowns leave the group as it was."""
    pairs = [(1, 2, "verified", 0.9, 0), (2, 3, "verified", 0.9, None)]
    assert not look_only([1, 2, 3], pairs)
    assert look_only([1, 2, 3], pairs, {1: "2026:07:01 10:00:00.12", 2: "2026:07:01 10:00:00.12",
                                        3: "2026:07:01 10:00:00.22"})
    assert look_only([1, 2, 3], pairs, {1: "2026:07:01 10:00:00", 3: "2026:07:01 10:00:01"})  # 2: a stripped copy
    assert not look_only([1, 2, 3], pairs, {1: "2026:07:01 10:00:00", 3: "2026:07:01 10:00:00", 9: "x"})
    assert not look_only([1, 2, 3], pairs, {2: "2026:07:01 10:00:00"})


def test_a_group_hanging_on_one_link_between_two_parts_is_held_back_from_bulk(tmp_path) -> None:
    """Two views of one scene, each beside its own copy (1-2, 3-4), join on the one link their overlap gave (2-3):
    the group goes to a person. A second link across (5-8 beside 6-7), or one link to a single photo (a copy that
    only one other copy found: 9-10-11), leaves a group to bulk review."""
    cat = _catalog(tmp_path, 11)
    _link_kinds(cat, [(1, 2, "verified", 0.9), (3, 4, "exact"), (2, 3, "verified", 0.6),
                      (5, 6, "verified", 0.9), (7, 8, "verified", 0.9), (6, 7, "verified", 0.6), (5, 8, "soft"),
                      (9, 10, "verified", 0.9), (10, 11, "framed", 0.9)])
    with cat.session() as s:
        flags = {tuple(sorted(m)): s.get(DupGroup, gid).look_only for gid, m in _groups(cat).items()}
        assert flags == {(1, 2, 3, 4): True, (5, 6, 7, 8): False, (9, 10, 11): False}
        assert (bulk.plan(s).count, bulk.plan(s).held_back) == (2, 1)
    # a look-alike link across does not hold the two parts together: the checked links still hang on one
    assert bridged([1, 2, 3, 4], [(1, 2), (3, 4), (2, 3)]) and look_only(
        [1, 2, 3, 4], [(1, 2, "verified", 0.9, 0), (3, 4, "verified", 0.9, 0), (2, 3, "verified", 0.9, 0),
                       (1, 4, "verified", MIN_COVER / 2, 0)])
    assert not bridged([1, 2, 3, 4], [(1, 2), (2, 3), (3, 4), (4, 1)])  # a ring: no one link holds it


def test_a_group_with_a_checked_link_to_a_photo_outside_it_is_held_back_from_bulk(tmp_path) -> None:
    """A collage (3) of two photos, each beside its copy (1-2, 4-5), links to both; the chain guard keeps the two
    pictures apart, so one group holds the collage and a link of it reaches the other group: both groups go to a
    person, and the page ticks the photos whose link reaches out. A look-alike link across (6-8 beside 6-7 and
    8-9) leaves the groups offered."""
    pictures = {1: 0, 2: 0, 3: 0, 4: 1, 5: 1, 6: 2, 7: 2, 8: 3, 9: 3}

    def vectors(ids):  # one unit vector per picture, orthogonal to the others': the guard refuses the merges
        return {i: np.eye(4, dtype=np.float32)[pictures[i]] for i in ids}

    cat = _catalog(tmp_path, 9)
    with cat.session() as s:
        s.execute(insert(Pair), [{"a_id": a, "b_id": b, "similarity": 0.9, "kind": k, "cover": 0.8}
                                 for a, b, k in ((1, 2, "verified"), (1, 3, "verified"), (2, 3, "verified"),
                                                 (3, 4, "verified"), (3, 5, "verified"), (4, 5, "verified"),
                                                 (6, 7, "verified"), (8, 9, "verified"), (6, 8, "visual"))])
        regroup(s, range(1, 10), vectors)
    with cat.session() as s:
        flags = {tuple(sorted(m)): s.get(DupGroup, gid).look_only for gid, m in _groups(cat).items()}
        assert flags == {(1, 2, 3): True, (4, 5): True, (6, 7): False, (8, 9): False}, flags
        assert (bulk.plan(s).count, bulk.plan(s).held_back) == (2, 2)
    pairs = [(1, 2, "verified", 0.8), (1, 3, "verified", 0.8), (3, 4, "verified", 0.8), (3, 5, "verified", 0.2)]
    assert reaching_out([1, 2, 3], pairs) == [3] and reaching_out([4, 5], pairs) == [4]  # 3-5: a small part only


def test_a_photo_holding_two_pictures_side_by_side_is_composed_and_one_holding_one_is_not(tmp_path) -> None:
    """``composed`` on real link features kept in the catalog: a collage (5) linked to a photo of one group (1)
    and to a photo of another (3) holds them side by side, so it is composed; a copy of photo 1 (2) linked into
    the same two groups, whose second group is another copy of photo 1 (4), holds both in one place, so it is not."""
    import random

    from PIL import Image as PILImage

    from bench.probes import collage
    from indexer import features, featurestore
    from indexer.grouping import composed
    from tests.conftest import PHOTOS

    one, two = (PILImage.open(PHOTOS / f"{n}.JPEG").convert("RGB") for n in ("n03255030_dumbbell", "n02361337_marmot"))
    small = one.resize((one.width * 3 // 5, one.height * 3 // 5))
    pictures = {1: one, 2: small, 3: two, 4: small.rotate(2), 5: collage([one, two], random.Random(5))}
    cat = _catalog(tmp_path, 5)
    with cat.session() as s:
        featurestore.save(s, [(i, f"{i:064d}", features.pack(features.extract(im))) for i, im in pictures.items()])
        edges = [(1, 5, "verified", 0.9), (3, 5, "verified", 0.9), (1, 2, "verified", 0.9), (2, 4, "verified", 0.9)]
        covers = {(a, b): 0.8 for a, b, *_ in edges}
        assert composed(s, edges[:2], covers, [[1], [3]]) == {5}
        assert composed(s, edges[2:], covers, [[1], [4]]) == set()
        assert composed(s, edges[:2], {(1, 5): 0.8, (3, 5): 0.1}, [[1], [3]]) == set()  # a small part: look-alike


def test_only_a_member_that_may_hold_another_picture_is_ticked_beside_the_keeper(tmp_path) -> None:
    """A group of a photo (1), its small copy (2) and a collage of the photo beside a third picture (5); each links
    to a collage outside (4: the photo beside another, 3). 4 joins no group (a collage), so 2 holds nothing that
    the keeper lacks and may be moved; 5 holds the third picture, which may be kept nowhere else. Where the collage
    5 is the keeper, the members it holds whole need no tick, but the keeper holds more than they do."""
    import random

    from PIL import Image as PILImage

    from bench.probes import collage
    from indexer import features, featurestore
    from indexer.grouping import may_hold_another
    from tests.conftest import PHOTOS

    one, two, three = (PILImage.open(PHOTOS / f"{n}.JPEG").convert("RGB")
                       for n in ("n03255030_dumbbell", "n02361337_marmot", "n01440764_tench"))
    pictures = {1: one, 2: one.resize((one.width * 3 // 5, one.height * 3 // 5)), 3: two,
                4: collage([one, two], random.Random(5)), 5: collage([one, three], random.Random(6))}
    cat = _catalog(tmp_path, 5)
    links = [(1, 2), (1, 5), (2, 5), (1, 4), (2, 4), (4, 5), (3, 4)]
    with cat.session() as s:
        featurestore.save(s, [(i, f"{i:064d}", features.pack(features.extract(im))) for i, im in pictures.items()])
        s.execute(insert(Pair), [{"a_id": a, "b_id": b, "similarity": 0.9, "kind": "verified", "cover": 0.8}
                                 for a, b in links])
        gid = DupGroup(size=3)
        s.add(gid)
        s.flush()
        for i in (1, 2, 5):
            s.get(Image, i).group_id = gid.id
        s.flush()
        pairs = [(a, b, "verified", 0.8) for a, b in links if {a, b} & {1, 2, 5}]
        assert reaching_out([1, 2, 5], pairs) == [1, 2, 5]
        assert may_hold_another(s, [1, 2, 5], pairs, 1) == [5]
        assert may_hold_another(s, [1, 2, 5], pairs, 5) == [5]
        assert may_hold_another(s, [1, 2, 5], [p for p in pairs if 3 not in p and p[:2] != (4, 5)], 1) == []
        s.execute(insert(Pair), [{"a_id": 2, "b_id": 3, "similarity": 0.9, "kind": "verified", "cover": 0.8}])
        assert may_hold_another(s, [1, 2, 5], [*pairs, (2, 3, "verified", 0.8)], 1) == [2, 5]  # 3 is no collage


def test_a_group_with_a_link_whose_content_moved_is_held_back_from_bulk(tmp_path) -> None:
    """Frames of a camera that did not move link one to the next; one stored pair among them whose content moved
    under its fit (``Pair.shifted`` at ``MAX_SHIFTED``) leaves the whole group to a person. Fewer cells, or a pair
    stored before the count was (NULL), leave a group as it was."""
    cat = _catalog(tmp_path, 7)
    _link_kinds(cat, [(1, 2, "verified", 0.9, 1), (2, 3, "verified", 0.9, MAX_SHIFTED), (1, 3, "verified", 0.9, 0),
                      (4, 5, "verified", 0.9, MAX_SHIFTED - 1), (6, 7, "framed", 0.9, None)])
    with cat.session() as s:
        flags = {tuple(sorted(m)): s.get(DupGroup, gid).look_only for gid, m in _groups(cat).items()}
        assert flags == {(1, 2, 3): True, (4, 5): False, (6, 7): False}
        assert (bulk.plan(s).count, bulk.plan(s).held_back) == (2, 1)
