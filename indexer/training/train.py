"""The training loop: ArcFace instance discrimination + knowledge distillation on EfficientNet-Lite0 (issue 3).

    dupesift train --config configs/arcface-kd.toml [--steps N] [--out-dir DIR] [--no-export]

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
  (against the ArcFace class weights) should be the teacher's ranking (``losses.similarity_kd_loss``).
- KoLeo (optional, ``koleo`` > 0): SSCD's entropy term, spreads different photos apart in the batch;
  ``lookalike_batches`` pairs each batch photo with its teacher-nearest photo so KoLeo meets look-alikes.
- ``ema_decay`` > 0: the final checkpoint and the export hold a moving average of the student's weights.
- ``init_from``: start from an exported model (``from_onnx``) instead of ImageNet + PCA projection;
  ``turn_kd`` > 0: each view's embedding should be ``turn_teacher``'s embedding averaged over the view's
  four 90° turns (``turn_targets``), a one-pass copy of that model's exact turn invariance; ``turn_target``
  chooses whose average: the view's own, its photo's original's, or the centroid of its photo's views'.
- On the fly (fresh every step, ``views``): 90° turns/flips, grey, jitter and JPEG re-compression.

Each step draws views from the bank (``bank``) and runs the student on them: the first ``frozen_blocks``
MBConv blocks (and all BatchNorm statistics) stay frozen, the rest of the backbone, pooling, projection and
heads train. The steps of a run: start (seeds, run folder, log), data (split, bank, teacher targets), model
(student + heads), heads' start values, the loop, then checkpoint, export and calibration.
"""
from __future__ import annotations

import dataclasses
import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from indexer.modelspec import ModelSpec
from indexer.preprocess import normalize
from indexer.training.averaging import WeightAverage
from indexer.training.backbone import (
    FEATURE_DIM,
    NUM_CLASSES,
    Embedder,
    GeM,
    build_embedder,
    load_lite0,
    prefix,
    suffix,
)
from indexer.training.bank import bank_path, build_bank, teacher_features
from indexer.training.batches import draw_batch
from indexer.training.config import ConfigError, TrainConfig
from indexer.training.export import export_and_calibrate, save_checkpoint, spec_for
from indexer.training.losses import ArcFace, kd_loss, koleo_loss, similarity_kd_loss
from indexer.training.split import split_photos
from indexer.training.turn_targets import cached_turn_targets, per_view_targets
from indexer.training.views import extra_edits, jpeg_views

__all__ = ["train"]


class _RunLog:
    """metrics.jsonl of a run: every row is written, every ``log_every * 5``-th step row and events printed."""

    def __init__(self, run: Path, cfg: TrainConfig) -> None:
        run.mkdir(parents=True, exist_ok=True)
        (run / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=1))
        self.file = (run / "metrics.jsonl").open("w")
        self.every = cfg.log_every * 5

    def __call__(self, row: dict) -> None:
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()
        if "step" not in row or row["step"] % self.every == 0:
            print(json.dumps(row), flush=True)

    def close(self) -> None:
        self.file.close()


@dataclass
class _Data:
    """The training photos' bank and the teacher's targets on it (tensors on the host)."""

    photos: list[Path]
    calib: list[Path]
    pixels: np.ndarray              # uint8 views, N×S×S×3
    owner: torch.Tensor             # each view's photo
    teacher_logits: torch.Tensor    # N×1000
    by_photo: list[list[int]]       # each photo's views
    originals: torch.Tensor         # each photo's unedited view (its first)
    teacher_sim: torch.Tensor | None = None      # photo × photo cosines of the untouched backbone (device)
    lookalikes: list[list[int]] | None = None    # each photo's others, most alike first
    turn_targets: torch.Tensor | None = None     # each view's turn-averaged target embedding


