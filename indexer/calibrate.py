"""Pick the duplicate threshold for a target precision, from synthetic copies of real photos.

    dupesift calibrate [FOLDER] [--limit 300] [--copies 3] [--target-precision 0.995] [--seed 0] [--write]
    (DUPESIFT_MODEL_PATH's model; without FOLDER the train split of DUPESIFT_PHOTOS_DIR; --write to
    <data-dir>/dupesift.env)

Positives are (original, edited copy) pairs made with ``indexer.augment``; negatives are all
pairs of files from different photos among originals and copies, so each photo's nearest
non-copies count. Pairs of two copies of the same photo are neither (they are duplicates by
transitivity, but not what the threshold is for). The threshold is the lowest cosine above
which precision never drops below the target. No torch: ``embed_fn`` may be the ONNX embedder.
A folder's photos are an even spread of its image files (``spread``); unusable files are reported and skipped.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from indexer.augment import make_copies, open_photo
from indexer.config import Settings
from indexer.errors import DupesiftError, ImageError
from indexer.linkrule import LinkRule, rule_of
from indexer.scan import scan

EmbedFn = Callable[[list[Image.Image]], np.ndarray]
OnSkip = Callable[[Path, ImageError], None]

__all__ = [
    "CalibrationResult",
    "CurveRow",
    "PairScores",
    "RuleRates",
    "TooFewPhotos",
    "calibrate",
    "calibrate_pairs",
    "calibrate_scores",
    "folder_photos",
    "format_curve",
    "onnx_embed_fn",
    "pair_scores",
    "rule_rates",
    "spread",
    "threshold_range",
    "train_split",
]

RESAMPLES = 200  # resamples of the calibration photos behind the threshold's range
COPIES = 3  # synthetic copies per calibration photo (training's calibration and cross-fitting use this default)
TARGET_PRECISION = 0.995  # the pair precision a calibrated threshold aims for unless asked otherwise


class TooFewPhotos(DupesiftError):
    """Fewer than two usable photos to calibrate on."""


@dataclass(frozen=True)
class CurveRow:
    threshold: float
    precision: float
    recall: float
    true_positives: int
    false_positives: int


@dataclass(frozen=True)
class CalibrationResult:
    threshold: float
    precision: float  # on the calibration pairs, at the threshold
    recall: float
    target_precision: float
    positives: int
    negatives: int
    photos: int
    curve: list[CurveRow] = field(default_factory=list)
    hardest_negative: float = 0.0  # highest cosine between different photos
    families_recall: dict[str, float] = field(default_factory=dict)
    threshold_range: tuple[float, float] | None = None  # 5-95 % over resamples of the photos (threshold_range)
    verified: RuleRates | None = None  # the service's link rule at the threshold (pair_scores(verify=True))


@dataclass(frozen=True)
class RuleRates:
    """Precision and recall of the service's link rule (``indexer/linkrule.py``) on the calibration pairs: each
    item's ``per_photo`` most similar candidates down to the rule's floor decided (``checked``), of which
    ``linked_positives`` copies and ``linked_negatives`` different photos were linked (``by_kind``: on what)."""
    rule: str
    precision: float
    recall: float
    checked: int
    linked_positives: int
    linked_negatives: int
    by_kind: dict[str, int] = field(default_factory=dict)


def _pick(s: np.ndarray, tp: np.ndarray, fp: np.ndarray, n_pos: float,
          target_precision: float) -> tuple[float, float, float]:
    """(threshold, precision, recall) from scores sorted high to low, cut only between distinct scores, with the
    true/false positives (counts or weights) accepted at each cut."""
    with np.errstate(invalid="ignore", divide="ignore"):
        prec = np.where(tp + fp > 0, tp / (tp + fp), 1.0)
    # precision must hold at this cut and at every stricter one: suffix-from-top minimum
    ok = np.minimum.accumulate(prec) >= target_precision
    if not ok[0]:  # even the top pair is a false positive: accept nothing
        return float(np.nextafter(s[0], np.inf)), 1.0, 0.0
    i = int(np.argmin(ok)) - 1 if not ok.all() else len(ok) - 1
    lower = s[i + 1] if i + 1 < len(s) else s[i] - 1e-3
    return float((s[i] + lower) / 2), float(prec[i]), float(tp[i] / n_pos)  # halfway to the next rejected score


def _sorted_cuts(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All pair scores high to low, the order that sorts ``[pos, neg]`` so, their labels (True = positive), and
    the last index of each run of equal scores."""
    scores = np.concatenate([pos, neg])
    labels = np.concatenate([np.ones(len(pos), bool), np.zeros(len(neg), bool)])
    order = np.argsort(-scores, kind="stable")
    s = scores[order]
    return s, order, labels[order], np.r_[s[1:] != s[:-1], True]


