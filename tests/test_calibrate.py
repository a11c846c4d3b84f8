"""Threshold calibration: the curve is sensible and the chosen threshold meets its target on its own data."""
from __future__ import annotations

import random
import re
import subprocess
import sys
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
    t, p, r, _curve = calibrate_scores(np.array([0.9, 0.8, 0.95]), np.array([0.1, 0.5, 0.6]), 0.995)
    assert 0.6 < t <= 0.8 and p == 1.0 and r == 1.0


def test_scores_respect_target_from_the_top() -> None:
    pos = np.linspace(0.5, 1.0, 200)
    neg = np.r_[np.full(1, 0.97), np.linspace(0.0, 0.7, 5000)]  # one very close negative near the top
    t, p, _r, curve = calibrate_scores(pos, neg, 0.99)
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
    _edited, chain = random_edit(im, r)
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
    fn, _spec = onnx_embed_fn(BASELINE)
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


@pytest.mark.skipif(not PHOTOS.exists(), reason="needs ../shared/data/photos")
def test_calibration_reports_the_link_rule(tmp_path: Path) -> None:
    """The service links pairs by the link rule (indexer/linkrule.py), not the cosine alone: calibration
    measures that rule on the same pairs (copies it links count, different photos it links are false pairs)."""
    from indexer.calibrate import onnx_embed_fn, pair_scores, rule_rates
    from indexer.config import DEFAULT_MODEL, Settings
    from indexer.linkrule import rule_of

    fn, _ = onnx_embed_fn(DEFAULT_MODEL)
    photos = sorted(PHOTOS.glob("*.JPEG"))[1::5][:16]  # eval split: photos the model never saw
    pairs = pair_scores(photos, fn, copies=3, seed=1, verify=True)
    assert pairs.features is not None and len(pairs.features) == 16 * 4
    plain = calibrate_pairs(pairs, 0.995, seed=1)
    assert plain.verified is None
    result = calibrate_pairs(pairs, 0.995, seed=1, settings=Settings(data_dir=tmp_path, verify_band=0.4))
    v = result.verified
    assert v is not None and result.threshold == plain.threshold
    # a wide band: many candidates decided, the copies among them linked (mostly on keypoints), different
    # photos not
    assert v.checked > 50 and v.linked_positives > 0 and v.linked_negatives == 0 and v.precision == 1.0
    assert v.by_kind.get("verified", 0) > v.linked_positives / 2 and v.recall == v.linked_positives / result.positives
    assert "candidates 0.4 below" in v.rule and "the service's link rule at it" in format_curve(result)
    with pytest.raises(ValueError, match="verify=True"):
        rule_rates(pair_scores(photos[:3], fn, copies=1), rule_of(Settings(data_dir=tmp_path), 0.6), 12)


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
        return subprocess.run([str(exe), "calibrate", *args], capture_output=True, text=True, env=env, timeout=300,
                              check=False)

    dry = cli(str(folder), "--copies", "2")
    assert dry.returncode == 0, dry.stderr
    assert "12 photos x 2 copies" in dry.stdout + dry.stderr
    line = [ln for ln in dry.stdout.splitlines() if ln.startswith("threshold ") and "(model default 0." in ln]
    assert len(line) == 1 and "precision" in dry.stdout.splitlines()[0], dry.stdout  # the curve comes first
    assert "resamples" in dry.stdout  # the threshold's range is shown with it
    assert "(target 0.995)" in dry.stdout  # the default target precision (indexer.calibrate.TARGET_PRECISION)

    assert "the service's link rule at it" in dry.stdout, dry.stdout  # what the link step would link at it
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


EVAL = sorted(PHOTOS.glob("*.JPEG"))[1::5]  # eval-split photos: a user's photos, not training's
LIMIT = 250_000_000


