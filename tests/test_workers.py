"""The queue path with real processes: Redis broker, PostgreSQL catalog, a milvus-lite server, and two
`dupesift worker` processes. One cluster per module (starting workers costs seconds on 2 cores)."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path

import pytest
from sqlalchemy import func, select

from indexer.catalog import Image, ImageStatus
from indexer.config import Settings
from indexer.index import Index
from indexer.jobs import job_view, to_ranges
from tests.conftest import (
    BIN,
    PG_ADMIN_URL,
    free_port,
    mild_copies,
    milvus_server,
    photo_files,
    photos_and_a_slow_png,
    stop_process_group,
    wait_port,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
REDIS_URL = os.environ.get("DUPESIFT_TEST_REDIS", "redis://127.0.0.1:6379/0")


# -- unit tests (no services) -----------------------------------------------------------------------
def test_id_ranges_and_job_view() -> None:
    assert to_ranges([5, 1, 2, 3, 9, 10, 3]) == [[1, 3], [5, 5], [9, 10]]
    assert to_ranges([]) == []
    from datetime import datetime, timedelta

    from indexer.catalog import Job

    now = datetime.now(UTC)
    job = Job(id="x", kind="ingest", status="running", params={"paths": ["/p"]}, total=100, done=40, failed=10,
              started_at=now - timedelta(seconds=10), updated_at=now, created_at=now)
    v = job_view(job)
    assert 4.5 < v["files_per_s"] <= 5.0 and 9 < v["eta_s"] < 11.5 and v["paths"] == ["/p"]


def test_schedule_and_missing_broker(tmp_path: Path) -> None:
    from workers.schedule import parse_hhmm

    assert parse_hhmm("03:00") == (3, 0) and parse_hhmm("23:59") == (23, 59)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUPESIFT_")}
    env["DUPESIFT_DATA_DIR"] = str(tmp_path)
    r = subprocess.run([sys.executable, "-c", "import workers.app"], env=env, capture_output=True, text=True,
                       check=False)
    assert r.returncode != 0 and "DUPESIFT_BROKER_URL is not set" in r.stderr  # no silent eager mode
    r = subprocess.run([str(BIN / "dupesift"), "worker"], env=env, capture_output=True, text=True,
                       check=False)
    assert r.returncode == 2 and "DUPESIFT_BROKER_URL" in r.stderr
    env.update(DUPESIFT_BROKER_URL=REDIS_URL, DUPESIFT_REINDEX_AT="04:30")
    code = ("from workers.app import app; import workers.tasks as t; s = app.conf.beat_schedule['nightly-reindex'];"
            "print(s['task'], s['schedule'].hour, s['schedule'].minute, app.conf.task_acks_late,"
            " app.conf.task_reject_on_worker_lost, t.embed_batch.acks_late, t.embed_batch.reject_on_worker_lost,"
            " app.amqp.router.route({}, 'dupesift.embed_batch')['queue'].name)")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["dupesift.reindex", "{4}", "{30}", "True", "True", "True", "True", "gpu"]


def test_fp16_copy_is_cached_by_the_source_files_content(tmp_path: Path) -> None:
    """A model replaced under the same name, even by a file with an older mtime (a copy that kept its
    timestamp), never gets the old fp16 copy; the copy keeps its source's model id."""
    from importlib.util import find_spec

    from indexer.config import DEFAULT_MODEL, MODELS_DIR
    from indexer.embedder import OnnxEmbedder
    from workers.gpu import fp16_cache_path, fp16_model

    src, cache = tmp_path / "models" / "model.onnx", tmp_path / "cache"
    src.parent.mkdir()
    cache.mkdir()
    shutil.copy(DEFAULT_MODEL, src)
    cached = fp16_cache_path(src, src.read_bytes(), cache)
    shutil.copy(DEFAULT_MODEL, cached)  # stands in for a finished conversion (the converter is the gpu extra's)
    got, weights = fp16_model(src, cache)
    assert got == cached
    assert OnnxEmbedder(got, weights=weights).spec.model_id == OnnxEmbedder(src).spec.model_id

    shutil.copy(MODELS_DIR / "dupesift-effnetlite0-imagenet.onnx", src)  # another model, same file name
    old = cached.stat().st_mtime - 3600
    os.utime(src, (old, old))
    assert fp16_cache_path(src, src.read_bytes(), cache) != cached
    if find_spec("onnxconverter_common") is None:
        with pytest.raises(ImportError):  # a cache miss: it converts (and cannot here), never serves the old copy
            fp16_model(src, cache)
    else:
        got, weights = fp16_model(src, cache)
        assert got != cached and weights == OnnxEmbedder(src).spec.weights


