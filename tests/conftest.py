"""Shared fixtures: real photos from ../shared, real Milvus Lite, real SQLite/PostgreSQL catalogs."""
from __future__ import annotations

import io
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from PIL import Image, ImageEnhance

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
PHOTOS = SHARED / "data" / "photos"
REALDUP = SHARED / "data" / "realdup"
BIN = Path(sys.executable).parent  # the venv's console scripts (dupesift, milvus-lite, celery)
# TestClient addresses the app as http://testserver: a name the Host allow-list (api/guards.py) must know
os.environ.setdefault("DUPESIFT_ALLOWED_HOSTS", "testserver")
PG_ADMIN_URL = os.environ.get("DUPESIFT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def photo_files(n: int, offset: int = 0) -> list[Path]:
    files = sorted(PHOTOS.glob("*.JPEG"))
    if not files:
        pytest.fail(f"no photos under {PHOTOS}: the shared data set is missing")
    return files[offset : offset + n]


def photos_and_a_slow_png(root: Path, n: int, offset: int, png_name: str, seed: int = 0) -> None:
    """``n`` photos ``pNN.jpg`` in ``root`` and ``png_name``, a 64 MP PNG that needs ~0.6 s of CPU to
    decode (the photos ~10 ms): over a 0.3 s DUPESIFT_DECODE_CPU_SECONDS it stops its decoder's process."""
    import numpy as np

    root.mkdir(parents=True)
    for k, src in enumerate(photo_files(n, offset=offset)):
        shutil.copy(src, root / f"p{k:02d}.jpg")
    tiles = np.random.default_rng(seed).integers(0, 256, (161, 161, 3), dtype=np.uint8)
    Image.fromarray(tiles).resize((8000, 8000), Image.NEAREST).save(root / png_name)


def mild_copies(src: Path, out_dir: Path, stem: str) -> list[Path]:
    """Edits any copy detector must see through: re-save, resize, brighten, slight crop, PNG."""
    im = Image.open(src).convert("RGB")
    w, h = im.size
    out_dir.mkdir(parents=True, exist_ok=True)
    edits = {
        f"{stem}_resaved.jpg": (im, "JPEG", {"quality": 70}),
        f"{stem}_small.jpg": (im.resize((w // 2, h // 2)), "JPEG", {"quality": 90}),
        f"{stem}_bright.png": (ImageEnhance.Brightness(im).enhance(1.25), "PNG", {}),
        f"{stem}_crop.webp": (im.crop((int(w * 0.04), int(h * 0.04), int(w * 0.96), int(h * 0.96))), "WEBP", {"quality": 90}),
    }
    paths = []
    for name, (img, fmt, kw) in edits.items():
        p = out_dir / name
        img.save(p, fmt, **kw)
        paths.append(p)
    return paths


@pytest.fixture
def settings_factory(tmp_path: Path):
    """Settings on a fresh data dir (Milvus Lite + SQLite by default)."""
    from indexer.config import Settings

    def make(**overrides) -> Settings:
        overrides.setdefault("data_dir", tmp_path / "data")
        overrides.setdefault("decode_workers", 2)
        return Settings(**overrides)

    return make


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A throwaway PostgreSQL database on 127.0.0.1:5432 (created and dropped around the test)."""
    import psycopg

    name = f"dupesift_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL} ({exc}); start it (see .ci/run)")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served_app(app) -> Iterator[str]:
    """``app`` served by uvicorn on a free loopback port in a thread of this process; yields its base URL once
    ``/health`` answers, and stops the server on exit."""
    import httpx
    import uvicorn

    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
    try:
        yield url
    finally:
        srv.should_exit = True
        th.join(timeout=60)


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"nothing listens on {port}")


def stop_process_group(p: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM a process started with start_new_session=True, then SIGKILL if it lingers."""
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGTERM)
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()


@contextmanager
def milvus_server(data_dir: Path, log: Path | None = None) -> Iterator[str]:
    """A real `milvus-lite server` process on a free loopback port (the Milvus server protocol); yields its URI."""
    port = free_port()
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    p = subprocess.Popen([str(BIN / "milvus-lite"), "server", "--data-dir", str(data_dir),
                          "--host", "127.0.0.1", "--port", str(port)],
                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process_group(p)
        if log:
            out.close()


def jpeg_bytes(im: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@pytest.fixture
def rng() -> random.Random:
    return random.Random(0)


_exit_status = {"code": 0}


def pytest_sessionfinish(session, exitstatus) -> None:
    _exit_status["code"] = int(exitstatus)


def pytest_unconfigure(config) -> None:
    """Exit with pytest's status even if a library left a non-daemon thread behind (seen once in a
    clean-checkout CI run: the suite passed, then the interpreter did not exit). Root cause to find."""
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    if os.environ.get("CI"):
        os._exit(_exit_status["code"])


def packed_as(data: bytes, version: int) -> bytes:
    """Packed link features re-stamped with another ``features.VERSION`` (what an older release kept)."""
    import io

    import numpy as np

    with np.load(io.BytesIO(data)) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["version"] = np.int32(version)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()
