#!/usr/bin/env python3
"""The frame test of the link rule on our own recipes: one photo in two frames against two photos in one frame.

    python bench/reframes.py [--photos 60] [--seed 0]

A photo put in another frame, app window or caption band keeps its keypoints, so an affine fit holds; but the
two frames around it differ, and where they are large the content agreement of the whole overlap falls under
``verify_min_agreement``. The rule's frame test (``indexer.linkrule.reframed``) then asks the cells inside the
inliers' bounding box alone (``verify.held_agreement``: the box must hold ``linkrule.FRAME_SHARE`` of the overlap
and be centred in the picture). Everything here is built from the confuser benchmark's *tune* inputs (the train-split
photos held out from the model's training, its tune frames, chromes and captions), never from the public library or
the held-out split, and decided on features as the decode workers compute them (JPEG q90):

- copies: each photo in two different tune frames, in two app chromes, under two caption styles;
- apart: two different photos in the same frame, the same chrome, or under the same caption (a plain bar and a
  tall band of about 44 % of the photo's height, which puts a shared overlay near the middle), or with the same
  big sticker (the tune logo on an opaque card, 55-70 % of the width) at their centre, or under the same banner
  (a third tune photo across the top, 50-130 % of their height: over half the picture when tallest);
- collage: one photo pasted at the centre (55 % of each side) of two different photos. The frame test cannot tell
  this from a photo in two frames, and links it: a known limit, measured here (the group page names such a pair
  "one photo in two frames", so a person sees that the surroundings differ).

Printed per recipe: pairs with a fit of ``verify_min_inliers`` both ways (the only pairs the frame test is asked
about), those linked by any evidence, those linked by the frame test, and the highest and lowest agreement inside
the boxes where the box is large and central enough (``-`` when none is).
"""
from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Callable
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import confusers as C
from bench.softcopies import features_of
from indexer import linkrule, verify
from indexer.config import Settings
from indexer.features import PhotoFeatures

QUALITY = 90
Overlay = Callable[[Image.Image, random.Random], Image.Image]


def tall_bar(im: Image.Image, text: str) -> Image.Image:
    """``im`` above a black caption band of about 44 % of its height: a shared overlay that reaches the middle."""
    out = Image.new("RGB", (im.width, int(im.height * 1.22)), (0, 0, 0))
    out.paste(im, (0, 0))
    return C.caption_bar(out, text, random.Random(0), "tune")


def sticker(im: Image.Image, r: random.Random) -> Image.Image:
    """``im`` with the tune logo on an opaque dark card, 55-70 % of its width, at its centre."""
    w, h = im.size
    lw = int(w * r.uniform(0.55, 0.7))
    card = Image.new("RGBA", (lw + 20, lw // 3 + 20), (30, 30, 60, 255))
    card.alpha_composite(C._logo(max(16, lw // 3)).resize((lw, lw // 3)), (10, 10))
    out = im.convert("RGBA")
    out.alpha_composite(card, ((w - card.width) // 2, (h - card.height) // 2))
    return out.convert("RGB")


def under_banner(banner: Image.Image, photo: Image.Image, tall: float) -> Image.Image:
    """``photo`` under ``banner``, which spans its width and ``tall`` times its height."""
    w, h = photo.size
    out = Image.new("RGB", (w, h + int(h * tall)))
    out.paste(banner.resize((w, int(h * tall))), (0, 0))
    out.paste(photo, (0, int(h * tall)))
    return out


def collage(background: Image.Image, photo: Image.Image) -> Image.Image:
    """``photo`` pasted at the centre of ``background``, 55 % of each of its sides."""
    out = background.copy()
    inner = photo.resize((int(out.width * 0.55), int(out.height * 0.55)))
    out.paste(inner, ((out.width - inner.width) // 2, (out.height - inner.height) // 2))
    return out


def overlays() -> dict[str, list[Overlay]]:
    """The tune overlays by kind: a copy is one photo under two of a kind; apart is two photos under one."""
    text = C.CAPTIONS["tune"][0]
    return {
        "frame": list(C.FRAMES["tune"].values()),
        "chrome": list(C.CHROMES["tune"].values()),
        "caption": [lambda im, r: C.caption_bar(im, text, r, "tune"), lambda im, r: C.caption_meme(im, text, r, "tune")],
        "tall caption": [lambda im, r: tall_bar(im, text)],
        "sticker": [sticker],
    }


def held(a: PhotoFeatures, b: PhotoFeatures, fits: tuple[verify.Fit, verify.Fit]) -> float | None:
    """The lower agreement inside the two inliers' boxes, where both boxes are large and central enough."""
    found = [verify.held_agreement(a.grey, b.grey, fits[0]), verify.held_agreement(b.grey, a.grey, fits[1])]
    if any(h is None or share < linkrule.FRAME_SHARE or not centred for h, share, centred in found):
        return None
    return min(h for h, _, _ in found)  # type: ignore[type-var]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rule = linkrule.rule_of(Settings(data_dir=Path("/nonexistent")), 0.6)  # geometry does not use the threshold
    r = random.Random(a.seed)
    photos = [C.photo(p) for p in C.split_photos("tune")[:a.photos]]
    rows: dict[str, list[tuple[str | None, bool, float | None]]] = {}

    def ask(name: str, x: Image.Image, y: Image.Image) -> None:
        fx, fy = features_of(x, QUALITY), features_of(y, QUALITY)
        check = linkrule.geometry(rule, fx, fy)
        if check is None or check[0] < rule.min_inliers or check[2] is None:
            return
        ev = linkrule.decide(rule, rule.threshold, fx, fy)
        rows.setdefault(name, []).append((ev.kind if ev else None, ev is not None and ev.kind == "framed",
                                          held(fx, fy, check[2])))

    for kind, fns in overlays().items():
        for i, im in enumerate(photos):
            if len(fns) > 1:
                f, g = r.sample(fns, 2)
                ask(f"copy: one photo in two ({kind})", f(im, r), g(im, r))
            other = photos[(i + 1 + r.randrange(len(photos) - 1)) % len(photos)]
            f = r.choice(fns)
            ask(f"apart: two photos in one ({kind})", f(im, r), f(other, r))
    for i, im in enumerate(photos):
        x, y = (photos[(i + 1 + r.randrange(len(photos) - 1)) % len(photos)] for _ in range(2))
        ask("collage: one photo at the centre of two others", collage(x, im), collage(y, im))
        tall = r.uniform(0.5, 1.3)
        ask("apart: two photos under one banner photo", under_banner(x, im, tall), under_banner(x, y.resize(im.size), tall))
    print(f"frame test at agreement {rule.frame_agreement:g} inside the inliers' box (at least {linkrule.FRAME_SHARE:g}"
          f" of the overlap, centred), {a.photos} tune photos, seed {a.seed}\n")
    print("| recipe | pairs with a fit | linked | by the frame test | box agreement lowest | highest |")
    print("|---|---|---|---|---|---|")
    for name in sorted(rows):
        xs = rows[name]
        hs = [h for _, _, h in xs if h is not None]
        lo, hi = (f"{min(hs):.3f}", f"{max(hs):.3f}") if hs else ("-", "-")
        print(f"| {name} | {len(xs)} | {sum(k is not None for k, _, _ in xs)} | {sum(f for _, f, _ in xs)} | {lo} | {hi} |")


if __name__ == "__main__":
    main()
