"""Training settings: ``TrainConfig``, read from a TOML recipe whose ``base`` names another recipe to start from.

Relative paths in a recipe (``photos_dir``, ``export``, ``init_from``, ``turn_teacher``, ``out_dir``,
``cache_dir``) are under the config's ``root``: the repository the recipe file is in (the nearest folder
above it with a ``pyproject.toml``), or the current folder for a config built in code. The photo folder is
``DUPESIFT_PHOTOS_DIR`` when that is set, else the recipe's ``photos_dir``.
"""
from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path

from indexer.calibrate import TARGET_PRECISION
from indexer.errors import DupesiftError

__all__ = ["PHOTOS_ENV", "TURN_TARGETS", "ConfigError", "TrainConfig", "config_root", "load_config"]

PHOTOS_ENV = "DUPESIFT_PHOTOS_DIR"  # overrides the recipe's photos_dir
TURN_TARGETS = ("view", "original", "centroid")  # whose turn average a view aims at (turn_targets.per_view_targets)


class ConfigError(DupesiftError, ValueError):
    """A training recipe that cannot run: unknown or contradictory settings, a missing file or photo folder."""


@dataclass
class TrainConfig:
    name: str = "arcface-kd-lite0"
    version: str = "1"               # bump with every shipped retrain: a new model id makes indexes re-embed
    seed: int = 0
    photos_dir: str = ""             # the photos to train on ("" = DUPESIFT_PHOTOS_DIR); only the train split is read
    train_photos: int = 600          # of the 800 train-split photos; the rest are held out for calibration
    calib_photos: int = 200
    calib_block: int = -1            # hold out block k of calib_photos of the shuffled train split (cross-fitting
                                     # folds; -1 = the photos after the training photos, the block train_photos
                                     # // calib_photos when that divides)
    input_size: int = 224            # model input side (pixels); stored in the exported spec, serving reads it there
    views_per_photo: int = 4         # views per photo in the bank: the original + edited copies
    dihedral_p: float = 0.0          # share of batch views given a random 90° turn and/or flip on the fly
    gray_p: float = 0.0              # share of batch views turned grey on the fly
    jitter_p: float = 0.0            # share of batch views given 1-2 fresh edits on the fly (crop, colour, noise, blur)
    jpeg_p: float = 0.0              # share of batch views re-compressed as JPEG on the training device (kornia)
    jpeg_quality: tuple[float, float] = (10.0, 90.0)  # quality range of those re-compressions
    photos_per_batch: int = 16
    views_per_sample: int = 3        # views of each photo in one batch
    steps: int = 150
    lr: float = 1e-3                 # heads, projection, pooling
    lr_backbone: float = 2e-4        # unfrozen top blocks
    weight_decay: float = 1e-4
    warmup_steps: int = 20
    dim: int = 256
    pooling: str = "gem"
    proj_init: str = "pca"           # "pca" (top principal directions of the pooled features) or "orthogonal"
    margin: float = 0.3
    scale: float = 30.0
    kd: bool = True
    kd_temperature: float = 2.0
    kd_balance: float = 0.5          # share of the gradient norm given to distillation
    kd_target: str = "view"          # teacher logits of the same "view", or of the photo's unedited "original"
    kd_input: str = "pooled"         # the distillation head reads the "pooled" features or the exported "embedding"
    kd_similarity: float = 0.0       # weight, inside the distillation loss, of matching the teacher's ranking of the
                                     # other training photos (relational distillation); 0 = off
    kd_similarity_temperature: float = 0.5  # softmax temperature on the per-row standardised cosines
    koleo: float = 0.0               # weight of the KoLeo spreading term (SSCD's entropy regulariser); 0 = off
    lookalike_batches: bool = False  # half of each batch at random, each photo joined by its teacher-nearest one
    ema_decay: float = 0.0           # export an exponential moving average of the student's weights; 0 = off
    init_from: str = ""              # start the embedder from this exported ONNX model (e.g. the shipped v10)
                                     # instead of ImageNet Lite0 + a PCA projection; "" = ImageNet
    turn_teacher: str = ""           # ONNX model whose turn-averaged embedding of each bank view is a target
    turn_kd: float = 0.0             # weight of 1 - cos(student view, that target); 0 = off
    turn_target: str = "view"        # the target is that average for the same "view", for the photo's unedited
                                     # "original", or the "centroid" of the averages of all the photo's bank views
    frozen_blocks: int = 9           # MBConv blocks 0..frozen_blocks-1 (and the stem) are frozen
    threads: int = 2
    checkpoint_every: int = 100
    log_every: int = 10
    out_dir: str = ""                # default runs/<name>
    export: str = ""                 # ONNX path to export to after training ("" = none)
    calibrate: bool = True
    target_precision: float = TARGET_PRECISION
    cache_dir: str = "runs/cache"    # view banks and turn targets, shared by runs
    root: str = ""                   # folder the relative paths above are under ("" = the current folder)

    def __post_init__(self) -> None:
        if self.kd_target not in ("view", "original"):
            raise ConfigError(f"kd_target must be 'view' or 'original', not {self.kd_target!r}")
        if self.turn_target not in TURN_TARGETS:
            raise ConfigError(f"turn_target must be one of {', '.join(TURN_TARGETS)}, not {self.turn_target!r}")
        if self.kd_input not in ("pooled", "embedding"):
            raise ConfigError(f"kd_input must be 'pooled' or 'embedding', not {self.kd_input!r}")
        if self.kd_similarity < 0 or self.kd_similarity_temperature <= 0:
            raise ConfigError("kd_similarity must be >= 0 and kd_similarity_temperature > 0")
        if self.calib_block >= 0 and (self.calib_block + 1) * self.calib_photos > self.train_photos + self.calib_photos:
            raise ConfigError(f"calib_block {self.calib_block} of {self.calib_photos} photos lies past the "
                              f"{self.train_photos + self.calib_photos} photos this run draws")
        if self.turn_kd < 0 or bool(self.turn_kd) != bool(self.turn_teacher):
            raise ConfigError("turn_kd (> 0) and turn_teacher go together")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"ema_decay must be in [0, 1), not {self.ema_decay}")
        self.jpeg_quality = tuple(map(float, self.jpeg_quality))  # TOML gives a list
        if len(self.jpeg_quality) != 2 or not 1 <= self.jpeg_quality[0] <= self.jpeg_quality[1] <= 100:
            raise ConfigError(f"jpeg_quality must be a range within 1..100, not {list(self.jpeg_quality)}")

    def path(self, name: str) -> Path | None:
        """A path setting as a path: a relative one is under ``root``; "" is None."""
        if not name:
            return None
        out = Path(name).expanduser()
        return out if out.is_absolute() else Path(self.root or Path.cwd()) / out

    @property
    def run_dir(self) -> Path:
        return self.path(self.out_dir or f"runs/{self.name}")

    @property
    def export_path(self) -> Path | None:
        """Where the ONNX export goes, or None for no export."""
        return self.path(self.export)

    def photos_folder(self) -> Path:
        """The folder of photos to split (``DUPESIFT_PHOTOS_DIR`` if set, else ``photos_dir``); it must exist."""
        from indexer.config import Settings

        env = Settings().photos_dir  # DUPESIFT_PHOTOS_DIR
        folder = env if env else self.path(self.photos_dir)
        if folder is None:
            raise ConfigError(f"no photo folder: set photos_dir in the training config or {PHOTOS_ENV}")
        if not folder.is_dir():
            source = PHOTOS_ENV if env else "photos_dir in the training config"
            raise ConfigError(f"no photo folder at {folder} (from {source})")
        return folder


