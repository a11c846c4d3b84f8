"""What exact invariance would be worth: a model's embedding averaged over test-time views, as served.

    python bench/invariance_oracle.py [--model M.onnx ...] [--views none,rot4,d8,rot4grey,grey2] [--out DIR]

For each model and each set of views (the photo's 4 turns, the 8 turns and flips, the 4 turns each in
colour and grey, colour and grey), every image is embedded once per view on the square model input
(where turns, flips and grey are exact: ``indexer.training.views.extra_edits``) and the unit mean is its
embedding. That averaged embedder is calibrated the way training calibrates (the recipe's 200 held-out
train-split photos, ``indexer.calibrate``, target precision 0.995) and scored on bench/quality.py's public
library at that threshold and at the best one. It costs one model pass per view, so it is an oracle for
training targets (stage 2 learns the "rot4" average of stage 1 in one pass), not a serving mode. Prints
one table.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import quality

from indexer.calibrate import calibrate
from indexer.embedder import OnnxEmbedder
from indexer.preprocess import to_grey, to_model_pixels

VIEWS = ("none", "rot4", "d8", "rot4grey", "grey2")
RECIPE = ROOT / "configs" / "arcface-kd.toml"  # whose held-out photos calibrate (both stages share them)


def view_batches(px: np.ndarray, views: str) -> list[np.ndarray]:
    """The views of a uint8 N×S×S×3 batch that ``views`` averages over."""
    if views not in VIEWS:
        raise ValueError(f"views must be one of {', '.join(VIEWS)}, not {views!r}")
    out = [px]
    if views in ("rot4", "d8", "rot4grey"):
        out = [np.ascontiguousarray(np.rot90(px, k, axes=(1, 2))) for k in range(4)]
    if views == "d8":
        out += [np.ascontiguousarray(v[:, :, ::-1]) for v in out]
    if views in ("rot4grey", "grey2"):
        out += [to_grey(v) for v in out]
    return out


def averaged_embed(emb: OnnxEmbedder, views: str):
    def embed(px: np.ndarray) -> np.ndarray:
        total = sum(emb.embed(v) for v in view_batches(px, views))
        return total / np.linalg.norm(total, axis=1, keepdims=True).clip(1e-12)
    return embed


def oracle_row(path: Path, views: str, truth: dict, rel: list[str], calib: list[Path]) -> dict:
    emb = OnnxEmbedder(path)
    size = emb.spec.input_size
    embed = averaged_embed(emb, views)
    cal = calibrate(calib, lambda ims: embed(np.stack([to_model_pixels(im, size) for im in ims])))
    averaged = SimpleNamespace(spec=emb.spec, embed=embed)  # what quality.embed_files reads of an embedder
    vecs, _ = quality.embed_files(averaged, [Path(truth["root"]) / p for p in rel])
    at, best = quality.score_vectors(vecs, cal.threshold, truth, rel)
    passes = len(view_batches(np.zeros((1, 2, 2, 3), np.uint8), views))
    return {"model": path.name, "views": views, "passes": passes,
            "threshold": round(cal.threshold, 4), "heldout_recall": round(cal.recall, 4),
            "hardest_negative": round(cal.hardest_negative, 4), "precision": at["pair_precision"],
            "f1": at["pair_f1"], "best_f1": best[0], "best_threshold": best[1]}


def main(argv: list[str] | None = None) -> int:
    from indexer.training.config import load_config
    from indexer.training.split import split_photos

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, action="append",
                    help="ONNX embedder (repeatable; default: ours and its stage 1)")
    ap.add_argument("--views", default="none,rot4", help=f"comma-separated, of {', '.join(VIEWS)}")
    ap.add_argument("--library", type=Path, default=ROOT / "runs" / "bench-lib")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-oracle")
    a = ap.parse_args(argv)
    models = a.model or [ROOT / "models" / "dupesift-arcface-kd-lite0.onnx",
                         ROOT / "models" / "dupesift-arcface-kd-lite0-stage1.onnx"]
    truth_path = a.library / "truth.json"
    if not truth_path.exists():
        raise SystemExit(f"no public library at {a.library}: run bench/quality.py once (it builds it)")
    truth = json.loads(truth_path.read_text())
    rel = [p for g in truth["groups"] for p in g] + list(truth["singles"])
    _, calib = split_photos(load_config(RECIPE))
    rows = []
    for path in models:
        for views in a.views.split(","):
            rows.append(oracle_row(path, views.strip(), truth, rel, calib))
            print(json.dumps(rows[-1]), flush=True)
    lines = [("| model | views (passes) | held-out thr | held-out recall | hardest held-out neg | public P "
              "| public F1 at thr | best F1 |"), "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['views']} ({r['passes']}) | {r['threshold']:.4f} "
              f"| {r['heldout_recall']:.3f} | {r['hardest_negative']:.3f} | {r['precision']:.4f} "
              f"| {r['f1']:.4f} | {r['best_f1']:.4f} @{r['best_threshold']} |" for r in rows]
    text = "\n".join(lines)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "oracle.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
