"""ArcFace instance discrimination + knowledge distillation on EfficientNet-Lite0 (issue 3).

    python -m indexer.training --config configs/arcface-kd.toml [--steps N] [--out-dir runs/NAME] [--no-export]

Student: ImageNet Lite0 -> GeM -> Linear(1280, D) -> L2 norm (exported). Training heads (dropped at export):
- ArcFace over the training photos (each photo its own class; several edited views of each photo per batch),
  additive angular margin ``margin``, scale ``scale``; class weights start at the mean of each photo's views.
- Distillation: a linear head (initialised from the ImageNet classifier) on the pooled features
  (``kd_input = "pooled"``) or on the exported embedding itself (``"embedding"``) predicts
  the frozen teacher's ImageNet probabilities (for the same view, or with ``kd_target = "original"`` for the
  photo's unedited view), KL at temperature ``kd_temperature``. Its weight is set each step so the
  gradients at the pooled features of distillation and of the copy losses have norms in the ratio
  kd_balance : 1-kd_balance.
  With ``kd_similarity`` > 0 a relational term joins it: each view's ranking of the other training photos
  (against the ArcFace class weights) should be the teacher's ranking (``similarity_kd_loss``).
- KoLeo (optional, ``koleo`` > 0): SSCD's entropy term, spreads different photos apart in the batch;
  ``lookalike_batches`` pairs each batch photo with its teacher-nearest photo so KoLeo meets look-alikes.
- ``ema_decay`` > 0: the final checkpoint and the export hold a moving average of the student's weights.
- ``init_from``: start from an exported model (``from_onnx``) instead of ImageNet + PCA projection;
  ``turn_kd`` > 0: each view's embedding should be ``turn_teacher``'s embedding averaged over the view's
  four 90° turns (``turn_targets``), a one-pass copy of that model's exact turn invariance; ``turn_target``
  chooses whose average: the view's own, its photo's original's, or the centroid of its photo's views'.
- On the fly (fresh every step): 90° turns/flips, grey, jitter (``extra_edits``, numpy) and JPEG
  re-compression (``jpeg_views``: kornia's differentiable codec on the training device).

Views: every training photo gets ``views_per_photo`` views (the original + edited copies from
``indexer.augment``, made once in parallel and kept as model-size uint8 pixels in runs/cache/), fed through
the serving path (``to_model_pixels`` + ``normalize`` with the exported ModelSpec), so training sees what
serving sees. The teacher's logits for every view are computed once with ONNX Runtime. Each step draws
views from that bank and runs the student on them: the first ``frozen_blocks`` MBConv blocks (and all
BatchNorm statistics) stay frozen, the rest of the backbone, pooling, projection and heads train.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import math
import os
import random
import tempfile
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter
from torch import nn

from indexer.augment import open_photo, random_edit
from indexer.calibrate import TARGET_PRECISION
from indexer.modelspec import EFFNET_LITE0_IMAGENET, ModelSpec
from indexer.preprocess import LUMA, normalize, to_grey, to_model_pixels
from indexer.training.backbone import FEATURE_DIM, NUM_CLASSES, Embedder, GeM, build_embedder, load_lite0
from indexer.training.export import export_onnx
from indexer.training.turn_targets import TURN_TARGETS, cached_turn_targets, per_view_targets

ROOT = Path(__file__).resolve().parents[2]
PHOTOS = ROOT.parent / "shared" / "data" / "photos"

__all__ = ["TrainConfig", "load_config", "train", "main", "split_photos"]


@dataclass
class TrainConfig:
    name: str = "arcface-kd-lite0"
    version: str = "1"               # bump with every shipped retrain: a new model id makes indexes re-embed
    seed: int = 0
    photos_dir: str = str(PHOTOS)
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
    cache_dir: str = str(ROOT / "runs" / "cache")

    def __post_init__(self) -> None:
        if self.kd_target not in ("view", "original"):
            raise ValueError(f"kd_target must be 'view' or 'original', not {self.kd_target!r}")
        if self.turn_target not in TURN_TARGETS:
            raise ValueError(f"turn_target must be one of {', '.join(TURN_TARGETS)}, not {self.turn_target!r}")
        if self.kd_input not in ("pooled", "embedding"):
            raise ValueError(f"kd_input must be 'pooled' or 'embedding', not {self.kd_input!r}")
        if self.kd_similarity < 0 or self.kd_similarity_temperature <= 0:
            raise ValueError("kd_similarity must be >= 0 and kd_similarity_temperature > 0")
        if self.calib_block >= 0 and (self.calib_block + 1) * self.calib_photos > self.train_photos + self.calib_photos:
            raise ValueError(f"calib_block {self.calib_block} of {self.calib_photos} photos lies past the "
                             f"{self.train_photos + self.calib_photos} photos this run draws")
        if self.turn_kd < 0 or bool(self.turn_kd) != bool(self.turn_teacher):
            raise ValueError("turn_kd (> 0) and turn_teacher go together")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), not {self.ema_decay}")
        self.jpeg_quality = tuple(map(float, self.jpeg_quality))  # TOML gives a list
        if len(self.jpeg_quality) != 2 or not 1 <= self.jpeg_quality[0] <= self.jpeg_quality[1] <= 100:
            raise ValueError(f"jpeg_quality must be a range within 1..100, not {list(self.jpeg_quality)}")

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) if self.out_dir else ROOT / "runs" / self.name

    @property
    def export_path(self) -> Path | None:
        """Where the ONNX export goes (a relative ``export`` is under the repository), or None for no export."""
        return _repo_path(self.export)


def _repo_path(name: str) -> Path | None:
    """A config's file name: relative ones are under the repository; "" is None."""
    if not name:
        return None
    out = Path(name)
    return out if out.is_absolute() else ROOT / out