def _odd_photos(folder: Path) -> list[Path]:
    """Small files of the modes serving's decode converts specially: alpha, palette transparency, 16-bit,
    grey+alpha, CMYK, EXIF-rotated."""
    folder.mkdir(parents=True, exist_ok=True)
    y, x = np.mgrid[0:90, 0:120]
    rgb = np.stack([x * 2, y * 2, (x + y)], -1).astype(np.uint8)
    alpha = (x * 255 // 119).astype(np.uint8)  # transparent on the left, opaque on the right
    files = {
        "rgba.png": Image.fromarray(np.dstack([rgb, alpha]), "RGBA"),
        "la.png": Image.fromarray(np.dstack([rgb[..., 0], alpha]), "LA"),
        "deep16.png": Image.fromarray((x * 500 + y * 20).astype(np.uint16)),  # 0..60280: not a byte range
    }
    pal = Image.fromarray(rgb, "RGB").quantize(16)
    pal.info["transparency"] = 0
    files["palette.png"] = pal
    paths = []
    for name, im in files.items():
        im.save(folder / name)
        paths.append(folder / name)
    Image.fromarray(rgb, "RGB").convert("CMYK").save(folder / "cmyk.jpg", quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    Image.fromarray(rgb, "RGB").save(folder / "rotated.jpg", quality=95, exif=exif)
    return paths + [folder / "cmyk.jpg", folder / "rotated.jpg"]


def test_open_photo_converts_modes_as_serving_does(tmp_path: Path) -> None:
    """Calibration and training see the pixels serving decodes: transparency on white, 16-bit rescaled, palette
    transparency, CMYK and EXIF orientation (files smaller than max_side, so no shrinking on either side)."""
    from indexer.decode import load_image

    for path in _odd_photos(tmp_path):
        ours = np.asarray(open_photo(path))
        serving = load_image(path, max_pixels=LIMIT, size=None).pixels
        assert ours.shape == serving.shape and np.array_equal(ours, serving), path.name


def _bad_files(folder: Path) -> dict[str, str]:
    """One file of each kind calibration must skip -> the reason it is skipped for (ImageError.reason)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.png").write_text("not a picture\n")
    data = EVAL[0].read_bytes()
    (folder / "cut.jpg").write_bytes(data[: len(data) // 2])
    Image.new("1", (1500, 1000)).save(folder / "bomb.png")  # 1.5 MP in a few hundred bytes
    return {"empty.jpg": "empty", "notes.png": "not-an-image", "cut.jpg": "corrupt", "bomb.png": "too-large"}


def test_open_photo_raises_typed_errors(tmp_path: Path) -> None:
    from indexer.errors import ImageError

    for name, reason in _bad_files(tmp_path).items():
        with pytest.raises(ImageError) as info:
            open_photo(tmp_path / name, max_pixels=1_000_000)
        assert info.value.reason == reason, name


def test_pair_scores_skip_unusable_files_and_lose_nothing(tmp_path: Path) -> None:
    """Bad files among the photos are handed to on_skip and leave the pairs exactly as without them."""
    from indexer.calibrate import TooFewPhotos, onnx_embed_fn, pair_scores

    fn, _ = onnx_embed_fn(BASELINE)
    good = EVAL[:4]
    bad = [tmp_path / name for name in _bad_files(tmp_path)]
    skipped: list[tuple[str, str]] = []
    mixed = pair_scores(good + bad, fn, copies=1, seed=2, max_pixels=1_000_000,
                        on_skip=lambda p, exc: skipped.append((p.name, exc.reason)))
    clean = pair_scores(good, fn, copies=1, seed=2)
    assert sorted(skipped) == sorted(_bad_files(tmp_path).items())
    assert mixed.photos == clean.photos == 4
    assert np.array_equal(mixed.pos, clean.pos) and np.array_equal(mixed.neg, clean.neg)
    with pytest.raises(TooFewPhotos, match="at least two usable photos"):
        pair_scores(good[:1] + bad, fn, copies=1, max_pixels=1_000_000, on_skip=lambda p, exc: None)


def test_spread_is_even_and_seeded() -> None:
    from indexer.calibrate import spread

    files = [Path(f"/lib/{i:03d}.jpg") for i in range(100)]
    picked = spread(list(reversed(files)), 10, seed=1)
    assert [int(p.stem) // 10 for p in picked] == list(range(10))  # one from each tenth of the folder
    assert picked == spread(files, 10, seed=1) and picked != spread(files, 10, seed=2)
    assert spread(files[:7], 10) == files[:7]


def _cli(*args: str, env: dict[str, str], module: bool = False) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "dupesift", "calibrate"] if module else [str(Path(sys.executable).with_name("dupesift")),
                                                                      "calibrate"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, env=env, timeout=300, check=False)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    import os

    env = {**os.environ, "DUPESIFT_DATA_DIR": str(tmp_path / "data"), **extra}
    env.pop("DUPESIFT_THRESHOLD", None)
    return env


def test_dupesift_calibrate_reports_and_skips_bad_files(tmp_path: Path) -> None:
    """Each unusable file gets one line with its reason and the count is given; calibration goes on with the
    rest. With fewer than two usable photos left it fails with exit code 2 and a clear message."""
    import shutil

    folder = tmp_path / "mine"
    bad = _bad_files(folder)
    for p in EVAL[:10]:
        shutil.copy(p, folder / p.name)
    env = _env(tmp_path, DUPESIFT_MAX_PIXELS="1000000")
    run = _cli(str(folder), "--copies", "1", env=env)
    assert run.returncode == 0, run.stderr
    lines = run.stderr.splitlines()
    for name, reason in bad.items():
        assert len([ln for ln in lines if ln.startswith(f"skipped ({reason}) ") and name in ln]) == 1, run.stderr
    assert "skipped 4 unusable files" in run.stderr
    assert "; 10 photos," in run.stdout and "Traceback" not in run.stderr

    for p in EVAL[1:10]:
        (folder / p.name).unlink()  # one usable photo and four bad ones
    for i in range(6):
        (folder / f"empty{i}.jpg").write_bytes(b"")
    few = _cli(str(folder), env=env)
    assert few.returncode == 2 and "Traceback" not in few.stderr
    message = " ".join(few.stderr.split())  # the console wraps long lines
    assert "at least two usable photos: 1 of 11 could be decoded" in message, few.stderr


def test_dupesift_calibrate_samples_across_the_folder(tmp_path: Path) -> None:
    """--limit takes an even spread over the folder's files, not the first ones the scan finds: with ten unusable
    files in one album and ten photos in another, half of a 10-photo sample comes from each."""
    import shutil

    album, broken = tmp_path / "mine" / "b-album", tmp_path / "mine" / "a-broken"
    album.mkdir(parents=True)
    broken.mkdir()
    for p in EVAL[:10]:
        shutil.copy(p, album / p.name)
    for i in range(10):
        (broken / f"{i}.jpg").write_bytes(b"")
    run = _cli(str(tmp_path / "mine"), "--limit", "10", "--copies", "1", env=_env(tmp_path))
    assert run.returncode == 0, run.stderr
    assert "skipped 5 unusable files" in run.stderr and "; 5 photos," in run.stdout


def test_module_write_does_what_the_cli_does(tmp_path: Path) -> None:
    """python -m dupesift calibrate --write: DUPESIFT_MODEL_PATH's model, the threshold into <data-dir>/dupesift.env,
    no model file rewritten."""
    import hashlib
    import shutil

    from indexer.config import DEFAULT_MODEL, load_settings

    def digest(p: Path) -> str:
        return hashlib.sha256(p.read_bytes()).hexdigest()

    folder = tmp_path / "mine"
    folder.mkdir()
    for p in EVAL[:10]:
        shutil.copy(p, folder / p.name)
    model = tmp_path / "baseline.onnx"
    shutil.copy(BASELINE, model)
    before = digest(model), digest(DEFAULT_MODEL)
    run = _cli(str(folder), "--copies", "1", "--write", env=_env(tmp_path, DUPESIFT_MODEL_PATH=str(model)),
               module=True)
    assert run.returncode == 0, run.stderr
    assert re.search(r"calibrating effnetlite0-imagenet-v1-[0-9a-f]{12} on 10 photos", run.stderr)
    assert (digest(model), digest(DEFAULT_MODEL)) == before
    threshold = load_settings(data_dir=tmp_path / "data").threshold
    assert threshold is not None and f"threshold {threshold:.4f}:" in run.stdout


def test_calibrate_without_a_folder_uses_the_photos_dir_train_split(tmp_path: Path) -> None:
    """No FOLDER: the train split (all but every fifth photo by name) of DUPESIFT_PHOTOS_DIR; unset, a clear
    error and exit 2, not a path baked into the installed code."""
    import shutil

    env = _env(tmp_path)
    env.pop("DUPESIFT_PHOTOS_DIR", None)
    unset = _cli(env=env)
    assert unset.returncode == 2 and "DUPESIFT_PHOTOS_DIR is not set" in unset.stderr, unset.stderr
    photos = tmp_path / "photos"
    photos.mkdir()
    for p in EVAL[:13]:
        shutil.copy(p, photos / p.name)
    run = _cli("--limit", "10", "--copies", "1", env={**env, "DUPESIFT_PHOTOS_DIR": str(photos)})
    assert run.returncode == 0, run.stderr
    assert re.search(r"on 10 photos x 1 copies", run.stderr), run.stderr  # of 13, every fifth (the 1st, 6th, 11th) is held out
