#!/usr/bin/env python3
"""Build a confuser library: different pictures that look alike, side by side with real copies, and its truth.

    python bench/confusers.py OUT [--split tune|heldout] [--seed 0] [--realimages /work/scratch/realimages]

OUT/library/ gets the files (random folders and names, mixed formats, as ../shared/eval/make_library.py lays
them out) and OUT/truth.json the truth in make_library.py's format: ``root``, ``groups`` (every file made from
one source picture is one group, its first file the original), ``singles``, ``edits`` (path -> what made that
copy, "+"-joined), plus ``classes`` (path -> family) and ``recipes`` (path -> the confuser recipe it carries),
so precision, recall and the worst group can be scored per family (bench/confusers_score.py).

A copy is the same picture after edits, with or without an overlay: the same photo under another caption, in
another frame or app window, with a watermark, as a thumbnail. Two files made from different pictures are
never a pair, however alike: the same caption, frame, app chrome or logo on two photos, two pages of one
manual, two gradients, two dogs, two heavily degraded photos.

Families (each has confusers and copies of some of its pictures):
  caption     the same caption text and style on different photos; one photo under two captions; copies
  frame       the same frame/mat/border around different photos; one photo in two frames; copies
  screenshot  different photos in the same app chrome (phone 1080-1170 px wide, desktop 1920-2560); the same
              photo in two chromes, and with the original
  watermark   the same logo or watermark on different photos; the photo without it; copies
  document    different pages of one real manual (the R manuals, rendered) and of one generated
              template (invoice, slide, receipt); copies (re-saved, scanned, photographed)
  lowtex      generated low-texture pictures: gradients, solid colours, skies, fog and night versions of
              photos; copies at other sizes
  wallpaper   real wallpapers and sample images from Debian and PyPI packages (bench/realimages.py), the smooth
              abstract ones included; real copies: the same wallpaper at several resolutions and its preview
  subject     the same kind of subject: ImageNet photos of related classes (dogs, birds, ...) and clip-art cut-outs
              of one category (tuxpaint stamps); copies
  burst       different shots of one object or scene (../shared/data/realdup simbench and imagededup UKBench);
              copies, some real (imagededup's flipped/resized/rotated UKBench photo)
  degraded    heavily degraded photos (tiny, mosaic, blocky JPEG, heavy blur), each of another photo: must stay
              apart; moderately degraded copies beside their originals
  tinyflat    1-pixel and tiny PNGs, flat images up to 15000x15000 (issue 28); byte-identical copies
  textcard    text on one account's or app's ground, other text on each: quote cards on a gradient, dark chat or
              notes screenshots, code in a dark editor or terminal; copies of every other card

The split. ``--split tune`` is for designing and tuning the link rule: its photos are the 200 train-split
photos held out from the shipped model's training (indexer.training.split.split_photos on
configs/arcface-kd-stage1.toml, the block calibration uses), part A of the real images (bench/realimages.py
splits them by variant set, per source), the first UKBench objects, the R manuals R-admin/R-data/R-exts/R-intro,
and the tuning recipes below. ``--split heldout`` is for measuring only: the eval split's 200 photos (allowed for
this measurement library; never tune on it), part B of the real images, the other UKBench objects and Holidays
scene, the other R manuals, and only the held-out recipes:

  family      tune recipes                                   held-out recipes
  caption     meme (top/bottom outlined), black bar          tweet band, story box, subtitle; other texts/fonts
  frame       polaroid, mat, film strip                      ornate border, rounded card, scrapbook (tilted, taped)
  screenshot  phone gallery (light), desktop viewer (dark)   phone social feed (dark), desktop browser (light)
  watermark   corner logo, tiled diagonal text               centre logo, stock grid, signature
  document    invoice template                               slide and receipt templates
              copies: scanned; photographed under a lamp     copies: photographed (keystone, warm light)
  lowtex      linear gradient, solid, sky, night             radial/three-stop gradient, soft blobs, sunset, fog
  textcard    centred quote on a linear gradient, dark       left-set quote on a radial gradient, dark notes
              chat bubbles, dark editor with line numbers    list, terminal
  degraded    tiny, mosaic, gaussian blur                    blocky JPEG, box blur + dark, posterized thumbnail
  copies      re-save, shrink, crop, brightness, PNG         WebP, thumbnail, pad, tilt, colour cast, sharpen

Fonts come from Debian's fonts-dejavu and fonts-liberation (tune: DejaVu Sans, Liberation Sans, Quicksand;
held-out: the serif, mono and condensed faces).
"""
from __future__ import annotations

import argparse
import io
import json
import math
import random
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
PHOTOS = SHARED / "data" / "photos"
REALDUP = SHARED / "data" / "realdup"
REALIMAGES = Path("/work/scratch/realimages")
FONTS = Path("/usr/share/fonts/truetype")
SPLITS = ("tune", "heldout")

# ImageNet class-index ranges (sorted file name) of related subjects, as bench/quality.py's COARSE_CLASSES
SUBJECTS = {"dog": [(151, 268)], "bird": [(7, 24), (80, 100), (127, 146)], "insect": [(300, 326)],
            "reptile": [(33, 68)], "primate": [(365, 384)], "food": [(924, 969)], "car": [(407, 407), (436, 436),
            (468, 468), (511, 511), (609, 609), (627, 627), (656, 656), (661, 661), (717, 717), (751, 751),
            (817, 817)]}
TUXPAINT_CATEGORIES = ("animals", "food", "plants", "vehicles", "town", "household", "clothes")


# --- the library being written --------------------------------------------------------------------------

@dataclass
class Library:
    root: Path
    r: random.Random
    split: str
    groups: dict[str, list[str]] = field(default_factory=dict)  # source picture -> files, original first
    classes: dict[str, str] = field(default_factory=dict)
    edits: dict[str, str] = field(default_factory=dict)
    recipes: dict[str, str] = field(default_factory=dict)

    def _path(self, ext: str) -> Path:
        folder = self.root / self.r.choice(["2019", "2021", "2023", "phone", "export", "Downloads"]) / \
            f"{self.r.randint(1, 12):02d}"
        folder.mkdir(parents=True, exist_ok=True)
        while True:
            path = folder / f"IMG_{self.r.randint(0, 999999):06d}.{ext}"
            if not path.exists():
                return path

    def _record(self, path: Path, family: str, source: str, edit: str, recipe: str) -> str:
        rel = str(path.relative_to(self.root))
        members = self.groups.setdefault(source, [])
        if members:
            self.edits[rel] = edit or "copy"
        members.append(rel)
        self.classes[rel] = family
        if recipe:
            self.recipes[rel] = recipe
        return rel

    def add(self, im: Image.Image, family: str, source: str, edit: str = "", recipe: str = "",
            fmt: str | None = None) -> str:
        """Save ``im`` as a file of the picture ``source`` (its first file is the group's original)."""
        fmt = fmt or self.r.choices(["jpg", "png", "webp", "jpeg"], weights=[70, 10, 15, 5])[0]
        path = self._path(fmt)
        im = im.convert("RGB") if im.mode not in ("RGB", "L") else im
        if fmt in ("jpg", "jpeg"):
            im.save(path, "JPEG", quality=self.r.randint(78, 95))
        elif fmt == "webp":
            im.save(path, "WEBP", quality=self.r.randint(72, 92))
        else:
            im.save(path, "PNG")
        return self._record(path, family, source, edit, recipe)

    def add_file(self, src: Path, family: str, source: str, edit: str = "", recipe: str = "") -> str:
        """Copy a real file as it is (its bytes, its format)."""
        path = self._path(src.suffix.lower().lstrip(".") or "png")
        shutil.copyfile(src, path)
        return self._record(path, family, source, edit, recipe)

    def add_bytes(self, data: bytes, ext: str, family: str, source: str, edit: str = "", recipe: str = "") -> str:
        path = self._path(ext)
        path.write_bytes(data)
        return self._record(path, family, source, edit, recipe)

    def truth(self) -> dict:
        groups = [m for m in self.groups.values() if len(m) > 1]
        singles = [m[0] for m in self.groups.values() if len(m) == 1]
        return {"root": str(self.root), "split": self.split, "groups": groups, "singles": singles,
                "edits": self.edits, "classes": self.classes, "recipes": self.recipes}


# --- inputs of each split ---------------------------------------------------------------------------------

def split_photos(split: str) -> list[Path]:
    """tune: the train-split photos held out from the shipped model's training (its calibration block);
    heldout: the eval split (every fifth photo)."""
    files = sorted(PHOTOS.glob("*.JPEG"))
    if not files:
        raise SystemExit(f"no photos under {PHOTOS}")
    if split == "heldout":
        return files[::5]
    try:
        from indexer.training.config import load_config
        from indexer.training.split import split_photos as training_split
    except ImportError as exc:
        raise SystemExit(f"--split tune needs the train extra to find the held-out photos ({exc})") from exc
    cfg = load_config(ROOT / "configs" / "arcface-kd-stage1.toml", photos_dir=str(PHOTOS))
    return training_split(cfg)[1]


def class_index(path: Path) -> int:
    return sorted(p.name for p in PHOTOS.glob("*.JPEG")).index(path.name)


