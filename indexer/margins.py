"""Where a picture's content lies: the padding, borders, letterboxes and fill around it, found from its edges.

``look`` shrinks a decoded picture to an overview and marks its margins (``fill_mask``: plain colour flooded
in from an edge; ``margin_mask``: plain or smoothly padded rows and columns at the edges). The keeper measures
padding and content on it (``indexer.keeper``) and the link features cut the plain fill off the colour
thumbnail (``indexer.features``; not the smooth margins: a sky's own smooth top and foot are picture), from one
overview computed once per photo by the decode workers.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

OVERVIEW_SIDE = 256  # borders, colour and clipping are measured on the picture shrunk to this long side
FILL_TOL = 6  # a margin pixel within this of the margin's colour (per channel) is fill
PLAIN_STD = 3.0  # a margin line varies less than this (per channel)
SMOOTH_GRAD = 1.0  # a smooth margin line's mean step between neighbouring pixels (grey levels, overview scale)
FILL_STD = 1.5  # ... and the whole fill varies less than this (per channel): padding is one colour, a sky is not


def margin_mask(arr: np.ndarray) -> np.ndarray:
    """Margins: whole rows or columns at an edge that are one plain colour (letterbox, padding, a frame, a bar),
    or smooth (padding with a blurred enlargement of the photo) when the opposite edge has a smooth margin of
    about the same width too (a photo's own sky is smooth on one side only)."""
    grey = arr.astype(np.float32).mean(axis=2)
    h, w = grey.shape
    mask = np.zeros((h, w), bool)
    if min(h, w) < 3:
        return mask
    for axis in (0, 1):  # rows (top, bottom), then columns (left, right)
        lines = grey if axis == 0 else grey.T
        colour = arr if axis == 0 else arr.transpose(1, 0, 2)
        plain = colour.std(axis=1).max(axis=1) <= PLAIN_STD
        smooth = np.abs(np.diff(lines, axis=1)).mean(axis=1) <= SMOOTH_GRAD
        n = len(lines)
        near = np.abs(colour.mean(axis=1)[:, None, :] - colour[[0, -1]].mean(axis=1)) <= FILL_TOL
        runs = []
        for end, order in ((0, np.arange(n)), (1, np.arange(n)[::-1])):
            p = _run(plain[order] & near[order, end].all(axis=1))
            runs.append((p, _run(smooth[order])))
        (p0, s0), (p1, s1) = runs
        if min(s0, s1) >= 2 and abs(s0 - s1) <= max(2, 0.15 * max(s0, s1)):
            p0, p1 = max(p0, s0), max(p1, s1)
        if p0 + p1 >= 0.95 * n:  # a plain picture: no content to tell from its margin
            continue
        sl = (slice(0, p0), slice(n - p1, n))
        for part in sl:
            if axis == 0:
                mask[part, :] = True
            else:
                mask[:, part] = True
    return mask


def _run(flags: np.ndarray) -> int:
    """How many leading entries are true."""
    off = np.flatnonzero(~flags)
    return int(off[0]) if len(off) else len(flags)


def fill_mask(arr: np.ndarray) -> np.ndarray:
    """Pixels of plain fill reached from the frame's edge: padding, borders, letterboxes, the corners a rotation
    filled, a caption bar across the foot. Each edge's most common colour is flooded inwards (4-connected)
    through pixels within FILL_TOL of it, and kept when the flooded pixels vary less than FILL_STD; an edge
    with no dominant colour floods nothing."""
    h, w, _ = arr.shape
    mask = np.zeros((h, w), bool)
    done: list[np.ndarray] = []
    for line in (arr[0], arr[-1], arr[:, 0], arr[:, -1]):
        q = (line // 8).astype(np.int32)
        keys = q[:, 0] * 1024 + q[:, 1] * 32 + q[:, 2]
        vals, counts = np.unique(keys, return_counts=True)
        if counts.max() < 0.25 * len(line):
            continue
        ref = np.median(line[keys == vals[counts.argmax()]], axis=0)
        if any((np.abs(ref - r) <= 1).all() for r in done):  # a frame's other edges: flooded already
            continue
        done.append(ref)
        near = (np.abs(arr - ref) <= FILL_TOL).all(axis=2)
        flood = _flood(near)
        if flood.any() and float(arr[flood].std(axis=0).max()) <= FILL_STD:  # a plain fill, not a smooth sky
            mask |= flood
    if mask.mean() > 0.97:  # a plain picture (a scan of a blank page): no content to tell from its margin
        return np.zeros((h, w), bool)
    return mask


def _flood(near: np.ndarray) -> np.ndarray:
    """The part of ``near`` connected to the frame's edge."""
    import cv2  # imported late: only measuring needs it

    _, labels = cv2.connectedComponents(near.astype(np.uint8), connectivity=4)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    edge = edge[edge > 0]
    return np.isin(labels, edge) & near


@dataclass
class Overview:
    """A picture shrunk to OVERVIEW_SIDE (int16 RGB) and its margins (True where padding, border or fill)."""

    arr: np.ndarray
    plain: np.ndarray  # plain fill flooded in from an edge (``fill_mask``): padding of one colour, a frame

    @functools.cached_property
    def fill(self) -> np.ndarray:
        """``plain`` and plain or smoothly padded edge lines (``margin_mask``): measured only when asked (the
        keeper asks; the link features need ``plain`` alone)."""
        return self.plain | margin_mask(self.arr)


def look(rgb: Image.Image) -> Overview:
    """The overview of a decoded picture (any mode, any size) and its plain fill."""
    small = rgb.convert("RGB") if rgb.mode != "RGB" else rgb.copy()
    small.thumbnail((OVERVIEW_SIDE, OVERVIEW_SIDE), Image.Resampling.BOX)
    arr = np.asarray(small, dtype=np.int16)
    return Overview(arr, fill_mask(arr))


def content_box(fill: np.ndarray, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of what is not fill, in a picture of ``size`` (w, h) whose overview ``fill``
    is; the whole picture when all of it is fill. Rounding can put the right or bottom edge one pixel past the
    picture's (the keeper's measures were fixed with it so): clamp before resampling from the box."""
    w, h = size
    rows, cols = np.where(~fill)
    if not len(rows):
        return 0, 0, w, h
    sy, sx = h / fill.shape[0], w / fill.shape[1]
    return (int(cols.min() * sx), int(rows.min() * sy), math.ceil((cols.max() + 1) * sx),
            math.ceil((rows.max() + 1) * sy))
