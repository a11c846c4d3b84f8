"""`dupesift serve` as a real server process: /health, /groups, /similar by upload and by id."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from indexer.config import Settings
from indexer.pipeline import Index
from tests.conftest import mild_copies, photo_files


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_health_groups_similar(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    src = photo_files(1, offset=600)[0]
    root.mkdir()
    shutil.copy(src, root / "orig.jpg")
    copies = mild_copies(src, root, "c")
    for n, other in enumerate(photo_files(3, offset=700)):
        shutil.copy(other, root / f"other{n}.jpg")
    data = tmp_path / "data"
    with Index(Settings(data_dir=data)) as index:
        index.ingest([str(root)])
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "indexer.cli", "--data-dir", str(data), "serve", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=dict(os.environ))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 240  # model load + Milvus Lite start; slow on a loaded 2-core machine
        while time.time() < deadline:
            assert proc.poll() is None, proc.stdout.read().decode(errors="replace")
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        health = httpx.get(f"{base}/health").json()
        assert health["status"] == "ok" and health["images"] == 8
        groups = httpx.get(f"{base}/groups").json()["groups"]
        assert len(groups) == 1 and len(groups[0]["members"]) == 5
        r = httpx.post(f"{base}/similar", files={"file": ("q.png", copies[2].read_bytes(), "image/png")}, params={"k": 5})
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        assert results[0]["similarity"] > 0.999 and sum(x["is_duplicate"] for x in results) == 5
        by_id = httpx.get(f"{base}/similar", params={"image_id": results[0]["id"], "k": 3}).json()["results"]
        assert all(x["id"] != results[0]["id"] for x in by_id) and by_id[0]["is_duplicate"]
        bad = httpx.post(f"{base}/similar", files={"file": ("x.jpg", b"not an image", "image/jpeg")})
        assert bad.status_code == 415 and "not a recognised image" in bad.json()["detail"]
        assert httpx.get(f"{base}/similar", params={"image_id": 999999}).status_code == 404
    finally:
        proc.terminate()
        proc.wait(timeout=30)
