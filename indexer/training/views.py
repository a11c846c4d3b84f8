"""On-the-fly edits of the bank's views, fresh every step so a fixed bank is not memorised: 90° turns and
flips, grey, jitter (numpy, on the host) and JPEG re-compression (kornia, on the training device)."""
from __future__ import annotations

import math
import random

import numpy as np
import torch
from PIL import Image, ImageFilter

from indexer.preprocess import LUMA, to_grey, to_model_pixels
from indexer.training.config import TrainConfig

__all__ = ["extra_edits", "jpeg_views"]


def extra_edits(px: np.ndarray, rng: random.Random, cfg: TrainConfig) -> np.ndarray:
    """On-the-fly edits of bank views (uint8 N×S×S×3); the bank itself is not changed.

    Turns and flips are exact on the square model input (a turn of the squash-resized photo equals the
    squash-resize of the turned photo); grey uses the ITU-R 601 luma. Jitter applies 1-2 of: a crop of
    45-100 % of the area resized back (the model-size version of cropping the photo), brightness/contrast/
    saturation, Gaussian noise, blur. The teacher's logits stay those of the bank view (or of the original),
    so distillation also asks for the same semantics after the edit."""
    if not (cfg.dihedral_p or cfg.gray_p or cfg.jitter_p):
        return px
    out = px.copy()
    for i in range(len(out)):
        if rng.random() < cfg.dihedral_p:
            v = np.rot90(out[i], rng.randint(0, 3))
            out[i] = v[:, ::-1] if rng.random() < 0.5 else v
        if rng.random() < cfg.gray_p:
            out[i] = to_grey(out[i])
        if rng.random() < cfg.jitter_p:
            for op in rng.sample(_JITTER, rng.randint(1, 2)):
                out[i] = op(out[i], rng)
    return out


# Model-size edits with milder ranges than indexer.augment's photo-size families (a 5 px blur at 640 px
# is a 1.4 px blur at 176): they vary the bank's views, the bank carries the strong edits.


def _jitter_crop(v: np.ndarray, rng: random.Random) -> np.ndarray:
    s = v.shape[0]
    area, aspect = rng.uniform(0.45, 1.0), math.exp(rng.uniform(-0.3, 0.3))
    w = min(s, max(8, round(s * math.sqrt(area * aspect))))
    h = min(s, max(8, round(s * math.sqrt(area / aspect))))
    x, y = rng.randint(0, s - w), rng.randint(0, s - h)
    return to_model_pixels(Image.fromarray(v[y:y + h, x:x + w]), s)


def _jitter_colour(v: np.ndarray, rng: random.Random) -> np.ndarray:
    x = v.astype(np.float32) * rng.uniform(0.6, 1.4)  # brightness
    x = x.mean() + (x - x.mean()) * rng.uniform(0.6, 1.4)  # contrast
    grey = x @ LUMA
    x = grey[..., None] + (x - grey[..., None]) * rng.uniform(0.4, 1.6)  # saturation
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)


def _jitter_noise(v: np.ndarray, rng: random.Random) -> np.ndarray:
    noise = np.random.default_rng(rng.getrandbits(32)).normal(0.0, rng.uniform(3, 15), v.shape)
    return np.clip(v + noise + 0.5, 0, 255).astype(np.uint8)


def _jitter_blur(v: np.ndarray, rng: random.Random) -> np.ndarray:
    return np.asarray(Image.fromarray(v).filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.6))))


_JITTER = [_jitter_crop, _jitter_colour, _jitter_noise, _jitter_blur]


def jpeg_views(px: torch.Tensor, rng: random.Random, cfg: TrainConfig) -> torch.Tensor:
    """Re-compress a ``jpeg_p`` share of the views as JPEG, fresh every step, on the tensor's device.

    kornia's differentiable codec (8×8 DCT, 4:2:0 chroma, the standard quantisation tables scaled by the
    quality) runs where the batch is, so on a GPU the recompression costs no CPU decode/encode round trip;
    it lands within ~1-2 grey levels of PIL's JPEG at the same quality (tests/test_training.py). Quality is
    drawn per view from ``jpeg_quality``. uint8 N×S×S×3 in and out: serving sees decoded 8-bit pixels too."""
    chosen = [i for i in range(len(px)) if rng.random() < cfg.jpeg_p]
    if not chosen:
        return px
    from kornia.enhance import jpeg_codec_differentiable  # the train extra

    lo, hi = cfg.jpeg_quality
    idx = torch.tensor(chosen, device=px.device)
    quality = torch.tensor([rng.uniform(lo, hi) for _ in chosen], device=px.device)
    with torch.no_grad():
        x = px[idx].permute(0, 3, 1, 2).float() / 255.0
        y = jpeg_codec_differentiable(x, quality)
        out = px.clone()
        out[idx] = (y.clamp(0, 1) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1)
    return out
