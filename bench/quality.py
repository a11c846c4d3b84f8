#!/usr/bin/env python3
"""One table: duplicate-finding quality and speed of dupesift's models and the peers, plus a semantic check.

    python bench/quality.py [--library runs/bench-lib] [--model NAME=PATH ...] [--peers phash,sscd-distilled,sscd]

The library is ../shared/eval/make_library.py's default public library (eval split, seed 0, 700 files),
built under --library when missing. Each ONNX model embeds every file through the serving path
(``indexer.decode.load_image`` -> ``OnnxEmbedder.embed``), pairs come from a faiss IndexFlatIP range
search at the threshold, groups are connected components (as the service groups), and
../shared/eval/score.py scores them. "best" sweeps the threshold on this library (an oracle, for
comparison only). files/s counts decode + embed on this CPU, single process: the median of --speed-rounds
passes over the whole library that take turns (ours, ours, SSCD-distilled, phash, ours, ...) after scoring,
so a slow spell on the machine hits every method rather than whichever ran during it; SSCD ResNet50's
rate is its scoring pass (one pass: 1 min). The peers' passes include ONNX Runtime session creation
(``peers.py`` makes it inside), under 0.5 s of the ~13 s pass.

The service's link rule (verification, pixels, crowd, chain guard) is measured end to end by
bench/ingest.py and bench/confusers.py; this table scores the embeddings alone.

Semantic check (what distillation should preserve), per model:
- hard-crop: each of the 200 eval-split photos queried by a 6-16 % area crop (+ resize) against the 200
  originals; top-1 accuracy. The crop shows part of the object, so matching it needs content features.
- superclass NN: ImageNet-class knowledge. The photos are one per ImageNet class, so "same class" is taken
  at the level of the Restricted-ImageNet superclasses (dog 151-268, cat 281-285, frog 30-32, turtle 33-37,
  bird 80-100, primate 365-382, fish 389-397, crab 118-121, insect 300-319; class index = sorted file name):
  share of the eval-split photos in those superclasses whose nearest other eval-split photo is in the same one.
- coarse-class mAP: the same idea on more of the photos and with the whole ranking rather than the nearest
  one: 16 coarse groups by ImageNet class index (fish, birds, reptiles, dogs, primates, food, landscapes, ...;
  ``COARSE_CLASSES``) cover 93 eval-split photos that share a group with another; mean average precision of
  each one's ranking of the other 199 eval photos. Twice the queries of superclass NN, and every rank counts,
  so one lucky or unlucky neighbour moves it less.
- simbench: ../shared/data/realdup/simbench (3 UKBench objects shot 2-4 times, 3 Holidays photos of one
  scene; different shots, not copies) among the 200 eval photos as distractors: share of the 13 images
  whose nearest other image is from the same group, and mean average precision.
"""
from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"
EVAL = SHARED / "eval"
sys.path.insert(0, str(EVAL))

from score import score  # ../shared/eval/score.py

from indexer.decode import load_image
from indexer.embedder import OnnxEmbedder
from indexer.preprocess import to_model_pixels

MAX_PIXELS = 100_000_000
DEFAULT_MODELS = {
    "backbone (ImageNet, untouched)": ROOT / "models" / "dupesift-effnetlite0-imagenet.onnx",
    "ArcFace, no distillation": ROOT / "runs" / "arcface-lite0" / "arcface-lite0.onnx",
    "ArcFace + distillation (ours)": ROOT / "models" / "dupesift-arcface-kd-lite0.onnx",
    "ours, stage 1 alone (v10)": ROOT / "models" / "dupesift-arcface-kd-lite0-stage1.onnx",
}
SUPERCLASSES = {"dog": (151, 268), "cat": (281, 285), "frog": (30, 32), "turtle": (33, 37), "bird": (80, 100),
                "primate": (365, 382), "fish": (389, 397), "crab": (118, 121), "insect": (300, 319)}
