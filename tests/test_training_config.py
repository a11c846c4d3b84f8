"""Training recipes: where their relative paths point, where the photos come from, and the errors a recipe
that cannot run gives (one line naming the file or folder, before any work)."""
from __future__ import annotations

from pathlib import Path

import pytest

from indexer.errors import DupesiftError
from indexer.training.config import PHOTOS_ENV, ConfigError, TrainConfig, config_root, load_config
from indexer.training.split import split_photos

ROOT = Path(__file__).resolve().parents[1]
SHARED_PHOTOS = ROOT.parent / "shared" / "data" / "photos"


@pytest.fixture(autouse=True)
def _no_photos_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PHOTOS_ENV, raising=False)


def _photos(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True)
    for i in range(n):
        (folder / f"p{i:03d}.JPEG").write_bytes(b"")  # the split reads names only
    return folder


def test_shipped_recipes_read_shared_photos_from_the_repository_root(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # not the repository: relative paths still point into it
    for name in ("arcface-kd.toml", "arcface-kd-stage1.toml", "experiments/arcface-kd-v3.toml"):
        cfg = load_config(ROOT / "configs" / name)
        assert Path(cfg.root) == ROOT and cfg.photos_dir == "../shared/data/photos"
        assert cfg.path(cfg.photos_dir) == ROOT / "../shared/data/photos"
        assert ROOT in cfg.export_path.parents  # models/ or runs/, in the repository
    if SHARED_PHOTOS.is_dir():
        assert cfg.photos_folder().resolve() == SHARED_PHOTOS.resolve()


def test_the_environment_names_the_photo_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mine = _photos(tmp_path / "mine", 20)
    monkeypatch.setenv(PHOTOS_ENV, str(mine))
    cfg = load_config(ROOT / "configs" / "arcface-kd.toml", train_photos=8, calib_photos=4)
    assert cfg.photos_folder() == mine
    train, calib = split_photos(cfg)
    assert {p.parent for p in train + calib} == {mine}
    assert len(train) == 8 and len(calib) == 4
    eval_split = {f"p{i:03d}.JPEG" for i in range(0, 20, 5)}
    assert not eval_split & {p.name for p in train + calib}


def test_a_missing_photo_folder_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=f"no photo folder: set photos_dir in the training config or {PHOTOS_ENV}"):
        split_photos(TrainConfig())
    gone = tmp_path / "gone"
    with pytest.raises(DupesiftError, match=f"no photo folder at {gone} \\(from photos_dir"):
        split_photos(TrainConfig(photos_dir=str(gone)))
    monkeypatch.setenv(PHOTOS_ENV, str(gone))
    with pytest.raises(DupesiftError, match=f"no photo folder at {gone} \\(from {PHOTOS_ENV}\\)"):
        TrainConfig(photos_dir=str(SHARED_PHOTOS)).photos_folder()  # the environment wins over the recipe


def test_relative_paths_are_under_the_recipes_repository_or_its_folder(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    (repo / "configs" / "sub").mkdir(parents=True)
    (repo / "pyproject.toml").write_text("")
    (repo / "configs" / "base.toml").write_text('[train]\nphotos_dir = "data/photos"\nexport = "models/m.onnx"\n')
    (repo / "configs" / "sub" / "run.toml").write_text('[train]\nbase = "../base.toml"\nout_dir = "runs/x"\n')
    _photos(repo / "data" / "photos", 5)
    monkeypatch.chdir(tmp_path)
    cfg = load_config(repo / "configs" / "sub" / "run.toml")
    assert config_root(repo / "configs" / "sub" / "run.toml") == repo
    assert cfg.photos_folder() == repo / "data" / "photos"
    assert (cfg.export_path, cfg.run_dir) == (repo / "models" / "m.onnx", repo / "runs" / "x")
    assert cfg.path(cfg.cache_dir) == repo / "runs" / "cache"
    alone = tmp_path / "alone"  # no repository above: the recipe's own folder
    alone.mkdir()
    (alone / "r.toml").write_text('[train]\nphotos_dir = "pics"\n')
    assert load_config(alone / "r.toml").path("pics") == alone / "pics"
    assert TrainConfig(name="n").run_dir == tmp_path / "runs" / "n"  # a config built in code: the current folder


def test_recipe_files_that_cannot_be_read_are_one_clear_error(tmp_path: Path) -> None:
    child = tmp_path / "child.toml"
    child.write_text('[train]\nbase = "missing.toml"\n')
    with pytest.raises(ConfigError, match=f"no such config file: {tmp_path / 'missing.toml'} \\(the base of"):
        load_config(child)
    broken = tmp_path / "broken.toml"
    broken.write_text("[train\n")
    with pytest.raises(DupesiftError, match="broken.toml"):
        load_config(broken)


def test_a_run_with_no_photos_stops_before_it_makes_its_folder(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("efficientnet_lite_pytorch")
    from indexer.training.train import train

    cfg = TrainConfig(photos_dir=str(tmp_path / "none"), out_dir=str(tmp_path / "run"))
    with pytest.raises(ConfigError, match="no photo folder at"):
        train(cfg)
    assert not (tmp_path / "run").exists()
