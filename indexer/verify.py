"""Geometric verification: do two photos share one picture, point for point, and does the photo agree under it?

SIFT keypoints of each photo (grey, long side ``SIDE``; the second photo's also as mirrored, since SIFT is turn-
but not flip-invariant) are matched by Lowe's ratio test (one match per point) and an affine transform is
fitted by RANSAC, both ways round (``fit``). Two copies of one photo have many matches that one non-degenerate
transform explains, spread over both photos; two different photos that merely look alike (two cars, two
beetles) do not. Two different photos that share an overlay (the same caption, frame, logo or app window) can:
the overlay's points agree on one transform. So ``agreement`` then compares the photo content itself under the
transform, cell by cell. No model, no torch: OpenCV and numpy. The link rule that uses these is
``indexer/linkrule.py``; how its thresholds were chosen is in bench/README.md ("Link rule").
"""
from __future__ import annotations

import functools
import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

__all__ = ["RULE", "Fit", "Keypoints", "agreement", "agreement_cover", "displaced", "fit", "fit_perspective", "held_agreement", "inliers", "keypoints", "matches",
           "mirrored", "moved", "one_way", "same_picture", "scaled", "warp"]

SIDE = 480  # long side the photo is shrunk to before keypoints (JPEGs draft-decode to about this)
FEATURES = 600  # SIFT keypoints kept per photo (strongest first)
RATIO = 0.75  # Lowe's ratio test: best match closer than RATIO × the second best
REPROJ_PX = 4.0  # RANSAC inlier distance, in pixels at SIDE
MIN_MATCHES = 5  # fewer ratio-test matches than this: no transform is fitted
ENOUGH = 3  # times the inliers a caller needs: a fit this good is not tried again with the photo mirrored
# The inliers' bounding box must cover this share of the first photo: matches bunched in one spot (a logo or
# watermark that two different photos share) are not one picture.
MIN_SPREAD = 0.05
# Content agreement under the fitted transform (``agreement``): grid cells, the blur before comparing (in pixels
# of the grey copy), the pixel standard deviation that counts as texture and the correlation that counts as agreeing.
AGREE_GRID = 16
AGREE_BLUR = 0.5
AGREE_TEXTURE = 4.0
# A cell counts only where it has texture at this coarser blur too: grain or sensor noise on a plain background
# has a spread, but no two encodings of it correlate, so it would count against a copy.
AGREE_COARSE = 3.0
AGREE_CORR = 0.5
AGREE_GAIN_CELLS = 8  # textured cells needed to measure a copy's contrast change
AGREE_CLIP = 8.0  # a flat cell within this of black or white is saturated: it counts neither way
# A framed photo's box (``held_agreement``) must hold the picture's centre and have its own centre within this
# share of the picture's side from it: a frame surrounds its photo; a shared banner or band sits on one side.
CENTRE_SLACK = 1 / 6
# ``moved``: the keypoints of two shots of one scene (a burst, a stereo pair) move against each other where the
# scene has depth or a subject moved; a copy's keypoints lie on one transform up to each point's own noise. A
# residual is compared with the mean of its MOVED_NEIGHBOURS nearest inliers', from MOVED_MIN_INLIERS inliers.
MOVED_NEIGHBOURS = 10
MOVED_MIN_INLIERS = 24
MOVED_POINTS = 400  # inliers ``moved`` looks at, evenly through the list: the neighbour search grows as their square
# ``displaced``: where a subject moved between two shots (people crossing a street that a fixed camera films), a
# cell that disagrees at its place under the fit is found close by in the other shot; a copy's caption, sticker or
# frame is not. Looked for within SHIFT_SEARCH pixels of the grey copy (a tenth of its long side), found at a
# normalised cross-correlation of SHIFT_CORR, at least SHIFT_MIN pixels away (nearer is the fit's own error); a
# cell clipped to black or white on SHIFT_CLIPPED of it is an overlay's (captions and logos are drawn so).
SHIFT_SEARCH = 24
SHIFT_CORR = 0.8
SHIFT_MIN = 7.0
SHIFT_CLIPPED = 0.1
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