def _prepare_data(cfg: TrainConfig, spec: ModelSpec, device: str, log) -> _Data:
    """Split the photos, build (or reuse) the bank with the frozen teacher, and the targets the recipe asks for."""
    photos, calib = split_photos(cfg)
    teacher = load_lite0().eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    bank = build_bank(cfg, photos, spec, teacher, log)
    owner = torch.from_numpy(bank["owner"]).long()
    by_photo = [torch.nonzero(owner == k).flatten().tolist() for k in range(len(photos))]
    data = _Data(photos, calib, bank["pixels"], owner, torch.from_numpy(bank["teacher_logits"]).float(), by_photo,
                 torch.tensor([views[0] for views in by_photo]))
    if (cfg.kd and cfg.kd_similarity) or cfg.lookalike_batches:
        teacher.to(device)
        t_feats = teacher_features(teacher, data.pixels[data.originals.numpy()], spec, device)
        data.teacher_sim = t_feats @ t_feats.T
    if cfg.lookalike_batches:
        # each photo's others from most to least alike (its own photo, cosine 1, moved to the end)
        n = len(photos)
        data.lookalikes = (data.teacher_sim - 3 * torch.eye(n, device=device)).argsort(1, descending=True).cpu().tolist()
    if cfg.turn_kd:
        averaged = cached_turn_targets(cfg.path(cfg.turn_teacher), data.pixels, bank_path(cfg, photos, spec),
                                       cfg.threads, log)
        data.turn_targets = torch.from_numpy(per_view_targets(averaged, bank["owner"], cfg.turn_target))
    return data


def _student(cfg: TrainConfig) -> Embedder:
    """ImageNet Lite0 + pooling + projection, or the exported model ``init_from`` loaded back into torch."""
    if not cfg.init_from:
        return build_embedder(pooling=cfg.pooling, dim=cfg.dim)
    from indexer.training.from_onnx import embedder_from_onnx

    student = embedder_from_onnx(cfg.path(cfg.init_from))
    pooling = "gem" if isinstance(student.pool, GeM) else "avg"
    if (student.dim, pooling) != (cfg.dim, cfg.pooling):
        raise ConfigError(f"{cfg.init_from} is a {student.dim}-d {pooling} embedder, "
                          f"the config asks for {cfg.dim}-d {cfg.pooling}")
    return student


