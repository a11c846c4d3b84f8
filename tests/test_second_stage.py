"""A second training stage on top of a shipped model: loading an ONNX embedder back into torch (exactly),
turn-averaged targets (exactly turn invariant), and a tiny run with ``init_from`` + ``turn_kd``."""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("efficientnet_lite_pytorch")

from PIL import Image

from indexer.embedder import OnnxEmbedder
from indexer.modelspec import read_spec
from indexer.preprocess import normalize, to_model_pixels
from indexer.training.config import TrainConfig
from indexer.training.export import spec_for
from indexer.training.from_onnx import embedder_from_onnx
from indexer.training.train import train
from indexer.training.turn_targets import per_view_targets, turn_averaged

pytestmark = [pytest.mark.torch, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT.parent / "shared" / "data" / "photos"
OURS = ROOT / "models" / "dupesift-arcface-kd-lite0.onnx"
BASELINE = ROOT / "models" / "dupesift-effnetlite0-imagenet.onnx"

needs_photos = pytest.mark.skipif(not PHOTOS.exists(), reason="../shared/data/photos not present")


def _pixels(size: int, n: int = 3) -> np.ndarray:
    return np.stack([to_model_pixels(Image.open(p).convert("RGB"), size) for p in sorted(PHOTOS.glob("*.JPEG"))[:n]])


@needs_photos
@pytest.mark.parametrize("model", [OURS, BASELINE], ids=["ours", "baseline"])
def test_an_exported_embedder_loads_back_into_torch_exactly(model: Path) -> None:
    """The exporter folds BatchNorm into the convolutions; the loader puts the fused weights back into the
    Lite0 architecture (GeM + projection for ours, average pooling and no projection for the baseline)."""
    student = embedder_from_onnx(model)
    onnx = OnnxEmbedder(model)
    px = _pixels(onnx.spec.input_size)
    with torch.no_grad():
        ours = student(torch.from_numpy(normalize(px, onnx.spec))).numpy()
    assert ours.shape == (3, onnx.spec.dim)
    assert np.abs(ours - onnx.embed(px)).max() < 1e-4


def test_a_file_that_is_not_a_lite0_embedder_is_refused(tmp_path: Path) -> None:
    from indexer.training.export import export_onnx

    tiny = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    spec = read_spec(BASELINE)
    path = export_onnx(tiny, tmp_path / "tiny.onnx", dataclasses.replace(spec, dim=8))
    with pytest.raises(ValueError, match="convolutions"):
        embedder_from_onnx(path)


@needs_photos
def test_turn_averaged_embeddings_are_exactly_turn_invariant() -> None:
    onnx = OnnxEmbedder(OURS)
    px = _pixels(onnx.spec.input_size)
    avg = turn_averaged(onnx.embed, px)
    np.testing.assert_allclose(np.linalg.norm(avg, axis=1), 1.0, atol=1e-5)
    for k in (1, 2, 3):
        turned = np.ascontiguousarray(np.rot90(px, k, axes=(1, 2)))
        np.testing.assert_allclose(turn_averaged(onnx.embed, turned), avg, atol=1e-5)
    # and it is not the plain embedding: one pass is not turn invariant (that is what turn_kd trains for)
    plain = onnx.embed(px)
    assert (plain * avg).sum(1).min() < 0.999


def test_a_view_can_aim_at_its_own_average_its_originals_or_its_photos_centroid() -> None:
    rng = np.random.default_rng(0)
    owner = np.array([0, 0, 0, 5, 5, 9])  # the bank's order: each photo's original first, then its copies
    avg = rng.normal(size=(6, 4)).astype(np.float32)
    avg /= np.linalg.norm(avg, axis=1, keepdims=True)
    np.testing.assert_array_equal(per_view_targets(avg, owner, "view"), avg)
    np.testing.assert_array_equal(per_view_targets(avg, owner, "original"), avg[[0, 0, 0, 3, 3, 5]])
    cent = per_view_targets(avg, owner, "centroid")
    expected = avg[:3].sum(0) / np.linalg.norm(avg[:3].sum(0))
    np.testing.assert_allclose(cent[:3], np.tile(expected, (3, 1)), atol=1e-6)
    np.testing.assert_allclose(cent[5], avg[5], atol=1e-6)  # a photo with one view is its own centroid
    np.testing.assert_allclose(np.linalg.norm(cent, axis=1), 1.0, atol=1e-6)
    with pytest.raises(ValueError, match="centroid"):
        per_view_targets(avg, owner, "mean")


def _tiny(tmp_path: Path, name: str, **kw) -> TrainConfig:
    return TrainConfig(
        name=name, photos_dir=str(PHOTOS), train_photos=4, calib_photos=0, views_per_photo=2, photos_per_batch=4,
        views_per_sample=2, warmup_steps=1, frozen_blocks=14, lr=3e-3, checkpoint_every=0, input_size=176,
        pooling="gem", dim=256, out_dir=str(tmp_path / name), cache_dir=str(tmp_path / "cache"), calibrate=False,
        threads=2, kd_target="original", kd_input="embedding", export=str(tmp_path / f"{name}.onnx"), **kw)


@needs_photos
def test_a_second_stage_starts_from_the_shipped_model_and_learns_its_turn_average(tmp_path: Path) -> None:
    # no steps: the export is the file it started from (the PCA projection must not overwrite it)
    zero = _tiny(tmp_path, "zero", steps=0, init_from=str(OURS))
    train(zero)
    px = _pixels(176)
    np.testing.assert_allclose(OnnxEmbedder(Path(zero.export)).embed(px), OnnxEmbedder(OURS).embed(px), atol=1e-4)

    cfg = _tiny(tmp_path, "turns", steps=4, init_from=str(OURS), turn_teacher=str(OURS), turn_kd=20.0,
                dihedral_p=1.0)
    train(cfg)
    rows = [json.loads(line) for line in (tmp_path / "turns" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "step" in r]
    assert len(steps) == 4 and all(0 <= r["loss_turn"] < 1 and math.isfinite(r["loss"]) for r in steps)
    targets = [r for r in rows if r.get("event") == "turn_targets"]
    assert targets and not targets[0].get("reused")
    # the targets are cached beside the bank, keyed by the model file; a second run reuses them
    assert len(list((tmp_path / "cache").glob("*-turns-*.npy"))) == 1
    notes = spec_for(cfg).notes
    assert notes["turn_kd"] == 20.0 and notes["init_from"] == OURS.name
    again_cfg = _tiny(tmp_path, "again", steps=1, init_from=str(OURS), turn_teacher=str(OURS), turn_kd=1.0,
                      turn_target="original")  # same cached averages, each view aimed at its photo's original's
    train(again_cfg)
    assert "turn_target" not in notes and spec_for(again_cfg).notes["turn_target"] == "original"
    again = [json.loads(line) for line in (tmp_path / "again" / "metrics.jsonl").read_text().splitlines()]
    assert any(r.get("event") == "turn_targets" and r.get("reused") for r in again)


@needs_photos
def test_second_stage_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="turn_teacher"):
        TrainConfig(turn_kd=1.0)
    with pytest.raises(ValueError, match="turn_teacher"):
        TrainConfig(turn_teacher=str(OURS))
    with pytest.raises(ValueError, match="turn_target"):
        TrainConfig(turn_target="photo")
    with pytest.raises(ValueError, match="1280-d avg embedder"):
        train(_tiny(tmp_path, "mismatch", steps=1, init_from=str(BASELINE)))
