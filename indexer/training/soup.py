"""Average the weights of several exported embedders fine-tuned from one start (a uniform "model soup").

    python -m indexer.training soup --config configs/arcface-kd.toml A.onnx B.onnx [...] --out SOUP.onnx

Wortsman et al. (2022): models fine-tuned from the same weights with different settings stay in one basin,
and their weight average is often better than any of them at no cost to serving (one model, one pass). The
files are read back into torch (``from_onnx``: the exporter's folded convolutions, which average as they
are), averaged parameter by parameter, exported with the config's spec and calibrated on the config's
held-out photos. Every ingredient must have been trained on the config's split, or the calibration photos
were training photos; the soup checks what the files record (size, dimension, starting file), the split is
the caller's to keep. The soup's spec has the config's name and version; its model id still differs from
every ingredient's (and from the shipped model's) by its weights digest, so serving it re-embeds the library.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from indexer.modelspec import read_spec
from indexer.training.config import TrainConfig
from indexer.training.export import calibrate_export, export_onnx, spec_for
from indexer.training.from_onnx import embedder_from_onnx
from indexer.training.split import split_photos

__all__ = ["average_embedders", "soup"]


def average_embedders(paths: list[Path]) -> torch.nn.Module:
    """The embedder whose every weight is the mean of the files' (same architecture, pooling, dimension)."""
    if len(paths) < 2:
        raise ValueError("a soup needs at least two models")
    models = [embedder_from_onnx(p) for p in paths]
    states = [m.state_dict() for m in models]
    for p, s in zip(paths[1:], states[1:]):
        if s.keys() != states[0].keys() or any(s[k].shape != states[0][k].shape for k in s):
            raise ValueError(f"{p} is not the same architecture as {paths[0]}")
    mean = {k: torch.stack([s[k] for s in states]).mean(0) if v.is_floating_point() else v
            for k, v in states[0].items()}
    models[0].load_state_dict(mean)
    return models[0].eval()


def _check_ingredient(path: Path, cfg: TrainConfig) -> None:
    spec = read_spec(path)
    start = Path(cfg.init_from).name if cfg.init_from else ""
    if spec.dim != cfg.dim or spec.input_size != cfg.input_size:
        raise ValueError(f"{path}: {spec.dim}-d at {spec.input_size} px, the config's model is "
                         f"{cfg.dim}-d at {cfg.input_size} px")
    if spec.notes.get("init_from", "") != start:
        raise ValueError(f"{path} did not start from {start or 'ImageNet'}: "
                         "ingredients of one soup share a start")


def soup(cfg: TrainConfig, paths: list[Path], out: Path) -> dict:
    """Average ``paths`` into ``out`` with ``cfg``'s spec (notes name the ingredients) and calibrate it on the
    config's held-out photos; returns the calibration summary."""
    for p in paths:
        _check_ingredient(p, cfg)
    model = average_embedders(paths)
    spec = spec_for(cfg)
    spec = dataclasses.replace(spec, notes={**spec.notes, "soup": [Path(p).name for p in paths]})
    export_onnx(model, out, spec)
    result: dict = {"onnx": str(out), "ingredients": [str(p) for p in paths]}
    if cfg.calibrate:
        _, calib = split_photos(cfg)
        if calib:
            result.update(calibrate_export(out, spec, calib, cfg, out.with_suffix(".calibration.txt")))
    return result
