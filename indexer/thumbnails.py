"""Thumbnails cached on disk under ``settings.thumbnails_dir/<size>/<sha[:2]>/<sha>.jpg``.

Keyed by content hash, so a moved file keeps its thumbnail and an edited file gets a new one.
Decoding is bounded like ingest: pixel-count guard, reduced-scale JPEG decode, EXIF rotation.
"""
from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from indexer.errors import CorruptImage, ImageTooLarge, NotAnImage, UnreadableFile

SIZES = (64, 128, 256, 512, 1024)
DEFAULT_SIZE = 256


def cache_path(thumbnails_dir: Path, sha256: str, size: int) -> Path:
    return Path(thumbnails_dir) / str(size) / sha256[:2] / f"{sha256}.jpg"


def thumbnail(src: str | Path, *, sha256: str, size: int, thumbnails_dir: Path, max_pixels: int) -> Path:
    """The cached JPEG thumbnail (longest side ``size``) of ``src``, made on first use."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}")
    out = cache_path(thumbnails_dir, sha256, size)
    if out.is_file():
        return out
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im = Image.open(src)
    except FileNotFoundError as exc:
        raise UnreadableFile(f"file is gone: {src}") from exc
    except UnidentifiedImageError as exc:
        raise NotAnImage("not a recognised image format") from exc
    except OSError as exc:
        raise UnreadableFile(f"cannot open: {exc}") from exc
    with im:
        w, h = im.size
        if w * h > max_pixels:
            raise ImageTooLarge(f"{w}x{h} is over the {max_pixels / 1e6:.0f} MP limit")
        try:
            if getattr(im, "n_frames", 1) > 1:
                im.seek(0)
            if (im.format or "").upper() == "JPEG":
                im.draft("RGB", (size, size))
            im.load()
            im = ImageOps.exif_transpose(im) or im
            if im.mode not in ("RGB", "L"):
                im = im.convert("RGBA") if "A" in im.mode or "transparency" in im.info else im.convert("RGB")
                if im.mode == "RGBA":
                    bg = Image.new("RGB", im.size, (255, 255, 255))
                    bg.paste(im, mask=im.split()[3])
                    im = bg
            im.thumbnail((size, size), Image.Resampling.LANCZOS)
            out.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                im.convert("RGB").save(f, "JPEG", quality=85)
            os.replace(tmp, out)  # atomic: concurrent requests never see half a file
        except (OSError, SyntaxError, ValueError) as exc:
            raise CorruptImage(f"cannot decode: {exc}") from exc
    return out
