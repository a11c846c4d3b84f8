#!/usr/bin/env python3
"""Ingest throughput on this machine, with the time split into decode / embed / store / pairs / groups.

    python bench/ingest.py [--big 200] [--work var/bench] [--skip-peers]

(a) a folder of 12-megapixel JPEGs generated from ../shared photos, (b) the public eval library from
../shared/eval/make_library.py. Prints one table; then pair F1 of our default model and of phash on (b).
"pairs" is the neighbour search and pair storage; "verify" the keypoint check of the pairs in the band
below the threshold (indexer/verify.py; it reads those photos again), with how many pairs it confirmed.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO))

from indexer.config import Settings
from indexer.index import Index


def make_big(out: Path, n: int) -> Path:
    """n distinct 4000×3000 JPEGs (12 MP, quality 90), made once and reused."""
    out.mkdir(parents=True, exist_ok=True)
    photos = sorted((SHARED / "data" / "photos").glob("*.JPEG"))
    rng = np.random.default_rng(0)
    for i in range(n):
        p = out / f"big_{i:04d}.jpg"
        if p.exists():
            continue
        im = Image.open(photos[i % len(photos)]).convert("RGB").resize((4000, 3000), Image.BICUBIC)
        grain = rng.integers(-6, 7, size=(3000, 4000, 1), dtype=np.int16)
        arr = np.clip(np.asarray(im, dtype=np.int16) + grain, 0, 255).astype(np.uint8)
        Image.fromarray(arr).save(p, quality=90)
    return out


def run(folder: Path, data: Path) -> dict:
    shutil.rmtree(data, ignore_errors=True)
    with Index(Settings(data_dir=data)) as index:
        s = index.ingest([str(folder)])
        groups = index.groups()
    t = s.timings
    return {"files": s.seen, "indexed": s.indexed, "seconds": s.seconds, "files_per_s": s.indexed / s.seconds,
            "scan": t.scan, "decode_wait": t.decode, "embed": t.embed, "store": t.store, "pairs": t.link - t.verify,
            "verify": t.verify, "verified_pairs": s.verified_pairs, "groups": t.group, "n_groups": len(groups), "groups_json": {"groups": groups}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--big", type=int, default=200, help="number of 12 MP JPEGs")
    ap.add_argument("--work", type=Path, default=REPO / "var" / "bench")
    ap.add_argument("--skip-peers", action="store_true")
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    rows = []
    t = time.perf_counter()
    big = make_big(a.work / "big12mp", a.big)
    print(f"prepared {a.big} 12 MP JPEGs in {time.perf_counter() - t:.0f}s", file=sys.stderr)
    rows.append(("12MP JPEG folder", run(big, a.work / "data-big")))
    lib = a.work / "eval-lib"
    if not (lib / "truth.json").exists():
        subprocess.run([sys.executable, str(SHARED / "eval" / "make_library.py"), str(lib)], check=True,
                       stdout=subprocess.DEVNULL)
    res = run(lib / "library", a.work / "data-eval")
    rows.append(("public eval library", res))

    cores = os.cpu_count()
    print(f"\n## ingest throughput ({cores} cores, default model, batch {Settings().batch_size})\n")
    print("| set | files | files/s | total s | scan | decode wait | embed | store | pairs | verify (pairs confirmed) | groups |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, r in rows:
        print(f"| {name} | {r['indexed']} | {r['files_per_s']:.1f} | {r['seconds']:.1f} | {r['scan']:.2f} | "
              f"{r['decode_wait']:.2f} | {r['embed']:.2f} | {r['store']:.2f} | {r['pairs']:.2f} | "
              f"{r['verify']:.2f} ({r['verified_pairs']}) | {r['groups']:.2f} |")

    pred = a.work / "eval-groups.json"
    pred.write_text(json.dumps(res["groups_json"]))
    score = subprocess.run([sys.executable, str(SHARED / "eval" / "score.py"), str(lib / "truth.json"), str(pred), "--json"],
                           capture_output=True, text=True, check=True)
    ours = json.loads(score.stdout.rsplit("}", 1)[0] + "}")
    print("\n## pair quality on the public eval library\n")
    print("| method | precision | recall | F1 |")
    print("|---|---|---|---|")
    print(f"| dupesift default ({Settings().model_path.name}) | {ours['pair_precision']} | {ours['pair_recall']} | {ours['pair_f1']} |")
    if not a.skip_peers:
        peer = subprocess.run([sys.executable, str(SHARED / "eval" / "peers.py"), str(lib / "truth.json"), "--method", "phash"],
                              capture_output=True, text=True, check=False)
        if peer.returncode == 0:
            tail = [ln for ln in peer.stdout.splitlines() if ln.strip()]
            print("| phash (peers.py) | see below | | |\n\n```\n" + "\n".join(tail[-12:]) + "\n```")
        else:
            print(f"| phash | failed: {peer.stderr.strip().splitlines()[-1] if peer.stderr else '?'} | | |")


if __name__ == "__main__":
    main()
