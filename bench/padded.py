#!/usr/bin/env python3
"""Padded copies of low-texture pictures: recall, and precision among look-alike smooth pictures.

    python bench/padded.py [--work var/padded] [--per-recipe 40] [--seed 0]

Low-texture pictures (too few keypoints for geometry) link on their colour thumbnails; a letterboxed or framed
copy squashes the bars into its thumbnail. This builds ``--per-recipe`` pictures of each of the confuser
benchmark's *tune* low-texture recipes that have content (``bench/confusers.py``: linear gradients, skies, night
scenes from tune photos; solid colours link only byte-identical), each with three padded copies saved as JPEG q85:
a letterbox (black bars above and below, 8-20 % of the height each), a white frame (3-12 % of the width on
every side) and a pad of one random colour on the left and right (5-20 % of the width each). The library is
ingested at defaults through the service (``indexer.index.Index``: Milvus Lite + SQLite) into a fresh data dir.
Different pictures of one recipe sit close to each other for the embedding (0.6-0.95), so the printed pair
precision is a real check. Printed: pair precision, false pairs, recall of the original-copy pairs per padding.
"""
from __future__ import annotations

import argparse
import random
import shutil
import sys
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import confusers as C
from bench.copies import run

QUALITY = 85
RECIPES = ("linear", "sky", "night")
PADS = ("letterbox", "frame", "colour")


def padded(im: Image.Image, kind: str, r: random.Random) -> Image.Image:
    """``im`` with bars or a frame of one colour around it."""
    w, h = im.size
    if kind == "letterbox":
        x, y, colour = 0, int(h * r.uniform(0.08, 0.2)), (0, 0, 0)
    elif kind == "frame":
        x = y = int(w * r.uniform(0.03, 0.12))
        colour = (255, 255, 255)
    else:
        x, y, colour = int(w * r.uniform(0.05, 0.2)), 0, (r.randint(0, 255), r.randint(0, 255), r.randint(0, 255))
    return C.pad(im, x, y, colour)


def build(out: Path, per_recipe: int, seed: int) -> dict[str, dict[str, str]]:
    """The library under ``out``: {original file name: {padding: copy file name}}."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    r = random.Random(seed)
    photos = iter(C.split_photos("tune"))
    groups: dict[str, dict[str, str]] = {}
    for recipe in RECIPES:
        make = C.LOWTEX["tune"][recipe]
        for n in range(per_recipe):
            im = make(r, C.photo(next(photos)) if recipe in C.LOWTEX_NEEDS_PHOTO else None).convert("RGB")
            name = f"{recipe}_{n:03d}.jpg"
            im.save(out / name, quality=QUALITY)
            groups[name] = {}
            for kind in PADS:
                copy = f"{recipe}_{n:03d}_{kind}.jpg"
                padded(im, kind, r).save(out / copy, quality=QUALITY)
                groups[name][kind] = copy
    return groups


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=REPO / "var" / "padded")
    ap.add_argument("--per-recipe", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    groups = build(a.work / "library", a.per_recipe, a.seed)
    m = run(a.work / "library", a.work / "data", groups)
    print(f"\n{len(groups)} low-texture pictures ({', '.join(RECIPES)}), {len(groups) * len(PADS)} padded copies "
          f"(JPEG q{QUALITY}), seed {a.seed}\n")
    print("| pair P | false pairs | pairs | " + " | ".join(f"recall, {k}" for k in PADS) + " |")
    print("|---|---|---|" + "---|" * len(PADS))
    print(f"| {m['precision']:.4f} | {m['false']} | {m['pairs']} | "
          + " | ".join(f"{m['recall'][k]:.3f}" for k in PADS) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