def real_images(realimages: Path, split: str) -> list[dict]:
    manifest = realimages / "manifest.json"
    if not manifest.exists():
        raise SystemExit(f"{manifest} missing: run bench/realimages.py first")
    m = json.loads(manifest.read_text())
    part = "A" if split == "tune" else "B"
    out = [dict(e, file=str(Path(m["root"]) / e["path"])) for e in m["images"] if e["part"] == part]
    return [e for e in out if Path(e["file"]).exists()]


def font(r: random.Random, split: str, size: int, bold: bool = True) -> ImageFont.FreeTypeFont:
    names = {"tune": ["dejavu/DejaVuSans-Bold.ttf", "liberation/LiberationSans-Bold.ttf", "quicksand/Quicksand-Bold.ttf"],
             "heldout": ["dejavu/DejaVuSerif-Bold.ttf", "liberation/LiberationSerif-Bold.ttf",
                         "liberation/LiberationMono-Bold.ttf", "dejavu/DejaVuSansCondensed-Bold.ttf"]}[split]
    if not bold:
        names = {"tune": ["dejavu/DejaVuSans.ttf", "liberation/LiberationSans-Regular.ttf"],
                 "heldout": ["dejavu/DejaVuSerif.ttf", "liberation/LiberationMono-Regular.ttf"]}[split]
    for name in r.sample(names, len(names)):
        if (FONTS / name).exists():
            return ImageFont.truetype(str(FONTS / name), size)
    return ImageFont.load_default(size)


def fixed_font(name: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONTS / name), size) if (FONTS / name).exists() else ImageFont.load_default(size)


def photo(path: Path) -> Image.Image:
    return ImageOps.exif_transpose(Image.open(path)).convert("RGB")


# --- copy edits (real copies; moderate, as a library holds them) -----------------------------------------

def pad(im: Image.Image, x: int, y: int, colour: tuple[int, int, int]) -> Image.Image:
    """``im`` on a canvas of ``colour``, ``x`` wider and ``y`` taller on each side (a letterbox, a plain frame)."""
    canvas = Image.new("RGB", (im.width + 2 * x, im.height + 2 * y), colour)
    canvas.paste(im.convert("RGB"), (x, y))
    return canvas


def _jpeg(im: Image.Image, q: int) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=q)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def _scale(im: Image.Image, f: float, resample=Image.Resampling.BILINEAR) -> Image.Image:
    return im.resize((max(1, round(im.width * f)), max(1, round(im.height * f))), resample)


COPY_EDITS: dict[str, dict[str, Callable[[Image.Image, random.Random], Image.Image]]] = {
    "tune": {
        "resave": lambda im, r: _jpeg(im, r.randint(45, 80)),
        "shrink": lambda im, r: _scale(im, r.uniform(0.4, 0.75)),
        "crop": lambda im, r: im.crop(_crop_box(im, r.uniform(0.85, 0.95), r)),
        "bright": lambda im, r: ImageEnhance.Brightness(im).enhance(r.choice([r.uniform(0.75, 0.9), r.uniform(1.1, 1.3)])),
        "png": lambda im, r: im.copy(),
    },
    "heldout": {
        "thumb": lambda im, r: _scale(im, min(1.0, r.randint(320, 480) / max(im.size)), Image.Resampling.LANCZOS),
        "pad": lambda im, r: ImageOps.expand(im, border=max(2, int(min(im.size) * r.uniform(0.03, 0.08))),
                                             fill=r.choice([(0, 0, 0), (255, 255, 255)])),
        "tilt": lambda im, r: _tilt(im, r.uniform(1.5, 4.0) * r.choice([-1, 1])),
        "cast": lambda im, r: Image.merge("RGB", [c.point(lambda v, g=g: min(255, int(v * g))) for c, g in
                                                  zip(im.split(), [r.uniform(0.88, 1.12) for _ in range(3)])]),
        "sharpen": lambda im, r: im.filter(ImageFilter.UnsharpMask(radius=2, percent=r.randint(80, 160))),
        "webp": lambda im, r: im.copy(),  # saved as WebP below
    },
}


def _crop_box(im: Image.Image, keep: float, r: random.Random) -> tuple[int, int, int, int]:
    w, h = im.size
    cw, ch = max(1, int(w * keep)), max(1, int(h * keep))
    x, y = r.randint(0, w - cw), r.randint(0, h - ch)
    return x, y, x + cw, y + ch


def _tilt(im: Image.Image, angle: float) -> Image.Image:
    out = im.rotate(angle, resample=Image.Resampling.BICUBIC, expand=False)
    m = math.sin(math.radians(abs(angle)))
    w, h = im.size
    dx, dy = int(h * m) + 1, int(w * m) + 1
    return out.crop((dx, dy, w - dx, h - dy)) if w > 2 * dx + 8 and h > 2 * dy + 8 else out


def perspective(im: Image.Image, quad: list[tuple[float, float]]) -> Image.Image:
    """The part of ``im`` inside ``quad`` (its corners: top left, top right, bottom right, bottom left, in pixels)
    stretched by one perspective transform onto the whole frame: a photo of the photo taken at an angle."""
    w, h = im.size
    rows, rhs = [], []
    for (x, y), (u, v) in zip([(0, 0), (w, 0), (w, h), (0, h)], quad, strict=True):
        rows += [[x, y, 1, 0, 0, 0, -u * x, -u * y], [0, 0, 0, x, y, 1, -v * x, -v * y]]
        rhs += [u, v]
    coeffs = np.linalg.solve(np.array(rows, float), np.array(rhs, float))
    return im.transform((w, h), Image.Transform.PERSPECTIVE, tuple(coeffs), Image.Resampling.BICUBIC)


def jittered_quad(w: int, h: int, k: float, r: random.Random) -> list[tuple[float, float]]:
    """The corners of a ``w`` x ``h`` frame (top left, top right, bottom right, bottom left), each moved inwards by
    up to ``k`` of the width and height at random: a quadrilateral for ``perspective``."""
    return [(r.uniform(0, k) * w, r.uniform(0, k) * h), (w - r.uniform(0, k) * w, r.uniform(0, k) * h),
            (w - r.uniform(0, k) * w, h - r.uniform(0, k) * h), (r.uniform(0, k) * w, h - r.uniform(0, k) * h)]


def copy_of(lib: Library, im: Image.Image, family: str, source: str, prefix: str = "") -> str:
    """One real copy of ``im`` (one or two of the split's copy edits) added to the picture ``source``."""
    edits = COPY_EDITS[lib.split]
    chain = lib.r.sample(sorted(edits), k=lib.r.choice([1, 1, 2]))
    for name in chain:
        im = edits[name](im, lib.r)
    fmt = "png" if "png" in chain else "webp" if "webp" in chain else None
    return lib.add(im, family, source, edit="+".join(([prefix] if prefix else []) + chain), fmt=fmt)


# --- overlays: captions, frames, app chrome, watermarks ----------------------------------------------------

CAPTIONS = {
    "tune": ["when the weekend finally arrives", "me at 3am", "nobody:", "monday mood", "this is fine",
             "happy birthday grandma!", "best trip ever", "who did this", "vacation mode: ON", "not again",
             "my plans vs reality", "tag someone who needs this"],
    "heldout": ["POV: you forgot your keys", "throwback to summer", "can't stop laughing", "love this place",
                "when mom says we have food at home", "guess where I am", "goals", "so proud of you",
                "weekend vibes only", "that moment when", "miss you already", "first day!"],
}