def calibrate_scores(pos: np.ndarray, neg: np.ndarray, target_precision: float = TARGET_PRECISION,
                     grid: Sequence[float] | None = None) -> tuple[float, float, float, list[CurveRow]]:
    """Threshold from positive/negative pair cosines. Returns (threshold, precision, recall, curve)."""
    pos, neg = np.asarray(pos, np.float64), np.asarray(neg, np.float64)  # _sorted_cuts sorts them together
    if len(pos) == 0:
        raise ValueError("no positive pairs to calibrate on")
    s, _, y, last = _sorted_cuts(pos, neg)
    threshold, precision, recall = _pick(s[last], np.cumsum(y)[last], np.cumsum(~y)[last], len(pos),
                                         target_precision)
    grid = np.round(np.arange(0.30, 0.995, 0.02), 2) if grid is None else np.asarray(grid)
    curve = []
    for t in sorted(set(map(float, grid)) | {round(threshold, 4)}, reverse=True):
        ntp, nfp = int((pos >= t).sum()), int((neg >= t).sum())
        curve.append(CurveRow(t, ntp / (ntp + nfp) if ntp + nfp else 1.0, ntp / len(pos), ntp, nfp))
    return threshold, precision, recall, curve


def threshold_range(pos: np.ndarray, pos_photo: np.ndarray, neg: np.ndarray, neg_photos: np.ndarray,
                    n_photos: int, target_precision: float = TARGET_PRECISION, rounds: int = RESAMPLES,
                    seed: int = 0) -> tuple[float, float]:
    """5th and 95th percentile of the threshold over ``rounds`` resamples of the photos (with replacement).

    A photo drawn c times counts c times in its positives and c·c' times in its negatives with a photo drawn c'
    times. The threshold is set by the few most alike photos, so this shows how much it depends on which photos
    were in the calibration set. ``pos_photo``: each positive's photo; ``neg_photos``: each negative's two."""
    pos, neg = np.asarray(pos, np.float64), np.asarray(neg, np.float64)
    s, order, y, last = _sorted_cuts(pos, neg)
    s = s[last]
    rng = np.random.default_rng(seed)
    picked = []
    for _ in range(rounds):
        c = rng.multinomial(n_photos, np.full(n_photos, 1 / n_photos)).astype(np.float64)
        w = np.concatenate([c[pos_photo], c[neg_photos[:, 0]] * c[neg_photos[:, 1]]])[order]
        tp, fp = np.cumsum(w * y)[last], np.cumsum(w * ~y)[last]
        drawn = np.diff(tp + fp, prepend=0.0) > 0  # scores only of photos left out are not there to cut at
        picked.append(_pick(s[drawn], tp[drawn], fp[drawn], tp[-1], target_precision)[0])
    lo, hi = np.percentile(picked, [5, 95])
    return round(float(lo), 4), round(float(hi), 4)


