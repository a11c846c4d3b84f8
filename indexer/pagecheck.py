"""Pages: pictures on paper (documents, receipts, slides, clip art on white) compared at the scale of their text.

Two pages of one manual, or two invoices of one template, are *different* pictures that share almost all of
their structure: the template, the margins, the lines of text at the same places. Keypoints agree on one
transform and the coarse content check (``indexer.verify.agreement``, at 240 px) agrees too, because at that scale
a line of text is a grey stripe whatever it says. What tells them apart is the text itself, so for two pages the
link rule also asks the fine check here: under the fitted transform, at the keypoints' own 480 px frame, each
small textured cell of one page must find itself in the other (normalised correlation, after a local search of a
few pixels that absorbs a scan's small warp). A copy of a page finds nearly every cell; another page of the
same template misses the cells where its words and numbers differ.

A picture is a page when most of it is one flat tone (``PAPER_SHARE`` of its pixels within ``PAPER_SPREAD`` of
the most common grey), as it is or, for a textured picture on a light ground, once the slow changes of its light
are divided out (``is_page``: a page photographed under a lamp, on a desk, is not one tone as it is, and must still
be told from the next page of its template by its text): the decode workers keep its grey copy at the keypoints'
frame (``page_of``) only then.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from PIL import Image

from indexer import verify

PAPER_SHARE = 0.6  # share of the pixels within PAPER_SPREAD of the commonest grey that makes a picture a page
PAPER_SPREAD = 8
LIGHT_SCALE = 7  # pixels of the grey copy (long side features.GREY_SIDE): wider than a line of text, finer than light
LIGHT_GROUND = 150  # least median grey of a picture's light for a page found once its light is divided out
LIGHT_KEYPOINTS = 100  # and the least keypoints: it has text (a light abstract wallpaper has fewer)
LIGHT_AGREEMENT = 0.95  # least text agreement of a pair with such a page (linkrule.same_text)
CELL = 16  # side of the cells compared, in pixels of the keypoints' frame (long side verify.SIDE)
SEARCH = 4  # each cell is looked for this many pixels around where the transform puts it
CELL_TEXTURE = 12.0  # grey standard deviation of a cell with something written in it
CELL_MATCH = 0.8  # normalised correlation at which a cell counts as found


def is_paper(grey: np.ndarray) -> bool:
    """Whether a grey picture (uint8) is mostly one flat tone: paper, a slide's background, clip art on white."""
    if grey.size == 0:
        return False
    hist = np.bincount(grey.ravel(), minlength=256)
    m = int(hist.argmax())
    return float(hist[max(0, m - PAPER_SPREAD):m + PAPER_SPREAD + 1].sum()) / grey.size >= PAPER_SHARE


def is_page(grey: np.ndarray, keypoints: int) -> bool:
    """Whether a grey picture (uint8) with ``keypoints`` is a page: paper (``is_paper``) as it is, or, with
    ``LIGHT_KEYPOINTS`` (text), on a light ground once divided by its light (the picture dilated over
    ``LIGHT_SCALE`` pixels, then blurred as far), which flattens a lamp's fall-off and a desk around the page."""
    if is_paper(grey):
        return True
    if keypoints < LIGHT_KEYPOINTS or grey.size == 0:
        return False
    import cv2  # imported late, as in indexer.verify

    light = cv2.GaussianBlur(cv2.dilate(grey, np.ones((LIGHT_SCALE, LIGHT_SCALE), np.uint8)).astype(np.float32),
                             (0, 0), LIGHT_SCALE)
    if float(np.median(light)) < LIGHT_GROUND:
        return False
    return is_paper(np.clip(grey * (255.0 / np.maximum(light, 1.0)), 0, 255).astype(np.uint8))


