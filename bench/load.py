#!/usr/bin/env python3
"""Concurrent load on a `dupesift serve` process over a large synthetic catalog (issue 28, item 3).

    python bench/load.py [--vectors 100000] [--groups 100000] [--clients 200] [--requests 1000]
                         [--bursts 3] [--work var/bench-api]

The catalog and store are built by ``bench/api.py``'s ``build`` through the real catalog and vector-store APIs
(catalog rows and random unit vectors inserted directly: embedding 100k real photos would take hours on 2 cores),
and reused between runs. 64 of the catalog's photos are pointed at real JPEGs under ``<work>/lib`` (the server's
library root) so that thumbnails decode real files. The server is the real command, `dupesift serve`, on
127.0.0.1. Each row sends ``--requests`` requests from ``--clients`` concurrent clients (one connection each)
and prints p50/p99/max latency, requests/s and the errors by status; the floor row is ``/docs`` (a static page:
the server and client alone, no database). Then ``--bursts`` bursts of ``--clients`` concurrent ``POST /similar`` uploads, with the server's resident
memory after each (does it level off?). Prints one table (Markdown) and writes JSON beside the data.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO))

from sqlalchemy import update

from indexer.catalog import Catalog
from indexer.catalog.models import Image

REAL = 64  # catalog photos backed by real files (thumbnail rows)


def _bench_api():
    spec = importlib.util.spec_from_file_location("bench_api", REPO / "bench" / "api.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def real_files(data: Path, lib: Path) -> list[int]:
    """Point catalog photos 1..REAL at real JPEGs in ``lib`` (size, mtime and hash as an ingest records them)."""
    lib.mkdir(parents=True, exist_ok=True)
    photos = sorted((SHARED / "data" / "photos").glob("*.JPEG"))[:REAL]
    cat = Catalog(f"sqlite:///{data / 'catalog.sqlite3'}")
    try:
        with cat.session() as s:
            for i, src in enumerate(photos, start=1):
                dst = lib / f"real_{i:03d}.jpg"
                if not dst.exists():
                    shutil.copy(src, dst)
                st = dst.stat()
                s.execute(update(Image).where(Image.id == i).values(
                    path=str(dst), bytes=st.st_size, mtime=st.st_mtime,
                    sha256=hashlib.sha256(dst.read_bytes()).hexdigest()))
    finally:
        cat.dispose()
    return list(range(1, len(photos) + 1))


def start(data: Path, lib: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "DUPESIFT_ROOTS": str(lib)}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "dupesift"), "--data-dir", str(data), "serve",
                             "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit("server exited during start-up")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.terminate()
    raise SystemExit("server did not start")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


async def run(base: str, make, n: int, clients: int, timeout: float = 120) -> dict:
    """``n`` requests (``make(i)`` -> (method, path, kwargs)) from ``clients`` concurrent clients."""
    lat: list[float] = []
    status: Counter = Counter()
    queue = iter(range(n))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=timeout) as c:
        async def client() -> None:
            for i in queue:
                method, path, kw = make(i)
                t = time.perf_counter()
                try:
                    r = await c.request(method, path, **kw)
                    status[r.status_code] += 1
                except httpx.HTTPError as exc:
                    status[type(exc).__name__] += 1
                lat.append(time.perf_counter() - t)

        t0 = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        wall = time.perf_counter() - t0
    a = np.array(lat) * 1000
    errors = {str(k): v for k, v in status.items() if k != 200}
    return {"requests": n, "clients": clients, "ok": status[200], "errors": errors,
            "p50_ms": round(float(np.percentile(a, 50)), 1), "p99_ms": round(float(np.percentile(a, 99)), 1),
            "max_ms": round(float(a.max()), 1), "rps": round(n / wall, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vectors", type=int, default=100_000)
    ap.add_argument("--groups", type=int, default=100_000)
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--requests", type=int, default=1000, help="per row")
    ap.add_argument("--bursts", type=int, default=3, help="bursts of --clients concurrent uploads (memory rows)")
    ap.add_argument("--work", type=Path, default=REPO / "var" / "bench-api")
    args = ap.parse_args()
    data = args.work / f"data-{args.vectors}-{args.groups}"
    lib = args.work / "lib"
    _bench_api().build(data, args.vectors, args.groups)
    real = real_files(data, lib)
    port = _bench_api().free_port()
    proc = start(data, lib, port)
    base = f"http://127.0.0.1:{port}"
    rng = np.random.default_rng(2)
    ids = rng.integers(1, args.vectors + 1, size=args.requests)
    gids = rng.integers(1, args.groups + 1, size=args.requests)
    uploads = [p.read_bytes() for p in sorted((SHARED / "data" / "photos").glob("*.JPEG"))[100:120]]
    rows: dict[str, dict] = {}
    try:
        httpx.get(f"{base}/similar", params={"image_id": 1}, timeout=900).raise_for_status()  # search copy loaded
        rows["rss_start"] = {"rss_mb": rss_mb(proc.pid)}
        scenarios = {
            "GET /docs (floor: no database)": lambda i: ("GET", "/docs", {}),
            "GET /health (one count)": lambda i: ("GET", "/health", {}),
            "GET /groups": lambda i: ("GET", "/groups", {}),
            "GET /groups/{id}": lambda i: ("GET", f"/groups/{int(gids[i])}", {}),
            "GET /similar?image_id=": lambda i: ("GET", "/similar", {"params": {"image_id": int(ids[i])}}),
            "GET /images/{id}/thumbnail": lambda i: ("GET", f"/images/{real[i % len(real)]}/thumbnail", {}),
        }
        for name, make in scenarios.items():
            rows[name] = asyncio.run(run(base, make, args.requests, args.clients))
            rows[name]["rss_mb"] = rss_mb(proc.pid)
            print(name, rows[name], flush=True)
        for b in range(1, args.bursts + 1):
            name = f"POST /similar upload, burst {b}"
            rows[name] = asyncio.run(run(base, lambda i: ("POST", "/similar", {
                "files": {"file": ("q.jpg", uploads[i % len(uploads)], "image/jpeg")}}), args.clients, args.clients))
            rows[name]["rss_mb"] = rss_mb(proc.pid)
            print(name, rows[name], flush=True)
    finally:
        proc.terminate()
        proc.wait(30)
    out = {"vectors": args.vectors, "groups": args.groups, "machine": f"{os.cpu_count()} cores", "rows": rows}
    (data / "load.json").write_text(json.dumps(out, indent=1))
    print(f"\n{args.vectors} vectors, {args.groups} groups, {os.cpu_count()} cores; server RSS at start "
          f"{rows['rss_start']['rss_mb']} MB\n")
    print("| route | requests | clients | ok | errors | p50 ms | p99 ms | max ms | req/s | server RSS MB after |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        if name == "rss_start":
            continue
        errs = ", ".join(f"{k}: {v}" for k, v in sorted(r["errors"].items())) or "0"
        print(f"| {name} | {r['requests']} | {r['clients']} | {r['ok']} | {errs} | {r['p50_ms']} | {r['p99_ms']} | "
              f"{r['max_ms']} | {r['rps']} | {r['rss_mb']} |")


if __name__ == "__main__":
    main()