def _outlined(d: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, f, fill, stroke) -> None:
    d.text(xy, text, font=f, fill=fill, stroke_width=max(2, f.size // 12), stroke_fill=stroke, anchor="mm")


def _fitted(name: str, text: str, size: int, width: int) -> ImageFont.FreeTypeFont:
    """The font at ``size``, smaller when ``text`` would be wider than ``width``."""
    f = fixed_font(name, size)
    while size > 8 and f.getlength(text) > width:
        size = int(size * 0.9)
        f = fixed_font(name, size)
    return f


def caption_meme(im: Image.Image, text: str, r: random.Random, split: str) -> Image.Image:
    im = im.copy()
    d = ImageDraw.Draw(im)
    w, h = im.size
    top, _, bottom = text.partition(" ") if len(text) > 14 else (text, "", "")
    for line, y in ((top, h // 9), (bottom, h - h // 9)):
        if line:
            f = _fitted("dejavu/DejaVuSans-Bold.ttf", line.upper(), max(12, h // 9), int(w * 0.94))
            _outlined(d, (w // 2, y), line.upper(), f, "white", "black")
    return im


def caption_bar(im: Image.Image, text: str, r: random.Random, split: str) -> Image.Image:
    w, h = im.size
    bar = int(h * 0.18)
    out = Image.new("RGB", (w, h + bar), (0, 0, 0))
    out.paste(im, (0, 0))
    f = _fitted("liberation/LiberationSans-Bold.ttf", text, max(10, bar // 3), int(w * 0.94))
    ImageDraw.Draw(out).text((w // 2, h + bar // 2), text, font=f, fill="white", anchor="mm")
    return out


def caption_tweet(im: Image.Image, text: str, r: random.Random, split: str) -> Image.Image:
    w, h = im.size
    band = int(h * 0.32)
    out = Image.new("RGB", (w, h + band), (255, 255, 255))
    out.paste(im, (0, band))
    d = ImageDraw.Draw(out)
    d.ellipse((10, 10, 10 + band // 3, 10 + band // 3), fill=(29, 155, 240))
    d.text((20 + band // 3, 12), "@daily_feed", font=fixed_font("dejavu/DejaVuSerif-Bold.ttf", max(9, band // 8)),
           fill=(80, 80, 80))
    d.text((12, band // 2), text, font=_fitted("dejavu/DejaVuSerif.ttf", text, max(10, band // 5), w - 24), fill="black")
    return out


def caption_story(im: Image.Image, text: str, r: random.Random, split: str) -> Image.Image:
    im = im.convert("RGBA")
    w, h = im.size
    layer = Image.new("RGBA", im.size, (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    f = _fitted("liberation/LiberationSerif-Bold.ttf", text, max(10, h // 12), int(w * 0.85))
    box = d.textbbox((w // 2, int(h * 0.6)), text, font=f, anchor="mm")
    d.rounded_rectangle((box[0] - 12, box[1] - 8, box[2] + 12, box[3] + 8), radius=12, fill=(0, 0, 0, 150))
    d.text((w // 2, int(h * 0.6)), text, font=f, fill=(255, 255, 255, 255), anchor="mm")
    return Image.alpha_composite(im, layer).convert("RGB")


def caption_subtitle(im: Image.Image, text: str, r: random.Random, split: str) -> Image.Image:
    im = im.copy()
    w, h = im.size
    f = _fitted("liberation/LiberationMono-Bold.ttf", text, max(10, h // 14), int(w * 0.94))
    _outlined(ImageDraw.Draw(im), (w // 2, int(h * 0.88)), text, f, (255, 230, 0), "black")
    return im


CAPTION_STYLES = {"tune": {"meme": caption_meme, "bar": caption_bar},
                  "heldout": {"tweet": caption_tweet, "story": caption_story, "subtitle": caption_subtitle}}


def frame_polaroid(im: Image.Image, r: random.Random) -> Image.Image:
    w, h = im.size
    s, b = int(w * 0.06), int(h * 0.28)
    card = Image.new("RGB", (w + 2 * s, h + s + b), (250, 250, 246))
    card.paste(im, (s, s))
    bg = Image.new("RGB", (card.width + 60, card.height + 60), (70, 74, 80))
    bg.paste((40, 42, 46), (36, 36, 36 + card.width, 36 + card.height))
    bg.paste(card, (24, 24))
    return bg


def frame_mat(im: Image.Image, r: random.Random) -> Image.Image:
    w, h = im.size
    mat, wood = int(max(w, h) * 0.14), int(max(w, h) * 0.05)
    out = Image.new("RGB", (w + 2 * (mat + wood), h + 2 * (mat + wood)), (92, 60, 34))
    d = ImageDraw.Draw(out)
    for k in range(0, wood, 3):
        d.rectangle((k, k, out.width - k - 1, out.height - k - 1), outline=(110 + k % 20, 72, 40))
    d.rectangle((wood, wood, out.width - wood - 1, out.height - wood - 1), fill=(238, 232, 220))
    d.rectangle((wood + mat - 4, wood + mat - 4, wood + mat + w + 3, wood + mat + h + 3), fill=(205, 198, 185))
    out.paste(im, (wood + mat, wood + mat))
    return out


def frame_film(im: Image.Image, r: random.Random) -> Image.Image:
    w, h = im.size
    strip = int(h * 0.16)
    out = Image.new("RGB", (w + 40, h + 2 * strip), (12, 12, 12))
    out.paste(im, (20, strip))
    d = ImageDraw.Draw(out)
    hole_w, step = max(6, w // 30), max(14, w // 14)
    for x in range(8, out.width - hole_w, step):
        for y in (strip // 3, out.height - strip // 3 - strip // 3):
            d.rounded_rectangle((x, y, x + hole_w, y + strip // 3), radius=2, fill=(235, 225, 200))
    d.text((24, 2), "KODAK 400TX  24", font=fixed_font("dejavu/DejaVuSans-Bold.ttf", max(8, strip // 4)),
           fill=(230, 140, 40))
    return out


def frame_ornate(im: Image.Image, r: random.Random) -> Image.Image:
    w, h = im.size
    b = int(max(w, h) * 0.1)
    out = Image.new("RGB", (w + 2 * b, h + 2 * b), (120, 88, 20))
    d = ImageDraw.Draw(out)
    step = max(10, b // 2)
    for x in range(0, out.width, step):
        for y in list(range(0, b, step)) + list(range(out.height - b, out.height, step)):
            d.polygon([(x + step // 2, y), (x + step, y + step // 2), (x + step // 2, y + step), (x, y + step // 2)],
                      fill=(212, 175, 55), outline=(90, 60, 10))
    for y in range(b, out.height - b, step):
        for x in list(range(0, b, step)) + list(range(out.width - b, out.width, step)):
            d.polygon([(x + step // 2, y), (x + step, y + step // 2), (x + step // 2, y + step), (x, y + step // 2)],
                      fill=(212, 175, 55), outline=(90, 60, 10))
    out.paste(im, (b, b))
    return out


def frame_card(im: Image.Image, r: random.Random) -> Image.Image:
    w, h = im.size
    pad = int(max(w, h) * 0.12)
    out = Image.new("RGB", (w + 2 * pad, h + 2 * pad + pad), (233, 240, 250))
    d = ImageDraw.Draw(out)
    d.rounded_rectangle((pad + 10, pad + 10, pad + w + 10, pad + h + 10), radius=pad // 3, fill=(190, 198, 210))
    mask = Image.new("L", im.size, 0)
    ImageDraw.Draw(mask).rounded_rectangle((0, 0, w - 1, h - 1), radius=pad // 3, fill=255)
    out.paste(im, (pad, pad), mask)
    d.text((pad, pad + h + pad // 3), "Memories \u00b7 2023", font=fixed_font("dejavu/DejaVuSerif-Bold.ttf", max(10, pad // 3)),
           fill=(60, 70, 90))
    return out


def frame_scrapbook(im: Image.Image, r: random.Random) -> Image.Image:
    w, h = im.size
    rng = np.random.default_rng(7)  # the same paper for every photo: that is the confuser
    paper = Image.fromarray((rng.normal(228, 6, (h // 4 + 40, w // 4 + 40, 3))).clip(0, 255).astype(np.uint8))
    paper = paper.resize((int(w * 1.5), int(h * 1.5)), Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(1))
    card = ImageOps.expand(im, border=max(4, w // 40), fill=(255, 255, 255))
    angle = 6
    rot = card.convert("RGBA").rotate(angle, expand=True, resample=Image.Resampling.BICUBIC)
    out = paper.convert("RGBA")
    out.alpha_composite(rot, ((out.width - rot.width) // 2, (out.height - rot.height) // 2))
    d = ImageDraw.Draw(out)
    for cx, cy in ((out.width // 2 - w // 3, (out.height - rot.height) // 2 + 6),
                   (out.width // 2 + w // 3, (out.height + rot.height) // 2 - 6)):
        d.rectangle((cx - w // 12, cy - h // 30, cx + w // 12, cy + h // 30), fill=(245, 235, 160, 200))
    return out.convert("RGB")


FRAMES = {"tune": {"polaroid": frame_polaroid, "mat": frame_mat, "film": frame_film},
          "heldout": {"ornate": frame_ornate, "card": frame_card, "scrapbook": frame_scrapbook}}


def _fit(im: Image.Image, box_w: int, box_h: int) -> Image.Image:
    s = min(box_w / im.width, box_h / im.height)
    return im.resize((max(1, int(im.width * s)), max(1, int(im.height * s))), Image.Resampling.BICUBIC)


def _status_bar(d: ImageDraw.ImageDraw, w: int, bar: int, fg, r: random.Random, f) -> None:
    d.text((bar, bar // 2), f"{r.randint(7, 23)}:{r.randint(0, 59):02d}", font=f, fill=fg, anchor="lm")
    x = w - bar
    d.rectangle((x - bar, bar // 3, x, bar - bar // 3), outline=fg, width=2)  # battery
    d.rectangle((x - bar + 3, bar // 3 + 3, x - bar + 3 + int((bar - 6) * r.uniform(0.2, 1)), bar - bar // 3 - 3), fill=fg)
    for k in range(4):  # signal
        d.rectangle((x - 2 * bar + k * 8, bar - bar // 3 - 6 - k * 5, x - 2 * bar + k * 8 + 5, bar - bar // 3), fill=fg)


def chrome_phone_gallery(im: Image.Image, r: random.Random) -> Image.Image:
    w, h = 1080, 2340
    out = Image.new("RGB", (w, h), (255, 255, 255))
    d = ImageDraw.Draw(out)
    f = fixed_font("dejavu/DejaVuSans.ttf", 38)
    _status_bar(d, w, 90, (20, 20, 20), r, f)
    d.text((60, 160), "\u2039", font=fixed_font("dejavu/DejaVuSans.ttf", 90), fill=(20, 20, 20), anchor="lm")
    d.text((w // 2, 160), f"Today {r.randint(8, 22)}:{r.randint(0, 59):02d}", font=f, fill=(20, 20, 20), anchor="mm")
    shown = _fit(im, w, 1700)
    out.paste(shown, (0, 230 + (1700 - shown.height) // 2))
    for k, label in enumerate(["Share", "Edit", "Like", "Delete"]):
        cx = w // 8 + k * w // 4
        d.ellipse((cx - 28, 2080, cx + 28, 2136), outline=(40, 40, 40), width=5)
        d.text((cx, 2180), label, font=fixed_font("dejavu/DejaVuSans.ttf", 30), fill=(40, 40, 40), anchor="mm")
    d.rounded_rectangle((w // 2 - 140, h - 30, w // 2 + 140, h - 20), radius=5, fill=(20, 20, 20))
    return out


def chrome_desktop_viewer(im: Image.Image, r: random.Random) -> Image.Image:
    w, h = 1920, 1080
    out = Image.new("RGB", (w, h), (32, 33, 36))
    d = ImageDraw.Draw(out)
    d.rectangle((0, 0, w, 44), fill=(50, 51, 55))
    for k, c in enumerate([(255, 95, 87), (254, 188, 46), (40, 200, 64)]):
        d.ellipse((14 + k * 26, 14, 30 + k * 26, 30), fill=c)
    f = fixed_font("dejavu/DejaVuSans.ttf", 18)
    d.text((w // 2, 22), f"IMG_{r.randint(1000, 9999)}.JPG \u2014 Image Viewer", font=f, fill=(220, 220, 220), anchor="mm")
    shown = _fit(im, w - 120, h - 44 - 150)
    out.paste(shown, ((w - shown.width) // 2, 44 + (h - 44 - 150 - shown.height) // 2))
    for k in range(14):  # the filmstrip: fixed tiles, the same in every screenshot
        x = 100 + k * 124
        d.rectangle((x, h - 130, x + 110, h - 50), fill=((37 * k) % 200 + 40, (91 * k) % 200 + 30, (53 * k) % 200 + 40))
    d.text((w - 40, h - 20), f"{r.randint(20, 100)}%", font=f, fill=(200, 200, 200), anchor="rm")
    return out


def chrome_phone_social(im: Image.Image, r: random.Random) -> Image.Image:
    w, h = 1170, 2532
    out = Image.new("RGB", (w, h), (0, 0, 0))
    d = ImageDraw.Draw(out)
    f = fixed_font("dejavu/DejaVuSerif.ttf", 40)
    _status_bar(d, w, 100, (240, 240, 240), r, f)
    d.text((40, 190), "Feed", font=fixed_font("dejavu/DejaVuSerif-Bold.ttf", 64), fill="white", anchor="lm")
    d.ellipse((40, 300, 130, 390), fill=(200, 60, 120))
    d.text((150, 345), "travel.diaries", font=fixed_font("dejavu/DejaVuSerif-Bold.ttf", 40), fill="white", anchor="lm")
    side = min(im.size)
    sq = im.crop(((im.width - side) // 2, (im.height - side) // 2, (im.width + side) // 2, (im.height + side) // 2))
    out.paste(sq.resize((w, w), Image.Resampling.BICUBIC), (0, 420))
    y = 420 + w + 40
    for k in range(3):
        d.ellipse((40 + k * 110, y, 110 + k * 110, y + 70), outline="white", width=6)
    d.text((40, y + 140), f"{r.randint(100, 9999):,} likes", font=fixed_font("dejavu/DejaVuSerif-Bold.ttf", 40),
           fill="white")
    d.text((40, y + 210), "golden hour never disappoints", font=f, fill=(220, 220, 220))
    for k in range(5):
        d.rectangle((60 + k * 230, h - 150, 130 + k * 230, h - 80), outline="white", width=5)
    return out


def chrome_desktop_browser(im: Image.Image, r: random.Random) -> Image.Image:
    w, h = 2560, 1440
    out = Image.new("RGB", (w, h), (255, 255, 255))
    d = ImageDraw.Draw(out)
    d.rectangle((0, 0, w, 90), fill=(222, 225, 230))
    d.rounded_rectangle((20, 14, 420, 90), radius=14, fill=(255, 255, 255))
    f = fixed_font("liberation/LiberationSans-Regular.ttf", 26)
    d.text((40, 52), "Weekend in the hills - Blog", font=f, fill=(30, 30, 30), anchor="lm")
    d.rectangle((0, 90, w, 160), fill=(255, 255, 255))
    d.rounded_rectangle((160, 100, w - 300, 150), radius=25, fill=(241, 243, 244))
    d.text((200, 125), f"https://example.org/blog/{r.randint(100, 999)}/photos", font=f, fill=(60, 60, 60), anchor="lm")
    d.line((0, 160, w, 160), fill=(200, 200, 200), width=2)
    d.text((w // 2, 230), "My Travel Blog", font=fixed_font("dejavu/DejaVuSerif-Bold.ttf", 60), fill="black", anchor="mm")
    for k, item in enumerate(["Home", "Trips", "Gear", "About"]):
        d.text((w // 2 - 330 + k * 220, 310), item, font=f, fill=(90, 90, 90), anchor="mm")
    shown = _fit(im, 1400, 800)
    out.paste(shown, ((w - shown.width) // 2, 370))
    for k in range(5):  # paragraph lines
        y = 370 + shown.height + 50 + k * 44
        d.rectangle((580, y, w - 580 - (k % 3) * 160, y + 18), fill=(215, 215, 215))
    return out


CHROMES = {"tune": {"phone-gallery": chrome_phone_gallery, "desktop-viewer": chrome_desktop_viewer},
           "heldout": {"phone-social": chrome_phone_social, "desktop-browser": chrome_desktop_browser}}


def _logo(size: int) -> Image.Image:
    """A fixed logo (RGBA): a ring, a dot and a wordmark."""
    im = Image.new("RGBA", (size * 3, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    d.ellipse((2, 2, size - 2, size - 2), outline=(255, 255, 255, 230), width=max(2, size // 10))
    d.ellipse((size // 3, size // 3, 2 * size // 3, 2 * size // 3), fill=(255, 200, 0, 230))
    d.text((size + 6, size // 2), "LUMEN", font=fixed_font("dejavu/DejaVuSans-Bold.ttf", max(8, size // 2)),
           fill=(255, 255, 255, 230), anchor="lm")
    return im


def wm_corner(im: Image.Image, r: random.Random) -> Image.Image:
    im = im.convert("RGBA")
    logo = _logo(max(16, im.height // 8))
    im.alpha_composite(logo, (im.width - logo.width - 10, im.height - logo.height - 10))
    return im.convert("RGB")


def wm_tiled(im: Image.Image, r: random.Random) -> Image.Image:
    im = im.convert("RGBA")
    layer = Image.new("RGBA", (im.width * 2, im.height * 2), (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    f = fixed_font("dejavu/DejaVuSans-Bold.ttf", max(10, im.height // 12))
    for y in range(0, layer.height, max(20, im.height // 5)):
        for x in range(0, layer.width, max(40, im.width // 3)):
            d.text((x, y), "\u00a9 SAMPLE", font=f, fill=(255, 255, 255, 70))
    layer = layer.rotate(30, resample=Image.Resampling.BICUBIC)
    layer = layer.crop((im.width // 2, im.height // 2, im.width // 2 + im.width, im.height // 2 + im.height))
    return Image.alpha_composite(im, layer).convert("RGB")


def wm_centre(im: Image.Image, r: random.Random) -> Image.Image:
    im = im.convert("RGBA")
    layer = Image.new("RGBA", im.size, (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    s = min(im.size) // 3
    cx, cy = im.width // 2, im.height // 2
    d.rounded_rectangle((cx - s, cy - s // 2, cx + s, cy + s // 2), radius=s // 6, outline=(255, 255, 255, 110), width=max(3, s // 12))
    d.ellipse((cx - s // 3, cy - s // 3, cx + s // 3, cy + s // 3), outline=(255, 255, 255, 110), width=max(3, s // 12))
    d.text((cx, cy + s // 2 + s // 4), "STOCKIMG", font=fixed_font("dejavu/DejaVuSerif-Bold.ttf", max(10, s // 3)),
           fill=(255, 255, 255, 110), anchor="mm")
    return Image.alpha_composite(im, layer).convert("RGB")


def wm_grid(im: Image.Image, r: random.Random) -> Image.Image:
    im = im.convert("RGBA")
    layer = Image.new("RGBA", im.size, (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    step = max(30, min(im.size) // 4)
    for x in range(0, im.width, step):
        d.line((x, 0, x, im.height), fill=(255, 255, 255, 60), width=2)
    for y in range(0, im.height, step):
        d.line((0, y, im.width, y), fill=(255, 255, 255, 60), width=2)
    f = fixed_font("liberation/LiberationMono-Bold.ttf", max(8, step // 6))
    for x in range(step // 4, im.width, step):
        for y in range(step // 2, im.height, step):
            d.text((x, y), "preview", font=f, fill=(255, 255, 255, 90))
    return Image.alpha_composite(im, layer).convert("RGB")


def wm_signature(im: Image.Image, r: random.Random) -> Image.Image:
    im = im.copy()
    f = ImageFont.truetype(str(FONTS / "dejavu/DejaVuSerif-Italic.ttf"), max(10, im.height // 14)) \
        if (FONTS / "dejavu/DejaVuSerif-Italic.ttf").exists() else ImageFont.load_default(max(10, im.height // 14))
    ImageDraw.Draw(im).text((12, im.height - 12), "Anna K. Photography", font=f, fill=(255, 255, 255),
                            anchor="ls", stroke_width=1, stroke_fill=(40, 40, 40))
    return im


WATERMARKS = {"tune": {"corner-logo": wm_corner, "tiled-text": wm_tiled},
              "heldout": {"centre-logo": wm_centre, "stock-grid": wm_grid, "signature": wm_signature}}


# --- generated documents and low-texture pictures ----------------------------------------------------------

ITEMS = ["Consulting", "Design review", "Hosting (12 mo)", "Support plan", "Licence", "Travel", "Training day",
         "Hardware", "Cables", "Monitor", "Keyboard", "Backup drive", "Setup fee", "Maintenance"]


def doc_invoice(k: int, r: random.Random) -> Image.Image:
    w, h = 850, 1100
    im = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(im)
    d.rectangle((0, 0, w, 110), fill=(30, 60, 110))
    d.text((40, 55), "ACME Services Ltd.", font=fixed_font("dejavu/DejaVuSans-Bold.ttf", 36), fill="white", anchor="lm")
    f = fixed_font("dejavu/DejaVuSans.ttf", 20)
    d.text((40, 150), f"INVOICE  #{2023000 + k * 17 + r.randint(0, 9)}", font=fixed_font("dejavu/DejaVuSans-Bold.ttf", 28), fill="black")
    d.text((40, 200), f"Date: 2023-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}", font=f, fill="black")
    d.text((40, 230), f"Bill to: Customer {r.randint(100, 999)}", font=f, fill="black")
    d.rectangle((40, 300, w - 40, 340), fill=(225, 230, 240))
    for x, t in ((50, "Item"), (500, "Qty"), (640, "Amount")):
        d.text((x, 320), t, font=f, fill="black", anchor="lm")
    total = 0
    for i in range(r.randint(3, 10)):
        y = 360 + i * 42
        amt = r.randint(10, 900)
        total += amt
        d.text((50, y), r.choice(ITEMS), font=f, fill="black")
        d.text((500, y), str(r.randint(1, 5)), font=f, fill="black")
        d.text((640, y), f"{amt}.00", font=f, fill="black")
    d.line((40, 820, w - 40, 820), fill="black", width=2)
    d.text((500, 840), f"Total  {total}.00 EUR", font=fixed_font("dejavu/DejaVuSans-Bold.ttf", 24), fill="black")
    d.text((40, 1040), "Thank you for your business.  IBAN DE00 0000 0000 0000", font=f, fill=(120, 120, 120))
    return im


def doc_slide(k: int, r: random.Random) -> Image.Image:
    w, h = 1280, 720
    im = Image.new("RGB", (w, h), (250, 250, 250))
    d = ImageDraw.Draw(im)
    d.rectangle((0, 0, w, 120), fill=(120, 20, 40))
    words = ["Results", "Roadmap", "Budget", "Team", "Risks", "Timeline", "Goals", "Metrics", "Next steps", "Summary"]
    d.text((50, 60), f"{r.choice(words)} Q{r.randint(1, 4)}", font=fixed_font("dejavu/DejaVuSerif-Bold.ttf", 54),
           fill="white", anchor="lm")
    f = fixed_font("dejavu/DejaVuSerif.ttf", 34)
    for i in range(r.randint(3, 6)):
        y = 180 + i * 80
        d.ellipse((60, y + 10, 76, y + 26), fill=(120, 20, 40))
        d.text((100, y), " ".join(r.sample(words + ITEMS, r.randint(2, 5))).lower(), font=f, fill=(30, 30, 30))
    d.text((w - 40, h - 30), f"{k + 2} / 40", font=fixed_font("dejavu/DejaVuSerif.ttf", 22), fill=(120, 120, 120), anchor="rm")
    return im


def doc_receipt(k: int, r: random.Random) -> Image.Image:
    w, h = 420, 900
    im = Image.new("RGB", (w, h), (252, 250, 240))
    d = ImageDraw.Draw(im)
    f = fixed_font("liberation/LiberationMono-Regular.ttf", 20)
    d.text((w // 2, 40), "CORNER MARKET", font=fixed_font("liberation/LiberationMono-Bold.ttf", 30), fill="black", anchor="mm")
    d.text((w // 2, 80), "12 Main St.  Tel 555-0100", font=f, fill="black", anchor="mm")
    y, total = 140, 0.0
    for _ in range(r.randint(4, 14)):
        p = r.randint(50, 2000) / 100
        total += p
        d.text((20, y), f"{r.choice(ITEMS)[:16]:16s} {p:7.2f}", font=f, fill="black")
        y += 34
    d.text((20, y + 20), f"{'TOTAL':16s} {total:7.2f}", font=fixed_font("liberation/LiberationMono-Bold.ttf", 22), fill="black")
    d.text((w // 2, h - 40), f"{r.randint(1, 28):02d}/{r.randint(1, 12):02d}/2024 {r.randint(8, 21)}:{r.randint(0, 59):02d}",
           font=f, fill="black", anchor="mm")
    return im


TEMPLATES = {"tune": {"invoice": doc_invoice}, "heldout": {"slide": doc_slide, "receipt": doc_receipt}}
MANUALS = {"tune": ("R-admin", "R-data", "R-exts", "R-intro"), "heldout": ("R-FAQ", "R-ints", "R-lang", "refman")}
BLANK = 0.5  # pages whose texture (bench/realimages.py) is below this are blank: two of them are one picture


def _size(r: random.Random) -> tuple[int, int]:
    return r.choice([(640, 480), (1024, 768), (1280, 720), (1920, 1080), (1080, 1920), (2048, 1536), (3000, 2000)])


def _colour(r: random.Random) -> np.ndarray:
    return np.array([r.randint(0, 255) for _ in range(3)], dtype=np.float32)


def low_linear(r: random.Random, photo_im: Image.Image | None) -> Image.Image:
    w, h = _size(r)
    t = np.linspace(0, 1, 256, dtype=np.float32)[:, None, None]
    a, b = _colour(r), _colour(r)
    strip = (a * (1 - t) + b * t).astype(np.uint8)
    im = Image.fromarray(np.repeat(strip, 256, axis=1)).resize((w, h), Image.Resampling.BILINEAR)
    return im.rotate(r.choice([0, 90, 180, 270]), expand=True)


_SOLIDS = iter(range(10**6))


def low_solid(r: random.Random, photo_im: Image.Image | None) -> Image.Image:
    """Solid colours far apart (a colour cast or a brightness change of one is a copy, not another picture)."""
    k = next(_SOLIDS)
    return Image.new("RGB", _size(r), tuple(int(x) for x in _hue(k, 0.75, 0.35 + 0.6 * ((k * 0.382) % 1))))


def _soft_noise(r: random.Random, w: int, h: int, scale: int) -> np.ndarray:
    rng = np.random.default_rng(r.getrandbits(32))
    small = Image.fromarray((rng.random((scale, scale)) * 255).astype(np.uint8))
    return np.asarray(small.resize((w, h), Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(max(w, h) / 40)),
                      dtype=np.float32) / 255


def low_sky(r: random.Random, photo_im: Image.Image | None) -> Image.Image:
    w, h = _size(r)
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    top, bottom = np.array([r.randint(30, 90), r.randint(90, 150), r.randint(190, 250)], np.float32), \
        np.array([r.randint(160, 210), r.randint(200, 230), r.randint(235, 255)], np.float32)
    sky = top * (1 - y) + bottom * y
    cloud = np.clip(_soft_noise(r, w, h, 6) * 1.6 - 0.55, 0, 1)[..., None]
    return Image.fromarray(np.clip(sky * (1 - cloud) + 250 * cloud, 0, 255).astype(np.uint8))


def low_night(r: random.Random, photo_im: Image.Image | None) -> Image.Image:
    a = np.asarray(photo_im, dtype=np.float32) * r.uniform(0.06, 0.14)
    a += np.random.default_rng(r.getrandbits(32)).normal(0, 2.5, a.shape)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def low_radial(r: random.Random, photo_im: Image.Image | None) -> Image.Image:
    w, h = _size(r)
    yy, xx = np.mgrid[0:h // 4, 0:w // 4].astype(np.float32)
    cx, cy = r.uniform(0.2, 0.8) * w / 4, r.uniform(0.2, 0.8) * h / 4
    t = np.clip(np.hypot(xx - cx, yy - cy) / (max(w, h) / 4 * r.uniform(0.5, 1.0)), 0, 1)[..., None]
    a, b, c = _colour(r), _colour(r), _colour(r)
    arr = np.where(t < 0.5, a * (1 - 2 * t) + b * 2 * t, b * (2 - 2 * t) + c * (2 * t - 1))
    return Image.fromarray(arr.astype(np.uint8)).resize((w, h), Image.Resampling.BICUBIC)


def low_blobs(r: random.Random, photo_im: Image.Image | None) -> Image.Image:
    w, h = _size(r)
    im = Image.new("RGB", (w, h), tuple(int(x) for x in _colour(r)))
    d = ImageDraw.Draw(im)
    for _ in range(r.randint(2, 4)):
        s = int(min(w, h) * r.uniform(0.3, 0.8))
        x, y = r.randint(-s // 2, w - s // 2), r.randint(-s // 2, h - s // 2)
        d.ellipse((x, y, x + s, y + s), fill=tuple(int(v) for v in _colour(r)))
    return im.filter(ImageFilter.GaussianBlur(min(w, h) / 8))


def _hue(k: int, sat: float, val: float) -> np.ndarray:
    """The k-th colour of a golden-ratio walk round the hue circle: neighbours in k differ by ~222 degrees."""
    import colorsys

    return np.array(colorsys.hsv_to_rgb((k * 0.618034) % 1.0, sat, val), np.float32) * 255


def low_sunset(r: random.Random, photo_im: Image.Image | None) -> Image.Image:
    w, h = _size(r)
    horizon = r.uniform(0.45, 0.85)
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    top, mid = _hue(r.randint(0, 999), r.uniform(0.5, 0.9), r.uniform(0.2, 0.45)), \
        _hue(r.randint(0, 999), r.uniform(0.6, 1.0), r.uniform(0.8, 1.0))
    arr = np.where(y < horizon, top * (1 - y / horizon) + mid * (y / horizon), mid * 0.2)
    im = Image.fromarray(np.broadcast_to(arr, (h, w, 3)).astype(np.uint8))
    s = int(min(w, h) * r.uniform(0.08, 0.2))
    cx, cy = int(w * r.uniform(0.15, 0.85)), int(h * horizon)
    sun = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(sun)
    d.ellipse((cx - s, cy - s, cx + s, cy + s), fill=255)
    d.rectangle((0, cy, w, h), fill=0)  # set behind the horizon
    im.paste((255, 240, 200), (0, 0), sun)
    return im.filter(ImageFilter.GaussianBlur(min(w, h) / 200))


def low_fog(r: random.Random, photo_im: Image.Image | None) -> Image.Image:
    grey = Image.new("RGB", photo_im.size, (r.randint(200, 235),) * 3)
    return Image.blend(photo_im.filter(ImageFilter.GaussianBlur(r.uniform(2, 5))), grey, r.uniform(0.72, 0.85))


LOWTEX = {"tune": {"linear": low_linear, "solid": low_solid, "sky": low_sky, "night": low_night},
          "heldout": {"radial": low_radial, "blobs": low_blobs, "sunset": low_sunset, "fog": low_fog}}
LOWTEX_SHARE = {"solid": 0.1}  # of the family's pictures; the rest share the remainder evenly
LOWTEX_NEEDS_PHOTO = {"night", "fog"}


def deg_tiny(im, r):
    return _scale(im, r.randint(24, 40) / max(im.size), Image.Resampling.BOX)


def deg_mosaic(im, r):
    blocks = r.randint(10, 18)
    small = _scale(im, blocks / max(im.size), Image.Resampling.BOX)
    return small.resize(im.size, Image.Resampling.NEAREST)


def deg_gblur(im, r):
    return im.filter(ImageFilter.GaussianBlur(r.uniform(10, 16)))


def deg_blockjpeg(im, r):
    return _jpeg(_scale(im, 0.25), r.randint(2, 5)).resize(im.size, Image.Resampling.NEAREST)


def deg_boxdark(im, r):
    return ImageEnhance.Brightness(im.filter(ImageFilter.BoxBlur(r.uniform(8, 14)))).enhance(r.uniform(0.3, 0.5))


def deg_poster(im, r):
    return ImageOps.posterize(_scale(im, r.randint(36, 56) / max(im.size), Image.Resampling.BILINEAR), 2)


DEGRADE = {"tune": {"tiny": deg_tiny, "mosaic": deg_mosaic, "gblur": deg_gblur},
           "heldout": {"blockjpeg": deg_blockjpeg, "boxdark": deg_boxdark, "poster": deg_poster}}
# moderate degradations for the copies beside their originals: still the photo to a person
MODERATE = {"tune": {"thumb96": lambda im, r: _scale(im, 96 / max(im.size), Image.Resampling.BOX),
                     "jpeg15": lambda im, r: _jpeg(im, 15)},
            "heldout": {"thumb128": lambda im, r: _scale(im, 128 / max(im.size), Image.Resampling.LANCZOS),
                        "blur3": lambda im, r: im.filter(ImageFilter.GaussianBlur(3))}}


# --- the families -------------------------------------------------------------------------------------------

def fam_caption(lib: Library, photos: list[Path], per_set: int = 4) -> None:
    r, styles = lib.r, CAPTION_STYLES[lib.split]
    texts = CAPTIONS[lib.split]
    for s, k in enumerate(range(0, len(photos) - per_set + 1, per_set)):
        style = sorted(styles)[s % len(styles)]
        text = texts[s % len(texts)]
        for j, p in enumerate(photos[k:k + per_set]):
            src, im = f"caption:{p.stem}", photo(p)
            first = styles[style](im, text, r, lib.split)
            lib.add(first, "caption", src, recipe=f"{style}:{text}")
            if j == 0:  # the same photo under another caption (and style): a true group
                other_style = r.choice(sorted(styles))
                other = styles[other_style](im, texts[(s + 5) % len(texts)], r, lib.split)
                lib.add(other, "caption", src, edit="recaption", recipe=f"{other_style}:{texts[(s + 5) % len(texts)]}")
            if j == 1:
                lib.add(im, "caption", src, edit="uncaptioned")
            if j in (0, 2) or r.random() < 0.4:
                copy_of(lib, first, "caption", src)


def fam_overlay(lib: Library, family: str, recipes: dict, photos: list[Path], per_set: int = 4) -> None:
    """Frames, app chromes and watermarks: each recipe on ``per_set`` different photos; the first photo also in
    another recipe (a true group), the second also alone, the third with a copy of its overlaid file."""
    r = lib.r
    names = sorted(recipes)
    for s, k in enumerate(range(0, len(photos) - per_set + 1, per_set)):
        name = names[s % len(names)]
        for j, p in enumerate(photos[k:k + per_set]):
            src, im = f"{family}:{p.stem}", photo(p)
            fmt = "png" if family == "screenshot" else None
            first = recipes[name](im, r)
            lib.add(first, family, src, recipe=name, fmt=fmt)
            if j == 0:
                other = names[(s + 1) % len(names)]
                lib.add(recipes[other](im, r), family, src, edit=f"re-{family}", recipe=other, fmt=fmt)
            if j == 1:
                lib.add(im, family, src, edit=f"no-{family}")
            if j == 2 or r.random() < 0.4:
                copy_of(lib, first, family, src)


def fam_document(lib: Library, real_all: list[dict], n_generated: int) -> None:
    """Pages of the split's manuals (a manual belongs wholly to one split, whichever part its pages fell in)
    blank pages left out, and pages of the split's generated templates; about a third get a copy."""
    r = lib.r
    pages = [e for e in real_all if e["kind"] == "document" and e["texture"] >= BLANK
             and Path(e["origin"].split("#")[0]).name.split(".")[0] in MANUALS[lib.split]]
    for e in pages:
        src = f"document:{e['sha256'][:16]}"
        lib.add_file(Path(e["file"]), "document", src, recipe=Path(e["origin"].split("#")[0]).stem)
        if r.random() < 0.3:
            im = Image.open(e["file"]).convert("RGB")
            copy_of(lib, _doc_copy(im, r, lib.split), "document", src,
                    prefix="scan" if lib.split == "tune" else "photographed")
    templates = TEMPLATES[lib.split]
    for k in range(n_generated):
        name = sorted(templates)[k % len(templates)]
        im = templates[name](k, r)
        src = f"document:{name}:{k}"
        lib.add(im, "document", src, recipe=name, fmt=r.choice(["png", "jpg"]))
        if k % 3 == 0:
            copy_of(lib, _doc_copy(im, r, lib.split), "document", src,
                    prefix="scan" if lib.split == "tune" else "photographed")


def _doc_copy(im: Image.Image, r: random.Random, split: str) -> Image.Image:
    if split == "tune":  # a scan: grey, a small turn, noise
        g = ImageOps.grayscale(im).rotate(r.uniform(-2, 2), fillcolor=255, resample=Image.Resampling.BICUBIC)
        a = np.asarray(g, np.float32) + np.random.default_rng(r.getrandbits(32)).normal(0, 6, (g.height, g.width))
        return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).convert("RGB")
    w, h = im.size  # a phone photo of the page: keystone, warm light, slight blur, on a desk
    m = 0.06
    quad = [0, 0, w, int(h * m), w - int(w * m), h, int(w * m), h - int(h * m)]
    warped = im.transform((w, h), Image.Transform.QUAD, quad, Image.Resampling.BILINEAR, fillcolor=(90, 70, 50))
    warm = Image.merge("RGB", [c.point(lambda v, g=g: min(255, int(v * g))) for c, g in zip(warped.split(), (1.05, 0.97, 0.85))])
    return warm.filter(ImageFilter.GaussianBlur(0.8))


def lamp_photo(im: Image.Image, r: random.Random) -> Image.Image:
    """A phone photo of a page lying on a desk under a lamp (the tune split's): the page inset 3-8 % on a desk
    of a random colour, each corner moved in by up to 3-10 % (one perspective transform), the light falling off
    by 10-30 % across the frame in a random direction, a slight tint and blur."""
    w, h = im.size
    m, k = r.uniform(0.03, 0.08), r.uniform(0.03, 0.10)
    a = np.asarray(perspective(on_desk(im, m, r), jittered_quad(w, h, k, r)), np.float32)
    ramp = light_ramp(w, h, r)
    tint = np.array([r.uniform(0.9, 1.0), r.uniform(0.95, 1.0), r.uniform(0.97, 1.05)], np.float32)
    a *= (1.0 - r.uniform(0.1, 0.3) * ramp)[..., None] * tint
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(r.uniform(0.4, 1.2)))


def on_desk(im: Image.Image, m: float, r: random.Random) -> Image.Image:
    """``im`` shrunk by ``m`` of each side onto a desk of a random colour the size of ``im``."""
    w, h = im.size
    desk = Image.new("RGB", (w, h), tuple(r.randint(40, 200) for _ in range(3)))
    desk.paste(im.resize((round(w * (1 - 2 * m)), round(h * (1 - 2 * m))), Image.Resampling.BILINEAR),
               (round(w * m), round(h * m)))
    return desk


def light_ramp(w: int, h: int, r: random.Random) -> np.ndarray:
    """0 to 1 across a ``w`` x ``h`` frame in a random direction: where a lamp's light falls off."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = r.uniform(0, 2 * math.pi)
    ramp = math.cos(angle) * xx / w + math.sin(angle) * yy / h
    return (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)


def fam_photographed(lib: Library) -> None:
    """Tune split only, added last from a random stream of its own (the rest of the library stays as it was):
    about 40 % of the document pages get a photographed copy (``lamp_photo``), half of those one copy edit more.
    Photographed under uneven light, a page is no longer one flat tone, yet it sits beside the other pages of its
    template."""
    r = random.Random(f"photographed:{lib.r.random()}")
    edits = COPY_EDITS["tune"]
    for src, members in list(lib.groups.items()):
        if not src.startswith("document:") or r.random() >= 0.4:
            continue
        im = lamp_photo(Image.open(lib.root / members[0]).convert("RGB"), r)
        chain = ["photographed"]
        if r.random() < 0.5:
            name = r.choice(["resave", "shrink", "bright"])
            im, chain = edits[name](im, r), chain + [name]
        lib.add(im, "document", src, edit="+".join(chain), fmt="jpg")


WORDS = ["time", "people", "way", "year", "day", "thing", "world", "life", "hand", "part", "child", "eye",
         "place", "work", "week", "case", "point", "number", "group", "problem", "fact", "love", "light",
         "dream", "heart", "river", "mountain", "silence", "morning", "courage", "smile", "road", "friend",
         "story", "change", "journey", "moment", "truth", "hope", "wind", "ocean", "star", "fire", "garden",
         "city", "night", "summer", "winter", "always", "never", "every", "only", "still", "even", "again",
         "together", "alone", "forward", "slowly", "bright"]


def _sentence(r: random.Random, n: int) -> str:
    return " ".join(r.choice(WORDS) for _ in range(n)).capitalize() + "."


def _wrapped(d: ImageDraw.ImageDraw, text: str, f, width: int) -> list[str]:
    lines, cur = [], ""
    for w in text.split():
        t = f"{cur} {w}".strip()
        if cur and d.textlength(t, font=f) > width:
            lines, cur = lines + [cur], w
        else:
            cur = t
    return lines + [cur]


def _gradient(w: int, h: int, c1, c2, radial: bool = False) -> Image.Image:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = np.hypot(xx / w - 0.5, yy / h - 0.5) / 0.71 if radial else yy / h
    a = np.asarray(c1, np.float32) * (1 - t[..., None]) + np.asarray(c2, np.float32) * t[..., None]
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def card_quote(r: random.Random, split: str, style: dict) -> Image.Image:
    """A quote card: a line of text on a gradient, one account's style (colours, font, handle)."""
    w = h = 1080
    im = _gradient(w, h, style["c1"], style["c2"], radial=split == "heldout")
    d, f = ImageDraw.Draw(im), style["font"]
    lines = _wrapped(d, _sentence(r, r.randint(8, 16)), f, 880)
    y = h // 2 - len(lines) * f.size * 5 // 8
    for ln in lines:
        if split == "tune":
            d.text((w // 2, y), ln, font=f, fill=(245, 245, 245), anchor="mm")
        else:
            d.text((100, y), ln, font=f, fill=(250, 250, 235), anchor="lm")
        y += f.size * 5 // 4
    d.text((w // 2, h - 100), style["handle"], font=style["small"], fill=(220, 220, 220), anchor="mm")
    return im


def card_chat(r: random.Random, split: str, style: dict) -> Image.Image:
    """A dark-mode phone screenshot of one conversation (tune) or one notes list (held-out)."""
    w, h = 1080, 2340
    im = Image.new("RGB", (w, h), style["ground"])
    d, f = ImageDraw.Draw(im), style["font"]
    d.text((60, 40), f"{r.randint(8, 23)}:{r.randint(10, 59)}", font=f, fill=(230, 230, 230))
    d.rectangle((0, 120, w, 300), fill=style["bar"])
    d.text((200 if split == "tune" else 60, 180), style["handle"], font=style["small"], fill=(240, 240, 240))
    if split == "tune":
        d.ellipse((40, 150, 160, 270), fill=style["c1"])
    y = 360
    while y < h - 300:
        lines = _wrapped(d, _sentence(r, r.randint(3, 14)), f, 700 if split == "tune" else 900)
        bh = 60 * len(lines) + 40
        if split == "tune":
            mine = r.random() < 0.5
            x0 = w - 840 if mine else 60
            d.rounded_rectangle((x0, y, x0 + 760, y + bh), 30, fill=style["c1"] if mine else style["bar"])
        else:
            x0 = 60
            d.line((60, y + bh + 12, w - 60, y + bh + 12), fill=style["bar"], width=2)
        for i, ln in enumerate(lines):
            d.text((x0 + 30, y + 20 + 60 * i), ln, font=f, fill=(235, 235, 235))
        y += bh + 30
    d.rectangle((0, h - 200, w, h), fill=style["bar"])
    return im


def card_code(r: random.Random, split: str, style: dict) -> Image.Image:
    """A dark editor (tune) or terminal (held-out) screenshot of some code."""
    w, h = 1600, 1000
    im = Image.new("RGB", (w, h), style["ground"])
    d, f = ImageDraw.Draw(im), style["font"]
    d.rectangle((0, 0, w, 50), fill=style["bar"])
    left = 280 if split == "tune" else 30
    if split == "tune":
        d.rectangle((0, 50, 260, h), fill=style["bar"])
        for i in range(12):
            d.text((20, 70 + 34 * i), r.choice(WORDS) + ".py", font=f, fill=(200, 200, 200))
    colours = [style["c1"], style["c2"], (212, 212, 212), (220, 220, 170)]
    for n, y in enumerate(range(70, h - 40, 34)):
        x = left + (60 if split == "tune" else 0)
        if split == "tune":
            d.text((left, y), f"{n + 1:3d}", font=f, fill=(110, 110, 110))
        x += r.choice([0, 0, 1, 2]) * 56
        for _ in range(r.randint(1, 6)):
            t = r.choice(WORDS) + r.choice(["(", " = ", ".", ", ", ")", ":"])
            d.text((x, y), t, font=f, fill=r.choice(colours))
            x += d.textlength(t, font=f)
    return im


CARD_MAKERS = {"quote": card_quote, "chat": card_chat, "code": card_code}  # each draws its split's recipe


def card_style(r: random.Random, split: str, kind: str) -> dict:
    dark = tuple(r.randint(10, 40) for _ in range(3))
    return {"c1": tuple(r.randint(0, 90) for _ in range(3)), "c2": tuple(r.randint(60, 200) for _ in range(3)),
            "ground": dark, "bar": tuple(min(255, v + 20) for v in dark),
            "font": (fixed_font("dejavu/DejaVuSansMono.ttf", 24) if kind == "code" and split == "tune" else
                     fixed_font("liberation/LiberationMono-Regular.ttf", 26) if kind == "code" else
                     font(r, split, 64 if kind == "quote" else 42, bold=kind == "quote")),
            "small": font(r, split, 40), "handle": r.choice(["@dailywords", "Alex", "Notes", "@quietmind", "Sam"])}


def fam_textcard(lib: Library, per_style: int = 10, styles: int = 2) -> None:
    """Added last, from a random stream of its own (the rest of the library stays as it was): pictures that are
    text on one account's or app's ground, each with other text (quote cards on a gradient, dark chat or notes
    screenshots, code in a dark editor or terminal): different pictures whose colours and layout agree; every
    other one gets a copy. Not pages (no light paper): the text check is not asked of them."""
    r = random.Random(f"textcard:{lib.split}:{lib.r.random()}")
    for kind, make in CARD_MAKERS.items():
        for s in range(styles):
            style = card_style(r, lib.split, kind)
            for k in range(per_style):
                src = f"textcard:{kind}{s}:{k}"
                im = make(r, lib.split, style)
                lib.add(im, "textcard", src, recipe=f"{kind}{s}")
                if k % 2 == 0:
                    copy_of(lib, im, "textcard", src)


def fam_lowtex(lib: Library, photos: list[Path], n: int) -> None:
    r, recipes = lib.r, LOWTEX[lib.split]
    names = sorted(recipes)
    counts = {m: round(n * LOWTEX_SHARE[m]) for m in names if m in LOWTEX_SHARE}
    rest = [m for m in names if m not in counts]
    counts |= {m: (n - sum(counts.values())) // len(rest) for m in rest}
    plan = [m for m in names for _ in range(counts[m])]
    global _SOLIDS
    _SOLIDS = iter(range(0 if lib.split == "tune" else 500, 10**6))  # each split's own colours, the same every build
    it = iter(photos)
    for k, name in enumerate(plan):
        base = photo(next(it)) if name in LOWTEX_NEEDS_PHOTO else None
        im = recipes[name](r, base)
        src = f"lowtex:{name}:{k}"
        lib.add(im, "lowtex", src, recipe=name)
        for _ in range(r.choice([0, 1, 1, 2])):
            copy_of(lib, im, "lowtex", src)


def fam_wallpaper(lib: Library, real: list[dict]) -> None:
    """Real wallpapers and sample images: one picture per variant set, with all its files (the same picture at
    several resolutions: real copies), largest first; a few get a synthetic copy too."""
    r = lib.r
    by_set: dict[str, dict[str, list[dict]]] = {}
    for e in real:
        if e["kind"] in ("wallpaper", "sample", "photo"):
            by_set.setdefault(e["variant_set"], {}).setdefault(e["picture"], []).append(e)
    for vset in sorted(by_set):
        pictures = by_set[vset]
        pic = max(sorted(pictures), key=lambda p: len(pictures[p]))
        files = sorted(pictures[pic], key=lambda e: -e["width"] * e["height"])
        src = f"wallpaper:{pic}"
        for i, e in enumerate(files):
            lib.add_file(Path(e["file"]), "wallpaper", src, edit="real-resolution" if i else "",
                         recipe=f"{e['source']}:texture={e['texture']}")
        if len(files) == 1 and r.random() < 0.3:
            im = Image.open(files[0]["file"]).convert("RGB")
            im.thumbnail((2048, 2048))
            copy_of(lib, im, "wallpaper", src)


def fam_subject(lib: Library, photos: list[Path], real: list[dict], clipart: int) -> None:
    r = lib.r
    for p in photos:
        src = f"subject:{p.stem}"
        lib.add_file(p, "subject", src, recipe=_subject_of(class_index(p)))
        if r.random() < 0.3:
            copy_of(lib, photo(p), "subject", src)
    stamps = [e for e in real if e["kind"] == "clipart" and any(f"/stamps/{c}/" in e["origin"] for c in TUXPAINT_CATEGORIES)]
    r.shuffle(stamps)
    for e in sorted(stamps[:clipart], key=lambda e: e["origin"]):
        src = f"subject:{e['sha256'][:16]}"
        cat = e["origin"].split("/stamps/")[1].rsplit("/", 1)[0]
        lib.add_file(Path(e["file"]), "subject", src, recipe=f"clipart:{cat}")
        if r.random() < 0.25:
            im = Image.open(e["file"]).convert("RGBA")
            flat = Image.alpha_composite(Image.new("RGBA", im.size, (255, 255, 255, 255)), im).convert("RGB")
            copy_of(lib, flat, "subject", src)


def _subject_of(index: int) -> str:
    return next((n for n, ranges in SUBJECTS.items() if any(lo <= index <= hi for lo, hi in ranges)), "")


def fam_burst(lib: Library) -> None:
    uk = sorted((REALDUP / "simbench" / "ukbench").glob("*.jpg"))
    objects: dict[int, list[Path]] = {}
    for p in uk:
        objects.setdefault(int(p.stem[-5:]) // 4, []).append(p)
    keys = sorted(objects)
    mine = keys[:2] if lib.split == "tune" else keys[2:]
    shots = [p for k in mine for p in objects[k]]
    if lib.split == "heldout":
        shots += sorted((REALDUP / "simbench" / "holidays").glob("*.jpg"))
    base = sorted((REALDUP / "imagededup" / "base_images").glob("*.jpg"))
    shots += base[:5] if lib.split == "tune" else base[5:]
    for i, p in enumerate(shots):
        src = f"burst:{p.stem}"
        lib.add_file(p, "burst", src, recipe=f"ukbench-object-{int(p.stem[-5:]) // 4}" if "ukbench" in p.stem else "holidays")
        if p.stem == "ukbench00120":  # imagededup's own copies of this photo: real copies
            mixed = REALDUP / "imagededup" / "mixed_images"
            for v in ("hflip", "resize", "rotation"):
                if (mixed / f"ukbench00120_{v}.jpg").exists():
                    lib.add_file(mixed / f"ukbench00120_{v}.jpg", "burst", src, edit=f"real-{v}")
            grey = REALDUP / "imagededup" / "ukbench00120_gray.jpg"
            if grey.exists():
                lib.add_file(grey, "burst", src, edit="real-gray")
        elif i % 3 == 0:
            im = photo(p)
            im.thumbnail((1600, 1600))
            copy_of(lib, im, "burst", src)


def fam_degraded(lib: Library, photos: list[Path]) -> None:
    r, heavy, moderate = lib.r, DEGRADE[lib.split], MODERATE[lib.split]
    for k, p in enumerate(photos):
        im, src = photo(p), f"degraded:{p.stem}"
        if k % 2:  # the original beside a moderately degraded copy
            lib.add(im, "degraded", src)
            name = sorted(moderate)[k % len(moderate)]
            lib.add(moderate[name](im, r), "degraded", src, edit=name, fmt="jpg")
        else:  # alone, heavily degraded: must not pair with the other heavily degraded photos
            name = sorted(heavy)[k % len(heavy)]
            lib.add(heavy[name](im, r), "degraded", src, recipe=name, fmt=r.choice(["jpg", "png"]))


def fam_tinyflat(lib: Library) -> None:
    """Tiny and flat images: each is its own picture, except byte-identical files (always one group)."""
    specs = {"tune": [("1x1-white", (1, 1), (255, 255, 255)), ("2x2-red", (2, 2), (220, 30, 30)),
                      ("8x8-grey", (8, 8), (128, 128, 128)), ("64x64-black", (64, 64), (0, 0, 0)),
                      ("1x600-blue", (1, 600), (20, 40, 200)), ("15000x15000-black", (15000, 15000), (0, 0, 0)),
                      ("800x600-white", (800, 600), (255, 255, 255))],
             "heldout": [("1x1-black", (1, 1), (0, 0, 0)), ("3x3-green", (3, 3), (30, 160, 60)),
                         ("16x16-white", (16, 16), (255, 255, 255)), ("640x1-grey", (640, 1), (90, 90, 90)),
                         ("12000x9000-white", (12000, 9000), (255, 255, 255)), ("15000x15000-black", (15000, 15000), (0, 0, 0)),
                         ("1024x768-black", (1024, 768), (0, 0, 0))]}[lib.split]
    for k, (name, size, rgb) in enumerate(specs):
        mode = "L" if rgb[0] == rgb[1] == rgb[2] else "RGB"
        im = Image.new(mode, size, rgb[0] if mode == "L" else rgb)
        buf = io.BytesIO()
        im.save(buf, "PNG", optimize=max(size) > 4000)
        src = f"tinyflat:{name}"
        lib.add_bytes(buf.getvalue(), "png", "tinyflat", src, recipe=name)
        if k % 2 == 0:
            lib.add_bytes(buf.getvalue(), "png", "tinyflat", src, edit="byte-identical")


# --- the whole library -------------------------------------------------------------------------------------

def build(out: Path, split: str, seed: int, realimages: Path = REALIMAGES) -> dict:
    if split not in SPLITS:
        raise SystemExit(f"unknown split {split!r}: use {' or '.join(SPLITS)}")
    root = out / "library"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    r = random.Random(f"{split}:{seed}")
    lib = Library(root, r, split)
    photos = split_photos(split)
    real = real_images(realimages, split)
    real_all = real + real_images(realimages, "heldout" if split == "tune" else "tune")
    subject = [p for p in photos if _subject_of(class_index(p))][:40]
    rest = [p for p in photos if p not in subject]
    r.shuffle(rest)
    take = lambda n: [rest.pop() for _ in range(min(n, len(rest)))]
    fam_caption(lib, take(40))
    fam_overlay(lib, "frame", FRAMES[split], take(24))
    fam_overlay(lib, "screenshot", CHROMES[split], take(24))
    fam_overlay(lib, "watermark", WATERMARKS[split], take(24))
    fam_document(lib, real_all, n_generated=60)
    fam_lowtex(lib, take(30), n=100)  # 10 solids, 30 of each other recipe (night and fog need a photo each)
    fam_wallpaper(lib, real)
    fam_subject(lib, subject, real, clipart=140)
    fam_burst(lib)
    fam_degraded(lib, rest)
    fam_tinyflat(lib)
    if split == "tune":
        fam_photographed(lib)
    fam_textcard(lib)
    truth = lib.truth()
    truth["seed"] = seed
    truth["photos_unused"] = len(rest)
    (out / "truth.json").write_text(json.dumps(truth, indent=1))
    return truth


def summary(truth: dict) -> str:
    fams: dict[str, list[int]] = {}
    in_group = {p for g in truth["groups"] for p in g}
    for p, fam in truth["classes"].items():
        c = fams.setdefault(fam, [0, 0, 0])
        c[0] += 1
        c[1] += p in in_group
    for g in truth["groups"]:
        fams[truth["classes"][g[0]]][2] += len(g) * (len(g) - 1) // 2
    lines = [f"{'family':12s} {'files':>6s} {'in groups':>9s} {'true pairs':>10s}"]
    lines += [f"{f:12s} {a:6d} {b:9d} {c:10d}" for f, (a, b, c) in sorted(fams.items())]
    n = len(truth["classes"])
    lines.append(f"{n} files, {len(truth['groups'])} groups, {len(truth['singles'])} singles in {truth['root']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--split", default="tune", choices=SPLITS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--realimages", type=Path, default=REALIMAGES)
    a = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    truth = build(a.out, a.split, a.seed, a.realimages)
    print(summary(truth))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
