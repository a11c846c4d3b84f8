"""Threshold calibration: the curve is sensible and the chosen threshold meets its target on its own data."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from indexer.augment import FAMILIES, open_photo, random_edit
from indexer.calibrate import (
    PairScores,
    calibrate,
    calibrate_pairs,
    calibrate_scores,
    format_curve,
    threshold_range,
    train_split,
)

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


def test_threshold_range_shows_a_threshold_set_by_one_look_alike_pair() -> None:
    """50 photos, each copy at 0.9; all negatives at 0.2 but one pair of look-alike photos at 0.85. At 0.99
    precision that one pair sets the threshold (0.875, halfway to it); resamples that leave either photo out
    (about 60 %) calibrate to 0.55, halfway between the copies and the rest."""
    n = 50
    pos, pos_photo = np.full(n, 0.9), np.arange(n)
    pairs = np.array([(a, b) for a in range(n) for b in range(a + 1, n)])
    neg = np.where((pairs[:, 0] == 0) & (pairs[:, 1] == 1), 0.85, 0.2)
    t, *_ = calibrate_scores(pos, neg, 0.99)
    assert t == pytest.approx(0.875)
    lo, hi = threshold_range(pos, pos_photo, neg, pairs, n, 0.99)
    assert lo == pytest.approx(0.55) and hi == pytest.approx(0.875)
    # well separated: every resample picks the same cut
    assert threshold_range(pos, pos_photo, np.full(len(pairs), 0.2), pairs, n, 0.99) == (0.55, 0.55)


def test_pooled_pair_scores_renumber_photos_and_keep_folds_apart() -> None:
    """Two folds of 20 photos: fold A separates copies from others cleanly, fold B has one look-alike pair at
    0.85. Pooled, the photo ids of B follow A's, B's look-alike still sets the threshold at 0.99 precision (one
    false positive in 40 true ones is too many), and resamples see 40 photos."""
    def fold(lookalike: float | None) -> PairScores:
        n = 20
        pairs = np.array([(a, b) for a in range(n) for b in range(a + 1, n)])
        neg = np.full(len(pairs), 0.2)
        if lookalike is not None:
            neg[0] = lookalike
        return PairScores(pos=np.full(n, 0.9), pos_photo=np.arange(n), pos_edits=[["blur"]] * n, neg=neg,
                          neg_photos=pairs, photos=n)

    a, b = fold(None), fold(0.85)
    pooled = PairScores.pooled([a, b])
    assert pooled.photos == 40 and len(pooled.pos) == 40 and len(pooled.neg) == 2 * len(a.neg)
    assert pooled.pos_photo.tolist() == list(range(40))
    assert pooled.neg_photos[len(a.neg)].tolist() == [20, 21]  # B's first pair, renumbered
    assert calibrate_pairs(a, 0.99).threshold == pytest.approx(0.55)
    result = calibrate_pairs(pooled, 0.99)
    assert result.threshold == pytest.approx(0.875) and result.hardest_negative == pytest.approx(0.85)
    assert result.families_recall == {"blur": 1.0} and result.recall == 1.0 and result.photos == 40
    lo, hi = result.threshold_range
    assert lo == pytest.approx(0.55) and hi == pytest.approx(0.875)


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
    assert "chosen" in format_curve(result) and "resamples of the photos" in format_curve(result)
    lo, hi = result.threshold_range
    assert 0 < lo <= hi < 1


def test_open_photo_shrinks() -> None:
    if not PHOTOS.exists():
        pytest.skip("no photos")
    im = open_photo(sorted(PHOTOS.glob("*.JPEG"))[1], max_side=200)
    assert max(im.size) <= 200 and im.mode == "RGB"


def test_dupesift_calibrate_prints_the_curve_and_writes_only_when_asked(tmp_path: Path) -> None:
    """The CLI on a user's folder with the default model: the curve and the chosen threshold, the settings file
    untouched without --write, DUPESIFT_THRESHOLD in it with --write (read back by the next run's settings)."""
    import os
    import shutil
    import subprocess
    import sys

    folder = tmp_path / "mine"
    folder.mkdir()
    for p in sorted(PHOTOS.glob("*.JPEG"))[1::5][:12]:  # eval-split photos: a user's photos, not training's
        shutil.copy(p, folder / p.name)
    exe = Path(sys.executable).with_name("dupesift")
    env = {**os.environ, "DUPESIFT_DATA_DIR": str(tmp_path / "data")}
    env.pop("DUPESIFT_THRESHOLD", None)

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(exe), "calibrate", *args], capture_output=True, text=True, env=env, timeout=300)

    dry = cli(str(folder), "--copies", "2")
    assert dry.returncode == 0, dry.stderr
    assert "12 photos x 2 copies" in dry.stdout + dry.stderr
    line = [ln for ln in dry.stdout.splitlines() if ln.startswith("threshold ") and "(model default 0." in ln]
    assert len(line) == 1 and "precision" in dry.stdout.splitlines()[0], dry.stdout  # the curve comes first
    assert "resamples" in dry.stdout  # the threshold's range is shown with it
    assert "(target 0.995)" in dry.stdout  # the default target precision (indexer.calibrate.TARGET_PRECISION)
    threshold = float(line[0].split()[1].rstrip(":"))
    assert 0.0 < threshold < 1.0
    assert not (tmp_path / "data" / "dupesift.env").exists()

    wrote = cli(str(folder), "--copies", "2", "--write")
    assert wrote.returncode == 0, wrote.stderr
    saved = (tmp_path / "data" / "dupesift.env").read_text()
    assert f"DUPESIFT_THRESHOLD={threshold}" in saved  # same photos, same seed: the same threshold
    from indexer.config import load_settings

    assert load_settings(data_dir=tmp_path / "data").threshold == threshold

    missing = cli(str(tmp_path / "nowhere"))
    assert missing.returncode != 0 and "no such folder" in missing.stderr
    few = tmp_path / "few"
    few.mkdir()
    shutil.copy(next(iter(sorted(folder.iterdir()))), few)
    short = cli(str(few))
    assert short.returncode != 0 and "need at least 10 photos" in short.stderr