def inliers(a: Keypoints, b: Keypoints) -> int:
    """How many keypoint matches one affine transform explains between ``a`` and ``b``: the smaller of the
    two directions (``one_way``), so the answer does not depend on which photo comes first."""
    return min(one_way(a, b), one_way(b, a))


def same_picture(a: Keypoints, b: Keypoints, min_inliers: int) -> bool:
    """``inliers(a, b) >= min_inliers``, without the second direction when the first already falls short."""
    return one_way(a, b) >= min_inliers and one_way(b, a) >= min_inliers


def one_way(a: Keypoints, b: Keypoints) -> int:
    """The most matches of ``a`` that one affine transform (reflections included) maps onto ``b`` (``fit``)."""
    f = fit(a, b)
    return f.inliers if f is not None else 0


@dataclass(frozen=True)
class Fit:
    """The transform (affine, or perspective) that maps most of ``a``'s matched keypoints onto ``b`` (frames of
    long side SIDE)."""

    inliers: int
    matrix: np.ndarray  # a's frame -> b's frame: 2 x 3 (``fit``, affine) or 3 x 3 (``fit_perspective``)
    box: tuple[float, float, float, float] | None = None  # the inliers' bounding box in a's frame (x0, y0, x1, y1)
    points: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False, compare=False)  # inliers a, b
    # the grey copies' cells under this fit (``_cells``), kept once asked: the rule asks again of a fit it links
    memo: dict = field(default_factory=dict, repr=False, compare=False)


def fit(a: Keypoints, b: Keypoints, enough: int | None = None) -> Fit | None:
    """The best affine transform of ``a``'s keypoints onto ``b``'s, with ``b``'s descriptors as they are or as
    mirrored: Lowe's ratio test, one match per point of ``b``, RANSAC. None when no transform holds: too few
    matches, a degenerate transform (it shrinks or grows area more than ``MAX_AREA_RATIO``: a collapsed fit
    makes every match that lands on one spot an inlier), or inliers bunched in under ``MIN_SPREAD`` of either
    photo. With ``enough``, ``b``'s mirrored descriptors are not tried once its own give that many inliers
    (matching is most of the cost, and a photo that is not mirrored gives few inliers mirrored)."""
    cv2 = _cv2()
    xa, da = a.views[0]
    if len(da) < 2:
        return None
    best: Fit | None = None
    for view, (xb, db) in enumerate(b.views):
        if len(db) < 2 or (enough is not None and best is not None and best.inliers >= enough):
            continue
        qi, ti = matches(_distances(a, b, view))
        if len(qi) < MIN_MATCHES:
            continue
        src, dst = xa[qi], xb[ti]
        affine, mask = cv2.estimateAffine2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=REPROJ_PX)
        if affine is None or mask is None or not mask.any():
            continue
        area = abs(float(np.linalg.det(affine[:, :2])))
        if not 1 / MAX_AREA_RATIO <= area <= MAX_AREA_RATIO:
            continue
        keep = mask.ravel().astype(bool)
        n = int(keep.sum())
        if _spread(src[keep]) >= MIN_SPREAD * a.size[0] * a.size[1] and \
                _spread(dst[keep]) >= MIN_SPREAD * b.size[0] * b.size[1] and (best is None or n > best.inliers):
            best = Fit(n, affine, _box(src[keep]), (src[keep], dst[keep]))
    return best


def fit_or_none(a: Keypoints, b: Keypoints, enough: int | None = None) -> Fit | None:
    """``fit``, or None where OpenCV fails on odd keypoints: such a pair tells nothing."""
    try:
        return fit(a, b, enough)
    except Exception:  # noqa: BLE001 - OpenCV raises cv2.error and others on degenerate input
        return None