def config_root(path: Path) -> Path:
    """The repository a recipe file is in: the nearest folder above it with a pyproject.toml, else its folder."""
    path = Path(path).resolve()
    return next((d for d in path.parents if (d / "pyproject.toml").is_file()), path.parent)


def _read_config(path: Path, including: tuple[Path, ...] = ()) -> dict:
    """The [train] table of ``path``, on top of the file its ``base`` names (relative to ``path``), if any."""
    path = Path(path).resolve()
    if path in including:
        raise ConfigError(f"config base cycle: {' -> '.join(p.name for p in (*including, path))}")
    if not path.is_file():
        raise ConfigError(f"no such config file: {path}" + (f" (the base of {including[-1]})" if including else ""))
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    raw = dict(raw.get("train", raw))
    base = raw.pop("base", None)
    if base is None:
        return raw
    merged = _read_config(path.parent / base, (*including, path))
    merged.update(raw)
    return merged


def load_config(path: Path | None, **overrides) -> TrainConfig:
    """Settings from a TOML file (``[train]`` table; ``base = "other.toml"`` starts from another file's settings),
    then ``overrides`` (None values are skipped). ``root`` is the file's repository unless overridden."""
    raw = _read_config(Path(path)) if path else {}
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"unknown training settings: {sorted(unknown)}")
    if path and "root" not in raw:
        raw["root"] = str(config_root(Path(path)))
    raw.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(**raw)
