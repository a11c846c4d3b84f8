"""Threshold calibration: the curve is sensible and the chosen threshold meets its target on its own data."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from indexer.augment import FAMILIES, open_photo, random_edit
from indexer.calibrate import calibrate, calibrate_scores, format_curve, train_split

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT.parent / "shared" / "data" / "photos"
BASELINE = ROOT / "models" / "dupesift-effnetlite0-imagenet.onnx"


def test_scores_perfect_separation() -> None:
    t, p, r, curve = calibrate_scores(np.array([0.9, 0.8, 0.95]), np.array([0.1, 0.5, 0.6]), 0.995)
    assert 0.6 < t <= 0.8 and p == 1.0 and r == 1.0


def test_scores_respect_target_from_the_top() -> None:
    pos = np.linspace(0.5, 1.0, 200)
    neg = np.r_[np.full(1, 0.97), np.linspace(0.0, 0.7, 5000)]  # one very close negative near the top
    t, p, r, curve = calibrate_scores(pos, neg, 0.99)
    assert p >= 0.99
    # every stricter threshold also meets the target
    for row in curve:
        if row.threshold >= t and row.true_positives:
            assert row.precision >= 0.99 - 1e-9
    recalls = [row.recall for row in curve]  # curve is listed from strict to loose
    assert recalls == sorted(recalls)


def test_every_family_returns_rgb() -> None:
    im = Image.new("RGB", (120, 90), (90, 140, 30))
    r = random.Random(1)
    for name, fn in FAMILIES.items():
        out = fn(im, r)
        assert out.mode == "RGB" and min(out.size) >= 8, name
    edited, chain = random_edit(im, r)
    assert 1 <= len(chain) <= 3 and len(set(chain)) == len(chain)


@pytest.mark.skipif(not BASELINE.exists() or not PHOTOS.exists(), reason="needs the baseline model and photos")
def test_real_calibration_meets_target() -> None:
    from indexer.calibrate import onnx_embed_fn

    photos = train_split(PHOTOS)[::40][:20]
    fn, spec = onnx_embed_fn(BASELINE)
    result = calibrate(photos, fn, target_precision=0.99, copies=2, seed=3)
    assert result.positives == 40 and result.negatives > 1000
    assert result.precision >= 0.99
    row = next(row for row in result.curve if abs(row.threshold - result.threshold) < 5e-5)
    assert row.precision >= 0.99 and 0 < row.recall <= 1
    precisions_loose = [row.precision for row in result.curve if row.threshold < 0.45]
    assert precisions_loose and min(precisions_loose) < row.precision  # loose thresholds admit negatives
    assert "chosen" in format_curve(result)


def test_open_photo_shrinks() -> None:
    if not PHOTOS.exists():
        pytest.skip("no photos")
    im = open_photo(sorted(PHOTOS.glob("*.JPEG"))[1], max_side=200)
    assert max(im.size) <= 200 and im.mode == "RGB"