def fit_perspective(a: Keypoints, b: Keypoints) -> Fit | None:
    """The best homography of ``a``'s keypoints onto ``b``'s (the matches ``fit`` uses, RANSAC), for a copy
    photographed at an angle: a keystone that no affine transform lays flat. None when no transform holds: too
    few matches, a frame that does not map to a convex quadrilateral or whose area changes more than
    ``MAX_AREA_RATIO``, or inliers bunched in under ``MIN_SPREAD`` of either photo."""
    cv2 = _cv2()
    xa, da = a.views[0]
    if len(da) < 2:
        return None
    w, h = a.size
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]])[None]
    best: Fit | None = None
    for view, (xb, db) in enumerate(b.views):
        if len(db) < 2:
            continue
        qi, ti = matches(_distances(a, b, view))
        if len(qi) < max(MIN_MATCHES, 4):
            continue
        src, dst = xa[qi], xb[ti]
        hom, mask = cv2.findHomography(src, dst, cv2.RANSAC, REPROJ_PX)
        if hom is None or mask is None or not mask.any():
            continue
        quad = cv2.perspectiveTransform(corners, hom)[0]
        area = abs(float(cv2.contourArea(quad))) / (w * h)
        if not cv2.isContourConvex(quad) or not 1 / MAX_AREA_RATIO <= area <= MAX_AREA_RATIO:
            continue
        keep = mask.ravel().astype(bool)
        n = int(keep.sum())
        if _spread(src[keep]) >= MIN_SPREAD * w * h and \
                _spread(dst[keep]) >= MIN_SPREAD * b.size[0] * b.size[1] and (best is None or n > best.inliers):
            best = Fit(n, hom, _box(src[keep]), (src[keep], dst[keep]))
    return best


def moved(f: Fit) -> float | None:
    """How much the residuals of ``f``'s inliers under one homography fitted to them all move together: each
    residual's dot product with the mean residual of its ``MOVED_NEIGHBOURS`` nearest inliers, summed over the
    inliers and divided by the residuals' summed squares. About 0 for a copy (resized, cropped, turned or
    photographed at an angle: a homography explains it, and what it leaves is each keypoint's own noise); near 1
    where parts of the picture shifted against each other (the depth of a scene seen from two places, a subject
    that moved between two shots). Over ``MOVED_POINTS`` inliers at most; None under ``MOVED_MIN_INLIERS``."""
    if f.points is None or len(f.points[0]) < MOVED_MIN_INLIERS:
        return None
    cv2 = _cv2()
    src, dst = f.points
    if len(src) > MOVED_POINTS:
        pick = np.linspace(0, len(src) - 1, MOVED_POINTS).astype(int)
        src, dst = src[pick], dst[pick]
    src, dst = np.ascontiguousarray(src, np.float64), np.ascontiguousarray(dst, np.float64)
    hom, _ = cv2.findHomography(src, dst, 0)
    if hom is None:
        return None
    residual = cv2.perspectiveTransform(src[None], hom)[0] - dst
    p = src.astype(np.float32)
    sq = (p * p).sum(1)
    d2 = sq[:, None] + sq[None, :] - 2 * (p @ p.T)  # squared distances between the inliers
    np.fill_diagonal(d2, np.inf)
    near = np.argpartition(d2, MOVED_NEIGHBOURS, axis=1)[:, :MOVED_NEIGHBOURS]
    energy = float((residual * residual).sum())
    return float((residual * residual[near].mean(1)).sum()) / energy if energy > 1e-12 else 0.0


