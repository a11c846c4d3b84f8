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
from indexer.index import Index
from tests.conftest import free_port, mild_copies, photo_files


def _chunked_upload(port: int, total: int, chunk: int = 256 * 1024) -> tuple[int, bytes]:
    """POST a multipart body of ``total`` bytes with Transfer-Encoding: chunked (no Content-Length), stopping
    when the server answers or drops the connection. Returns (bytes sent, start of the reply)."""
    import select

    boundary = "b0undary"
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sent, head = 0, b""
    try:
        sock.sendall(f"POST /similar HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nTransfer-Encoding: chunked\r\n"
                     f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n".encode())
        part = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.jpg\"\r\n"
                "Content-Type: image/jpeg\r\n\r\n").encode()
        sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
        data = b"\xff" * chunk
        while sent < total:
            if select.select([sock], [], [], 0)[0]:
                break
            sock.sendall(b"%x\r\n%s\r\n" % (len(data), data))
            sent += len(data)
        sock.settimeout(30)
        head = sock.recv(4096)
    except (BrokenPipeError, ConnectionResetError, TimeoutError):  # reset, or still reading: no reply
        pass
    finally:
        sock.close()
    return sent, head


def _out_of_memory_is_503(pid: int, base: str, tmp_path: Path, good: bytes) -> None:
    """With the server's address space capped, a 36 MP transparent PNG (under the 40 MP upload limit) cannot
    be decoded: a 503 with a message, not a 500 or "corrupt"; with the cap lifted the server serves on."""
    import io
    import resource

    import numpy as np
    from PIL import Image

    a = np.zeros((6000, 6000, 4), np.uint8)
    a[..., 3] = (np.arange(6000) % 256)[None, :]
    buf = io.BytesIO()
    Image.fromarray(a, "RGBA").save(buf, "PNG")
    vm = int(next(ln for ln in Path(f"/proc/{pid}/status").read_text().splitlines()
                  if ln.startswith("VmSize")).split()[1]) * 1024
    soft, hard = resource.prlimit(pid, resource.RLIMIT_AS)
    resource.prlimit(pid, resource.RLIMIT_AS, (vm + 96 * 1024 * 1024, hard))  # the decode needs ~250 MB
    try:
        r = httpx.post(f"{base}/similar", files={"file": ("a.png", buf.getvalue(), "image/png")}, timeout=60)
    finally:
        resource.prlimit(pid, resource.RLIMIT_AS, (soft, hard))
    assert r.status_code == 503 and "memory" in r.json()["detail"], r.text
    ok = httpx.post(f"{base}/similar", files={"file": ("q.png", good, "image/png")}, timeout=60)
    assert ok.status_code == 200, ok.text


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
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "dupesift", "--data-dir", str(data), "serve", "--port", str(port)],
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
        sent, head = _chunked_upload(port, total=200 * 1024 * 1024)
        assert sent < 100 * 1024 * 1024, f"the server read {sent} bytes of a chunked upload over the 50 MB limit"
        assert head == b"" or head.startswith(b"HTTP/1.1 413"), head  # the reply can be lost to the reset
        _out_of_memory_is_503(proc.pid, base, tmp_path, copies[2].read_bytes())
    finally:
        proc.terminate()
        proc.wait(timeout=30)
