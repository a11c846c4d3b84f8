#!/usr/bin/env python3
"""One library from several of our own: does mixing libraries bring false pairs across them?

    python bench/mixlib.py OUT NAME=LIBDIR [NAME=LIBDIR ...]

Each LIBDIR is a library with ``library/`` and ``truth.json`` (bench/confusers.py, ../shared/eval/make_library.py,
bench/tunelib.py). Its files are hard-linked (copied where a link cannot be made) under OUT/library/NAME/, and
OUT/truth.json is the union of the truths with paths under NAME/. Byte-identical files of different libraries are
one picture: their groups are merged. Mix only libraries made from different source pictures (e.g. the confuser
benchmark's tune and held-out splits): two libraries built from one photo hold copies of each other that no
truth names. Score it with ``bench/scale.py --extra mixed=OUT`` or ``bench/confusers_score.py``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

from indexer.grouping import components


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _place(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def mix(out: Path, libs: list[tuple[str, Path]]) -> dict:
    """Build OUT/library and return the merged truth (also written to OUT/truth.json)."""
    root = out / "library"
    if root.exists():
        shutil.rmtree(root)
    groups: list[list[str]] = []
    edits: dict[str, str] = {}
    classes: dict[str, str] = {}
    for name, lib in libs:
        truth = json.loads((lib / "truth.json").read_text())
        base = Path(truth.get("root") or lib / "library")
        in_group = set()
        for g in truth["groups"]:
            groups.append([f"{name}/{p}" for p in g])
            in_group.update(g)
        groups += [[f"{name}/{p}"] for p in truth.get("singles", []) if p not in in_group]
        edits.update({f"{name}/{p}": e for p, e in truth.get("edits", {}).items()})
        classes.update({f"{name}/{p}": f"{name}:{c}" for p, c in truth.get("classes", {}).items()})
        for p in (p for g in truth["groups"] for p in g):
            _place(base / p, root / name / p)
        for p in truth.get("singles", []):
            _place(base / p, root / name / p)
    # byte-identical files of different libraries are one picture: merge their groups
    owner: dict[str, int] = {}
    same: list[tuple[int, int]] = []
    for i, g in enumerate(groups):
        for p in g:
            j = owner.setdefault(_sha(root / p), i)
            if j != i:
                same.append((j, i))
    first = {i: min(c) for c in components(range(len(groups)), same) for i in c}
    merged: dict[int, list[str]] = {}
    for i, g in enumerate(groups):
        merged.setdefault(first.get(i, i), []).extend(g)
    for g in merged.values():  # a merged group's later originals are byte-identical copies of its first file
        for p in g[1:]:
            edits.setdefault(p, "identical")
    truth = {"root": str(root.resolve()), "groups": [g for g in merged.values() if len(g) > 1],
             "singles": [g[0] for g in merged.values() if len(g) == 1], "edits": edits, "classes": classes,
             "mixed_from": {name: str(lib) for name, lib in libs}}
    (out / "truth.json").write_text(json.dumps(truth, indent=1))
    return truth


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("libs", nargs="+", metavar="NAME=LIBDIR")
    a = ap.parse_args(argv)
    libs = [(n, Path(d)) for n, d in (x.split("=", 1) for x in a.libs)]
    truth = mix(a.out, libs)
    n = len(truth["singles"]) + sum(len(g) for g in truth["groups"])
    print(f"{n} files, {len(truth['groups'])} groups, {len(truth['singles'])} singles in {truth['root']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
