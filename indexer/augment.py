"""Copy-detection edits on PIL images (no torch): what a copy of a photo may have gone through.

Used to make training views (indexer.training) and calibration positives (indexer.calibrate).
Each family is ``fn(im: RGB PIL.Image, r: random.Random) -> RGB PIL.Image``; ``random_edit``
chains one to three of them. Ranges are deliberately wider than, and not the same as, the
public benchmark's (../shared/eval/edits.py), and there are families it does not have
(perspective, sharpen, posterize, screenshot, vflip, gamma, hue), so calibration and training
do not fit one edit list.
"""
from __future__ import annotations

import io
import os
import random
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

from indexer.decode import decode_rgb, open_image
from indexer.errors import ImageTooLarge

Edit = Callable[[Image.Image, random.Random], Image.Image]

__all__ = ["FAMILIES", "Edit", "make_copies", "open_photo", "random_edit"]

WORDS = ["summer", "IMG", "family", "2024", "lol", "photo by", "share", "©", "trip", "best day", "#tbt", "wow"]


def _colour(r: random.Random) -> tuple[int, int, int]:
    return r.choice([(0, 0, 0), (255, 255, 255), (r.randint(0, 255), r.randint(0, 255), r.randint(0, 255))])


def crop(im: Image.Image, r: random.Random) -> Image.Image:
    """Crop/shift: keep 45-97% of each side (aspect may change)."""
    w, h = im.size
    if r.random() < 0.3:  # same fraction on both sides, keeps the aspect
        fw = fh = r.uniform(0.45, 0.97)
    else:
        fw, fh = r.uniform(0.45, 0.97), r.uniform(0.45, 0.97)
    cw, ch = max(8, int(w * fw)), max(8, int(h * fh))
    x, y = r.randint(0, w - cw), r.randint(0, h - ch)
    return im.crop((x, y, x + cw, y + ch))


def rotate(im: Image.Image, r: random.Random) -> Image.Image:
    angle = r.choice([-1, 1]) * r.uniform(1.5, 30)
    resample = r.choice([Image.Resampling.BILINEAR, Image.Resampling.BICUBIC, Image.Resampling.NEAREST])
    return im.rotate(angle, resample=resample, expand=r.random() < 0.5, fillcolor=_colour(r))


def rot90(im: Image.Image, r: random.Random) -> Image.Image:
    return im.transpose(r.choice([Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270]))


def hflip(im: Image.Image, r: random.Random) -> Image.Image:
    return ImageOps.mirror(im)


def vflip(im: Image.Image, r: random.Random) -> Image.Image:
    return ImageOps.flip(im)


def exposure(im: Image.Image, r: random.Random) -> Image.Image:
    """Brightness, contrast or gamma, alone or together."""
    if r.random() < 0.7:
        im = ImageEnhance.Brightness(im).enhance(r.choice([r.uniform(0.3, 0.8), r.uniform(1.2, 2.4)]))
    if r.random() < 0.6:
        im = ImageEnhance.Contrast(im).enhance(r.uniform(0.45, 1.8))
    if r.random() < 0.4:
        g = r.uniform(0.5, 2.0)
        im = im.point([min(255, int(255 * (i / 255) ** g + 0.5)) for i in range(256)] * 3)
    return im


def colour(im: Image.Image, r: random.Random) -> Image.Image:
    """Saturation change, a colour cast, or a hue rotation."""
    kind = r.random()
    if kind < 0.45:
        return ImageEnhance.Color(im).enhance(r.choice([r.uniform(0.0, 0.5), r.uniform(1.4, 3.0)]))
    if kind < 0.8:
        gains = [r.uniform(0.7, 1.3) for _ in range(3)]
        return Image.merge("RGB", [c.point(lambda v, g=g: min(255, int(v * g))) for c, g in zip(im.split(), gains)])
    h, s, v = im.convert("HSV").split()
    shift = r.randint(10, 245)
    return Image.merge("HSV", (h.point(lambda x: (x + shift) % 256), s, v)).convert("RGB")


def grayscale(im: Image.Image, r: random.Random) -> Image.Image:
    g = ImageOps.grayscale(im)
    if r.random() < 0.25:  # sepia-ish
        return ImageOps.colorize(g, (20, 10, 0), (255, 240, 200))
    return g.convert("RGB")


