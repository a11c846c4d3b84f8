"""Weight averaging of exported embedders (``indexer.training.soup``): the mean of every weight, one ONNX file
out with the config's spec, and ingredients that did not start where the config starts are refused."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("efficientnet_lite_pytorch")

from indexer.embedder import OnnxEmbedder
from indexer.modelspec import read_spec
from indexer.preprocess import normalize
from indexer.training.config import load_config
from indexer.training.export import export_onnx
from indexer.training.from_onnx import embedder_from_onnx
from indexer.training.soup import average_embedders, soup

pytestmark = [pytest.mark.torch, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
OURS = ROOT / "models" / "dupesift-arcface-kd-lite0.onnx"
STAGE1 = ROOT / "models" / "dupesift-arcface-kd-lite0-stage1.onnx"
STAGE2 = ROOT / "configs" / "arcface-kd.toml"
PHOTOS = ROOT.parent / "shared" / "data" / "photos"


@pytest.fixture(scope="module")
def nudged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped model with its projection and last convolution moved: another ingredient from its start."""
    model = embedder_from_onnx(OURS)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        model.proj.weight.add_(0.01 * torch.randn(model.proj.weight.shape, generator=g))
        model.backbone._conv_head.weight.mul_(1.1)
    return export_onnx(model, tmp_path_factory.mktemp("soup") / "nudged.onnx", read_spec(OURS))


def test_a_soup_takes_the_mean_of_every_weight(nudged: Path) -> None:
    a, b = embedder_from_onnx(OURS), embedder_from_onnx(nudged)
    mean = average_embedders([OURS, nudged])
    assert torch.allclose(mean.proj.weight, (a.proj.weight + b.proj.weight) / 2, atol=1e-7)
    assert torch.allclose(mean.backbone._conv_head.weight, a.backbone._conv_head.weight * 1.05, rtol=1e-5)
    twice = average_embedders([OURS, OURS])
    x = torch.randn(2, 3, 176, 176, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(twice(x), a(x))  # a soup of one model is that model


@pytest.mark.skipif(not PHOTOS.exists(), reason="../shared/data/photos not present")
def test_a_soup_is_one_onnx_file_with_the_configs_spec_calibrated(nudged: Path, tmp_path: Path) -> None:
    # 4 of the config's held-out photos (the same split: calib_photos only shortens the held-out block)
    cfg = dataclasses.replace(load_config(STAGE2), calib_photos=4, photos_dir=str(PHOTOS))
    out = tmp_path / "soup.onnx"
    result = soup(cfg, [OURS, nudged], out)
    spec = read_spec(out)
    assert result["calib_photos"] == 4 and spec.threshold == result["threshold"]
    assert "<- chosen" in out.with_suffix(".calibration.txt").read_text()
    assert spec.notes["soup"] == [OURS.name, "nudged.onnx"]
    assert spec.notes["init_from"] == STAGE1.name
    assert (spec.dim, spec.input_size) == (cfg.dim, cfg.input_size)
    px = np.random.default_rng(0).integers(0, 256, (2, 176, 176, 3), dtype=np.uint8)
    with torch.no_grad():
        torch_out = average_embedders([OURS, nudged])(torch.from_numpy(normalize(px, spec))).numpy()
    assert np.abs(OnnxEmbedder(out).embed(px) - torch_out).max() < 1e-4


def test_ingredients_must_share_the_configs_start(tmp_path: Path) -> None:
    # stage 1 started from ImageNet, the stage-2 config starts from stage 1's file
    with pytest.raises(ValueError, match="did not start from"):
        soup(load_config(STAGE2), [OURS, STAGE1], tmp_path / "x.onnx")
    with pytest.raises(ValueError, match="at least two"):
        average_embedders([OURS])


def test_a_soup_under_the_configs_name_and_version_is_a_model_of_its_own(nudged: Path, tmp_path: Path) -> None:
    # the default --config gives the soup the shipped model's name and version: its id must still differ,
    # or serving it would re-embed nothing and add its vectors to the shipped model's collection
    cfg = dataclasses.replace(load_config(STAGE2), calibrate=False, photos_dir=str(tmp_path))
    out = tmp_path / "soup.onnx"
    soup(cfg, [OURS, nudged], out)
    mixed, shipped = OnnxEmbedder(out).spec, OnnxEmbedder(OURS).spec
    assert (mixed.name, mixed.version) == (shipped.name, shipped.version)
    assert mixed.model_id not in {shipped.model_id, OnnxEmbedder(nudged).spec.model_id}