def _read_config(path: Path, including: tuple[Path, ...] = ()) -> dict:
    """The [train] table of ``path``, on top of the file its ``base`` names (relative to ``path``), if any."""
    path = Path(path).resolve()
    if path in including:
        raise ValueError(f"config base cycle: {' -> '.join(p.name for p in (*including, path))}")
    raw = tomllib.loads(path.read_text())
    raw = dict(raw.get("train", raw))
    base = raw.pop("base", None)
    if base is None:
        return raw
    merged = _read_config(path.parent / base, (*including, path))
    merged.update(raw)
    return merged


def load_config(path: Path | None, **overrides) -> TrainConfig:
    """Settings from a TOML file (``[train]`` table; ``base = "other.toml"`` starts from another file's settings)."""
    raw = _read_config(Path(path)) if path else {}
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(raw) - known
    if unknown:
        raise ValueError(f"unknown training settings: {sorted(unknown)}")
    raw.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(**raw)


def split_photos(cfg: TrainConfig) -> tuple[list[Path], list[Path]]:
    """(training photos, calibration photos), both from the train split (never the eval split)."""
    files = sorted(Path(cfg.photos_dir).glob("*.JPEG"))
    train_split = [f for i, f in enumerate(files) if i % 5]
    r = random.Random(cfg.seed)
    shuffled = train_split[:]
    r.shuffle(shuffled)
    start = cfg.train_photos if cfg.calib_block < 0 else cfg.calib_block * cfg.calib_photos
    calib = shuffled[start: start + cfg.calib_photos]
    rest = shuffled[:start] + shuffled[start + cfg.calib_photos:]
    return sorted(rest[: cfg.train_photos]), sorted(calib)


# --- frozen prefix / trainable suffix of the backbone -------------------------------------------------

def prefix(net: nn.Module, x: torch.Tensor, k: int) -> torch.Tensor:
    x = net._swish(net._bn0(net._conv_stem(x)))
    for block in net._blocks[:k]:
        x = block(x)
    return x


def suffix(net: nn.Module, x: torch.Tensor, k: int) -> torch.Tensor:
    for block in net._blocks[k:]:
        x = block(x)
    return net._swish(net._bn1(net._conv_head(x)))


def spec_for(cfg: TrainConfig) -> ModelSpec:
    return dataclasses.replace(
        EFFNET_LITE0_IMAGENET, name=cfg.name, version=cfg.version, dim=cfg.dim, input_size=cfg.input_size,
        notes={"recipe": "+".join(["arcface"] + ["koleo"] * (cfg.koleo > 0) + ["kd"] * cfg.kd),
               "pooling": cfg.pooling, "margin": cfg.margin, "scale": cfg.scale, "koleo": cfg.koleo,
               "kd_balance": cfg.kd_balance if cfg.kd else 0.0, "kd_input": cfg.kd_input if cfg.kd else "",
               "steps": cfg.steps}
        | ({"kd_similarity": cfg.kd_similarity, "kd_similarity_temperature": cfg.kd_similarity_temperature}
           if cfg.kd and cfg.kd_similarity else {})
        | ({"lookalike_batches": True} if cfg.lookalike_batches else {})
        | ({"ema_decay": cfg.ema_decay} if cfg.ema_decay else {})
        | ({"init_from": Path(cfg.init_from).name} if cfg.init_from else {})
        | ({"turn_kd": cfg.turn_kd, "turn_teacher": Path(cfg.turn_teacher).name} if cfg.turn_kd else {})
        | ({"turn_target": cfg.turn_target} if cfg.turn_kd and cfg.turn_target != "view" else {}),
    )