def jpeg(im: Image.Image, r: random.Random) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=r.randint(5, 50), subsampling=r.choice([0, 1, 2]))
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def resize(im: Image.Image, r: random.Random) -> Image.Image:
    f = r.choice([r.uniform(0.1, 0.5), r.uniform(1.2, 2.5)])
    resample = r.choice([Image.Resampling.NEAREST, Image.Resampling.BILINEAR, Image.Resampling.BICUBIC,
                         Image.Resampling.LANCZOS])
    return im.resize((max(12, int(im.width * f)), max(12, int(im.height * f))), resample)


def blur(im: Image.Image, r: random.Random) -> Image.Image:
    if r.random() < 0.7:
        return im.filter(ImageFilter.GaussianBlur(r.uniform(0.8, 5.0)))
    return im.filter(ImageFilter.BoxBlur(r.uniform(1.0, 4.0)))


def sharpen(im: Image.Image, r: random.Random) -> Image.Image:
    return im.filter(ImageFilter.UnsharpMask(radius=r.uniform(1, 4), percent=r.randint(80, 250), threshold=2))


def noise(im: Image.Image, r: random.Random) -> Image.Image:
    rng = np.random.default_rng(r.getrandbits(32))
    a = np.asarray(im, dtype=np.float32)
    if r.random() < 0.7:  # gaussian
        a = a + rng.normal(0, r.uniform(4, 30), a.shape if r.random() < 0.7 else a.shape[:2] + (1,))
    else:  # salt and pepper
        mask = rng.random(a.shape[:2]) < r.uniform(0.005, 0.05)
        a[mask] = rng.choice([0.0, 255.0], size=(int(mask.sum()), 1))
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def posterize(im: Image.Image, r: random.Random) -> Image.Image:
    return ImageOps.posterize(im, r.randint(2, 5))


