#!/usr/bin/env python3
"""Copies photographed at an angle: recall of keystoned copies with and without the perspective fit.

    python bench/perspective.py [--work var/perspective] [--strengths 0.1,0.15,0.2,0.25] [--photos 200]

Each of the confuser benchmark's tune photos (``bench/confusers.py --split tune``: train-split photos held out of
the shipped model's training) gets one keystoned copy per strength k: each corner of the frame moved inwards by
up to k of the width and height at random, the quadrilateral stretched back onto the whole frame by one
perspective transform (``bench.confusers.perspective``) and saved as JPEG q85. The library (originals and copies,
``--seed``) is ingested at defaults through the service (``indexer.index.Index``: Milvus Lite + SQLite) into a
fresh data dir twice: as the service ships, and with the perspective fit off (``verify_perspective_agreement``
1.0, which no pair reaches in practice). Printed per run: pair precision, false pairs, and the recall of the
original-copy pairs per strength. The other photos of the library are each other's look-alikes, so precision
here is a check, not a confuser benchmark.
"""
from __future__ import annotations

import argparse
import random
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import confusers as C
from bench.copies import run

QUALITY = 85


def build(out: Path, strengths: list[float], photos: int, seed: int) -> dict[str, dict[float, str]]:
    """The library under ``out``: {original file name: {strength: copy file name}}."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    r = random.Random(seed)
    groups: dict[str, dict[float, str]] = {}
    for n, path in enumerate(C.split_photos("tune")[:photos]):
        im = C.photo(path)
        w, h = im.size
        name = f"photo_{n:03d}.jpg"
        im.save(out / name, quality=QUALITY)
        groups[name] = {}
        for k in strengths:
            copy = f"photo_{n:03d}_angle{round(k * 100):02d}.jpg"
            C.perspective(im, C.jittered_quad(w, h, k, r)).save(out / copy, quality=QUALITY)
            groups[name][k] = copy
    return groups


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=REPO / "var" / "perspective")
    ap.add_argument("--strengths", default="0.1,0.15,0.2,0.25")
    ap.add_argument("--photos", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    strengths = [float(x) for x in a.strengths.split(",")]
    lib = a.work / "library"
    groups = build(lib, strengths, a.photos, a.seed)
    rows = [("as shipped (perspective fit)", run(lib, a.work / "data", groups)),
            ("perspective fit off", run(lib, a.work / "data-off", groups, verify_perspective_agreement=1.0))]
    head = " | ".join(f"recall, corners in ≤ {round(k * 100)} %" for k in strengths)
    print(f"\n{len(groups)} photos, {len(groups) * len(strengths)} keystoned copies (JPEG q{QUALITY}), seed {a.seed}\n")
    print(f"| rule | pair P | false pairs | {head} |")
    print("|---|---|---|" + "---|" * len(strengths))
    for name, m in rows:
        recalls = " | ".join(f"{m['recall'][k]:.3f}" for k in strengths)
        print(f"| {name} | {m['precision']:.4f} | {m['false']} | {recalls} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
