"""Geometric verification of near-threshold pairs: do two photos share one picture, point for point?

The embedding's cosine ranks pairs; below the duplicate threshold, the copies it misses (heavy chains of
edits: a turn, grey and a crop together) sit among look-alike photos (two cars, two beetles) that no
threshold separates. Those look-alikes share a kind of content but not its geometry. So a pair whose
cosine is within ``verify_band`` below the threshold is checked: SIFT keypoints of both photos (grey, long
side ``SIDE``; the second photo's also as mirrored, since SIFT is turn- but not flip-invariant), matched by
Lowe's ratio test (one match per point), and an affine transform fitted by RANSAC, both ways round. The pair is
a duplicate when at least ``min_inliers`` matches agree on that transform in both directions, the transform is
not degenerate and its inliers spread over both photos. No model, no torch: OpenCV only.

Measured on the 200 held-out train-split photos (3 copies each, the calibration pairs, v17's cosines, four
draws of copies; models/dupesift-arcface-kd-lite0.md, "Verification"): no different-photo pair within 0.35
below the threshold was confirmed (at most 8 inliers, of ~3,100 checked per draw), while the copies there
mostly have dozens.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from indexer.errors import ImageError, UnreadableFile

log = logging.getLogger(__name__)

__all__ = ["RULE", "Keypoints", "Verifier", "inliers", "keypoints", "keypoints_of", "mirrored", "one_way",
           "same_picture"]

SIDE = 480  # long side the photo is shrunk to before keypoints (JPEGs draft-decode to about this)
FEATURES = 600  # SIFT keypoints kept per photo (strongest first)
RATIO = 0.75  # Lowe's ratio test: best match closer than RATIO × the second best
REPROJ_PX = 4.0  # RANSAC inlier distance, in pixels at SIDE
MIN_MATCHES = 5  # fewer ratio-test matches than this: no transform is fitted
# The inliers' bounding box must cover this share of the first photo: matches bunched in one spot (a logo or
# watermark that two different photos share) are not one picture.
MIN_SPREAD = 0.05
PROGRESS_EVERY = 256  # pairs checked between progress reports
MAX_AREA_RATIO = 16.0  # a copy's transform scales area by 1/16-16 (a crop to a quarter of each side at most)
RULE = (f"sift{FEATURES}@{SIDE}/mirror-perm/ratio{RATIO}/unique/affine{REPROJ_PX}/area{MAX_AREA_RATIO:g}/"
        f"spread{MIN_SPREAD}/symmetric")  # recorded in the catalog: a change relinks


@dataclass(frozen=True)
class Keypoints:
    """SIFT keypoints of one photo, as is and mirrored: (xy float32 (n, 2), descriptors uint8 (n, 128))."""

    views: tuple[tuple[np.ndarray, np.ndarray], ...]  # as is, mirrored (``mirrored``)
    size: tuple[int, int]  # (width, height) of the photo in the keypoints' frame (long side SIDE)

    @property
    def count(self) -> int:
        return len(self.views[0][0])


def _cv2():  # imported late: only linking needs it
    import cv2

    return cv2


def keypoints(im: Image.Image) -> Keypoints:
    """Keypoints of a decoded photo (any mode; it is turned grey and shrunk to ``SIDE``)."""
    cv2 = _cv2()
    g = im.convert("L")  # always a new image, so shrinking it in place leaves ``im`` alone
    if max(g.size) > SIDE:
        g.thumbnail((SIDE, SIDE), Image.Resampling.BILINEAR)
    a = np.asarray(g, dtype=np.uint8)
    kp, des = cv2.SIFT_create(nfeatures=FEATURES).detectAndCompute(a, None)
    # Points are kept in a frame whose long side is SIDE, so RANSAC's pixel tolerance means the same share
    # of the picture for a thumbnail as for a full-size photo (on a 90 px thumbnail, 4 of its own pixels
    # would be a tolerance of 5 %, loose enough to fit unrelated photos).
    scale = SIDE / max(a.shape)
    size = (round(a.shape[1] * scale), round(a.shape[0] * scale))
    if des is None or not kp:
        empty = (np.zeros((0, 2), np.float32), np.zeros((0, 128), np.uint8))
        return Keypoints((empty, empty), size)
    xy = np.float32([k.pt for k in kp]) * scale
    des = np.clip(des, 0, 255).astype(np.uint8)
    return Keypoints(((xy, des), (xy, mirrored(des))), size)


def mirrored(des: np.ndarray) -> np.ndarray:
    """The SIFT descriptors the mirrored photo would give at the same keypoints (to sampling error).

    A descriptor is 4 × 4 cells (rows along the keypoint's own y axis) of 8 gradient-angle bins measured
    from the keypoint's orientation; mirroring the photo flips that y axis and negates every angle. The
    points keep their coordinates: the full affine fit in ``inliers`` includes reflections. Half the cost
    of a second SIFT pass over the mirrored pixels, with the same held-out results."""
    d = des.reshape(-1, 4, 4, 8)[:, ::-1]
    return np.ascontiguousarray(d[..., (8 - np.arange(8)) % 8].reshape(-1, 128))


def keypoints_of(source: Path | bytes, max_pixels: int, max_bytes: int | None = None) -> Keypoints:
    """Keypoints of a photo file or its bytes, decoded as serving decodes it (``indexer.decode``; JPEGs at
    about ``SIDE``). Raises an ``ImageError`` subclass for a file that cannot be used (gone, corrupt, over
    ``max_pixels`` or ``max_bytes``), the limits the decode pool applies."""
    from indexer.decode import check_size, decode_rgb, open_image
    from indexer.errors import ImageTooLarge

    if max_bytes is not None and not isinstance(source, (bytes, bytearray)):
        check_size(source, max_bytes)
    im = open_image(source, max_pixels)
    try:
        with decode_rgb(im, SIDE) as rgb:
            return keypoints(rgb)
    except MemoryError as exc:
        raise ImageTooLarge("not enough memory to decode for verification") from exc
    finally:
        im.close()


def inliers(a: Keypoints, b: Keypoints) -> int:
    """How many keypoint matches one affine transform explains between ``a`` and ``b``: the smaller of the
    two directions (``one_way``), so the answer does not depend on which photo comes first."""
    return min(one_way(a, b), one_way(b, a))


def same_picture(a: Keypoints, b: Keypoints, min_inliers: int) -> bool:
    """``inliers(a, b) >= min_inliers``, without the second direction when the first already falls short."""
    return one_way(a, b) >= min_inliers and one_way(b, a) >= min_inliers


def one_way(a: Keypoints, b: Keypoints) -> int:
    """The most matches of ``a`` that one affine transform (reflections included) maps onto ``b``, with ``b``'s
    descriptors as they are or as mirrored. 0 when the transform is degenerate (it shrinks or grows area more
    than ``MAX_AREA_RATIO``: a collapsed fit makes every match that lands on one spot an inlier) or when
    its inliers are bunched in under ``MIN_SPREAD`` of either photo."""
    cv2 = _cv2()
    xa, da = a.views[0]
    if len(da) < 2:
        return 0
    matcher = cv2.BFMatcher(cv2.NORM_L2)
    best = 0
    for xb, db in b.views:
        if len(db) < 2:
            continue
        knn = matcher.knnMatch(da.astype(np.float32), db.astype(np.float32), k=2)
        good: dict[int, cv2.DMatch] = {}
        for m in knn:  # the ratio test, then one match per point of b (the closest)
            if len(m) == 2 and m[0].distance < RATIO * m[1].distance and \
                    (m[0].trainIdx not in good or m[0].distance < good[m[0].trainIdx].distance):
                good[m[0].trainIdx] = m[0]
        if len(good) < MIN_MATCHES:
            continue
        src = xa[[m.queryIdx for m in good.values()]]
        dst = xb[[m.trainIdx for m in good.values()]]
        affine, mask = cv2.estimateAffine2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=REPROJ_PX)
        if affine is None or mask is None or not mask.any():
            continue
        area = abs(float(np.linalg.det(affine[:, :2])))
        if not 1 / MAX_AREA_RATIO <= area <= MAX_AREA_RATIO:
            continue
        keep = mask.ravel().astype(bool)
        if _spread(src[keep]) >= MIN_SPREAD * a.size[0] * a.size[1] and \
                _spread(dst[keep]) >= MIN_SPREAD * b.size[0] * b.size[1]:
            best = max(best, int(keep.sum()))
    return best


def _spread(pts: np.ndarray) -> float:
    return float(np.prod(pts.max(0) - pts.min(0)))


class Verifier:
    """Checks pairs of catalogued photos, holding the keypoints (~155 KB a photo) of at most ``max_photos``
    photos at once: a run of pairs whose photos fit is one chunk, and a photo still needed by the next chunk
    is kept, not read again. Up to ``max_photos`` photos in the band, each file is read once.

    ``path_of`` maps image ids to paths; a photo that cannot be read now (gone, no permission, I/O error:
    ``UnreadableFile``) verifies nothing: its pairs are neither confirmed nor declined (``undecided``), and
    ``failed`` says why, so that the caller can try them again later. A photo that reads but cannot be used
    (corrupt, over a limit, a decoder or OpenCV error: the same on every try) and a pair whose matching fails
    are not confirmed (``unusable`` says why). Photos are read and
    pairs matched on ``threads`` threads (OpenCV and Pillow release the GIL; the caller passes the decode
    pool's size)."""

    def __init__(self, path_of: Callable[[Iterable[int]], dict[int, str]], *, min_inliers: int,
                 max_pixels: int, max_bytes: int | None = None, threads: int | None = None,
                 max_photos: int = 2048, on_progress: Callable[[int], None] | None = None) -> None:
        self.path_of = path_of
        self.min_inliers = min_inliers
        self.max_pixels = max_pixels
        self.max_bytes = max_bytes
        self.threads = threads or os.cpu_count() or 1
        self.max_photos = max(2, max_photos)
        self.on_progress = on_progress  # called with ``checked`` every PROGRESS_EVERY pairs of ``verify``
        self.failed: dict[int, str] = {}  # photo id -> why it could not be read (try again later)
        self.unusable: dict[int, str] = {}  # photo id -> why it gave no keypoints (trying again would not help)
        self.undecided: list[tuple[int, int, float]] = []  # pairs with a photo in ``failed``
        self.checked = 0

    def _keypoints(self, image_id: int, path: str | None) -> Keypoints | None:
        """Keypoints, or None with the reason in ``failed`` (try again later) or ``unusable`` (no keypoints)."""
        if path is None:
            self.failed[image_id] = "not in the catalog"
            return None
        try:
            return keypoints_of(Path(path), self.max_pixels, self.max_bytes)
        except UnreadableFile as exc:
            self.failed[image_id] = str(exc)
            log.warning("verification cannot read %s: %s", path, exc)
        except ImageError as exc:
            self.unusable[image_id] = str(exc)
            log.warning("verification cannot use %s: %s", path, exc)
        except Exception as exc:  # an OpenCV or decoder error on one photo stops no other
            self.unusable[image_id] = f"{exc.__class__.__name__}: {exc}"
            log.warning("verification failed on %s", path, exc_info=True)
        return None

    def _same(self, a: Keypoints, b: Keypoints) -> bool:
        try:
            return same_picture(a, b, self.min_inliers)
        except Exception:  # cv2.error on odd keypoints: not confirmed, the rest go on
            log.warning("keypoint matching failed", exc_info=True)
            return False

    def confirm(self, query: Keypoints, ids: list[int]) -> set[int]:
        """The photos among ``ids`` that show the same picture as ``query`` (an upload's keypoints)."""
        if not ids:
            return set()
        paths = self.path_of(set(ids))

        def check(i: int) -> bool:
            kp = self._keypoints(i, paths.get(i))
            return kp is not None and self._same(query, kp)

        with ThreadPoolExecutor(self.threads) as pool:
            return {i for i, ok in zip(ids, pool.map(check, ids)) if ok}

    def _chunks(self, ordered: list[tuple[int, int, float]]) -> Iterable[list[tuple[int, int, float]]]:
        """Runs of ``ordered`` whose photos number at most ``max_photos``."""
        part: list[tuple[int, int, float]] = []
        photos: set[int] = set()
        for p in ordered:
            new = {p[0], p[1]} - photos
            if part and len(photos) + len(new) > self.max_photos:
                yield part
                part, photos, new = [], set(), {p[0], p[1]}
            part.append(p)
            photos |= new
        if part:
            yield part

    def verify(self, pairs: list[tuple[int, int, float]]) -> list[tuple[int, int, float]]:
        """The pairs (a, b, cosine) whose photos share one picture (``same_picture`` at ``min_inliers``).
        Pairs with an unreadable photo go to ``undecided`` instead."""
        if not pairs:
            return []
        paths = self.path_of({x for a, b, _ in pairs for x in (a, b)})
        out: list[tuple[int, int, float]] = []
        ordered = sorted(pairs)  # by a: a chunk holds each photo's pairs together, so few photos repeat
        kps: dict[int, Keypoints | None] = {}
        with ThreadPoolExecutor(self.threads) as pool:
            for chunk in self._chunks(ordered):
                needed = {x for a, b, _ in chunk for x in (a, b)}
                kps = {i: kps[i] for i in needed if i in kps}  # the previous chunk's photos this one needs
                for start in range(0, len(chunk), PROGRESS_EVERY):  # read as needed, so progress keeps moving
                    part = chunk[start:start + PROGRESS_EVERY]
                    todo = sorted({x for a, b, _ in part for x in (a, b)} - kps.keys())
                    kps.update(zip(todo, pool.map(lambda i: self._keypoints(i, paths.get(i)), todo)))
                    readable = [p for p in part if kps[p[0]] is not None and kps[p[1]] is not None]
                    self.undecided.extend(p for p in part if p[0] in self.failed or p[1] in self.failed)

                    def check(p: tuple[int, int, float], kps: dict[int, Keypoints | None] = kps) -> bool:
                        return self._same(kps[p[0]], kps[p[1]])  # type: ignore[arg-type]

                    out.extend(p for p, ok in zip(readable, pool.map(check, readable)) if ok)
                    self.checked += len(part)
                    if self.on_progress is not None:
                        self.on_progress(self.checked)
        return out
