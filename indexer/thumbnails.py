"""Thumbnails cached on disk under ``settings.thumbnails_dir/<size>/<sha[:2]>/<sha>.jpg``.

Keyed by content hash, so a moved file keeps its thumbnail and an edited file gets a new one.
Decoding is ingest's (``indexer.decode.open_image`` + ``decode_rgb``): pixel-count guard, typed errors,
reduced-scale JPEG decode, EXIF rotation, and the same mode handling (transparency on white, 16-bit rescaled).
"""
from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import BinaryIO

from PIL import Image

from indexer.decode import decode_rgb, open_image
from indexer.errors import DupesiftError

SIZES = (64, 128, 256, 512, 1024)
DEFAULT_SIZE = 256


class ThumbnailsBusy(DupesiftError):
    """Too many large thumbnails are being decoded right now (retry shortly)."""


class PixelBudget:
    """At most ``limit`` pixels being decoded at once across threads (a 27 KB PNG can hold 225 MP, 675 MB
    decoded); a photo larger than the whole budget decodes alone."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used = limit, 0
        self._cond = threading.Condition()

    @contextmanager
    def hold(self, pixels: int, wait_s: float) -> Iterator[None]:
        need = min(pixels, self.limit)
        with self._cond:
            if not self._cond.wait_for(lambda: self.used + need <= self.limit, wait_s):
                raise ThumbnailsBusy("too many large photos are being decoded for thumbnails: retry in a few seconds")
            self.used += need
        try:
            yield
        finally:
            with self._cond:
                self.used -= need
                self._cond.notify_all()


def decoded_pixels(im: Image.Image, size: int) -> int:
    """Pixels ``decode_rgb(im, size)`` will hold: JPEGs decode at the largest 1/2, 1/4 or 1/8 scale that keeps
    both sides at least ``size`` (``Image.draft``); other formats in full."""
    w, h = im.size
    scale = 1
    if im.format in ("JPEG", "MPO"):
        while scale < 8 and min(w, h) // (scale * 2) >= size:
            scale *= 2
    return (w // scale) * (h // scale)


def cache_path(thumbnails_dir: Path, sha256: str, size: int) -> Path:
    """Where the thumbnail of content ``sha256`` at ``size`` is cached."""
    return Path(thumbnails_dir) / str(size) / sha256[:2] / f"{sha256}.jpg"


def thumbnail(src: str | Path | BinaryIO, *, sha256: str, size: int, thumbnails_dir: Path, max_pixels: int,
              budget: PixelBudget | None = None, wait_s: float = 30.0) -> Path:
    """The cached JPEG thumbnail (longest side ``size``) of ``src`` (a path or a file open for reading), made on
    first use.

    Raises the ``ImageError`` subclasses of ``indexer.decode.open_image`` / ``decode_rgb`` for a file that is
    gone, unreadable, not an image, corrupt or over ``max_pixels``; ``ThumbnailsBusy`` when ``budget`` has no room
    for the decode within ``wait_s`` seconds.
    """
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}")
    out = cache_path(thumbnails_dir, sha256, size)
    if out.is_file():
        return out
    with open_image(src, max_pixels) as im, budget.hold(decoded_pixels(im, size), wait_s) if budget else nullcontext():
        rgb = decode_rgb(im, size)
        rgb.thumbnail((size, size), Image.Resampling.LANCZOS)
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            rgb.save(f, "JPEG", quality=85)
        os.replace(tmp, out)  # atomic: concurrent requests never see half a file
    return out
