"""Export an embedder to ONNX with its ModelSpec in the metadata, and calibrate the exported file.

Input ``pixels``: float32 (N, 3, S, S), already normalised with the spec's mean/std
(``indexer.preprocess.normalize``). Output ``embedding``: (N, dim) unit vectors. Batch axis is dynamic.
Training-only heads (ArcFace, distillation) are not part of the exported graph. The threshold stored in the
spec is chosen on the run's held-out train-split photos (``calibrate_export``), never on eval photos.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn

from indexer.config import MODELS_DIR
from indexer.errors import DupesiftError
from indexer.modelspec import EFFNET_LITE0_IMAGENET, ModelSpec, read_spec, write_spec
from indexer.training.config import TrainConfig

BASELINE_PATH = MODELS_DIR / "dupesift-effnetlite0-imagenet.onnx"
OPSET = 17

__all__ = ["baseline_spec", "calibrate_export", "export_and_calibrate", "export_file", "export_onnx",
           "load_checkpoint_embedder", "save_checkpoint", "spec_for"]


def baseline_spec(threshold: float | None = None) -> ModelSpec:
    spec = EFFNET_LITE0_IMAGENET
    return spec if threshold is None else spec.with_threshold(threshold)


def spec_for(cfg: TrainConfig) -> ModelSpec:
    """The spec a recipe's model is exported with: Lite0's preprocessing, the recipe's name, version, size and
    dimension, and notes naming the recipe's settings (only those in use, so adding one keeps old specs)."""
    return dataclasses.replace(
        EFFNET_LITE0_IMAGENET, name=cfg.name, version=cfg.version, dim=cfg.dim, input_size=cfg.input_size,
        notes={"recipe": "+".join(["arcface"] + ["koleo"] * (cfg.koleo > 0) + ["kd"] * cfg.kd),
               "pooling": cfg.pooling, "margin": cfg.margin, "scale": cfg.scale, "koleo": cfg.koleo,
               "kd_balance": cfg.kd_balance if cfg.kd else 0.0, "kd_input": cfg.kd_input if cfg.kd else "",
               "steps": cfg.steps}
        | ({"kd_similarity": cfg.kd_similarity, "kd_similarity_temperature": cfg.kd_similarity_temperature}
           if cfg.kd and cfg.kd_similarity else {})
        | ({"lookalike_batches": True} if cfg.lookalike_batches else {})
        | ({"ema_decay": cfg.ema_decay} if cfg.ema_decay else {})
        | ({"init_from": Path(cfg.init_from).name} if cfg.init_from else {})
        | ({"turn_kd": cfg.turn_kd, "turn_teacher": Path(cfg.turn_teacher).name} if cfg.turn_kd else {})
        | ({"turn_target": cfg.turn_target} if cfg.turn_kd and cfg.turn_target != "view" else {}),
    )


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
        raise DupesiftError("an fp16 export needs `pip install onnxconverter-common`") from exc
    model = onnx.load(str(path))
    model = float16.convert_float_to_float16(model, keep_io_types=True)
    onnx.save(model, str(path))


def save_checkpoint(path: Path, student: nn.Module, cfg: TrainConfig, spec: ModelSpec, step: int) -> Path:
    """The exported part of a run (the embedder, not the training heads) with its recipe and spec."""
    torch.save({"embedder": student.state_dict(), "pooling": cfg.pooling, "dim": cfg.dim, "spec": spec.to_json(),
                "step": step, "config": dataclasses.asdict(cfg)}, path)
    return path


def load_checkpoint_embedder(checkpoint: Path) -> tuple[nn.Module, ModelSpec]:
    """Rebuild the exported part of a training checkpoint (``save_checkpoint``)."""
    from indexer.training.backbone import build_embedder

    ckpt = torch.load(str(checkpoint), map_location="cpu", weights_only=False)
    model = build_embedder(pooling=ckpt["pooling"], dim=ckpt["dim"], pretrained=False)
    model.load_state_dict(ckpt["embedder"])
    spec = ModelSpec.from_json(ckpt["spec"])
    return model, spec


def export_and_calibrate(cfg: TrainConfig, student: nn.Module, spec: ModelSpec, calib: list[Path], log) -> dict:
    """Export the trained ``student`` to the recipe's ``export`` path and, unless the recipe says not to,
    calibrate it on the held-out photos ``calib``; returns the summary."""
    out = cfg.export_path
    export_onnx(student.cpu().eval(), out, spec)
    result = {"onnx": str(out)}
    if cfg.calibrate and calib:
        result.update(calibrate_export(out, spec, calib, cfg, cfg.run_dir / "calibration.txt"))
    return result


def calibrate_export(out: Path, spec: ModelSpec, calib: list[Path], cfg: TrainConfig,
                     curve_path: Path) -> dict:
    """Calibrate the exported ``out`` on the held-out photos ``calib`` at the config's target precision, store
    the threshold in its spec and the precision/recall curve in ``curve_path``; returns the summary."""
    from indexer.calibrate import calibrate, format_curve, onnx_embed_fn

    fn, _ = onnx_embed_fn(out)
    cal = calibrate(calib, fn, cfg.target_precision, seed=cfg.seed)
    text = format_curve(cal)
    curve_path.write_text(text + "\n")
    print(text, flush=True)
    write_spec(out, spec.with_threshold(cal.threshold))
    return {"threshold": cal.threshold, "calib_precision": round(cal.precision, 4),
            "calib_recall": round(cal.recall, 4), "calib_photos": len(calib),
            "calib_threshold_range": list(cal.threshold_range or ())}


def export_file(checkpoint: Path | None = None, out: Path | None = None, threshold: float | None = None,
                fp16: bool = False) -> Path:
    """Export a training checkpoint, or the untouched ImageNet Lite0 (average pool, 1280-d) when there is none.

    The default file is the shipped one of that name under models/; without ``threshold`` the spec keeps the
    shipped file's calibrated threshold (so an fp16 variant, written beside it as ``*-fp16.onnx``, has it too)."""
    torch.manual_seed(0)
    if checkpoint is None:
        from indexer.training.backbone import build_embedder

        model, spec = build_embedder(), baseline_spec()
        shipped = BASELINE_PATH
    else:
        model, spec = load_checkpoint_embedder(checkpoint)
        shipped = MODELS_DIR / f"dupesift-{spec.name}.onnx"
    path = out or shipped
    if threshold is not None:
        spec = spec.with_threshold(threshold)
    elif shipped.exists() and shipped.resolve() != Path(path).resolve():
        spec = spec.with_threshold(read_spec(shipped).threshold)  # keep the calibrated value (fp16 variant)
    if fp16:
        spec = dataclasses.replace(spec, notes={**spec.notes, "precision": "fp16"})
        path = path.with_name(path.stem + "-fp16.onnx") if out is None else path
    return export_onnx(model, path, spec, fp16=fp16)
