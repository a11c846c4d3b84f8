"""Geometric verification (indexer/verify.py) and the link rule's use of it, alone and in the link step."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps
from sqlalchemy import select

from indexer import verify
from indexer.augment import open_photo
from indexer.catalog import Image as CatalogImage
from indexer.catalog import Pair
from indexer.config import Settings
from indexer.features import extract
from indexer.index import Index
from indexer.verify import RATIO, Keypoints, agreement, fit, keypoints, matches, mirrored, one_way
from indexer.verify import inliers as count_inliers
from tests.conftest import PHOTOS

ANT = PHOTOS / "n02219486_ant.JPEG"
# Two different photos the model puts close (held-out look-alikes: cosine ~0.60, just below the threshold)
JEEP, VAN = PHOTOS / "n03594945_jeep.JPEG", PHOTOS / "n03977966_police_van.JPEG"
COCK = PHOTOS / "n01514668_cock.JPEG"
MIN_INLIERS = 15  # Settings' default


def heavy_copy(im: Image.Image) -> Image.Image:
    """Crop + 90° turn + grey + contrast: a chain the embedding alone scores below the threshold."""
    w, h = im.size
    c = im.crop((int(w * 0.12), int(h * 0.08), int(w * 0.92), int(h * 0.95))).rotate(90, expand=True)
    return ImageEnhance.Contrast(ImageOps.grayscale(c).convert("RGB")).enhance(1.4)


def inliers(a: Image.Image, b: Image.Image) -> int:
    return count_inliers(keypoints(a), keypoints(b))


inliers_of = count_inliers


def test_copies_verify_and_look_alikes_do_not() -> None:
    ant = open_photo(ANT)
    assert inliers(ant, heavy_copy(ant)) >= 10 * MIN_INLIERS
    assert inliers(ant, ImageOps.mirror(ant)) >= 10 * MIN_INLIERS  # SIFT is not flip-invariant: b is matched mirrored
    small = ant.copy()
    small.thumbnail((120, 120))
    assert inliers(ant, small) >= MIN_INLIERS and inliers(small, ant) >= MIN_INLIERS
    jeep, van = open_photo(JEEP), open_photo(VAN)
    assert inliers(jeep, van) < MIN_INLIERS and inliers(van, jeep) < MIN_INLIERS
    # RANSAC's tolerance is in a common frame, not the thumbnail's own pixels (in those, this pair had 26)
    thumb = open_photo(COCK).copy()
    thumb.thumbnail((90, 90))
    assert inliers(jeep, thumb) < MIN_INLIERS and inliers(thumb, jeep) < MIN_INLIERS


def test_a_copy_shares_its_keypoints_and_another_photo_does_not() -> None:
    """``match_share``: many of a shrunk, turned or mirrored copy's keypoints find their match, with no geometry
    (not all: each keeps its own strongest 600), next to none of another photo's, and none of a blank picture."""
    ant = open_photo(ANT)
    small = ant.resize((ant.width // 2, ant.height // 2))
    for copy in (small, small.rotate(90, expand=True), ImageOps.mirror(small)):
        assert verify.match_share(keypoints(ant), keypoints(copy)) >= 0.3
    jeep, van = keypoints(open_photo(JEEP)), keypoints(open_photo(VAN))
    assert verify.match_share(jeep, van) < 0.05 and verify.match_share(van, jeep) < 0.05
    assert verify.match_share(jeep, keypoints(Image.new("RGB", (64, 64), (90, 90, 90)))) == 0.0


@pytest.mark.parametrize("name, brightness, contrast", [("n01498041_stingray", 0.4, 0.6),
                                                         ("n01630670_common_newt", 0.4, 0.6),
                                                         ("n01560419_bulbul", 2.0, 0.6)])
def test_an_exposure_change_does_not_break_content_agreement(name: str, brightness: float, contrast: float) -> None:
    """A darkened, flattened or blown-out copy agrees with its photo under the fit: each photo's grey copy is
    standardised over the overlap, and cells saturated flat count neither way (these three agreed 0.46-0.52
    before, under the 0.6 that links)."""
    im = open_photo(PHOTOS / f"{name}.JPEG")
    copy = ImageEnhance.Contrast(ImageEnhance.Brightness(im).enhance(brightness)).enhance(contrast)
    a, b = extract(im), extract(copy)
    ab, ba = fit(a.keypoints, b.keypoints), fit(b.keypoints, a.keypoints)
    assert ab is not None and ba is not None and min(ab.inliers, ba.inliers) >= MIN_INLIERS
    assert min(agreement(a.grey, b.grey, ab), agreement(b.grey, a.grey, ba)) >= Settings().verify_min_agreement


def test_blank_and_tiny_images_have_no_inliers() -> None:
    blank = Image.new("RGB", (300, 200), (128, 128, 128))
    assert keypoints(blank).count == 0
    assert inliers(blank, blank) == 0
    assert inliers(Image.new("RGB", (3, 2)), open_photo(ANT)) == 0


def test_logo_shared_by_different_photos_is_not_one_picture() -> None:
    """Matches bunched on one spot (the same watermark on two photos) do not make them duplicates."""
    rng = np.random.default_rng(0)
    logo = Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).resize((72, 72), Image.NEAREST)
    a, b = open_photo(JEEP).copy(), open_photo(VAN).copy()
    for im in (a, b):
        im.paste(logo, (im.width - 80, im.height - 80))
    assert inliers(a, b) < MIN_INLIERS


def test_a_collapsed_fit_is_not_one_picture() -> None:
    """Matches of points spread over one photo onto one spot of the other fit an affine transform that shrinks
    everything to that spot, with every match an inlier: such a fit is degenerate, not a copy."""
    rng = np.random.default_rng(1)
    des = rng.integers(0, 120, (40, 128)).astype(np.uint8)
    spread = rng.uniform(20, 460, (40, 2)).astype(np.float32)
    spot = (np.float32([240, 160]) + rng.uniform(0, 1, (40, 2))).astype(np.float32)
    a = Keypoints(((spread, des), (spread, mirrored(des))), (480, 320))
    b = Keypoints(((spot, des), (spot, mirrored(des))), (480, 320))
    assert one_way(a, b) == 0 and inliers_of(a, b) == 0
    assert one_way(a, a) == 40  # the same points on both sides: the identity, every match an inlier


def test_a_keystone_is_fitted_by_a_perspective_fit_and_laid_flat() -> None:
    """A photo of the photo taken from below: the homography explains many more matches than any affine fit,
    maps the frame's top corners inwards as the keystone did, and under it the content agrees almost everywhere;
    the affine fit's content disagrees. Different photos get no perspective fit either."""
    from bench.confusers import perspective

    im = open_photo(ANT)
    w, h = im.size
    k = 0.15
    tilted = perspective(im, [(k * w, 0), (w - k * w, 0), (w, h), (0, h)])
    a, b = extract(im), extract(tilted)
    affine, hom = fit(a.keypoints, b.keypoints), verify.fit_perspective(a.keypoints, b.keypoints)
    assert affine is not None and hom is not None and hom.matrix.shape == (3, 3)
    assert hom.inliers > 1.25 * affine.inliers
    # the copy's top corners show the original's points k of the width in: those map onto the copy's corners
    sw = a.keypoints.size[0]
    top = np.array([[k * sw, 0, 1], [sw - k * sw, 0, 1]]) @ hom.matrix.T
    assert np.allclose(top[:, :2] / top[:, 2:], [[0, 0], [sw, 0]], atol=0.03 * sw)
    assert agreement(a.grey, b.grey, hom) >= 0.95 > agreement(a.grey, b.grey, affine)
    jeep, van = extract(open_photo(JEEP)), extract(open_photo(VAN))
    other = verify.fit_perspective(jeep.keypoints, van.keypoints)
    assert other is None or other.inliers < MIN_INLIERS


def test_grain_on_a_plain_background_does_not_count_against_a_copy() -> None:
    """A photo whose right half is a plain background with film grain, and its copy with other grain (a
    re-encode, a denoiser): the grain has spread but no correlation; only the photo's texture counts
    (counting the grain too gave 0.5)."""
    photo = np.asarray(open_photo(ANT).convert("L").resize((120, 160)), np.float32)
    rng = np.random.default_rng(0)

    def with_grain() -> np.ndarray:
        grain = np.clip(128 + rng.normal(0, 12, (160, 120)), 0, 255)
        return np.hstack([photo, grain]).astype(np.uint8)

    same = verify.Fit(100, np.float64([[1, 0, 0], [0, 1, 0]]))
    a, b = with_grain(), with_grain()
    assert agreement(a, b, same) >= 0.85  # the cells by the photo's edge see some of its texture when blurred
    other = np.asarray(open_photo(COCK).convert("L").resize((120, 160)), np.float32)
    assert agreement(a, np.hstack([other, b[:, 120:]]).astype(np.uint8), same) < 0.5


def test_a_fit_scaled_to_other_frames_maps_the_scaled_points() -> None:
    """``scaled`` turns a fit between two frames into the fit between both frames scaled alike, affine or
    perspective."""
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 400, (20, 2))
    def apply(m: np.ndarray, xy: np.ndarray) -> np.ndarray:
        full = np.vstack([m, [0, 0, 1]]) if m.shape[0] == 2 else m
        p = np.c_[xy, np.ones(len(xy))] @ full.T
        return p[:, :2] / p[:, 2:]

    for m in (np.array([[1.1, 0.2, 5.0], [-0.1, 0.9, -3.0]]),
              np.array([[1.1, 0.2, 5.0], [-0.1, 0.9, -3.0], [1e-4, -2e-4, 1.0]])):
        assert np.allclose(apply(verify.scaled(m, 0.5), pts * 0.5), apply(m, pts) * 0.5)