# coarser and wider than SUPERCLASSES (ranges of the sorted class index, which follows WordNet's tree for animals)
COARSE_CLASSES = {
    "fish": [(0, 6), (389, 397)], "bird": [(7, 24), (80, 100), (127, 146)], "amphibian": [(25, 32)],
    "reptile": [(33, 68)], "invertebrate": [(69, 79), (107, 126), (327, 329)], "insect": [(300, 326)],
    "sea mammal": [(147, 150)], "dog": [(151, 268)], "carnivore": [(269, 299)],
    "small mammal": [(102, 106), (330, 338), (356, 364)], "hoofed": [(339, 355)], "primate": [(365, 384)],
    "elephant": [(101, 101), (385, 386)], "food": [(924, 969)], "landscape": [(970, 980)], "plant": [(984, 997)]}
SWEEP = np.round(np.arange(0.30, 0.991, 0.01), 3)


def components(n: int, edges) -> list[list[int]]:
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        parent[find(a)] = find(b)
    out: dict[int, list[int]] = {}
    for i in range(n):
        out.setdefault(find(i), []).append(i)
    return [g for g in out.values() if len(g) > 1]


def faiss_groups(vecs: np.ndarray, threshold: float) -> list[list[int]]:
    import faiss

    index = faiss.IndexFlatIP(vecs.shape[1])
    index.add(vecs)
    lims, _, ids = index.range_search(vecs, float(threshold))
    edges = [(i, int(j)) for i in range(len(vecs)) for j in ids[lims[i]:lims[i + 1]] if j > i]
    return components(len(vecs), edges)


def matrix_groups(close: np.ndarray) -> list[list[int]]:
    ii, jj = np.nonzero(np.triu(close, 1))
    return components(len(close), zip(ii.tolist(), jj.tolist()))


def embed_files(emb: OnnxEmbedder, paths: list[Path], batch: int = 32) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    out = []
    for i in range(0, len(paths), batch):
        px = np.stack([load_image(p, max_pixels=MAX_PIXELS, size=emb.spec.input_size).pixels
                       for p in paths[i:i + batch]])
        out.append(emb.embed(px))
    return np.concatenate(out), len(paths) / (time.perf_counter() - t0)


def speed_rounds(models: dict[str, Path], peer_methods: list[str], paths: list[Path],
                 rounds: int) -> dict[str, list[float]]:
    """files/s of each method over ``rounds`` passes in turn (every model, then every peer, repeated)."""
    import peers  # ../shared/eval/peers.py

    embedders = {name: OnnxEmbedder(path) for name, path in models.items()}
    rates: dict[str, list[float]] = {name: [] for name in [*embedders, *peer_methods]}
    for _ in range(rounds):
        for name, emb in embedders.items():
            rates[name].append(embed_files(emb, paths)[1])
        for method in peer_methods:
            t0 = time.perf_counter()
            if method in ("phash", "dhash"):
                peers.hash_matrix(paths, method)
            else:
                peers.sscd_similarity(paths, method)
            rates[method].append(len(paths) / (time.perf_counter() - t0))
    return rates


def average_precision(sim_row: np.ndarray, relevant: np.ndarray) -> float:
    """AP of ranking the items by ``sim_row`` (descending) when ``relevant`` marks the right ones."""
    rel = relevant[np.argsort(-sim_row, kind="stable")]
    hits = np.cumsum(rel)
    return float((hits[rel] / (np.nonzero(rel)[0] + 1)).mean())


def coarse_class(index: int) -> str:
    return next((n for n, ranges in COARSE_CLASSES.items() if any(lo <= index <= hi for lo, hi in ranges)), "")


