"""Which member of a duplicate group holds the most of the original picture, and why.

Copies are made *from* an original, and almost every edit loses some of the picture: an upscale adds pixels but
no detail, padding and frames add margin but no picture, a crop or a thumbnail keeps less of it, grey or
sepia drops the colour, a caption bar covers part of it, a re-compression or noise adds artefacts, an exposure
change clips highlights or shadows. ``measure`` reads that evidence off a decoded photo once, at ingest (the
decode workers call it beside the link features; the catalog keeps it in ``images``), so choosing a keeper never
reads a file again. ``choose`` then ranks the members in a documented order:

1. **Picture score**: a weighted sum of the evidence (``EVIDENCE``; ``WEIGHTS``, a logistic ranker fitted on
   pairs of original and copy from our own edit recipes on the train split, each weight held to the sign in
   ``SIGNS``: ``bench/keeper.py --fit``, never the eval split). Each term is one attribute a person can check:
   effective pixels (the content box's pixels at the measured scale, scaled by the fine detail present), the
   share of the frame that is padding, border or fill, colour (up to ``COLOUR_ENOUGH``), how much the picture
   is one tone (grey, sepia, a tint), clipped pixels, noise beyond the group's usual, JPEG blockiness, the
   share of the group's picture it does not hold (a crop: ``holdings``, from the verified transform between
   members' keypoints, set where groups are formed) and colour pushed beyond the group's usual (a "vivid" or
   saturated copy; up to ``SATURATED_MAX``), a tone curve moved away from the group's (``levels``: an
   exposure, brightness, contrast or levels edit that need not clip), and the rims a sharpening filter draws at
   edges (``halo``: they read as detail the original never had).
2. Members whose scores are within ``TIE`` of the best hold the same picture as far as pixels tell (a mirrored
   or turned copy, a re-save): among them the one that still carries the camera's EXIF, then the oldest file
   (copies come after their original), then the largest file, then the lowest id.

The reason stored with the group names the evidence that decided against the others, in words
("the others are upscaled or padded copies", "only colour copy", "the others are crops of it"). A user's choice at resolution still wins:
this is only the suggestion.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from indexer import verify
from indexer.margins import Overview, content_box, look

ANALYSIS_SIDE = 512  # detail is measured on a window of at most this side at the decoded scale (never resized)
FINE_SCALE = 0.9  # the detail measure's shrink
DETAIL_QUANTILE = 0.75  # the detail measure's block: most blocks have less (text strokes sit in the few above)
DETAIL_BLOCK_STD = 2.0  # grey levels: a detail block plainer than this holds no picture and is not counted
DETAIL_MIN_BLOCKS = 8  # fewer blocks with picture than this: every block is counted
NOISE_LOSS = 0.58  # the detail measure's loss on white noise, per grey level of its sigma (measured, not fitted)
INNER_MARGIN = 0.04  # of the content box's side, left out of the colour and clipping measures
CLIP_LOW, CLIP_HIGH = 3, 252  # a channel at or beyond these is clipped
TONE_QUANTILES = (2, 25, 50, 75, 98)  # the points of a content's grey tone curve ``measure`` keeps (percentiles)
TONE_UNIT = 64.0  # grey levels, a quarter of the range: the unit ``levels`` counts a tone curve's shift in
LUMA = (0.299, 0.587, 0.114)  # grey from RGB (ITU-R BT.601)
LINED_GAIN = 0.04  # median |log| of rows' gains from which rows were drawn over a picture (``unlined``)
LINED_DARK = 16.0  # grey levels: pixels darker than this around are not read for a row's gain
LINED_STRIDE = 4  # px: a row's gain is read at every this many pixels of it
LINED_PASSES = 2  # gains divided out at most this many times (scan lines every third row leave some after one)
COMB_REACH = 6  # px: the farthest sideways shift of every other row ``_comb`` looks for
COMB_RESIDUAL = 0.9  # of the unshifted difference: what the shifted rows must leave at most to count as shifted
COMB_BLUR = 1.0  # px: the blur along the rows before they are compared (a dither's pattern is not compared)
COMB_ROWS = 3  # every this many odd rows are compared (the shift is the whole frame's)
HALO_EDGES = (60, 150)  # Canny thresholds of the edges whose profiles ``halo`` reads
HALO_STEP = 30.0  # grey levels: the least step between an edge's two plateaus for its profile to count
HALO_REACH = 6  # px read each side of an edge: the rims within half of it, the plateaus beyond
HALO_POINTS = 4000  # edge pixels read at most (evenly picked)
HALO_MIN_EDGES = 30  # edge pixels with a step: fewer, and a picture has no edges to tell sharpening by
HALO_FLAT = 1.0  # a plateau whose values spread more than this times the step is no plateau (a stroke, text)
VERSION = 14  # of what ``measure`` computes: grouped photos measured by an older one are measured again (remeasure)


@dataclass(frozen=True)
class Attributes:
    """The evidence of one photo (``measure``); ``None`` on a photo that was never measured."""

    detail_scale: float  # fine detail over contrast: falls on a copy enlarged, blurred or smoothed
    border: float  # share of the frame that is uniform padding, border, letterbox or rotation fill
    colour: float  # colourfulness (Hasler and Suesstrunk), 0 for grey
    tint: float  # how much of the colour is one hue (1 = sepia or a tint, 0 = many hues)
    clipped: float  # share of content pixels with a channel clipped at black or white
    noise: float  # noise level (Immerkaer's estimate, grey levels)
    blockiness: float  # JPEG 8x8 block edges over other edges (1 = none)
    jpeg_quality: int | None = None  # from the file's quantisation tables; None when not a JPEG
    analysed_side: int = 0  # long side of the picture measured (a JPEG decodes drafted: often under the file's)
    tones: tuple[float, ...] = ()  # grey levels of the content at TONE_QUANTILES (its tone curve); () not known
    taken: str | None = None  # the camera's capture time from the file (``decode.capture_time``); None: none kept
    halo: float = 0.0  # overshoot at edges over their step (``halo``): rims a sharpening filter draws

    def effective_pixels(self, width: int, height: int) -> float:
        """Pixels of real picture: the content box's at the scale measured, scaled by the detail present there
        (detail above that scale is not seen: an upscale beyond it is not told from the original)."""
        scale = min(1.0, self.analysed_side / max(width, height, 1)) if self.analysed_side else 1.0
        return width * height * scale ** 2 * (1.0 - self.border) * self.detail_scale ** 2


def measure(rgb: Image.Image, jpeg_quality: int | None = None, overview: Overview | None = None) -> Attributes:
    """Measure a decoded photo (any size; a drafted JPEG is measured at its decoded scale); ``overview`` is its
    ``margins.look`` where the caller has it already."""
    rgb = rgb.convert("RGB") if rgb.mode != "RGB" else rgb
    ov = overview if overview is not None else look(rgb)
    arr, fill = ov.arr, ov.fill
    border = float(fill.mean())
    content = _inner(arr, fill)
    colour, tint = colourfulness(content)
    clipped = float(((content <= CLIP_LOW) | (content >= CLIP_HIGH)).any(axis=1).mean())
    grey = _window(rgb, fill)
    noise = noise_level(grey)  # lines drawn over the picture are noise too: only the detail is read without them
    return Attributes(detail_scale=detail_scale(unlined(grey), noise), border=border, colour=colour, tint=tint,
                      clipped=clipped, noise=noise, blockiness=blockiness(grey),
                      jpeg_quality=jpeg_quality, analysed_side=max(rgb.size), tones=tone_curve(content),
                      halo=halo(grey))


def tone_curve(pixels: np.ndarray) -> tuple[float, ...]:
    """The grey levels of (n, 3) pixels at TONE_QUANTILES: where its shadows, mid-tones and highlights lie."""
    if not len(pixels):
        return ()
    grey = pixels.astype(np.float32) @ np.array(LUMA, np.float32)
    return tuple(round(float(v), 2) for v in np.percentile(grey, TONE_QUANTILES))


def _inner(arr: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """The (n, 3) content pixels colour and clipping are measured on: off the fill, inside the content box shrunk
    by INNER_MARGIN a side (the blurred seam between a coloured frame and the picture is neither)."""
    rows, cols = np.where(~fill)
    if not len(rows):
        return arr.reshape(-1, 3)
    y0, y1, x0, x1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    dy, dx = int((y1 - y0) * INNER_MARGIN), int((x1 - x0) * INNER_MARGIN)
    box, keep = arr[y0 + dy:y1 - dy, x0 + dx:x1 - dx], ~fill[y0 + dy:y1 - dy, x0 + dx:x1 - dx]
    return box[keep] if keep.any() else arr[~fill]


def _window(rgb: Image.Image, fill: np.ndarray) -> np.ndarray:
    """Grey float pixels of the content box (fill margins cut off), at most ANALYSIS_SIDE square, centred."""
    x0, y0, x1, y1 = content_box(fill, rgb.size)
    cw, ch = min(ANALYSIS_SIDE, x1 - x0), min(ANALYSIS_SIDE, y1 - y0)
    cx, cy = (x0 + x1 - cw) // 2 // 8 * 8, (y0 + y1 - ch) // 2 // 8 * 8  # on the JPEG block grid
    return np.asarray(rgb.crop((cx, cy, cx + cw, cy + ch)).convert("L"), dtype=np.float32)


def unlined(grey: np.ndarray) -> np.ndarray:
    """``grey`` without lines drawn over the picture: the gains of rows (columns) divided out where their gains
    against their neighbours (``_line_gains``) spread ``LINED_GAIN`` (median ``|log|``: scan lines, a CRT or VHS
    filter), and every other row moved back where it sits shifted against the rows around it (``_comb``: an
    interlaced video frame's two fields). Rows that differ in turn are lost by the detail measure's shrink as fine
    detail is; they are none of the picture's. A picture's own rows change smoothly (at an edge, in a few columns
    only): left as they are. Lines are drawn one way: a pattern both ways (an ordered dither, a halftone) is left
    to the noise measure."""
    views = (grey, grey.T)
    lined = [_spread(_line_gains(v)) >= LINED_GAIN or _comb(v) != 0 for v in views]
    if all(lined):
        return grey
    for axis, view in enumerate(views):
        if not lined[axis]:
            continue
        for _ in range(LINED_PASSES):
            gains = _line_gains(view)
            if _spread(gains) < LINED_GAIN:
                break
            view = view.copy()
            view[1:-1] /= gains[:, None]  # type: ignore[index]
        shift = -_comb(view)  # each odd row read from where its content went
        if shift:
            view = view.copy()
            reach = abs(shift)
            odd = np.pad(view[1::2], ((0, 0), (reach, reach)), mode="edge")
            view[1::2] = odd[:, reach + shift:reach + shift + view.shape[1]]
        grey = view if axis == 0 else view.T
    return np.ascontiguousarray(grey)


def _spread(gains: np.ndarray | None) -> float:
    """The median ``|log|`` of rows' gains (0 without any)."""
    return float(np.median(np.abs(np.log(gains)))) if gains is not None and gains.size else 0.0


def _comb(grey: np.ndarray) -> int:
    """How far every other row sits shifted sideways against the rows around it (``COMB_REACH`` px at most): the
    shift at which the odd rows match their even neighbours' mean best, where that leaves under ``COMB_RESIDUAL`` of
    the unshifted difference; else 0. Rows are compared blurred along themselves by ``COMB_BLUR`` px: the pattern of
    an ordered dither or a halftone repeats a pixel or two along the next row, which is no shift of the picture."""
    import cv2  # imported late: only measuring needs it

    rows = cv2.GaussianBlur(grey, (2 * math.ceil(3 * COMB_BLUR) + 1, 1), COMB_BLUR)  # along the rows only
    even, odd = rows[0::2], rows[1::2]
    n, m = min(len(odd), len(even) - 1), COMB_REACH
    if n < 2 or grey.shape[1] <= 4 * m:
        return 0
    between, odd = ((even[:n] + even[1:n + 1]) / 2)[::COMB_ROWS], odd[:n:COMB_ROWS]

    def residual(s: int) -> float:
        return float(np.abs(odd[:, m:-m] - between[:, m + s:between.shape[1] - m + s]).mean())

    unshifted = residual(0)
    best = min(range(-m, m + 1), key=residual)
    return best if best and residual(best) < COMB_RESIDUAL * unshifted else 0


def _line_gains(grey: np.ndarray) -> np.ndarray | None:
    """Each inner row's gain against its neighbours: the median, over every ``LINED_STRIDE``-th pixel of it, of the
    row over the rows around it smoothed (1, 2, 1); a pixel darker than ``LINED_DARK`` around counts as no gain (its
    ratio is noise). None for a picture too small."""
    if grey.shape[0] < 3:
        return None
    g = grey[:, ::LINED_STRIDE]
    around = (g[:-2] + 2 * g[1:-1] + g[2:]) / 4
    ratios = np.where(around >= LINED_DARK, g[1:-1] / np.maximum(around, 1.0), 1.0)
    return np.clip(np.median(ratios, axis=1), 0.05, 20.0)


def colourfulness(pixels: np.ndarray) -> tuple[float, float]:
    """Hasler and Suesstrunk's colourfulness of (n, 3) pixels, and the share of the chroma that is one hue
    (the length of the mean chroma vector over the mean chroma length: 1 for sepia or a tint)."""
    p = pixels.astype(np.float32)
    rg = p[:, 0] - p[:, 1]
    yb = 0.5 * (p[:, 0] + p[:, 1]) - p[:, 2]
    colour = float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))
    length = float(np.hypot(rg, yb).mean())
    tint = float(np.hypot(rg.mean(), yb.mean()) / length) if length > 1.0 else 0.0
    return colour, tint


