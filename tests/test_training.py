"""A few-step smoke training on a handful of train-split photos, then export + parity (< 60 s on CPU)."""
from __future__ import annotations

import dataclasses
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("efficientnet_lite_pytorch")

from indexer.modelspec import read_spec
from indexer.preprocess import normalize, to_grey, to_model_pixels
from indexer.training.averaging import WeightAverage
from indexer.training.batches import lookalike_batch
from indexer.training.config import TrainConfig, load_config
from indexer.training.export import load_checkpoint_embedder, spec_for
from indexer.training.losses import koleo_loss, similarity_kd_loss
from indexer.training.split import split_photos
from indexer.training.train import train
from indexer.training.views import extra_edits, jpeg_views

pytestmark = [pytest.mark.torch, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT.parent / "shared" / "data" / "photos"
BASELINE = ROOT / "models" / "dupesift-effnetlite0-imagenet.onnx"


def _metric_rows(run_dir: Path) -> list[dict]:
    """The rows of a training run's metrics.jsonl."""
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_config_files_load(tmp_path: Path) -> None:
    for path in sorted((ROOT / "configs").rglob("*.toml")):  # the experiments' records too: they must stay runnable
        cfg = load_config(path)
        assert cfg.dim == 256 and cfg.pooling == "gem", path
    assert load_config(ROOT / "configs" / "arcface-kd.toml").kd
    assert not load_config(ROOT / "configs" / "arcface-only.toml").kd
    with pytest.raises(ValueError, match="unknown"):
        bad = tmp_path / "bad.toml"
        bad.write_text("[train]\nno_such_setting = 1\n")
        load_config(bad)
    with pytest.raises(ValueError, match="kd_target"):  # refused before minutes of view-bank work
        TrainConfig(kd_target="teacher")


def test_config_base_is_read_under_the_file(tmp_path: Path) -> None:
    """``base = "x.toml"`` starts from x's settings; the file's own settings win; cycles are refused."""
    ablation = load_config(ROOT / "configs" / "arcface-only.toml")
    stage1 = load_config(ROOT / "configs" / "arcface-kd-stage1.toml")
    recipe = load_config(ROOT / "configs" / "arcface-kd.toml")

    def differ(x: TrainConfig, y: TrainConfig) -> set[str]:
        return {f.name for f in dataclasses.fields(TrainConfig) if getattr(x, f.name) != getattr(y, f.name)}

    assert differ(ablation, stage1) == {"name", "kd", "export"}  # the ablation is stage 1 without distillation
    # stage 2 is stage 1's recipe (photos, bank, seed, losses) started from stage 1's file, plus the turn target
    assert differ(recipe, stage1) == {"version", "init_from", "turn_teacher", "turn_kd", "dihedral_p", "steps",
                                      "warmup_steps", "out_dir", "export"}
    assert recipe.init_from == recipe.turn_teacher == stage1.export and recipe.kd
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.toml").write_text('[train]\nsteps = 7\nkoleo = 2.0\n')
    (tmp_path / "sub" / "b.toml").write_text('[train]\nbase = "../a.toml"\nkoleo = 5.0\n')
    b = load_config(tmp_path / "sub" / "b.toml", seed=3)
    assert (b.steps, b.koleo, b.seed) == (7, 5.0, 3)
    (tmp_path / "a.toml").write_text('[train]\nbase = "sub/b.toml"\n')
    with pytest.raises(ValueError, match="cycle"):
        load_config(tmp_path / "a.toml")


def test_on_the_fly_turns_equal_turned_photos() -> None:
    """The bank's on-the-fly turns and flips are what a turned or mirrored copy looks like to the model."""
    import random

    from PIL import Image

    im = Image.open(sorted(PHOTOS.glob("*.JPEG"))[1]).convert("RGB")
    size = 64
    base = to_model_pixels(im, size)
    for op, want in [(Image.Transpose.ROTATE_90, np.rot90(base, 1)), (Image.Transpose.ROTATE_180, np.rot90(base, 2)),
                     (Image.Transpose.ROTATE_270, np.rot90(base, 3)), (Image.Transpose.FLIP_LEFT_RIGHT, base[:, ::-1])]:
        got = to_model_pixels(im.transpose(op), size).astype(int)
        assert np.abs(got - want.astype(int)).mean() < 1.0, op
    cfg = TrainConfig(dihedral_p=1.0, gray_p=1.0)
    out = extra_edits(np.stack([base] * 8), random.Random(0), cfg)
    assert out.shape == (8, size, size, 3) and out.dtype == np.uint8
    assert (out[..., 0] == out[..., 2]).all()  # grey
    pil_grey = np.asarray(Image.fromarray(base).convert("L")).astype(int)  # the luma PIL gives a grey copy
    assert np.abs(to_grey(base)[..., 1].astype(int) - pil_grey).max() <= 1
    assert len({o.tobytes() for o in out}) > 1  # several different turns
    assert (extra_edits(base[None], random.Random(0), TrainConfig())[0] == base).all()  # off by default


def test_on_the_fly_jitter_is_fresh_and_seeded() -> None:
    """Jitter edits change views differently each draw, keep shape and dtype, and repeat for the same seed."""
    import random

    from PIL import Image

    base = to_model_pixels(Image.open(sorted(PHOTOS.glob("*.JPEG"))[1]).convert("RGB"), 64)
    cfg = TrainConfig(jitter_p=1.0)
    batch = np.stack([base] * 8)
    out = extra_edits(batch, random.Random(3), cfg)
    assert out.shape == batch.shape and out.dtype == np.uint8
    assert all((o != base).any() for o in out)  # every view edited
    assert len({o.tobytes() for o in out}) == 8  # each differently
    assert (extra_edits(batch, random.Random(3), cfg) == out).all()  # seeded
    assert (batch == base).all()  # the bank is not edited in place


def test_on_the_fly_jpeg_is_a_jpeg() -> None:
    """kornia's codec on the training device gives what PIL's JPEG at the same quality gives, to ~2 levels."""
    import io
    import random

    from PIL import Image

    base = to_model_pixels(Image.open(sorted(PHOTOS.glob("*.JPEG"))[1]).convert("RGB"), 176)
    for q in (10, 50):
        cfg = TrainConfig(jpeg_p=1.0, jpeg_quality=[q, q])
        got = jpeg_views(torch.from_numpy(np.stack([base] * 2)), random.Random(0), cfg).numpy()
        assert got.shape == (2, 176, 176, 3) and got.dtype == np.uint8
        buf = io.BytesIO()
        Image.fromarray(base).save(buf, "JPEG", quality=q)
        pil = np.asarray(Image.open(buf)).astype(int)
        to_pil, to_base = np.abs(got[0] - pil).mean(), np.abs(got[0].astype(int) - base).mean()
        assert to_pil < 2.5 and to_pil < to_base / 2, (q, to_pil, to_base)  # compressed, and like PIL's JPEG
    some = jpeg_views(torch.from_numpy(np.stack([base] * 20)), random.Random(1), TrainConfig(jpeg_p=0.5)).numpy()
    assert 0 < sum((v != base).any() for v in some) < 20  # only a share of the views
    with pytest.raises(ValueError, match="jpeg_quality"):
        TrainConfig(jpeg_quality=[90, 10])


def test_koleo_counts_only_other_photos_and_spreads_them() -> None:
    """KoLeo is -mean log distance to the nearest embedding of another photo; descending it spreads photos."""
    import torch.nn.functional as F

    labels = torch.tensor([0, 0, 1, 2])
    emb = F.normalize(torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.01, 0.0], [0.8, 0.6, 0.0], [0.0, 0.0, 1.0]]), dim=1)
    cos = emb @ emb.T
    # photo 0's two views are each other's nearest, but do not count: their nearest other photo is photo 1
    want = -torch.log(torch.sqrt(2 - 2 * torch.stack([cos[0, 2], cos[1, 2], cos[2, 1], cos[3, 2].max(cos[3, 0])])))
    assert torch.allclose(koleo_loss(emb, labels), want.mean(), atol=1e-6)
    x = emb.clone().requires_grad_(True)
    opt = torch.optim.SGD([x], lr=0.05)
    for _ in range(20):
        opt.zero_grad()
        koleo_loss(F.normalize(x, dim=1), labels).backward()
        opt.step()
    after = F.normalize(x.detach(), dim=1)
    assert (after[0] @ after[2]) < cos[0, 2] - 0.05  # the look-alike photos moved apart


