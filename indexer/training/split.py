"""Which photos a run trains on and which it holds out for calibration (never the eval split)."""
from __future__ import annotations

import random
from pathlib import Path

from indexer.training.config import TrainConfig

__all__ = ["split_photos"]


def split_photos(cfg: TrainConfig) -> tuple[list[Path], list[Path]]:
    """(training photos, calibration photos), both from the train split: of the photo folder's ``*.JPEG`` files
    sorted by name, every fifth is the eval split and never read. The train split is shuffled with the seed;
    calibration takes block ``calib_block`` of ``calib_photos`` (or the photos after the training photos)."""
    files = sorted(cfg.photos_folder().glob("*.JPEG"))
    train_split = [f for i, f in enumerate(files) if i % 5]
    r = random.Random(cfg.seed)
    shuffled = train_split[:]
    r.shuffle(shuffled)
    start = cfg.train_photos if cfg.calib_block < 0 else cfg.calib_block * cfg.calib_photos
    calib = shuffled[start: start + cfg.calib_photos]
    rest = shuffled[:start] + shuffled[start + cfg.calib_photos:]
    return sorted(rest[: cfg.train_photos]), sorted(calib)
