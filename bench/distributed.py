"""Files/s through the queue (1 and 2 CPU workers) against in-process ingest, on the same folder.

Real engines: Redis broker (127.0.0.1:6379), PostgreSQL catalog (a fresh database per run), a
milvus-lite server (fresh collection per run). Worker start-up is not timed; the clock runs from
enqueue to the job's `done` (scan, every batch, link and groups).

    python bench/distributed.py [--library var/bench-dist] [--dup-sources 20] [--copies 5]
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
BIN = Path(sys.executable).parent
PG_ADMIN = os.environ.get("DUPESIFT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("DUPESIFT_TEST_REDIS", "redis://127.0.0.1:6379/0")


def make_library(out: Path, dup_sources: int, copies: int) -> Path:
    lib = out / "library"
    if not lib.is_dir():
        subprocess.run([sys.executable, str(REPO.parent / "shared" / "eval" / "make_library.py"), str(out),
                        "--split", "eval", "--dup-sources", str(dup_sources), "--copies", str(copies)], check=True)
    return lib


def pg_db() -> str:
    import psycopg

    name = f"dupesift_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_db(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def db_url(name: str) -> str:
    return f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}"


def in_process(lib: Path, milvus: str, work: Path) -> tuple[float, int]:
    from indexer.config import Settings
    from indexer.index import Index

    db = pg_db()
    try:
        st = Settings(data_dir=work / "inproc", database_url=db_url(db), milvus_uri=milvus, collection="bench_inproc")
        with Index(st) as index:
            t = time.perf_counter()
            s = index.ingest([str(lib)])
            return time.perf_counter() - t, s.seen
    finally:
        drop_db(db)


def queued(lib: Path, milvus: str, work: Path, n_workers: int) -> tuple[float, int, dict]:
    db = pg_db()
    prefix = f"dupesift-bench-{uuid.uuid4().hex[:6]}:"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUPESIFT_")}
    env.update(DUPESIFT_DATA_DIR=str(work / f"q{n_workers}"), DUPESIFT_DATABASE_URL=db_url(db),
               DUPESIFT_MILVUS_URI=milvus, DUPESIFT_BROKER_URL=REDIS, DUPESIFT_QUEUE_PREFIX=prefix,
               DUPESIFT_COLLECTION=f"bench_q{n_workers}", PYTHONUNBUFFERED="1")
    if n_workers > 1:
        env["DUPESIFT_ONNX_THREADS"] = str(max(1, (os.cpu_count() or 2) // n_workers))
    procs = []
    try:
        subprocess.run([str(BIN / "dupesift"), "db", "upgrade"], env=env, check=True, capture_output=True)
        for k in range(n_workers):
            log = work / f"q{n_workers}-w{k}.log"
            with open(log, "w") as out:  # the worker keeps its own copy of the descriptor
                procs.append((subprocess.Popen([str(BIN / "dupesift"), "worker", "-c", "1", "-n", f"b{k}@%h"],
                                               env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True),
                              log))
        for p, log in procs:
            while "ready." not in log.read_text() or "index open" not in log.read_text():
                if p.poll() is not None:
                    raise RuntimeError(log.read_text()[-2000:])
                time.sleep(0.3)
        os.environ.update(env)  # the client below talks to this run's broker prefix and catalog
        for mod in [m for m in sys.modules if m.startswith("workers")]:
            del sys.modules[mod]
        from indexer.catalog import Catalog
        from indexer.jobs import create_job, get_job
        from workers.tasks import scan

        cat = Catalog(db_url(db))
        t = time.perf_counter()
        job_id = create_job(cat, "ingest", {"paths": [str(lib)]})
        scan.apply_async(kwargs={"job_id": job_id})
        while (job := get_job(cat, job_id))["status"] not in ("done", "failed"):
            time.sleep(0.1)
        elapsed = time.perf_counter() - t
        cat.dispose()
        assert job["status"] == "done", job
        return elapsed, job["summary"]["seen"], job
    finally:
        for p, _ in procs:
            os.killpg(p.pid, signal.SIGTERM)
        for p, _ in procs:
            p.wait(30)
        import redis

        r = redis.Redis.from_url(REDIS)
        keys = list(r.scan_iter(f"{prefix}*"))
        if keys:
            r.delete(*keys)
        drop_db(db)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--library", type=Path, default=REPO / "var" / "bench-dist")
    ap.add_argument("--dup-sources", type=int, default=20)
    ap.add_argument("--copies", type=int, default=5)
    args = ap.parse_args()
    lib = make_library(args.library, args.dup_sources, args.copies)
    work = args.library / "work"
    work.mkdir(parents=True, exist_ok=True)
    port = 19600 + os.getpid() % 300
    milvus = subprocess.Popen([str(BIN / "milvus-lite"), "server", "--data-dir", str(work / f"milvus-{port}"),
                               "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        time.sleep(3)
        rows = []
        t, n = in_process(lib, uri, work)
        rows.append(("in-process ingest (decode pool + 1 ONNX session)", n, t))
        for w in (1, 2):
            t, n, _ = queued(lib, uri, work, w)
            rows.append((f"queue, {w} CPU worker{'s' if w > 1 else ''} (concurrency 1 each)", n, t))
    finally:
        os.killpg(milvus.pid, signal.SIGTERM)
        milvus.wait(20)
    base = rows[0][1] / rows[0][2]
    print(f"{'mode':<52} {'files':>6} {'s':>7} {'files/s':>8} {'vs in-process':>14}")
    for name, n, t in rows:
        print(f"{name:<52} {n:>6} {t:>7.1f} {n / t:>8.1f} {(n / t) / base - 1:>+13.0%}")


if __name__ == "__main__":
    main()
