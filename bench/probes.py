#!/usr/bin/env python3
"""Probes: different pictures that are mostly one ground with a small distinct part, beside copies of some of them
(bench/README.md, "Small subjects on one ground"). All eight linked through the pixels rule before
``linkrule.keypoints_alike`` and ``linkrule.differ_evenly``; planes and snow still fail.

    python bench/probes.py OUT --recipe backdrop|sticker|fireworks|sky|moon|icons|planes|snow|collage|dark|darkturn [--seed 3]
    PYTHONPATH=. python bench/probes.py OUT --recipe captioned|marked|phonepages [--seed 3]   # uses bench/confusers.py

backdrop  product shots: 3 studio backdrops (a plain colour with a soft vignette), on each 10 different
          train-split photos of ../shared as soft oval cut-outs at the centre (18-32 % of the width); every other
          picture gets a copy (shrunk to 0.5-0.8, re-saved). Their 32 px thumbnails differ only where the subject
          is, and most subjects give fewer than the 100 keypoints at which the pixels rule asks the content to agree
          laid over: a studio day's portraits on one backdrop are the real case.
sticker   a sticker set of one style: 20 smiley faces (one yellow disc, other eyes and mouths) on a transparent
          ground; every other one gets a small copy (96-256 px WebP, as chat apps keep them). Small copies give
          few keypoints, so two of them are low-texture pictures compared by their content thumbnails, where the
          faces differ in a few pixels.
fireworks 24 different fireworks on a night sky (1-3 bursts of coloured streaks on near-black, blurred, sensor
          noise), every other one with a shrunk, re-saved copy: mostly black, few keypoints, so low-texture pictures
          whose thumbnails differ only where the bursts are.

The first three chose ``keypoints_alike``. The next three were written to check it on content it was not chosen on;
it changed none of them, so they chose ``differ_evenly``:

sky       24 different small subjects (train-split photos as soft-edged cut-outs, 8-14 % of the width, anywhere) on
          one cloudy blue sky; every other picture with a shrunk copy: a kite or a bird against the sky.
moon      24 different moons on a night sky (a grey disc at any place and size, its own craters and phase, sensor
          noise); every other one with a shrunk copy.
icons     20 app icons of one style (a rounded square of one of two colours, another white letter on each, on a
          transparent ground); every other one with a small 64-180 px copy (PNG or WebP).

The last two were written after both choices and kept out of them:

planes    24 small planes (a dark silhouette of random shape, 4-8 % of the width, anywhere, its own heading) on
          one sunset gradient; every other one with a copy brightened or darkened by 10-25 % and shrunk.
snow      24 different small figures (train-split photos as cut-outs, 5-9 % of the width) on one snowy slope with
          a faint grain; every other one with a copy cropped by 3-8 % of each side (the figure stays in) and
          shrunk: a crop moves the figure in the frame, so this one also measures what the rule loses.

Two probes of the other side, copies that the rule must keep: low-texture pictures, each beside copies with a
caption or a watermark laid on it (bench/confusers.py's generators and overlays). A caption differs from its
original in one place, as another subject does; ``differ_evenly`` lets it through when the differing patches
hold detail on one side only.

captioned 10 smooth pictures (skies, sunsets, linear and radial gradients, blobs), each with 4 copies: meme text,
          a subtitle, a corner logo, a signature. Chose how a copy with something laid on it is told apart.
marked    10 other smooth pictures (night and fog versions of train-split photos, radial gradients, sunsets),
          each with 3 copies: a centred logo, a grid of "preview" text, a story caption. Kept out of that choice.

One probe of pages (bench/README.md, "Invoices that differ only in their numbers"):

phonepages 80 invoices of the tune template (``bench/confusers.py`` ``doc_invoice``), every other one with a steep
          phone photo (``phone_photo``): different documents that share a layout and often their items, beside
          copies that the embedding ranks far down among them.

One probe of real different shots (OpenCV's sample data, Debian's ``opencv-doc``, installed by
``bench/realimages.py --install``):

shots     pictures of one scene taken apart in time or place: stereo pairs (the chessboard's 13 left/right
          pairs, the aloe), consecutive video frames (basketball, the rubber whale), the chessboard's poses,
          two views of Leuven and of a city from the air, two renders of one head; every other one with a
          shrunk, re-saved copy, and one real edited copy (a penguin pasted on a notebook, from OpenCV's
          error-level-analysis sample). Bursts are similar, not duplicates: no two shots may link.
frames    bursts from OpenCV's sample videos (a street under a fixed camera, a film clip, a swaying tree): frames
          0.4-3 s apart, every other one with a shrunk, re-saved copy. Written after ``shots`` and kept out of
          the choices made on it.
bursts    the street and the tree of ``frames`` as a camera's bursts: JPEGs whose EXIF records each frame's capture
          time (to the hundredth of a second); every other one with a shrunk copy, half of them keeping the EXIF
          (shared from the phone), half without (a messaging app strips it). Measures bulk review's hold on
          groups that hold two capture times (``indexer.grouping.look_only``), not the link rule: its pairs are
          those of ``frames``.

One probe of a real icon set (Debian's ``adwaita-icon-theme``, installed by ``bench/realimages.py --install``),
written after every choice above and kept out of all of them:

iconset   the theme's 74 full-colour 512 px icons (devices, emblems, places, mimetypes, ...): one style, one
          lighting, one palette; among them near twins (a printer and a network printer, an empty and a full
          trash, four kinds of drive); every other one with a copy shrunk to 96-256 px and saved again as PNG.

One probe of compositions, written after every choice above (the hold-back of ``grouping.reaching_out`` was then
designed on it):

collage   24 train-split photos, each with a shrunk, re-saved copy, and 12 collages of them (two side by side, or
          four in a grid, on white or black with a gap of 0-16 px): a collage holds each of its photos whole,
          beside other pictures. It is a picture of its own, not a copy: a single in the truth.

One probe of near-black pictures, written after ``linkrule.faint_alike``'s bar was chosen (on train-split photos)
and kept out of it; ``linkrule.plain_alike`` was then designed on its seed-3 draw's false pair (``--seed 4`` is the
draw nothing was chosen on):

dark      40 eval-split photos darkened to 2-10 % with sensor noise (night shots, underexposed frames), every other
          one with one or two copies (re-saved at JPEG quality 60-85, brightened 1.2-1.6 times, or shrunk to
          0.5-0.8), and 6 black frames of noise alone: many are flat to their 32 px thumbnail.
darkturn  the same photos and frames, the copies turned a quarter, mirrored, or cropped by 3-12 % a side (written
          after ``linkrule.faint_alike``'s turns were chosen on train-split photos; nothing was chosen on it).

OUT/library and OUT/truth.json (make_library.py's format): score with ``dupesift groups --json`` and
../shared/eval/score.py.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "photos"
SIZE = (1200, 900)


def backdrop(r: random.Random) -> np.ndarray:
    w, h = SIZE
    base = np.array([r.randint(90, 220) for _ in range(3)], np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    vignette = 1 - 0.7 * (((xx - w / 2) / w) ** 2 + ((yy - h / 2) / h) ** 2)
    return np.clip(base * vignette[..., None], 0, 255).astype(np.uint8)


def shot(ground: np.ndarray, subject: Path, share: float) -> Image.Image:
    w, h = SIZE
    sub = Image.open(subject).convert("RGB")
    sw = int(w * share)
    sub = sub.resize((sw, int(sw * sub.height / sub.width)), Image.Resampling.BILINEAR)
    mask = Image.new("L", sub.size, 0)
    ImageDraw.Draw(mask).ellipse((0, 0, sub.width, sub.height), fill=255)
    im = Image.fromarray(ground)
    im.paste(sub, ((w - sub.width) // 2, (h - sub.height) // 2), mask.filter(ImageFilter.GaussianBlur(6)))
    return im


def sticker(k: int, r: random.Random) -> Image.Image:
    """The ``k``-th face of the set: eyes in one of 4 styles, a mouth in one of 5, blushing cheeks at random."""
    s, ink = 512, (60, 40, 20)
    im = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    d.ellipse((40, 40, 472, 472), fill=(255, 204, 51, 255), outline=(230, 160, 20, 255), width=8)
    ey = r.randint(170, 210)
    for ex in (180, 332):
        if k % 4 == 0:
            d.ellipse((ex - 25, ey - 35, ex + 25, ey + 35), fill=ink)
        elif k % 4 == 1:
            d.arc((ex - 40, ey - 20, ex + 40, ey + 40), 200, 340, fill=ink, width=14)
        elif k % 4 == 2:
            d.line((ex - 35, ey, ex + 35, ey), fill=ink, width=14)
        else:
            d.ellipse((ex - 40, ey - 40, ex + 40, ey + 40), fill=(255, 255, 255), outline=ink, width=6)
            d.ellipse((ex - 15, ey - 15, ex + 15, ey + 15), fill=ink)
    my, mouth, lip = r.randint(320, 350), (k // 4) % 5, (100, 50, 20)
    if mouth == 0:
        d.arc((150, my - 80, 362, my + 40), 20, 160, fill=lip, width=16)
    elif mouth == 1:
        d.arc((170, my, 342, my + 100), 200, 340, fill=lip, width=16)
    elif mouth == 2:
        d.line((190, my, 322, my), fill=lip, width=16)
    elif mouth == 3:
        d.ellipse((216, my - 40, 296, my + 40), fill=(120, 40, 30))
    else:
        d.chord((150, my - 90, 362, my + 60), 0, 180, fill=(120, 40, 30))
    if r.random() < 0.3:
        d.ellipse((100, 260, 150, 300), fill=(255, 120, 120, 200))
        d.ellipse((362, 260, 412, 300), fill=(255, 120, 120, 200))
    return im


Copy = tuple[str, Image.Image, dict, str]  # file name, picture, save options, the edit's name
Entry = tuple[str, Image.Image, dict, list[Copy]]  # file name, picture, save options, its copies


def write_library(out: Path, entries: Iterable[Entry]) -> dict:
    """Save each entry's picture and copies under ``out`` and write OUT/truth.json (make_library.py's format);
    returns the truth."""
    (out / "library").mkdir(parents=True, exist_ok=True)
    truth: dict = {"root": str(out), "groups": [], "singles": [], "edits": {}}
    for name, im, options, copies in entries:
        im.save(out / name, **options)
        if not copies:
            truth["singles"].append(name)
            continue
        for copy_name, copy_im, copy_options, edit in copies:
            copy_im.save(out / copy_name, **copy_options)
            truth["edits"][copy_name] = edit
        truth["groups"].append([name, *(c[0] for c in copies)])
    (out / "truth.json").write_text(json.dumps(truth, indent=1))
    return truth


def _shrunk(im: Image.Image, r: random.Random, least: float, name: str) -> Copy:
    """A copy of ``im`` shrunk by a factor from ``least`` to 0.8 and re-saved as JPEG at quality 60-85."""
    f = r.uniform(least, 0.8)
    small = im.resize((int(im.width * f), int(im.height * f)), Image.Resampling.BICUBIC)
    return name, small, {"quality": r.randint(60, 85)}, "resize+jpeg"


def stickers(r: random.Random, count: int = 20) -> Iterator[Entry]:
    for k in range(count):
        im, name = sticker(k, r), f"library/{k:03d}_sticker.png"
        copies = []
        if not k % 2:
            side = r.randint(96, 256)
            copies.append((f"library/{k:03d}_sticker_small.webp", im.resize((side, side), Image.Resampling.LANCZOS),
                           {"quality": 80}, "resize+webp"))
        yield name, im, {}, copies


def firework(r: random.Random) -> Image.Image:
    """1-3 bursts of coloured streaks on a near-black sky, softened, with sensor noise."""
    w, h = 1600, 1200
    im = Image.new("RGB", (w, h), (4, 4, 10))
    d = ImageDraw.Draw(im)
    for _ in range(r.randint(1, 3)):
        cx, cy, rad = r.randint(300, 1300), r.randint(200, 700), r.randint(120, 320)
        colour = tuple(r.randint(120, 255) for _ in range(3))
        for _ in range(r.randint(40, 90)):
            a, length = r.uniform(0, 2 * math.pi), rad * r.uniform(0.6, 1.0)
            d.line((cx, cy, cx + length * math.cos(a), cy + length * math.sin(a) + r.uniform(0, 30)), fill=colour,
                   width=r.randint(2, 4))
    return _noisy(np.asarray(im.filter(ImageFilter.GaussianBlur(1.2)), np.float32), r, 3)


def _series(r: random.Random, make: Callable[[random.Random], Image.Image], stem: str, quality: int,
            count: int = 24) -> Iterator[Entry]:
    """``count`` pictures from ``make``, every other one with a shrunk, re-saved copy."""
    for k in range(count):
        im = make(r)
        copies = [] if k % 2 else [_shrunk(im, r, 0.4, f"library/{k:03d}_{stem}_copy.jpg")]
        yield f"library/{k:03d}_{stem}.jpg", im, {"quality": quality}, copies


def _noisy(a: np.ndarray, r: random.Random, sigma: float) -> Image.Image:
    """``a`` with Gaussian sensor noise of ``sigma`` grey levels, as 8-bit pixels."""
    a = np.array(a, np.float32)
    a += np.random.default_rng(r.getrandbits(32)).normal(0, sigma, a.shape)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def fireworks(r: random.Random) -> Iterator[Entry]:
    return _series(r, firework, "fireworks", 88)


def backdrops(r: random.Random, count: int = 3, per: int = 10) -> Iterator[Entry]:
    photos = [p for n, p in enumerate(sorted(PHOTOS.glob("*.JPEG"))) if n % 5]  # the train split
    r.shuffle(photos)
    n = 0  # files so far: the copies are numbered too
    for b in range(count):
        ground, share = backdrop(r), 0.18 + 0.14 * b / max(1, count - 1)
        for k in range(per):
            im = shot(ground, photos.pop(), share)
            n += 1
            name, copies = f"library/{n:04d}_backdrop{b}.jpg", []
            if not k % 2:
                n += 1
                copies.append(_shrunk(im, r, 0.5, f"library/{n:04d}_backdrop{b}_copy.jpg"))
            yield name, im, {"quality": 90}, copies


def sky_ground(r: random.Random) -> np.ndarray:
    """A blue sky, lighter towards the horizon, with soft clouds."""
    w, h = SIZE
    yy = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    top, low = np.array([40, 110, 200], np.float32), np.array([170, 205, 240], np.float32)
    sky = Image.fromarray(np.broadcast_to(top + (low - top) * yy, (h, w, 3)).astype(np.uint8))
    clouds = Image.new("L", SIZE, 0)
    d = ImageDraw.Draw(clouds)
    for _ in range(r.randint(4, 8)):
        cx, cy, rx, ry = r.randint(0, w), r.randint(0, h), r.randint(80, 260), r.randint(30, 90)
        d.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=r.randint(120, 220))
    sky.paste(Image.new("RGB", SIZE, (245, 245, 250)), (0, 0), clouds.filter(ImageFilter.GaussianBlur(40)))
    return np.asarray(sky)


def skies(r: random.Random, count: int = 24) -> Iterator[Entry]:
    photos = [p for n, p in enumerate(sorted(PHOTOS.glob("*.JPEG"))) if n % 5]
    r.shuffle(photos)
    ground = sky_ground(r)
    w, h = SIZE
    for k in range(count):
        sub = Image.open(photos[-1 - k]).convert("RGB")
        sw = int(w * r.uniform(0.08, 0.14))
        sub = sub.resize((sw, int(sw * sub.height / sub.width)), Image.Resampling.BILINEAR)
        mask = Image.new("L", sub.size, 0)
        ImageDraw.Draw(mask).rounded_rectangle((4, 4, sub.width - 4, sub.height - 4), radius=sw // 5, fill=255)
        im = Image.fromarray(ground.copy())
        im.paste(sub, (r.randint(0, w - sub.width), r.randint(0, h - sub.height)), mask.filter(ImageFilter.GaussianBlur(3)))
        copies = [] if k % 2 else [_shrunk(im, r, 0.4, f"library/{k:03d}_sky_copy.jpg")]
        yield f"library/{k:03d}_sky.jpg", im, {"quality": 90}, copies


def moon(r: random.Random) -> Image.Image:
    """A grey disc on a night sky: its own place, size, craters and phase, blurred a little, with sensor noise."""
    w, h = 1600, 1200
    rad = r.randint(60, 150)
    cx, cy = r.randint(rad + 20, w - rad - 20), r.randint(rad + 20, h - rad - 20)
    disc = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(disc)
    d.ellipse((cx - rad, cy - rad, cx + rad, cy + rad), fill=r.randint(170, 230))
    for _ in range(r.randint(5, 14)):
        a, dist, cr = r.uniform(0, 2 * math.pi), rad * math.sqrt(r.random()) * 0.85, rad * r.uniform(0.08, 0.3)
        x, y = cx + dist * math.cos(a), cy + dist * math.sin(a)
        d.ellipse((x - cr, y - cr, x + cr, y + cr), fill=r.randint(110, 160))
    shade = Image.new("L", (w, h), 0)
    off = rad * r.uniform(0.4, 1.6) * r.choice((-1, 1))
    ImageDraw.Draw(shade).ellipse((cx - rad + off, cy - rad, cx + rad + off, cy + rad), fill=255)
    lit = np.asarray(disc.filter(ImageFilter.GaussianBlur(2)), np.float32) * \
        (1 - 0.9 * np.asarray(shade.filter(ImageFilter.GaussianBlur(6)), np.float32) / 255)
    return _noisy(np.stack([lit * 0.98 + 3, lit * 0.97 + 3, lit + 8], axis=-1), r, 2.5)


def moons(r: random.Random) -> Iterator[Entry]:
    return _series(r, moon, "moon", 90)


def icon(k: int, r: random.Random) -> Image.Image:
    """The ``k``-th icon of a set: a rounded square of one of two colours with a white letter."""
    from PIL import ImageFont

    s = 512
    im = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    d.rounded_rectangle((24, 24, s - 24, s - 24), radius=110, fill=((40, 120, 230, 255), (230, 70, 90, 255))[k % 2])
    font = ImageFont.load_default(size=300)
    letter = "ABCDEFGHKMNPRSTUVWXZ"[k % 20]
    d.text((s / 2 + r.randint(-6, 6), s / 2 + r.randint(-6, 6)), letter, fill=(255, 255, 255, 255), font=font,
           anchor="mm")
    return im


def icons(r: random.Random, count: int = 20) -> Iterator[Entry]:
    for k in range(count):
        im, copies = icon(k, r), []
        if not k % 2:
            side, webp = r.randint(64, 180), r.random() < 0.5
            copies.append((f"library/{k:03d}_icon_small.{'webp' if webp else 'png'}",
                           im.resize((side, side), Image.Resampling.LANCZOS), {"quality": 80} if webp else {},
                           "resize+webp" if webp else "resize"))
        yield f"library/{k:03d}_icon.png", im, {}, copies


def plane(ground: np.ndarray, r: random.Random) -> Image.Image:
    """A dark plane silhouette (fuselage, wings, tail of random proportions) somewhere on ``ground``."""
    im = Image.fromarray(ground.copy())
    h, w = ground.shape[:2]
    span = w * r.uniform(0.04, 0.08)
    cx, cy, turn = r.uniform(span, w - span), r.uniform(span, h * 0.7), r.uniform(0, 2 * math.pi)
    wing, tail, body = r.uniform(0.35, 0.5), r.uniform(0.12, 0.2), r.uniform(0.08, 0.14)
    shape = [(-0.5, -body / 2), (0.5, -body / 3), (0.55, 0), (0.5, body / 3), (-0.5, body / 2), (0.05, body / 2),
             (-0.1, wing), (-0.2, wing), (-0.05, body / 2), (-0.4, body / 2), (-0.5, tail), (-0.55, tail),
             (-0.5, 0), (-0.55, -tail), (-0.5, -tail), (-0.4, -body / 2), (-0.05, -body / 2), (-0.2, -wing),
             (-0.1, -wing), (0.05, -body / 2)]
    c, s_ = math.cos(turn), math.sin(turn)
    pts = [(cx + span * (x * c - y * s_), cy + span * (x * s_ + y * c)) for x, y in shape]
    ImageDraw.Draw(im).polygon(pts, fill=tuple(r.randint(15, 45) for _ in range(3)))
    return im.filter(ImageFilter.GaussianBlur(0.8))


def planes(r: random.Random, count: int = 24) -> Iterator[Entry]:
    w, h = SIZE
    yy = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    top, low = np.array([60, 50, 120], np.float32), np.array([250, 150, 70], np.float32)
    ground = np.broadcast_to(top + (low - top) * yy ** 1.5, (h, w, 3)).astype(np.uint8)
    for k in range(count):
        im, copies = plane(ground, r), []
        if not k % 2:
            gain = r.choice((-1, 1)) * r.uniform(0.1, 0.25) + 1
            lit = Image.fromarray(np.clip(np.asarray(im, np.float32) * gain, 0, 255).astype(np.uint8))
            name, small, options, _ = _shrunk(lit, r, 0.5, f"library/{k:03d}_plane_copy.jpg")
            copies.append((name, small, options, "bright+resize+jpeg"))
        yield f"library/{k:03d}_plane.jpg", im, {"quality": 90}, copies


def snows(r: random.Random, count: int = 24) -> Iterator[Entry]:
    photos = [p for n, p in enumerate(sorted(PHOTOS.glob("*.JPEG"))) if n % 5]
    r.shuffle(photos)
    w, h = SIZE
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    slope = 235 - 25 * (yy / h) - 10 * (xx / w)
    grain = np.random.default_rng(r.getrandbits(32)).normal(0, 2, (h, w)).astype(np.float32)
    ground = np.clip(np.stack([slope + grain - 4, slope + grain - 1, slope + grain + 3], -1), 0, 255).astype(np.uint8)
    for k in range(count):
        sub = Image.open(photos[k]).convert("RGB")
        sw = int(w * r.uniform(0.05, 0.09))
        sub = sub.resize((sw, int(sw * sub.height / sub.width)), Image.Resampling.BILINEAR)
        mask = Image.new("L", sub.size, 0)
        ImageDraw.Draw(mask).ellipse((0, 0, sub.width, sub.height), fill=255)
        im = Image.fromarray(ground.copy())
        im.paste(sub, (r.randint(int(w * 0.15), int(w * 0.85) - sub.width), r.randint(int(h * 0.15), int(h * 0.85) - sub.height)),
                 mask.filter(ImageFilter.GaussianBlur(2)))
        copies = []
        if not k % 2:
            c = r.uniform(0.03, 0.08)
            crop = im.crop((int(w * c), int(h * c), int(w * (1 - c)), int(h * (1 - c))))
            name, small, options, _ = _shrunk(crop, r, 0.5, f"library/{k:03d}_snow_copy.jpg")
            copies.append((name, small, options, "crop+resize+jpeg"))
        yield f"library/{k:03d}_snow.jpg", im, {"quality": 90}, copies


def _overlaid(pictures: list[Image.Image], overlays: dict[str, Callable[[Image.Image], Image.Image]]
              ) -> list[Entry]:
    """Each picture with one copy per overlay, named after it."""
    return [(f"library/{k:02d}_original.jpg", im, {"quality": 90},
             [(f"library/{k:02d}_{name}.jpg", overlay(im.copy()), {"quality": 85}, name)
              for name, overlay in overlays.items()])
            for k, im in enumerate(pictures)]


def captioned(r: random.Random) -> list[Entry]:
    from bench import confusers as C

    makers = [C.low_sky, C.low_sunset, C.low_linear, C.low_radial, C.low_blobs] * 2
    overlays = {"meme": lambda im: C.caption_meme(im, "when the weekend finally arrives", r, "tune"),
                "subtitle": lambda im: C.caption_subtitle(im, "we were there", r, "tune"),
                "logo": lambda im: C.wm_corner(im, r), "signature": lambda im: C.wm_signature(im, r)}
    return _overlaid([m(r, None).convert("RGB") for m in makers], overlays)


def marked(r: random.Random) -> list[Entry]:
    from bench import confusers as C

    photos = [p for n, p in enumerate(sorted(PHOTOS.glob("*.JPEG"))) if n % 5]
    r.shuffle(photos)
    pictures = [C.low_night(r, C.photo(photos[k])) for k in range(3)] + \
        [C.low_fog(r, C.photo(photos[3 + k])) for k in range(3)] + [C.low_radial(r, None) for _ in range(2)] + \
        [C.low_sunset(r, None) for _ in range(2)]
    overlays = {"centre": lambda im: C.wm_centre(im, r), "grid": lambda im: C.wm_grid(im, r),
                "story": lambda im: C.caption_story(im, "best day of the summer", r, "heldout")}
    return _overlaid([p.convert("RGB") for p in pictures], overlays)


def phone_photo(im: Image.Image, r: random.Random) -> Image.Image:
    """A steep phone photo of a page: inset 3-8 % on a desk, each corner moved in by up to 8-18 % (one
    perspective transform), the light falling off by 20-40 % in a random direction, a warm or cool cast, a blur
    of 0.8-1.6 px, shrunk to 60-85 % (``bench/confusers.py``'s tune recipe, ``lamp_photo``, moves corners 3-10 %)."""
    from bench import confusers as C

    w, h = im.size
    desk = C.on_desk(im, r.uniform(0.03, 0.08), r)
    a = np.asarray(C.perspective(desk, C.jittered_quad(w, h, r.uniform(0.08, 0.18), r)), np.float32)
    ramp = C.light_ramp(w, h, r)
    cast = [1.0, r.uniform(0.9, 1.0), r.uniform(0.75, 0.95)] if r.random() < 0.5 else \
        [r.uniform(0.85, 0.95), r.uniform(0.95, 1.0), 1.0]
    a *= (1.0 - r.uniform(0.2, 0.4) * ramp)[..., None] * np.array(cast, np.float32)
    photo = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(r.uniform(0.8, 1.6)))
    s = r.uniform(0.6, 0.85)
    return photo.resize((round(w * s), round(h * s)), Image.Resampling.BILINEAR)