@dataclass(frozen=True)
class PairScores:
    """Cosines of the calibration pairs with the photos they come from: what a threshold is picked from.

    ``pos_photo`` holds each positive's photo, ``neg_photos`` each negative's two (ids 0..photos-1),
    ``pos_edits`` the edit chain of each positive's copy."""
    pos: np.ndarray
    pos_photo: np.ndarray
    pos_edits: list[list[str]]
    neg: np.ndarray
    neg_photos: np.ndarray
    photos: int
    # with pair_scores(verify=True): each pair's two items (original/copy files), every item's link features and
    # the items' cosines (for the link rule's candidates)
    pos_items: np.ndarray | None = None
    neg_items: np.ndarray | None = None
    features: list | None = None
    sims: np.ndarray | None = None

    @staticmethod
    def pooled(parts: Sequence[PairScores]) -> PairScores:
        """Several photo sets' pairs as one set (photo ids renumbered; no pairs across sets). Cross-fitting pools
        the held-out pairs of fold models, each scored by the model that never saw its photos."""
        offsets = np.cumsum([0] + [p.photos for p in parts])
        return PairScores(
            pos=np.concatenate([p.pos for p in parts]),
            pos_photo=np.concatenate([p.pos_photo + o for p, o in zip(parts, offsets)]),
            pos_edits=[e for p in parts for e in p.pos_edits],
            neg=np.concatenate([p.neg for p in parts]),
            neg_photos=np.concatenate([p.neg_photos + o for p, o in zip(parts, offsets)]),
            photos=int(offsets[-1]))


def pair_scores(photos: list[Path], embed_fn: EmbedFn, copies: int = COPIES, seed: int = 0, *, batch: int = 32,
                max_side: int = 640, max_pixels: int | None = None, on_skip: OnSkip | None = None,
                verify: bool = False) -> PairScores:
    """Make ``copies`` edited copies of each photo, embed everything, and score every calibration pair.

    A file ``open_photo`` cannot use raises its ``ImageError``; with ``on_skip`` it is passed there and left out
    (photo ids count usable photos only). Raises TooFewPhotos when fewer than two usable photos are left.
    With ``verify``, every original and copy's link features are kept too (``rule_rates``)."""
    if len(photos) < 2:
        raise TooFewPhotos(f"calibration needs at least two photos, got {len(photos)}")
    r = random.Random(seed)
    owner: list[int] = []
    is_copy: list[bool] = []
    chains: list[list[str]] = []
    vecs: list[np.ndarray] = []
    pending: list[Image.Image] = []
    kps: list = []
    if verify:
        from indexer.features import extract

    def flush() -> None:
        if pending:
            v = np.asarray(embed_fn(pending), dtype=np.float32)
            vecs.append(v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12))
            pending.clear()

    k = 0
    for path in sorted(photos):
        try:
            im = open_photo(path, max_side=max_side, max_pixels=max_pixels)
        except ImageError as exc:
            if on_skip is None:
                raise
            on_skip(Path(path), exc)
            continue
        items = [(im, [])] + make_copies(im, copies, r)
        for j, (edited, chain) in enumerate(items):
            owner.append(k)
            is_copy.append(j > 0)
            chains.append(chain)
            pending.append(edited)
            if verify:
                kps.append(extract(edited))
        k += 1
        if len(pending) >= batch:
            flush()
    if k < 2:
        raise TooFewPhotos(f"calibration needs at least two usable photos: {k} of {len(photos)} could be decoded")
    flush()
    v = np.concatenate(vecs)
    owner_a, copy_a = np.asarray(owner), np.asarray(is_copy)
    sim = v @ v.T
    iu, ju = np.triu_indices(len(v), 1)
    same = owner_a[iu] == owner_a[ju]
    positive = same & (copy_a[iu] != copy_a[ju])  # one original, one copy
    negative = ~same
    pi, pj = iu[positive], ju[positive]
    ni, nj = iu[negative], ju[negative]
    return PairScores(
        pos=sim[pi, pj], pos_photo=owner_a[pi], pos_edits=[chains[b if copy_a[b] else a] for a, b in zip(pi, pj)],
        neg=sim[ni, nj], neg_photos=np.stack([owner_a[ni], owner_a[nj]], 1), photos=k,
        pos_items=np.stack([pi, pj], 1) if verify else None, neg_items=np.stack([ni, nj], 1) if verify else None,
        features=kps if verify else None, sims=sim if verify else None)


