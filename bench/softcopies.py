#!/usr/bin/env python3
"""The soft-copy test of the link rule on our own recipes: blurred and shrunk copies against look-alikes.

    python bench/softcopies.py [--photos 200] [--seed 0] [--residual 0.5]

A heavy blur or a shrink to a thumbnail takes a photo's keypoints, so geometry cannot judge the pair; the rule's
``soft`` test (``indexer.linkrule.softened``) links a textured photo and a low-texture one when the textured one,
blurred, matches the other in every cell of a grid. Everything here is built from the confuser benchmark's *tune*
inputs (the train-split photos held out from the model's training, its tune background recipes), never from the
public library or the held-out split, and compared on features as the decode workers compute them (JPEG q85):

- copies: each photo blurred (Gaussian radius 3-8 px at its own 500 px size), shrunk to 48-120 px wide, or both,
  some in grey: the pairs where the copy is low-texture and the photo is not (where the test is asked), and the
  share it links;
- shared background: a tune background (sky, linear or radial gradient) and the same background with a tune
  photo pasted on it (4-25 % of its width): different pictures that agree everywhere but under the subject;
- different photos: a blurred copy of one photo against another photo of the same aspect ratio;
- framed soft copies (``--framed``, own random stream): a blurred copy also cropped (75-92 % a side), turned
  (2-12 degrees, corners cut) or bordered (3-10 % of the width, a random colour), half of them shrunk too: where
  only the aligned measure (``aligned_blur_residual``) can link;
- bursts: real shots of one object or scene (``../shared/data/realdup/simbench``: UKBench groups of four, the three
  Holidays shots), every ordered pair, the second as is and blurred (radius 3 and 6), ignoring the texture gate.

Printed per recipe: pairs the test is asked about, pairs linked at the rule's ``--residual`` (and of those, how many
only once aligned), and the lowest and highest residual (the worst cell's difference over its own spread; the lower
of the two measures).
"""
from __future__ import annotations

import argparse
import io
import random
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import confusers as C
from indexer import featurestore, linkrule
from indexer.config import Settings
from indexer.features import PhotoFeatures

QUALITY = 85
BACKGROUNDS = (C.low_sky, C.low_linear, C.low_radial)


def features_of(im: Image.Image, quality: int = QUALITY) -> PhotoFeatures:
    """The link features of ``im`` saved as a JPEG of ``quality``, as the decode workers compute them."""
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=quality)
    return featurestore.of_file(buf.getvalue(), 10**8)


def soft_copy(im: Image.Image, r: random.Random) -> tuple[str, Image.Image]:
    kind = r.choice(["blur", "shrink", "blur+shrink"])
    out = im
    if "blur" in kind:
        out = out.filter(ImageFilter.GaussianBlur(r.uniform(3, 8)))
    if "shrink" in kind:
        w = r.randint(48, 120)
        out = out.resize((w, max(1, round(w * im.height / im.width))), Image.Resampling.BILINEAR)
    if r.random() < 0.25:
        out, kind = ImageOps.grayscale(out).convert("RGB"), kind + "+grey"
    return kind, out


def framed_soft_copy(im: Image.Image, r: random.Random) -> tuple[str, Image.Image]:
    """A blurred copy that is also cropped, turned or bordered (half of them shrunk too)."""
    kind = r.choice(["crop", "turn", "border"])
    out = im.filter(ImageFilter.GaussianBlur(r.uniform(3, 8)))
    if kind == "crop":
        cw, ch = int(out.width * r.uniform(0.75, 0.92)), int(out.height * r.uniform(0.75, 0.92))
        x, y = r.randint(0, out.width - cw), r.randint(0, out.height - ch)
        out = out.crop((x, y, x + cw, y + ch))
    elif kind == "turn":
        out = out.rotate(r.choice([-1, 1]) * r.uniform(2, 12), resample=Image.Resampling.BILINEAR)
    else:
        out = ImageOps.expand(out, int(out.width * r.uniform(0.03, 0.1)), fill=tuple(r.randint(0, 255) for _ in "rgb"))
    if r.random() < 0.5:
        w = r.randint(60, 140)
        out, kind = out.resize((w, max(1, round(w * out.height / out.width))), Image.Resampling.BILINEAR), kind + "+shrink"
    return "blur+" + kind, out


def residual(sharp: PhotoFeatures, soft: PhotoFeatures) -> tuple[float, float]:
    """The soft test's two measures: ``indexer.linkrule.blur_residual`` and ``aligned_blur_residual``."""
    plain = linkrule.blur_residual(sharp.grey, soft.grey)
    aligned = linkrule.aligned_blur_residual(sharp.grey, soft.grey, sharp.grey_points)
    return plain, aligned


