"""Export an embedder to ONNX with its ModelSpec in the metadata.

    python -m indexer.training.export --baseline [--out models/dupesift-effnetlite0-imagenet.onnx] [--threshold T]
    python -m indexer.training.export --checkpoint runs/arcface-kd/final.pt --out models/dupesift-arcface-kd-lite0.onnx [--fp16]

Input ``pixels``: float32 (N, 3, S, S), already normalised with the spec's mean/std
(``indexer.preprocess.normalize``). Output ``embedding``: (N, dim) unit vectors. Batch axis is dynamic.
Training-only heads (ArcFace, distillation) are not part of the exported graph.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch
from torch import nn

from indexer.modelspec import EFFNET_LITE0_IMAGENET, ModelSpec, read_spec, write_spec

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"
BASELINE_PATH = MODELS / "dupesift-effnetlite0-imagenet.onnx"
OPSET = 17

__all__ = ["export_onnx", "baseline_spec", "load_checkpoint_embedder", "main"]


def baseline_spec(threshold: float | None = None) -> ModelSpec:
    spec = EFFNET_LITE0_IMAGENET
    return spec if threshold is None else spec.with_threshold(threshold)


def export_onnx(model: nn.Module, path: Path, spec: ModelSpec, *, fp16: bool = False) -> Path:
    """Trace ``model`` (eval mode, fp32 on CPU) to ONNX at ``path`` and store ``spec`` in its metadata.

    ``fp16=True`` converts weights and activations to float16 (for the CUDA provider) while keeping
    the float32 input/output contract, so the embedder feeds it exactly like the fp32 file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().cpu().float()
    dummy = torch.zeros(2, 3, spec.input_size, spec.input_size)
    with torch.no_grad():
        out = model(dummy)
    if out.shape[1] != spec.dim:
        raise ValueError(f"model emits {out.shape[1]}-d vectors but the spec says dim={spec.dim}")
    torch.onnx.export(
        model, (dummy,), str(path),
        input_names=[spec.input_name], output_names=[spec.output_name],
        dynamic_axes={spec.input_name: {0: "batch"}, spec.output_name: {0: "batch"}},
        opset_version=OPSET, do_constant_folding=True, dynamo=False,
    )
    if fp16:
        _to_fp16(path)
    write_spec(path, spec)
    return path


def _to_fp16(path: Path) -> None:
    import onnx

    try:
        from onnxconverter_common import float16
    except ImportError as exc:  # pragma: no cover
        raise SystemExit("--fp16 needs `pip install onnxconverter-common`") from exc
    model = onnx.load(str(path))
    model = float16.convert_float_to_float16(model, keep_io_types=True)
    onnx.save(model, str(path))


def load_checkpoint_embedder(checkpoint: Path) -> tuple[nn.Module, ModelSpec]:
    """Rebuild the exported part of a training checkpoint (see indexer.training.train)."""
    from indexer.training.backbone import build_embedder

    ckpt = torch.load(str(checkpoint), map_location="cpu", weights_only=False)
    model = build_embedder(pooling=ckpt["pooling"], dim=ckpt["dim"], pretrained=False)
    model.load_state_dict(ckpt["embedder"])
    spec = ModelSpec.from_json(ckpt["spec"])
    return model, spec


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--baseline", action="store_true", help="the untouched ImageNet Lite0, average pool, 1280-d")
    src.add_argument("--checkpoint", type=Path, help="a training checkpoint (runs/<name>/final.pt)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--threshold", type=float,
                    help="cosine threshold to store (default: the shipped fp32 model's calibrated value, if any)")
    ap.add_argument("--fp16", action="store_true", help="float16 weights/activations for CUDA (float32 I/O)")
    a = ap.parse_args(argv)
    torch.manual_seed(0)
    if a.baseline:
        from indexer.training.backbone import build_embedder

        model, spec = build_embedder(), baseline_spec()
        out = a.out or BASELINE_PATH
    else:
        model, spec = load_checkpoint_embedder(a.checkpoint)
        out = a.out or MODELS / f"dupesift-{spec.name}.onnx"
    shipped = BASELINE_PATH if a.baseline else MODELS / f"dupesift-{spec.name}.onnx"
    if a.threshold is not None:
        spec = spec.with_threshold(a.threshold)
    elif shipped.exists() and shipped.resolve() != Path(out).resolve():
        spec = spec.with_threshold(read_spec(shipped).threshold)  # keep the calibrated value (fp16 variant)
    if a.fp16:
        spec = dataclasses.replace(spec, notes={**spec.notes, "precision": "fp16"})
        out = out.with_name(out.stem + "-fp16.onnx") if not a.out else out
    export_onnx(model, out, spec, fp16=a.fp16)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): {read_spec(out).to_json()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
