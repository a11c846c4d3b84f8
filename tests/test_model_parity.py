"""The shipped ONNX models against the torch modules they were exported from."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("efficientnet_lite_pytorch")

from indexer.decode import load_image
from indexer.modelspec import EFFNET_LITE0_IMAGENET, SPEC_KEY, ModelSpec, read_spec
from indexer.preprocess import normalize

pytestmark = pytest.mark.torch

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT.parent / "shared" / "data" / "photos"
BASELINE = ROOT / "models" / "dupesift-effnetlite0-imagenet.onnx"
OURS = ROOT / "models" / "dupesift-arcface-kd-lite0.onnx"


def _photos(spec: ModelSpec, n: int = 3) -> np.ndarray:
    files = sorted(PHOTOS.glob("*.JPEG"))[::5][:n]  # eval-split photos: never trained on
    if not files:
        pytest.skip("../shared/data/photos not present")
    return np.stack([load_image(f, max_pixels=50_000_000, size=spec.input_size).pixels for f in files])


def _onnx(path: Path, x: np.ndarray) -> tuple[np.ndarray, ModelSpec]:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    spec = ModelSpec.from_json(sess.get_modelmeta().custom_metadata_map[SPEC_KEY])
    (out,) = sess.run([spec.output_name], {spec.input_name: x})
    return out, spec


@pytest.mark.skipif(not BASELINE.exists(), reason="baseline model not exported")
def test_baseline_parity_and_spec() -> None:
    from indexer.training.backbone import build_embedder

    spec = read_spec(BASELINE)
    # the spec in the file is the export's spec; only the calibrated threshold differs
    assert spec == EFFNET_LITE0_IMAGENET.with_threshold(spec.threshold)
    assert 0.3 < spec.threshold < 0.99
    x = normalize(_photos(spec), spec)
    onnx_out, meta_spec = _onnx(BASELINE, x)
    assert meta_spec == spec
    model = build_embedder().eval()
    with torch.no_grad():
        torch_out = model(torch.from_numpy(x)).numpy()
    assert onnx_out.shape == (len(x), spec.dim)
    assert np.abs(onnx_out - torch_out).max() < 1e-4
    np.testing.assert_allclose(np.linalg.norm(onnx_out, axis=1), 1.0, atol=1e-5)


@pytest.mark.skipif(not BASELINE.exists(), reason="baseline model not exported")
def test_dynamic_batch() -> None:
    spec = read_spec(BASELINE)
    x = normalize(_photos(spec, 3), spec)
    one, _ = _onnx(BASELINE, x[:1])
    three, _ = _onnx(BASELINE, x)
    assert np.abs(one[0] - three[0]).max() < 1e-4


@pytest.mark.skipif(not OURS.exists(), reason="trained model not exported")
@pytest.mark.parametrize("config", ["arcface-kd.toml", "arcface-kd-stage1.toml"])
def test_shipped_model_spec_and_unit_norm(config: str) -> None:
    """The default model and its stage 1 (the file stage 2 starts from and distils the turn average of)."""
    from indexer.training.config import load_config
    from indexer.training.export import spec_for

    recipe = load_config(OURS.parents[1] / "configs" / config)
    path = OURS.parent / Path(recipe.export).name
    spec = read_spec(path)
    # the shipped file is the one its recipe exports: the same spec (size, dimension, version, recipe notes);
    # only the threshold comes from calibration
    assert Path(recipe.export).parent.name == "models" and path.exists()
    assert spec == spec_for(recipe).with_threshold(spec.threshold)
    assert (spec.mean, spec.std) == (EFFNET_LITE0_IMAGENET.mean, EFFNET_LITE0_IMAGENET.std)
    out, _ = _onnx(path, normalize(_photos(spec), spec))
    assert out.shape == (3, 256)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
