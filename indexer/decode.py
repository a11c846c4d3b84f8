"""Bytes -> RGB pixels, safely: EXIF orientation, reduced-size JPEG decode, bomb and corruption checks.

The one place photos are opened and decoded: ``open_image`` (guards, typed errors) then ``decode_rgb``
(first frame, draft, EXIF rotation, ``to_rgb``). Serving (``load_image``), training and calibration
(``indexer.augment.open_photo``) and thumbnails (``indexer.thumbnails``) all go through them.
``load_image`` never returns None: it returns a ``Decoded`` or raises an ``ImageError`` subclass.
"""
from __future__ import annotations

import hashlib
import io
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from indexer.errors import CorruptImage, EmptyFile, ImageError, ImageTooLarge, NotAnImage, UnreadableFile
from indexer.preprocess import to_model_pixels

try:  # HEIC/HEIF support; optional only so that a broken libheif cannot stop JPEG work
    import pillow_heif

    pillow_heif.register_heif_opener()
    HEIF = True
except ImportError:  # pragma: no cover - pillow-heif is a hard dependency
    HEIF = False

# We check pixel counts ourselves (ImageTooLarge) before decoding; Pillow's own guard would raise a
# warning at 89 MP and an error at 179 MP, which disagrees with the configured limit.
Image.MAX_IMAGE_PIXELS = None
# Pillow warns about odd but readable headers (corrupt EXIF, TIFF tags, palette transparency): noise in a
# log of thousands of files. Filtered once here: warnings.catch_warnings around each open is not thread-safe.
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL(\.|$)")
ImageFile.LOAD_TRUNCATED_IMAGES = False

ORIENTATION_TAG = 0x0112


@dataclass(frozen=True)
class Decoded:
    """A decoded photo: display size (after EXIF rotation), format, and the model-ready pixels."""

    width: int
    height: int
    format: str
    pixels: np.ndarray  # uint8 (S, S, 3) for the model, or the full RGB array when no size was asked
    camera: bool = False  # EXIF camera make/model or date taken
    taken: str | None = None  # the camera's capture time (``capture_time``), None when the file has none
    extra: object = None  # what load_image's ``extra`` made of the decoded picture


@dataclass(frozen=True)
class FileFacts:
    """What we know about a file from reading its bytes."""

    size: int
    sha256: str


def check_size(path: str | os.PathLike, max_bytes: int) -> int:
    """The file's size in bytes. Raises EmptyFile, ImageTooLarge (over ``max_bytes``) or UnreadableFile."""
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        raise UnreadableFile(f"cannot read file: {exc.strerror or exc}") from exc
    if size == 0:
        raise EmptyFile("zero-byte file")
    if size > max_bytes:
        raise ImageTooLarge(f"file is {size} bytes, over the {max_bytes}-byte limit")
    return size


def read_file(path: Path, max_bytes: int) -> tuple[bytes, FileFacts]:
    """Read a whole file and hash it. Raises EmptyFile, ImageTooLarge or UnreadableFile."""
    check_size(path, max_bytes)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UnreadableFile(f"cannot read file: {exc.strerror or exc}") from exc
    if not data:
        raise EmptyFile("zero-byte file")
    return data, FileFacts(size=len(data), sha256=hashlib.sha256(data).hexdigest())


CAMERA_TAGS = (0x010F, 0x0110)  # Make, Model
EXIF_IFD, DATE_TAKEN, SUBSEC_TAKEN = 0x8769, 0x9003, 0x9291  # DateTimeOriginal, SubSecTimeOriginal (Exif IFD)
TAKEN_LENGTH = 32  # characters of a capture time kept (the catalog's column)