def test_the_count_does_not_depend_on_the_order() -> None:
    ant, jeep, van = open_photo(ANT), open_photo(JEEP), open_photo(VAN)
    for x, y in ((ant, heavy_copy(ant)), (jeep, van), (ant, van)):
        assert inliers(x, y) == inliers(y, x)


def brute_force_matches(da: np.ndarray, db: np.ndarray) -> tuple[list[int], list[int]]:
    """The matching rule written plainly, one query point at a time: exact squared distances, rooted in float32
    (as OpenCV's matcher reports them), the ratio test on the two nearest, then the closest query per train
    point, in the order the loop first meets each train point."""
    good: dict[int, tuple[float, int]] = {}
    train = db.astype(np.int64)
    for i, q in enumerate(da.astype(np.int64)):
        dist = np.sqrt(((train - q) ** 2).sum(axis=1).astype(np.float32))
        j, k = np.argsort(dist, kind="stable")[:2]
        if float(dist[j]) < RATIO * float(dist[k]) and (j not in good or dist[j] < good[j][0]):
            good[int(j)] = (dist[j], i)
    return [i for _, i in good.values()], list(good)


def opencv_matches(da: np.ndarray, db: np.ndarray) -> tuple[list[int], list[int]]:
    """The same rule on OpenCV's brute-force matcher (``fit`` before the distance matrix)."""
    import cv2

    good: dict[int, cv2.DMatch] = {}
    for m in cv2.BFMatcher(cv2.NORM_L2).knnMatch(da.astype(np.float32), db.astype(np.float32), k=2):
        if len(m) == 2 and m[0].distance < RATIO * m[1].distance and \
                (m[0].trainIdx not in good or m[0].distance < good[m[0].trainIdx].distance):
            good[m[0].trainIdx] = m[0]
    return [m.queryIdx for m in good.values()], [m.trainIdx for m in good.values()]