def _photo_views(args: tuple[str, int, int, int]) -> np.ndarray:
    """The original + (n-1) edited views of one photo as uint8 (n, size, size, 3); seeded per photo."""
    path, n, size, seed = args
    r = random.Random(seed)
    im = open_photo(Path(path))
    views = [im] + [random_edit(im, r)[0] for _ in range(n - 1)]
    return np.stack([to_model_pixels(v, size) for v in views])


@contextlib.contextmanager
def _own_temp_file(folder: Path, prefix: str, suffix: str) -> Iterator[Path]:
    """A new file of this process's own in ``folder``, removed on exit unless it was moved away: trainings
    building banks side by side share runs/cache and must not overwrite or delete each other's files."""
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    os.close(fd)
    try:
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


def _teacher_logits(teacher: nn.Module, pixels: np.ndarray, spec: ModelSpec, work: Path, threads: int) -> np.ndarray:
    """ImageNet logits of the frozen teacher for every view (ONNX Runtime: several times faster than eager torch on CPU)."""
    import onnxruntime as ort

    logits_spec = dataclasses.replace(spec, dim=NUM_CLASSES, output_name="logits")
    with _own_temp_file(work, f"teacher-{spec.input_size}-", ".onnx") as tmp:
        path = export_onnx(teacher, tmp, logits_spec)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        out = [sess.run([logits_spec.output_name], {logits_spec.input_name: normalize(pixels[i:i + 64], spec)})[0]
               for i in range(0, len(pixels), 64)]
    return np.concatenate(out).astype(np.float16)


def bank_path(cfg: TrainConfig, photos: list[Path], spec: ModelSpec) -> Path:
    """Where the bank of these photos' views is cached (keyed by everything that makes it)."""
    key = hashlib.sha1(json.dumps([[p.name for p in photos], cfg.views_per_photo, cfg.seed, spec.input_size,
                                   spec.mean, spec.std, "bank-1"]).encode()).hexdigest()[:12]
    return Path(cfg.cache_dir) / f"bank-{key}.npz"


def build_bank(cfg: TrainConfig, photos: list[Path], spec: ModelSpec, teacher: nn.Module, log) -> dict:
    """Views of every photo as model-size uint8 pixels + the teacher's logits for each, cached on disk."""
    path = bank_path(cfg, photos, spec)
    if path.exists():
        log({"event": "bank", "path": str(path), "reused": True})
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    t0 = time.perf_counter()
    jobs = [(str(p), cfg.views_per_photo, spec.input_size, cfg.seed * 1_000_003 + k) for k, p in enumerate(photos)]
    if cfg.threads > 1 and len(jobs) > 8:
        from multiprocessing import get_context

        with get_context("spawn").Pool(cfg.threads) as pool:
            per_photo = pool.map(_photo_views, jobs, chunksize=8)
    else:
        per_photo = [_photo_views(j) for j in jobs]
    pixels = np.concatenate(per_photo)
    owner = np.repeat(np.arange(len(photos)), cfg.views_per_photo)
    path.parent.mkdir(parents=True, exist_ok=True)
    logits = _teacher_logits(teacher, pixels, spec, path.parent, cfg.threads)
    bank = {"pixels": pixels, "owner": owner, "teacher_logits": logits}
    with _own_temp_file(path.parent, path.stem, ".tmp.npz") as tmp:  # side-by-side builds of one bank: last wins
        np.savez(tmp, **bank)
        tmp.replace(path)
    log({"event": "bank", "path": str(path), "views": len(owner), "seconds": round(time.perf_counter() - t0, 1)})
    return bank


def extra_edits(px: np.ndarray, rng: random.Random, cfg: TrainConfig) -> np.ndarray:
    """On-the-fly edits of bank views (uint8 N×S×S×3), fresh every step so a fixed bank is not memorised.

    Turns and flips are exact on the square model input (a turn of the squash-resized photo equals the
    squash-resize of the turned photo); grey uses the ITU-R 601 luma. Jitter applies 1-2 of: a crop of
    45-100 % of the area resized back (the model-size version of cropping the photo), brightness/contrast/
    saturation, Gaussian noise, blur. The teacher's logits stay those of the bank view (or of the original),
    so distillation also asks for the same semantics after the edit."""
    if not (cfg.dihedral_p or cfg.gray_p or cfg.jitter_p):
        return px
    out = px.copy()
    for i in range(len(out)):
        if rng.random() < cfg.dihedral_p:
            v = np.rot90(out[i], rng.randint(0, 3))
            out[i] = v[:, ::-1] if rng.random() < 0.5 else v
        if rng.random() < cfg.gray_p:
            out[i] = to_grey(out[i])
        if rng.random() < cfg.jitter_p:
            for op in rng.sample(_JITTER, rng.randint(1, 2)):
                out[i] = op(out[i], rng)
    return out


