#!/usr/bin/env python3
"""The public edit recipe on our tune photos: a library to tune recall on without the public library.

    python bench/tunelib.py OUT [--dup-sources 150] [--copies 6] [--seed 21]

``../shared/eval/make_library.py`` builds its library from the eval split (never tuned on) or the train split
(mostly in the shipped model's training, so its copies embed closer than a user's would). This builds the same
kind of library, with the same edit families, folders, names and formats (its ``build``), from the 200
train-split photos held out from the model's training (the confuser benchmark's tune photos,
``bench.confusers.split_photos("tune")``): the first ``--dup-sources`` of them in a random order with
``--copies`` copies each, the rest alone. Score it with ``../shared/eval/score.py OUT/truth.json GROUPS``
(recall per edit family).
"""
from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO.parent / "shared" / "eval"))

from bench import confusers as C


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--dup-sources", type=int, default=150)
    ap.add_argument("--copies", type=int, default=6)
    ap.add_argument("--seed", type=int, default=21)
    a = ap.parse_args()
    import make_library  # ../shared/eval: the public recipe itself, not a copy of it

    photos = C.split_photos("tune")
    random.Random(a.seed).shuffle(photos)
    truth = make_library.build(a.out, photos, a.dup_sources, a.copies, a.seed)
    n = sum(len(g) for g in truth["groups"]) + len(truth["singles"])
    print(f"{n} files, {len(truth['groups'])} duplicate groups, {len(truth['singles'])} singles in {truth['root']}")


if __name__ == "__main__":
    main()