def phone_pages(r: random.Random, count: int = 80) -> Iterator[Entry]:
    from bench import confusers as C

    for k in range(count):
        page = C.doc_invoice(k, r).convert("RGB")
        copies = [(f"library/{k:03d}_invoice_phone.jpg", phone_photo(page, r), {"quality": r.randint(70, 85)},
                   "phone")] if not k % 2 else []
        yield f"library/{k:03d}_invoice.png", page, {}, copies


OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")
SHOTS = ([f"left{k:02d}.jpg" for k in (*range(1, 10), 11, 12, 13, 14)]
         + [f"right{k:02d}.jpg" for k in (*range(1, 10), 11, 12, 13, 14)]
         + ["aloeL.jpg", "aloeR.jpg", "basketball1.png", "basketball2.png", "rubberwhale1.png", "rubberwhale2.png",
            "leuvenA.jpg", "leuvenB.jpg", "aero1.jpg", "aero3.jpg", "Blender_Suzanne1.jpg", "Blender_Suzanne2.jpg"])


def _need_opencv_data() -> None:
    if not OPENCV_DATA.is_dir():
        raise SystemExit(f"{OPENCV_DATA} missing: run bench/realimages.py --install (Debian's opencv-doc)")


def shots(r: random.Random) -> Iterator[Entry]:
    _need_opencv_data()
    for k, name in enumerate(SHOTS):
        im = Image.open(OPENCV_DATA / name).convert("RGB")
        stem = Path(name).stem
        copies = [_shrunk(im, r, 0.5, f"library/{stem}_copy.jpg")] if k % 2 else []
        yield f"library/{stem}.png", im, {}, copies
    original = Image.open(OPENCV_DATA / "ela_original.jpg").convert("RGB")
    edited = ("library/notebook_penguin.jpg", Image.open(OPENCV_DATA / "ela_modified.jpg").convert("RGB"),
              {"quality": 90}, "pasted")
    yield "library/notebook.png", original, {}, [edited]