def test_similarity_distillation_asks_for_the_teachers_order_not_its_cosines() -> None:
    """The relational term is zero when the student ranks the other photos as the teacher does, whatever
    the scale (the copy losses may push every other photo far away), ignores the view's own photo, and
    gradient descent on it moves a wrong order towards the teacher's."""
    torch.manual_seed(0)
    anchors = F.normalize(torch.randn(12, 8), dim=1)
    labels = torch.tensor([0, 0, 3, 5])
    emb = anchors[labels]
    teacher = emb @ anchors.T
    assert similarity_kd_loss(emb, labels, anchors, teacher, 0.5).item() == pytest.approx(0.0, abs=1e-6)
    assert similarity_kd_loss(emb, labels, anchors, 0.2 * teacher - 0.1, 0.5).item() == pytest.approx(0.0, abs=1e-6)
    own_changed = teacher.clone()
    own_changed[torch.arange(4), labels] = -5.0
    assert similarity_kd_loss(emb, labels, anchors, own_changed, 0.5).item() == pytest.approx(0.0, abs=1e-6)
    assert similarity_kd_loss(emb, labels, anchors, -teacher, 0.5).item() > 1.0
    x = F.normalize(torch.randn(4, 8), dim=1).requires_grad_()
    opt = torch.optim.SGD([x], lr=0.5)
    losses = []
    for _ in range(30):
        loss = similarity_kd_loss(F.normalize(x, dim=1), labels, anchors, teacher, 0.5)
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert losses[-1] < 0.3 * losses[0], losses
    with pytest.raises(ValueError, match="kd_similarity"):
        TrainConfig(kd_similarity=-1.0)