def test_matches_are_the_brute_force_matches_in_the_same_order() -> None:
    """One distance matrix per pair gives the brute-force matcher's matches exactly, order included (RANSAC
    samples by position): a copy (both views, both ways) and two look-alikes."""
    ant, jeep, van = open_photo(ANT), open_photo(JEEP), open_photo(VAN)
    checked = 0
    for x, y in ((ant, heavy_copy(ant)), (ant, ImageOps.mirror(ant)), (jeep, van)):
        kx, ky = keypoints(x), keypoints(y)
        for a, b in ((kx, ky), (ky, kx)):
            for view in (0, 1):
                q, t = matches(verify._distances(a, b, view))
                expected = brute_force_matches(a.views[0][1], b.views[view][1])
                assert (q.tolist(), t.tolist()) == expected == opencv_matches(a.views[0][1], b.views[view][1])
                checked += len(q)
    assert checked > 1000


def test_distances_are_exact_and_reused_transposed_for_the_other_direction() -> None:
    ant = open_photo(ANT)
    a, b = keypoints(ant), keypoints(heavy_copy(ant))
    da, db = a.views[0][1].astype(np.int64), b.views[1][1].astype(np.int64)
    exact = ((da[:, None, :] - db[None, :, :]) ** 2).sum(axis=2)
    assert np.array_equal(verify._distances(a, b, 1), exact.astype(np.float32))
    both = [fit(a, b), fit(b, a)]  # the second reads the first's matrices, transposed
    kept = [verify.fit_perspective(a, b), verify.fit_perspective(b, a)]  # and so do perspective fits after them
    assert verify._last.pair[0] is a and verify._last.pair[1] is b and set(verify._last.d) == {0, 1}
    verify._last.pair = None  # forget them
    afresh = fit(b, a)
    assert both[1] is not None and afresh is not None
    assert both[1].inliers == afresh.inliers and np.array_equal(both[1].matrix, afresh.matrix)
    for x, y, known in [(a, b, kept[0]), (b, a, kept[1])]:
        verify._last.pair = None
        again = verify.fit_perspective(x, y)
        assert known is not None and again is not None and known.inliers == again.inliers
        assert np.array_equal(known.matrix, again.matrix)