def displaced(grey_a: np.ndarray, grey_b: np.ndarray, f: Fit) -> int:
    """How many of the textured ``AGREE_GRID`` cells of ``a`` that disagree with ``b`` laid over it by ``f``
    (``agreement``) are found in ``b`` close by instead: within ``SHIFT_SEARCH`` pixels, at least ``SHIFT_MIN``
    away, correlating at ``SHIFT_CORR``. Content that moved against the rest of the picture: two shots, not a
    copy. A cell does not count where what it is found as also repeats in its own picture that near (text, a
    pattern: the next letter or tile looks alike, and a noisy copy matches a clean one better than itself), nor
    where either picture is clipped on ``SHIFT_CLIPPED`` of it."""
    cv2 = _cv2()
    _, counted, agree, laid, a, b = _laid_cells(grey_a, grey_b, f)  # a, b: as ``agreement`` blurs them
    h, w = grey_a.shape
    clipped = _clipped(grey_a.astype(np.float32)) | _clipped(laid)
    ys, xs = _cuts(h), _cuts(w)
    found = 0
    for i, j in zip(*np.nonzero(counted & ~agree)):
        y0, y1, x0, x1 = ys[i], ys[i + 1], xs[j], xs[j + 1]
        cell = a[y0:y1, x0:x1]
        if float(cell.std()) < AGREE_TEXTURE or float(clipped[y0:y1, x0:x1].mean()) >= SHIFT_CLIPPED:
            continue
        top, left = max(0, y0 - SHIFT_SEARCH), max(0, x0 - SHIFT_SEARCH)
        near_a, near_b = (x[top:min(h, y1 + SHIFT_SEARCH), left:min(w, x1 + SHIFT_SEARCH)] for x in (a, b))
        there = cv2.matchTemplate(near_b, cell, cv2.TM_CCOEFF_NORMED)
        _, best, _, (x, y) = cv2.minMaxLoc(there)
        if best < SHIFT_CORR or np.hypot(top + y - y0, left + x - x0) < SHIFT_MIN:
            continue
        oy, ox = np.ogrid[:there.shape[0], :there.shape[1]]
        here = cv2.matchTemplate(near_a, cell, cv2.TM_CCOEFF_NORMED)  # the cell elsewhere in its own picture
        here[np.hypot(top + oy - y0, left + ox - x0) < SHIFT_MIN] = -1.0
        moved = near_b[y:y + cell.shape[0], x:x + cell.shape[1]]
        again = cv2.matchTemplate(near_b, moved, cv2.TM_CCOEFF_NORMED)  # what it matched, elsewhere in b
        again[np.hypot(oy - y, ox - x) < SHIFT_MIN] = -1.0
        found += int(max(float(here.max()), float(again.max())) < SHIFT_CORR)
    return found


def scaled(matrix: np.ndarray, s: float) -> np.ndarray:
    """A fit's matrix for both frames scaled by ``s`` (the linear part stays; shifts scale by ``s``, the
    perspective terms by ``1/s``)."""
    m = np.asarray(matrix, np.float64).copy()
    m[:2, 2] *= s
    if m.shape[0] == 3:
        m[2, :2] /= s
    return m


def warp(image: np.ndarray, matrix: np.ndarray, size: tuple[int, int], flags: int, border: float) -> np.ndarray:
    """``image`` laid over a frame of ``size`` (w, h) by a fit's ``matrix`` (frame -> image with
    ``WARP_INVERSE_MAP`` in ``flags``), affine or perspective."""
    cv2 = _cv2()
    if matrix.shape[0] == 3:
        return cv2.warpPerspective(image, matrix, size, flags=flags, borderMode=cv2.BORDER_CONSTANT,
                                   borderValue=border)
    return cv2.warpAffine(image, matrix, size, flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=border)