def _exif_facts(im: Image.Image) -> tuple[tuple[int, int], bool, str | None]:
    """Display size after EXIF rotation, whether the file carries camera metadata (originals usually do;
    screenshots, exports and re-encodes usually lost it) and its capture time (``capture_time``)."""
    try:
        exif = im.getexif()
        orientation = exif.get(ORIENTATION_TAG, 1)
        sub = exif.get_ifd(EXIF_IFD)
        camera = any(exif.get(t) for t in CAMERA_TAGS) or bool(sub.get(DATE_TAKEN))
        taken = capture_time(sub.get(DATE_TAKEN), sub.get(SUBSEC_TAKEN))
    except Exception:  # noqa: BLE001 - malformed EXIF must not fail the photo
        orientation, camera, taken = 1, False, None
    w, h = im.size
    return ((h, w) if orientation in (5, 6, 7, 8) else (w, h)), camera, taken


def capture_time(date: object, subsec: object = None) -> str | None:
    """The moment the camera took the photo, as EXIF keeps it: "YYYY:MM:DD HH:MM:SS", with "." and the
    sub-second digits where the camera wrote them; None for a missing, blank or malformed date. Copies made by
    editing keep it (or lose it); two shots of a burst each have their own."""
    if not isinstance(date, str):
        return None
    date = date.strip().rstrip("\x00")
    if len(date) != 19 or not date[:4].isdigit() or date.startswith("0000"):
        return None
    digits = subsec.strip().rstrip("\x00") if isinstance(subsec, str) else ""
    return (f"{date}.{digits}" if digits.isdigit() else date)[:TAKEN_LENGTH]


STRIP_PIXELS = 1 << 18  # pixels per strip when converting: the temporaries stay around 5 MB


