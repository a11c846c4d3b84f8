"""bench/gpu.py --quick on a machine without CUDA: the CPU rows have figures, each GPU part says what it lacks."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_bench_quick_on_cpu(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""}  # as on a CPU box, even on a GPU one
    out = subprocess.run([sys.executable, str(REPO / "bench" / "gpu.py"), "--quick", "--work", str(tmp_path),
                          "--part-timeout", "50"], capture_output=True, text=True, timeout=170, env=env, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "| part | device / provider | setting | figure | unit | note |" in out.stdout
    result = json.loads((tmp_path / "gpu.json").read_text())
    assert result["quick"] is True
    assert result["parts"] == {p: "ok" for p in ("embed", "decode", "pairs", "fp16", "ingest")}, result["parts"]
    rows = result["rows"]

    def figures(part: str, device: str) -> list[float]:
        return [r["figure"] for r in rows if r["part"] == part and r["device"].startswith(device)
                and r["figure"] is not None]

    def skipped(part: str) -> list[str]:
        return [r["note"] for r in rows if r["part"] == part and r["note"].startswith("skipped: ")]

    # the CPU floors, measured in this run
    assert len(figures("embed", "onnxruntime CPU (floor)")) == 2
    assert all(f > 0 for f in figures("embed", "onnxruntime CPU (floor)"))
    assert figures("decode", "CPU, ") and figures("decode", "CPU, ")[0] > 0
    assert len(figures("pairs", "CPU, ")) == 2
    (ingest,) = [r for r in rows if r["part"] == "ingest"]
    assert ingest["figure"] > 0 and ingest["unit"] == "files/s" and ingest["device"] == "Index.ingest [CPU]"
    # every GPU path says why it did not run, naming what is missing
    embed_skips = " ".join(skipped("embed"))
    assert "CUDAExecutionProvider" in embed_skips and "TensorrtExecutionProvider" in embed_skips
    assert any("CUDA" in s for s in skipped("decode"))  # nvJPEG needs torch with a CUDA device
    assert any("faiss" in s and "GPU" in s for s in skipped("pairs"))
    assert any("CUDA" in s for s in skipped("pairs"))
    fp16 = [r for r in rows if r["part"] == "fp16"]
    import importlib.util

    if importlib.util.find_spec("onnxconverter_common") is None:  # the gpu extra is not in the test install
        assert fp16 and all(r["note"].startswith("skipped: needs onnxconverter_common") for r in fp16)
    else:
        assert fp16 and all(r["figure"] is not None or r["note"].startswith("skipped: ") for r in fp16)
