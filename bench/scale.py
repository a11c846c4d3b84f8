#!/usr/bin/env python3
"""Group precision against library size: does a bigger library bring more false pairs per photo?

    python bench/scale.py [--work var/scale] [--sizes 700,2500,10000] [--extra NAME=LIBDIR ...]

Libraries come from ../shared/eval/make_library.py (the public recipe): 700 files is its default (the eval
split, 100 photos with 5 copies each, 100 alone), 2,500 is ``--split all --dup-sources 250 --copies 6`` and
10,000 is ``--split all --dup-sources 1000 --copies 9`` (the issue's library), all with ``--seed 5`` except
the default. ``--extra`` adds a library of our own (a folder with ``library/`` and ``truth.json``, e.g. a
confuser benchmark split). Each is ingested at default settings into a fresh data dir through the service
(``indexer.index.Index``: Milvus Lite + SQLite, decode worker processes) and scored like
../shared/eval/score.py. Printed per library: pair precision and recall, false pairs per 1,000 files, the
largest predicted group beside the largest true group, files/s and the share of the ingest spent linking.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from itertools import combinations
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO))

from indexer.config import Settings
from indexer.index import Index

RECIPES = {  # files → make_library.py arguments
    700: [],
    2500: ["--split", "all", "--dup-sources", "250", "--copies", "6", "--seed", "5"],
    10000: ["--split", "all", "--dup-sources", "1000", "--copies", "9", "--seed", "5"],
}


def build(size: int, out: Path) -> Path:
    """The public-recipe library of ``size`` files in ``out`` (built once, reused)."""
    if not (out / "truth.json").exists():
        subprocess.run([sys.executable, str(SHARED / "eval" / "make_library.py"), str(out), *RECIPES[size]],
                       check=True, stdout=subprocess.DEVNULL)
    return out


def pairs(groups: list[list[str]]) -> set[tuple[str, str]]:
    return {tuple(sorted(p)) for g in groups for p in combinations(set(g), 2)}


def measure(name: str, lib: Path, data: Path) -> dict:
    """Ingest ``lib/library`` into a fresh ``data`` dir and score the groups against ``lib/truth.json``."""
    truth = json.loads((lib / "truth.json").read_text())
    root = (lib / "library").resolve()
    shutil.rmtree(data, ignore_errors=True)
    t0 = time.perf_counter()
    with Index(Settings(data_dir=data)) as index:
        s = index.ingest([str(root)])
        groups = [[str(Path(m["path"]).resolve().relative_to(root)) for m in g["members"]] for g in index.groups()]
    wall = time.perf_counter() - t0
    true, pred = pairs(truth["groups"]), pairs(groups)
    hit = len(true & pred)
    files = s.seen
    return {"library": name, "files": files, "precision": hit / len(pred) if pred else 1.0,
            "recall": hit / len(true) if true else 1.0, "false_pairs": len(pred) - hit,
            "false_per_1000": 1000 * (len(pred) - hit) / files, "largest": max(map(len, groups), default=0),
            "largest_true": max(map(len, truth["groups"]), default=0), "groups": len(groups),
            "files_per_s": s.indexed / wall, "seconds": wall, "link_s": s.timings.link,
            "link_share": s.timings.link / wall, "verified_pairs": s.verified_pairs, "failed": len(s.failed)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=REPO / "var" / "scale")
    ap.add_argument("--sizes", default="700,2500,10000")
    ap.add_argument("--extra", action="append", default=[], metavar="NAME=LIBDIR")
    a = ap.parse_args()
    libs = [(f"public recipe, {int(n):,} files", build(int(n), a.work / f"pub{n}")) for n in a.sizes.split(",") if n]
    libs += [(name, Path(d)) for name, d in (e.split("=", 1) for e in a.extra)]
    rows = []
    for name, lib in libs:
        rows.append(measure(name, lib, a.work / "data" / lib.name))
        print(json.dumps(rows[-1]), flush=True)
    print("\n| library | files | pair P | pair R | false pairs / 1,000 files | largest group (true) | groups "
          "| files/s | linking share of ingest |\n|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['library']} | {r['files']:,} | {r['precision']:.4f} | {r['recall']:.4f} | {r['false_per_1000']:.2f} "
              f"| {r['largest']} ({r['largest_true']}) | {r['groups']} | {r['files_per_s']:.1f} | {r['link_share']:.0%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
