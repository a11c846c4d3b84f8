"""Pixels -> model input. Training, calibration and serving all call ``to_model_pixels`` and ``normalize``;
``to_grey`` is the on-the-fly grey of training and of the invariance benchmark.

The whole photo is resized (squashed) to ``input_size`` × ``input_size`` with no centre crop:
a crop would throw away the borders, captions and letterboxes a copy detector has to see through.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from indexer.modelspec import ModelSpec

RESAMPLE = Image.Resampling.BILINEAR  # antialiased in Pillow when shrinking
LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601 luma weights, as PIL's convert("L")


def to_model_pixels(im: Image.Image, input_size: int) -> np.ndarray:
    """An RGB PIL image -> uint8 array (input_size, input_size, 3)."""
    if im.mode != "RGB":
        im = im.convert("RGB")
    if im.size != (input_size, input_size):
        im = im.resize((input_size, input_size), RESAMPLE)
    return np.asarray(im, dtype=np.uint8)


def normalize(batch: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """uint8 (N, H, W, 3) -> float32 (N, 3, H, W), scaled to [0, 1] then standardised by the spec."""
    if batch.ndim == 3:
        batch = batch[None]
    x = batch.astype(np.float32) * (1.0 / 255.0)
    x -= np.asarray(spec.mean, dtype=np.float32)
    x /= np.asarray(spec.std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def to_grey(px: np.ndarray) -> np.ndarray:
    """Grey copies of uint8 RGB model pixels (...×3): the luma in all three channels (on-the-fly grey)."""
    luma = np.clip(px.astype(np.float32) @ LUMA + 0.5, 0, 255).astype(np.uint8)
    return np.repeat(luma[..., None], 3, axis=-1)