def test_fits_on_threads_are_the_fits_in_turn_and_blas_threads_are_restored() -> None:
    """Each thread keeps its own pair's matrices; BLAS runs on one thread while products run, then as before."""
    from concurrent.futures import ThreadPoolExecutor

    ant, jeep, van = open_photo(ANT), open_photo(JEEP), open_photo(VAN)
    kps = [keypoints(x) for x in (ant, heavy_copy(ant), ImageOps.mirror(ant), jeep, van)]
    jobs = [(x, y) for x in kps for y in kps if x is not y] * 2

    def both(p: tuple[Keypoints, Keypoints]) -> tuple[int, int]:
        return one_way(*p), one_way(p[1], p[0])

    from threadpoolctl import threadpool_info

    def blas_threads() -> list[int]:
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    before = blas_threads()
    in_turn = [both(p) for p in jobs]
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(both, jobs)) == in_turn
    assert blas_threads() == before
    # the BLAS libraries loaded when linking first limited them: numpy's, which the products use, always among
    # them (verify imports numpy); ones loaded later by other modules (scipy's, OpenCV's) run no product here
    known = verify._blas_controller().select(user_api="blas")
    assert known.info()
    with verify._one_blas_thread():
        assert {lib["num_threads"] for lib in known.info()} == {1}


def _library(root: Path) -> dict[str, Path]:
    root.mkdir(parents=True)
    paths = {"ant": root / "ant.jpg", "ant_copy": root / "edits" / "ant-grey-turned.jpg",
             "jeep": root / "jeep.jpg", "van": root / "van.jpg"}
    shutil.copy(ANT, paths["ant"])
    paths["ant_copy"].parent.mkdir()
    heavy_copy(open_photo(ANT)).save(paths["ant_copy"], quality=85)
    shutil.copy(JEEP, paths["jeep"])
    shutil.copy(VAN, paths["van"])
    return paths


def test_link_step_verifies_the_band_below_the_threshold(tmp_path: Path, settings_factory) -> None:
    _library(tmp_path / "lib")
    data = tmp_path / "data"
    with Index(settings_factory(data_dir=data)) as index:
        s = index.ingest([str(tmp_path / "lib")])
        assert s.indexed == 4 and not s.failed
        thr, band = index.threshold, index.settings.verify_band
        with index.catalog.session() as sess:
            by_name = {Path(p).name: i for i, p in sess.execute(select(CatalogImage.id, CatalogImage.path))}
        vec = index.store.get(list(by_name.values()))
        cos = lambda a, b: float(vec[by_name[a]] @ vec[by_name[b]])
        # the preconditions that make this test mean something: both pairs are in the band, not above it
        assert thr - band <= cos("ant.jpg", "ant-grey-turned.jpg") < thr
        assert thr - band <= cos("jeep.jpg", "van.jpg") < thr
        groups = index.groups()
        assert [sorted(Path(m["path"]).name for m in g["members"]) for g in groups] == [["ant-grey-turned.jpg", "ant.jpg"]]
        with index.catalog.session() as sess:
            assert [k for (k,) in sess.execute(select(Pair.kind))] == ["verified"]
        assert s.verified_pairs == 1 and s.timings.verify > 0
        # relinking a photo whose verified pair is stored does not read the photos again
        from sqlalchemy import update

        from indexer.summary import IngestSummary

        with index.catalog.session() as sess:
            sess.execute(update(CatalogImage).where(CatalogImage.id == by_name["ant-grey-turned.jpg"]).values(linked=False))
        again = IngestSummary()
        index.link(again)
        assert again.verified_pairs == 0 and again.timings.verify == 0 and len(index.groups()) == 1

    # Cosine only (band 0): the same catalog relinks (the rule changed) and the copy is no longer found
    with Index(settings_factory(data_dir=data, verify_band=0.0)) as index:
        s = index.ingest([str(tmp_path / "lib")])
        assert s.indexed == 0 and index.groups() == []
    # and back: verification finds it again without re-embedding
    with Index(settings_factory(data_dir=data)) as index:
        s = index.ingest([str(tmp_path / "lib")])
        assert s.indexed == 0 and len(index.groups()) == 1


