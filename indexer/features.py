"""What linking needs of a photo besides its vector, computed once from the decode that embeds it.

``extract`` turns a decoded photo into ``PhotoFeatures``: its SIFT keypoints (``indexer/verify.py``), a small grey
copy in the keypoints' frame (to check that the photo content agrees under a fitted transform) and colour
thumbnails of the whole picture and of its content, plain padding and borders cut off (``indexer/margins.py``:
to compare low-texture pictures, which give no keypoints, whether or not a copy was padded); for a page (``indexer/pagecheck.py``) also
its grey copy at the keypoints' frame, to compare text. The decode workers compute them beside
the model pixels, the batch store keeps them in the catalog (``features`` table, ``pack``), and the link step
reads them back instead of decoding the file again.
"""
from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

import numpy as np
from PIL import Image

from indexer import margins, pagecheck, verify

GREY_SIDE = 240  # long side of the grey copy content agreement compares (half the keypoints' frame)
THUMB = 32  # side of the colour thumbnail low-texture pictures are compared by
LOW_TEXTURE = 50  # fewer keypoints than this: a picture geometry cannot check (sky, gradient, blur)
FLAT_STD = 3.0  # colour thumbnail standard deviation below this, without keypoints: a flat picture
PACK_LEVEL = 1  # zlib level of the packed features: level 6 costs twice the time for 1.7 % fewer bytes
VERSION = 4  # of the packed format and of what ``extract`` computes: a change recomputes them


@dataclass(frozen=True)
class PhotoFeatures:
    keypoints: verify.Keypoints
    grey: np.ndarray  # uint8 (h, w), long side GREY_SIDE (or less), the keypoints' frame scaled
    thumb: np.ndarray  # uint8 (THUMB, THUMB, 3), the whole picture squashed
    page: np.ndarray | None = None  # uint8, the keypoints' frame: only for a page (``pagecheck.is_page``)
    content: np.ndarray | None = None  # like ``thumb``, of the picture inside its plain fill (``margins``)

    @property
    def content_thumb(self) -> np.ndarray:
        """The thumbnail of the content: plain padding, letterbox bars and a plain frame cut off (a page keeps
        its margins: they are its layout, and inside them every page of a template looks alike)."""
        return self.content if self.content is not None else self.thumb

    @property
    def grey_points(self) -> np.ndarray:
        """The keypoints' (x, y) in the grey copy's pixels."""
        return self.keypoints.views[0][0] * (self.grey.shape[1] / self.keypoints.size[0])

    @property
    def lit_page(self) -> bool:
        """A page only once its light is divided out (``pagecheck.is_page``): a photographed page."""
        return self.page is not None and not pagecheck.is_paper(self.grey)

    @property
    def texture(self) -> int:
        """Keypoints found: how much geometry there is to check."""
        return self.keypoints.count

    @property
    def low_texture(self) -> bool:
        return self.texture < LOW_TEXTURE

    @property
    def flat(self) -> bool:
        """No content at all (a solid colour): only a byte-identical copy is a duplicate of it."""
        return self.texture == 0 and float(self.thumb.astype(np.float32).std()) < FLAT_STD


def extract(rgb: Image.Image, overview: margins.Overview | None = None) -> PhotoFeatures:
    """Features of a decoded photo (any size; JPEGs draft-decoded to about ``verify.SIDE`` are enough);
    ``overview`` is its ``margins.look`` where the caller has it already."""
    kp = verify.keypoints(rgb)
    g = rgb.convert("L")
    g = g.resize(_fit(kp.size, GREY_SIDE), Image.Resampling.BILINEAR)
    grey = np.asarray(g, dtype=np.uint8)
    page = pagecheck.page_of(rgb, kp.size) if pagecheck.is_page(grey, kp.count) else None
    colour = rgb.convert("RGB") if rgb.mode != "RGB" else rgb
    thumb = np.asarray(colour.resize((THUMB, THUMB), Image.Resampling.BILINEAR), dtype=np.uint8)
    content = None
    if page is None:
        x0, y0, x1, y1 = margins.content_box((overview or margins.look(rgb)).plain, rgb.size)
        box = (x0, y0, min(x1, rgb.width), min(y1, rgb.height))
        if box != (0, 0, rgb.width, rgb.height):
            content = np.asarray(colour.resize((THUMB, THUMB), Image.Resampling.BILINEAR, box=box), dtype=np.uint8)
    return PhotoFeatures(kp, grey, thumb, page, content)


def _fit(size: tuple[int, int], side: int) -> tuple[int, int]:
    """``size`` scaled so its long side is ``side`` (never up: the frame's long side is verify.SIDE)."""
    s = side / max(size)
    return max(1, round(size[0] * s)), max(1, round(size[1] * s))


def pack(f: PhotoFeatures) -> bytes:
    """Bytes for the catalog: keypoints as float16 coordinates and uint8 descriptors (mirrored ones are
    derived again on unpack), the grey copy and the thumbnails."""
    xy, des = f.keypoints.views[0]
    parts = {"version": np.int32(VERSION), "size": np.int32(f.keypoints.size), "xy": xy.astype(np.float16),
             "des": des, "grey": f.grey, "thumb": f.thumb,
             "page": f.page if f.page is not None else np.zeros((0, 0), np.uint8),
             "content": f.content if f.content is not None else np.zeros((0, 0, 3), np.uint8)}
    buf = io.BytesIO()
    # np.savez_compressed's archive (np.load reads it), at a faster level: the descriptors barely compress
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=PACK_LEVEL) as z:
        for name, arr in parts.items():
            with z.open(f"{name}.npy", "w") as out:
                np.lib.format.write_array(out, np.asanyarray(arr), allow_pickle=False)
    return buf.getvalue()


def packed_facts(data: bytes) -> tuple[int | None, bool]:
    """(the ``VERSION`` packed features were made by, whether they are a page's), reading only those parts;
    (None, False) for bytes that are not packed features."""
    try:
        with np.load(io.BytesIO(data)) as z:
            return int(z["version"]), "page" in z.files and z["page"].size > 0
    except (ValueError, KeyError, OSError):
        return None, False


def unpack(data: bytes) -> PhotoFeatures:
    with np.load(io.BytesIO(data)) as z:
        kp = _keypoints(z)
        page, content = z["page"], z["content"]
        return PhotoFeatures(kp, z["grey"], z["thumb"], page if page.size else None, content if content.size else None)


def unpack_keypoints(data: bytes) -> verify.Keypoints:
    """The keypoints of packed features, without decompressing the rest."""
    with np.load(io.BytesIO(data)) as z:
        return _keypoints(z)


def _keypoints(z: np.lib.npyio.NpzFile) -> verify.Keypoints:
    if int(z["version"]) != VERSION:
        raise ValueError(f"features version {int(z['version'])}, expected {VERSION}")
    xy, des = z["xy"].astype(np.float32), z["des"]
    size = tuple(int(v) for v in z["size"])
    return verify.Keypoints(((xy, des), (xy, verify.mirrored(des))), size)  # type: ignore[arg-type]
