"""The link rule: is a candidate pair two copies of one photo, and on what evidence?

The embedding's cosine finds candidates; it does not decide alone, because it is built to see through edits and
so also sees through what tells different pictures apart: the colour of two flat images, the text of two pages,
the scene of two shots of one subject, the photo under a shared caption, frame or app window. A pair of
candidates (cosine at or above ``threshold - band``) is linked on one of these, strongest first:

- ``verified``: SIFT keypoints agree on one affine transform both ways (``min_inliers``) *and* the photo content
  agrees under it (``min_agreement`` of the textured grid cells of the overlap: ``indexer.verify.agreement``). A
  transform that only a shared overlay explains fails the second test, and that failure is final but for two
  narrower tests: ``framed``, the content inside the inliers' bounding box alone (``frame_agreement`` of its cells
  both ways, each box at least ``FRAME_SHARE`` of the overlap and centred in its picture: a photo put in
  another frame or card agrees inside the photo, where its keypoints match, and disagrees only on the two frames
  around it, while a caption band or logo that two photos share is small or off the centre), then a perspective fit (a copy photographed at an
  angle: a keystone), which links only when the content agrees almost everywhere (``perspective_agreement``),
  since a perspective fit also lays two shots of one scene closely over each other. A weaker fit
  (``weak_inliers``: a blurred, tiny or heavily compressed copy keeps few keypoints) links when the content
  agrees more closely (``weak_agreement``) or under a perspective fit; otherwise the pair is left to the tests
  below, as a pair with no fit is. Every fit must also explain its keypoints as one picture: where they moved
  against each other (``verify.moved`` at least ``MAX_MOVED``: the depth of a scene seen from two places, a
  subject that moved between two shots of a burst) the two are two shots, not copies. Two pages
  (``indexer/pagecheck.py``: documents, slides, clip art on white) must also agree at the scale of their text
  (``page_min_agreement``): pages of one template agree everywhere else.
- ``pixels``: two low-texture pictures (skies, gradients: too few keypoints to fit a transform) at or above the
  threshold whose colour thumbnails of their content (plain padding, bars and frames cut off: a letterboxed copy)
  match under one of the eight turns/flips (``max_pixel_distance``), or match more closely once a brightness gain
  and colour cast between them are undone (``max_gain_distance``: a brightened, darkened or white-balanced copy of
  a gradient changes every pixel; its colours keep their ratios up to a small cast). Likewise the whole thumbnails
  of two textured pictures (not pages) on which geometry found no fit even for the weaker test: a repeating
  pattern's keypoints match nothing. With ``PATTERN_KEYPOINTS`` each, they must also agree laid frame over frame
  (``weak_agreement``): other text on one account's gradient has the thumbnail of the next card, not its text.
  And with ``MATCH_KEYPOINTS`` each, either kind of pixels pair must share most of its keypoints' descriptors or
  agree laid over: a copy keeps them; another subject on one backdrop or sky, another face of one sticker set,
  differs exactly where its keypoints are, in the few thumbnail pixels the subject covers. Two pictures of one
  aspect must also differ evenly laid frame over frame (``differ_evenly``): another moon on one night sky, with
  too few keypoints to tell, differs from it in one patch and nowhere else; a caption laid on a copy differs in
  one place too, but there only the copy holds detail.
- ``soft``: at any candidate cosine, a textured photo and a low-texture one whose grey copies match in every cell
  once the textured one is blurred as much (``max_blur_residual`` times the cell's own spread): a blurred or shrunk
  copy loses its keypoints and much of its cosine, but not its layout, which no other picture shares pixel for
  pixel. A blurred copy that was also cropped, turned a little or framed is first laid over the original by its
  pixels (``indexer/align.py``) and must then match in every cell it covers.
- ``visual``: the cosine alone, only where geometry cannot judge (a photo with fewer than
  ``inconclusive_below`` keypoints: a thumbnail, a heavy blur), only from ``visual_min_cosine`` (well above the
  threshold: the embedding alone is least reliable on exactly such photos) and only when the pair stands out from
  the crowd around it: ``cosine - max(crowd_a, crowd_b) >= crowd_margin``, a photo's crowd being its similarity to
  its ``CROWD_K``-th nearest neighbour (score normalisation as in copy detection: a look-alike among many
  look-alikes needs more than its cosine). Never for two pages: to the embedding, every page of a template looks
  alike (a photo and a page may: an exposure edit can crush or blow out a photo until it looks like paper).

Flat pictures (no content at all) are linked to byte-identical copies only (``exact``, found by hash elsewhere).
A near-black picture is flat to its thumbnail but may still hold faint detail (a night shot, an underexposed
frame): at or above the threshold it links as ``pixels`` to a picture of one aspect (under a quarter turn or a
mirror too) whose detail, the smooth part (a vignette, a sky's glow) taken off, correlates with it
(``faint_alike``): another dark photo's noise and lights correlate with nothing; a crop of it is not found.
For the same reason two low-texture pictures whose content thumbnails are both plain and dark must also
correlate in their pattern, laid over or one cut from the other (``plain_alike``): near-black thumbnails are all
close to each other, and two near-black photos laid over differ evenly everywhere, as a copy does.

A ``verified`` or ``framed`` link also records its cover: the share of the two pictures' overlap that agrees
(``verify.agreement_cover``). One logo or text on two plain pictures agrees on a small part only; bulk review leaves
out a group that needs such a link (``indexer/grouping.py``, ``MIN_COVER``). And it records how many cells of
content moved under its fits (``shifted_cells``): frames of a camera that did not move, with people crossing the
scene, fit and agree like copies, and bulk review leaves out a group with such a link (``MAX_SHIFTED``).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageFilter

from indexer import align, pagecheck, verify
from indexer.config import Settings
from indexer.features import PhotoFeatures

PATTERN_KEYPOINTS = 100  # keypoints each above which two pictures with no fit must agree laid frame over frame
MATCH_KEYPOINTS = 15  # keypoints each from which two pictures linked on their pixels must share keypoints
MIN_MATCH_SHARE = 0.45  # of the fewer keypoints that must find their match in the other picture (``match_share``)
# ``differ_evenly``: two pictures of one aspect (log ratio within SAME_ASPECT) laid frame over frame, blurred by
# EVEN_BLUR px and gain-matched, are apart when their worst square patch (EVEN_PATCH of the long side) differs
# EVEN_RATIO times more than the two differ on average plus EVEN_FLOOR grey levels
SAME_ASPECT = 0.02
EVEN_BLUR = 1.0
EVEN_PATCH = 0.04
EVEN_FLOOR = 2.0
EVEN_RATIO = 6.0
ADDED_MARK = 0.5  # ``_added_to_one``: patches differing this share of the uneven bar count as differing
ADDED_FLAT = 2.0  # mean detail (grey levels) under which a patch holds none
ADDED_SCALE = 2.0  # px: detail is what a blur of this size takes away (a smooth gradient has none)
CROWD_K = 10  # a photo's crowd: its similarity to its k-th nearest neighbour in the library
GAIN_RANGE = (0.6, 1.67)  # brightness gains ``gain_distance`` undoes (the mean of the three channels')
GAIN_CAST = 1.3  # most a channel's gain may exceed another's: a colour cast, not another colour
GAIN_CLIP = 8  # thumbnail values within this of black or white are clipped by a gain: not compared
GAIN_SHARE = 0.5  # of the thumbnail's values that must be unclipped in both for gains to be measured
BLUR_SIGMAS = (0.0, 0.7, 1.0, 1.4, 2.0, 2.8, 4.0)  # blurs of the sharp grey copy tried on a soft one
BLUR_ASPECT = 0.03  # most two grey copies' aspect ratios may differ for ``blur_residual`` (no crop, no pad)
BLUR_GRID = 16  # cells per side in which a blurred copy must match its original
BLUR_FLOOR = 4.0  # grey levels: the least spread a cell's difference is measured against (JPEG noise, banding)
# A soft copy laid over its original by ``align`` (cropped, turned, framed) is measured on the cells it covers, which
# must be this share of the original's cells and hold this share of its keypoints (a crop that leaves out the one
# subject on a plain background is another picture), and the original must cover this share of the copy; the map
# may turn by ALIGN_MAX_TURN degrees and scale one way ALIGN_MAX_STRETCH times more than the other, at most (a
# copy is turned a little or by quarter turns, which are tried first; a smooth gradient can be turned to fit).
ALIGN_MIN_COVER = 0.4
ALIGN_MAX_TURN = 20.0
ALIGN_MAX_STRETCH = 1.25
MAX_MOVED = 0.4  # ``verify.moved`` from which a fit's keypoints moved against each other: two shots, not a copy
FRAME_SHARE = 0.25  # of the overlap's cells the inliers' box must hold for ``reframed``: not a shared logo or band
# ``faint_alike``: two grey copies at FAINT_SIDE px wide, less their blur by FAINT_BLUR px, each with a spread of at
# least FAINT_MIN_STD grey levels, correlating at FAINT_MIN_CORR or more
FAINT_SIDE = 64
FAINT_BLUR = 4.0
FAINT_MIN_STD = 0.5
FAINT_MIN_CORR = 0.4
# ``plain_alike``: dark content thumbnails spread under PLAIN_THUMB grey levels match any other such at a small
# distance; two of them must correlate at PLAIN_MIN_CORR: of other aspects one cut to the other's aspect, under one
# of the eight turns
PLAIN_THUMB = 8.0
PLAIN_DARK = 48.0  # mean grey of both thumbnails under this: dark pictures (bright plain ones kept their links)
PLAIN_MIN_CORR = 0.9
PLAIN_SIDE = 32  # px wide the two are compared at, blurred by PLAIN_BLUR px, the cut tried at PLAIN_OFFSETS places
PLAIN_BLUR = 1.0
PLAIN_OFFSETS = 9
# two of one aspect (under a turn) must correlate at PLAIN_MIN_CORR with one laid inside the other (the same frame,
# or a crop at one aspect) at one of PLAIN_INSET_SCALES, the outer PLAIN_INSET_SIDE px wide
PLAIN_INSET_SIDE = 48
PLAIN_MIN_STD = 0.5  # grey levels at PLAIN_INSET_SIDE: less is no pattern to correlate (a solid colour)
PLAIN_INSET_SCALES = tuple(float(s) for s in np.linspace(0.7, 1.0, 16))


@dataclass(frozen=True)
class LinkRule:
    """The settings of the rule (``Parts.link_rule`` builds it; its ``describe`` is stored with the pairs)."""

    threshold: float
    band: float
    min_inliers: int
    min_agreement: float
    weak_inliers: int
    weak_agreement: float
    perspective_agreement: float
    frame_agreement: float
    page_min_agreement: float
    max_pixel_distance: float
    max_gain_distance: float
    max_blur_residual: float
    inconclusive_below: int
    visual_min_cosine: float
    crowd_margin: float

    @property
    def floor(self) -> float:
        """The lowest cosine of a candidate pair."""
        return self.threshold - self.band

    def describe(self) -> str:
        return (f"candidates {self.band:g} below; verified: {self.min_inliers} inliers, agreement "
                f"{self.min_agreement:g} (or {self.weak_inliers} and {self.weak_agreement:g}; perspective "
                f"{self.perspective_agreement:g}; inside the inliers' box {self.frame_agreement:g} of at least "
                f"{FRAME_SHARE:g}, centred {verify.CENTRE_SLACK:.3g}; moved under {MAX_MOVED:g} at "
                f"{verify.MOVED_NEIGHBOURS}nn of {verify.MOVED_POINTS} from {verify.MOVED_MIN_INLIERS}; shifted cells "
                f"+-{verify.SHIFT_SEARCH} at {verify.SHIFT_CORR:g} from {verify.SHIFT_MIN:g}, clipped "
                f"{verify.SHIFT_CLIPPED:g}), {verify.RULE}, "
                f"agree{verify.AGREE_GRID}/{verify.AGREE_CORR:g}/blur{verify.AGREE_BLUR:g}/coarse{verify.AGREE_COARSE:g}/gain/cover/"
                f"clip{verify.AGREE_CLIP:g}; pages: {self.page_min_agreement:g} of {pagecheck.CELL}px cells at "
                f"{pagecheck.CELL_MATCH:g} +-{pagecheck.SEARCH} ({pagecheck.LIGHT_AGREEMENT:g} lit), paper "
                f"{pagecheck.PAPER_SHARE:g}; pixels: "
                f"{self.max_pixel_distance:g} or {self.max_gain_distance:g} at gain {GAIN_RANGE[0]:g}-"
                f"{GAIN_RANGE[1]:g} cast {GAIN_CAST:g}, or textured without a fit (laid over from "
                f"{PATTERN_KEYPOINTS} keypoints), sharing {MIN_MATCH_SHARE:g} of keypoints from {MATCH_KEYPOINTS}, "
                f"one aspect ({SAME_ASPECT:g}) differing evenly: worst {EVEN_PATCH:g} patch under {EVEN_RATIO:g}x "
                f"(mean + {EVEN_FLOOR:g}) blur {EVEN_BLUR:g}, or detail on one side only ({ADDED_MARK:g} of it, "
                f"{ADDED_FLAT:g} at {ADDED_SCALE:g} px), or faint: detail at {FAINT_SIDE} px less blur "
                f"{FAINT_BLUR:g} from {FAINT_MIN_STD:g} correlating {FAINT_MIN_CORR:g} under 8 turns, plain "
                f"thumbnails under {PLAIN_THUMB:g} under {PLAIN_DARK:g} of one aspect laid inside at "
                f"{PLAIN_INSET_SIDE} px {PLAIN_INSET_SCALES[0]:g}-{PLAIN_INSET_SCALES[-1]:g}x"
                f"{len(PLAIN_INSET_SCALES)} from {PLAIN_MIN_STD:g}, of other aspects correlating "
                f"{PLAIN_MIN_CORR:g} cut at "
                f"{PLAIN_OFFSETS} places, {PLAIN_SIDE} px blur {PLAIN_BLUR:g}; or soft: grey residual "
                f"{self.max_blur_residual:g} blurred {'/'.join(f'{x:g}' for x in BLUR_SIGMAS)} aspect "
                f"{BLUR_ASPECT:g} worst of {BLUR_GRID}x{BLUR_GRID} floor {BLUR_FLOOR:g}, or aligned by ecc"
                f"{'/'.join(str(k) for k in align.LEVELS)}x{align.ITERATIONS} stop {align.COARSE_MIN_CORRELATION:g} cover "
                f"{ALIGN_MIN_COVER:g} turn {ALIGN_MAX_TURN:g} stretch {ALIGN_MAX_STRETCH:g}; visual: under "
                f"{self.inconclusive_below} keypoints, cosine {self.visual_min_cosine:g}, crowd{CROWD_K} margin "
                f"{self.crowd_margin:g}, not two pages")


def rule_of(settings: Settings, threshold: float) -> LinkRule:
    """The rule that ``settings`` set at ``threshold`` (the model's calibrated one unless overridden)."""
    st = settings
    return LinkRule(threshold=threshold, band=st.verify_band, min_inliers=st.verify_min_inliers,
                    min_agreement=st.verify_min_agreement,
                    weak_inliers=st.verify_weak_inliers, weak_agreement=st.verify_weak_agreement,
                    perspective_agreement=st.verify_perspective_agreement,
                    frame_agreement=st.verify_frame_agreement, page_min_agreement=st.page_min_agreement,
                    max_pixel_distance=st.pixel_max_distance, max_gain_distance=st.pixel_max_gain_distance,
                    max_blur_residual=st.pixel_max_blur_residual,
                    inconclusive_below=st.inconclusive_below, visual_min_cosine=st.visual_min_cosine,
                    crowd_margin=st.crowd_margin)


@dataclass(frozen=True)
class Evidence:
    """Why two photos are linked, as stored with their pair."""

    kind: str  # "verified", "framed", "pixels", "soft" or "visual" ("exact" pairs are found by hash)
    similarity: float
    inliers: int | None = None
    agreement: float | None = None
    cover: float | None = None  # of a fit: the share of the overlap whose content agrees (``verify.agreement_cover``)
    shifted: int | None = None  # of a fit: cells whose content moved, both ways (``shifted_cells``)


class Check(NamedTuple):
    """What geometry found of a pair: inliers both ways and, once they are enough for the weaker test, the
    content agreement both ways, the fits a to b and b to a, and the agreement's cover (``verify.agreement_cover``,
    the lower)."""

    inliers: int
    agreement: float | None = None
    fits: tuple[verify.Fit, verify.Fit] | None = None
    cover: float | None = None


def decide(rule: LinkRule, cosine: float, a: PhotoFeatures, b: PhotoFeatures, crowd_a: float | None = None,
           crowd_b: float | None = None) -> Evidence | None:
    """The evidence that links a candidate pair, or None when the pair is not two copies of one photo."""
    if cosine < rule.floor:
        return None
    if a.flat or b.flat:
        return Evidence("pixels", cosine) if cosine >= rule.threshold and faint_alike(a, b) else None
    check = geometry(rule, a, b)
    if check is not None:
        inliers, agree, fits, cover = check
        if inliers >= rule.min_inliers:
            if agree is not None and agree >= rule.min_agreement:
                if one_picture(rule, a, b, fits):
                    return _fitted("verified", cosine, inliers, agree, cover, a, b, fits)
            elif agree is not None and (held := reframed(rule, a, b, fits)) is not None:
                return _fitted("framed", cosine, inliers, held, cover, a, b, fits)
            # one transform, but the photos under it differ: a shared overlay, a burst, a template; or a keystone
            return keystone(rule, cosine, a, b)
        if inliers >= rule.weak_inliers:
            if agree is not None and agree >= rule.weak_agreement and one_picture(rule, a, b, fits):
                return _fitted("verified", cosine, inliers, agree, cover, a, b, fits)
            found = keystone(rule, cosine, a, b)
            if found is not None:
                return found
    if softened(rule, a, b):
        return Evidence("soft", cosine)
    if cosine < rule.threshold:
        return None
    if a.low_texture and b.low_texture:
        return Evidence("pixels", cosine) if thumbs_match(rule, a.content_thumb, b.content_thumb) and \
            keypoints_alike(rule, a, b) and differ_evenly(a, b) and plain_alike(a, b) else None
    if a.page is not None and b.page is not None:
        return None  # the embedding sees every page of a template alike: two pages link on their text only
    if a.page is None and b.page is None and (check is None or check[0] < rule.weak_inliers) and \
            thumbs_match(rule, a.thumb, b.thumb) and laid_alike(rule, a, b) and keypoints_alike(rule, a, b) and \
            differ_evenly(a, b):
        return Evidence("pixels", cosine)  # no fit to judge by (a repeating pattern matches nothing), same pixels
    if min(a.texture, b.texture) < rule.inconclusive_below and cosine >= rule.visual_min_cosine:
        crowd = max(c for c in (crowd_a, crowd_b, -1.0) if c is not None)
        if cosine - crowd >= rule.crowd_margin:
            return Evidence("visual", cosine)
    return None


def _fitted(kind: str, cosine: float, inliers: int, agreement: float, cover: float | None, a: PhotoFeatures,
            b: PhotoFeatures, fits: tuple[verify.Fit, verify.Fit] | None) -> Evidence:
    """The evidence of a pair linked on its fits: as found, rounded for storage, with the cells that moved."""
    return Evidence(kind, cosine, inliers, round(agreement, 4), _round(cover), shifted_cells(a, b, fits))


def _round(x: float | None) -> float | None:
    return round(x, 4) if x is not None else None


def geometry(rule: LinkRule, a: PhotoFeatures, b: PhotoFeatures) -> Check | None:
    """The ``Check`` of the best affine fits, or None when either photo has too few keypoints to try."""
    if a.texture < verify.MIN_MATCHES or b.texture < verify.MIN_MATCHES:
        return None
    enough = verify.ENOUGH * rule.min_inliers
    return _both_ways(lambda x, y: verify.fit(x, y, enough), a, b, min(rule.min_inliers, rule.weak_inliers))


def keystone(rule: LinkRule, cosine: float, a: PhotoFeatures, b: PhotoFeatures) -> Evidence | None:
    """``verified`` evidence from perspective fits both ways (``verify.fit_perspective``: a copy photographed at
    an angle) with ``min_inliers`` and content agreement of at least ``perspective_agreement``, or None."""
    inliers, agree, fits, cover = _both_ways(verify.fit_perspective, a, b, rule.min_inliers)
    if agree is not None and agree >= rule.perspective_agreement and one_picture(rule, a, b, fits):
        return _fitted("verified", cosine, inliers, agree, cover, a, b, fits)
    return None


def one_picture(rule: LinkRule, a: PhotoFeatures, b: PhotoFeatures,
                fits: tuple[verify.Fit, verify.Fit] | None) -> bool:
    """What every fit must also show before it links: two pages' text agrees under it (``same_text``) and its
    keypoints did not move against each other (``two_shots``)."""
    return same_text(rule, a, b, fits) and not two_shots(fits)


def shifted_cells(a: PhotoFeatures, b: PhotoFeatures,
                  fits: tuple[verify.Fit, verify.Fit] | None) -> int | None:
    """The cells of either picture whose content is gone from its place under the fits but found close by in the
    other (``verify.displaced``, a to b and b to a): a subject that moved between two frames of a camera that did
    not (people crossing a street), too few keypoints to move the fit. Stored with the pair, for grouping
    (``indexer.grouping.MAX_SHIFTED``); None without fits."""
    if fits is None:
        return None
    return verify.displaced(a.grey, b.grey, fits[0]) + verify.displaced(b.grey, a.grey, fits[1])


def two_shots(fits: tuple[verify.Fit, verify.Fit] | None) -> bool:
    """Whether the keypoints that a fit explains moved against each other in either direction
    (``verify.moved`` at least ``MAX_MOVED``): two shots of one scene (a burst, a stereo pair), where depth or a
    moving subject shifts parts of the picture by different amounts, not a copy."""
    if fits is None:
        return False
    return any(m is not None and m >= MAX_MOVED for m in (verify.moved(f) for f in fits))


def reframed(rule: LinkRule, a: PhotoFeatures, b: PhotoFeatures,
             fits: tuple[verify.Fit, verify.Fit] | None) -> float | None:
    """The content agreement inside the inliers' bounding boxes both ways (``verify.held_agreement``, the lower)
    when it reaches ``frame_agreement`` and each box holds ``FRAME_SHARE`` of the overlap and is centred in its picture
    (and the fits show ``one_picture``); else None. One photo in two frames: everything its keypoints match agrees, only
    the frames differ."""
    if fits is None:
        return None
    held = [verify.held_agreement(a.grey, b.grey, fits[0]), verify.held_agreement(b.grey, a.grey, fits[1])]
    if any(h is None or h < rule.frame_agreement or share < FRAME_SHARE or not centred for h, share, centred in held):
        return None
    return min(h for h, _, _ in held) if one_picture(rule, a, b, fits) else None  # type: ignore[type-var]


def _both_ways(fitter: Callable[[verify.Keypoints, verify.Keypoints], verify.Fit | None], a: PhotoFeatures,
               b: PhotoFeatures, least: int) -> Check:
    """The ``Check`` of ``fitter`` a to b and b to a; the second direction, the agreement, the fits and the cover
    only once a direction has ``least`` inliers."""
    ab = fitter(a.keypoints, b.keypoints)
    if ab is None or ab.inliers < least:
        return Check(ab.inliers if ab is not None else 0)
    ba = fitter(b.keypoints, a.keypoints)
    if ba is None or ba.inliers < least:
        return Check(ba.inliers if ba is not None else 0)
    (agree_ab, cover_ab), (agree_ba, cover_ba) = (verify.agreement_cover(a.grey, b.grey, ab),
                                                  verify.agreement_cover(b.grey, a.grey, ba))
    agree = [x for x in (agree_ab, agree_ba) if x is not None]
    return Check(min(ab.inliers, ba.inliers), min(agree) if agree else None, (ab, ba), min(cover_ab, cover_ba))


def same_text(rule: LinkRule, a: PhotoFeatures, b: PhotoFeatures,
              fits: tuple[verify.Fit, verify.Fit] | None) -> bool:
    """For two pages, whether their text agrees under the fits both ways (``pagecheck.agreement``): at least
    ``page_min_agreement``, or ``pagecheck.LIGHT_AGREEMENT`` where one was found a page only once its light was
    divided out (a photographed page: softened, its text agrees more with the next page's); any other pair
    passes."""
    if a.page is None or b.page is None:
        return True
    if fits is None:
        return False
    least = rule.page_min_agreement
    if a.lit_page or b.lit_page:
        least = max(least, pagecheck.LIGHT_AGREEMENT)
    ka, kb = a.keypoints.size, b.keypoints.size
    return pagecheck.agrees(a.page, b.page, fits[0].matrix, ka, kb, least) and \
        pagecheck.agrees(b.page, a.page, fits[1].matrix, kb, ka, least)


def text_agreements(a: PhotoFeatures, b: PhotoFeatures, fits: tuple[verify.Fit, verify.Fit]) -> list[float | None]:
    """``pagecheck.agreement`` of two pages' text under the fits a to b and b to a: the shares ``same_text``
    holds against its bar."""
    ka, kb = a.keypoints.size, b.keypoints.size
    return [pagecheck.agreement(a.page, b.page, fits[0].matrix, ka, kb),
            pagecheck.agreement(b.page, a.page, fits[1].matrix, kb, ka)]


def softened(rule: LinkRule, a: PhotoFeatures, b: PhotoFeatures) -> bool:
    """Whether one of two photos (not pages) is the other blurred or shrunk: one textured, one low-texture, and
    the textured one, blurred, matches the other in every cell (``blur_residual`` within ``max_blur_residual``),
    as it is or once laid over the textured one (``aligned_blur_residual``: also cropped, turned or framed)."""
    if a.low_texture == b.low_texture or a.page is not None or b.page is not None:
        return False
    sharp, soft = (b, a) if a.low_texture else (a, b)
    if blur_residual(sharp.grey, soft.grey) <= rule.max_blur_residual:
        return True
    return aligned_blur_residual(sharp.grey, soft.grey, sharp.grey_points) <= rule.max_blur_residual


def blur_residual(sharp: np.ndarray, soft: np.ndarray) -> float:
    """How far ``soft`` is from ``sharp`` blurred, in its worst cell of a ``BLUR_GRID`` × ``BLUR_GRID`` grid: the
    cell's mean absolute difference over the cell's own spread in ``soft`` (its mean absolute deviation, at least
    ``BLUR_FLOOR`` grey levels). Cell by cell and relative to the cell, so a subject on a shared background (a
    wallpaper with and without its logo) cannot match on the background, and a plain stretch needs a near-exact
    match. The least over ``BLUR_SIGMAS``, for the turn or flip of ``soft`` whose cell means are nearest
    ``sharp``'s among those whose aspect ratio is within ``BLUR_ASPECT`` of ``sharp``'s (``soft`` scaled to
    ``sharp``'s size); infinite when no turn fits."""
    import cv2  # imported late: only linking needs it

    h, w = sharp.shape
    views = [np.ascontiguousarray(t) for t in _turns(soft)
             if abs(t.shape[0] / t.shape[1] - h / w) <= BLUR_ASPECT * h / w]
    if not views or min(h, w) < BLUR_GRID:
        return float("inf")
    views = [v if v.shape == (h, w) else cv2.resize(v, (w, h), interpolation=cv2.INTER_AREA if v.shape[0] > h
                                                       else cv2.INTER_LINEAR) for v in views]
    # The turn whose cell means are nearest; the others are far off unless the picture is symmetric.
    return _worst_cell(sharp, _nearest_turn(sharp, views))


def aligned_blur_residual(sharp: np.ndarray, soft: np.ndarray, points: np.ndarray) -> float:
    """``blur_residual`` of ``soft`` laid over ``sharp`` by ``align.ecc_affine`` (from the turn or flip of ``soft``
    whose cell means are nearest ``sharp``'s, stretched over it), over the cells of ``sharp`` that ``soft`` wholly
    covers: a blurred copy that was also cropped, turned a little or framed. ``points``: ``sharp``'s keypoints
    (x, y in its pixels). Infinite when ECC finds no map, the map turns or stretches too far, or the two overlap
    on less than ``ALIGN_MIN_COVER`` of either picture or of ``sharp``'s keypoints."""
    h, w = sharp.shape
    if min(h, w) < BLUR_GRID or min(soft.shape) < BLUR_GRID or not len(points):
        return float("inf")
    view = _nearest_turn(sharp, [np.ascontiguousarray(t) for t in _turns(soft)])
    matrix = align.ecc_affine(sharp, view)
    if matrix is None:
        return float("inf")
    turn, stretch = align.turn_and_stretch(matrix)
    if turn > ALIGN_MAX_TURN or stretch > ALIGN_MAX_STRETCH or \
            align.soft_share(matrix, (h, w), view.shape) < ALIGN_MIN_COVER:
        return float("inf")
    warped, inside = align.warp_onto(view, matrix, (h, w))
    cells = _cell_means(inside) >= 0.999  # wholly inside the soft picture
    xy = np.clip(points.astype(np.int64), 0, [w - 1, h - 1])
    if cells.mean() < ALIGN_MIN_COVER or inside[xy[:, 1], xy[:, 0]].mean() < ALIGN_MIN_COVER:
        return float("inf")
    return _worst_cell(sharp, warped, cells)


def _nearest_turn(sharp: np.ndarray, views: list[np.ndarray]) -> np.ndarray:
    """The view whose cell means are nearest ``sharp``'s."""
    target = _cell_means(sharp)
    return min(views, key=lambda v: float(np.abs(_cell_means(v) - target).mean()))


def _worst_cell(sharp: np.ndarray, view: np.ndarray, cells: np.ndarray | None = None) -> float:
    """The least over ``BLUR_SIGMAS`` of the worst cell's (among ``cells``, default all) mean absolute difference
    between ``sharp`` blurred and ``view`` (same shape), over the cell's spread in ``view``."""
    import cv2

    means = cv2.resize(_cell_means(view), (view.shape[1], view.shape[0]), interpolation=cv2.INTER_NEAREST)
    spread = np.maximum(_cell_means(np.abs(view.astype(np.float32) - means)), BLUR_FLOOR)
    best = float("inf")
    for sigma in BLUR_SIGMAS:
        blurred = cv2.GaussianBlur(sharp, (0, 0), sigma) if sigma else sharp
        worst = _cell_means(cv2.absdiff(blurred, view)) / spread
        best = min(best, float((worst if cells is None else worst[cells]).max()))
    return best


def _cell_means(x: np.ndarray) -> np.ndarray:
    """Means of ``x`` over a ``BLUR_GRID`` × ``BLUR_GRID`` grid of cells (float32)."""
    import cv2

    return cv2.resize(x.astype(np.float32), (BLUR_GRID, BLUR_GRID), interpolation=cv2.INTER_AREA)


def laid_alike(rule: LinkRule, a: PhotoFeatures, b: PhotoFeatures) -> bool:
    """For two textured pictures whose thumbnails match but whose keypoints fit no transform: with
    ``PATTERN_KEYPOINTS`` each, geometry's silence says something (a repeating pattern, whose copy lays over it
    frame over frame, or another picture in the same colours: other text on one gradient), so their content must
    agree laid over each other (``laid_over``, at least ``weak_agreement``); with fewer, the thumbnails decide."""
    if min(a.texture, b.texture) < PATTERN_KEYPOINTS:
        return True
    held = laid_over(a, b)
    return held is None or held >= rule.weak_agreement


def keypoints_alike(rule: LinkRule, a: PhotoFeatures, b: PhotoFeatures) -> bool:
    """For two pictures whose thumbnails match but whose keypoints fit no transform: with ``MATCH_KEYPOINTS``
    each, most of the fewer must still find their match in the other (``verify.match_share``, at least
    ``MIN_MATCH_SHARE``), or the two must agree laid frame over frame (``laid_over``, at least
    ``weak_agreement``: a noisy copy whose keypoints are mostly its grain). A copy keeps its keypoints'
    descriptors wherever they lie; another subject on the same backdrop, another face on the same sticker or
    another burst on the same night sky has its keypoints on the part that differs, which is all the
    thumbnails cannot see."""
    if min(a.texture, b.texture) < MATCH_KEYPOINTS:
        return True
    if verify.match_share(a.keypoints, b.keypoints) >= MIN_MATCH_SHARE:
        return True
    held = laid_over(a, b)
    return held is not None and held >= rule.weak_agreement


def faint_alike(a: PhotoFeatures, b: PhotoFeatures) -> bool:
    """Whether two pictures of one aspect under one of the eight turns (``SAME_ASPECT``), one of them at least
    near-black, hold the same faint detail: their grey copies at FAINT_SIDE px wide, less a FAINT_BLUR px blur,
    correlate at FAINT_MIN_CORR or more under one of those turns, each with some detail (FAINT_MIN_STD: a solid
    colour or a smooth gradient has none)."""
    fitting = _fitting_turns(a, b)
    if not fitting:
        return False
    wa, ha = a.keypoints.size
    size = (FAINT_SIDE, max(1, round(FAINT_SIDE * ha / wa)))
    da = _faint_detail(a.grey, size)
    if float(da.std()) < FAINT_MIN_STD:
        return False
    for k in fitting:
        db = _faint_detail(np.ascontiguousarray(_turn(b.grey, k)), size)
        if float(db.std()) >= FAINT_MIN_STD and _correlation(da, db) >= FAINT_MIN_CORR:
            return True
    return False


def plain_alike(a: PhotoFeatures, b: PhotoFeatures) -> bool:
    """For two pictures whose content thumbnails are both plain and dark (spread under PLAIN_THUMB, mean under
    PLAIN_DARK: night shots, underexposed frames): whether they share their pattern. Of one aspect under a turn,
    one laid inside the other (the same frame, or a crop at one aspect) correlates at PLAIN_MIN_CORR or more
    (``_inset_corr``): laid frame over frame, two near-black photos differ evenly everywhere, as a copy does
    (unless one has no pattern at all: PLAIN_MIN_STD, a solid colour, which ``differ_evenly`` tells apart). Of
    other aspects, one cropped to the other's aspect somewhere along its longer side (a crop, or padding the
    content box could not find on a dark picture) does: their grey copies at PLAIN_SIDE px, blurred, correlate at
    PLAIN_MIN_CORR or more under one of the eight turns. A small distance between two plain thumbnails says
    little: every near-black photo is near every other. True for any other pair."""
    ta, tb = (f.content_thumb.astype(np.float32).mean(axis=2) for f in (a, b))
    if max(ta.std(), tb.std()) >= PLAIN_THUMB or max(ta.mean(), tb.mean()) >= PLAIN_DARK:
        return True
    if fitting := _fitting_turns(a, b):
        corr = _inset_corr(a.grey, b.grey, fitting)
        return corr is None or corr >= PLAIN_MIN_CORR  # no pattern (a solid colour): ``differ_evenly`` decides
    return any(_plain_corr(a.grey, np.ascontiguousarray(t)) >= PLAIN_MIN_CORR for t in _turns(b.grey))


def _inset_corr(a: np.ndarray, b: np.ndarray, turns: Iterable[int]) -> float | None:
    """The best correlation (up to PLAIN_MIN_CORR: the first that reaches it) of one grey copy laid inside the
    other, ``b`` under ``turns``: the outer PLAIN_INSET_SIDE px wide, the inner at PLAIN_INSET_SCALES of that,
    both blurred by PLAIN_BLUR, at every place it fits. None where either, so shrunk and blurred, spreads under
    PLAIN_MIN_STD: it has no pattern to share."""
    cv2 = verify._cv2()
    whole_a = _plain_blurred(a, _plain_size(a, PLAIN_INSET_SIDE))
    if min(float(whole_a.std()), float(_plain_blurred(b, _plain_size(b, PLAIN_INSET_SIDE)).std())) < PLAIN_MIN_STD:
        return None
    best = -1.0
    for k in turns:
        t = np.ascontiguousarray(_turn(b, k))
        for outer, inner in ((a, t), (t, a)):
            o = whole_a if outer is a else _plain_blurred(outer, _plain_size(outer, PLAIN_INSET_SIDE))
            for s in PLAIN_INSET_SCALES:
                i = _plain_blurred(inner, _plain_size(inner, PLAIN_INSET_SIDE * s))
                if i.shape[0] > o.shape[0] or i.shape[1] > o.shape[1] or float(i.std()) == 0.0:
                    continue
                best = max(best, float(cv2.matchTemplate(o, i, cv2.TM_CCOEFF_NORMED).max()))
                if best >= PLAIN_MIN_CORR:
                    return best
    return best


def _plain_size(grey: np.ndarray, width: float) -> tuple[int, int]:
    """(w, h) of ``grey`` shrunk to ``width`` px wide, its aspect kept."""
    h, w = grey.shape
    return max(1, round(width)), max(1, round(width * h / w))


def _plain_blurred(grey: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A uint8 grey copy box-shrunk to ``size`` (w, h) and blurred by PLAIN_BLUR, as float32."""
    im = Image.fromarray(grey).resize(size, Image.Resampling.BOX).filter(ImageFilter.GaussianBlur(PLAIN_BLUR))
    return np.asarray(im, np.float32)


def _plain_corr(a: np.ndarray, b: np.ndarray) -> float:
    """The best correlation of two grey copies with the wider (relative to the other) cut to the other's aspect,
    or the taller, at PLAIN_OFFSETS places along the cut side; both at PLAIN_SIDE px, blurred by PLAIN_BLUR."""
    best = -1.0
    for x, y in ((a, b), (b, a)):
        (hx, wx), (hy, wy) = x.shape, y.shape
        if wx / hx == wy / hy:
            continue
        wide = wx / hx > wy / hy  # x's width cut to y's aspect, else its height
        n, extent = (max(1, round(hx * wy / hy)), wx) if wide else (max(1, round(wx * hy / wy)), hx)
        for t in np.linspace(0, extent - n, PLAIN_OFFSETS):
            o = round(float(t))
            part = np.ascontiguousarray(x[:, o:o + n] if wide else x[o:o + n, :])
            best = max(best, _corr_at(part, y))
    return best


def _corr_at(x: np.ndarray, y: np.ndarray) -> float:
    """Correlation of two uint8 grey arrays, both at ``y``'s aspect, PLAIN_SIDE px wide and blurred."""
    size = _plain_size(y, PLAIN_SIDE)
    return _correlation(_plain_blurred(x, size), _plain_blurred(y, size))


def _correlation(u: np.ndarray, v: np.ndarray) -> float:
    """Pearson correlation of two arrays of one shape; 0 where either is flat."""
    su, sv = float(u.std()), float(v.std())
    return float(((u - u.mean()) * (v - v.mean())).mean()) / (su * sv) if su > 0 and sv > 0 else 0.0


def _faint_detail(grey: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    g = Image.fromarray(np.ascontiguousarray(grey)).resize(size, Image.Resampling.BILINEAR)
    return np.asarray(g, np.float32) - np.asarray(g.filter(ImageFilter.GaussianBlur(FAINT_BLUR)), np.float32)


def _fitting_turns(a: PhotoFeatures, b: PhotoFeatures) -> list[int]:
    """Which of ``_turns`` of ``b`` have ``a``'s aspect (within SAME_ASPECT); 0 among them: one aspect as they are."""
    (wa, ha), (wb, hb) = a.keypoints.size, b.keypoints.size
    return [k for k in range(8) if abs(np.log((wa / ha) / ((hb / wb) if k % 2 else (wb / hb)))) <= SAME_ASPECT]


def differ_evenly(a: PhotoFeatures, b: PhotoFeatures) -> bool:
    """For two pictures whose thumbnails match: unless they have one aspect, True (a crop or another screen's
    rendering does not lay over frame by frame); else whether their grey copies, laid frame over frame under the
    turn that keeps the aspect and best matches their thumbnails, differ about as much everywhere
    (``patch_contrast`` under ``EVEN_RATIO``), or differ only by what was laid on one of them
    (``_added_to_one``). A copy differs evenly (noise, compression, resampling); another moon on the same night
    sky, another bird on the same sky or another letter on the same icon differs in one place, as much as a
    subject differs from its ground, where the ground around it matches."""
    fitting = _fitting_turns(a, b)
    if not fitting:
        return True
    k = _nearest_thumb_turn(a.thumb, b.thumb, fitting)
    ya, yb, patch, side = _laid_patches(a.grey, _turn(b.grey, k))
    return patch.max() < EVEN_RATIO or _added_to_one(patch, ya, yb, side)


def patch_contrast(a: np.ndarray, b: np.ndarray) -> float:
    """How much more the worst square patch (``EVEN_PATCH`` of the long side) of two grey copies differs than
    the whole (mean absolute difference plus ``EVEN_FLOOR``), once both are squashed to the smaller one's size,
    blurred by ``EVEN_BLUR`` px and ``b`` is matched to ``a`` by a gain and offset (within ``GAIN_RANGE``)."""
    return float(_laid_patches(a, b)[2].max())


def _laid_patches(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(``a`` and ``b`` as ``patch_contrast`` compares them, each square patch's mean difference over the mean
    plus ``EVEN_FLOOR``, the patch side); one patch of the mean where the pictures are smaller than a patch."""
    h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
    x, y = (np.asarray(Image.fromarray(np.ascontiguousarray(g)).resize((w, h), Image.Resampling.BOX)
                       .filter(ImageFilter.GaussianBlur(EVEN_BLUR)), np.float64) for g in (b, a))
    spread = float(x.var())
    gain = float(((x - x.mean()) * (y - y.mean())).mean()) / spread if spread > 1e-3 else 1.0
    gain = min(max(gain, GAIN_RANGE[0]), GAIN_RANGE[1])
    x = gain * x + float(y.mean() - gain * x.mean())
    diff = np.abs(y - x)
    level = float(diff.mean()) + EVEN_FLOOR
    side = max(3, round(EVEN_PATCH * max(h, w)))
    if side > min(h, w):
        return y, x, np.array([[float(diff.mean()) / level]]), side
    return y, x, _box_means(diff, side) / level, side


def _added_to_one(patch: np.ndarray, a: np.ndarray, b: np.ndarray, side: int) -> bool:
    """Whether, of the patches that differ (``ADDED_MARK`` of the uneven bar), one of the two laid copies holds
    detail in some (``ADDED_FLAT`` grey levels or more of what a blur of ``ADDED_SCALE`` px takes away, on average
    over the patch) and the other in none: a caption, logo or signature laid on a copy. Another picture on the
    same ground has its own detail in its own place, or detail where the other has other detail; two smooth
    pictures that differ in one place with no detail on either side (a soft shape moved) are not let through."""
    marked = patch >= ADDED_MARK * EVEN_RATIO
    cv2 = verify._cv2()
    held = [_box_means(np.abs(z - cv2.GaussianBlur(z, (0, 0), ADDED_SCALE)), side)[marked] >= ADDED_FLAT
            for z in (a, b)]
    return bool(held[0].any() != held[1].any())


def _box_means(x: np.ndarray, side: int) -> np.ndarray:
    """The mean of every ``side`` x ``side`` window of ``x``."""
    sums = np.pad(x, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    return (sums[side:, side:] - sums[:-side, side:] - sums[side:, :-side] + sums[:-side, :-side]) / side ** 2


def laid_over(a: PhotoFeatures, b: PhotoFeatures) -> float | None:
    """Content agreement both ways (``verify.agreement``, the lower) of two pictures laid frame over frame, under
    the turn or flip that best matches their thumbnails: without a fit, what still tells a copy of a repeating
    pattern from another picture with the same colours (the same gradient under other text)."""
    corners = _turn(np.array([[[0.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [1.0, 1.0]]]), _nearest_thumb_turn(a.thumb, b.thumb))
    # corners: b's (as shares of its frame) at a's corners
    (wa, ha), (wb, hb) = a.keypoints.size, b.keypoints.size
    src = np.array([[0, 0], [wa, 0], [0, ha]], np.float64)
    dst = np.array([corners[r, c] * (wb, hb) for r, c in ((0, 0), (0, 1), (1, 0))])
    agree = [verify.agreement(a.grey, b.grey, verify.Fit(0, _affine(src, dst))),
             verify.agreement(b.grey, a.grey, verify.Fit(0, _affine(dst, src)))]
    return None if None in agree else min(agree)  # type: ignore[type-var]


def _affine(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2 x 3 affine matrix that takes three points ``src`` to ``dst``."""
    return np.linalg.solve(np.c_[src, np.ones(3)], dst).T


def _turn(x: np.ndarray, k: int) -> np.ndarray:
    """The ``k``-th of ``_turns``."""
    t = np.rot90(x, k % 4)
    return t[:, ::-1] if k >= 4 else t


def _turns(x: np.ndarray):
    """The eight turns and flips of an image array."""
    for k in range(8):
        yield _turn(x, k)


def thumbs_match(rule: LinkRule, a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two colour thumbnails match as they are (``max_pixel_distance``) or up to a brightness gain and
    colour cast (``max_gain_distance``)."""
    return pixel_distance(a, b) <= rule.max_pixel_distance or gain_distance(a, b) <= rule.max_gain_distance


def pixel_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two colour thumbnails (0-255), under the best of the eight turns and flips."""
    return _thumb_distance(a, _turn(b, _nearest_thumb_turn(a, b)))


def _nearest_thumb_turn(a: np.ndarray, b: np.ndarray, turns: Iterable[int] = range(8)) -> int:
    """Which of ``_turns`` of thumbnail ``b`` (of those numbered in ``turns``) is nearest ``a``."""
    return min(turns, key=lambda k: _thumb_distance(a, _turn(b, k)))


def _thumb_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())


def gain_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two colour thumbnails (0-255) once ``b`` is scaled to match ``a``, by one gain
    for all channels or by one gain per channel (their mean within ``GAIN_RANGE``: a brightness change; their
    spread within ``GAIN_CAST``: a white-balance shift, not another colour), the better of the two, over the values
    clipped in neither, under the best of the eight turns and flips; infinite when no turn has a measurable gain."""
    fa = a.astype(np.float32)
    best = float("inf")
    for t in _turns(b):
        fb = t.astype(np.float32)
        ok = (fa > GAIN_CLIP) & (fa < 255 - GAIN_CLIP) & (fb > GAIN_CLIP) & (fb < 255 - GAIN_CLIP)
        if ok.mean() < GAIN_SHARE:
            continue
        sa, sb = (fa * ok).sum(axis=(0, 1)), (fb * ok).sum(axis=(0, 1))
        tries = [np.full(3, sa.sum() / max(float(sb.sum()), 1e-6))]  # the same gain for all channels
        if ok.any(axis=(0, 1)).all():  # and one each, where every channel has values to measure it on
            tries.append(sa / np.maximum(sb, 1e-6))
        for gains in tries:
            if GAIN_RANGE[0] <= float(gains.mean()) <= GAIN_RANGE[1] and \
                    float(gains.max() / gains.min()) <= GAIN_CAST:
                best = min(best, float(np.abs(fa - gains * fb)[ok].mean()))
    return best
