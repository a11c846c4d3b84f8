#!/usr/bin/env python3
"""Product shots: different small subjects on one studio backdrop, with shrunk copies (a known failure).

    python bench/backdrops.py OUT [--backdrops 3] [--per 10] [--seed 3]

Each backdrop is one plain colour with a soft vignette; on it sits, at its centre, one train-split photo of
../shared (a soft oval cut-out, 18-32 % of the width), a different photo on each picture; every other picture
gets a copy (shrunk to 0.5-0.8, re-saved). OUT/library and OUT/truth.json (make_library.py's format): score with
``dupesift groups --json`` and ../shared/eval/score.py. The pictures of one backdrop are different pictures
whose 32 px thumbnails differ only where the subject is, and most subjects give fewer than the 100 keypoints at
which the pixels rule asks the content to agree laid over (bench/README.md, "Text cards"): a studio day's
portraits on one backdrop are the real case.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "photos"
SIZE = (1200, 900)


def backdrop(r: random.Random) -> np.ndarray:
    w, h = SIZE
    base = np.array([r.randint(90, 220) for _ in range(3)], np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    vignette = 1 - 0.7 * (((xx - w / 2) / w) ** 2 + ((yy - h / 2) / h) ** 2)
    return np.clip(base * vignette[..., None], 0, 255).astype(np.uint8)


def shot(ground: np.ndarray, subject: Path, share: float) -> Image.Image:
    w, h = SIZE
    sub = Image.open(subject).convert("RGB")
    sw = int(w * share)
    sub = sub.resize((sw, int(sw * sub.height / sub.width)), Image.Resampling.BILINEAR)
    mask = Image.new("L", sub.size, 0)
    ImageDraw.Draw(mask).ellipse((0, 0, sub.width, sub.height), fill=255)
    im = Image.fromarray(ground)
    im.paste(sub, ((w - sub.width) // 2, (h - sub.height) // 2), mask.filter(ImageFilter.GaussianBlur(6)))
    return im


def build(out: Path, backdrops: int, per: int, seed: int) -> dict:
    r = random.Random(seed)
    photos = [p for n, p in enumerate(sorted(PHOTOS.glob("*.JPEG"))) if n % 5]  # the train split
    r.shuffle(photos)
    lib = out / "library"
    lib.mkdir(parents=True, exist_ok=True)
    truth: dict = {"root": str(out), "groups": [], "singles": [], "edits": {}}
    n = 0
    for b in range(backdrops):
        ground, share = backdrop(r), 0.18 + 0.14 * b / max(1, backdrops - 1)
        for k in range(per):
            im = shot(ground, photos.pop(), share)
            n += 1
            name = f"library/{n:04d}_backdrop{b}.jpg"
            im.save(out / name, quality=90)
            if k % 2:
                truth["singles"].append(name)
                continue
            f = r.uniform(0.5, 0.8)
            n += 1
            copy = f"library/{n:04d}_backdrop{b}_copy.jpg"
            im.resize((int(SIZE[0] * f), int(SIZE[1] * f)), Image.Resampling.BICUBIC).save(
                out / copy, quality=r.randint(60, 85))
            truth["groups"].append([name, copy])
            truth["edits"][copy] = "resize+jpeg"
    (out / "truth.json").write_text(json.dumps(truth, indent=1))
    return truth


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--backdrops", type=int, default=3)
    ap.add_argument("--per", type=int, default=10)
    ap.add_argument("--seed", type=int, default=3)
    a = ap.parse_args(argv)
    truth = build(a.out, a.backdrops, a.per, a.seed)
    print(f"{len(truth['singles']) + 2 * len(truth['groups'])} files, {len(truth['groups'])} copy pairs in {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