def _strips(im: Image.Image) -> list[tuple[int, int, int, int]]:
    """Boxes of whole rows covering ``im``, about STRIP_PIXELS each."""
    w, h = im.size
    rows = max(1, STRIP_PIXELS // max(w, 1))
    return [(0, y, w, min(h, y + rows)) for y in range(0, h, rows)]


def to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB; transparency is composited on white, 16-bit/float is rescaled.

    Work is done strip by strip into one output image, so the peak is the source plus the RGB result
    (a full-size RGBA/float64 temporary per step made a 36 MP RGBA PNG cost ~0.8 GB). Every step is
    per-pixel, so the pixels equal those of the whole-image conversion. An RGB image is returned as is.
    """
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        boxes = _strips(im)
        # fmin/fmax skip NaN like nanmin/nanmax but give NaN for an all-NaN strip without a warning (and
        # without warnings.catch_warnings, which is not thread-safe: verification decodes on threads)
        los, his = zip(*((np.fmin.reduce(a, axis=None), np.fmax.reduce(a, axis=None)) for a in
                         (np.asarray(im.crop(b), dtype=np.float64) for b in boxes)))
        lo, hi = float(np.fmin.reduce(np.array(los))), float(np.fmax.reduce(np.array(his)))
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        grey = Image.new("L", im.size)
        for b in boxes:
            arr = np.asarray(im.crop(b), dtype=np.float64)
            grey.paste(Image.fromarray(((arr - lo) * scale).astype(np.uint8), "L"), b[:2])
        im = grey
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        out = Image.new("RGB", im.size)
        for b in _strips(im):
            rgba = im.crop(b)
            rgba = rgba if rgba.mode == "RGBA" else rgba.convert("RGBA")
            bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            out.paste(Image.alpha_composite(bg, rgba).convert("RGB"), b[:2])
        return out
    return im.convert("RGB") if im.mode != "RGB" else im


def open_image(source: str | os.PathLike | bytes | BinaryIO, max_pixels: int) -> Image.Image:
    """Open a photo (a path, its bytes or an open binary file) lazily: only the header is read, nothing is
    decoded yet.

    Raises EmptyFile (zero bytes), UnreadableFile (missing or unreadable path), NotAnImage (no known
    format), CorruptImage (bad header or dimensions) or ImageTooLarge (over ``max_pixels``, checked from
    the header, before any pixel is decoded: decompression bombs cost nothing).
    """
    data = source if isinstance(source, (bytes, bytearray)) else None
    try:
        if data is not None:
            size = len(data)
        else:
            size = os.fstat(source.fileno()).st_size if hasattr(source, "fileno") else os.stat(source).st_size
        if size == 0:
            raise EmptyFile("zero-byte file")
        im = Image.open(io.BytesIO(data) if data is not None else source)
    except ImageError:
        raise
    except UnidentifiedImageError as exc:  # an OSError: before that clause
        raise NotAnImage("not a recognised image format") from exc
    except FileNotFoundError as exc:
        raise UnreadableFile(f"file is gone: {source}") from exc
    except OSError as exc:
        raise UnreadableFile(f"cannot open: {exc.strerror or exc}") from exc
    except Exception as exc:  # Pillow plugins raise assorted errors on garbage headers
        raise CorruptImage(f"bad image header: {exc}") from exc
    w, h = im.size
    if w <= 0 or h <= 0:
        im.close()
        raise CorruptImage(f"invalid dimensions {w}x{h}")
    if w * h > max_pixels:
        im.close()
        raise ImageTooLarge(f"{w}x{h} = {w * h / 1e6:.0f} MP is over the {max_pixels / 1e6:.0f} MP limit")
    return im


def decode_rgb(im: Image.Image, draft: int | None = None) -> Image.Image:
    """Decode an ``open_image`` result: first frame, EXIF orientation applied, ``to_rgb``.

    With ``draft``, JPEG-family files decode at the largest DCT scale that keeps both sides >= ``draft``
    (other formats ignore it). The work is done in place, so the result may be ``im`` itself: use it
    before closing ``im``. On any failure ``im`` is closed. Raises CorruptImage for bad or truncated
    data; MemoryError passes through (the machine's state, not the file's: each caller answers it).
    """
    try:
        if getattr(im, "n_frames", 1) > 1:
            im.seek(0)
        if draft is not None:
            im.draft("RGB", (draft, draft))
        im.load()
        ImageOps.exif_transpose(im, in_place=True)  # not a copy when there is nothing to turn
        return to_rgb(im)
    except BaseException as exc:
        im.close()
        if isinstance(exc, (ImageError, MemoryError)) or not isinstance(exc, Exception):
            raise
        msg = str(exc) or exc.__class__.__name__
        reason = "truncated" if "truncated" in msg.lower() else "corrupt"
        raise CorruptImage(f"{reason} image data: {msg}") from exc


def load_image(source: Path | bytes, *, max_pixels: int, size: int | None,
               extra: Callable[[Image.Image], object] | None = None, extra_side: int = 0) -> Decoded:
    """Decode a photo. With ``size``, return model pixels (size × size); JPEGs decode at reduced scale.
    With ``extra``, also call it on the decoded picture (``Decoded.extra``): at its long side at least
    ``extra_side`` where the photo has it (a JPEG drafted smaller for the model is decoded again, drafted
    to ``extra_side``).

    Raises a subclass of ImageError for empty, non-image, corrupt, truncated or oversized input.
    """
    with open_image(source, max_pixels) as im:
        fmt = (im.format or "UNKNOWN").upper()
        (width, height), camera, taken = _exif_facts(im)
        # Only format "JPEG" drafts (not MPO): model pixels must stay those of the vectors already indexed.
        rgb = decode_rgb(im, size if size is not None and fmt == "JPEG" else None)
        pixels = to_model_pixels(rgb, size) if size is not None else np.asarray(rgb, dtype=np.uint8)
        made = None
        if extra is not None:
            if max(rgb.size) < min(extra_side, max(width, height)):
                with open_image(source, max_pixels) as again:
                    made = extra(decode_rgb(again, extra_side))
            else:
                made = extra(rgb)
    return Decoded(width=width, height=height, format=fmt, pixels=pixels, camera=camera, taken=taken, extra=made)
