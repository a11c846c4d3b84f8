"""Laying a blurred copy over its original by its pixels (indexer/align.py)."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from indexer import align
from indexer.features import GREY_SIDE
from tests.conftest import PHOTOS

MAGPIE = PHOTOS / "n01582220_magpie.JPEG"


def grey(im: Image.Image) -> np.ndarray:
    g = im.convert("L")
    g.thumbnail((GREY_SIDE, GREY_SIDE), Image.Resampling.BILINEAR)
    return np.asarray(g, dtype=np.uint8)


def test_a_blurred_crop_is_laid_where_it_was_cut_from() -> None:
    """The copy is the middle 80 % of the photo, blurred: the map sends the original's centre to the copy's centre,
    scales by 1/0.8 and does not turn; the original's corners fall outside the copy."""
    im = Image.open(MAGPIE).convert("RGB")
    w, h = im.size
    box = (round(w * 0.1), round(h * 0.1), round(w * 0.9), round(h * 0.9))
    sharp, soft = grey(im), grey(im.crop(box).filter(ImageFilter.GaussianBlur(6)))
    m = align.ecc_affine(sharp, soft)
    assert m is not None
    centre = m @ np.array([sharp.shape[1] / 2, sharp.shape[0] / 2, 1.0])
    assert np.allclose(centre, [soft.shape[1] / 2, soft.shape[0] / 2], atol=2.0), centre
    scale = soft.shape[1] / (0.8 * sharp.shape[1])
    assert np.allclose(m[:, :2], np.diag([scale, scale]), atol=0.03), m
    turn, stretch = align.turn_and_stretch(m)
    assert turn < 1.0 and stretch < 1.03, (turn, stretch)
    warped, inside = align.warp_onto(soft, m, sharp.shape)
    assert not inside[0, 0] and inside[sharp.shape[0] // 2, sharp.shape[1] // 2]
    assert 0.55 < inside.mean() < 0.75  # about 0.8 × 0.8 of the original
    blurred = np.asarray(Image.fromarray(sharp).filter(ImageFilter.GaussianBlur(3)), np.float32)
    on = inside.astype(bool)
    assert np.corrcoef(blurred[on], warped[on].astype(np.float32))[0, 1] > 0.95  # laid where it belongs
    assert align.soft_share(m, sharp.shape, soft.shape) > 0.95  # the whole copy lies inside the original


def test_a_turn_is_measured_and_a_mirror_is_not_a_turn() -> None:
    t = np.radians(8)
    turned = np.float32([[np.cos(t), -np.sin(t), 3], [np.sin(t), np.cos(t), -2]]) * 1.5
    turn, stretch = align.turn_and_stretch(turned)
    assert abs(turn - 8) < 1e-3 and abs(stretch - 1) < 1e-5
    assert align.turn_and_stretch(np.float32([[1, 0, 0], [0, 2, 0]]))[1] == 2.0
    assert align.turn_and_stretch(np.float32([[-1, 0, 0], [0, 1, 0]]))[1] == float("inf")


def test_two_unrelated_pictures_get_no_map() -> None:
    """Noise and a photo share no layout: the coarse correlation stays low and no map is returned."""
    sharp = grey(Image.open(MAGPIE))
    noise = np.random.default_rng(0).integers(0, 256, sharp.shape, dtype=np.uint8)
    soft = np.asarray(Image.fromarray(noise).filter(ImageFilter.GaussianBlur(6)))
    assert align.ecc_affine(sharp, soft) is None
