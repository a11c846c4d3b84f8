"""The view bank: every training photo's original and edited views as model-size pixels, with the teacher's
logits for each, built once (in parallel) and cached in the config's cache folder.

The views go through the serving path (``to_model_pixels``, then ``normalize`` with the exported spec), so
training sees what serving sees. The teacher's logits are computed with ONNX Runtime, several times faster
than eager torch on a CPU.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from indexer.augment import open_photo, random_edit
from indexer.modelspec import ModelSpec
from indexer.preprocess import normalize, to_model_pixels
from indexer.training.backbone import NUM_CLASSES, Embedder
from indexer.training.cache import own_temp_file
from indexer.training.config import TrainConfig
from indexer.training.export import export_onnx

__all__ = ["bank_path", "build_bank", "teacher_features"]


def _photo_views(args: tuple[str, int, int, int]) -> np.ndarray:
    """The original + (n-1) edited views of one photo as uint8 (n, size, size, 3); seeded per photo."""
    path, n, size, seed = args
    r = random.Random(seed)
    im = open_photo(Path(path))
    views = [im] + [random_edit(im, r)[0] for _ in range(n - 1)]
    return np.stack([to_model_pixels(v, size) for v in views])


def _teacher_logits(teacher: nn.Module, pixels: np.ndarray, spec: ModelSpec, work: Path, threads: int) -> np.ndarray:
    """ImageNet logits of the frozen teacher for every view, through a temporary ONNX export of it in ``work``."""
    import onnxruntime as ort

    logits_spec = dataclasses.replace(spec, dim=NUM_CLASSES, output_name="logits")
    with own_temp_file(work, f"teacher-{spec.input_size}-", ".onnx") as tmp:
        path = export_onnx(teacher, tmp, logits_spec)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        out = [sess.run([logits_spec.output_name], {logits_spec.input_name: normalize(pixels[i:i + 64], spec)})[0]
               for i in range(0, len(pixels), 64)]
    return np.concatenate(out).astype(np.float16)


def bank_path(cfg: TrainConfig, photos: list[Path], spec: ModelSpec) -> Path:
    """Where the bank of these photos' views is cached (keyed by everything that makes it)."""
    key = hashlib.sha1(json.dumps([[p.name for p in photos], cfg.views_per_photo, cfg.seed, spec.input_size,
                                   spec.mean, spec.std, "bank-1"]).encode()).hexdigest()[:12]
    return cfg.path(cfg.cache_dir) / f"bank-{key}.npz"


def build_bank(cfg: TrainConfig, photos: list[Path], spec: ModelSpec, teacher: nn.Module, log) -> dict:
    """{"pixels": uint8 views, "owner": each view's photo, "teacher_logits"}; a photo's views are consecutive,
    its unedited original first. Reused from the cache when it is there."""
    path = bank_path(cfg, photos, spec)
    if path.exists():
        log({"event": "bank", "path": str(path), "reused": True})
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    t0 = time.perf_counter()
    jobs = [(str(p), cfg.views_per_photo, spec.input_size, cfg.seed * 1_000_003 + k) for k, p in enumerate(photos)]
    if cfg.threads > 1 and len(jobs) > 8:
        from multiprocessing import get_context

        with get_context("spawn").Pool(cfg.threads) as pool:
            per_photo = pool.map(_photo_views, jobs, chunksize=8)
    else:
        per_photo = [_photo_views(j) for j in jobs]
    pixels = np.concatenate(per_photo)
    owner = np.repeat(np.arange(len(photos)), cfg.views_per_photo)
    path.parent.mkdir(parents=True, exist_ok=True)
    logits = _teacher_logits(teacher, pixels, spec, path.parent, cfg.threads)
    bank = {"pixels": pixels, "owner": owner, "teacher_logits": logits}
    with own_temp_file(path.parent, path.stem, ".tmp.npz") as tmp:  # side-by-side builds of one bank: last wins
        np.savez(tmp, **bank)
        tmp.replace(path)
    log({"event": "bank", "path": str(path), "views": len(owner), "seconds": round(time.perf_counter() - t0, 1)})
    return bank


def teacher_features(teacher: nn.Module, pixels: np.ndarray, spec: ModelSpec, device: str) -> torch.Tensor:
    """The untouched backbone's embedding of each view: the baseline ``Embedder`` (average pooling, 1280-d,
    unit) around the frozen teacher."""
    baseline = Embedder(teacher).to(device).eval()
    with torch.no_grad():
        return torch.cat([baseline(torch.from_numpy(normalize(pixels[i:i + 64], spec)).to(device))
                          for i in range(0, len(pixels), 64)])
