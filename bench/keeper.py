#!/usr/bin/env python3
"""Keeper accuracy: how often the suggested keeper of a group is the photo its copies were made from.

    python bench/keeper.py [--work DIR] [--fit] [--group-size N]

Libraries of 100 groups of an original and 5 copies each (``../shared/eval/make_library.py``'s ``build``:
one to three edits chained, files saved as JPEG, PNG or WebP at random qualities); ``truth.json``'s
``groups[i][0]`` is the original:
- ``public``: the public evaluation library (``make_library.py OUT --split eval``, seed 0, its edits);
- ``fit``: our own recipes (``RECIPES``) on the train split, seed 1: the pairs ``--fit`` fits the weights on;
- ``held-out``: our own recipes on the eval split, seed 2: never used to choose anything;
- ``unseen``, ``unseen2``: the two edit sets of ``bench/unseen.py`` (sharpened, dithered, pixelated, stickers,
  ...; grain, glow, chromatic aberration, an "enhance" app, ...), which no recipe of the fit has, on the eval
  split, seeds 3 and 4: how the rule carries to edits it was not fitted on;
- ``chain``, ``tree``: our own recipes on the eval split (seeds 6, 7), one edit per copy, but copies made from
  copies (``lineage``): each from the one before, or two from the original and three from the first copy. Every
  other library is a star (each copy made from the original), as the fit is. ``chain-fit`` and ``tree-fit`` are
  the same shapes on the train split (seeds 8, 9), to choose on.
- ``unseen3``: ``bench/unseen.py``'s third set (a story's blurred fill, portrait blur, pixelated boxes, pen markup,
  straightening, app-to-app re-sharing, tilt-shift, a VHS look), eval split, seed 12: measured only;
- ``lines-fit``: rows drawn over the picture (interlaced combing, scan lines: ``LINED``) among common edits, on
  the train split (seed 13): to choose on;
- ``sharpen-fit``, ``sharpen``: sharpened copies (unsharp masking, ``sharpen``) among other common edits
  (``SHARPENED``), on the train split (seed 10: fitted on with ``fit``) and on the eval split (seed 11: measured
  only).
Every member is measured as ingest measures it (``load_image`` with the decode workers' ``extra`` side, then
``indexer.keeper.measure``; its link features as ``indexer.decodepool.photo_features`` keeps them), each truth
group's ``held`` is set as ``indexer.grouping`` sets it (``keeper.holdings``), and the truth groups are ranked
(grouping itself is measured by ``bench/ingest.py``); ``--group-size 2`` (or 3) ranks the original with one (two)
of its copies at a time instead, as most of a user's groups are. ``KEEPER_BENCH_MISSES=1`` lists the misses of ``fit`` and
``public`` (never of the others: ``NEVER_LISTED``).
The files are written original first, so the original is always the oldest: each library has a row with the
dates as written and a row with the dates shuffled within each group (file age tells nothing), for the old rule
(most pixels first: ``old_rule``) and the new (``indexer.keeper.choose``).

``--fit`` fits ``indexer.keeper.WEIGHTS`` on the ``fit`` and ``sharpen-fit`` libraries: a logistic regression on the evidence
differences of (original, copy) pairs, both orders, and prints the weights to paste.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT.parent / "shared" / "eval"))

import make_library
from edits import FAMILIES

from bench.unseen import EDIT_SETS
from indexer import features, keeper, verify
from indexer.decode import load_image
from indexer.decodepool import photo_features

MODEL_SIDE = 224  # the model's input side: decides how far ingest drafts a JPEG before measuring


# -- our own edit recipes (parameters differ from the public library's edits) ----------------------------
def upscale(im: Image.Image, r: random.Random) -> Image.Image:
    f = r.uniform(1.25, 3.0)
    return im.resize((round(im.width * f), round(im.height * f)), r.choice([Image.BICUBIC, Image.LANCZOS]))


def thumb_up(im: Image.Image, r: random.Random) -> Image.Image:
    """A thumbnail blown back up to the photo's size."""
    f = r.uniform(0.25, 0.6)
    small = im.resize((max(16, round(im.width * f)), max(16, round(im.height * f))), Image.BILINEAR)
    return small.resize(im.size, Image.BICUBIC)