def test_weight_average_is_the_bias_corrected_moving_average() -> None:
    """Step t's weights count with decay ** (T - t), normalised; copying the average in sets the module."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(4, 3)
    params = list(layer.parameters())
    average = WeightAverage(params, decay=0.9)
    assert all(torch.equal(s, p) for s, p in zip(average.shadow, params))  # nothing averaged yet
    seen = []
    opt = torch.optim.SGD(params, lr=0.1)
    for _ in range(30):
        opt.zero_grad()
        layer(torch.randn(8, 4)).pow(2).sum().backward()
        opt.step()
        average.update()
        seen.append([p.detach().clone() for p in params])
    w = torch.tensor([0.9 ** (len(seen) - 1 - t) for t in range(len(seen))], dtype=torch.float64)
    expected = [sum(wt * step[i].double() for wt, step in zip(w, seen)) / w.sum() for i in range(len(params))]
    assert all(torch.allclose(s.double(), e, atol=1e-6) for s, e in zip(average.shadow, expected))
    assert not torch.allclose(params[0], average.shadow[0])  # the weights moved on; the average lags
    average.copy_to_params()
    assert all(torch.allclose(p, s) for p, s in zip(params, average.shadow))
    assert spec_for(TrainConfig(ema_decay=0.995)).notes["ema_decay"] == 0.995
    assert "ema_decay" not in spec_for(TrainConfig()).notes  # off: the shipped model's spec is unchanged
    with pytest.raises(ValueError, match="ema_decay"):
        TrainConfig(ema_decay=1.0)


def test_lookalike_batches_pair_each_photo_with_its_nearest() -> None:
    """Look-alike batches: distinct photos, every second one the first free photo in the previous one's
    teacher ranking; seeded."""
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(40, 16))
    sim = feats @ feats.T
    np.fill_diagonal(sim, -np.inf)
    ranking = np.argsort(-sim, axis=1).tolist()
    batch = lookalike_batch(random.Random(3), ranking, 16)
    assert len(batch) == len(set(batch)) == 16
    for i in range(0, 16, 2):
        seed_photo, mate = batch[i], batch[i + 1]
        assert mate == next(j for j in ranking[seed_photo] if j not in batch[:i + 1])
    assert batch == lookalike_batch(random.Random(3), ranking, 16)
    assert batch != lookalike_batch(random.Random(4), ranking, 16)
    five = [[j for j in r if j < 5] for r in ranking[:5]]  # fewer photos than the batch size: all of them
    assert sorted(lookalike_batch(random.Random(0), five, 16)) == [0, 1, 2, 3, 4]


def test_split_never_uses_eval_photos() -> None:
    cfg = TrainConfig(photos_dir=str(PHOTOS))
    train_p, calib = split_photos(cfg)
    files = sorted(PHOTOS.glob("*.JPEG"))
    if not files:
        pytest.skip("no photos")
    eval_names = {f.name for f in files[::5]}
    assert not eval_names & {p.name for p in train_p + calib}
    assert not {p.name for p in train_p} & {p.name for p in calib}


def test_calibration_blocks_are_cross_fitting_folds() -> None:
    """calib_block k holds out the k-th block of the shuffled train split: blocks 0-3 of 200 hold out each of
    the 800 photos once, each fold trains on the other 600, and block 3 is the default split (v10's)."""
    if not PHOTOS.exists():
        pytest.skip("no photos")
    default = split_photos(TrainConfig(photos_dir=str(PHOTOS)))
    held_out: list[str] = []
    for k in range(4):
        train_p, calib = split_photos(TrainConfig(photos_dir=str(PHOTOS), calib_block=k))
        assert len(train_p) == 600 and len(calib) == 200 and not set(train_p) & set(calib)
        assert sorted(train_p + calib) == sorted(default[0] + default[1])
        held_out += [p.name for p in calib]
        if k == 3:
            assert (train_p, calib) == default
    assert len(set(held_out)) == 800
    all_photos, none = split_photos(TrainConfig(photos_dir=str(PHOTOS), train_photos=800, calib_photos=0))
    assert len(all_photos) == 800 and none == []
    with pytest.raises(ValueError, match="calib_block 4"):
        TrainConfig(calib_block=4)


@pytest.mark.skipif(not PHOTOS.exists() or not BASELINE.exists(), reason="needs ../shared photos and the baseline model")
def test_crossfit_pools_each_folds_held_out_pairs(tmp_path: Path) -> None:
    """Two folds of 6 held-out photos, each scored by its own model (the untouched backbone and our model stand
    in for fold models): the pooled threshold is the one picked from both folds' pairs together, with no pairs
    across folds; overlapping folds are refused; the CLI writes the threshold into the final model."""
    import shutil

    from indexer.calibrate import PairScores, calibrate_pairs, onnx_embed_fn, pair_scores
    from indexer.training.cli import main
    from indexer.training.crossfit import Fold, crossfit

    fold_models = [BASELINE, ROOT / "models" / "dupesift-arcface-kd-lite0.onnx"]
    configs = []
    for k in (0, 1):
        model = tmp_path / f"fold{k}.onnx"
        shutil.copy(fold_models[k], model)
        path = tmp_path / f"fold{k}.toml"
        path.write_text(f'[train]\nphotos_dir = "{PHOTOS}"\ntrain_photos = 12\ncalib_photos = 6\n'
                        f'calib_block = {k}\nseed = 4\nexport = "{model}"\n')
        configs.append(path)
    folds = [Fold(c) for c in configs]
    assert not {p.name for p in folds[0].held_out} & {p.name for p in folds[1].held_out}
    assert {p.name for p in folds[1].held_out} <= {p.name for p in folds[0].train_photos}
    pooled, own = crossfit(folds, 0.99, log=lambda _: None)
    parts = [pair_scores(f.held_out, onnx_embed_fn(m)[0], 3, 4) for f, m in zip(folds, fold_models)]
    other = pair_scores(folds[1].held_out, onnx_embed_fn(fold_models[0])[0], 3, 4)
    assert not np.allclose(parts[1].pos, other.pos)  # so fold 1 was scored by its own model, not fold 0's
    expected = calibrate_pairs(PairScores.pooled(parts), 0.99, 4)
    assert pooled.threshold == expected.threshold and pooled.recall == expected.recall
    assert pooled.photos == 12 and pooled.positives == 36
    per_fold_negatives = 24 * 23 // 2 - 6 * (4 * 3 // 2)  # all pairs of the 24 files but same-photo ones
    assert pooled.negatives == 2 * per_fold_negatives  # none across folds: no one model scored those
    assert [o.threshold for o in own] == [calibrate_pairs(p, 0.99, 4).threshold for p in parts]
    assert [o.hardest_negative for o in own] == [float(p.neg.max()) for p in parts]
    with pytest.raises(ValueError, match="must not overlap"):
        crossfit([folds[0], Fold(configs[0])], log=lambda _: None)
    final = tmp_path / "final.onnx"
    shutil.copy(BASELINE, final)
    out = tmp_path / "crossfit.json"
    assert main(["crossfit", *map(str, configs), "--target", "0.99", "--write", str(final), "--out", str(out)]) == 0
    assert read_spec(final).threshold == pytest.approx(pooled.threshold)
    assert json.loads(out.read_text())["pooled"]["threshold"] == pooled.threshold
    with pytest.raises(FileNotFoundError, match="train the fold first"):
        Fold(configs[0], tmp_path / "missing.onnx")


@pytest.mark.skipif(not PHOTOS.exists(), reason="../shared/data/photos not present")
def test_smoke_training_exports_with_parity(tmp_path: Path) -> None:
    cfg = TrainConfig(
        name="smoke", photos_dir=str(PHOTOS), train_photos=4, calib_photos=0, views_per_photo=2,
        photos_per_batch=4, views_per_sample=2, steps=5, warmup_steps=1, frozen_blocks=14, lr=3e-3,
        checkpoint_every=0, out_dir=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache"),
        export=str(tmp_path / "smoke.onnx"), calibrate=False, threads=2, kd_target="original", dihedral_p=0.5,
        gray_p=0.2, koleo=1.0, jpeg_p=0.5,
    )
    summary = train(cfg)
    rows = _metric_rows(tmp_path / "run")
    steps = [r for r in rows if "step" in r]
    assert len(steps) == 5
    assert all(math.isfinite(r["loss"]) and math.isfinite(r["loss_kd"]) and r["kd_weight"] >= 0 for r in steps)
    assert all(math.isfinite(r["loss_koleo"]) for r in steps)
    # the distillation head starts from the ImageNet classifier but sees GeM-pooled features: its loss must fall
    assert steps[-1]["loss_kd"] < steps[0]["loss_kd"]
    assert all(r["loss_arc"] < 20 for r in steps)  # no blow-up
    # export: spec and parity with the checkpoint
    spec = read_spec(Path(cfg.export))
    assert spec.dim == 256 and spec.name == "smoke"
    model, ckpt_spec = load_checkpoint_embedder(Path(summary["checkpoint"]))
    assert ckpt_spec.input_size == spec.input_size
    from PIL import Image

    px = np.stack([to_model_pixels(Image.open(p).convert("RGB"), spec.input_size)
                   for p in sorted(PHOTOS.glob("*.JPEG"))[::5][:2]])
    x = normalize(px, spec)
    sess = ort.InferenceSession(cfg.export, providers=["CPUExecutionProvider"])
    (onnx_out,) = sess.run([spec.output_name], {spec.input_name: x})
    with torch.no_grad():
        torch_out = model.eval()(torch.from_numpy(x)).numpy()
    assert np.abs(onnx_out - torch_out).max() < 1e-4
    np.testing.assert_allclose(np.linalg.norm(onnx_out, axis=1), 1.0, atol=1e-5)


@pytest.mark.skipif(not PHOTOS.exists(), reason="../shared/data/photos not present")
def test_distillation_head_on_the_embedding(tmp_path: Path) -> None:
    """kd_input = "embedding": the head reads the exported unit vectors; it starts as the ImageNet classifier
    seen through the projection, so its first loss is close to the pooled head's, and it learns from there."""
    common = {
        "photos_dir": str(PHOTOS), "train_photos": 4, "calib_photos": 0, "views_per_photo": 2,
        "photos_per_batch": 4, "views_per_sample": 2, "steps": 4, "warmup_steps": 1, "frozen_blocks": 14,
        "lr": 3e-3, "checkpoint_every": 0, "cache_dir": str(tmp_path / "cache"), "calibrate": False, "threads": 2,
        "kd_target": "original"}
    first = {}
    for kd_input in ("pooled", "embedding"):
        cfg = TrainConfig(name=kd_input, out_dir=str(tmp_path / kd_input), kd_input=kd_input, **common)
        train(cfg)
        steps = [r for r in _metric_rows(tmp_path / kd_input) if "step" in r]
        assert all(math.isfinite(r["loss_kd"]) for r in steps)
        first[kd_input] = steps[0]["loss_kd"]
        common_cfg = cfg
        if kd_input == "embedding":
            assert steps[-1]["loss_kd"] < steps[0]["loss_kd"]
    # a 256-d summary of the 1280 features loses some of the classifier, not most of it
    assert first["embedding"] < 2 * first["pooled"], first
    # with the relational term: logged, finite, and recorded in the exported spec's notes
    cfg = TrainConfig(name="sim", out_dir=str(tmp_path / "sim"), kd_input="embedding", kd_similarity=2.0,
                      ema_decay=0.5, **common)
    train(cfg)
    rows = _metric_rows(tmp_path / "sim")
    assert all(math.isfinite(r["loss_sim"]) and r["loss_sim"] >= 0 for r in rows if "step" in r)
    assert spec_for(cfg).notes["kd_similarity"] == 2.0 and "kd_similarity" not in spec_for(common_cfg).notes
    with pytest.raises(ValueError, match="kd_input"):
        TrainConfig(kd_input="logits")


def test_dupesift_train_is_on_the_cli() -> None:
    import subprocess
    import sys

    exe = Path(sys.executable).with_name("dupesift")
    out = subprocess.run([str(exe), "train", "--help"], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert "--config" in out.stdout and "--steps" in out.stdout
    bad = subprocess.run([str(exe), "train", "--config", "/nonexistent.toml"], capture_output=True, text=True,
                         timeout=120, check=False)
    assert bad.returncode != 0 and "no such config file" in bad.stderr
    fit = subprocess.run([str(exe), "crossfit", "--help"], capture_output=True, text=True, timeout=120, check=False)
    assert fit.returncode == 0 and "--write" in fit.stdout, fit.stderr
    missing = subprocess.run([str(exe), "crossfit", "/nonexistent.toml"], capture_output=True, text=True, timeout=120,
                             check=False)
    assert missing.returncode != 0 and "no such config file: /nonexistent.toml" in missing.stderr


def test_a_bank_build_leaves_another_builds_teacher_file_alone(tmp_path: Path) -> None:
    """Two trainings building their view banks at once (a run and its ablation) share runs/cache; an earlier
    version exported every teacher to one fixed name there, and the first build to finish deleted the other's."""
    from PIL import Image

    from indexer.training.backbone import load_lite0
    from indexer.training.bank import _teacher_logits

    other = tmp_path / "teacher-64.onnx"  # the other build's file, at the old fixed name
    other.write_bytes(b"in use")
    pixels = np.stack([to_model_pixels(Image.open(p).convert("RGB"), 64) for p in sorted(PHOTOS.glob("*.JPEG"))[:2]])
    spec = dataclasses.replace(spec_for(TrainConfig()), input_size=64)
    logits = _teacher_logits(load_lite0().eval(), pixels, spec, tmp_path, 1)
    assert logits.shape == (2, 1000) and np.isfinite(logits).all()
    assert list(tmp_path.iterdir()) == [other] and other.read_bytes() == b"in use"
