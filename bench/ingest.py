#!/usr/bin/env python3
"""Ingest throughput on this machine, with the time split into decode / embed / store / pairs / groups.

    python bench/ingest.py [--big 200] [--work var/bench] [--sets both|big|library] [--library DIR] [--skip-peers]

(a) a folder of 12-megapixel JPEGs generated from ../shared photos, (b) the public eval library from
../shared/eval/make_library.py. Prints one table; then pair F1 of our default model and of phash on (b).
"pairs" is the neighbour search, crowds and pair storage; "verify" the link rule on the candidate pairs
(indexer/linkrule.py, on features computed at decode time), with how many pairs it confirmed as ``verified``.

Beside each set, in the same run: a decode-floor row (read + SHA-256 + draft decode to the model's input size
on every core, nothing else: what the hardware allows before any embedding) and, with ``--fastdup PYTHON`` (a
venv with PyPI ``fastdup``), fastdup's default ``fastdup.create(...).run()`` + connected components, whole
process. Peak memory: the largest resident set of the ingest's process and of any decode worker, each ingest run
in a process of its own (a process's peak never falls, so one set's, or fastdup's, would show in the next row).
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO))

from bench import bigset
from indexer.config import Settings
from indexer.index import Index

FASTDUP_RUN = """
import json, sys, time
import fastdup
t = time.perf_counter()
fd = fastdup.create(work_dir=sys.argv[2], input_dir=sys.argv[1])
fd.run(overwrite=True)
cc = fd.connected_components()
df = cc[0] if isinstance(cc, tuple) else cc
col = "filename" if "filename" in df.columns else df.columns[0]
groups = {}
for name, comp, n in zip(df[col], df["component_id"], df["count"]):
    if n > 1:
        groups.setdefault(int(comp), []).append(str(name))
print(json.dumps({"seconds": time.perf_counter() - t, "groups": list(groups.values())}))
"""


def _floor_one(path: str) -> int:
    data = Path(path).read_bytes()
    hashlib.sha256(data).digest()
    im = Image.open(io.BytesIO(data))
    im.draft("RGB", (224, 224))
    im.convert("RGB").load()
    return len(data)


def floor(folder: Path) -> dict:
    """Read + hash + draft decode of every file on all cores: the ceiling of any ingest here."""
    from concurrent.futures import ProcessPoolExecutor

    files = sorted(str(p) for p in folder.rglob("*") if p.is_file())
    t = time.perf_counter()
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        for _ in pool.map(_floor_one, files, chunksize=8):
            pass
    s = time.perf_counter() - t
    return {"files": len(files), "seconds": s, "files_per_s": len(files) / s}


def fastdup_row(python: str, folder: Path, work: Path) -> dict:
    """fastdup's default run on ``folder`` in its own venv, timed as a whole process."""
    shutil.rmtree(work, ignore_errors=True)
    t = time.perf_counter()
    out = subprocess.run([python, "-c", FASTDUP_RUN, str(folder), str(work)], capture_output=True, text=True, check=True)
    s = time.perf_counter() - t
    res = json.loads(out.stdout.strip().splitlines()[-1])
    n = sum(1 for p in folder.rglob("*") if p.is_file())
    return {"files": n, "seconds": s, "files_per_s": n / s, "groups": res["groups"]}


def peak_mb() -> tuple[float, float]:
    """(this process, the largest child) peak resident set, MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, child


def measured(folder: Path, data: Path) -> dict:
    """``run`` in a fresh process, with that process's peaks (``peak_mb``) as "peak"."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # not multiprocessing.Pool: its workers are daemons, which may not start the ingest's decode workers
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_run_and_peak, folder, data).result()


def _run_and_peak(folder: Path, data: Path) -> dict:
    r = run(folder, data)
    own, child = peak_mb()
    return {**r, "peak": f"{own:.0f} / {child:.0f}"}