def rule_rates(pairs: PairScores, rule: LinkRule, per_photo: int) -> RuleRates:
    """The link rule's precision and recall on the calibration pairs, as the link step would decide them: each
    item's ``per_photo`` most similar other items down to ``rule.floor`` are its candidates; a pair counts as
    linked when ``indexer.linkrule.decide`` links it (items' crowds from the same cosines)."""
    from indexer.linkrule import CROWD_K, decide

    if pairs.features is None or pairs.sims is None or pairs.pos_items is None or pairs.neg_items is None:
        raise ValueError("rule_rates needs pair_scores(..., verify=True)")
    sim = pairs.sims.copy()
    np.fill_diagonal(sim, -2.0)
    order = np.argsort(-sim, axis=1)
    crowd = sim[np.arange(len(sim)), order[:, CROWD_K - 1]] if len(sim) > CROWD_K else np.full(len(sim), -1.0)
    candidates = {(min(i, int(j)), max(i, int(j))) for i in range(len(sim)) for j in order[i, :per_photo]
                  if sim[i, j] >= rule.floor}
    verdicts = {p: decide(rule, float(sim[p]), pairs.features[p[0]], pairs.features[p[1]], float(crowd[p[0]]),
                          float(crowd[p[1]])) for p in sorted(candidates)}
    kinds: dict[str, int] = {}

    def linked(items: np.ndarray) -> int:
        n = 0
        for a, b in items:
            v = verdicts.get((min(int(a), int(b)), max(int(a), int(b))))
            if v is not None:
                n += 1
                kinds[v.kind] = kinds.get(v.kind, 0) + 1
        return n

    tp, fp = linked(pairs.pos_items), linked(pairs.neg_items)
    return RuleRates(rule=rule.describe(), precision=tp / max(tp + fp, 1), recall=tp / max(len(pairs.pos), 1),
                     checked=len(candidates), linked_positives=tp, linked_negatives=fp, by_kind=kinds)


def calibrate_pairs(pairs: PairScores, target_precision: float = TARGET_PRECISION, seed: int = 0, *,
                    settings: Settings | None = None) -> CalibrationResult:
    """The threshold for ``target_precision`` from scored pairs, with its curve, range and recall per edit
    (and, with ``settings`` and features in ``pairs``, the link rule's rates at that threshold)."""
    threshold, precision, recall, curve = calibrate_scores(pairs.pos, pairs.neg, target_precision)
    spread = threshold_range(pairs.pos, pairs.pos_photo, pairs.neg, pairs.neg_photos, pairs.photos,
                             target_precision, seed=seed)
    fam: dict[str, list[int]] = {}
    for s, chain in zip(pairs.pos, pairs.pos_edits):
        for name in chain:
            fam.setdefault(name, [0, 0])
            fam[name][0] += bool(s >= threshold)
            fam[name][1] += 1
    return CalibrationResult(
        threshold=round(threshold, 4), precision=precision, recall=recall, target_precision=target_precision,
        positives=len(pairs.pos), negatives=len(pairs.neg), photos=pairs.photos, curve=curve,
        hardest_negative=float(pairs.neg.max()) if len(pairs.neg) else 0.0,
        families_recall={k: round(a / n, 3) for k, (a, n) in sorted(fam.items())}, threshold_range=spread,
        verified=rule_rates(pairs, rule_of(settings, threshold), settings.verify_per_photo)
        if settings is not None and pairs.features is not None else None,
    )


