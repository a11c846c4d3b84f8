"""The suggested keeper is the original (issue 27): each kind of copy, ingested beside its original through the
real index (Milvus Lite + SQLite), loses to it; a user's "keep" still overrides the suggestion.

Each copy's file is dated *before* its original (a copy restored from a backup): file age must not be what
decides. The rule before issue 27 (most pixels, then EXIF, then the oldest file) kept every one of these copies.
"""
from __future__ import annotations

import io
import os
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps
from sqlalchemy import select, update

from api.main import create_app
from bench.unseen import ordered_dither
from indexer import features, keeper, remeasure, resolution
from indexer.catalog import Image as CatalogImage
from indexer.catalog.models import DupGroup
from indexer.grouping import refresh_groups
from indexer.index import Index
from tests.conftest import photo_files

SOURCE = 9  # the ostrich: a photo with fine texture


def padded(im: Image.Image) -> Image.Image:
    side = max(im.size)
    canvas = Image.new("RGB", (side, side), (0, 0, 0))
    canvas.paste(im, ((side - im.width) // 2, (side - im.height) // 2))
    return canvas


def grey(im: Image.Image) -> Image.Image:
    return ImageOps.grayscale(im).convert("RGB")


def zoomed_crop(im: Image.Image) -> Image.Image:
    """The middle 60 % blown back up to the photo's size (same pixel count as the original)."""
    w, h = im.size
    return im.crop((w // 5, h // 5, w * 4 // 5, h * 4 // 5)).resize((w, h), Image.BICUBIC)


def recompressed(im: Image.Image) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=12)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def captioned(im: Image.Image) -> Image.Image:
    im = im.copy()
    w, h = im.size
    d = ImageDraw.Draw(im)
    d.rectangle((0, int(h * 0.84), w, h), fill=(0, 0, 0))
    d.text((10, int(h * 0.88)), "summer 2019", fill=(255, 255, 255))
    return im


def upscaled(im: Image.Image) -> Image.Image:
    return im.resize((im.width * 2, im.height * 2), Image.BICUBIC)


def cropped(im: Image.Image) -> Image.Image:
    """The middle 70 % of each side, not enlarged: the original's frame holds all of it."""
    w, h = im.size
    return im.crop((w * 3 // 20, h * 3 // 20, w * 17 // 20, h * 17 // 20))


def grainy(im: Image.Image) -> Image.Image:
    """Film grain: noise that must not read as detail."""
    a = np.asarray(im, np.float32) + np.random.default_rng(0).normal(0, 12, (im.height, im.width, 3))
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def sharpened(im: Image.Image) -> Image.Image:
    """A "sharpen" slider: unsharp masking, whose rims at edges read as fine detail."""
    return im.filter(ImageFilter.UnsharpMask(2.0, 150, 2))


def darkened(im: Image.Image) -> Image.Image:
    """Under-exposed with the contrast lowered: nothing clips, every tone moves."""
    return ImageEnhance.Contrast(ImageEnhance.Brightness(im).enhance(0.6)).enhance(0.8)


def stretched(im: Image.Image) -> Image.Image:
    """A levels edit: the contrast stretched about mid-grey by 1.3 (little clips)."""
    return ImageEnhance.Contrast(im).enhance(1.3)


def _pair(root: Path, edit: Callable[[Image.Image], Image.Image]) -> tuple[Path, Path]:
    """The original and its copy in ``root``, both JPEG quality 92; the copy's file is the older one."""
    root.mkdir(parents=True)
    im = Image.open(photo_files(1, offset=SOURCE)[0]).convert("RGB")
    original, copy = root / "original.jpg", root / "copy.jpg"
    im.save(original, "JPEG", quality=92)
    edit(im).save(copy, "JPEG", quality=92)
    os.utime(copy, (1_000_000_000, 1_000_000_000))
    os.utime(original, (1_500_000_000, 1_500_000_000))
    return original, copy


def _only_group(index: Index) -> dict:
    groups = index.groups()
    assert len(groups) == 1, "the copy was not grouped with its original"
    return groups[0]


@pytest.mark.parametrize("edit", [upscaled, padded, grey, zoomed_crop, recompressed, captioned, cropped, sharpened],
                         ids=lambda f: f.__name__)
def test_copy_loses_to_its_original(tmp_path: Path, settings_factory, edit) -> None:
    original, copy = _pair(tmp_path / "lib", edit)
    with Index(settings_factory()) as index:
        index.ingest([str(tmp_path / "lib")])
        g = _only_group(index)
    by_path = {m["path"]: m for m in g["members"]}
    assert by_path[str(original)]["id"] == g["keeper"], g["keeper_reason"]
    assert g["members"][0]["path"] == str(original)  # the keeper is listed first
    lost = by_path[str(copy)]
    assert lost["decided_by"] not in (None, "tie")  # the picture decided, not the file's age
    assert lost["effective_pixels"] and lost["detail"] is not None  # the evidence is shown per member
    assert g["keeper_reason"].startswith(("the others are", "only colour copy"))


def test_grey_copy_reason_and_user_keep_overrides(tmp_path: Path, settings_factory) -> None:
    original, copy = _pair(tmp_path / "lib", grey)
    with Index(settings_factory()) as index:
        index.ingest([str(tmp_path / "lib")])
        g = _only_group(index)
        assert g["keeper_reason"] == "only colour copy"
        assert g["best"]["colour"] == g["keeper"]
        ids = {m["path"]: m["id"] for m in g["members"]}
        with index.catalog.session() as s:  # the user keeps the grey copy: the original is moved, not the copy
            resolution.resolve(s, group_id=g["id"], action="move_others", keep=[ids[str(copy)]],
                               quarantine_dir=index.settings.quarantine_dir, vectors_fn=index.store.get,
                               commit=s.commit)
    assert copy.exists() and not original.exists()
    assert any(p.is_file() for p in index.settings.quarantine_dir.rglob("*"))  # moved, not deleted


def test_group_page_shows_why_the_keeper_won(tmp_path: Path, settings_factory) -> None:
    """The review page puts the keeper first, marks the best value of each attribute, and says what each copy
    lost on, in words."""
    _pair(tmp_path / "lib", grey)
    settings = settings_factory()
    with Index(settings) as index:
        index.ingest([str(tmp_path / "lib")])
        gid = _only_group(index)["id"]
    with TestClient(create_app(settings)) as c:
        html = c.get(f"/ui/groups/{gid}").text
    cards = re.split(r'<div class="member(?: keeper)?" data-id=', html)[1:]
    assert "original.jpg" in cards[0] and "suggested keeper" in cards[0]
    assert '<li class="top">colour' in cards[0] and "<li>grey</li>" in cards[1]
    assert "not kept: less colour (grey or faded)" in cards[1]


@pytest.mark.parametrize("size", [(1, 1), (2, 50), (16, 16), (300, 200), (40, 3000)])
def test_measure_takes_tiny_thin_and_plain_pictures(size: tuple[int, int]) -> None:
    a = keeper.measure(Image.new("RGB", size, (40, 40, 40)))
    assert a.detail_scale == 1.0 and a.border == 0.0 and a.analysed_side == max(size)
    assert a.effective_pixels(*size) == size[0] * size[1]


def test_crop_holds_less_of_the_picture(tmp_path: Path, settings_factory) -> None:
    """Where the group is formed, the verified transform between the members' stored keypoints says the
    original's frame holds all of the crop and the crop only part of the original; both are shown."""
    original, copy = _pair(tmp_path / "lib", cropped)
    with Index(settings_factory()) as index:
        index.ingest([str(tmp_path / "lib")])
        g = _only_group(index)
    by_path = {m["path"]: m for m in g["members"]}
    assert by_path[str(original)]["held"] > 0.95
    assert 0.3 < by_path[str(copy)]["held"] < 0.8  # 70 % of each side: about half the picture
    assert g["keeper"] == by_path[str(original)]["id"]


def _cand(i: int, held: float | None = None, colour: float = 30.0, noise: float = 1.0,
          tint: float = 0.3) -> keeper.Candidate:
    a = keeper.Attributes(detail_scale=0.1, border=0.0, colour=colour, tint=tint, clipped=0.0, noise=noise,
                          blockiness=1.0, jpeg_quality=90, analysed_side=500)
    return keeper.Candidate(id=i, width=500, height=400, mtime=float(i), attributes=a, held=held)


def test_containment_decides_between_otherwise_equal_members() -> None:
    """Same pixels, same evidence, the crops dated first: the member whose frame holds the others wins, and
    the reason says so."""
    members = [_cand(1, held=0.5), _cand(2, held=0.6), _cand(3, held=1.0)]
    ch = keeper.choose(members)
    assert ch.image_id == 3 and ch.reason == "the others are crops of it"
    assert ch.decided_by == {1: "cropped", 2: "cropped"}
    assert keeper.choose([_cand(1), _cand(2)]).decided_by == {2: "tie"}  # not known: the dates decide


def test_holdings_of_a_crop() -> None:
    """``holdings`` on keypoints as the link features keep them: the crop holds about its share."""
    im = Image.open(photo_files(1, offset=SOURCE)[0]).convert("RGB")
    kps = {1: features.extract(im).keypoints, 2: features.extract(cropped(im)).keypoints}
    held = keeper.holdings(kps, [2, 1])
    assert held[1] > 0.95 and 0.3 < held[2] < 0.8


def test_colour_beyond_the_groups_usual_counts_against() -> None:
    """A copy far more colourful than the rest of its group had its colour pushed; one far noisier, grain."""
    usual = [_cand(i) for i in (1, 2, 3, 4, 5)]  # the usual level is an upper quartile: six members tell one out
    assert keeper.choose([*usual, _cand(6, colour=90.0)]).decided_by[6] == "saturated"
    assert keeper.choose([*usual, _cand(6, noise=12.0)]).decided_by[6] == "noise"


def test_colour_counts_against_a_member_only_so_far_beyond_the_groups_usual() -> None:
    """Copies made from a sepia copy (bench/README.md "Copies made from copies"): the group's usual colour is
    theirs, and the original, dated last, must not lose as an over-saturated copy; a vivid copy still does."""
    sepia = [_cand(i, colour=3.0, tint=0.9) for i in (1, 2, 3, 4)]
    assert keeper.choose([*sepia, _cand(5, colour=30.0)]).image_id == 5
    usual = [_cand(i) for i in (1, 2, 3, 4, 5)]
    assert keeper.choose([*usual, _cand(6, colour=60.0)]).decided_by[6] == "saturated"  # 0.68 beyond: counts


def _saved_member(i: int, pic: Image.Image, mtime: float) -> keeper.Candidate:
    """``pic`` as a member, measured as ingest measures the JPEG (quality 92) it is saved as."""
    buf = io.BytesIO()
    pic.save(buf, "JPEG", quality=92)
    a = keeper.measure(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    return keeper.Candidate(id=i, width=pic.width, height=pic.height, mtime=mtime, attributes=a)


def test_grainy_copy_loses_in_its_group(tmp_path: Path) -> None:
    """Grain added to a copy, measured as ingest measures it, in a group of six: the grain does not win as
    detail, and counts against the copy (the usual noise is the group's upper quartile: in a group of two to
    four the noisiest member sets it and noise cannot count there, bench/README.md "Keeper")."""
    im = Image.open(photo_files(1, offset=SOURCE)[0]).convert("RGB")
    members = [_saved_member(i + 1, edit(im), float(10 - i))
               for i, edit in enumerate((lambda x: x, grainy, recompressed, padded, upscaled, captioned))]
    ch = keeper.choose(members)
    assert ch.image_id == 1, ch.reason
    assert ch.decided_by[2] != "tie"


def dithered(im: Image.Image) -> Image.Image:
    """Four levels a channel through a 4 x 4 ordered (Bayer) dither: a retro or print look."""
    return ordered_dither(im, 4)


@pytest.mark.parametrize("edit", [grainy, dithered], ids=lambda f: f.__name__)
def test_grain_or_dither_is_no_detail_even_in_a_pair(edit: Callable[[Image.Image], Image.Image]) -> None:
    """In a group of two the noise term cannot count (the usual noise is the noisier member's), so only the detail
    measure can tell a grainy or dithered copy from its original. The round trip loses the grain as it loses
    detail; with the measured noise taken out, the original holds more detail, though the copy's file is older."""
    im = Image.open(photo_files(1, offset=SOURCE)[0]).convert("RGB")
    cands = [_saved_member(i, pic, float(10 - i)) for i, pic in ((1, im), (2, edit(im)))]
    ch = keeper.choose(cands)
    assert ch.image_id == 1, (ch.reason, [c.attributes.detail_scale for c in cands])
    assert ch.decided_by[2] == "effective_pixels"


def lined(period: int, dark: float) -> Callable[[Image.Image], Image.Image]:
    """Every ``period``-th row darkened by ``dark``: scan lines (a CRT or VHS filter)."""
    def edit(im: Image.Image) -> Image.Image:
        a = np.asarray(im, np.float32).copy()
        a[::period] *= 1 - dark
        return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    edit.__name__ = f"lines_every_{period}"
    return edit


def interlaced(im: Image.Image) -> Image.Image:
    """Every other row moved 3 px sideways: the two fields of an interlaced video frame."""
    a = np.asarray(im).copy()
    a[1::2] = np.roll(a[1::2], 3, axis=1)
    return Image.fromarray(a)


@pytest.mark.parametrize("edit", [lined(2, 0.15), lined(3, 0.3), interlaced], ids=lambda f: f.__name__)
def test_lines_drawn_over_a_photo_are_no_detail(edit: Callable[[Image.Image], Image.Image]) -> None:
    """Rows that differ in turn (scan lines; fields shifted against each other) are lost by the detail measure's
    round trip as fine detail is, so they read as more detail than the original holds; ``unlined`` divides the
    rows' gains out and moves shifted rows back first: the copy measures no more detail than its original and is
    not the keeper. A photo without such rows is measured as it is."""
    im = Image.open(photo_files(1, offset=SOURCE)[0]).convert("RGB")
    raw = [keeper.detail_scale(np.asarray(pic.convert("L"), np.float32)) for pic in (im, edit(im))]
    assert raw[1] > raw[0]  # what the scan lines would read as
    cands = [_saved_member(i, pic, float(i)) for i, pic in ((1, im), (2, edit(im)))]
    assert cands[1].attributes.detail_scale <= cands[0].attributes.detail_scale  # type: ignore[union-attr]
    assert keeper.choose(cands).image_id == 1
    grey = np.asarray(im.convert("L"), np.float32)
    assert np.array_equal(keeper.unlined(grey), grey)


def test_a_sharpened_copy_loses_to_its_original_even_in_a_pair() -> None:
    """Sharpening draws rims at the edges, which the detail measure counts as more detail than the original holds;
    ``halo`` reads them as the overshoot beyond each edge's plateaus. In a group of two, with the copy's file
    older, the original is the keeper, and the copy lost on the rims."""
    im = Image.open(photo_files(1, offset=SOURCE)[0]).convert("RGB")
    cands = [_saved_member(1, im, 9.0), _saved_member(2, sharpened(im), 8.0)]
    a, b = (c.attributes for c in cands)
    assert b.halo > 1.5 * a.halo and b.detail_scale > a.detail_scale  # type: ignore[union-attr]
    ch = keeper.choose(cands)
    assert ch.image_id == 1, ch.reason
    assert ch.decided_by[2] == "halo" and "sharpened" in ch.reason


def test_rims_count_beyond_a_cameras_and_only_on_a_picture_with_noise() -> None:
    """Overshoot up to HALO_FREE is a camera's own; a drawn or rendered picture (no noise: text, clipart, a
    screenshot) has crisp edges of its own, so a shrunk or re-saved copy that softened them gains nothing."""
    def halo(value: float, noise: float) -> float:
        c = _cand(1, noise=noise)
        c = replace(c, attributes=replace(c.attributes, halo=value))  # type: ignore[arg-type]
        return keeper.evidence(c, keeper.usual([c]))["halo"]

    assert halo(0.9, noise=2.0) == pytest.approx(0.9 - keeper.HALO_FREE)
    assert halo(keeper.HALO_FREE * 0.9, noise=2.0) == 0.0
    assert halo(0.9, noise=0.0) == 0.0


def test_halo_reads_the_rims_of_a_sharpened_step() -> None:
    """A soft step between two plateaus has no rim; unsharp masking adds a light one above the light plateau and
    a dark one below the dark plateau; a picture without edges has none to read, and a thin stroke's far side is
    no plateau."""
    step = np.zeros((96, 96), np.float32) + 60.0
    step[:, 48:] = 180.0
    soft = np.asarray(Image.fromarray(step.astype(np.uint8)).filter(ImageFilter.GaussianBlur(1.0)), np.float32)
    sharp = np.asarray(Image.fromarray(soft.astype(np.uint8)).filter(ImageFilter.UnsharpMask(2.0, 150, 0)),
                       np.float32)
    assert keeper.halo(soft) < 0.02
    assert keeper.halo(sharp) > 0.2
    assert keeper.halo(np.full((64, 64), 128.0, np.float32)) == 0.0
    strokes = np.full((96, 96), 220.0, np.float32)
    for x in range(10, 86, 13):  # bars 8 px wide, 5 px apart (text): a bar's far side is the next bar's edge
        strokes[:, x:x + 8] = 40.0
    assert keeper.halo(strokes) == 0.0


def test_what_white_noise_loses_is_noise_loss_per_grey_level() -> None:
    """NOISE_LOSS is what the detail measure's round trip loses on white noise, per grey level of its sigma (as
    ``noise_level`` estimates it): taken out of a noisy plain picture, nothing is left as detail."""
    rng = np.random.default_rng(1)
    for sigma in (3.0, 8.0):
        grey = (128 + rng.normal(0, sigma, (256, 256))).astype(np.float32)
        lost = keeper._round_trip_loss(grey, keeper.FINE_SCALE)
        assert lost / keeper.noise_level(grey) == pytest.approx(keeper.NOISE_LOSS, abs=0.03)
        assert keeper.detail_scale(grey, keeper.noise_level(grey)) < 0.1 * keeper.detail_scale(grey)


def _cand_tones(i: int, tones: tuple[float, ...]) -> keeper.Candidate:
    return replace(_cand(i), attributes=replace(_cand(i).attributes, tones=tones))  # type: ignore[arg-type]


def test_tone_curve_away_from_the_groups_counts_against() -> None:
    """Most edits keep the tones: a member whose tone curve lies away from the group's median had its brightness
    or contrast changed, and loses on ``levels``; in a group of two neither lies nearer the median."""
    base = (10.0, 60.0, 110.0, 160.0, 230.0)
    usual = [_cand_tones(i, base) for i in (1, 2, 3)]
    bright = _cand_tones(4, tuple(min(255.0, v * 1.3) for v in base))
    ch = keeper.choose([*usual, bright])
    assert ch.decided_by[4] == "levels" and "re-toned" in ch.reason
    assert keeper.evidence(usual[0], keeper.usual([*usual, bright]))["levels"] == 0.0
    two = [_cand_tones(1, base), _cand_tones(2, tuple(v * 0.8 for v in base))]
    e = [keeper.evidence(m, keeper.usual(two))["levels"] for m in two]
    assert e[0] == pytest.approx(e[1])


@pytest.mark.parametrize("edit", [darkened, stretched], ids=lambda f: f.__name__)
def test_exposure_copy_loses_in_its_group(edit: Callable[[Image.Image], Image.Image]) -> None:
    """A darkened or contrast-stretched copy, measured as ingest measures it beside an original and copies that
    keep its tones (a re-save, padding, a caption), loses to the original on its tone curve, though the file
    is older and nothing in it clips."""
    im = Image.open(photo_files(1, offset=SOURCE)[0]).convert("RGB")
    members = [_saved_member(i + 1, e(im), float(10 - i))
               for i, e in enumerate((lambda x: x, edit, recompressed, padded, captioned))]
    assert len(members[0].attributes.tones) == len(keeper.TONE_QUANTILES)  # type: ignore[union-attr]
    ch = keeper.choose(members)
    assert ch.image_id == 1, ch.reason
    group = keeper.usual(members)
    assert keeper.evidence(members[1], group)["levels"] > 4 * keeper.evidence(members[0], group)["levels"]
    assert ch.decided_by[2] == "levels"


def test_photos_measured_by_an_older_measure_are_measured_again(tmp_path: Path, settings_factory) -> None:
    """After an upgrade of the measure, photos indexed before it have no evidence the rule can use (it falls back
    to most pixels first: the upscaled copy). The next ingest reads the grouped ones again, measures them and
    chooses the keeper again, though no file changed."""
    original, copy = _pair(tmp_path / "lib", upscaled)
    with Index(settings_factory()) as index:
        index.ingest([str(tmp_path / "lib")])
        with index.catalog.session() as s:  # as an older version left them
            s.execute(update(CatalogImage).values(measured=keeper.VERSION - 1))
        gid = _only_group(index)["id"]
        with index.catalog.session() as s:
            refresh_groups(s, [gid], index.store.get)
        assert {m["path"]: m["id"] for m in _only_group(index)["members"]}[str(copy)] == _only_group(index)["keeper"]
        s2 = index.ingest([str(tmp_path / "lib")])
        assert s2.indexed == 0  # nothing was embedded again
        g = _only_group(index)
    assert {m["path"]: m["id"] for m in g["members"]}[str(original)] == g["keeper"], g["keeper_reason"]
    with Index(settings_factory()) as index, index.catalog.session() as s:
        assert set(s.scalars(select(CatalogImage.measured))) == {keeper.VERSION}


def test_a_flat_drawing_outranks_its_smaller_copy() -> None:
    """An icon of flat colours (plain ground, crisp anti-aliased edges) and a copy shrunk to 45 %: most of the
    icon is plain, and the shrink leaves less of it plain, so detail measured over every block ranked the copy
    first. Measured over the blocks that hold some picture, the original holds more effective pixels."""
    icon = Image.new("RGB", (2048, 2048), (255, 255, 255))
    d = ImageDraw.Draw(icon)
    d.rounded_rectangle((384, 256, 1664, 1792), radius=160, fill=(66, 133, 244), outline=(20, 60, 140), width=24)
    d.ellipse((720, 600, 1328, 1208), fill=(255, 255, 255))
    d.polygon([(600, 1600), (1024, 1280), (1448, 1600)], fill=(251, 188, 5))
    big = icon.resize((512, 512), Image.Resampling.LANCZOS)  # drawn large, saved at its size: crisp edges
    small = big.resize((230, 230), Image.Resampling.LANCZOS)
    a, b = keeper.measure(big), keeper.measure(small)
    assert a.effective_pixels(*big.size) > b.effective_pixels(*small.size), (a.detail_scale, b.detail_scale)


def test_a_drawing_on_the_8px_grid_is_not_taken_for_a_jpeg_where_no_member_is_one() -> None:
    """An icon drawn on an 8 px grid (its edges fall on JPEG's block boundaries) and a PNG copy shrunk to 45 %:
    with no JPEG file in the group, steps on that grid are the drawing's own, not compression, and the original
    is the keeper. Saved as JPEG, the same steps count as blockiness again."""
    icon = Image.new("RGB", (512, 512), (255, 255, 255))
    d = ImageDraw.Draw(icon)
    for x0, y0, x1, y1, rgb in ((64, 64, 448, 448, (52, 101, 164)), (128, 128, 384, 192, (255, 255, 255)),
                                (128, 256, 320, 320, (239, 41, 41)), (128, 352, 256, 384, (252, 175, 62))):
        d.rectangle((x0, y0, x1 - 1, y1 - 1), fill=rgb)
    small = icon.resize((230, 230), Image.Resampling.LANCZOS)
    cands = [keeper.Candidate(id=i, width=im.width, height=im.height, mtime=float(i), attributes=keeper.measure(im))
             for i, im in ((1, icon), (2, small))]
    assert keeper.choose(cands).image_id == 1
    jpeg = [replace(c, attributes=replace(c.attributes, jpeg_quality=95)) for c in cands]
    assert keeper.usual(jpeg).jpegs and not keeper.usual(cands).jpegs


def test_keepers_chosen_by_an_older_rule_are_chosen_again(tmp_path: Path, settings_factory) -> None:
    """After an upgrade of the ranking (``keeper.choice_id``), a stored keeper may be an older rule's pick, and bulk
    review applies the stored one. The next ingest chooses every group's keeper again, embedding nothing; a fresh
    catalog records the rule on its first ingest and refreshes nothing."""
    original, copy = _pair(tmp_path / "lib", upscaled)
    with Index(settings_factory()) as index:
        index.ingest([str(tmp_path / "lib")])
        assert index.catalog.get_meta(remeasure.CHOICE_KEY) == keeper.choice_id()
        assert remeasure.rechoose(index) == 0
        ids = {m["path"]: m["id"] for m in _only_group(index)["members"]}
        assert _only_group(index)["keeper"] == ids[str(original)]
        with index.catalog.session() as s:  # as an older rule left it
            s.execute(update(DupGroup).values(keeper_id=ids[str(copy)], keeper_reason="an older rule's"))
        index.catalog.set_meta(remeasure.CHOICE_KEY, "an older rule")
        s2 = index.ingest([str(tmp_path / "lib")])
        assert s2.indexed == 0
        g = _only_group(index)
        assert g["keeper"] == ids[str(original)], g["keeper_reason"]
        assert index.catalog.get_meta(remeasure.CHOICE_KEY) == keeper.choice_id()
