"""Laying a blurred copy over its sharp original without keypoints: ECC image alignment, coarse to fine.

A blur or a shrink takes a copy's keypoints, so geometry cannot say how it was cropped, turned a little or framed.
Enhanced correlation coefficient maximisation (Evangelidis and Psarakis, OpenCV's ``findTransformECC``) fits
an affine map from the pixels themselves, invariant to brightness and contrast, and a blur leaves the picture's
layout for it to fit on. It starts from the copy stretched over the original and refines over a pyramid, so
crops and turns of a few degrees converge. The link rule (``indexer.linkrule.aligned_blur_residual``) then asks
whether the aligned copy matches the original cell by cell: ECC finds *a* best map for any two pictures.
"""
from __future__ import annotations

import numpy as np

LEVELS = (4, 2, 1)  # pyramid: each level's picture is the grey copy shrunk this many times
ITERATIONS = 30  # ECC iterations per level at most
EPSILON = 1e-4  # ECC stops when the correlation gains less than this
TEMPLATE_BLUR = 2.0  # sigma (px of the grey copy) the sharp original is blurred by to resemble a soft copy
SMOOTHING = 3  # ECC's own Gaussian filter size on both pictures
MIN_SIDE = 8  # the smallest picture side ECC is run on
COARSE_MIN_CORRELATION = 0.7  # at the coarsest level, under this there is no common layout to refine: stop


def ecc_affine(sharp: np.ndarray, soft: np.ndarray) -> np.ndarray | None:
    """The affine map (2 × 3 float32) from ``sharp``'s pixels to ``soft``'s under which ``soft`` best matches
    ``sharp`` blurred, or None when ECC does not converge (a singular fit) or the coarsest level correlates under
    ``COARSE_MIN_CORRELATION`` (no common layout)."""
    import cv2  # imported late: only linking needs it

    h, w = sharp.shape
    sh, sw = soft.shape
    template = cv2.GaussianBlur(sharp, (0, 0), TEMPLATE_BLUR).astype(np.float32)
    image = soft.astype(np.float32)
    matrix = np.float32([[sw / w, 0, 0], [0, sh / h, 0]])  # soft stretched over sharp
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, ITERATIONS, EPSILON)
    for k in LEVELS:
        t = cv2.resize(template, (max(MIN_SIDE, round(w / k)), max(MIN_SIDE, round(h / k))),
                       interpolation=cv2.INTER_AREA)
        i = cv2.resize(image, (max(MIN_SIDE, round(sw / k)), max(MIN_SIDE, round(sh / k))),
                       interpolation=cv2.INTER_AREA)
        scale = (t.shape[1] / w, t.shape[0] / h, i.shape[1] / sw, i.shape[0] / sh)
        try:
            rho, level = cv2.findTransformECC(t, i, _rescaled(matrix, *scale), cv2.MOTION_AFFINE, criteria, None,
                                              SMOOTHING)
        except cv2.error:  # the correlation's Hessian is singular or the iteration diverged
            return None
        if k == LEVELS[0] and rho < COARSE_MIN_CORRELATION:
            return None
        matrix = _rescaled(level, *(1 / s for s in scale))
    return matrix


def _rescaled(matrix: np.ndarray, sx: float, sy: float, ix: float, iy: float) -> np.ndarray:
    """``matrix`` (sharp pixels to soft pixels) for sharp scaled by (sx, sy) and soft by (ix, iy)."""
    m = np.asarray(matrix, np.float32).copy()
    m[:, 0] /= sx
    m[:, 1] /= sy
    m[0] *= ix
    m[1] *= iy
    return m


def warp_onto(soft: np.ndarray, matrix: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``soft`` (uint8) resampled in the sharp picture's frame of ``shape`` (h, w) through ``matrix``, and the mask
    (uint8 0/1) of the pixels that fell inside ``soft``."""
    import cv2

    h, w = shape
    flags = cv2.WARP_INVERSE_MAP
    warped = cv2.warpAffine(soft, matrix, (w, h), flags=cv2.INTER_LINEAR | flags, borderValue=0)
    inside = cv2.warpAffine(np.ones_like(soft), matrix, (w, h), flags=cv2.INTER_NEAREST | flags, borderValue=0)
    return warped, inside


def turn_and_stretch(matrix: np.ndarray) -> tuple[float, float]:
    """The map's turn in degrees (0-180) and how unevenly it scales (the larger singular value of its linear part
    over the smaller; infinite when singular or mirrored)."""
    linear = np.asarray(matrix, np.float64)[:, :2]
    if np.linalg.det(linear) <= 0:
        return 180.0, float("inf")
    u, sv, vt = np.linalg.svd(linear)
    rot = u @ vt  # the nearest rotation
    return abs(float(np.degrees(np.arctan2(rot[1, 0], rot[0, 0])))), float(sv[0] / sv[1])


def soft_share(matrix: np.ndarray, shape: tuple[int, int], soft_shape: tuple[int, int]) -> float:
    """The share of the soft picture (of ``soft_shape``) that the sharp picture's frame (``shape``) covers under
    ``matrix``."""
    import cv2

    h, w = shape
    sh, sw = soft_shape
    covered = cv2.warpAffine(np.ones((h, w), np.uint8), matrix, (sw, sh), flags=cv2.INTER_NEAREST, borderValue=0)
    return float(covered.mean())
