#!/usr/bin/env python3
"""What taking the noise out of the keeper's detail measure trades (bench/README.md, "Measure version 11").

    PYTHONPATH=. python bench/keeper_noise.py [--photos 40]

Pixels alone cannot tell grain added to a copy from noise removed from an original: both leave one member
noisier than the other. This ranks both kinds of pair, each member measured by ``indexer.keeper.measure`` on
the JPEG it was saved as, decoded whole, with ``keeper.NOISE_LOSS`` at 0 (measure version 10)
and at its value. The copy's file is the older one, so a tie (``keeper.TIE``) goes to the copy: each cell counts
the pairs the picture score gives the original / the ties (where file dates decide) / the pairs it gives the copy.

- added: a clean photo against its copy with grain (sigma 8-14) or a 4-level ordered dither;
- removed: the photo with sensor-like noise (sigma 8) as the original, against a copy denoised by a 3 px median,
  OpenCV's non-local means, or a re-save at JPEG quality 40.

Photos: the eval split of ../shared (every fifth), the first ``--photos``.
"""
from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT.parent / "shared" / "eval"))

from bench.unseen import ordered_dither
from indexer import keeper


def noisy(im: Image.Image, sigma: float, seed: int) -> Image.Image:
    a = np.asarray(im, np.float32) + np.random.default_rng(seed).normal(0, sigma, (im.height, im.width, 1))
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def nlmeans(im: Image.Image) -> Image.Image:
    import cv2

    return Image.fromarray(cv2.fastNlMeansDenoisingColored(np.asarray(im), None, 7, 7, 7, 21))


def candidate(i: int, im: Image.Image, quality: int, mtime: float) -> keeper.Candidate:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    data = buf.getvalue()
    a = keeper.measure(Image.open(io.BytesIO(data)).convert("RGB"))
    return keeper.Candidate(id=i, width=im.width, height=im.height, mtime=mtime,
                            attributes=replace(a, jpeg_quality=keeper.jpeg_quality(data)))


Pair = Callable[[Image.Image, int], tuple[Image.Image, Image.Image, int]]


def removed(denoise: Callable[[Image.Image], Image.Image], quality: int = 92) -> Pair:
    """A pair of a photo with sensor-like noise (sigma 8) and its copy through ``denoise``, saved at ``quality``."""
    def pair(im: Image.Image, s: int) -> tuple[Image.Image, Image.Image, int]:
        original = noisy(im, 8, s)
        return original, denoise(original), quality
    return pair


PAIRS: dict[str, Pair] = {
    "added: grain": lambda im, s: (im, noisy(im, 8 + s % 7, s), 92),
    "added: ordered dither": lambda im, s: (im, ordered_dither(im, 4), 92),
    "removed: median 3 px": removed(lambda x: x.filter(ImageFilter.MedianFilter(3))),
    "removed: non-local means": removed(nlmeans),
    "removed: JPEG quality 40": removed(lambda x: x, 40),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=40)
    a = ap.parse_args()
    from make_library import split

    photos = [Image.open(p).convert("RGB") for p in split("eval")[:a.photos]]
    value = keeper.NOISE_LOSS
    print(f"| pair | original / tie / copy, NOISE_LOSS 0 | the same, NOISE_LOSS {value:g} |")
    print("|---|---|---|")
    for name, make in PAIRS.items():
        wins = {}
        for loss in (0.0, value):
            keeper.NOISE_LOSS = loss
            n = [0, 0, 0]
            for s, im in enumerate(photos):
                original, copy, quality = make(im, s)
                ch = keeper.choose([candidate(1, original, 92, 2.0), candidate(2, copy, quality, 1.0)])
                n[0 if ch.image_id == 1 else 1 if ch.decided_by[1] == "tie" else 2] += 1
            wins[loss] = " / ".join(map(str, n))
        keeper.NOISE_LOSS = value
        print(f"| {name} | {wins[0.0]} | {wins[value]} |")


if __name__ == "__main__":
    main()