# -- the cluster ------------------------------------------------------------------------------------
@dataclass
class Cluster:
    root: Path
    env: dict
    settings: Settings
    workers: list = field(default_factory=list)  # (Popen, log path)
    index: Index | None = None

    def cli(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "dupesift"), *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=False)

    def start_worker(self, name: str, env: dict | None = None) -> None:
        log = self.root / f"{name}.log"
        f = open(log, "w")  # noqa: SIM115 - closed with the process
        p = subprocess.Popen([str(BIN / "dupesift"), "worker", "-c", "1", "-n", f"{name}@%h", "-l", "info"],
                             env=env or self.env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        self.workers.append((p, log, f))

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.time() + timeout
        for p, log, _ in self.workers:
            while "ready." not in log.read_text() or "index open" not in log.read_text():
                assert p.poll() is None, log.read_text()[-3000:]
                assert time.time() < deadline, log.read_text()[-3000:]
                time.sleep(0.3)

    def log(self, n: int) -> str:
        return self.workers[n][1].read_text()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    import psycopg
    import redis

    root = tmp_path_factory.mktemp("cluster")
    db = f"dupesift_workers_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{db}"')
    db_url = f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{db}"
    prefix = f"dupesift-test-{uuid.uuid4().hex[:8]}:"
    with milvus_server(root / "milvus", root / "milvus.log") as milvus_uri:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DUPESIFT_")}
        env.update(DUPESIFT_DATA_DIR=str(root / "data"), DUPESIFT_DATABASE_URL=db_url,
                   DUPESIFT_MILVUS_URI=milvus_uri, DUPESIFT_BROKER_URL=REDIS_URL,
                   DUPESIFT_QUEUE_PREFIX=prefix, DUPESIFT_BATCH_SIZE="8", DUPESIFT_ONNX_THREADS="1",
                   DUPESIFT_VISIBILITY_TIMEOUT="60", PYTHONUNBUFFERED="1")
        c = Cluster(root, env, Settings(data_dir=root / "data", database_url=db_url, milvus_uri=milvus_uri,
                                        decode_workers=1))
        try:
            r = c.cli("db", "upgrade")  # the compose `migrations` service: before any worker starts
            assert r.returncode == 0, r.stderr
            c.start_worker("w1")
            c.start_worker("w2")
            c.wait_ready()
            c.index = Index(c.settings)  # a third Milvus client beside the two workers
            yield c
        finally:
            if c.index is not None:
                c.index.close()
            for p, _, f in c.workers:
                stop_process_group(p, timeout=20)
                f.close()
            r = redis.Redis.from_url(REDIS_URL)
            keys = list(r.scan_iter(f"{prefix}*"))
            if keys:
                r.delete(*keys)
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def make_folder(root: Path, offset: int, n_dup: int = 2, n_single: int = 4) -> Path:
    """n_dup photos with 4 edited copies each, n_single photos alone, one file that is not an image."""
    photos = photo_files(n_dup + n_single, offset=offset)
    root.mkdir(parents=True)
    for k, src in enumerate(photos[:n_dup]):
        shutil.copy(src, root / f"orig{k}.jpg")
        mild_copies(src, root / f"edits{k}", f"copy{k}")
    for k, src in enumerate(photos[n_dup:]):
        shutil.copy(src, root / f"single{k}.jpg")
    (root / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return root


def groups_under(index: Index, folder: Path) -> list[list[str]]:
    pre = str(folder) + os.sep
    out = []
    for g in index.groups():
        paths = sorted(m["path"] for m in g["members"] if m["path"].startswith(pre))
        if paths:
            out.append(paths)
    return sorted(out)


def check_consistent(c: Cluster) -> None:
    """Every catalog row is final, and Milvus holds exactly the indexed ids (nothing lost or doubled)."""
    with c.index.catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(Image).where(Image.status == ImageStatus.pending)) == 0
        indexed = set(s.scalars(select(Image.id).where(Image.status == ImageStatus.indexed)))
    assert c.index.store.count() == len(indexed)
    assert set(c.index.store.get(sorted(indexed))) == indexed


def follow(c: Cluster, job_id: str, timeout: float = 180) -> dict:
    from workers.client import follow as _follow

    return _follow(c.index.catalog, job_id, timeout=timeout)


# -- through the queue ------------------------------------------------------------------------------
def test_queue_ingest_matches_embedded(cluster: Cluster, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "lib", offset=610)
    r = cluster.cli("ingest", "--queue", "--json", str(folder))
    assert r.returncode == 0, r.stderr + r.stdout
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["status"] == "done" and summary["seen"] == 15
    assert summary["indexed"] == 14 and summary["failed"][0]["path"].endswith("broken.jpg")
    queued = groups_under(cluster.index, folder)
    with Index(Settings(data_dir=tmp_path / "embedded", decode_workers=1)) as emb:
        emb.ingest([str(folder)])
        embedded = groups_under(emb, folder)
    assert queued == embedded and len(queued) == 2 and all(len(g) == 5 for g in queued)
    # both workers took batches; jobs lists the job with its rate
    assert "embed_batch" in cluster.log(0) and "embed_batch" in cluster.log(1)
    jobs = json.loads(cluster.cli("jobs", "--json").stdout)["jobs"]
    j = next(j for j in jobs if j["id"] == summary["job_id"])
    assert j["status"] == "done" and j["done"] == 14 and j["failed"] == 1 and j["files_per_s"] > 0
    check_consistent(cluster)


def _pool_children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(x) for x in (task / "children").read_text().split()]
    return out