def pad_square(im: Image.Image, r: random.Random) -> Image.Image:
    """Padded to a square, on a plain colour or on a blurred enlargement of itself."""
    side = max(im.size)
    if r.random() < 0.5:
        canvas = Image.new("RGB", (side, side), r.choice([(0, 0, 0), (255, 255, 255), (24, 24, 24)]))
    else:
        canvas = im.resize((side, side)).filter(ImageFilter.GaussianBlur(side / 20))
    canvas.paste(im, ((side - im.width) // 2, (side - im.height) // 2))
    return canvas


def frame(im: Image.Image, r: random.Random) -> Image.Image:
    w = max(2, round(min(im.size) * r.uniform(0.03, 0.12)))
    return ImageOps.expand(im, w, fill=(r.randint(0, 255), r.randint(0, 255), r.randint(0, 255)))


def sepia(im: Image.Image, r: random.Random) -> Image.Image:
    g = np.asarray(ImageOps.grayscale(im), np.float32)
    tone = np.array(r.choice([(1.07, 0.74, 0.43), (1.0, 0.9, 0.7), (0.8, 0.9, 1.1)]), np.float32)
    return Image.fromarray(np.clip(g[..., None] * tone, 0, 255).astype(np.uint8))


def grey(im: Image.Image, r: random.Random) -> Image.Image:
    return ImageOps.grayscale(im).convert("RGB")


def crop(im: Image.Image, r: random.Random) -> Image.Image:
    f = r.uniform(0.5, 0.85)
    cw, ch = round(im.width * f), round(im.height * r.uniform(0.5, 0.85) if r.random() < 0.5 else im.height * f)
    x, y = r.randint(0, im.width - cw), r.randint(0, im.height - ch)
    out = im.crop((x, y, x + cw, y + ch))
    return out.resize(im.size, Image.BICUBIC) if r.random() < 0.4 else out  # a zoomed crop keeps the size


def recompress(im: Image.Image, r: random.Random) -> Image.Image:
    for _ in range(r.randint(1, 3)):
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=r.randint(15, 50))
        im = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return im


def caption(im: Image.Image, r: random.Random) -> Image.Image:
    im = im.copy()
    d = ImageDraw.Draw(im)
    w, h = im.size
    bar = round(h * r.uniform(0.08, 0.2))
    top = 0 if r.random() < 0.3 else h - bar
    d.rectangle((0, top, w, top + bar), fill=r.choice([(0, 0, 0), (255, 255, 255), (200, 30, 30)]))
    d.text((10, top + bar // 3), f"best day ever {r.randint(1, 99)}", fill=(128, 128, 128))
    return im


def rotate_fill(im: Image.Image, r: random.Random) -> Image.Image:
    angle = r.choice([-1, 1]) * r.uniform(3, 20)
    return im.rotate(angle, Image.BICUBIC, expand=r.random() < 0.5, fillcolor=r.choice([(0, 0, 0), (255, 255, 255)]))


def screenshot(im: Image.Image, r: random.Random) -> Image.Image:
    """The photo shown on a phone screen: scaled, on a plain screen with status and toolbar bars."""
    sw = r.choice([720, 1080])
    sh = round(sw * r.uniform(1.8, 2.2))
    screen = Image.new("RGB", (sw, sh), r.choice([(0, 0, 0), (250, 250, 250)]))
    d = ImageDraw.Draw(screen)
    d.rectangle((0, 0, sw, sh // 20), fill=(40, 40, 40))
    d.rectangle((0, sh - sh // 12, sw, sh), fill=(40, 40, 40))
    pic = im.resize((sw, round(im.height * sw / im.width)), Image.BILINEAR)
    screen.paste(pic, (0, (sh - pic.height) // 2))
    return screen


def fade(im: Image.Image, r: random.Random) -> Image.Image:
    """An over- or under-exposed, clipped copy."""
    a = np.asarray(im, np.float32) * r.choice([r.uniform(1.4, 2.0), r.uniform(0.4, 0.7)]) + r.uniform(-20, 20)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def mirror(im: Image.Image, r: random.Random) -> Image.Image:
    return ImageOps.mirror(im)


def vivid(im: Image.Image, r: random.Random) -> Image.Image:
    """A "vivid" filter: saturation and contrast up."""
    return ImageEnhance.Contrast(ImageEnhance.Color(im).enhance(r.uniform(1.5, 2.5))).enhance(r.uniform(1.0, 1.3))


def grain(im: Image.Image, r: random.Random) -> Image.Image:
    """Film grain: colour noise added."""
    a = np.asarray(im, np.float32) + np.random.default_rng(r.randint(0, 2**31)).normal(0, r.uniform(4, 15), (im.height, im.width, 3))
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def sharpen(im: Image.Image, r: random.Random) -> Image.Image:
    """A "sharpen" or "enhance" slider: unsharp masking of radius 1-3 px at 80-250 %."""
    return im.filter(ImageFilter.UnsharpMask(r.uniform(1.0, 3.0), r.randint(80, 250), r.randint(0, 3)))


def interlace(im: Image.Image, r: random.Random) -> Image.Image:
    """Combing: every other row moved 2-5 px sideways, as two fields of an interlaced video frame."""
    a = np.asarray(im).copy()
    a[1::2] = np.roll(a[1::2], r.randint(2, 5) * r.choice([-1, 1]), axis=1)
    return Image.fromarray(a)


def scanlines(im: Image.Image, r: random.Random) -> Image.Image:
    """A CRT filter: every other (or every third) row darkened by 15-35 %."""
    a = np.asarray(im, np.float32).copy()
    a[::r.choice([2, 3])] *= 1 - r.uniform(0.15, 0.35)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


RECIPES = {f.__name__: f for f in (upscale, thumb_up, pad_square, frame, sepia, grey, crop, recompress, caption,
                                   rotate_fill, screenshot, fade, mirror, vivid, grain)}
# Sharpened copies among other common edits (a sharpened copy is often also enlarged, cropped or re-saved)
SHARPENED = {f.__name__: f for f in (sharpen, upscale, crop, recompress, mirror, vivid)}
# Rows drawn over the picture (interlacing, scan lines) among the same common edits: a pattern on the pixel grid
LINED = {f.__name__: f for f in (interlace, scanlines, upscale, crop, recompress, mirror, vivid)}
LIBRARIES = {"public": ("eval", 0, FAMILIES), "fit": ("train", 1, RECIPES), "held-out": ("eval", 2, RECIPES),
             "unseen": ("eval", 3, EDIT_SETS["first"]), "unseen2": ("eval", 4, EDIT_SETS["second"]),
             "chain-fit": ("train", 8, RECIPES), "tree-fit": ("train", 9, RECIPES),
             "chain": ("eval", 6, RECIPES), "tree": ("eval", 7, RECIPES),
             "sharpen-fit": ("train", 10, SHARPENED), "sharpen": ("eval", 11, SHARPENED),
             "unseen3": ("eval", 12, EDIT_SETS["third"]), "lines-fit": ("train", 13, LINED)}
FITTED_ON = ("fit", "sharpen-fit")  # the libraries ``--fit`` fits the weights on
# Copies made from other copies (``lineage``): each copy's parent, by its place in the group (0: the original)
CHAIN, TREE = (0, 0, 1, 2, 3, 4), (0, 0, 0, 1, 1, 1)
LINEAGES = {"chain-fit": CHAIN, "tree-fit": TREE, "chain": CHAIN, "tree": TREE}
NEVER_LISTED = ("held-out", "unseen", "unseen2", "unseen3", "chain", "tree", "sharpen")  # measured, never looked at (their misses would steer)


def lineage(out: Path, photos: list[Path], seed: int, families: dict, parents: tuple[int, ...]) -> dict:
    """A library like ``make_library.build``'s (100 groups of an original and 5 copies, files saved as it saves
    them) whose copies are made from other copies: copy k gets one edit of ``families`` on the file saved for
    member ``parents[k]``, so a ``chain`` inherits every edit before it and a ``tree`` shares the first copy's."""
    r = random.Random(seed)
    root = out / "library"
    root.mkdir(parents=True, exist_ok=True)
    groups, edits = [], {}
    names = sorted(families)
    for src in photos[:100]:
        group = [make_library.save(Image.open(src).convert("RGB"), root, r)]
        for parent in parents[1:]:
            chain = r.sample(names, k=1)
            with Image.open(root / group[parent]) as im:
                copy = make_library.save(make_library.compose(im.convert("RGB"), chain, r, families), root, r)
            edits[copy] = "+".join(chain)
            group.append(copy)
        groups.append(group)
    truth = {"root": str(root), "groups": groups, "singles": [], "edits": edits}
    (out / "truth.json").write_text(json.dumps(truth, indent=1))
    return truth


# -- measuring and ranking ------------------------------------------------------------------------------
def decoded(path: Path, extra):
    return load_image(path.read_bytes(), max_pixels=250_000_000, size=MODEL_SIDE, extra=extra,
                      extra_side=verify.SIDE)


def measure(path: Path) -> keeper.Candidate:
    """A member as ingest would store it (the decode workers' side for the extra, then ``measure``)."""
    d = decoded(path, keeper.measure)
    attrs = replace(d.extra, jpeg_quality=keeper.jpeg_quality(path.read_bytes()))  # type: ignore[type-var]
    st = path.stat()
    return keeper.Candidate(id=0, width=d.width, height=d.height, bytes=st.st_size, mtime=st.st_mtime,
                            camera_exif=d.camera, attributes=attrs)


def link_features(paths: list[Path], cache: Path) -> list[features.PhotoFeatures]:
    """The link features ingest keeps of each file (decodepool's ``photo_features``), cached in ``cache``."""
    if cache.exists():
        with np.load(cache) as z:
            return [features.unpack(z[str(k)].tobytes()) for k in range(len(paths))]
    packed = [decoded(p, photo_features).extra for p in paths]
    np.savez(cache, **{str(k): np.frombuffer(b, np.uint8) for k, b in enumerate(packed)})
    return [features.unpack(b) for b in packed]


def library(name: str, work: Path) -> list[tuple[list[keeper.Candidate], list[features.PhotoFeatures]]]:
    """The library's truth groups, measured (cached beside it: the measures as JSON, redone when
    ``keeper.VERSION`` changes), each with its members' link features (``subgroups`` sets their share of the
    group's picture from them)."""
    split, seed, families = LIBRARIES[name]
    out = work / name
    cache = out / "measured.json"
    if not (out / "truth.json").exists():
        if out.exists():  # a rebuild into an old folder draws other names, and so other edits
            shutil.rmtree(out)
        if name in LINEAGES:
            lineage(out, make_library.split(split), seed, families, LINEAGES[name])
        else:
            make_library.build(out, make_library.split(split), 100, 5, seed, families)
    truth = json.loads((out / "truth.json").read_text())
    root = Path(truth["root"])
    raw = json.loads(cache.read_text()) if cache.exists() else {}
    if isinstance(raw, dict) and raw.get("version") == keeper.VERSION:
        groups = [[keeper.Candidate(**{**c, "attributes": keeper.Attributes(**{**c["attributes"], "tones": tuple(c["attributes"]["tones"])})}) for c in g]
                  for g in raw["groups"]]
    else:
        t0 = time.time()
        groups = [[replace(measure(root / p), id=gi * 10 + k, mtime=t0 + k) for k, p in enumerate(g)]
                  for gi, g in enumerate(truth["groups"])]
        cache.write_text(json.dumps({"version": keeper.VERSION, "groups": [
            [{**c.__dict__, "attributes": c.attributes.__dict__} for c in g] for g in groups]}))
    paths = [root / p for g in truth["groups"] for p in g]
    feats = iter(link_features(paths, out / "features.npz"))
    return [(g, [next(feats) for _ in g]) for g in groups]


def subgroups(measured: list[tuple[list[keeper.Candidate], list[features.PhotoFeatures]]],
              size: int) -> list[list[keeper.Candidate]]:
    """Each truth group as groups of ``size`` (0: whole): the original with each run of ``size`` - 1 of its copies
    in turn (a user's groups are mostly of two or three), ``held`` and ``page`` set for each as grouping sets them."""
    out = []
    for g, f in measured:
        runs = [list(range(1, len(g)))] if size <= 0 else [list(range(k, min(len(g), k + size - 1)))
                                                            for k in range(1, len(g), size - 1)]
        out += [with_holdings([g[0]] + [g[k] for k in run], [f[0]] + [f[k] for k in run]) for run in runs]
    return out


def with_holdings(g: list[keeper.Candidate], feats: list[features.PhotoFeatures]) -> list[keeper.Candidate]:
    """The members with ``held`` and ``page`` set as ``indexer.grouping`` sets them."""
    held = keeper.holdings({c.id: f.keypoints for c, f in zip(g, feats, strict=True)}, keeper.order(g))
    return [replace(c, held=held.get(c.id), page=f.page is not None) for c, f in zip(g, feats, strict=True)]


def shuffled(groups: list[list[keeper.Candidate]], seed: int = 0) -> list[list[keeper.Candidate]]:
    r = random.Random(seed)
    out = []
    for g in groups:
        times = [c.mtime for c in g]
        r.shuffle(times)
        out.append([replace(c, mtime=t) for c, t in zip(g, times, strict=True)])
    return out


def old_rule(g: list[keeper.Candidate]) -> int:
    """The rule before issue 27 (indexer/grouping.py): most pixels, then camera EXIF, oldest, largest file, id."""
    return min(g, key=lambda c: (-c.width * c.height, not c.camera_exif, c.mtime, -c.bytes, c.id)).id


def accuracy(groups: list[list[keeper.Candidate]], rule) -> float:
    return sum(rule(g) == g[0].id for g in groups) / len(groups)


def fit(groups: list[list[keeper.Candidate]], steps: int = 4000, l2: float = 1e-3) -> dict[str, float]:
    """Logistic regression (no intercept) on evidence differences original - copy (label 1) and reversed, each
    weight held to its sign (``keeper.SIGNS``: evidence that says "more of the picture" may not count against)."""
    rows = []
    for g in groups:
        usual = keeper.usual(g)
        eo = keeper.evidence(g[0], usual)
        for c in g[1:]:
            ec = keeper.evidence(c, usual)
            rows.append([eo[k] - ec[k] for k in keeper.EVIDENCE])
    x = np.array(rows)
    x = np.concatenate([x, -x])
    y = np.concatenate([np.ones(len(rows)), np.zeros(len(rows))])
    signs = np.array([keeper.SIGNS[k] for k in keeper.EVIDENCE])
    w = np.zeros(x.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-x @ w))
        w -= 0.5 * (x.T @ (p - y) / len(y) + l2 * w)
        w = np.where(w * signs < 0, 0.0, w)
    return {k: round(float(v), 2) for k, v in zip(keeper.EVIDENCE, w, strict=True)}


def tie_width(groups: list[list[keeper.Candidate]], edits: list[list[str]], weights: dict[str, float]) -> float:
    """The score difference that 90 % of (original, mirrored copy) pairs stay within: the same picture."""
    diffs = [abs(keeper.score(g[0], weights, keeper.usual(g)) - keeper.score(c, weights, keeper.usual(g)))
             for g, e in zip(groups, edits, strict=True) for c, ed in zip(g[1:], e[1:], strict=True) if ed == "mirror"]
    return round(float(np.quantile(diffs, 0.9)), 2) if diffs else keeper.TIE


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=None, help="keep the libraries here (default: a temp dir)")
    ap.add_argument("--fit", action="store_true", help="fit the weights on the fit library and print them")
    ap.add_argument("--group-size", type=int, default=0, help="rank the original with this many - 1 of its copies "
                    "at a time (default 0: the whole group of 6)")
    a = ap.parse_args()
    work = a.work or Path(tempfile.mkdtemp(prefix="keeper-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    if a.group_size and (a.fit or os.environ.get("KEEPER_BENCH_MISSES")):
        ap.error("--fit and KEEPER_BENCH_MISSES take the whole groups (--group-size 0)")
    libs = {name: subgroups(library(name, work), a.group_size) for name in LIBRARIES}
    weights = keeper.WEIGHTS
    if a.fit:
        weights = fit([g for name in FITTED_ON for g in libs[name]])
        truth = json.loads((work / "fit" / "truth.json").read_text())
        keeper.TIE = tie_width(libs["fit"], [[truth["edits"].get(p, "") for p in g] for g in truth["groups"]], weights)
        print("WEIGHTS =", weights, "TIE =", keeper.TIE)
    print(f"{'library':10} {'dates':9} {'old rule':>9} {'new rule':>9}")
    for name, groups in libs.items():
        for dates, gs in (("as made", groups), ("shuffled", shuffled(groups))):
            new = accuracy(gs, lambda g: keeper.choose(g, weights).image_id)
            print(f"{name:10} {dates:9} {accuracy(gs, old_rule):9.2f} {new:9.2f}")
    if os.environ.get("KEEPER_BENCH_MISSES"):
        for name, groups in libs.items():
            if name in NEVER_LISTED:
                continue
            truth = json.loads((work / name / "truth.json").read_text())
            for g, paths in zip(groups, truth["groups"], strict=True):
                ch = keeper.choose(g, weights)
                if ch.image_id != g[0].id:
                    k = ch.image_id % 10
                    print(name, "kept", truth["edits"].get(paths[k]), "over the original;", ch.reason,
                          {kk: round(v, 2) for kk, v in keeper.evidence(g[k], keeper.usual(g)).items()},
                          {kk: round(v, 2) for kk, v in keeper.evidence(g[0], keeper.usual(g)).items()})


if __name__ == "__main__":
    main()