# Model-size edits with milder ranges than indexer.augment's photo-size families (a 5 px blur at 640 px
# is a 1.4 px blur at 176): they vary the bank's views, the bank carries the strong edits.


def _jitter_crop(v: np.ndarray, rng: random.Random) -> np.ndarray:
    s = v.shape[0]
    area, aspect = rng.uniform(0.45, 1.0), math.exp(rng.uniform(-0.3, 0.3))
    w = min(s, max(8, round(s * math.sqrt(area * aspect))))
    h = min(s, max(8, round(s * math.sqrt(area / aspect))))
    x, y = rng.randint(0, s - w), rng.randint(0, s - h)
    return to_model_pixels(Image.fromarray(v[y:y + h, x:x + w]), s)


def _jitter_colour(v: np.ndarray, rng: random.Random) -> np.ndarray:
    x = v.astype(np.float32) * rng.uniform(0.6, 1.4)  # brightness
    x = x.mean() + (x - x.mean()) * rng.uniform(0.6, 1.4)  # contrast
    grey = x @ LUMA
    x = grey[..., None] + (x - grey[..., None]) * rng.uniform(0.4, 1.6)  # saturation
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)


def _jitter_noise(v: np.ndarray, rng: random.Random) -> np.ndarray:
    noise = np.random.default_rng(rng.getrandbits(32)).normal(0.0, rng.uniform(3, 15), v.shape)
    return np.clip(v + noise + 0.5, 0, 255).astype(np.uint8)


def _jitter_blur(v: np.ndarray, rng: random.Random) -> np.ndarray:
    return np.asarray(Image.fromarray(v).filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.6))))


_JITTER = [_jitter_crop, _jitter_colour, _jitter_noise, _jitter_blur]


def jpeg_views(px: torch.Tensor, rng: random.Random, cfg: TrainConfig) -> torch.Tensor:
    """Re-compress a ``jpeg_p`` share of the views as JPEG, fresh every step, on the tensor's device.

    kornia's differentiable codec (8×8 DCT, 4:2:0 chroma, the standard quantisation tables scaled by the
    quality) runs where the batch is, so on a GPU the recompression costs no CPU decode/encode round trip;
    it lands within ~1-2 grey levels of PIL's JPEG at the same quality (tests/test_training.py). Quality is
    drawn per view from ``jpeg_quality``. uint8 N×S×S×3 in and out: serving sees decoded 8-bit pixels too."""
    chosen = [i for i in range(len(px)) if rng.random() < cfg.jpeg_p]
    if not chosen:
        return px
    from kornia.enhance import jpeg_codec_differentiable  # the train extra

    lo, hi = cfg.jpeg_quality
    idx = torch.tensor(chosen, device=px.device)
    quality = torch.tensor([rng.uniform(lo, hi) for _ in chosen], device=px.device)
    with torch.no_grad():
        x = px[idx].permute(0, 3, 1, 2).float() / 255.0
        y = jpeg_codec_differentiable(x, quality)
        out = px.clone()
        out[idx] = (y.clamp(0, 1) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1)
    return out


class ArcFace(nn.Module):
    """Additive angular margin softmax (Deng et al. 2019) over ``n`` classes."""

    def __init__(self, dim: int, n: int, margin: float, scale: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n, dim) * 0.01)
        self.margin, self.scale = margin, scale

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cos = emb @ F.normalize(self.weight, dim=1).T
        theta = torch.acos(cos.clamp(-1 + 1e-6, 1 - 1e-6))
        target = torch.cos(theta.gather(1, labels[:, None]) + self.margin)
        logits = cos.scatter(1, labels[:, None], target) * self.scale
        loss = F.cross_entropy(logits, labels)
        acc = (cos.argmax(1) == labels).float().mean()
        return loss, acc