def test_link_features_come_from_the_catalog_and_a_gone_file_without_them_fails(tmp_path: Path,
                                                                                settings_factory) -> None:
    """The decode that embeds a photo keeps its link features: the link step reads no file. A photo without
    kept features (a catalog from before they were kept) is read once; gone, it fails (try again later)."""
    from indexer.catalog import Features
    from indexer.featurestore import FeatureSource

    paths = _library(tmp_path / "lib")
    with Index(settings_factory()) as index:
        index.ingest([str(tmp_path / "lib")])
        with index.catalog.session() as sess:
            ids = {Path(p).name: i for i, p in sess.execute(select(CatalogImage.id, CatalogImage.path))}
            assert sess.query(Features).count() == 4
        paths["ant_copy"].unlink()
        with index.catalog.session() as sess:
            src = FeatureSource(sess, max_pixels=index.settings.max_pixels)
            got = src.get([ids["ant.jpg"], ids["ant-grey-turned.jpg"]])
            assert all(f is not None for f in got.values()) and src.read == 0 and not src.failed
            sess.execute(Features.__table__.delete())
        with index.catalog.session() as sess:
            src = FeatureSource(sess, max_pixels=index.settings.max_pixels)
            got = src.get([ids["ant.jpg"], ids["ant-grey-turned.jpg"]])
            assert got[ids["ant.jpg"]] is not None and got[ids["ant-grey-turned.jpg"]] is None
            assert ids["ant-grey-turned.jpg"] in src.failed and src.read == 2
        with index.catalog.session() as sess:  # what was read is kept: ant's features are back
            assert [i for (i,) in sess.execute(select(Features.image_id))] == [ids["ant.jpg"]]


@pytest.mark.parametrize("band", [0.0, 0.15])
def test_link_rule_is_recorded(tmp_path: Path, settings_factory, band: float) -> None:
    with Index(settings_factory(verify_band=band)) as index:
        index.ingest([str(tmp_path)])
        assert index.catalog.get_meta("link_rule") == index.link_rule
        assert f"candidates {band:g} below" in index.link_rule and "sift" in index.link_rule


def test_similar_marks_verified_band_hits_as_duplicates(tmp_path: Path, settings_factory) -> None:
    """/similar and `dupesift similar` call a band hit a duplicate exactly when the link step would."""
    from indexer.decode import load_image

    paths = _library(tmp_path / "lib")
    with Index(settings_factory()) as index:
        index.ingest([str(tmp_path / "lib")])
        thr, size = index.threshold, index.spec.input_size

        def query(name: str, source: bool = True) -> dict[str, dict]:
            data = paths[name].read_bytes()
            px = load_image(data, max_pixels=index.settings.max_pixels, size=size).pixels
            hits = index.similar_to_pixels(px, k=4, source=data if source else None)
            return {Path(h["path"]).name: h for h in hits}

        by_upload = query("ant_copy")
        assert by_upload["ant.jpg"]["similarity"] < thr and by_upload["ant.jpg"]["is_duplicate"]
        assert by_upload["ant-grey-turned.jpg"]["is_duplicate"]  # itself, cosine 1
        assert not by_upload["jeep.jpg"]["is_duplicate"] and not by_upload["van.jpg"]["is_duplicate"]
        assert not any(h["is_duplicate"] for h in query("ant_copy", source=False).values())  # no source: no evidence
        jeep = query("jeep")
        assert jeep["van.jpg"]["similarity"] >= thr - index.settings.verify_band and not jeep["van.jpg"]["is_duplicate"]

        with index.catalog.session() as sess:
            ids = {Path(p).name: i for i, p in sess.execute(select(CatalogImage.id, CatalogImage.path))}
        by_id = {Path(h["path"]).name: h for h in index.similar_to_id(ids["ant.jpg"], k=3)}
        assert by_id["ant-grey-turned.jpg"]["is_duplicate"]  # its stored verified pair
        assert not by_id["jeep.jpg"]["is_duplicate"] and not by_id["van.jpg"]["is_duplicate"]


def _ids(index: Index) -> dict[str, int]:
    with index.catalog.session() as sess:
        return {Path(p).name: i for i, p in sess.execute(select(CatalogImage.id, CatalogImage.path))}


def _pairs(index: Index) -> set[tuple[int, int, str]]:
    with index.catalog.session() as sess:
        return {(a, b, k) for a, b, k in sess.execute(select(Pair.a_id, Pair.b_id, Pair.kind))}


