"""Thumbnails cached on disk under ``settings.thumbnails_dir/<size>/<sha[:2]>/<sha>.jpg``.

Keyed by content hash, so a moved file keeps its thumbnail and an edited file gets a new one.
Decoding is ingest's (``indexer.decode.open_image`` + ``decode_rgb``): pixel-count guard, typed errors,
reduced-scale JPEG decode, EXIF rotation, and the same mode handling (transparency on white, 16-bit rescaled).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from PIL import Image

from indexer.decode import decode_rgb, open_image

SIZES = (64, 128, 256, 512, 1024)
DEFAULT_SIZE = 256


def cache_path(thumbnails_dir: Path, sha256: str, size: int) -> Path:
    """Where the thumbnail of content ``sha256`` at ``size`` is cached."""
    return Path(thumbnails_dir) / str(size) / sha256[:2] / f"{sha256}.jpg"


def thumbnail(src: str | Path | BinaryIO, *, sha256: str, size: int, thumbnails_dir: Path, max_pixels: int) -> Path:
    """The cached JPEG thumbnail (longest side ``size``) of ``src`` (a path or a file open for reading), made on
    first use.

    Raises the ``ImageError`` subclasses of ``indexer.decode.open_image`` / ``decode_rgb`` for a file that is
    gone, unreadable, not an image, corrupt or over ``max_pixels``.
    """
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}")
    out = cache_path(thumbnails_dir, sha256, size)
    if out.is_file():
        return out
    with open_image(src, max_pixels) as im:
        rgb = decode_rgb(im, size)
        rgb.thumbnail((size, size), Image.Resampling.LANCZOS)
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            rgb.save(f, "JPEG", quality=85)
        os.replace(tmp, out)  # atomic: concurrent requests never see half a file
    return out
