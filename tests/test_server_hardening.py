"""`dupesift serve` as a real server under load and attack (issue 28): concurrency, symlink swaps, DNS
rebinding, bodies before the token, the start-up refusal."""
from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from indexer.config import Settings
from indexer.index import Index
from tests.conftest import BIN, free_port, mild_copies, photo_files, stop_process_group


def _start(data: Path, root: Path, *args: str, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = open(data / f"serve-{port}.log", "w")  # noqa: SIM115 - the process writes it until stopped
    p = subprocess.Popen([str(BIN / "dupesift"), "--data-dir", str(data), "serve", "--port", str(port), *args],
                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                         env={**os.environ, "DUPESIFT_ROOTS": str(root), **(env or {})})
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=2, headers=_auth(env)).status_code == 200:
                return p, base
        except httpx.TransportError:
            pass
        if p.poll() is not None:
            break
        time.sleep(0.3)
    stop_process_group(p)
    raise AssertionError((data / f"serve-{port}.log").read_text()[-3000:])


def _auth(env: dict | None) -> dict:
    token = (env or {}).get("DUPESIFT_API_TOKEN")
    return {"Authorization": f"Bearer {token}"} if token else {}


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[dict]:
    """A served library: a photo with four copies and two singles, ingested before the server starts."""
    base = tmp_path_factory.mktemp("serve")
    root = base / "lib"
    root.mkdir()
    src, *singles = photo_files(3, offset=640)
    shutil.copy(src, root / "orig.jpg")
    mild_copies(src, root, "c")
    for n, s in enumerate(singles):
        shutil.copy(s, root / f"s{n}.jpg")
    data = base / "data"
    with Index(Settings(data_dir=data, decode_workers=1)) as index:
        index.ingest([str(root)])
    p, url = _start(data, root)
    try:
        yield {"url": url, "root": root, "data": data, "base": base, "proc": p}
    finally:
        stop_process_group(p)


async def _burst(requests: list[tuple[str, str]], timeout: float = 120) -> list[int | str]:
    """Send every (method, url) at once; the status of each, or the transport error's name."""
    limits = httpx.Limits(max_connections=len(requests), max_keepalive_connections=len(requests))
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as c:
        async def one(method: str, url: str) -> int | str:
            try:
                return (await c.request(method, url)).status_code
            except httpx.HTTPError as exc:
                return type(exc).__name__
        return await asyncio.gather(*(one(m, u) for m, u in requests))


def test_200_concurrent_group_listings_all_answer(server) -> None:
    url = server["url"]
    gid = httpx.get(f"{url}/groups").json()["groups"][0]["id"]
    reqs = [("GET", f"{url}/groups")] * 150 + [("GET", f"{url}/groups/{gid}")] * 50
    t = time.perf_counter()
    statuses = asyncio.run(_burst(reqs))
    took = time.perf_counter() - t
    bad = [s for s in statuses if s != 200]
    assert not bad, (len(bad), sorted(set(map(str, bad))), f"{took:.1f} s")
    assert took < 25, took  # under the pool's 30 s wait: nothing queued behind a held connection