def page_of(rgb: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """The grey copy of a page in the keypoints' frame (``size``: its width and height there), or at the
    page's own size where that is smaller (a small copy is compared at the detail it has)."""
    scale = min(1.0, max(rgb.size) / max(size))
    return np.asarray(rgb.convert("L").resize(_scaled(size, scale), Image.Resampling.BILINEAR), dtype=np.uint8)


def _scaled(size: tuple[int, int], scale: float) -> tuple[int, int]:
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def agreement(page_a: np.ndarray, page_b: np.ndarray, matrix: np.ndarray, frame_a: tuple[int, int],
              frame_b: tuple[int, int]) -> float | None:
    """Share of ``page_a``'s textured cells found in ``page_b`` under ``matrix`` (a fit's, affine or perspective:
    a's keypoint frame to b's; ``frame_a``/``frame_b`` their sizes), each within ``SEARCH`` pixels, compared at
    the scale of the smaller page; None when no textured cell of ``a`` lies inside ``b``."""
    cells = _cells_found(page_a, page_b, matrix, frame_a, frame_b)
    if cells is None:
        return None
    total, found = cells
    return sum(found) / total


def agrees(page_a: np.ndarray, page_b: np.ndarray, matrix: np.ndarray, frame_a: tuple[int, int],
           frame_b: tuple[int, int], least: float) -> bool:
    """Whether ``agreement`` is at least ``least`` (False where it is None), looking at no more cells than it
    takes to know: another page of a template is told apart by the first few per cent of the cells it misses."""
    cells = _cells_found(page_a, page_b, matrix, frame_a, frame_b)
    if cells is None:
        return False
    total, found = cells
    hits, left = 0, total
    for hit in found:
        hits, left = hits + hit, left - 1
        if hits / total >= least:
            return True
        if (hits + left) / total < least:
            return False
    return hits / total >= least


def _cells_found(page_a: np.ndarray, page_b: np.ndarray, matrix: np.ndarray, frame_a: tuple[int, int],
                 frame_b: tuple[int, int]) -> tuple[int, Iterator[bool]] | None:
    """(how many textured cells of ``page_a`` lie wholly inside ``page_b``, whether each is found there, one by
    one as they are read); None when there is none (``agreement``)."""
    import cv2  # imported late, as in indexer.verify: only linking needs it

    scale = min(max(page_a.shape) / max(frame_a), max(page_b.shape) / max(frame_b))
    a = cv2.resize(page_a, _scaled(frame_a, scale), interpolation=cv2.INTER_AREA).astype(np.float32)
    b = cv2.resize(page_b, _scaled(frame_b, scale), interpolation=cv2.INTER_AREA).astype(np.float32)
    warped = verify.warp(b, verify.scaled(matrix, scale), (a.shape[1], a.shape[0]),
                         cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, -1.0)
    ny, nx = ((n - CELL - 2 * SEARCH) // CELL + 1 for n in a.shape)
    if ny <= 0 or nx <= 0:
        return None
    cells = a[SEARCH:SEARCH + ny * CELL, SEARCH:SEARCH + nx * CELL].reshape(ny, CELL, nx, CELL).swapaxes(1, 2)
    side = CELL + 2 * SEARCH
    regions = np.lib.stride_tricks.sliding_window_view(warped, (side, side))[::CELL, ::CELL][:ny, :nx]
    # a cell with something written in it, wholly inside b (a region partly outside b is not compared)
    compared = (cells.std(axis=(2, 3)) >= CELL_TEXTURE) & ~(regions < 0).any(axis=(2, 3))
    total = int(compared.sum())
    if not total:
        return None
    ii, jj = np.nonzero(compared)
    # in an order spread over the page: where two pages of one template differ (the body, not the letterhead),
    # an early look finds it
    order = np.random.default_rng(total).permutation(total)

    def found() -> Iterator[bool]:
        for k in order:
            region, cell = np.ascontiguousarray(regions[ii[k], jj[k]]), np.ascontiguousarray(cells[ii[k], jj[k]])
            # no cell is found in a blank region
            yield float(region.std()) >= 1.0 and \
                float(cv2.matchTemplate(region, cell, cv2.TM_CCOEFF_NORMED).max()) >= CELL_MATCH

    return total, found()
