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
    print(f"200 concurrent requests answered in {took:.1f} s")
    assert took < 25, took  # under the pool's 30 s wait: nothing queued behind a held connection


def _wait_job(url: str, job_id: str) -> dict:
    deadline = time.time() + 180
    while time.time() < deadline:
        job = httpx.get(f"{url}/jobs/{job_id}").json()
        if job["status"] not in ("queued", "running"):
            assert job["status"] == "done", job
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} did not finish")


def _image_id(url: str, path: Path) -> int:
    hits = httpx.post(f"{url}/similar", files={"file": ("q.jpg", path.read_bytes())}, params={"k": 1}).json()
    (hit,) = hits["results"]
    assert hit["path"] == str(path), hit
    return hit["id"]


def test_a_file_swapped_for_a_link_is_not_served(server) -> None:
    url, root, base = server["url"], server["root"], server["base"]
    photo = root / "s0.jpg"
    iid = _image_id(url, photo)
    original = photo.read_bytes()
    secret = base / "secret.txt"
    secret.write_text("root:$6$not-for-the-web\n")
    outside = base / "outside.jpg"
    shutil.copy(photo_files(1, offset=700)[0], outside)
    inside_other = root / "s1.jpg"
    try:
        for target in (secret, outside, inside_other):
            photo.unlink()
            photo.symlink_to(target)
            for what in ("file", "thumbnail?size=64"):
                r = httpx.get(f"{url}/images/{iid}/{what}")
                assert r.status_code == 404, (target.name, what, r.status_code, r.content[:80])
                assert b"not-for-the-web" not in r.content
        photo.unlink()
        photo.write_bytes(outside.read_bytes())  # a regular file again, with other content
        assert httpx.get(f"{url}/images/{iid}/file").status_code == 404
        assert httpx.get(f"{url}/images/{iid}/thumbnail", params={"size": 64}).status_code == 404
    finally:
        if photo.is_symlink() or photo.exists():
            photo.unlink()
        photo.write_bytes(original)
    os.utime(photo, (1, 1))  # same bytes, new mtime: still the indexed photo (its hash says so)
    r = httpx.get(f"{url}/images/{iid}/file")
    assert r.status_code == 200 and r.content == original
    assert httpx.get(f"{url}/images/{iid}/thumbnail", params={"size": 64}).status_code == 200


def test_a_folder_swapped_for_a_link_out_of_the_root_is_not_served(server) -> None:
    url, root, base = server["url"], server["root"], server["base"]
    sub = root / "sub"
    sub.mkdir()
    shutil.copy(photo_files(1, offset=710)[0], sub / "p.jpg")
    r = httpx.post(f"{url}/ingest", json={"paths": [str(sub)]})
    assert r.status_code == 202, r.text
    _wait_job(url, r.json()["job_id"])
    iid = _image_id(url, sub / "p.jpg")
    moved = base / "elsewhere"
    sub.rename(moved)
    sub.symlink_to(moved, target_is_directory=True)  # same bytes, reached through a link out of the root
    try:
        assert httpx.get(f"{url}/images/{iid}/file").status_code == 404
    finally:
        sub.unlink()
        moved.rename(sub)
    assert httpx.get(f"{url}/images/{iid}/file").status_code == 200


def test_dns_rebinding_host_names_are_refused(server) -> None:
    url = server["url"]
    port = url.rsplit(":", 1)[1]
    gid = httpx.get(f"{url}/groups").json()["groups"][0]["id"]
    evil = f"rebind.evil.example:{port}"
    for path in ("/images/1/file", "/groups", "/health", "/ui/groups"):
        r = httpx.get(f"{url}{path}", headers={"Host": evil})
        assert r.status_code == 421 and "DUPESIFT_ALLOWED_HOSTS" in r.text, (path, r.status_code)
        assert ("<h1>" in r.text) == path.startswith("/ui")  # the web UI's refusal is a page, the API's JSON
    # a POST whose Origin matches the attacker's Host passed the old same-origin check
    r = httpx.post(f"{url}/groups/{gid}/resolve", json={"action": "keep_all"},
                   headers={"Host": evil, "Origin": f"http://{evil}"})
    assert r.status_code == 421, r.text
    # another site on this machine (another port) is another origin, even under a loopback name
    r = httpx.post(f"{url}/groups/{gid}/resolve", json={"action": "keep_all"},
                   headers={"Host": f"localhost:{port}", "Origin": "http://localhost:3000"})
    assert r.status_code == 403, r.text
    for name in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "localhost"):
        assert httpx.get(f"{url}/health", headers={"Host": name}).status_code == 200, name
    assert httpx.get(f"{url}/groups/{gid}").json()["resolution"] is None


def test_configured_host_names_are_allowed(tmp_path: Path) -> None:
    from api.guards import HostAllowList

    assert HostAllowList("127.0.0.1").allows("127.0.0.1:8000") and not HostAllowList("127.0.0.1").allows("evil.example")
    hosts = HostAllowList("0.0.0.0", "photos.lan, 192.168.1.5")
    assert hosts.allows("photos.lan:8000") and hosts.allows("192.168.1.5") and not hosts.allows("evil.example:8000")
    assert HostAllowList("0.0.0.0").allows("anything.example")  # token-only, as documented
    assert HostAllowList("192.168.1.5").allows("192.168.1.5:8000")


@pytest.fixture(scope="module")
def token_server(server) -> Iterator[dict]:
    """The same library served on every address, with a token."""
    env = {"DUPESIFT_API_TOKEN": "s3cret-token"}
    stop_process_group(server["proc"])  # Milvus Lite: one process per data dir
    p, url = _start(server["data"], server["root"], "--host", "0.0.0.0", env=env)
    try:
        yield {"url": url, "pid": p.pid, "auth": _auth(env)}
    finally:
        stop_process_group(p)


def _rss_mb(pid: int) -> float:
    line = next(ln for ln in Path(f"/proc/{pid}/status").read_text().splitlines() if ln.startswith("VmRSS"))
    return int(line.split()[1]) / 1024


def test_the_token_is_checked_before_the_body_is_read(token_server) -> None:
    url, pid = token_server["url"], token_server["pid"]
    big = b'{"action": "keep_all", "keep": [' + b"1," * (24 * 1024 * 1024) + b'1]}'  # 49 MB of JSON
    before = _rss_mb(pid)
    for _ in range(5):
        r = httpx.post(f"{url}/groups/1/resolve", content=big, headers={"content-type": "application/json"},
                       timeout=60)
        assert r.status_code == 401, r.text[:200]
    assert _rss_mb(pid) - before < 100, (before, _rss_mb(pid))  # the bodies were never parsed
    # with the token, a JSON body far below the upload limit is already too large
    r = httpx.post(f"{url}/groups/1/resolve", content=big[: 2 * 1024 * 1024] + b"1]}", timeout=60,
                   headers={"content-type": "application/json", **token_server["auth"]})
    assert r.status_code == 413 and "JSON" in r.json()["detail"], r.text[:200]
    ok = httpx.get(f"{url}/groups", headers=token_server["auth"])
    assert ok.status_code == 200


def test_serve_on_every_address_without_a_token_is_a_clear_refusal(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DUPESIFT_API_TOKEN"}
    run = subprocess.run([str(BIN / "dupesift"), "--data-dir", str(tmp_path / "d"), "serve", "--host", "0.0.0.0",
                          "--port", str(free_port())], check=False, capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 2, (run.returncode, run.stderr[-2000:])
    assert run.stderr.startswith("error: ") and "DUPESIFT_API_TOKEN" in run.stderr, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