def bursts() -> list[tuple[Image.Image, Image.Image]]:
    """Every ordered pair of real shots of one object or scene (simbench), each at 500 px wide."""
    root = REPO.parent / "shared" / "data" / "realdup" / "simbench"
    uk = sorted((root / "ukbench").glob("*.jpg"))
    groups = [uk[i:i + 4] for i in range(0, len(uk), 4)] + [sorted((root / "holidays").glob("*.jpg"))]
    out = []
    for files in groups:
        ims = [C.photo(f) for f in files]
        ims = [im.resize((500, round(500 * im.height / im.width))) for im in ims]
        out += [(a, b) for i, a in enumerate(ims) for j, b in enumerate(ims) if i != j]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--residual", type=float, default=None, help="default: Settings().pixel_max_blur_residual")
    ap.add_argument("--others", type=int, default=10, help="different photos compared with each blurred copy")
    ap.add_argument("--framed", type=int, default=2, help="framed soft copies made of each photo")
    a = ap.parse_args()
    limit = Settings().pixel_max_blur_residual if a.residual is None else a.residual
    r = random.Random(a.seed)
    photos = C.split_photos("tune")[:a.photos]
    originals = [(p, C.photo(p)) for p in photos]
    feats = {p: features_of(im) for p, im in originals}
    rows: dict[str, list[tuple[float, float]]] = {}
    blurred: list[tuple[Path, PhotoFeatures]] = []
    for p, im in originals:
        kind, copy = soft_copy(im, r)
        f = features_of(copy)
        if f.low_texture and not feats[p].low_texture:
            rows.setdefault(f"copy: {kind}", []).append(residual(feats[p], f))
            if "shrink" not in kind:
                blurred.append((p, f))
    for k in range(a.photos):
        bg = BACKGROUNDS[k % len(BACKGROUNDS)](r, None).convert("RGB")
        bg = bg.resize((1024, max(1, round(1024 * bg.height / bg.width))))
        sub = originals[r.randrange(len(originals))][1]
        w = int(1024 * r.uniform(0.04, 0.25))
        sub = sub.resize((w, max(1, round(w * sub.height / sub.width))))
        both = bg.copy()
        both.paste(sub, (r.randint(0, bg.width - sub.width), r.randint(0, max(0, bg.height - sub.height))))
        fb, fs = features_of(bg), features_of(both)
        if fb.low_texture and not fs.low_texture:
            rows.setdefault("apart: shared background", []).append(residual(fs, fb))
    for p, f in blurred:
        others = [q for q, _ in originals if q != p and not feats[q].low_texture]
        for q in r.sample(others, min(a.others, len(others))):
            rows.setdefault("apart: blurred copy, another photo", []).append(residual(feats[q], f))
    rf = random.Random(a.seed + 1000)  # its own stream: the rows above stay as they were
    for p, im in originals:
        for _ in range(a.framed):
            kind, copy = framed_soft_copy(im, rf)
            f = features_of(copy)
            if f.low_texture and not feats[p].low_texture:
                rows.setdefault(f"copy: {kind}", []).append(residual(feats[p], f))
    for x, y in bursts():
        fx = features_of(x)
        for radius in (0, 3, 6):
            fy = features_of(y.filter(ImageFilter.GaussianBlur(radius)) if radius else y)
            rows.setdefault(f"apart: burst, blur {radius}", []).append(residual(fx, fy))
    blurs = "/".join(f"{s:g}" for s in linkrule.BLUR_SIGMAS)
    print(f"soft test at residual {limit:g} (worst of {linkrule.BLUR_GRID}x{linkrule.BLUR_GRID} cells, floor "
          f"{linkrule.BLUR_FLOOR:g}, blurs {blurs}), {a.photos} tune photos, seed {a.seed}\n")
    print("| recipe | pairs asked | linked | only once aligned | share | lowest residual | highest |")
    print("|---|---|---|---|---|---|---|")
    for name in sorted(rows):
        plain, aligned_only = np.array(rows[name]).T
        xs = np.minimum(plain, aligned_only)
        linked = xs <= limit
        aligned = int((linked & (plain > limit)).sum())
        print(f"| {name} | {len(xs)} | {int(linked.sum())} | {aligned} | {linked.mean():.3f} | {xs.min():.2f} | "
              f"{xs.max():.2f} |")


if __name__ == "__main__":
    main()