def matches(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The matches that ``fit`` keeps from ``d``, the squared descriptor distances of query points (rows) to
    train points (columns): (query indices, train indices). Each query's nearest train point, if it passes
    Lowe's ratio test against the second nearest (on the distances, not their squares), then one match per
    train point: the closest query (the first on a tie). In the order in which a loop over the queries would
    first meet each train point: RANSAC draws its samples by position, so the order is part of the result.

    This is what OpenCV's brute-force ``knnMatch(k=2)`` and a loop over its matches give, to the bit: the
    distances of uint8 descriptors are exact in float32 (``_distances``) and are rooted in float32 as OpenCV's
    are. ``d`` is read, and restored after its row minima are masked in place."""
    rows = np.arange(d.shape[0])
    near = d.argmin(axis=1)
    first = d[rows, near]
    d[rows, near] = np.inf
    try:
        second = d.min(axis=1)
    finally:
        d[rows, near] = first
    dist = np.sqrt(first)  # float32, as OpenCV reports a match's distance
    ok = np.flatnonzero(dist.astype(np.float64) < RATIO * np.sqrt(second).astype(np.float64))
    train, dist = near[ok], dist[ok]
    order = np.lexsort((ok, dist, train))  # by train point, then distance, then query: the winner first
    train_sorted = train[order]
    head = np.ones(len(order), bool)
    head[1:] = train_sorted[1:] != train_sorted[:-1]
    _, met = np.unique(train, return_index=True)  # where each train point is first met (the same order)
    seq = np.argsort(met)
    return ok[order][head][seq], train_sorted[head][seq]


def match_share(a: Keypoints, b: Keypoints) -> float:
    """The share of the fewer keypoints that ``matches`` pairs with the other photo's (as they are or mirrored,
    the better), with no geometry: a copy keeps most of its keypoints' descriptors, another picture on the same
    ground matches few of them. 0 when either photo has none."""
    if min(a.count, b.count) == 0:
        return 0.0
    found = max(len(matches(_distances(a, b, view))[0]) for view in range(len(b.views)))
    return found / min(a.count, b.count)


_last = threading.local()  # per thread: the last pair's distance matrices (``_distances``)


def _distances(a: Keypoints, b: Keypoints, view: int) -> np.ndarray:
    """Squared L2 distances (float32, ``|x|² + |y|² - 2 x·y``) of ``a``'s descriptors (rows) to ``b``'s as in
    ``b.views[view]`` (columns). SIFT descriptors are uint8, so every sum here is an integer below 2²⁴ and
    float32 holds it exactly, in any order of summation: the distances are exact, the same as OpenCV's.

    The pair's matrices (1.4 MB each at 600 keypoints) are kept per thread until the next pair: ``fit(b, a)``
    after ``fit(a, b)`` (the link rule's two directions) reads them transposed, the mirrored view's too, since
    ``mirrored`` permutes descriptor entries by an involution (``a · mirrored(b) == mirrored(a) · b``), and the
    perspective fits tried after the affine ones read them again."""
    pair = getattr(_last, "pair", None)
    if pair is not None and pair[0] is a and pair[1] is b and view in _last.d:
        return _last.d[view]
    if pair is not None and pair[0] is b and pair[1] is a and (view == 0 or _mirrors(a) and _mirrors(b)):
        if view not in _last.d:
            _last.d[view] = _product(b.views[0][1], a.views[view][1])
        return _last.d[view].T
    if pair is None or not (pair[0] is a and pair[1] is b):
        _last.pair, _last.d = (a, b), {}
    _last.d[view] = d = _product(a.views[0][1], b.views[view][1])
    return d


def _product(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    fx, fy = x.astype(np.float32), y.astype(np.float32)
    with _one_blas_thread():
        d = fx @ (-2 * fy).T
    d += np.einsum("ij,ij->i", fy, fy)[None, :]
    d += np.einsum("ij,ij->i", fx, fx)[:, None]
    return d


_blas = threading.Lock()
_blas_users = 0
_blas_limit = None  # threadpoolctl's limiter while any product runs here


@contextmanager
def _one_blas_thread():
    """BLAS on one thread while any ``_product`` runs: linking already runs one check per core, and BLAS's own
    threads on top of them (or of other work on a shared machine) make a 600 × 600 product 5-20 times slower
    than on one thread. BLAS thread counts are process-wide, so the limit is set by the first product running
    and lifted by the last (threadpoolctl)."""
    global _blas_users, _blas_limit
    with _blas:
        if _blas_users == 0:
            _blas_limit = _blas_controller().limit(limits=1, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _blas:
            _blas_users -= 1
            if _blas_users == 0 and _blas_limit is not None:
                _blas_limit.restore_original_limits()
                _blas_limit = None


@functools.cache
def _blas_controller():
    """threadpoolctl's view of the loaded BLAS libraries (scanned once: a scan costs far more than a limit)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _mirrors(k: Keypoints) -> bool:
    """Whether ``k``'s second view is ``mirrored`` of its first (as ``keypoints`` and the catalog make it)."""
    return len(k.views) == 2 and np.array_equal(k.views[1][1], mirrored(k.views[0][1]))


def agreement(grey_a: np.ndarray, grey_b: np.ndarray, f: Fit) -> float | None:
    """Whether the photo content agrees where ``f`` lays ``b`` over ``a``: ``b``'s grey copy is warped into
    ``a``'s frame, both are cut into a grid of ``AGREE_GRID`` cells, and the answer is the share of the cells
    with texture in either photo (inside the overlap; texture that a coarser blur, ``AGREE_COARSE``, keeps: not
    grain alone) whose pixels correlate above ``AGREE_CORR``. A copy with a
    caption, a border or a sticker agrees outside them; two different photos under the same caption, frame or
    app window agree only there. None when no cell of the overlap has texture (nothing to compare).

    The grey copies are the keypoints' frames scaled down alike (``indexer.features.GREY_SIDE``)."""
    return agreement_cover(grey_a, grey_b, f)[0]


def agreement_cover(grey_a: np.ndarray, grey_b: np.ndarray, f: Fit) -> tuple[float | None, float]:
    """(``agreement``, the cover: the agreeing cells' share of all the overlap's cells). A copy agrees over most
    of its picture; two different smooth pictures under one logo or text agree on the overlay's cells alone,
    a small part of the overlap (the rest is plain in both and counts neither way in ``agreement``)."""
    ok, counted, agree = _cells(grey_a, grey_b, f)
    cells, found = int(counted.sum()), float(agree.sum())
    return (found / cells if cells else None), found / max(1, int(ok.sum()))


def held_agreement(grey_a: np.ndarray, grey_b: np.ndarray, f: Fit) -> tuple[float | None, float, bool]:
    """(``agreement`` over the cells inside the fit's inliers' bounding box, the box's share of the overlap's
    cells, whether the box is centred in ``a``: it holds the centre and its own centre lies within
    ``CENTRE_SLACK`` of the side from it): where the matched keypoints lie, does the content agree? A photo put
    in another frame agrees inside the photo, in the middle, and not on the two frames around it;
    ``(None, 0.0, False)`` when the fit has no box; the agreement is None when no cell in the box has texture."""
    if f.box is None:
        return None, 0.0, False
    ok, counted, agree = _cells(grey_a, grey_b, f)
    h, w = grey_a.shape
    s = max(h, w) / SIDE
    x0, y0, x1, y1 = (v * s for v in f.box)
    cy, cx = _centres(h), _centres(w)
    box = np.outer((cy >= y0) & (cy <= y1), (cx >= x0) & (cx <= x1))
    share = float((box & ok).sum()) / max(int(ok.sum()), 1)
    cells = int((counted & box).sum())
    centred = x0 <= w / 2 <= x1 and y0 <= h / 2 <= y1 and abs((x0 + x1) - w) <= 2 * CENTRE_SLACK * w and \
        abs((y0 + y1) - h) <= 2 * CENTRE_SLACK * h
    return (float((agree & box).sum()) / cells if cells else None), share, centred


def _cuts(n: int) -> np.ndarray:
    """Where the ``AGREE_GRID`` cells along a side of ``n`` pixels begin and end."""
    return np.linspace(0, n, AGREE_GRID + 1).astype(int)


def _centres(n: int) -> np.ndarray:
    """Centres of the ``AGREE_GRID`` cells along a side of ``n`` pixels."""
    cuts = _cuts(n)
    return (cuts[:-1] + cuts[1:]) / 2


def _cells(grey_a: np.ndarray, grey_b: np.ndarray, f: Fit) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per ``AGREE_GRID`` cell of ``a``'s grey copy, with ``b``'s laid over it by ``f``: (inside the overlap,
    counted: texture in either, agreeing)."""
    return _laid_cells(grey_a, grey_b, f)[:3]


def _laid_cells(grey_a: np.ndarray, grey_b: np.ndarray, f: Fit) -> tuple[np.ndarray, ...]:
    """``_cells``, then ``b``'s grey copy laid over ``a``'s (float32) and the two as the comparison blurs them
    (``AGREE_BLUR``); computed once per fit and the two copies."""
    seen = f.memo.get("cells")
    if seen is not None and seen[0] is grey_a and seen[1] is grey_b:
        return seen[2]
    out = _compare_cells(grey_a, grey_b, f)
    f.memo["cells"] = (grey_a, grey_b, out)  # the copies themselves are kept, so their ids cannot be reused
    return out


def _compare_cells(grey_a: np.ndarray, grey_b: np.ndarray, f: Fit) -> tuple[np.ndarray, ...]:
    cv2 = _cv2()
    h, w = grey_a.shape
    m = scaled(f.matrix, max(h, w) / SIDE)  # frame pixels -> grey copy pixels (both have the same long side)
    b = warp(grey_b.astype(np.float32), m, (w, h), cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, 0)
    inside = warp(np.ones(grey_b.shape, np.float32), m, (w, h), cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, 0) > 0.5
    ys, xs = _cuts(h), _cuts(w)
    n = np.outer(np.diff(ys), np.diff(xs)).astype(np.float64)
    ok = (n >= 4) & (_cell_sums(inside.astype(np.float64), ys, xs) >= 0.9 * n)
    n = np.maximum(n, 1)
    a = grey_a.astype(np.float32)
    fine_a, fine_b = (cv2.GaussianBlur(x, (0, 0), AGREE_BLUR) for x in (a, b))
    ma, mb, va, vb, cov = _cell_moments(fine_a, fine_b, ys, xs, n)
    sa, sb = np.sqrt(va), np.sqrt(vb)
    gain = _contrast_gain(sa, sb, ok)  # a darkened or flattened copy has less texture everywhere, not nowhere
    floor_a, floor_b = AGREE_TEXTURE * min(1.0, 1.0 / gain), AGREE_TEXTURE * min(1.0, gain)
    ta, tb = sa >= floor_a, sb >= floor_b
    broad_a, broad_b = (cv2.GaussianBlur(x, (0, 0), AGREE_COARSE) for x in (a, b))
    _, _, coarse_a, coarse_b, _ = _cell_moments(broad_a, broad_b, ys, xs, n)
    coarse = (np.sqrt(coarse_a) >= floor_a) | (np.sqrt(coarse_b) >= floor_b)
    # a flat cell blown out or crushed by an exposure change has lost its texture: it counts neither way
    clipped = (~ta & _clipped(ma)) | (~tb & _clipped(mb))
    counted = ok & (ta | tb) & coarse & ~clipped  # flat in both: no evidence either way
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov / np.sqrt(va * vb)
    return ok, counted, counted & ta & tb & (corr > AGREE_CORR), b, fine_a, fine_b


def _cell_moments(blurred_a: np.ndarray, blurred_b: np.ndarray, ys: np.ndarray, xs: np.ndarray, n: np.ndarray
                  ) -> tuple[np.ndarray, ...]:
    """Per grid cell of two blurred pictures (float32): the means of ``a`` and ``b``, their variances and their
    covariance."""
    a, b = blurred_a.astype(np.float64), blurred_b.astype(np.float64)
    ma, mb = _cell_sums(a, ys, xs) / n, _cell_sums(b, ys, xs) / n
    va = np.maximum(_cell_sums(a * a, ys, xs) / n - ma * ma, 0)
    vb = np.maximum(_cell_sums(b * b, ys, xs) / n - mb * mb, 0)
    return ma, mb, va, vb, _cell_sums(a * b, ys, xs) / n - ma * mb


def _contrast_gain(sa: np.ndarray, sb: np.ndarray, ok: np.ndarray) -> float:
    """How much more texture ``b`` has than ``a`` where both have some: the median ratio of their cells'
    spreads (1 when too few cells tell), so that the texture floor follows a global contrast change but not a
    caption or a border, which changes a few cells only."""
    both = ok & (sa >= AGREE_TEXTURE) & (sb >= AGREE_TEXTURE / 4)
    if both.sum() < AGREE_GAIN_CELLS:
        return 1.0
    return float(np.clip(np.median(sb[both] / sa[both]), 0.25, 4.0))


def _clipped(mean: np.ndarray) -> np.ndarray:
    """Cells whose mean grey is at the end of the range (an exposure change saturated them)."""
    return (mean <= AGREE_CLIP) | (mean >= 255 - AGREE_CLIP)


def _cell_sums(x: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Sums of ``x`` over the grid cells between the row cuts ``ys`` and column cuts ``xs`` (ascending, from 0 to
    the size; an empty cell's value is meaningless and left to the caller's size check)."""
    rows = np.add.reduceat(x, ys[:-1], axis=0)
    return np.add.reduceat(rows, xs[:-1], axis=1)


def _box(pts: np.ndarray) -> tuple[float, float, float, float]:
    (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
    return float(x0), float(y0), float(x1), float(y1)


def _spread(pts: np.ndarray) -> float:
    return float(np.prod(pts.max(0) - pts.min(0)))