def calibrate(photos: list[Path], embed_fn: EmbedFn, target_precision: float = TARGET_PRECISION, copies: int = COPIES,
              seed: int = 0, *, batch: int = 32, max_side: int = 640, max_pixels: int | None = None,
              on_skip: OnSkip | None = None, settings: Settings | None = None) -> CalibrationResult:
    """Make ``copies`` edited copies of each photo, embed everything, and pick the threshold (see pair_scores).
    The threshold is the cosine's; with ``settings`` the result also gives the link rule's rates at it."""
    pairs = pair_scores(photos, embed_fn, copies, seed, batch=batch, max_side=max_side, max_pixels=max_pixels,
                        on_skip=on_skip, verify=settings is not None)
    return calibrate_pairs(pairs, target_precision, seed, settings=settings)


def format_curve(result: CalibrationResult) -> str:
    lines = [f"{'cosine':>8} {'precision':>10} {'recall':>8} {'TP':>7} {'FP':>7}"]
    for row in result.curve:
        mark = "  <- chosen" if abs(row.threshold - result.threshold) < 5e-5 else ""
        lines.append(f"{row.threshold:8.4f} {row.precision:10.4f} {row.recall:8.4f} "
                     f"{row.true_positives:7d} {row.false_positives:7d}{mark}")
    lines.append(
        f"threshold {result.threshold:.4f}: precision {result.precision:.4f} (target {result.target_precision}), "
        f"recall {result.recall:.4f}; {result.photos} photos, {result.positives} positive and "
        f"{result.negatives} negative pairs; hardest negative {result.hardest_negative:.4f}")
    if result.threshold_range:
        lo, hi = result.threshold_range
        lines.append(f"threshold over {RESAMPLES} resamples of the photos (5-95 %): {lo:.4f}-{hi:.4f}; a wide range means "
                     "a few look-alike photos set it: calibrate on more photos")
    if result.verified:
        v = result.verified
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(v.by_kind.items())) or "none"
        lines.append(f"the service's link rule at it ({v.checked} candidate pairs decided; linked {v.linked_positives} "
                     f"copies and {v.linked_negatives} different photos; by {kinds}): precision {v.precision:.4f}, "
                     f"recall {v.recall:.4f}")
    if result.families_recall:
        lines.append("recall by edit: " + ", ".join(f"{k} {v:.3f}" for k, v in result.families_recall.items()))
    return "\n".join(lines)


def onnx_embed_fn(model_path: Path) -> tuple[EmbedFn, object]:
    """embed_fn for an ONNX model file: PIL -> to_model_pixels -> OnnxEmbedder.embed. Returns (fn, spec)."""
    from indexer.embedder import OnnxEmbedder
    from indexer.preprocess import to_model_pixels

    emb = OnnxEmbedder(Path(model_path))
    size = emb.spec.input_size

    def fn(images: list[Image.Image]) -> np.ndarray:
        return emb.embed(np.stack([to_model_pixels(im, size) for im in images]))

    return fn, emb.spec


def train_split(photos_dir: Path) -> list[Path]:
    """The train split of a photo folder (``Settings.photos_dir``): sorted by name, all but every fifth."""
    files = sorted(Path(photos_dir).glob("*.JPEG"))
    return [f for i, f in enumerate(files) if i % 5]


def folder_photos(folder: Path) -> list[Path]:
    """The image files under ``folder`` as the scanner finds them (``indexer.scan``), sorted by path."""
    return sorted(Path(f.path) for f in scan([str(Path(folder).resolve())]).files)


def spread(files: Sequence[Path], limit: int, seed: int = 0) -> list[Path]:
    """At most ``limit`` of ``files`` (sorted by path), evenly spread: one seeded pick from each of ``limit``
    equal runs, so every part of the folder is represented and the same seed gives the same photos."""
    files = sorted(files)
    if len(files) <= limit:
        return files
    r = random.Random(seed)
    return [files[r.randrange(i * len(files) // limit, (i + 1) * len(files) // limit)] for i in range(limit)]
