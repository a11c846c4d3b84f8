"""Bytes -> RGB pixels, safely: EXIF orientation, reduced-size JPEG decode, bomb and corruption checks.

``load_image`` never returns None: it returns a ``Decoded`` or raises an ``ImageError`` subclass.
"""
from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

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


@dataclass(frozen=True)
class FileFacts:
    """What we know about a file from reading its bytes."""

    size: int
    sha256: str


def read_file(path: Path, max_bytes: int) -> tuple[bytes, FileFacts]:
    """Read a whole file and hash it. Raises EmptyFile, ImageTooLarge or UnreadableFile."""
    try:
        size = os.stat(path).st_size
        if size == 0:
            raise EmptyFile("zero-byte file")
        if size > max_bytes:
            raise ImageTooLarge(f"file is {size} bytes, over the {max_bytes}-byte limit")
        data = Path(path).read_bytes()
    except ImageError:
        raise
    except OSError as exc:
        raise UnreadableFile(f"cannot read file: {exc.strerror or exc}") from exc
    if not data:
        raise EmptyFile("zero-byte file")
    return data, FileFacts(size=len(data), sha256=hashlib.sha256(data).hexdigest())


CAMERA_TAGS = (0x010F, 0x0110)  # Make, Model
EXIF_IFD, DATE_TAKEN = 0x8769, 0x9003  # DateTimeOriginal lives in the Exif sub-IFD


def _exif_facts(im: Image.Image) -> tuple[tuple[int, int], bool]:
    """Display size after EXIF rotation, and whether the file carries camera metadata (originals
    usually do; screenshots, exports and re-encodes usually lost it)."""
    try:
        exif = im.getexif()
        orientation = exif.get(ORIENTATION_TAG, 1)
        camera = any(exif.get(t) for t in CAMERA_TAGS) or bool(exif.get_ifd(EXIF_IFD).get(DATE_TAKEN))
    except Exception:  # malformed EXIF must not fail the photo
        orientation, camera = 1, False
    w, h = im.size
    return ((h, w) if orientation in (5, 6, 7, 8) else (w, h)), camera


def _to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB; transparency is composited on white, 16-bit/float is rescaled."""
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        arr = np.asarray(im, dtype=np.float64)
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        im = Image.fromarray(((arr - lo) * scale).astype(np.uint8), "L")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    return im.convert("RGB") if im.mode != "RGB" else im


def load_image(source: Path | bytes, *, max_pixels: int, size: int | None) -> Decoded:
    """Decode a photo. With ``size``, return model pixels (size × size); JPEGs decode at reduced scale.

    Raises a subclass of ImageError for empty, non-image, corrupt, truncated or oversized input.
    """
    data = source if isinstance(source, (bytes, bytearray)) else None
    if data is not None and len(data) == 0:
        raise EmptyFile("zero-byte file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im = Image.open(io.BytesIO(data) if data is not None else source)
    except UnidentifiedImageError as exc:
        raise NotAnImage("not a recognised image format") from exc
    except OSError as exc:
        raise UnreadableFile(f"cannot open: {exc}") from exc
    except Exception as exc:  # Pillow plugins raise assorted errors on garbage headers
        raise CorruptImage(f"bad image header: {exc}") from exc
    with im:
        fmt = (im.format or "UNKNOWN").upper()
        w, h = im.size
        if w <= 0 or h <= 0:
            raise CorruptImage(f"invalid dimensions {w}x{h}")
        if w * h > max_pixels:
            raise ImageTooLarge(f"{w}x{h} = {w * h / 1e6:.0f} MP is over the {max_pixels / 1e6:.0f} MP limit")
        (width, height), camera = _exif_facts(im)
        try:
            if getattr(im, "n_frames", 1) > 1:
                im.seek(0)
            if size is not None and fmt == "JPEG":
                # draft() picks the largest DCT scale that keeps both sides >= the requested size.
                im.draft("RGB", (size, size))
            im.load()
            im = ImageOps.exif_transpose(im) or im
            rgb = _to_rgb(im)
        except ImageError:
            raise
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct_error()) as exc:
            msg = str(exc) or exc.__class__.__name__
            reason = "truncated" if "truncated" in msg.lower() else "corrupt"
            raise CorruptImage(f"{reason} image data: {msg}") from exc
        except Exception as exc:
            raise CorruptImage(f"cannot decode: {exc}") from exc
        pixels = to_model_pixels(rgb, size) if size is not None else np.asarray(rgb, dtype=np.uint8)
    return Decoded(width=width, height=height, format=fmt, pixels=pixels, camera=camera)


def struct_error() -> type[Exception]:
    import struct

    return struct.error
