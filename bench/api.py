#!/usr/bin/env python3
"""API latency on the embedded default (Milvus Lite + SQLite) at 100k embeddings and 100k groups.

    python bench/api.py [--vectors 100000] [--groups 100000] [--work var/bench-api] [--concurrency 4]

Builds (once, then reuses) a store of N synthetic unit vectors and a catalog of G duplicate groups
(2 members each), starts `uvicorn` on 127.0.0.1 in a subprocess, and drives a bounded loopback load:
/similar by upload (real photos, so decode + embed + search), /similar by id (search only), and
/groups pages (first page per sort, plus a deep cursor walk). Prints one table and writes JSON.
Targets (2-core machine): /similar p99 < 150 ms by upload, < 50 ms by id; /groups page < 100 ms.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO))

from sqlalchemy import func, insert, select

from indexer.catalog.models import DupGroup, Image, ImageStatus, utcnow
from indexer.config import Settings
from indexer.index import Index


def build(data: Path, n_vec: int, n_groups: int) -> None:
    """N vectors (ids 1..N) in Milvus Lite; 2*G catalog images; G groups of (2i-1, 2i)."""
    with Index(Settings(data_dir=data)) as index:
        have = index.store.count()
        with index.catalog.session() as s:
            n_img = s.scalar(select(func.count()).select_from(Image)) or 0
        n_img_want = max(n_vec, 2 * n_groups)
        if have >= n_vec and n_img >= n_img_want:
            print(f"reusing {data}: {have} vectors, {n_img} images", flush=True)
            return
        t = time.perf_counter()
        rng = np.random.default_rng(0)
        dim, model = index.spec.dim, index.spec.model_id
        for start in range(1, n_vec + 1, 5000):
            ids = list(range(start, min(start + 5000, n_vec + 1)))
            v = rng.standard_normal((len(ids), dim)).astype(np.float32)
            index.store.upsert(ids, v / np.linalg.norm(v, axis=1, keepdims=True))
        index.store.activate()
        print(f"stored {n_vec} vectors (dim {dim}) in {time.perf_counter() - t:.0f} s", flush=True)
        t = time.perf_counter()
        now = utcnow()
        with index.catalog.session() as s:
            for start in range(1, n_groups + 1, 10000):
                gs = range(start, min(start + 10000, n_groups + 1))
                s.execute(insert(DupGroup), [{"id": g, "size": 2, "keeper_id": 2 * g - 1, "keeper_reason": "largest image",
                                                  "max_distance": 0.05, "total_bytes": 3_000_000 + g % 977 * 1000,
                                                  "reclaimable_bytes": 1_000_000 + (g * 7919) % 1_000_000,
                                                  "resolution": "keep_all" if g % 10 == 0 else None, "updated_at": now}
                                             for g in gs])
            for start in range(1, n_img_want + 1, 20000):
                ids = range(start, min(start + 20000, n_img_want + 1))
                s.execute(insert(Image), [{
                    "id": i, "path": f"/bench/lib/{i // 1000:04d}/img_{i:07d}.jpg", "bytes": 1_500_000, "mtime": 1.7e9,
                    "sha256": hashlib.sha256(str(i).encode()).hexdigest(), "width": 4000, "height": 3000, "format": "JPEG",
                    "status": ImageStatus.indexed, "model_id": model, "linked": True,
                    "group_id": (i + 1) // 2 if (i + 1) // 2 <= n_groups else None, "similarity_to_keeper": 0.97,
                    "first_seen_at": now, "indexed_at": now} for i in ids])
        print(f"catalog: {n_img_want} images, {n_groups} groups in {time.perf_counter() - t:.0f} s", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data: Path, port: int) -> subprocess.Popen:
    code = ("import uvicorn; from api.main import create_app; from indexer.config import Settings; "
            f"uvicorn.run(create_app(Settings(data_dir={str(data)!r})), host='127.0.0.1', port={port}, "
            "log_level='warning')")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO)
    deadline = time.time() + 300
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit("server exited during start-up")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.terminate()
    raise SystemExit("server did not start")


def load(fn, n: int, concurrency: int, max_seconds: float) -> dict:
    """Run ``fn(i)`` n times on ``concurrency`` threads (stops early after max_seconds)."""
    lat: list[float] = []
    errors = 0
    t0 = time.perf_counter()

    def one(i: int) -> None:
        nonlocal errors
        if time.perf_counter() - t0 > max_seconds:
            return
        t = time.perf_counter()
        ok = fn(i)
        lat.append(time.perf_counter() - t)
        errors += 0 if ok else 1

    for i in range(min(3, n)):  # warm-up, not counted
        fn(i)
    lat.clear()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as ex:
        list(ex.map(one, range(n)))
    wall = time.perf_counter() - t0
    a = np.array(lat) * 1000
    return {"requests": len(lat), "errors": errors, "p50_ms": round(float(np.percentile(a, 50)), 1),
            "p99_ms": round(float(np.percentile(a, 99)), 1), "max_ms": round(float(a.max()), 1),
            "rps": round(len(lat) / wall, 1), "concurrency": concurrency}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vectors", type=int, default=100_000)
    ap.add_argument("--groups", type=int, default=100_000)
    ap.add_argument("--work", type=Path, default=REPO / "var" / "bench-api")
    ap.add_argument("--concurrency", type=int, default=4, help="clients for the throughput run (latency runs use 1)")
    ap.add_argument("--requests", type=int, default=300, help="per /similar scenario")
    ap.add_argument("--max-seconds", type=float, default=60)
    ap.add_argument("--deep-pages", type=int, default=200, help="pages walked by cursor for /groups")
    args = ap.parse_args()
    data = args.work / f"data-{args.vectors}-{args.groups}"
    build(data, args.vectors, args.groups)
    port = free_port()
    proc = start_server(data, port)
    base = f"http://127.0.0.1:{port}"
    out: dict = {"vectors": args.vectors, "groups": args.groups, "machine": f"{os.cpu_count()} cores"}
    try:
        photos = sorted((SHARED / "data" / "photos").glob("*.JPEG"))[:20]
        uploads = [p.read_bytes() for p in photos]
        clients = [httpx.Client(base_url=base, timeout=30) for _ in range(args.concurrency)]
        rng = np.random.default_rng(1)
        ids = rng.integers(1, args.vectors + 1, size=args.requests + 10)

        def by_upload(i: int) -> bool:
            r = clients[i % len(clients)].post("/similar", params={"k": 10},
                                               files={"file": ("q.jpg", uploads[i % len(uploads)], "image/jpeg")})
            return r.status_code == 200

        def by_id(i: int) -> bool:
            return clients[i % len(clients)].get("/similar", params={"image_id": int(ids[i]), "k": 10}).status_code == 200

        t = time.perf_counter()  # the server loads its search copy at start-up; wait for it
        httpx.get(f"{base}/similar", params={"image_id": 1, "k": 10}, timeout=900).raise_for_status()
        out["first_similar_s"] = round(time.perf_counter() - t, 1)
        print(f"first /similar (search copy ready) after {out['first_similar_s']} s", flush=True)
        for conc in sorted({1, args.concurrency}):  # latency alone, then throughput under load
            sfx = "" if conc == 1 else f"_c{conc}"
            out["similar_by_id" + sfx] = load(by_id, args.requests, conc, args.max_seconds)
            print("by id", conc, out["similar_by_id" + sfx], flush=True)
            out["similar_by_upload" + sfx] = load(by_upload, args.requests, conc, args.max_seconds)
            print("by upload", conc, out["similar_by_upload" + sfx], flush=True)
        c = clients[0]
        first: dict[str, list[float]] = {}
        for sort in ("size", "reclaimable", "newest"):
            for unresolved in (False, True):
                key = f"{sort}{'+unresolved' if unresolved else ''}"
                first[key] = []
                for _ in range(10):
                    t = time.perf_counter()
                    r = c.get("/groups", params={"sort": sort, "unresolved": unresolved, "limit": 50})
                    first[key].append((time.perf_counter() - t) * 1000)
                    assert r.status_code == 200 and r.json()["count"] == 50, r.text[:200]
        deep, cursor = [], None
        for _ in range(args.deep_pages):
            t = time.perf_counter()
            r = c.get("/groups", params={"sort": "reclaimable", "limit": 50} | ({"cursor": cursor} if cursor else {}))
            deep.append((time.perf_counter() - t) * 1000)
            cursor = r.json()["next_cursor"]
        ui = []
        for _ in range(10):
            t = time.perf_counter()
            assert c.get("/ui/groups", params={"limit": 48}).status_code == 200
            ui.append((time.perf_counter() - t) * 1000)
        allf = np.array([x for v in first.values() for x in v])
        out["groups_first_page"] = {k: round(float(np.median(v)), 1) for k, v in first.items()}
        out["groups_page"] = {"p50_ms": round(float(np.percentile(allf, 50)), 1),
                              "p99_ms": round(float(np.percentile(allf, 99)), 1)}
        out["groups_deep_walk"] = {"pages": len(deep), "p50_ms": round(float(np.percentile(deep, 50)), 1),
                                   "p99_ms": round(float(np.percentile(deep, 99)), 1),
                                   "last_page_ms": round(deep[-1], 1)}
        out["ui_groups_page_p50_ms"] = round(float(np.median(ui)), 1)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    print()
    print("| endpoint | requests | p50 ms | p99 ms | req/s | target |")
    print("|---|---|---|---|---|---|")
    for key, label, target in (("similar_by_upload", "POST /similar (upload)", "p99 < 150 ms"),
                               ("similar_by_id", "GET /similar?image_id", "p99 < 50 ms")):
        for sfx in ("", f"_c{args.concurrency}"):
            if key + sfx in out:
                r = out[key + sfx]
                print(f"| {label}, {r['concurrency']} client(s) | {r['requests']} | {r['p50_ms']} | {r['p99_ms']} | "
                      f"{r['rps']} | {target} |")
    g, d = out["groups_page"], out["groups_deep_walk"]
    print(f"| GET /groups first page (6 sort/filter combos x10) | 60 | {g['p50_ms']} | {g['p99_ms']} | - | < 100 ms |")
    print(f"| GET /groups cursor walk ({d['pages']} pages) | {d['pages']} | {d['p50_ms']} | {d['p99_ms']} | - | < 100 ms |")
    print(f"| GET /ui/groups (HTML, 48 groups) | 10 | {out['ui_groups_page_p50_ms']} | - | - | |")
    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / "results.json").write_text(json.dumps(out, indent=2))
    print(f"\n{args.work / 'results.json'}")


if __name__ == "__main__":
    main()
