"""Turn-averaged embeddings of a trained model: the targets of a one-pass turn-invariant student.

Averaging a model's embedding over the photo's four 90° turns makes it exactly turn invariant; for v10
that found many more held-out copies, at four times the compute (docs/experiments.md, "v16 oracle"). A
student that reproduces the average in one pass (``turn_kd`` in the training config) keeps part of that
gain at the cost of one embedding. The turns are exact on the square
model input (see ``views.extra_edits``), so they are taken on the bank's model-size pixels.
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np

from indexer.training.cache import own_temp_file
from indexer.training.config import TURN_TARGETS

__all__ = ["cached_turn_targets", "per_view_targets", "turn_averaged"]


def turn_averaged(embed, pixels: np.ndarray, batch: int = 64) -> np.ndarray:
    """Unit mean of ``embed`` (uint8 N×S×S×3 -> N×D unit vectors) over the four 90° turns of each view."""
    out = []
    for i in range(0, len(pixels), batch):
        chunk = pixels[i:i + batch]
        total = sum(embed(np.ascontiguousarray(np.rot90(chunk, k, axes=(1, 2)))) for k in range(4))
        out.append(total / np.linalg.norm(total, axis=1, keepdims=True).clip(1e-12))
    return np.concatenate(out).astype(np.float32)


def per_view_targets(averaged: np.ndarray, owner: np.ndarray, mode: str) -> np.ndarray:
    """The target of each bank view from the turn averages of all views (``owner``: each view's photo; a
    photo's first view is its unedited original): the view's own average ("view"), its photo's original's
    ("original"), or the unit mean of its photo's views' averages ("centroid")."""
    if mode not in TURN_TARGETS:
        raise ValueError(f"turn target mode must be one of {', '.join(TURN_TARGETS)}, not {mode!r}")
    if mode == "view":
        return averaged
    photos, first, photo_of = np.unique(owner, return_index=True, return_inverse=True)
    if mode == "original":
        per_photo = averaged[first]
    else:  # centroid
        sums = np.zeros((len(photos), averaged.shape[1]), np.float64)
        np.add.at(sums, photo_of, averaged)
        per_photo = (sums / np.linalg.norm(sums, axis=1, keepdims=True).clip(1e-12)).astype(np.float32)
    return per_photo[photo_of]


def cached_turn_targets(model_path: Path, pixels: np.ndarray, bank_path: Path, threads: int, log) -> np.ndarray:
    """``turn_averaged`` for every bank view under the ONNX model at ``model_path``, cached beside the bank
    (keyed by the bank and the model file's bytes, so a retrained model never reuses stale targets)."""
    from indexer.embedder import OnnxEmbedder
    from indexer.modelspec import read_spec

    model_path = Path(model_path)
    size = read_spec(model_path).input_size
    if size != pixels.shape[1]:
        raise ValueError(f"{model_path} reads {size} px, the bank holds {pixels.shape[1]} px views")
    digest = hashlib.sha1(model_path.read_bytes()).hexdigest()[:12]
    path = bank_path.with_name(f"{bank_path.stem}-turns-{digest}.npy")
    if path.exists():
        log({"event": "turn_targets", "path": str(path), "reused": True})
        return np.load(path)
    t0 = time.perf_counter()
    teacher = OnnxEmbedder(model_path, threads=threads, providers=["CPUExecutionProvider"])
    targets = turn_averaged(teacher.embed, pixels)
    with own_temp_file(path.parent, path.stem, ".tmp.npy") as tmp:  # side-by-side runs: last one wins
        np.save(tmp, targets)
        tmp.replace(path)
    log({"event": "turn_targets", "path": str(path), "views": len(targets),
         "seconds": round(time.perf_counter() - t0, 1)})
    return targets