def koleo_loss(emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Kozachenko-Leonenko entropy term (Sablayrolles et al. 2019, as in SSCD): -mean log distance from each
    L2-normalised embedding to its nearest embedding of another photo in the batch (views of the same
    photo are not neighbours). It spreads different photos apart, which lowers the cosine of look-alike
    photos the model has never seen and so the threshold a target precision needs."""
    sim = (emb @ emb.T).masked_fill(labels[:, None] == labels[None, :], -2.0)
    nearest = sim.max(1).values
    return -torch.log((2 - 2 * nearest).clamp(min=1e-8).sqrt()).mean()


def similarity_kd_loss(emb: torch.Tensor, labels: torch.Tensor, anchors: torch.Tensor,
                       teacher_sim: torch.Tensor, t: float) -> torch.Tensor:
    """Relational distillation: each view's ranking of the other training photos should be the teacher's.

    ``anchors`` (P×D, unit) stand for the P training photos in the student's space (the ArcFace class
    weights, detached), ``teacher_sim`` (N×P) holds the teacher's cosines between each view's photo and
    every training photo. Both rows are standardised over the other photos (the view's own photo is left
    out) before a softmax at temperature ``t``, and the loss is KL(teacher || student): only the order and
    relative gaps of the neighbours are asked for, not their cosines, so the copy losses stay free to push
    every other photo far below the duplicate threshold while the embedding keeps the backbone's notion of
    which photos look alike (what nearest-neighbour class checks measure)."""
    own = F.one_hot(labels, anchors.shape[0]).bool()

    def standardised(x: torch.Tensor) -> torch.Tensor:
        x = x.masked_fill(own, 0.0)
        n = anchors.shape[0] - 1
        mean = x.sum(1, keepdim=True) / n
        var = ((x - mean).masked_fill(own, 0.0) ** 2).sum(1, keepdim=True) / n
        return ((x - mean) / var.clamp(min=1e-12).sqrt()).masked_fill(own, float("-inf")) / t

    s, q = standardised(emb @ anchors.T), standardised(teacher_sim)
    log_s, log_q = F.log_softmax(s, 1).masked_fill(own, 0.0), F.log_softmax(q, 1).masked_fill(own, 0.0)
    return (log_q.exp() * (log_q - log_s)).sum(1).mean()


def lookalike_batch(rng: random.Random, lookalikes: list[list[int]], size: int) -> list[int]:
    """``size`` distinct photos: half drawn at random, each followed by its nearest photo in the teacher's
    eyes that is not in the batch yet. Look-alike photos (two beetles) set the duplicate threshold on
    new photos, and in random batches of 16 of 600 they rarely meet, so KoLeo never pushes them apart."""
    n = len(lookalikes)
    size = min(size, n)
    chosen: list[int] = []
    taken: set[int] = set()
    while len(chosen) < size:
        k = rng.choice([i for i in range(n) if i not in taken])
        chosen.append(k)
        taken.add(k)
        if len(chosen) < size:
            mate = next(j for j in lookalikes[k] if j not in taken)
            chosen.append(mate)
            taken.add(mate)
    return chosen


def teacher_features(teacher: nn.Module, pixels: np.ndarray, spec: ModelSpec, device: str) -> torch.Tensor:
    """The untouched backbone's embedding of each view: the baseline ``Embedder`` (average pooling, 1280-d,
    unit) around the frozen teacher."""
    baseline = Embedder(teacher).to(device).eval()
    with torch.no_grad():
        return torch.cat([baseline(torch.from_numpy(normalize(pixels[i:i + 64], spec)).to(device))
                          for i in range(0, len(pixels), 64)])


class WeightAverage:
    """Exponential moving average of a module's trainable weights (Polyak averaging), bias-corrected.

    Step t's weights count with decay ** (T - t), normalised as Adam normalises its moments, so the average
    needs no warm-up ramp and covers about 1 / (1 - decay) steps even in a run that is not much longer."""

    def __init__(self, params: list[nn.Parameter], decay: float) -> None:
        self.params, self.decay, self.steps = params, decay, 0
        self._sum = [torch.zeros_like(p) for p in params]

    @torch.no_grad()
    def update(self) -> None:
        self.steps += 1
        torch._foreach_lerp_(self._sum, [p.detach() for p in self.params], 1 - self.decay)

    @property
    def shadow(self) -> list[torch.Tensor]:
        """The averaged weights (the current weights before the first update)."""
        if not self.steps:
            return [p.detach().clone() for p in self.params]
        return [s / (1 - self.decay ** self.steps) for s in self._sum]

    @torch.no_grad()
    def copy_to_params(self) -> None:
        for p, s in zip(self.params, self.shadow):
            p.copy_(s)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, t: float) -> torch.Tensor:
    return F.kl_div(F.log_softmax(student_logits / t, 1), F.log_softmax(teacher_logits / t, 1),
                    log_target=True, reduction="batchmean") * t * t


def train(cfg: TrainConfig) -> dict:
    """Run the recipe; returns a summary dict (also written to run_dir/summary.json)."""
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    run = cfg.run_dir
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=1))
    metrics = (run / "metrics.jsonl").open("w")

    def log(row: dict) -> None:
        metrics.write(json.dumps(row) + "\n")
        metrics.flush()
        if "step" not in row or row["step"] % (cfg.log_every * 5) == 0:
            print(json.dumps(row), flush=True)

    t_start = time.perf_counter()
    spec = spec_for(cfg)
    photos, calib = split_photos(cfg)
    teacher = load_lite0().eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    bank = build_bank(cfg, photos, spec, teacher, log)
    pixels = bank["pixels"]
    t_logits = torch.from_numpy(bank["teacher_logits"]).float()
    owner = torch.from_numpy(bank["owner"]).long()
    n_photos = len(photos)
    by_photo = [torch.nonzero(owner == k).flatten().tolist() for k in range(n_photos)]

    originals = torch.tensor([views[0] for views in by_photo])  # view 0 of each photo is the unedited one
    if (cfg.kd and cfg.kd_similarity) or cfg.lookalike_batches:
        teacher.to(device)
        t_feats = teacher_features(teacher, pixels[originals.numpy()], spec, device)
        t_sim = t_feats @ t_feats.T  # photo × photo cosines of the untouched backbone
    if cfg.lookalike_batches:
        # each photo's others from most to least alike (its own photo, cosine 1, moved to the end)
        lookalikes = (t_sim - 3 * torch.eye(n_photos, device=device)).argsort(1, descending=True).cpu().tolist()
    if cfg.turn_kd:
        averaged = cached_turn_targets(_repo_path(cfg.turn_teacher), pixels, bank_path(cfg, photos, spec),
                                       cfg.threads, log)
        turn_t = torch.from_numpy(per_view_targets(averaged, bank["owner"], cfg.turn_target))
    if cfg.init_from:
        from indexer.training.from_onnx import embedder_from_onnx

        student: Embedder = embedder_from_onnx(_repo_path(cfg.init_from))
        pooling = "gem" if isinstance(student.pool, GeM) else "avg"
        if (student.dim, pooling) != (cfg.dim, cfg.pooling):
            raise ValueError(f"{cfg.init_from} is a {student.dim}-d {pooling} embedder, "
                             f"the config asks for {cfg.dim}-d {cfg.pooling}")
    else:
        student = build_embedder(pooling=cfg.pooling, dim=cfg.dim)
    net = student.backbone
    for i, p in enumerate(net.parameters()):
        p.requires_grad_(False)
    trainable_backbone = [p for b in net._blocks[cfg.frozen_blocks:] for p in b.parameters()]
    trainable_backbone += list(net._conv_head.parameters()) + list(net._bn1.parameters())
    for p in trainable_backbone:
        p.requires_grad_(True)
    kd_head = nn.Linear(FEATURE_DIM if cfg.kd_input == "pooled" else cfg.dim, NUM_CLASSES)
    arc = ArcFace(cfg.dim, n_photos, cfg.margin, cfg.scale)
    student.to(device), kd_head.to(device), arc.to(device)
    student.eval()  # BatchNorm statistics stay frozen (small batches, and export parity)

    def embed_views(idx: torch.Tensor, rng: random.Random | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        px = pixels[idx.numpy()]
        if rng is not None:
            px = extra_edits(px, rng, cfg)
            if cfg.jpeg_p:  # back to the host after: `normalize` is the one preprocessing path
                px = jpeg_views(torch.from_numpy(px).to(device), rng, cfg).cpu().numpy()
        x = torch.from_numpy(normalize(px, spec)).to(device)
        with torch.no_grad():
            h = prefix(net, x, cfg.frozen_blocks)
        pooled = student.pool(suffix(net, h, cfg.frozen_blocks))
        return pooled, student.project(pooled)

    # start-up statistics from two views of each photo (the original and one edit)
    init_idx = torch.tensor([v for k in range(n_photos) for v in by_photo[k][:2]])
    with torch.no_grad():
        pooled_all = torch.cat([embed_views(init_idx[i:i + 64])[0] for i in range(0, len(init_idx), 64)])
        if cfg.proj_init == "pca" and isinstance(student.proj, nn.Linear) and not cfg.init_from:
            # the top principal directions of the (uncentred) pooled features: the best rank-D
            # approximation of the backbone's own vectors, so training starts near its cosines
            _, _, vt = torch.linalg.svd(pooled_all.cpu(), full_matrices=False)
            k = min(cfg.dim, vt.shape[0])  # tiny runs have fewer views than dimensions: keep the rest orthogonal
            student.proj.weight[:k].copy_(vt[:k].to(device))
        # class weights start at the mean embedding of those two views
        embs = student.project(pooled_all)
        centres = torch.zeros(n_photos, cfg.dim, device=device).index_add_(0, owner[init_idx].to(device), embs)
        arc.weight.copy_(F.normalize(centres, dim=1))
        kd_head.bias.copy_(net._fc.bias)
        if cfg.kd_input == "pooled":
            kd_head.weight.copy_(net._fc.weight)
        else:
            # the classifier seen through the projection: fc(p) ~ fc.W P^T (|P p| e) + b for a unit
            # embedding e = P p / |P p| when p lies near the projection's row space (PCA init);
            # proj(fc.W) is fc.W P^T (the projection has no bias), or fc.W itself when there is none
            kd_head.weight.copy_(student.proj(net._fc.weight) * student.proj(pooled_all).norm(dim=1).mean())

    params = [
        {"params": trainable_backbone, "lr": cfg.lr_backbone},
        {"params": list(student.pool.parameters()) + list(student.proj.parameters()), "lr": cfg.lr},
        {"params": list(arc.parameters()), "lr": cfg.lr * 10, "weight_decay": 0.0},
    ]
    if cfg.kd:
        params.append({"params": list(kd_head.parameters()), "lr": cfg.lr})
    opt = torch.optim.AdamW(params, weight_decay=cfg.weight_decay)
    # only the exported embedder is averaged (BatchNorm statistics are frozen, so its buffers never change)
    average = WeightAverage([p for p in student.parameters() if p.requires_grad], cfg.ema_decay) \
        if cfg.ema_decay else None
    base_lrs = [g["lr"] for g in opt.param_groups]
    use_amp = device == "cuda"
    rng = random.Random(cfg.seed + 2)
    kd_w_ema = None
    history = []
    t_train = time.perf_counter()
    for step in range(1, cfg.steps + 1):
        frac = step / cfg.warmup_steps if step <= cfg.warmup_steps else \
            0.5 * (1 + math.cos(math.pi * (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)))
        for g, lr in zip(opt.param_groups, base_lrs):
            g["lr"] = lr * frac
        if cfg.lookalike_batches:
            chosen = lookalike_batch(rng, lookalikes, cfg.photos_per_batch)
        else:
            chosen = rng.sample(range(n_photos), min(cfg.photos_per_batch, n_photos))
        idx = [v for k in chosen for v in rng.sample(by_photo[k], min(cfg.views_per_sample, len(by_photo[k])))]
        idx_t = torch.tensor(idx)
        labels = owner[idx_t].to(device)
        with torch.autocast(device, enabled=use_amp):
            pooled, emb = embed_views(idx_t, rng)
            emb = emb.float()  # the copy losses in fp32 (autocast makes the projection fp16 on a GPU)
            loss_arc, acc = arc(emb, labels)
            row = {"step": step, "loss_arc": round(loss_arc.item(), 4), "acc": round(acc.item(), 3)}
            loss = loss_arc
            if cfg.koleo:
                loss_koleo = koleo_loss(emb, labels)
                loss = loss + cfg.koleo * loss_koleo
                row["loss_koleo"] = round(loss_koleo.item(), 4)
            if cfg.turn_kd:  # a copy loss too: the target is the same for every turn of the view
                loss_turn = (1 - (emb * turn_t[idx_t].to(device)).sum(1)).mean()
                loss = loss + cfg.turn_kd * loss_turn
                row["loss_turn"] = round(loss_turn.item(), 4)
            if cfg.kd:
                target_idx = idx_t if cfg.kd_target == "view" else originals[owner[idx_t]]
                kd_in = pooled if cfg.kd_input == "pooled" else emb
                loss_kd = kd_loss(kd_head(kd_in).float(), t_logits[target_idx].to(device), cfg.kd_temperature)
                if cfg.kd_similarity:
                    loss_sim = similarity_kd_loss(emb, labels, F.normalize(arc.weight.detach(), dim=1),
                                                  t_sim[labels], cfg.kd_similarity_temperature)
                    row["loss_sim"] = round(loss_sim.item(), 4)
                    loss_kd = loss_kd + cfg.kd_similarity * loss_sim
                g_copy = torch.autograd.grad(loss, pooled, retain_graph=True)[0].norm()
                g_kd = torch.autograd.grad(loss_kd, pooled, retain_graph=True)[0].norm()
                w = (cfg.kd_balance / (1 - cfg.kd_balance)) * (g_copy / g_kd.clamp(min=1e-12)).item()
                kd_w_ema = w if kd_w_ema is None else 0.9 * kd_w_ema + 0.1 * w
                loss = loss + kd_w_ema * loss_kd
                row.update(loss_kd=round(loss_kd.item(), 4), kd_weight=round(kd_w_ema, 3))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if average is not None:
            average.update()
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"loss became {loss.item()} at step {step}")
        row["loss"] = round(loss.item(), 4)
        row["seconds"] = round(time.perf_counter() - t_train, 1)
        history.append(row)
        log(row)
        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < cfg.steps:
            save_checkpoint(run / f"step{step}.pt", student, cfg, spec, step)
    train_seconds = time.perf_counter() - t_train
    if average is not None:  # the final checkpoint and the export hold the averaged weights
        average.copy_to_params()
    ckpt = save_checkpoint(run / "final.pt", student, cfg, spec, cfg.steps)
    summary = {"name": cfg.name, "steps": cfg.steps, "train_photos": n_photos, "views": len(owner),
               "train_seconds": round(train_seconds, 1), "total_seconds": round(time.perf_counter() - t_start, 1),
               "first_loss": history[0]["loss"] if history else None, "last_loss": history[-1]["loss"] if history else None,
               "first_loss_arc": history[0]["loss_arc"] if history else None,
               "last_loss_arc": history[-1]["loss_arc"] if history else None,
               "gem_p": round(float(student.pool.p.detach()), 3) if hasattr(student.pool, "p") else None,
               "checkpoint": str(ckpt), "device": device}
    if cfg.export:
        summary.update(export_and_calibrate(cfg, student, spec, calib, log))
    summary["total_seconds"] = round(time.perf_counter() - t_start, 1)
    (run / "summary.json").write_text(json.dumps(summary, indent=1))
    log({"event": "done", **summary})
    metrics.close()
    return summary


def save_checkpoint(path: Path, student: Embedder, cfg: TrainConfig, spec: ModelSpec, step: int) -> Path:
    torch.save({"embedder": student.state_dict(), "pooling": cfg.pooling, "dim": cfg.dim, "spec": spec.to_json(),
                "step": step, "config": dataclasses.asdict(cfg)}, path)
    return path


def export_and_calibrate(cfg: TrainConfig, student: Embedder, spec: ModelSpec, calib: list[Path], log) -> dict:
    out = cfg.export_path
    export_onnx(student.cpu().eval(), out, spec)
    result = {"onnx": str(out)}
    if cfg.calibrate and calib:
        result.update(calibrate_export(out, spec, calib, cfg, cfg.run_dir / "calibration.txt"))
    return result


def calibrate_export(out: Path, spec: ModelSpec, calib: list[Path], cfg: TrainConfig,
                     curve_path: Path) -> dict:
    """Calibrate the exported ``out`` on the held-out photos ``calib`` at the config's target precision, store
    the threshold in its spec and the precision/recall curve in ``curve_path``; returns the summary."""
    from indexer.calibrate import calibrate, format_curve, onnx_embed_fn
    from indexer.modelspec import write_spec

    fn, _ = onnx_embed_fn(out)
    cal = calibrate(calib, fn, cfg.target_precision, seed=cfg.seed)
    text = format_curve(cal)
    curve_path.write_text(text + "\n")
    print(text, flush=True)
    write_spec(out, spec.with_threshold(cal.threshold))
    return {"threshold": cal.threshold, "calib_precision": round(cal.precision, 4),
            "calib_recall": round(cal.recall, 4), "calib_photos": len(calib),
            "calib_threshold_range": list(cal.threshold_range or ())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "arcface-kd.toml")
    ap.add_argument("--steps", type=int)
    ap.add_argument("--out-dir")
    ap.add_argument("--export", help="ONNX path to write after training")
    ap.add_argument("--no-export", action="store_true")
    ap.add_argument("--train-photos", type=int)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--threads", type=int, help="CPU threads (default: the config's)")
    a = ap.parse_args(argv)
    if not a.config.is_file():
        ap.error(f"no such config file: {a.config}")
    cfg = load_config(a.config, steps=a.steps, out_dir=a.out_dir, export=a.export, train_photos=a.train_photos,
                      seed=a.seed, threads=a.threads)
    if a.no_export:
        cfg.export = ""
    summary = train(cfg)
    print(json.dumps(summary, indent=1))
    return 0