def text(im: Image.Image, r: random.Random) -> Image.Image:
    """A caption bar (top or bottom), a watermark, or scattered text/emoji-like blobs."""
    im = im.copy()
    d = ImageDraw.Draw(im)
    w, h = im.size
    size = max(10, int(h * r.uniform(0.04, 0.12)))
    kind = r.random()
    if kind < 0.4:
        bar = int(h * r.uniform(0.08, 0.25))
        top = r.random() < 0.4
        y0 = 0 if top else h - bar
        d.rectangle((0, y0, w, y0 + bar), fill=_colour(r))
        d.text((r.randint(2, max(3, w // 4)), y0 + bar // 4), " ".join(r.sample(WORDS, 3)),
               fill=_colour(r), font_size=size)
    elif kind < 0.75:
        for _ in range(r.randint(1, 6)):
            d.text((r.randint(0, max(1, w * 2 // 3)), r.randint(0, max(1, h - size))), r.choice(WORDS),
                   fill=_colour(r), font_size=size)
    else:
        for _ in range(r.randint(1, 4)):
            s = int(min(w, h) * r.uniform(0.05, 0.18))
            x, y = r.randint(0, max(1, w - s)), r.randint(0, max(1, h - s))
            d.ellipse((x, y, x + s, y + s), fill=_colour(r))
    return im


def border(im: Image.Image, r: random.Random) -> Image.Image:
    """Letterbox or frame: uneven padding on a plain canvas, or a blurred copy behind (story style)."""
    w, h = im.size
    l, t, rt, b = (int(s * r.uniform(0.0, 0.35)) for s in (w, h, w, h))
    if r.random() < 0.5:  # letterbox to a square or tall canvas
        side = max(w, h) if r.random() < 0.6 else None
        if side:
            l = rt = (side - w) // 2 + int(w * r.uniform(0, 0.05))
            t = b = (side - h) // 2 + int(h * r.uniform(0, 0.05))
    size = (w + l + rt, h + t + b)
    if r.random() < 0.25:
        canvas = im.resize(size).filter(ImageFilter.GaussianBlur(12))
    else:
        canvas = Image.new("RGB", size, _colour(r))
    canvas.paste(im, (l, t))
    return canvas


def screenshot(im: Image.Image, r: random.Random) -> Image.Image:
    """The photo shown smaller inside an app/phone screen: bars above and below, off-centre."""
    w, h = im.size
    scale = r.uniform(0.5, 0.95)
    shown = im.resize((max(8, int(w * scale)), max(8, int(h * scale))), Image.Resampling.BILINEAR)
    cw = int(w * r.uniform(1.0, 1.15))
    ch = int(shown.height / r.uniform(0.45, 0.85))
    bg = r.choice([(255, 255, 255), (18, 18, 18), (240, 240, 245)])
    canvas = Image.new("RGB", (cw, ch), bg)
    d = ImageDraw.Draw(canvas)
    bar = int(ch * r.uniform(0.04, 0.1))
    d.rectangle((0, 0, cw, bar), fill=_colour(r))
    d.rectangle((0, ch - bar, cw, ch), fill=_colour(r))
    d.text((6, bar // 4), f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}", fill=(128, 128, 128),
           font_size=max(8, bar // 2))
    y = r.randint(bar, max(bar, ch - bar - shown.height))
    canvas.paste(shown, ((cw - shown.width) // 2, y))
    return canvas


def perspective(im: Image.Image, r: random.Random) -> Image.Image:
    """A mild keystone, as when a printed photo or a screen is photographed."""
    w, h = im.size
    m = r.uniform(0.03, 0.15)
    pts = [(r.uniform(0, m) * w, r.uniform(0, m) * h), (w - r.uniform(0, m) * w, r.uniform(0, m) * h),
           (w - r.uniform(0, m) * w, h - r.uniform(0, m) * h), (r.uniform(0, m) * w, h - r.uniform(0, m) * h)]
    return im.transform((w, h), Image.Transform.QUAD, [c for p in pts for c in p], Image.Resampling.BILINEAR,
                        fillcolor=_colour(r))


FAMILIES: dict[str, Edit] = {
    "crop": crop, "rotate": rotate, "rot90": rot90, "hflip": hflip, "vflip": vflip,
    "exposure": exposure, "colour": colour, "grayscale": grayscale, "jpeg": jpeg, "resize": resize,
    "blur": blur, "sharpen": sharpen, "noise": noise, "posterize": posterize, "text": text,
    "border": border, "screenshot": screenshot, "perspective": perspective,
}
# vflip and posterize are rarer in real libraries; keep them but draw them less often
WEIGHTS: dict[str, float] = {name: 1.0 for name in FAMILIES} | {"vflip": 0.4, "posterize": 0.5, "sharpen": 0.6}


def random_edit(im: Image.Image, r: random.Random, *, families: dict[str, Edit] | None = None,
                max_chain: int = 3) -> tuple[Image.Image, list[str]]:
    """Apply a chain of 1..max_chain distinct edits; return the edited image and the family names."""
    families = families or FAMILIES
    names = sorted(families)
    k = r.choices([1, 2, 3][:max_chain], weights=[45, 35, 20][:max_chain])[0]
    chain: list[str] = []
    while len(chain) < k:
        name = r.choices(names, weights=[WEIGHTS.get(n, 1.0) for n in names])[0]
        if name not in chain:
            chain.append(name)
    for name in chain:
        im = families[name](im, r)
        if im.mode != "RGB":
            im = im.convert("RGB")
    return im, chain


def make_copies(im: Image.Image, n: int, r: random.Random, **kw) -> list[tuple[Image.Image, list[str]]]:
    return [random_edit(im, r, **kw) for _ in range(n)]


def open_photo(path: str | os.PathLike, max_side: int = 640, *, max_pixels: int | None = None) -> Image.Image:
    """Open a photo as serving decodes it (``indexer.decode.open_image`` + ``decode_rgb``: transparency on
    white, 16-bit rescaled, palette/CMYK converted, EXIF orientation), shrunk so its long side <= max_side.

    JPEGs draft-decode to about ``max_side`` (serving decodes to about the model input: a speed choice).
    Raises an ``ImageError`` subclass for an empty, unreadable, non-image, corrupt or oversized file
    (over ``max_pixels``; default: Settings' ``max_pixels``), and ImageTooLarge when memory runs out."""
    if max_pixels is None:
        from indexer.config import Settings

        max_pixels = Settings.model_fields["max_pixels"].default
    im = open_image(path, max_pixels)
    w, h = im.size
    try:
        im = decode_rgb(im, max_side)
    except MemoryError as exc:  # not corruption: too big for this machine, so skipped like an oversized file
        raise ImageTooLarge(f"{w}x{h}: not enough memory to decode") from exc
    if max(im.size) > max_side:
        im.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    return im
