"""Link features in the catalog: kept from the decode that embedded a photo, read back by the link step.

A photo indexed before features were kept (or whose features could not be computed then) has none: the link
step reads its file once (``FeatureSource``), computes them as the decode workers do and keeps them, so each
file is decoded for linking at most once. Rows carry the content hash they were computed from: a row of other
content is never used.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from indexer import features, verify
from indexer.catalog import Features, Image
from indexer.catalog.queries import execute_in, rows_in, scalars_in
from indexer.decode import check_size, decode_rgb, open_image
from indexer.errors import ImageError, ImageTooLarge, UnreadableFile
from indexer.features import PhotoFeatures

log = logging.getLogger(__name__)
T = TypeVar("T")


def save(s: Session, rows: Iterable[tuple[int, str, bytes]]) -> None:
    """Keep packed features (image id, content hash, bytes), replacing any earlier ones of those photos."""
    kept = [(i, h, d, *features.packed_facts(d)) for i, h, d in rows if d is not None]
    if not kept:
        return
    execute_in(s, delete(Features), Features.image_id, [i for i, *_ in kept])
    s.execute(insert(Features), [{"image_id": i, "sha256": h, "data": d, "version": v, "page": p}
                                 for i, h, d, v, p in kept])


def pages(s: Session, ids: Iterable[int]) -> set[int]:
    """Those of ``ids`` whose kept features are current (of the photo's content and this ``features.VERSION``)
    and a page's (``indexer/pagecheck.py``)."""
    stmt = select(Features.image_id).join(Image, Image.id == Features.image_id).where(
        Image.sha256 == Features.sha256, Features.version == features.VERSION, Features.page.is_(True))
    return set(scalars_in(s, stmt, Features.image_id, set(ids)))


def stale(s: Session, ids: Iterable[int]) -> set[int]:
    """Those of ``ids`` with no current kept features: none, of other content, or of another
    ``features.VERSION``. A row kept before versions were recorded is read once to learn its version (and its
    page flag with it)."""
    ids = set(ids)
    stmt = select(Features.image_id, Features.version).join(Image, Image.id == Features.image_id).where(
        Image.sha256 == Features.sha256)
    rows = dict(rows_in(s, stmt, Features.image_id, ids))
    unknown = [i for i, v in rows.items() if v is None]
    if unknown:
        learnt = {i: features.packed_facts(d)
                  for i, d in rows_in(s, select(Features.image_id, Features.data), Features.image_id, unknown)}
        s.execute(update(Features), [{"image_id": i, "version": v, "page": p} for i, (v, p) in learnt.items()])
        rows.update((i, v) for i, (v, _) in learnt.items())
    return {i for i in ids if rows.get(i) != features.VERSION}


def load(s: Session, ids: Iterable[int]) -> dict[int, PhotoFeatures]:
    """The kept features of ``ids`` that match each photo's current content."""
    return _load(s, ids, features.unpack)


def keypoints(s: Session, ids: Iterable[int]) -> dict[int, verify.Keypoints]:
    """The keypoints alone of ``load``."""
    return _load(s, ids, features.unpack_keypoints)


def _load(s: Session, ids: Iterable[int], unpack: Callable[[bytes], T]) -> dict[int, T]:
    out: dict[int, T] = {}
    stmt = select(Features.image_id, Features.data).join(Image, Image.id == Features.image_id).where(
        Image.sha256 == Features.sha256)
    for i, data in rows_in(s, stmt, Features.image_id, set(ids)):
        try:
            out[i] = unpack(data)
        except (ValueError, KeyError, OSError):  # an older format: computed again from the file
            log.info("features of image %s are in an old format: read again", i)
    return out


def of_file(source: os.PathLike | bytes, max_pixels: int, max_bytes: int | None = None) -> PhotoFeatures:
    """Features of a photo file or its bytes, decoded as serving decodes it (JPEGs drafted to about
    ``verify.SIDE``). Raises an ``ImageError`` subclass for a file that cannot be used (gone: UnreadableFile;
    corrupt, over ``max_pixels`` or ``max_bytes``), the limits the decode pool applies."""
    if max_bytes is not None and not isinstance(source, (bytes, bytearray)):
        check_size(source, max_bytes)
    im = open_image(source, max_pixels)
    try:
        with decode_rgb(im, verify.SIDE) as rgb:
            return features.extract(rgb)
    except MemoryError as exc:
        raise ImageTooLarge("not enough memory to decode for linking") from exc
    finally:
        im.close()


class FeatureSource:
    """Features of catalogued photos for one link step: from the catalog, else read from the file once (and
    kept). ``failed`` names the photos whose file cannot be read now (gone, no permission, I/O error: try
    again later), ``unusable`` those that read but give no features (the same on every try)."""

    def __init__(self, s: Session, *, max_pixels: int, max_bytes: int | None = None, threads: int | None = None
                 ) -> None:
        self.s = s
        self.max_pixels = max_pixels
        self.max_bytes = max_bytes
        self.threads = threads or os.cpu_count() or 1
        self.cache: dict[int, PhotoFeatures | None] = {}
        self.failed: dict[int, str] = {}
        self.unusable: dict[int, str] = {}
        self.read = 0  # files decoded for want of kept features

    def get(self, ids: Iterable[int]) -> dict[int, PhotoFeatures | None]:
        """Features of ``ids`` (None for a photo in ``failed`` or ``unusable``)."""
        want = set(ids) - self.cache.keys()
        if want:
            kept = load(self.s, want)
            self.cache.update(kept)
            missing = sorted(want - kept.keys())
            if missing:
                self._read(missing)
        return {i: self.cache.get(i) for i in ids}

    def _read(self, ids: list[int]) -> None:
        meta = dict(rows_in(self.s, select(Image.id, Image.path), Image.id, ids))
        sha = dict(rows_in(self.s, select(Image.id, Image.sha256), Image.id, ids))

        def one(i: int) -> tuple[int, PhotoFeatures | None]:
            path = meta.get(i)
            if path is None:
                self.failed[i] = "not in the catalog"
                return i, None
            try:
                return i, of_file(Path(path), self.max_pixels, self.max_bytes)
            except UnreadableFile as exc:
                self.failed[i] = str(exc)
                log.warning("linking cannot read %s: %s", path, exc)
            except ImageError as exc:
                self.unusable[i] = str(exc)
                log.warning("linking cannot use %s: %s", path, exc)
            except Exception as exc:  # an OpenCV or decoder error on one photo stops no other
                self.unusable[i] = f"{exc.__class__.__name__}: {exc}"
                log.warning("link features failed on %s", path, exc_info=True)
            return i, None

        with ThreadPoolExecutor(self.threads) as pool:
            got = dict(pool.map(one, ids))
        self.read += len(ids)
        self.cache.update(got)
        save(self.s, [(i, sha[i], features.pack(f)) for i, f in got.items() if f is not None and sha.get(i)])
