"""The training commands as a person runs them (``python -m indexer.training``, a real subprocess), and the
shape of the training package: no import cycles, no torch for the CLI module the base install imports."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "indexer" / "training"


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "indexer.training", *args], capture_output=True, text=True,
                          timeout=300, cwd=ROOT, env=env, check=False)


def _one_error_line(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


def _imports(path: Path) -> set[str]:
    """Every indexer.training module ``path`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("indexer.training"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("indexer.training")}
    return found


def test_the_training_package_has_no_import_cycle() -> None:
    graph = {f"indexer.training.{p.stem}": _imports(p) - {"indexer.training"}
             for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    state: dict[str, str] = {}

    def visit(module: str, path: tuple[str, ...]) -> None:
        if state.get(module) == "done":
            return
        assert state.get(module) != "open", f"import cycle: {' -> '.join((*path, module))}"
        state[module] = "open"
        for dep in graph.get(module, ()):
            visit(dep, (*path, module))
        state[module] = "done"

    for module in graph:
        visit(module, ())


def test_the_cli_module_imports_no_torch() -> None:
    code = "import sys, indexer.training.cli; print(sorted(m for m in ('torch', 'kornia', 'onnx') if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert r.stdout.strip() == "[]"


def test_train_is_the_default_command_and_the_others_have_help() -> None:
    r = _run("--help")
    assert r.returncode == 0 and "--config" in r.stdout and "--no-export" in r.stdout, r.stderr
    for command, option in (("crossfit", "--write"), ("soup", "--out"), ("export", "--baseline")):
        r = _run(command, "--help")
        assert r.returncode == 0 and option in r.stdout, (command, r.stderr)


@pytest.mark.torch
def test_a_recipe_that_cannot_run_is_one_line(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    assert "no such config file: /nonexistent.toml" in _one_error_line(_run("--config", "/nonexistent.toml"))
    assert "contradict" in _one_error_line(_run("--export", str(tmp_path / "m.onnx"), "--no-export"))
    env = {**os.environ, "DUPESIFT_PHOTOS_DIR": str(tmp_path / "nowhere")}
    line = _one_error_line(_run("--config", "configs/arcface-kd.toml", "--out-dir", str(tmp_path / "run"), env=env))
    assert f"no photo folder at {tmp_path / 'nowhere'} (from DUPESIFT_PHOTOS_DIR)" in line
    assert not (tmp_path / "run").exists()
    assert "one of --baseline and --checkpoint" in _one_error_line(_run("export"))
    assert "no such model file" in _one_error_line(_run("soup", str(tmp_path / "a.onnx"), str(tmp_path / "b.onnx"),
                                                        "--out", str(tmp_path / "s.onnx")))


@pytest.mark.torch
def test_the_frozen_prefix_and_trainable_suffix_are_the_backbone() -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("efficientnet_lite_pytorch")
    from indexer.training.backbone import load_lite0, prefix, suffix

    net = load_lite0(pretrained=False).eval()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        whole = net.extract_features(x)
        for k in (0, 3, 9, len(net._blocks)):
            assert torch.equal(suffix(net, prefix(net, x, k), k), whole), k