def test_a_photo_unreadable_at_verification_stays_unlinked_until_it_can_be_read(tmp_path: Path,
                                                                                 settings_factory) -> None:
    """Nothing is lost: a candidate pair whose file cannot be read (and has no kept features) is neither linked
    nor declined; its unlinked photo stays unlinked (with a warning), and the next link step decides it."""
    from sqlalchemy import update

    from indexer.catalog import Features
    from indexer.summary import IngestSummary

    paths = _library(tmp_path / "lib")
    data = tmp_path / "data"
    with Index(settings_factory(data_dir=data, verify_band=0.0)) as index:  # cosine only: the copy is not linked
        index.ingest([str(tmp_path / "lib")])
        assert index.groups() == []
    with Index(settings_factory(data_dir=data)) as index:
        ids = _ids(index)
        copy = ids["ant-grey-turned.jpg"]
        with index.catalog.session() as sess:
            sess.execute(update(CatalogImage).where(CatalogImage.id == copy).values(linked=False))
            sess.execute(Features.__table__.delete().where(Features.image_id == copy))  # kept from before
        moved = paths["ant_copy"].rename(tmp_path / "away.jpg")  # gone for a moment (an unmounted drive)
        first = IngestSummary()
        index.link(first)
        assert index.groups() == [] and first.verified_pairs == 0
        assert any("not decided" in w and "tried again" in w for w in first.warnings), first.warnings
        with index.catalog.session() as sess:
            assert sess.get(CatalogImage, copy).linked is False
        moved.rename(paths["ant_copy"])
        second = IngestSummary()
        index.link(second)
        assert second.verified_pairs == 1 and not second.warnings
        assert [sorted(Path(m["path"]).name for m in g["members"]) for g in index.groups()] == \
            [["ant-grey-turned.jpg", "ant.jpg"]]
        with index.catalog.session() as sess:
            assert sess.get(CatalogImage, copy).linked is True


def test_verification_reads_files_before_the_groups_lock(tmp_path: Path, settings_factory) -> None:
    """plan_link (search + verification) runs while another process holds the lock ``groups``; link then
    uses its verdicts for photos unchanged since, and searches again when one changed."""
    import threading

    from sqlalchemy import update

    from indexer.catalog import Features
    from indexer.linkrule import Evidence
    from indexer.locks import catalog_lock

    paths = _library(tmp_path / "lib")
    small = open_photo(ANT).copy()
    small.thumbnail((200, 200))
    small.save(tmp_path / "lib" / "ant-small.jpg", quality=90)  # a sure pair with ant (above the threshold)
    with Index(settings_factory(verify_band=0.0)) as index:
        index.ingest([str(tmp_path / "lib")])
    with Index(settings_factory()) as index:
        ids = _ids(index)
        with index.catalog.session() as sess:
            sess.execute(update(CatalogImage).values(linked=False))
            sess.execute(Pair.__table__.delete())
        holding, release, plans = threading.Event(), threading.Event(), []

        def other_process() -> None:
            with catalog_lock(index.catalog, "groups"):
                holding.set()
                release.wait(60)

        t = threading.Thread(target=other_process, daemon=True)
        t.start()
        assert holding.wait(30)
        planner = threading.Thread(target=lambda: plans.append(index.plan_link()), daemon=True)
        planner.start()
        planner.join(60)
        assert not planner.is_alive(), "planning waited for the groups lock"
        release.set()
        t.join(30)
        plan = plans[0]
        key = tuple(sorted((ids["ant.jpg"], ids["ant-grey-turned.jpg"])))
        assert isinstance(plan.verdicts[key], Evidence) and plan.verdicts[key].kind == "verified"
        # the plan's verdict stands for unchanged photos: linking needs neither file nor kept features any more
        kept = paths["ant_copy"].read_bytes()
        paths["ant_copy"].unlink()
        with index.catalog.session() as sess:
            sess.execute(Features.__table__.delete())
        assert index.link(plan=plan) >= 2
        assert (*key, "verified") in _pairs(index)

        # a plan that has gone stale (a photo removed after planning) is searched again under the lock
        paths["ant_copy"].write_bytes(kept)
        with index.catalog.session() as sess:
            sess.execute(update(CatalogImage).values(linked=False))
            sess.execute(Pair.__table__.delete())
        plan = index.plan_link()
        assert any(ids["ant-small.jpg"] in p[:2] for p in plan.found)
        index.remove([ids["ant-small.jpg"]])
        paths["ant_copy"].unlink()  # so the pair can only be linked from the plan's verdict
        from indexer.summary import IngestSummary

        after = IngestSummary()
        index.link(after, plan=plan)
        assert all(ids["ant-small.jpg"] not in p[:2] for p in _pairs(index))
        assert (*key, "verified") in _pairs(index)  # its verdict still holds: both photos unchanged
        assert after.timings.verify == 0 and not after.warnings