ADWAITA = Path("/usr/share/icons/Adwaita/512x512")


def iconset(r: random.Random) -> Iterator[Entry]:
    if not ADWAITA.is_dir():
        raise SystemExit(f"{ADWAITA} missing: run bench/realimages.py --install (Debian's adwaita-icon-theme)")
    for k, path in enumerate(sorted(ADWAITA.glob("*/*.png"))):
        im = Image.open(path).convert("RGBA")
        stem = f"{path.parent.name}_{path.stem}"
        copies = []
        if k % 2:
            side = r.randint(96, 256)
            copies.append((f"library/{stem}_small.png", im.resize((side, side), Image.Resampling.LANCZOS), {},
                           "resize"))
        yield f"library/{stem}.png", im, {}, copies


VIDEOS = {"vtest.avi": (0, 795, 20), "Megamind.avi": (0, 270, 18), "tree.avi": (0, 444, 30)}  # first, end, step


def _video_frames(video: str, r: random.Random) -> Iterator[tuple[int, int, float, Image.Image]]:
    """(the step's first frame, the frame read, frames per second, the picture) for each ``VIDEOS`` step of
    ``video``, read at a random offset into the first half of the step."""
    import cv2

    _need_opencv_data()
    first, end, step = VIDEOS[video]
    cap = cv2.VideoCapture(str(OPENCV_DATA / video))
    fps = cap.get(cv2.CAP_PROP_FPS) or 10.0
    try:
        for n in range(first, end, step):
            at = n + r.randrange(step // 2)
            cap.set(cv2.CAP_PROP_POS_FRAMES, at)
            ok, bgr = cap.read()
            if not ok:
                break
            yield n, at, fps, Image.fromarray(bgr[..., ::-1].copy())
    finally:
        cap.release()


def frames(r: random.Random) -> Iterator[Entry]:
    k = 0
    for video in VIDEOS:
        for n, _, _, im in _video_frames(video, r):
            stem = f"{Path(video).stem}_{n:04d}"
            copies = [_shrunk(im, r, 0.5, f"library/{stem}_copy.jpg")] if k % 2 else []
            k += 1
            yield f"library/{stem}.png", im, {}, copies


def collages(r: random.Random, count: int = 24) -> Iterator[Entry]:
    photos = [p for n, p in enumerate(sorted(PHOTOS.glob("*.JPEG"))) if n % 5]  # the train split
    r.shuffle(photos)
    pictures = [Image.open(p).convert("RGB") for p in photos[:count]]
    for k, im in enumerate(pictures):
        yield f"library/{k:03d}_photo.jpg", im, {"quality": 90}, [_shrunk(im, r, 0.4, f"library/{k:03d}_photo_copy.jpg")]
    for k in range(count // 2):
        picked = r.sample(pictures, 4 if k % 3 == 2 else 2)
        yield f"library/{k:03d}_collage.jpg", collage(picked, r), {"quality": r.randint(75, 92)}, []


def collage(pictures: list[Image.Image], r: random.Random) -> Image.Image:
    """Two pictures side by side (a before/after, a comparison) or four in a grid, each scaled to one cell height
    (and a 2x2 cell width), on a white or black ground with a gap between them."""
    h, gap = r.randint(300, 480), r.randint(0, 16)
    cells = [im.resize((round(im.width * h / im.height), h), Image.Resampling.LANCZOS) for im in pictures]
    cols = 2
    rows = [cells[i:i + cols] for i in range(0, len(cells), cols)]
    w = max(sum(c.width for c in row) + gap * (len(row) + 1) for row in rows)
    out = Image.new("RGB", (w, h * len(rows) + gap * (len(rows) + 1)), r.choice([(255, 255, 255), (0, 0, 0)]))
    for y, row in enumerate(rows):
        x = gap
        for c in row:
            out.paste(c, (x, gap + y * (h + gap)))
            x += c.width + gap
    return out


def bursts(r: random.Random) -> Iterator[Entry]:
    import datetime

    start = datetime.datetime(2026, 5, 17, 16, 42, 0)
    k = 0
    for video in ("vtest.avi", "tree.avi"):
        for _, at, fps, im in _video_frames(video, r):
            moment = start + datetime.timedelta(seconds=at / fps)
            exif = Image.Exif()
            exif[0x010F], exif[0x0110] = "Probe", "Burst"
            sub = exif.get_ifd(0x8769)
            sub[0x9003], sub[0x9291] = moment.strftime("%Y:%m:%d %H:%M:%S"), f"{moment.microsecond // 10000:02d}"
            stem = f"{Path(video).stem}_{at:04d}"
            copies = []
            if k % 2:
                name, small, options, edit = _shrunk(im, r, 0.5, f"library/{stem}_copy.jpg")
                if k % 4 == 1:  # shared from the phone: the EXIF kept
                    options, edit = {**options, "exif": exif.tobytes()}, edit + "+exif"
                copies = [(name, small, options, edit)]
            k += 1
            yield f"library/{stem}.jpg", im, {"quality": 92, "exif": exif.tobytes()}, copies
        start += datetime.timedelta(minutes=5)


def darks(r: random.Random, count: int = 40,
          edits: tuple[str, ...] = ("resave", "bright", "shrink")) -> Iterator[Entry]:
    photos = [p for n, p in enumerate(sorted(PHOTOS.glob("*.JPEG"))) if not n % 5]  # the eval split
    rng = np.random.default_rng(r.getrandbits(32))
    for k, path in enumerate(r.sample(photos, count)):
        a = np.asarray(Image.open(path).convert("RGB"), np.float32)
        a = a * r.uniform(0.02, 0.10) + rng.normal(0, r.uniform(1.5, 3.0), a.shape)
        im, copies = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)), []
        if not k % 2:
            for edit in r.sample(edits, r.randint(1, 2)):
                name = f"library/{k:03d}_dark_{edit}.jpg"
                if edit in TURNS:
                    copies.append((name, im.transpose(TURNS[edit]), {"quality": r.randint(70, 90)}, f"{edit}+jpeg"))
                elif edit == "crop":
                    w, h = im.size
                    box = tuple(int(v * r.uniform(0.03, 0.12)) for v in (w, h, w, h))
                    copies.append((name, im.crop((box[0], box[1], w - box[2], h - box[3])),
                                   {"quality": r.randint(70, 90)}, "crop+jpeg"))
                elif edit == "resave":
                    copies.append((name, im, {"quality": r.randint(60, 85)}, "jpeg"))
                elif edit == "bright":
                    copies.append((name, ImageEnhance.Brightness(im).enhance(r.uniform(1.2, 1.6)), {"quality": 85},
                                   "exposure+jpeg"))
                else:
                    copies.append(_shrunk(im, r, 0.5, name))
        yield f"library/{k:03d}_dark.jpg", im, {"quality": 90}, copies
    for k in range(6):
        noise = rng.normal(r.uniform(2, 8), r.uniform(1.5, 3.0), (375, 500, 3))
        yield f"library/{k:03d}_black.jpg", Image.fromarray(np.clip(noise, 0, 255).astype(np.uint8)), {"quality": 90}, []


TURNS = {"turn": Image.Transpose.ROTATE_90, "mirror": Image.Transpose.FLIP_LEFT_RIGHT}


def darks_turned(r: random.Random) -> Iterator[Entry]:
    """``darks`` whose copies are turned a quarter, mirrored or cropped on each side."""
    return darks(r, edits=("turn", "mirror", "crop"))


RECIPES: dict[str, Callable[[random.Random], Iterable[Entry]]] = {
    "backdrop": backdrops, "sticker": stickers, "fireworks": fireworks, "sky": skies, "moon": moons, "icons": icons,
    "planes": planes, "snow": snows, "captioned": captioned, "marked": marked, "phonepages": phone_pages,
    "shots": shots, "frames": frames, "bursts": bursts, "iconset": iconset, "collage": collages, "dark": darks,
    "darkturn": darks_turned}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--recipe", choices=sorted(RECIPES), required=True)
    ap.add_argument("--seed", type=int, default=3)
    a = ap.parse_args(argv)
    truth = write_library(a.out, RECIPES[a.recipe](random.Random(a.seed)))
    files = len(truth["singles"]) + sum(len(g) for g in truth["groups"])
    print(f"{files} files, {len(truth['groups'])} groups of copies in {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
