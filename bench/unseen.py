#!/usr/bin/env python3
"""A library of edits that no recipe of ours, the public one or the model's training has: a check of trust on
copies and confusers we never tuned on (bench/README.md, "Unseen edits").

    python bench/unseen.py OUT [--edits first|second|third] [--split eval|all] [--dup-sources 60] [--copies 3] [--seed 41]

The eval split of ../shared (never in the model's training, never tuned on by the link rule; ``--split all`` for
a library at scale, as the public recipe's 10,000-file one) in a random order:
the first ``--dup-sources`` photos with ``--copies`` copies each, every copy one or two of the edits below; of
the other photos, every other one is in the library only as an edited copy (its original absent), so the same
sticker sheet, mosaic or film look also sits on different photos. Folders, names and formats as
``../shared/eval/make_library.py`` (its ``save``); ``OUT/truth.json`` in its format, so
``../shared/eval/score.py`` scores it with recall per edit.

stretch   one side scaled by 1.25-1.6 (a photo fitted to another aspect without keeping its proportions)
vintage   sepia tone, lifted blacks and a dark vignette (a phone app's film look)
mosaic    pixelated: shrunk to 1/10-1/6 and enlarged again with nearest-neighbour (very low effective resolution)
stickers  3-6 round yellow faces (8-16 % of the width) laid anywhere on the photo (a chat app's sticker edit)
dither    reduced to a 12-48 colour palette with Floyd-Steinberg dithering (a GIF export)
hdr       equalised histogram and a strong unsharp mask (an "HDR" or "clarity" filter)
duotone   the grey levels mapped between two colours (a poster look)
zoom      the middle 62-80 % of each side, enlarged back to the photo's size (a digital zoom)

``--edits second``, written after the first set was measured and before anything was chosen on it, so that what is
then changed because of the first can be checked on edits it did not see:

bayer     3-6 levels a channel with a 4 x 4 ordered dither (a retro or print look)
oilpaint  a 5 or 7 px mode filter, smoothed (a painting filter)
glow      a blurred copy screened over the photo (bloom, a "dreamy" filter)
grain     monochrome film grain (sigma 6-14 grey levels)
chroma    red and blue shifted 2-4 px apart (chromatic aberration)
wordart   1-3 big coloured words with a white outline laid anywhere ("LOL", "WOW", ...)
lomo      contrast and saturation up, a strong dark vignette
enhance   enlarged 1.5-2x (Lanczos) and sharpened (an "enhance" or upscaling app)

``--edits third``, written after every choice of the link rule and keeper so far and measured once, at 9a95aa7:

blurfill   fitted whole into a 9:16 or 1:1 frame filled with its own enlarged, blurred copy (a story or post)
portrait   everything outside an ellipse around the middle blurred (a "portrait mode" background blur)
redact     1-2 rectangles (10-25 % of the width) pixelated (a face or a number plate hidden)
markup     2-4 red or yellow pen strokes: a circle, an arrow, a scribble (a markup tool)
straighten turned 2-8 degrees and cropped to the largest upright rectangle inside, back to the photo's size
social     3-5 rounds of shrinking to 70-95 % and JPEG at quality 55-80 (shared on from app to app)
tiltshift  the top and bottom thirds blurred more towards the edges, saturation up (a miniature look)
vhs        scan lines, each row shifted 0-3 px, colour smeared sideways (a retro video filter)
"""
from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO.parent / "shared" / "eval"))


def stretch(im: Image.Image, r: random.Random) -> Image.Image:
    f = r.uniform(1.25, 1.6)
    w, h = im.size
    return im.resize((round(w * f), h) if r.random() < 0.5 else (w, round(h * f)), Image.Resampling.BICUBIC)