def detail_scale(grey: np.ndarray, noise: float = 0.0) -> float:
    """Fine detail: the grey levels a shrink to FINE_SCALE and back loses, over the picture's contrast (its grey
    standard deviation, so a brightened or darkened copy measures alike). An original loses detail at once; a
    copy enlarged k times, blurred or smoothed by compression barely changes. It depends on the picture, so
    only copies of one picture are compared by it: ``effective_pixels`` scales the pixels by its square.
    ``noise`` (``noise_level`` of ``grey``) is taken out: grain or dither added to a copy is lost by the round
    trip too, but it is no detail of the picture (NOISE_LOSS: what white noise of sigma 1 loses)."""
    h, w = grey.shape
    contrast = float(grey.std())
    if min(h, w) < 32 or contrast < 1.0:  # too small to tell, or plain: nothing to lose
        return 1.0
    loss, lost_to_noise = _round_trip_loss(grey, FINE_SCALE), NOISE_LOSS * noise
    return float(min(1.0, math.sqrt(max(0.0, loss * loss - lost_to_noise * lost_to_noise)) / contrast))


def _block_quantile(sq: np.ndarray, grey: np.ndarray | None = None, side: int = 16) -> float:
    """The DETAIL_QUANTILE over side x side blocks of the mean of ``sq``: a caption's or watermark's sharp
    strokes sit in a few blocks and do not count. With ``grey`` (the picture, aligned with ``sq``), over the blocks
    that hold some of it (``DETAIL_BLOCK_STD``): plain blocks lose nothing at any scale, so counting them would
    rank a flat drawing by how much of it is plain, which shrinking it lowers."""
    h, w = (sq.shape[0] // side) * side, (sq.shape[1] // side) * side
    if h == 0 or w == 0:
        return float(np.nanmean(sq))
    blocks = np.nanmean(sq[:h, :w].reshape(h // side, side, w // side, side), axis=(1, 3))
    if grey is not None:
        spread = grey[:h, :w].reshape(h // side, side, w // side, side).std(axis=(1, 3))
        held = blocks[spread >= DETAIL_BLOCK_STD]
        if held.size >= DETAIL_MIN_BLOCKS:
            return float(np.quantile(held, DETAIL_QUANTILE))
    return float(np.quantile(blocks, DETAIL_QUANTILE))


def _round_trip_loss(grey: np.ndarray, s: float) -> float:
    """Grey levels lost (root of the DETAIL_QUANTILE block's mean square) by shrinking to ``s`` (Lanczos) and enlarging
    back (bicubic)."""
    h, w = grey.shape
    im = Image.fromarray(grey, mode="F")
    down = im.resize((max(2, round(w * s)), max(2, round(h * s))), Image.Resampling.LANCZOS)
    back = np.asarray(down.resize((w, h), Image.Resampling.BICUBIC), dtype=np.float32)
    sq = (grey - back) ** 2
    # JPEG block edges (the window starts on the block grid) are compression, not picture: left out
    on_grid = (np.arange(h) % 8 == 7) | (np.arange(h) % 8 == 0)
    sq[on_grid, :] = np.nan
    sq[:, (np.arange(w) % 8 == 7) | (np.arange(w) % 8 == 0)] = np.nan
    m = 4  # the resampling's edge effects
    return math.sqrt(_block_quantile(sq[m:-m, m:-m], grey[m:-m, m:-m]))


def noise_level(grey: np.ndarray) -> float:
    """Immerkaer's fast noise estimate (sigma in grey levels) over the flattest half of the picture."""
    import cv2  # imported late: only measuring needs it

    if min(grey.shape) < 8:
        return 0.0
    k = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    conv = np.abs(cv2.filter2D(grey, -1, k, borderType=cv2.BORDER_REFLECT))[1:-1, 1:-1]
    grad = (np.abs(cv2.Sobel(grey, -1, 1, 0)) + np.abs(cv2.Sobel(grey, -1, 0, 1)))[1:-1, 1:-1]
    flat = grad <= np.median(grad)
    return float(math.sqrt(math.pi / 2) / 6 * conv[flat].mean()) if flat.any() else 0.0


def blockiness(grey: np.ndarray) -> float:
    """Mean step across 8-pixel block boundaries over the mean step elsewhere (about 1 without blocking)."""
    if min(grey.shape) < 32:
        return 1.0
    dx = np.abs(np.diff(grey, axis=1))
    dy = np.abs(np.diff(grey, axis=0))
    on_x, on_y = dx[:, 7::8], dy[7::8, :]
    rest = (dx.sum() - on_x.sum() + dy.sum() - on_y.sum()) / max(1, dx.size - on_x.size + dy.size - on_y.size)
    on = (on_x.sum() + on_y.sum()) / max(1, on_x.size + on_y.size)
    return float(on / rest) if rest > 1e-6 else 1.0


def halo(grey: np.ndarray) -> float:
    """How far the grey profile across an edge overshoots its two plateaus (a light rim on the light side, a dark
    one on the dark side: what unsharp masking, a "sharpen" or "enhance" slider, draws), over the step between
    them: the median over up to HALO_POINTS edge pixels (Canny at HALO_EDGES) whose step is HALO_STEP or more,
    reading HALO_REACH px each way along the gradient, where each plateau is one (its values spread at most
    HALO_FLAT times the step: beside a thin stroke or within text the far side is the next edge, not a plateau).
    A copy sharpened from a photo has more of it than the photo, and detail measures count those rims as detail;
    0 where too few edges count."""
    import cv2  # imported late: only measuring needs it

    h, w = grey.shape
    r = HALO_REACH
    if min(h, w) <= 2 * r + 2:
        return 0.0
    edges = cv2.Canny(np.clip(grey, 0, 255).astype(np.uint8), *HALO_EDGES)
    edges[:r + 1], edges[-r - 1:], edges[:, :r + 1], edges[:, -r - 1:] = 0, 0, 0, 0
    ys, xs = np.nonzero(edges)
    if len(ys) < HALO_MIN_EDGES:
        return 0.0
    if len(ys) > HALO_POINTS:
        pick = np.linspace(0, len(ys) - 1, HALO_POINTS).astype(int)
        ys, xs = ys[pick], xs[pick]
    g = grey.astype(np.float32)
    gx, gy = _sobel_at(g, ys, xs)
    norm = np.hypot(gx, gy) + 1e-6
    t = np.arange(-r, r + 1, dtype=np.float32)  # along the gradient: from the dark side to the light
    px = (xs[:, None] + (gx / norm)[:, None] * t).astype(np.float32)
    py = (ys[:, None] + (gy / norm)[:, None] * t).astype(np.float32)
    p = cv2.remap(g, px, py, cv2.INTER_LINEAR)
    half = r // 2
    dark, light = p[:, :half].mean(axis=1), p[:, -half:].mean(axis=1)
    step = light - dark
    spread = np.maximum(np.ptp(p[:, :half], axis=1), np.ptp(p[:, -half:], axis=1))
    counted = (step >= HALO_STEP) & (spread <= HALO_FLAT * step)
    if int(counted.sum()) < HALO_MIN_EDGES:
        return 0.0
    over = np.maximum(0.0, p[:, r + 1:r + 1 + half].max(axis=1) - light)
    under = np.maximum(0.0, dark - p[:, r - half:r].min(axis=1))
    return float(np.median(((over + under) / np.maximum(step, 1.0))[counted]))


def _sobel_at(g: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 3 x 3 Sobel gradients (x, y) of ``g`` at the pixels (``ys``, ``xs``), none on the border: only the
    edge pixels read need them."""
    def at(dy: int, dx: int) -> np.ndarray:
        return g[ys + dy, xs + dx]
    gx = at(-1, 1) + 2 * at(0, 1) + at(1, 1) - at(-1, -1) - 2 * at(0, -1) - at(1, -1)
    gy = at(1, -1) + 2 * at(1, 0) + at(1, 1) - at(-1, -1) - 2 * at(-1, 0) - at(-1, 1)
    return gx, gy


def jpeg_quality(data: bytes) -> int | None:
    """The JPEG quality (1-100) whose IJG luminance table is nearest the file's, None for other formats."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            tables = getattr(im, "quantization", None) if im.format in ("JPEG", "MPO") else None
    except Exception:  # noqa: BLE001 - the decode reports a bad file; quality is only evidence
        return None
    if not tables or 0 not in tables:
        return None
    luma = np.asarray(tables[0], np.float32)
    return int(np.argmin(np.abs(_IJG_TABLES - luma).mean(axis=1))) + 1


_IJG_LUMA = np.array([16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
                      14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113,
                      92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], np.float32)


def _ijg_table(q: int) -> np.ndarray:
    scale = 5000 / q if q < 50 else 200 - 2 * q
    return np.clip(np.floor((_IJG_LUMA * scale + 50) / 100), 1, 255)


_IJG_TABLES = np.stack([_ijg_table(q) for q in range(1, 101)])  # row q - 1: quality q


# -- containment: whose frame holds the others' pictures (from the link features' keypoints) --------------
HOLD_REFS = 6  # each member is compared with the first this many members (best scored first): 15 fits for 6
HOLD_MIN_INLIERS = 15  # a transform with fewer inliers than this is not trusted to say what lies where
HOLD_TOL = 0.03  # of a frame's side: a keypoint mapped this far outside the frame still counts inside (fit error)


def holdings(keypoints: Mapping[int, verify.Keypoints], order: Sequence[int]) -> dict[int, float]:
    """Share of the group's picture each member holds: for a member m, the least, over the members it is
    compared with, of the share of the other's keypoints that the affine transform between the two
    (``indexer.verify.fit``) lays inside m's frame. The original holds all of a crop's points, a crop only part
    of its original's; padded, framed, turned or re-saved copies hold all of each other's. Each member is
    compared with the first HOLD_REFS of ``order`` (the best scored first), so a large group costs a few fits a
    member. A pair with no trusted transform (too few points, linked on pixels or cosine) tells nothing; a member
    no pair tells about is left out (not known)."""
    ids = [i for i in order if i in keypoints and keypoints[i].count]
    refs = set(ids[:HOLD_REFS])
    held: dict[int, float] = {}
    for x, a in enumerate(ids):
        for b in ids[x + 1:]:
            if a not in refs and b not in refs:
                continue
            if (both := holds_both(keypoints[a], keypoints[b])) is None:
                continue
            held[b] = min(held.get(b, 1.0), both[1])
            held[a] = min(held.get(a, 1.0), both[0])
    return held


def holds_both(a: verify.Keypoints, b: verify.Keypoints) -> tuple[float, float] | None:
    """How much of ``b``'s picture ``a`` holds, and of ``a``'s ``b`` (the shares of ``holdings``); None where no
    trusted transform links them."""
    f = verify.fit_or_none(a, b, verify.ENOUGH * HOLD_MIN_INLIERS)
    if f is None or f.inliers < HOLD_MIN_INLIERS:
        return None
    m = np.vstack([f.matrix.astype(np.float64), [0.0, 0.0, 1.0]])  # a's frame -> b's
    return _inside(b, np.linalg.inv(m), a.size), _inside(a, m, b.size)


def _inside(kp: verify.Keypoints, m: np.ndarray, size: tuple[int, int]) -> float:
    """Share of ``kp``'s points that the 3x3 affine ``m`` lays inside a frame of ``size`` (HOLD_TOL outside
    counts inside)."""
    xy = kp.views[0][0].astype(np.float64)
    p = xy @ m[:2, :2].T + m[:2, 2]
    w, h = size
    tx, ty = HOLD_TOL * w, HOLD_TOL * h
    ok = (p[:, 0] >= -tx) & (p[:, 0] <= w + tx) & (p[:, 1] >= -ty) & (p[:, 1] <= h + ty)
    return float(ok.mean()) if len(p) else 1.0


# -- choosing ------------------------------------------------------------------------------------
EVIDENCE = ("effective_pixels", "border", "colour", "tint", "clipped", "noise", "blockiness", "quality", "cropped",
            "saturated", "levels", "halo")
# Fitted by ``bench/keeper.py --fit`` (bench/README.md, "Keeper"; ``halo`` on a grid, the others held); per unit of
# ``evidence``'s terms
WEIGHTS = {"effective_pixels": 0.97, "border": -6.56, "colour": 2.09, "tint": -1.54, "clipped": -0.63, "noise": -3.19,
           "blockiness": -1.21, "quality": 0.0, "cropped": -1.98, "saturated": -2.42, "levels": -5.02, "halo": -6.0}
RULE = ("the copy that holds the most of the original picture: a score of effective pixels (detail actually "
        "present in the content box), padding and borders, colour, tint, clipping, noise, compression, "
        "cropping (the share of the group's picture it holds), colour pushed beyond the group's, a tone "
        "curve moved from the group's (brightness or contrast changed) and sharpening rims at edges; "
        "within a tie, the one with the camera's EXIF metadata, then the oldest file, then the largest file")
TIE = 0.54  # scores closer than this to the best: the same picture as far as pixels tell
UNKNOWN_QUALITY = 0.9  # a file without JPEG tables (PNG, WebP): counted as a good JPEG
GREY = 2.0  # colourfulness below this: a grey picture
COLOUR_ENOUGH = 20.0  # colourfulness counts up to this: grey, sepia and faded copies lose, a "vivid" one gains nothing
# Colour beyond the group's usual counts up to this (log colourfulness; our "vivid" recipe pushes 0.7-0.8): far
# more is a member beside a group whose usual is one grey, sepia or faded copy and the copies made from it
SATURATED_MAX = 1.0
# Overshoot at edges counts beyond this (``halo``): the median of the fit library's originals (camera sharpening,
# JPEG ringing), so a copy that lost a photo's own rims (blurred, pixelated, shrunk) gains nothing by it
HALO_FREE = 0.20
# Overshoot counts only on a picture with some noise: a drawn, rendered or screenshotted one (text, clipart) has
# crisp edges of its own, and its shrunk copy would gain by losing them
HALO_NOISE = 0.1
# The sign each weight must have: more effective pixels and colour hold more of the picture; border, tint,
# clipping, noise, blocking hold less; a higher JPEG quality more; a crop (less of the group's picture) and
# colour pushed beyond the group's usual hold less, and so do a tone curve moved away from the group's and the rims
# a sharpening filter draws at edges
SIGNS = {"effective_pixels": 1, "border": -1, "colour": 1, "tint": -1, "clipped": -1, "noise": -1, "blockiness": -1,
         "quality": 1, "cropped": -1, "saturated": -1, "levels": -1, "halo": -1}


CHOICE = 1  # of how ``choose`` ranks: bumped with a change that the constants ``choice_id`` reads do not show


def choice_id() -> str:
    """What a group's stored keeper was chosen by: ``CHOICE`` and the constants ranking reads. When it changes,
    every group's keeper is chosen again (``indexer.remeasure.rechoose``), so bulk review applies this rule's."""
    rule = [CHOICE, sorted(WEIGHTS.items()), TIE, UNKNOWN_QUALITY, COLOUR_ENOUGH, SATURATED_MAX, TONE_UNIT,
            HOLD_REFS, HOLD_MIN_INLIERS, HOLD_TOL, HALO_FREE, HALO_NOISE]
    return hashlib.sha256(json.dumps(rule).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Candidate:
    """A member as the keeper rule sees it (from the catalog: no file is read)."""

    id: int
    width: int
    height: int
    bytes: int = 0
    mtime: float = 0.0
    camera_exif: bool = False
    attributes: Attributes | None = None
    held: float | None = None  # share of the group's picture it holds (``holdings``); None: not known
    page: bool = False  # its kept features are a page's (``indexer/pagecheck.py``; ``Usual.pages``)


@dataclass(frozen=True)
class Choice:
    image_id: int
    reason: str
    scores: dict[int, float]  # each member's picture score
    decided_by: dict[int, str]  # each other member: the evidence it lost on most ("tie" within TIE)


def comparable(members: Sequence[Candidate]) -> list[Candidate]:
    """The members as they can be compared: when one was never measured (indexed before the keeper evidence, or
    by an older ``measure``), every member goes by pixels alone, as that one must."""
    if all(m.attributes is not None for m in members):
        return list(members)
    return [replace(m, attributes=None) for m in members]


@dataclass(frozen=True)
class Usual:
    """What a group's members usually measure (``usual``): some evidence counts only beyond it."""

    noise: float = 0.0  # log1p of the noise level, upper quartile
    colour: float | None = None  # log1p of the colourfulness, upper median; None: not known
    tones: tuple[float, ...] = ()  # the median of the members' tone curves, point by point; (): not known
    pages: bool = False  # every member is a page (``Candidate.page``): a page's margins and colour are its own
    jpegs: bool = True  # some member is a JPEG file: without one, a step on the 8 px grid is the picture's own


def _quantile(values: Sequence[float], q: int) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, (q * len(v)) // 4)]


def _median_curve(curves: Sequence[tuple[float, ...]]) -> tuple[float, ...]:
    """The median of tone curves point by point (of those with every point); () when none has."""
    full = [c for c in curves if len(c) == len(TONE_QUANTILES)]
    return tuple(float(v) for v in np.median(np.array(full), axis=0)) if full else ()


def usual(members: Sequence[Candidate]) -> Usual:
    """The group's usual noise (upper quartile): copies shrunk, enlarged, blurred or compressed are smoother than
    their original, so only noise beyond it counts against a member (grain, added noise); and its usual
    colourfulness (upper median): most edits keep the colour, so a member far more colourful than that had its
    colour pushed ("vivid", saturation up); and its usual tone curve (the median, point by point): most edits
    keep the tones too, so the original lies near it and a brightened, darkened or contrast-changed copy away
    from it. In a group of two the upper quartile is the noisier member's: noise then never counts (nor tones:
    both members lie as far from their median). And whether every member is a page: a document's scan and its
    phone photos, whose margins and colour ``evidence`` then leaves out (one photo with a plain ground is a page
    to the page check too, but a group of them is rarely only that)."""
    measured = [m.attributes for m in members if m.attributes is not None]
    if not measured:
        return Usual()
    return Usual(noise=_quantile([math.log1p(a.noise) for a in measured], 3),
                 colour=_quantile([math.log1p(a.colour) for a in measured], 2),
                 tones=_median_curve([a.tones for a in measured]), pages=all(m.page for m in members),
                 jpegs=any(a.jpeg_quality for a in measured))


def evidence(c: Candidate, group: Usual = Usual()) -> dict[str, float]:
    """The terms of a member's picture score (logs where a ratio matters, not a difference); ``group`` is the
    group's ``usual``."""
    a = c.attributes
    px = max(1, c.width * c.height)
    cropped = 1.0 - c.held if c.held is not None else 0.0
    if a is None:  # never measured (indexed before measuring): pixels (and containment) only
        return {k: (math.log(px) if k == "effective_pixels" else cropped if k == "cropped" else 0.0)
                for k in EVIDENCE}
    if group.pages:  # paper's white margin is no padding; ink on paper, or the lamp it was shot under, no colour edit
        a = replace(a, border=0.0, colour=0.0, tint=0.0)
    return {"effective_pixels": math.log(max(1.0, a.effective_pixels(c.width, c.height))),
            "border": a.border, "colour": math.log1p(min(a.colour, COLOUR_ENOUGH)), "tint": a.tint,
            "clipped": a.clipped, "noise": max(0.0, math.log1p(a.noise) - group.noise),
            "blockiness": math.log(max(a.blockiness, 1e-3)) if group.jpegs else 0.0,
            "quality": (a.jpeg_quality / 100) if a.jpeg_quality else UNKNOWN_QUALITY, "cropped": cropped,
            "saturated": (min(SATURATED_MAX, max(0.0, math.log1p(a.colour) - group.colour))
                          if group.colour is not None else 0.0),
            "levels": levels(a.tones, group.tones),
            "halo": max(0.0, a.halo - HALO_FREE) if a.noise >= HALO_NOISE else 0.0}


def levels(tones: tuple[float, ...], usual_tones: tuple[float, ...]) -> float:
    """How far a tone curve lies from the group's usual one: the mean distance of its points, in TONE_UNITs
    (0 when either is not known)."""
    if len(tones) != len(TONE_QUANTILES) or len(usual_tones) != len(TONE_QUANTILES):
        return 0.0
    return float(np.mean(np.abs(np.subtract(tones, usual_tones)))) / TONE_UNIT


def score(c: Candidate, weights: dict[str, float] = WEIGHTS, group: Usual = Usual()) -> float:
    e = evidence(c, group)
    return float(sum(weights[k] * e[k] for k in EVIDENCE))


def choose(members: Sequence[Candidate], weights: dict[str, float] = WEIGHTS) -> Choice:
    """The member that holds the most of the original picture (module docstring), with the reason in words."""
    if not members:
        raise ValueError("a group has members")
    members = comparable(members)
    group = usual(members)
    scores = {m.id: score(m, weights, group) for m in members}
    top = max(scores.values())
    tied = [m for m in members if scores[m.id] >= top - TIE]
    best = min(tied, key=lambda m: (not m.camera_exif, m.mtime or 0.0, -(m.bytes or 0), m.id))
    decided = {m.id: _lost_on(best, m, weights, group) if scores[m.id] < top - TIE else "tie"
               for m in members if m.id != best.id}
    return Choice(best.id, _reason(best, members, decided), scores, decided)


def order(members: Sequence[Candidate], weights: dict[str, float] = WEIGHTS) -> list[int]:
    """The members' ids, the best scored first leaving containment out: ``holdings`` compares each member with
    the first few."""
    members = comparable([replace(m, held=None) for m in members])
    group = usual(members)
    return [m.id for m in sorted(members, key=lambda m: (-score(m, weights, group), m.id))]


def _lost_on(best: Candidate, other: Candidate, weights: dict[str, float], group: Usual) -> str:
    """The term that counts most for ``best`` over ``other``."""
    eb, eo = evidence(best, group), evidence(other, group)
    return max(EVIDENCE, key=lambda k: weights[k] * (eb[k] - eo[k]))


PHRASES = {"border": "padded", "tint": "tinted", "clipped": "badly exposed", "noise": "noisier",
           "blockiness": "re-compressed", "quality": "more compressed", "cropped": "cropped",
           "saturated": "over-saturated", "levels": "re-toned",
           "halo": "sharpened"}  # what a member that lost on a term is


def _phrase(best: Candidate, other: Candidate, term: str) -> str:
    if term == "effective_pixels":
        if other.width * other.height > best.width * best.height:
            return "upscaled"
        return "smaller" if other.width * other.height < best.width * best.height else "blurred"
    if term == "colour":
        a = other.attributes
        return "grey" if a is not None and a.colour < GREY else "faded"
    return PHRASES[term]


def _tie_break(best: Candidate, tied: Sequence[Candidate]) -> str:
    """Why ``best`` won over members holding the same picture."""
    if best.camera_exif and not all(m.camera_exif for m in tied):
        return "still carries the camera's EXIF metadata"
    if all((best.mtime or 0.0) < (m.mtime or 0.0) for m in tied):
        return "oldest file (copies come after their original)"
    return "largest file, then lowest id"


def _reason(best: Candidate, members: Sequence[Candidate], decided: dict[int, str]) -> str:
    """The deciding evidence in words: what the others are, and how ties with the same picture were broken."""
    others = [m for m in members if m.id != best.id]
    if not others:
        return "only member"
    tied = [m for m in others if decided[m.id] == "tie"]
    lost = [m for m in others if decided[m.id] != "tie"]
    if not lost:
        return f"the same picture as the others; {_tie_break(best, tied)}"
    counts: dict[str, int] = {}
    for m in lost:
        p = _phrase(best, m, decided[m.id])
        counts[p] = counts.get(p, 0) + 1
    if not tied and set(counts) == {"grey"}:
        return "only colour copy"
    if not tied and set(counts) == {"cropped"}:
        return "the others are crops of it"
    words = sorted(counts, key=lambda p: (-counts[p], p))[:3]
    text = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]
    if not tied:
        return f"the others are {text} copies"
    return f"the others are {text} copies, or the same picture: {_tie_break(best, tied)}"


# -- the catalog's columns (``images``) ------------------------------------------------------------------
COLUMNS = {"detail": "detail_scale", "border": "border", "colour": "colour", "tint": "tint", "clipped": "clipped",
           "noise": "noise", "blockiness": "blockiness", "jpeg_quality": "jpeg_quality",
           "analysed_side": "analysed_side", "tones": "tones", "taken_at": "taken", "halo": "halo"}


def columns(a: Attributes | None) -> dict:
    """The ``images`` columns of a measure (all None for a photo that could not be measured; ``tones`` a list)."""
    out = {col: (getattr(a, field) if a is not None else None) for col, field in COLUMNS.items()}
    if a is not None:
        out["tones"] = list(a.tones)
    out["measured"] = VERSION if a is not None else None
    return out


def from_row(row: object) -> Attributes | None:
    """The measure kept in a catalog row (``indexer.catalog.models.Image``), None if it was never measured."""
    if getattr(row, "measured", None) != VERSION:
        return None
    values = {field: getattr(row, col) for col, field in COLUMNS.items()}
    values["tones"] = tuple(values["tones"] or ())
    values["halo"] = values["halo"] or 0.0
    return Attributes(**values)


def candidate(row: object, page: bool = False) -> Candidate:
    """A catalog row as the keeper rule sees it; ``page``: its kept features are a page's
    (``featurestore.pages``)."""
    return Candidate(id=row.id, width=row.width or 0, height=row.height or 0, bytes=row.bytes or 0,  # type: ignore[attr-defined]
                     mtime=row.mtime or 0.0, camera_exif=bool(row.camera_exif),  # type: ignore[attr-defined]
                     attributes=from_row(row), held=getattr(row, "held", None), page=page)


def explain(keeper_id: int | None, members: Sequence[Candidate],
            weights: dict[str, float] = WEIGHTS) -> dict[int, tuple[float, str | None]]:
    """Each member's picture score and the evidence it lost to the keeper on (None for the keeper; "tie" when
    the scores are within TIE, where EXIF, then file age decided)."""
    members = comparable(members)
    group = usual(members)
    scores = {m.id: score(m, weights, group) for m in members}
    best = next((m for m in members if m.id == keeper_id), None)
    out: dict[int, tuple[float, str | None]] = {}
    for m in members:
        if best is None or m.id == best.id:
            out[m.id] = (scores[m.id], None)
        elif scores[m.id] >= scores[best.id] - TIE:
            out[m.id] = (scores[m.id], "tie")
        else:
            out[m.id] = (scores[m.id], _lost_on(best, m, weights, group))
    return out


def winners(members: Sequence[Candidate]) -> dict[str, int]:
    """For each shown attribute, the member with the best value (the page highlights it)."""
    measured = [m for m in members if m.attributes is not None]
    out: dict[str, int] = {}
    if members:
        out["pixels"] = max(members, key=lambda m: (m.width * m.height, -m.id)).id
        out["age"] = min(members, key=lambda m: (m.mtime, m.id)).id
    if any(m.camera_exif for m in members):
        out["camera_exif"] = next(m.id for m in members if m.camera_exif)
    if measured:
        def attr(m: Candidate) -> Attributes:
            return m.attributes  # type: ignore[return-value]

        out["effective_pixels"] = max(measured, key=lambda m: attr(m).effective_pixels(m.width, m.height)).id
        out["border"] = min(measured, key=lambda m: attr(m).border).id
        out["colour"] = max(measured, key=lambda m: attr(m).colour).id
        out["clipped"] = min(measured, key=lambda m: attr(m).clipped).id
        out["noise"] = min(measured, key=lambda m: attr(m).noise).id
        quality = [m for m in measured if attr(m).jpeg_quality]
        if quality:
            out["jpeg_quality"] = max(quality, key=lambda m: attr(m).jpeg_quality or 0).id
    return out