def run(folder: Path, data: Path) -> dict:
    shutil.rmtree(data, ignore_errors=True)
    with Index(Settings(data_dir=data)) as index:
        s = index.ingest([str(folder)])
        groups = index.groups()
    t = s.timings
    return {"files": s.seen, "indexed": s.indexed, "seconds": s.seconds, "files_per_s": s.indexed / s.seconds,
            "scan": t.scan, "decode_wait": t.decode, "embed": t.embed, "store": t.store, "pairs": t.link - t.verify,
            "verify": t.verify, "verified_pairs": s.verified_pairs, "groups": t.group, "n_groups": len(groups), "groups_json": {"groups": groups}}


def score(truth: Path, groups: object, work: Path) -> dict:
    """../shared/eval/score.py's figures for ``groups`` (its input format)."""
    pred = work / "pred-groups.json"
    pred.write_text(json.dumps(groups))
    out = subprocess.run([sys.executable, str(SHARED / "eval" / "score.py"), str(truth), str(pred), "--json"],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.rsplit("}", 1)[0] + "}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--big", type=int, default=200, help="number of 12 MP JPEGs")
    ap.add_argument("--work", type=Path, default=REPO / "var" / "bench")
    ap.add_argument("--fastdup", default="", metavar="PYTHON", help="a Python with fastdup installed (bench only)")
    ap.add_argument("--skip-peers", action="store_true")
    ap.add_argument("--sets", choices=("both", "big", "library"), default="both",
                    help="the 12 MP folder, the public eval library, or both (default)")
    ap.add_argument("--library", type=Path, default=None, metavar="DIR",
                    help="a make_library.py output (library/ and truth.json) to use instead of WORK/eval-lib")
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    sets = []
    if a.sets in ("both", "big"):
        t = time.perf_counter()
        big = bigset.make_big(a.work / "big12mp", a.big, SHARED / "data" / "photos")
        print(f"prepared {a.big} 12 MP JPEGs in {time.perf_counter() - t:.0f}s", file=sys.stderr)
        sets.append(("12MP JPEG folder", big, None))
    if a.sets in ("both", "library"):
        lib = a.library or a.work / "eval-lib"
        if not (lib / "truth.json").exists():
            subprocess.run([sys.executable, str(SHARED / "eval" / "make_library.py"), str(lib)], check=True,
                           stdout=subprocess.DEVNULL)
        sets.append(("public eval library", lib / "library", lib / "truth.json"))
    rows = []
    for name, folder, truth in sets:
        fl = floor(folder)
        rows.append((name, "decode floor (read + SHA-256 + draft decode, all cores)", fl, None))
        r = measured(folder, a.work / f"data-{folder.parent.name if truth else folder.name}")
        rows.append((name, "dupesift ingest (default)", r, score(truth, r["groups_json"], a.work) if truth else None))
        if a.fastdup:
            fd = fastdup_row(a.fastdup, folder, a.work / f"fastdup-{folder.name}")
            rows.append((name, "fastdup (default run + connected components)", fd,
                         score(truth, fd["groups"], a.work) if truth else None))

    cores = os.cpu_count()
    print(f"\n## ingest throughput ({cores} cores, default model, batch {Settings().batch_size})\n")
    print("| set | method | files | files/s | × floor | total s | decode wait | embed | store | pairs | verify "
          "(pairs confirmed) | groups | peak MB (main / worker) | pair F1 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, method, r, sc in rows:
        base = next(x for n, m, x, _ in rows if n == name and m.startswith("decode floor"))
        f1 = f"{sc['pair_f1']:.4f}" if sc else "-"
        ratio = f"{r['files_per_s'] / base['files_per_s']:.2f}"
        if "embed" in r:
            print(f"| {name} | {method} | {r['indexed']} | {r['files_per_s']:.1f} | {ratio} | {r['seconds']:.1f} | "
                  f"{r['decode_wait']:.2f} | {r['embed']:.2f} | {r['store']:.2f} | {r['pairs']:.2f} | "
                  f"{r['verify']:.2f} ({r['verified_pairs']}) | {r['groups']:.2f} | {r['peak']} | {f1} |")
        else:
            print(f"| {name} | {method} | {r['files']} | {r['files_per_s']:.1f} | {ratio} | {r['seconds']:.1f} "
                  f"| | | | | | | | {f1} |")


if __name__ == "__main__":
    main()
