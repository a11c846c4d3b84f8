"""The 12-megapixel JPEG set the throughput benchmarks decode (bench/ingest.py, bench/gpu.py).

numpy and Pillow only, so that it also runs on a machine without the project's dependencies (a GPU box).
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = (4000, 3000)  # 12 MP
QUALITY = 90  # JPEG quality of every file
GRAIN = 6  # +-grain added to every pixel: camera-like noise, so files do not compress to nothing


def _save_grainy(arr: np.ndarray, grain: np.ndarray, path: Path) -> None:
    Image.fromarray(np.clip(arr.astype(np.int16) + grain, 0, 255).astype(np.uint8)).save(path, quality=QUALITY)


def make_big(out: Path, n: int, photos: Path) -> Path:
    """``n`` distinct 12 MP JPEGs from the photos in ``photos`` (enlarged, with grain), made once and reused."""
    out.mkdir(parents=True, exist_ok=True)
    sources = sorted(photos.glob("*.JPEG"))
    w, h = SIZE
    rng = np.random.default_rng(0)
    for i in range(n):
        p = out / f"big_{i:04d}.jpg"
        if p.exists():
            continue
        im = Image.open(sources[i % len(sources)]).convert("RGB").resize(SIZE, Image.BICUBIC)
        _save_grainy(np.asarray(im), rng.integers(-GRAIN, GRAIN + 1, size=(h, w, 1), dtype=np.int16), p)
    return out


def _synthetic_one(args: tuple[Path, int, tuple[int, int]]) -> None:
    """One noisy JPEG: a seeded low-resolution colour field, enlarged, with the set's grain and quality."""
    path, seed, (w, h) = args
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8))
    _save_grainy(np.asarray(small.resize((w, h), Image.BICUBIC)),
                 rng.integers(-GRAIN, GRAIN + 1, size=(h, w, 1), dtype=np.int16), path)


def make_synthetic(out: Path, n: int, size: tuple[int, int] = SIZE) -> Path:
    """``n`` synthetic noisy JPEGs of ``size`` (no photos needed), made once on every core and reused."""
    out.mkdir(parents=True, exist_ok=True)
    todo = [(out / f"big_{i:04d}.jpg", i, size) for i in range(n) if not (out / f"big_{i:04d}.jpg").exists()]
    if todo:
        with ProcessPoolExecutor(min(len(todo), os.cpu_count() or 1)) as pool:
            list(pool.map(_synthetic_one, todo))
    return out
