"""Cross-fitted threshold: calibrate a model trained on every photo from fold models' held-out photos.

    dupesift crossfit FOLD.toml[=FOLD.onnx] ... [--target 0.995] [--write MODEL.onnx] [--out F.json]

A model trained on all 800 train-split photos has none left to calibrate on, and a model trained on 600
calibrates on 200, whose few look-alike pairs set its threshold (it moves with the seed's draw of them).
Cross-fitting does both: each fold is the same recipe trained without one block of photos (a training
config with ``calib_block``; its model is the ONNX it exported, or the path after ``=``), each fold model
scores the calibration pairs of its own held-out block, made exactly as training's calibration makes them,
and one threshold is picked from all folds' pairs together: the recipe's threshold on photos it has not
seen, from as many held-out photos as the folds cover. A model trained on every photo should do at least
as well on new photos as its folds (it saw more photos), so the threshold should be safe, if conservative,
for it; the v15 and v20 rows of docs/experiments.md measure both.
"""
from __future__ import annotations

from pathlib import Path

from indexer.calibrate import (
    TARGET_PRECISION,
    CalibrationResult,
    PairScores,
    calibrate_pairs,
    onnx_embed_fn,
    pair_scores,
)
from indexer.training.config import TrainConfig, load_config
from indexer.training.split import split_photos

__all__ = ["Fold", "crossfit", "results"]


class Fold:
    """One fold: a training config (which photos it held out) and the model it exported."""

    def __init__(self, config: Path, model: Path | None = None) -> None:
        self.config = Path(config)
        if not self.config.is_file():
            raise FileNotFoundError(f"no such config file: {self.config}")
        self.cfg: TrainConfig = load_config(self.config)
        model = model or self.cfg.export_path  # a config's export is under the repository, as training writes it
        if model is None:
            raise ValueError(f"{self.config}: the config exports no model; name it as CONFIG=MODEL.onnx")
        self.model = model
        if not self.model.is_file():
            raise FileNotFoundError(f"{self.config}: no model at {self.model} (train the fold first)")
        self.train_photos, self.held_out = split_photos(self.cfg)
        if not self.held_out:
            raise ValueError(f"{self.config}: holds out no photos (calib_photos = 0)")

    @classmethod
    def parse(cls, arg: str) -> Fold:
        config, _, model = arg.partition("=")
        return cls(Path(config), Path(model) if model else None)

    def scores(self) -> PairScores:
        fn, _ = onnx_embed_fn(self.model)
        return pair_scores(self.held_out, fn, seed=self.cfg.seed)  # copies as training's calibration makes them


def crossfit(folds: list[Fold], target_precision: float = TARGET_PRECISION,
             log=print) -> tuple[CalibrationResult, list[CalibrationResult]]:
    """(the pooled calibration, each fold's own) over the folds' held-out photos, which must not overlap."""
    if not folds:
        raise ValueError("cross-fitting needs at least one fold")
    seen: dict[str, Path] = {}
    for fold in folds:
        trained = {p.name for p in fold.train_photos}
        for p in fold.held_out:
            if p.name in trained:  # split_photos never does this; a hand-made config list might
                raise ValueError(f"{fold.config}: {p.name} is both trained on and held out")
            if p.name in seen:
                raise ValueError(f"{fold.config} and {seen[p.name]} both hold out {p.name}: folds must not overlap")
            seen[p.name] = fold.config
    parts, own = [], []
    for fold in folds:
        part = fold.scores()
        parts.append(part)
        own.append(calibrate_pairs(part, target_precision, fold.cfg.seed))
        log(f"{fold.config.name}: {part.photos} held-out photos, threshold {own[-1].threshold:.4f}, "
            f"recall {own[-1].recall:.4f}, hardest negative {own[-1].hardest_negative:.4f}")
    return calibrate_pairs(PairScores.pooled(parts), target_precision, folds[0].cfg.seed), own


def _summary(c: CalibrationResult) -> dict:
    return {"threshold": c.threshold, "precision": round(c.precision, 4), "recall": round(c.recall, 4),
            "hardest_negative": round(c.hardest_negative, 4), "photos": c.photos,
            "threshold_range": list(c.threshold_range or ()), "families_recall": c.families_recall}


def results(folds: list[Fold], pooled: CalibrationResult, own: list[CalibrationResult]) -> dict:
    """The pooled and per-fold calibrations as JSON-ready data."""
    return {"pooled": _summary(pooled),
            "folds": {str(f.config): _summary(c) | {"model": str(f.model)} for f, c in zip(folds, own)}}