class _Model:
    """The student embedder with its training heads (ArcFace, distillation), and how views go through it."""

    def __init__(self, cfg: TrainConfig, n_photos: int, spec: ModelSpec, device: str) -> None:
        self.cfg, self.spec, self.device = cfg, spec, device
        self.student = _student(cfg)
        self.net = self.student.backbone
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.trainable_backbone = [p for b in self.net._blocks[cfg.frozen_blocks:] for p in b.parameters()]
        self.trainable_backbone += list(self.net._conv_head.parameters()) + list(self.net._bn1.parameters())
        for p in self.trainable_backbone:
            p.requires_grad_(True)
        self.kd_head = nn.Linear(FEATURE_DIM if cfg.kd_input == "pooled" else cfg.dim, NUM_CLASSES)
        self.arc = ArcFace(cfg.dim, n_photos, cfg.margin, cfg.scale)
        self.student.to(device), self.kd_head.to(device), self.arc.to(device)
        self.student.eval()  # BatchNorm statistics stay frozen (small batches, and export parity)

    def embed(self, px: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(pooled features, unit embedding) of uint8 views; the frozen prefix runs without gradients."""
        x = torch.from_numpy(normalize(px, self.spec)).to(self.device)
        with torch.no_grad():
            h = prefix(self.net, x, self.cfg.frozen_blocks)
        pooled = self.student.pool(suffix(self.net, h, self.cfg.frozen_blocks))
        return pooled, self.student.project(pooled)

    @torch.no_grad()
    def init_heads(self, data: _Data) -> None:
        """Start values from two views of each photo (the original and one edit): the projection (PCA, for an
        ImageNet start), the ArcFace class weights and the distillation head."""
        cfg, student, device = self.cfg, self.student, self.device
        init_idx = torch.tensor([v for views in data.by_photo for v in views[:2]])
        pooled_all = torch.cat([self.embed(data.pixels[init_idx[i:i + 64].numpy()])[0]
                                for i in range(0, len(init_idx), 64)])
        if cfg.proj_init == "pca" and isinstance(student.proj, nn.Linear) and not cfg.init_from:
            # the top principal directions of the (uncentred) pooled features: the best rank-D
            # approximation of the backbone's own vectors, so training starts near its cosines
            _, _, vt = torch.linalg.svd(pooled_all.cpu(), full_matrices=False)
            k = min(cfg.dim, vt.shape[0])  # tiny runs have fewer views than dimensions: keep the rest orthogonal
            student.proj.weight[:k].copy_(vt[:k].to(device))
        # class weights start at the mean embedding of those two views
        embs = student.project(pooled_all)
        centres = torch.zeros(len(data.by_photo), cfg.dim, device=device).index_add_(
            0, data.owner[init_idx].to(device), embs)
        self.arc.weight.copy_(F.normalize(centres, dim=1))
        self.kd_head.bias.copy_(self.net._fc.bias)
        if cfg.kd_input == "pooled":
            self.kd_head.weight.copy_(self.net._fc.weight)
        else:
            # the classifier seen through the projection: fc(p) ~ fc.W P^T (|P p| e) + b for a unit
            # embedding e = P p / |P p| when p lies near the projection's row space (PCA init);
            # proj(fc.W) is fc.W P^T (the projection has no bias), or fc.W itself when there is none
            self.kd_head.weight.copy_(student.proj(self.net._fc.weight) * student.proj(pooled_all).norm(dim=1).mean())

    def optimizer(self) -> torch.optim.Optimizer:
        """AdamW: the backbone's top at ``lr_backbone``, pooling and projection at ``lr``, ArcFace's class
        weights at 10 ``lr`` without decay, the distillation head (when in use) at ``lr``."""
        cfg = self.cfg
        groups = [
            {"params": self.trainable_backbone, "lr": cfg.lr_backbone},
            {"params": list(self.student.pool.parameters()) + list(self.student.proj.parameters()), "lr": cfg.lr},
            {"params": list(self.arc.parameters()), "lr": cfg.lr * 10, "weight_decay": 0.0},
        ]
        if cfg.kd:
            groups.append({"params": list(self.kd_head.parameters()), "lr": cfg.lr})
        return torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)


def _lr_scale(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up over ``warmup_steps``, then a cosine decay to zero at the last step."""
    if step <= cfg.warmup_steps:
        return step / cfg.warmup_steps
    return 0.5 * (1 + math.cos(math.pi * (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)))


class _KdBalance:
    """The distillation weight: each step's ratio of gradient norms at the pooled features that gives the
    copy losses and distillation the shares 1 - kd_balance : kd_balance, smoothed over steps."""

    def __init__(self, balance: float) -> None:
        self.balance, self.weight = balance, None

    def update(self, copy_loss: torch.Tensor, kd: torch.Tensor, pooled: torch.Tensor) -> float:
        g_copy = torch.autograd.grad(copy_loss, pooled, retain_graph=True)[0].norm()
        g_kd = torch.autograd.grad(kd, pooled, retain_graph=True)[0].norm()
        w = (self.balance / (1 - self.balance)) * (g_copy / g_kd.clamp(min=1e-12)).item()
        self.weight = w if self.weight is None else 0.9 * self.weight + 0.1 * w
        return self.weight


def _batch_loss(cfg: TrainConfig, model: _Model, data: _Data, idx: torch.Tensor, px: np.ndarray,
                balance: _KdBalance, row: dict) -> torch.Tensor:
    """The step's loss on the (edited) views ``px`` of bank views ``idx``; adds each term's value to ``row``."""
    device = model.device
    labels = data.owner[idx].to(device)
    pooled, emb = model.embed(px)
    emb = emb.float()  # the copy losses in fp32 (autocast makes the projection fp16 on a GPU)
    loss_arc, acc = model.arc(emb, labels)
    row.update(loss_arc=round(loss_arc.item(), 4), acc=round(acc.item(), 3))
    loss = loss_arc
    if cfg.koleo:
        loss_koleo = koleo_loss(emb, labels)
        loss = loss + cfg.koleo * loss_koleo
        row["loss_koleo"] = round(loss_koleo.item(), 4)
    if cfg.turn_kd:  # a copy loss too: the target is the same for every turn of the view
        loss_turn = (1 - (emb * data.turn_targets[idx].to(device)).sum(1)).mean()
        loss = loss + cfg.turn_kd * loss_turn
        row["loss_turn"] = round(loss_turn.item(), 4)
    if cfg.kd:
        target_idx = idx if cfg.kd_target == "view" else data.originals[data.owner[idx]]
        kd_in = pooled if cfg.kd_input == "pooled" else emb
        loss_kd = kd_loss(model.kd_head(kd_in).float(), data.teacher_logits[target_idx].to(device),
                          cfg.kd_temperature)
        if cfg.kd_similarity:
            loss_sim = similarity_kd_loss(emb, labels, F.normalize(model.arc.weight.detach(), dim=1),
                                          data.teacher_sim[labels], cfg.kd_similarity_temperature)
            row["loss_sim"] = round(loss_sim.item(), 4)
            loss_kd = loss_kd + cfg.kd_similarity * loss_sim
        weight = balance.update(loss, loss_kd, pooled)
        loss = loss + weight * loss_kd
        row.update(loss_kd=round(loss_kd.item(), 4), kd_weight=round(weight, 3))
    return loss


def _fit(cfg: TrainConfig, model: _Model, data: _Data, log) -> tuple[list[dict], float]:
    """The training steps (checkpoints every ``checkpoint_every``); returns (the step rows, seconds)."""
    opt = model.optimizer()
    # only the exported embedder is averaged (BatchNorm statistics are frozen, so its buffers never change)
    average = WeightAverage([p for p in model.student.parameters() if p.requires_grad], cfg.ema_decay) \
        if cfg.ema_decay else None
    base_lrs = [g["lr"] for g in opt.param_groups]
    use_amp = model.device == "cuda"
    rng = random.Random(cfg.seed + 2)
    balance = _KdBalance(cfg.kd_balance)
    history = []
    t_train = time.perf_counter()
    for step in range(1, cfg.steps + 1):
        for g, lr in zip(opt.param_groups, base_lrs):
            g["lr"] = lr * _lr_scale(cfg, step)
        idx = torch.tensor(draw_batch(rng, data.by_photo, cfg.photos_per_batch, cfg.views_per_sample,
                                      data.lookalikes))
        row = {"step": step}
        with torch.autocast(model.device, enabled=use_amp):
            px = extra_edits(data.pixels[idx.numpy()], rng, cfg)
            if cfg.jpeg_p:  # back to the host after: `normalize` is the one preprocessing path
                px = jpeg_views(torch.from_numpy(px).to(model.device), rng, cfg).cpu().numpy()
            loss = _batch_loss(cfg, model, data, idx, px, balance, row)
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
            save_checkpoint(cfg.run_dir / f"step{step}.pt", model.student, cfg, model.spec, step)
    if average is not None:  # the final checkpoint and the export hold the averaged weights
        average.copy_to_params()
    return history, time.perf_counter() - t_train


def train(cfg: TrainConfig) -> dict:
    """Run the recipe; returns a summary dict (also written to run_dir/summary.json)."""
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    cfg.photos_folder()  # a missing photo folder stops the run before it makes its folder
    run = cfg.run_dir
    log = _RunLog(run, cfg)
    try:
        t_start = time.perf_counter()
        spec = spec_for(cfg)
        data = _prepare_data(cfg, spec, device, log)
        model = _Model(cfg, len(data.photos), spec, device)
        model.init_heads(data)
        history, train_seconds = _fit(cfg, model, data, log)
        student = model.student
        ckpt = save_checkpoint(run / "final.pt", student, cfg, spec, cfg.steps)
        first, last = (history[0], history[-1]) if history else ({}, {})
        summary = {"name": cfg.name, "steps": cfg.steps, "train_photos": len(data.photos), "views": len(data.owner),
                   "train_seconds": round(train_seconds, 1), "total_seconds": round(time.perf_counter() - t_start, 1),
                   "first_loss": first.get("loss"), "last_loss": last.get("loss"),
                   "first_loss_arc": first.get("loss_arc"), "last_loss_arc": last.get("loss_arc"),
                   "gem_p": round(float(student.pool.p.detach()), 3) if hasattr(student.pool, "p") else None,
                   "checkpoint": str(ckpt), "device": device}
        if cfg.export:
            summary.update(export_and_calibrate(cfg, student, spec, data.calib, log))
        summary["total_seconds"] = round(time.perf_counter() - t_start, 1)
        (run / "summary.json").write_text(json.dumps(summary, indent=1))
        log({"event": "done", **summary})
    finally:
        log.close()
    return summary