def semantic(emb: OnnxEmbedder) -> dict:
    from indexer.augment import open_photo

    all_files = sorted((SHARED / "data" / "photos").glob("*.JPEG"))
    files = all_files[::5]
    s = emb.spec.input_size
    r = random.Random(0)
    originals, crops = [], []
    for f in files:
        im = open_photo(f)
        originals.append(to_model_pixels(im, s))
        w, h = im.size
        area = r.uniform(0.06, 0.16)
        cw, ch = int(w * area ** 0.5), int(h * area ** 0.5)
        x, y = r.randint(0, w - cw), r.randint(0, h - ch)
        crops.append(to_model_pixels(im.crop((x, y, x + cw, y + ch)), s))
    g = np.concatenate([emb.embed(np.stack(originals[i:i + 50])) for i in range(0, len(originals), 50)])
    q = np.concatenate([emb.embed(np.stack(crops[i:i + 50])) for i in range(0, len(crops), 50)])
    hard_crop = float(((q @ g.T).argmax(1) == np.arange(len(files))).mean())
    superclass = np.array([next((n for n, (lo, hi) in SUPERCLASSES.items() if lo <= i <= hi), "")
                           for i in range(0, len(all_files), 5)])
    gg = g @ g.T
    np.fill_diagonal(gg, -np.inf)
    nn = gg.argmax(1)
    inside = superclass != ""
    super_nn = float((superclass[nn][inside] == superclass[inside]).mean())
    coarse = np.array([coarse_class(i) for i in range(0, len(all_files), 5)])
    others = np.arange(len(g))
    coarse_aps = [average_precision(gg[i][others != i], (coarse == coarse[i])[others != i])
                  for i in range(len(g)) if coarse[i] and (coarse == coarse[i]).sum() > 1]
    sb = SHARED / "data" / "realdup" / "simbench"
    uk = sorted((sb / "ukbench").glob("*.jpg"))
    hol = sorted((sb / "holidays").glob("*.jpg"))
    paths = uk + hol
    labels = [int(p.stem[-5:]) // 4 for p in uk] + [100] * len(hol)
    v = np.concatenate([emb.embed(np.stack([load_image(p, max_pixels=MAX_PIXELS, size=s).pixels for p in paths])), g])
    labels_all = np.array(labels + [-1 - i for i in range(len(g))])
    sim = v @ v.T
    top1, aps = [], []
    rest = np.arange(len(v))
    for i in range(len(paths)):
        row, rel = sim[i][rest != i], (labels_all == labels_all[i])[rest != i]
        top1.append(bool(rel[np.argmax(row)]))
        aps.append(average_precision(row, rel))
    return {"hard_crop_top1": round(hard_crop, 3), "superclass_nn": round(super_nn, 3),
            "coarse_mAP": round(float(np.mean(coarse_aps)), 3), "coarse_queries": len(coarse_aps),
            "simbench_top1": round(float(np.mean(top1)), 3), "simbench_mAP": round(float(np.mean(aps)), 3)}


def score_vectors(vecs: np.ndarray, threshold: float, truth: dict, rel: list[str]) -> tuple[dict, tuple]:
    """score.py's figures for the groups at ``threshold``, and (best pair F1, its threshold) over SWEEP."""
    names = lambda groups: [[rel[i] for i in g] for g in groups]
    at_threshold = score(truth, names(faiss_groups(vecs, threshold)))
    sim = vecs @ vecs.T
    best = max((score(truth, names(matrix_groups(sim >= t)))["pair_f1"], float(t)) for t in SWEEP)
    return at_threshold, best


def model_row(name: str, path: Path, truth: dict, rel: list[str], sem: bool) -> dict:
    emb = OnnxEmbedder(path)
    paths = [Path(truth["root"]) / p for p in rel]
    vecs, fps = embed_files(emb, paths)
    at_default, best = score_vectors(vecs, emb.spec.threshold, truth, rel)
    row = {"method": name, "threshold": emb.spec.threshold, **at_default, "best_f1": best[0],
           "best_threshold": best[1], "files_per_s": round(fps, 1), "dim": emb.spec.dim}
    if sem:
        row.update(semantic(emb))
    return row


def peer_row(method: str, truth: dict, rel: list[str]) -> dict:
    import peers  # ../shared/eval/peers.py

    paths = [Path(truth["root"]) / p for p in rel]
    t0 = time.perf_counter()
    names = lambda groups: [[rel[i] for i in g] for g in groups]
    if method in ("phash", "dhash"):
        dist = peers.hash_matrix(paths, method)
        fps = len(paths) / (time.perf_counter() - t0)
        thr, sweep, close = 10, range(33), (lambda t: dist <= t)
    else:
        sim = peers.sscd_similarity(paths, method)
        fps = len(paths) / (time.perf_counter() - t0)
        thr, sweep, close = 0.75, np.arange(0.2, 0.996, 0.005), (lambda t: sim >= t)
    at_default = score(truth, names(matrix_groups(close(thr))))
    best = max((score(truth, names(matrix_groups(close(t))))["pair_f1"], float(t)) for t in sweep)
    return {"method": method, "threshold": thr, **at_default, "best_f1": best[0], "best_threshold": round(best[1], 4),
            "files_per_s": round(fps, 1)}


def table(rows: list[dict]) -> str:
    fams = sorted({k for r in rows for k in r.get("recall_by_edit", {})})
    head = ["method", "thr", "P", "R", "F1", "best F1 @thr", "files/s", "hard-crop", "superclass NN",
            "coarse mAP", "simbench top1/mAP"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        sem = "hard_crop_top1" in r
        lines.append("| " + " | ".join([
            r["method"], f"{r['threshold']:g}", f"{r['pair_precision']:.4f}", f"{r['pair_recall']:.4f}",
            f"{r['pair_f1']:.4f}", f"{r['best_f1']:.4f} @{r['best_threshold']:g}", f"{r['files_per_s']:.1f}",
            f"{r['hard_crop_top1']:.3f}" if sem else "-", f"{r['superclass_nn']:.3f}" if sem else "-",
            f"{r['coarse_mAP']:.3f}" if sem else "-",
            f"{r['simbench_top1']:.3f} / {r['simbench_mAP']:.3f}" if sem else "-"]) + " |")
    lines += ["", "Recall per edit family at the default threshold:", "",
              "| method | " + " | ".join(fams) + " |", "|" + "---|" * (len(fams) + 1)]
    for r in rows:
        lines.append(f"| {r['method']} | " + " | ".join(f"{r['recall_by_edit'].get(f, 0):.3f}" for f in fams) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--library", type=Path, default=ROOT / "runs" / "bench-lib")
    ap.add_argument("--model", action="append", default=[], help="NAME=PATH.onnx (repeatable; default: the baseline, the ablation, ours and its stage 1)")
    ap.add_argument("--peers", default="phash,sscd-distilled,sscd")
    ap.add_argument("--no-semantic", action="store_true")
    ap.add_argument("--speed-rounds", type=int, default=3,
                    help="timed passes per method, in turn, for files/s (0: the scoring pass's rate)")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench")
    a = ap.parse_args(argv)
    truth_path = a.library / "truth.json"
    if not truth_path.exists():
        subprocess.run([sys.executable, str(EVAL / "make_library.py"), str(a.library)], check=True)
    truth = json.loads(truth_path.read_text())
    rel = [p for g in truth["groups"] for p in g] + list(truth["singles"])
    models = dict(m.split("=", 1) for m in a.model) if a.model else dict(DEFAULT_MODELS)
    rows = []
    for name, path in list(models.items()):
        if not Path(path).exists():
            print(f"skip {name}: {path} missing", file=sys.stderr)
            del models[name]
            continue
        rows.append(model_row(name, Path(path), truth, rel, not a.no_semantic))
        print(json.dumps(rows[-1]), flush=True)
    for method in filter(None, a.peers.split(",")):
        try:
            rows.append(peer_row(method, truth, rel))
            print(json.dumps(rows[-1]), flush=True)
        except ImportError as exc:
            print(f"skip {method}: {exc}", file=sys.stderr)
    if a.speed_rounds > 0:
        timed_peers = [r["method"] for r in rows if r["method"] in ("phash", "dhash", "sscd-distilled")]
        rates = speed_rounds({k: Path(v) for k, v in models.items()}, timed_peers,
                             [Path(truth["root"]) / p for p in rel], a.speed_rounds)
        for r in rows:
            if r["method"] in rates:
                r["files_per_s_scoring_pass"] = r["files_per_s"]
                r["files_per_s_rounds"] = [round(x, 1) for x in rates[r["method"]]]
                r["files_per_s"] = round(float(np.median(rates[r["method"]])), 1)
        print(json.dumps({r["method"]: r.get("files_per_s_rounds") for r in rows}), flush=True)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "quality.json").write_text(json.dumps(rows, indent=1))
    text = f"Public library: {len(rel)} files, {len(truth['groups'])} groups ({truth_path})\n\n" + table(rows)
    (a.out / "quality.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