N_BIG = 32


def _job_id(cli: subprocess.Popen) -> str:
    out, err = cli.communicate(timeout=120)
    assert cli.returncode == 0, err
    return json.loads(out)["job_id"]


def _kill_a_running_batch(cluster: Cluster, folder: Path) -> tuple[str, str, int, list[int]] | None:
    """Queue ``folder``; each time a worker starts a batch, freeze its pool process (SIGSTOP) and
    look at the batch: still uncommitted -> SIGKILL it there and return (job id, task id, worker
    index, batch ids); already committed -> let it go on (SIGCONT) and wait for the next batch."""
    from indexer.jobs import get_job

    log_before = [len(cluster.log(0)), len(cluster.log(1))]
    # Watched while the CLI still runs: on a loaded machine the workers may finish the job before
    # the CLI process has even exited.
    cli = subprocess.Popen([str(BIN / "dupesift"), "ingest", "--queue", "--no-wait", "--json", str(folder)],
                           env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    job_id = None
    deadline = time.time() + 120
    seen: set[str] = set()
    while time.time() < deadline:
        for n in (0, 1):
            log = cluster.log(n)[log_before[n]:]
            for m in re.finditer(r"embed_batch\[([0-9a-f-]+)\]: job \S+ batch start, ids (\[\[.*\]\])", log):
                task_id = m.group(1)
                if task_id in seen or f"{task_id}] succeeded" in log:
                    continue
                seen.add(task_id)
                children = _pool_children(cluster.workers[n][0].pid)  # -c 1: the one running it
                for pid in children:
                    os.kill(pid, signal.SIGSTOP)
                batch = [i for a, b in json.loads(m.group(2)) for i in range(a, b + 1)]
                with cluster.index.catalog.session() as s:
                    states = set(s.scalars(select(Image.status).where(Image.id.in_(batch))))
                if states == {ImageStatus.pending}:
                    for pid in children:
                        os.kill(pid, signal.SIGKILL)  # dies mid-batch, as in an OOM kill
                    return _job_id(cli), task_id, n, batch
                for pid in children:
                    os.kill(pid, signal.SIGCONT)
        if job_id is None and cli.poll() is not None:
            job_id = _job_id(cli)
        if job_id and (get_job(cluster.index.catalog, job_id) or {}).get("status") in ("done", "failed"):
            return None
        time.sleep(0.01)
    raise AssertionError("no batch seen running:\n" + cluster.log(0)[-2000:] + cluster.log(1)[-2000:])


def test_sigkill_mid_batch_is_redelivered(cluster: Cluster, tmp_path: Path) -> None:
    from PIL import Image as PILImage

    # A batch takes well under a second here; on a loaded machine every batch of a job may commit
    # before the test sees it running, so a job that gave no chance is followed by a fresh folder.
    for attempt in range(4):
        folder = tmp_path / f"many{attempt}"
        folder.mkdir()
        for n, src in enumerate(photo_files(N_BIG, offset=640)):
            im = PILImage.open(src).convert("RGB").resize((3000, 2000))
            im.rotate(attempt * 0.5).save(folder / f"p{n:02d}.jpg", quality=90)  # new content: new rows
        hit = _kill_a_running_batch(cluster, folder)
        if hit:
            break
    assert hit, "no batch of four jobs was caught before its commit"
    job_id, task_id, victim, _batch = hit
    worker = cluster.workers[victim][0]
    job = follow(cluster, job_id)
    assert job["status"] == "done", job
    logs = cluster.log(0) + cluster.log(1)
    assert "WorkerLostError" in logs or "SIGKILL" in logs
    assert re.search(rf"Task dupesift\.embed_batch\[{task_id}\] succeeded", logs), "the killed batch was not redelivered"
    with cluster.index.catalog.session() as s:
        rows = list(s.execute(select(Image.path, Image.status).where(Image.path.like(str(folder) + "/%"))))
    assert len(rows) == N_BIG and {st for _, st in rows} == {ImageStatus.indexed}
    assert job["done"] == N_BIG and job["summary"]["indexed"] == N_BIG
    check_consistent(cluster)
    assert worker.poll() is None  # the worker replaced its pool process and goes on


def test_a_file_that_kills_its_worker_fails_alone_after_redeliveries(cluster: Cluster, tmp_path: Path) -> None:
    """A Celery worker decodes in its pool process: a file over DUPESIFT_DECODE_CPU_SECONDS stops that
    process (the kernel's SIGPROF, as abrupt as a codec segfault). The batch is redelivered, decoded one
    photo at a time with a mark per photo in the catalog, redelivered once more, and then only the
    culprit fails; the job finishes and every other photo is indexed once. Its own worker (and queue
    prefix) so the CPU limit applies to this job alone."""
    folder = tmp_path / "lib"
    photos_and_a_slow_png(folder, 12, offset=820, png_name="p05-huge.png", seed=1)
    env = {**cluster.env, "DUPESIFT_DECODE_CPU_SECONDS": "0.3",
           "DUPESIFT_QUEUE_PREFIX": cluster.env["DUPESIFT_QUEUE_PREFIX"] + "cpu-limit:"}
    cluster.start_worker("w3", env)
    try:
        cluster.wait_ready()
        r = subprocess.run([str(BIN / "dupesift"), "ingest", "--queue", "--json", str(folder)], env=env,
                           capture_output=True, text=True, timeout=300, check=False)
        text = cluster.log(-1)
        assert r.returncode == 0, r.stderr + r.stdout + text[-3000:]
        summary = json.loads(r.stdout.strip().splitlines()[-1])
    finally:
        p, _, f = cluster.workers.pop()
        stop_process_group(p, timeout=20)
        f.close()
    assert summary["status"] == "done", summary
    assert [(Path(x["path"]).name, x["reason"]) for x in summary["failed"]] == [("p05-huge.png", "decoder crashed")]
    assert summary["indexed"] == 12
    assert text.count("WorkerLostError") + text.count("SIGPROF") >= 2, text[-3000:]
    with cluster.index.catalog.session() as s:
        rows = dict(s.execute(select(Image.path, Image.status).where(Image.path.like(str(folder) + "/%"))).all())
    assert len(rows) == 13 and sum(st == ImageStatus.indexed for st in rows.values()) == 12
    check_consistent(cluster)


def test_concurrent_folders_merge_into_one_group(cluster: Cluster, tmp_path: Path) -> None:
    src = photo_files(1, offset=700)[0]
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    shutil.copy(src, a / "original.jpg")
    copies = mild_copies(src, tmp_path / "edits", "x")
    for k, p in enumerate(copies):
        shutil.move(str(p), (a if k % 2 else b) / p.name)
    for k, p in enumerate(photo_files(10, offset=710)):
        shutil.copy(p, (a if k % 2 else b) / f"other{k}.jpg")
    ids = []
    for folder in (a, b):
        r = cluster.cli("ingest", "--queue", "--no-wait", "--json", str(folder))
        assert r.returncode == 0, r.stderr
        ids.append(json.loads(r.stdout)["job_id"])
    for job_id in ids:
        assert follow(cluster, job_id)["status"] == "done"
    merged = [g for g in groups_under(cluster.index, tmp_path) if any(p.endswith("original.jpg") for p in g)]
    assert len(merged) == 1 and len(merged[0]) == 5
    assert {Path(p).parent.name for p in merged[0]} == {"a", "b"}
    check_consistent(cluster)


def test_queue_reindex_adds_changes_and_deletes(cluster: Cluster, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "lib", offset=730, n_dup=1, n_single=3)
    r = cluster.cli("ingest", "--queue", "--json", str(folder))
    assert r.returncode == 0, r.stderr
    src = photo_files(1, offset=730)[0]
    extra = mild_copies(src, tmp_path / "more", "late")[0]
    shutil.move(str(extra), folder / "late_copy.jpg")  # new, joins the group
    os.remove(folder / "edits0" / "copy0_bright.png")  # deleted, leaves the group
    shutil.copy(photo_files(1, offset=760)[0], folder / "single0.jpg")  # changed content
    r = cluster.cli("reindex", "--queue", "--json")
    assert r.returncode == 0, r.stderr + r.stdout
    s = json.loads(r.stdout.strip().splitlines()[-1])
    assert s["status"] == "done" and s["removed"] == 1 and s["changed"] == 1
    assert s["indexed"] == 2  # the new file and the changed one; everything else unchanged
    (group,) = groups_under(cluster.index, folder)
    assert str(folder / "late_copy.jpg") in group and not any("bright" in p for p in group) and len(group) == 5
    check_consistent(cluster)


def test_api_ingest_runs_on_the_workers(cluster: Cluster, tmp_path: Path) -> None:
    """POST /ingest on a server with a broker configured queues the job for the workers."""
    import httpx

    folder = make_folder(tmp_path / "apilib", offset=770, n_dup=1, n_single=2)
    port = free_port()
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen([str(BIN / "dupesift"), "serve", "--port", str(port)],
                              env=dict(cluster.env, DUPESIFT_ROOTS=str(tmp_path)),
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_port(port, timeout=60)
        base = f"http://127.0.0.1:{port}"
        r = httpx.post(f"{base}/ingest", json={"paths": [str(folder)]}, timeout=30)
        assert r.status_code == 202, r.text
        job_id = r.json()["job_id"]
        deadline = time.time() + 180
        while (job := httpx.get(f"{base}/jobs/{job_id}", timeout=30).json())["status"] in ("queued", "running"):
            assert time.time() < deadline, job
            time.sleep(0.3)
        assert job["status"] == "done" and job["done"] == 7 and job["failed"] == 1, job
        assert job_id in cluster.log(0) + cluster.log(1)  # the workers did it, not the server
        assert [len(g) for g in groups_under(cluster.index, folder)] == [5]
    finally:
        stop_process_group(server, timeout=30)
        log.close()
    check_consistent(cluster)