def vintage(im: Image.Image, r: random.Random) -> Image.Image:
    g = np.asarray(ImageOps.grayscale(im), np.float32) / 255.0
    lift = r.uniform(0.08, 0.18)
    g = lift + (1 - lift) * g
    sepia = np.stack([g * 1.07, g * 0.87, g * 0.62], axis=-1)
    h, w = g.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    d = np.hypot((xx - w / 2) / (w / 2), (yy - h / 2) / (h / 2)) / np.sqrt(2)
    sepia *= (1 - r.uniform(0.35, 0.6) * d ** 2)[..., None]
    return Image.fromarray(np.clip(sepia * 255, 0, 255).astype(np.uint8))


def mosaic(im: Image.Image, r: random.Random) -> Image.Image:
    f = r.uniform(1 / 10, 1 / 6)
    small = im.resize((max(4, round(im.width * f)), max(4, round(im.height * f))), Image.Resampling.BOX)
    return small.resize(im.size, Image.Resampling.NEAREST)


def stickers(im: Image.Image, r: random.Random) -> Image.Image:
    im = im.copy()
    d = ImageDraw.Draw(im)
    w, h = im.size
    for _ in range(r.randint(3, 6)):
        s = round(w * r.uniform(0.08, 0.16))
        x, y = r.randint(0, max(0, w - s)), r.randint(0, max(0, h - s))
        d.ellipse((x, y, x + s, y + s), fill=(255, 204, 0), outline=(120, 80, 0), width=max(1, s // 20))
        e = max(1, s // 9)
        for ex in (x + s * 0.33, x + s * 0.67):
            d.ellipse((ex - e, y + s * 0.35 - e, ex + e, y + s * 0.35 + e), fill=(40, 30, 0))
        d.arc((x + s * 0.25, y + s * 0.35, x + s * 0.75, y + s * 0.8), 20, 160, fill=(40, 30, 0), width=max(1, s // 16))
    return im


def dither(im: Image.Image, r: random.Random) -> Image.Image:
    return im.quantize(colors=r.randint(12, 48), dither=Image.Dither.FLOYDSTEINBERG).convert("RGB")


def hdr(im: Image.Image, r: random.Random) -> Image.Image:
    return ImageOps.equalize(im).filter(ImageFilter.UnsharpMask(radius=r.uniform(3, 6), percent=r.randint(120, 220)))


def duotone(im: Image.Image, r: random.Random) -> Image.Image:
    dark = tuple(r.randint(0, 90) for _ in range(3))
    light = tuple(r.randint(170, 255) for _ in range(3))
    return ImageOps.colorize(ImageOps.grayscale(im), dark, light)


def zoom(im: Image.Image, r: random.Random) -> Image.Image:
    w, h = im.size
    k = r.uniform(0.62, 0.8)
    cw, ch = round(w * k), round(h * k)
    x, y = r.randint(0, w - cw), r.randint(0, h - ch)
    return im.crop((x, y, x + cw, y + ch)).resize((w, h), Image.Resampling.BICUBIC)


FAMILIES = {"stretch": stretch, "vintage": vintage, "mosaic": mosaic, "stickers": stickers, "dither": dither,
            "hdr": hdr, "duotone": duotone, "zoom": zoom}


# -- the second set, written before any choice was made on the first (``--edits second``) -------------------
_BAYER = np.array([[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]], np.float32) / 16 - 0.5


def ordered_dither(im: Image.Image, levels: int) -> Image.Image:
    """``levels`` levels a channel through the 4 x 4 Bayer matrix."""
    a = np.asarray(im, np.float32) / 255
    h, w = a.shape[:2]
    t = np.tile(_BAYER, (h // 4 + 1, w // 4 + 1))[:h, :w, None]
    q = np.round(a * (levels - 1) + t) / (levels - 1)
    return Image.fromarray(np.clip(q * 255, 0, 255).astype(np.uint8))


def bayer(im: Image.Image, r: random.Random) -> Image.Image:
    return ordered_dither(im, r.randint(3, 6))


def oilpaint(im: Image.Image, r: random.Random) -> Image.Image:
    return im.filter(ImageFilter.ModeFilter(r.choice([5, 7]))).filter(ImageFilter.SMOOTH_MORE)


def glow(im: Image.Image, r: random.Random) -> Image.Image:
    a = np.asarray(im, np.float32) / 255
    b = np.asarray(im.filter(ImageFilter.GaussianBlur(max(im.size) * r.uniform(0.01, 0.03))), np.float32) / 255
    k = r.uniform(0.3, 0.6)
    screen = 1 - (1 - a) * (1 - k * b)
    return Image.fromarray(np.clip(screen * 255, 0, 255).astype(np.uint8))


def grain(im: Image.Image, r: random.Random) -> Image.Image:
    a = np.asarray(im, np.float32)
    n = np.random.default_rng(r.getrandbits(32)).normal(0, r.uniform(6, 14), a.shape[:2])[..., None]
    return Image.fromarray(np.clip(a + n, 0, 255).astype(np.uint8))


def chroma(im: Image.Image, r: random.Random) -> Image.Image:
    d = r.randint(2, 4)
    red, green, blue = im.split()
    return Image.merge("RGB", (red.transform(im.size, Image.Transform.AFFINE, (1, 0, d, 0, 1, 0)), green,
                               blue.transform(im.size, Image.Transform.AFFINE, (1, 0, -d, 0, 1, 0))))


def wordart(im: Image.Image, r: random.Random) -> Image.Image:
    from PIL import ImageFont

    im = im.copy()
    d = ImageDraw.Draw(im)
    w, h = im.size
    for word in r.sample(["LOL", "WOW", "omg", "YES!", "cute", "epic", "mood"], k=r.randint(1, 3)):
        f = ImageFont.load_default(size=round(w * r.uniform(0.07, 0.14)))
        x, y = r.randint(0, w * 2 // 3), r.randint(0, h * 4 // 5)
        colour = tuple(r.randint(0, 255) for _ in range(3))
        d.text((x, y), word, font=f, fill=colour, stroke_width=max(1, w // 150), stroke_fill=(255, 255, 255))
    return im


def lomo(im: Image.Image, r: random.Random) -> Image.Image:
    from PIL import ImageEnhance

    im = ImageEnhance.Color(ImageEnhance.Contrast(im).enhance(r.uniform(1.3, 1.6))).enhance(r.uniform(1.2, 1.6))
    a = np.asarray(im, np.float32)
    h, w = a.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    d = np.hypot((xx - w / 2) / (w / 2), (yy - h / 2) / (h / 2)) / np.sqrt(2)
    return Image.fromarray(np.clip(a * (1 - r.uniform(0.5, 0.8) * d ** 3)[..., None], 0, 255).astype(np.uint8))


def enhance(im: Image.Image, r: random.Random) -> Image.Image:
    f = r.choice([1.5, 2.0])
    big = im.resize((round(im.width * f), round(im.height * f)), Image.Resampling.LANCZOS)
    return big.filter(ImageFilter.UnsharpMask(radius=2, percent=r.randint(60, 120), threshold=2))


SECOND = {"bayer": bayer, "oilpaint": oilpaint, "glow": glow, "grain": grain, "chroma": chroma, "wordart": wordart,
          "lomo": lomo, "enhance": enhance}


# -- the third set, written after every choice so far and measured once (``--edits third``) ------------------
def blurfill(im: Image.Image, r: random.Random) -> Image.Image:
    w, h = im.size
    fw, fh = (w, round(w * 16 / 9)) if r.random() < 0.5 else (max(w, h), max(w, h))
    k = max(fw / w, fh / h)
    ground = im.resize((round(w * k), round(h * k)), Image.Resampling.BILINEAR)
    x, y = (ground.width - fw) // 2, (ground.height - fh) // 2
    frame = ground.crop((x, y, x + fw, y + fh)).filter(ImageFilter.GaussianBlur(max(fw, fh) * 0.03))
    s = min(fw / w, fh / h)
    fitted = im.resize((round(w * s), round(h * s)), Image.Resampling.LANCZOS)
    frame.paste(fitted, ((fw - fitted.width) // 2, (fh - fitted.height) // 2))
    return frame


def _ellipse_mask(size: tuple[int, int], rx: float, ry: float, feather: float) -> np.ndarray:
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    d = np.hypot((xx - w / 2) / (rx * w / 2), (yy - h / 2) / (ry * h / 2))
    return np.clip((1 + feather - d) / feather, 0, 1)[..., None]


def portrait(im: Image.Image, r: random.Random) -> Image.Image:
    a = np.asarray(im, np.float32)
    b = np.asarray(im.filter(ImageFilter.GaussianBlur(max(im.size) * r.uniform(0.01, 0.02))), np.float32)
    m = _ellipse_mask(im.size, r.uniform(0.45, 0.65), r.uniform(0.55, 0.8), 0.25)
    return Image.fromarray(np.clip(a * m + b * (1 - m), 0, 255).astype(np.uint8))


def redact(im: Image.Image, r: random.Random) -> Image.Image:
    im = im.copy()
    w, h = im.size
    for _ in range(r.randint(1, 2)):
        bw = round(w * r.uniform(0.1, 0.25))
        bh = min(h, round(bw * r.uniform(0.5, 1.2)))
        x, y = r.randint(0, w - bw), r.randint(0, h - bh)
        box = im.crop((x, y, x + bw, y + bh))
        block = max(2, bw // r.randint(5, 9))
        small = box.resize((max(1, bw // block), max(1, bh // block)), Image.Resampling.BILINEAR)
        im.paste(small.resize(box.size, Image.Resampling.NEAREST), (x, y))
    return im


def markup(im: Image.Image, r: random.Random) -> Image.Image:
    im = im.copy()
    d = ImageDraw.Draw(im)
    w, h = im.size
    width = max(2, round(w * r.uniform(0.006, 0.012)))
    for _ in range(r.randint(2, 4)):
        colour = r.choice([(230, 30, 30), (250, 210, 20)])
        kind = r.choice(["circle", "arrow", "scribble"])
        cx, cy = r.uniform(0.15, 0.85) * w, r.uniform(0.15, 0.85) * h
        if kind == "circle":
            rx, ry = r.uniform(0.06, 0.15) * w, r.uniform(0.06, 0.15) * h
            d.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), outline=colour, width=width)
        elif kind == "arrow":
            ang = r.uniform(0, 2 * np.pi)
            ln = r.uniform(0.12, 0.3) * w
            ex, ey = cx + ln * np.cos(ang), cy + ln * np.sin(ang)
            d.line((cx, cy, ex, ey), fill=colour, width=width)
            for turn in (2.6, -2.6):
                d.line((ex, ey, ex + 0.3 * ln * np.cos(ang + turn), ey + 0.3 * ln * np.sin(ang + turn)),
                       fill=colour, width=width)
        else:
            pts = [(cx, cy)]
            for _ in range(r.randint(5, 10)):
                pts.append((pts[-1][0] + r.uniform(-0.06, 0.06) * w, pts[-1][1] + r.uniform(-0.06, 0.06) * h))
            d.line(pts, fill=colour, width=width, joint="curve")
    return im


def straighten(im: Image.Image, r: random.Random) -> Image.Image:
    w, h = im.size
    t = np.radians(r.uniform(2, 8))
    turned = im.rotate(np.degrees(t) * r.choice([-1, 1]), resample=Image.Resampling.BICUBIC)
    # the largest upright rectangle of the photo's aspect inside it, turned by t about its centre
    k = 1 / (np.cos(t) + np.sin(t) * max(w / h, h / w))
    cw, ch = round(w * k), round(h * k)
    x, y = (w - cw) // 2, (h - ch) // 2
    return turned.crop((x, y, x + cw, y + ch)).resize((w, h), Image.Resampling.BICUBIC)


def social(im: Image.Image, r: random.Random) -> Image.Image:
    import io

    for _ in range(r.randint(3, 5)):
        f = r.uniform(0.7, 0.95)
        im = im.resize((max(16, round(im.width * f)), max(16, round(im.height * f))), Image.Resampling.BILINEAR)
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=r.randint(55, 80))
        im = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return im


def tiltshift(im: Image.Image, r: random.Random) -> Image.Image:
    from PIL import ImageEnhance

    a = np.asarray(im, np.float32)
    b = np.asarray(im.filter(ImageFilter.GaussianBlur(max(im.size) * r.uniform(0.008, 0.015))), np.float32)
    h = a.shape[0]
    y = np.abs(np.arange(h, dtype=np.float32) - h / 2) / (h / 2)
    m = np.clip((y - 1 / 3) / (1 / 3), 0, 1)[:, None, None]
    out = Image.fromarray(np.clip(a * (1 - m) + b * m, 0, 255).astype(np.uint8))
    return ImageEnhance.Color(out).enhance(r.uniform(1.2, 1.5))


def vhs(im: Image.Image, r: random.Random) -> Image.Image:
    a = np.asarray(im, np.float32).copy()
    rng = np.random.default_rng(r.getrandbits(32))
    shifts = np.round(np.convolve(rng.normal(0, 1.5, a.shape[0]), np.ones(5) / 5, "same")).astype(int)
    for row, s in enumerate(np.clip(shifts, -3, 3)):
        a[row] = np.roll(a[row], s, axis=0)
    smear = np.asarray(Image.fromarray(a.astype(np.uint8)).filter(ImageFilter.BoxBlur(2)), np.float32)
    a[..., 0], a[..., 2] = smear[..., 0], smear[..., 2]
    a[::2] *= r.uniform(0.8, 0.9)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


THIRD = {"blurfill": blurfill, "portrait": portrait, "redact": redact, "markup": markup, "straighten": straighten,
         "social": social, "tiltshift": tiltshift, "vhs": vhs}
EDIT_SETS = {"first": FAMILIES, "second": SECOND, "third": THIRD}


def build(out: Path, photos: list[Path], dup_sources: int, copies: int, seed: int, families: dict = FAMILIES) -> dict:
    from edits import compose
    from make_library import save

    r = random.Random(seed)
    root = out / "library"
    root.mkdir(parents=True, exist_ok=True)
    groups: list[list[str]] = []
    singles: list[str] = []
    edits: dict[str, str] = {}
    names = sorted(families)
    for i, src in enumerate(photos):
        im = Image.open(src).convert("RGB")
        if i >= dup_sources:
            if (i - dup_sources) % 2:
                chain = r.sample(names, k=1)
                im = compose(im, chain, r, families)
            singles.append(save(im, root, r))
            continue
        group = [save(im, root, r)]
        for _ in range(copies):
            chain = r.sample(names, k=r.choices([1, 2], weights=[65, 35])[0])
            copy = save(compose(im, chain, r, families), root, r)
            edits[copy] = "+".join(chain)
            group.append(copy)
        groups.append(group)
    truth = {"root": str(root), "groups": groups, "singles": singles, "edits": edits}
    import json

    (out / "truth.json").write_text(json.dumps(truth, indent=1))
    return truth


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--dup-sources", type=int, default=60)
    ap.add_argument("--copies", type=int, default=3)
    ap.add_argument("--seed", type=int, default=41)
    ap.add_argument("--split", default="eval", help="eval (default) or all: ../shared's 1,000 photos, most of them "
                    "in the model's training, for a library at scale")
    ap.add_argument("--edits", choices=sorted(EDIT_SETS), default="first", help="the first set (above), the second or the third")
    a = ap.parse_args()
    from make_library import split

    photos = split(a.split)
    random.Random(a.seed).shuffle(photos)
    truth = build(a.out, photos, a.dup_sources, a.copies, a.seed, EDIT_SETS[a.edits])
    n = sum(len(g) for g in truth["groups"]) + len(truth["singles"])
    print(f"{n} files, {len(truth['groups'])} duplicate groups, {len(truth['singles'])} singles in {truth['root']}")


if __name__ == "__main__":
    main()