def test_similar_verifies_the_queries_most_similar_band_hits_only(tmp_path: Path, settings_factory) -> None:
    """A query verifies its verify_per_photo most similar band hits, as the link step does for a photo."""
    import io

    from PIL import ImageEnhance

    from indexer.decode import load_image

    root = tmp_path / "lib"
    root.mkdir()
    ant = open_photo(ANT)
    ant.save(root / "ant.jpg", quality=92)
    ImageEnhance.Brightness(ant.rotate(90, expand=True)).enhance(0.6).save(root / "ant-turned-dark.jpg", quality=90)
    shutil.copy(JEEP, root / "jeep.jpg")
    buf = io.BytesIO()
    heavy_copy(ant).save(buf, "JPEG", quality=85)
    data = buf.getvalue()
    for cap, expected in ((1, {"ant-turned-dark.jpg"}), (2, {"ant-turned-dark.jpg", "ant.jpg"})):
        with Index(settings_factory(data_dir=tmp_path / f"data{cap}", verify_per_photo=cap)) as index:
            index.ingest([str(root)])
            thr, band = index.threshold, index.settings.verify_band
            px = load_image(data, max_pixels=index.settings.max_pixels, size=index.spec.input_size).pixels
            hits = {Path(h["path"]).name: h for h in index.similar_to_pixels(px, k=3, source=data)}
            sims = {n: hits[n]["similarity"] for n in ("ant.jpg", "ant-turned-dark.jpg")}
            assert all(thr - band <= x < thr for x in sims.values()), sims  # both in the band,
            assert sims["ant-turned-dark.jpg"] > sims["ant.jpg"], sims  # the turned one first
            assert {n for n, h in hits.items() if h["is_duplicate"]} == expected


def test_link_features_apply_the_file_size_limit_and_odd_keypoints_link_nothing(tmp_path: Path) -> None:
    from indexer.config import Settings
    from indexer.errors import ImageTooLarge
    from indexer.features import PhotoFeatures
    from indexer.featurestore import of_file
    from indexer.linkrule import decide, rule_of

    with pytest.raises(ImageTooLarge):
        of_file(ANT, max_pixels=10**9, max_bytes=ANT.stat().st_size - 1)
    ant = of_file(ANT, max_pixels=10**9, max_bytes=ANT.stat().st_size)
    assert ant.texture > 0
    # descriptors of the wrong length make the matcher raise (numpy's product): the link step catches it per pair
    rng = np.random.default_rng(2)
    xy, des = rng.uniform(0, 400, (30, 2)).astype(np.float32), rng.integers(0, 255, (30, 64)).astype(np.uint8)
    odd = PhotoFeatures(Keypoints(((xy, des), (xy, des)), (480, 360)), ant.grey, ant.thumb)
    rule = rule_of(Settings(data_dir=tmp_path), 0.6)
    with pytest.raises(Exception):  # noqa: B017 - a ValueError from numpy (cv2.error from OpenCV before)
        decide(rule, 0.5, odd, ant)
    assert decide(rule, 0.99, ant, ant).kind == "verified"


def test_feature_source_reads_each_photo_without_features_once(tmp_path: Path, settings_factory) -> None:
    """Photos without kept features are read once per link step (and kept), however many pairs they are in."""
    from indexer.catalog import Features
    from indexer.featurestore import FeatureSource

    ant = open_photo(ANT)
    root = tmp_path / "lib"
    root.mkdir()
    for name, src in (("jeep.jpg", JEEP), ("van.jpg", VAN), ("cock.jpg", COCK)):
        shutil.copy(src, root / name)
    heavy_copy(ant).save(root / "heavy.png")
    ImageOps.mirror(ant).save(root / "mirror.png")
    ant.save(root / "ant.png")
    with Index(settings_factory()) as index:
        index.ingest([str(root)])
        with index.catalog.session() as sess:
            sess.execute(Features.__table__.delete())
        with index.catalog.session() as sess:
            ids = list(_ids(index).values())

            class Counting(FeatureSource):  # the real FeatureSource; counts the files it decodes
                def __init__(self, *args, **kwargs) -> None:
                    super().__init__(*args, **kwargs)
                    self.reads: list[int] = []

                def _read(self, ids: list[int]) -> None:
                    self.reads.extend(ids)
                    super()._read(ids)

            src = Counting(sess, max_pixels=10**9)
            for a in ids:
                for b in ids:
                    if a < b:
                        src.get([a, b])
            assert sorted(src.reads) == sorted(ids) and src.read == len(ids)
        with index.catalog.session() as sess:
            assert sess.query(Features).count() == len(ids)


def test_ingest_reports_verification_progress(tmp_path: Path, settings_factory) -> None:
    class Recorder:
        def __init__(self) -> None:
            self.phases: list[tuple[str, int]] = []
            self.done: list[int] = []

        def start(self, total: int, description: str) -> None:
            self.phases.append((description, total))

        def advance(self, done: int, failed: int) -> None:
            self.done.append(done)

    _library(tmp_path / "lib")
    rec = Recorder()
    with Index(settings_factory()) as index:
        s = index.ingest([str(tmp_path / "lib")], progress=rec)
    assert [d for d, _ in rec.phases] == ["indexing", "checking candidate pairs"]
    pairs = rec.phases[1][1]
    assert pairs >= 2 and rec.done[-1] == pairs and s.verified_pairs == 1


def test_moved_tells_depth_from_noise() -> None:
    """Residuals under one homography: a point's own noise does not move with its neighbours' (a copy), a shift
    that grows with depth does (two shots of one scene); a perspective view of a flat picture leaves none."""
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 480, (300, 2))
    tilt = np.array([[1.0, 0.05, 3.0], [0.02, 0.95, -4.0], [1e-4, 2e-4, 1.0]])
    flat = np.c_[src, np.ones(len(src))] @ tilt.T
    flat = flat[:, :2] / flat[:, 2:]
    noisy = verify.Fit(300, tilt, points=(src, flat + rng.normal(0, 0.5, src.shape)))
    deep = verify.Fit(300, tilt, points=(src, flat + np.c_[3.0 * (src[:, 1] / 480) ** 2, np.zeros(len(src))]))
    few = verify.Fit(10, tilt, points=(src[:10], flat[:10]))
    assert abs(verify.moved(noisy)) < 0.2 and verify.moved(deep) > 0.8
    assert verify.moved(few) is None and verify.moved(verify.Fit(300, tilt)) is None


def test_text_agrees_at_a_bar_exactly_where_the_text_agreement_reaches_it() -> None:
    """``pagecheck.agrees`` stops reading cells once the answer is known; its answer is still the full
    ``agreement``'s against the bar, for a copy of a page and for another page of its template, just at the
    share and just above it."""
    import random

    from bench import confusers as C
    from indexer import pagecheck
    from indexer.linkrule import geometry, rule_of

    r = random.Random(5)
    one, other = (C.doc_invoice(k, r).convert("RGB") for k in (3, 4))
    copy = one.resize((one.width * 9 // 10, one.height * 9 // 10), Image.Resampling.BILINEAR)
    rule = rule_of(Settings(), 0.6)
    seen = set()
    for x, y in ((one, copy), (one, other)):
        a, b = extract(x), extract(y)
        assert a.page is not None and b.page is not None
        fits = geometry(rule, a, b)[2]
        assert fits is not None
        share = pagecheck.agreement(a.page, b.page, fits[0].matrix, a.keypoints.size, b.keypoints.size)
        seen.add(share == 1.0)
        for least in (share - 0.01, share, np.nextafter(share, 2.0), 0.5, 0.92, 0.99):
            got = pagecheck.agrees(a.page, b.page, fits[0].matrix, a.keypoints.size, b.keypoints.size, least)
            assert got == (share >= least), (share, least)
    assert seen == {True, False}  # a copy finds every cell, the other page misses some


def test_displaced_counts_no_cell_of_a_copy_with_another_caption() -> None:
    """A re-captioned copy differs where its text is, and text in one font looks alike a few pixels on; those
    cells are clipped white or black, or found in their own picture as well, so none counts as content that
    moved (``verify.displaced``). Only a copy's edits differ; nothing of it moved."""
    import random

    from bench import confusers as C
    from indexer.linkrule import geometry, rule_of

    rule, r = rule_of(Settings(), 0.6), random.Random(2)
    for path, style in ((JEEP, C.caption_meme), (VAN, C.caption_bar), (COCK, C.caption_subtitle)):
        im = C.photo(path)
        one, other = (extract(style(im, text, r, "tune")) for text in C.CAPTIONS["tune"][:2])
        fits = geometry(rule, one, other).fits
        assert fits is not None
        assert verify.displaced(one.grey, other.grey, fits[0]) + verify.displaced(other.grey, one.grey, fits[1]) == 0
