"""Enqueue work from the CLI (or any process) and follow it through the catalog's jobs table."""
from __future__ import annotations

import json
import os
import sys
import time

import typer
from rich.console import Console
from rich.table import Table

from dupesift.progress import RichProgress
from indexer.catalog import Catalog
from indexer.config import Settings
from indexer.errors import DupesiftError
from indexer.jobs import FINISHED, create_job, failures, get_job
from indexer.scan import normalise_root

POLL_S = 0.5


def _catalog(settings: Settings) -> Catalog:
    settings.ensure_dirs()
    return Catalog(settings.sqlalchemy_url)


def _fail(console: Console, message: str, code: int = 2) -> None:
    Console(stderr=True).print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _require_broker(console: Console) -> None:
    """Importing the tasks fails with a clear message when no broker is configured."""
    try:
        import workers.tasks  # noqa: F401
    except DupesiftError as exc:
        _fail(console, str(exc))


def enqueue_ingest(settings: Settings, paths: list[str], *, wait: bool, console: Console, json_out: bool,
                   prune_empty: bool = False) -> str:
    """Create an ingest job, queue its scan; with ``wait`` follow it to the end like an in-process ingest."""
    roots = [normalise_root(p) for p in paths]
    missing = [r for r in roots if not os.path.exists(r)]
    if missing:
        _fail(console, f"no such file or folder: {', '.join(missing)}")
    _require_broker(console)
    catalog = _catalog(settings)
    try:
        job_id = create_job(catalog, "ingest", {"paths": roots, "prune_empty": prune_empty})
        queue_job(job_id)
        return _after_enqueue(catalog, job_id, wait=wait, console=console, json_out=json_out)
    finally:
        catalog.dispose()


def queue_job(job_id: str) -> None:
    """Queue the scan of a job whose row exists (POST /ingest creates it, then calls this)."""
    from workers.tasks import scan

    scan.apply_async(kwargs={"job_id": job_id})


def enqueue_reindex(settings: Settings, *, wait: bool, console: Console, json_out: bool) -> str:
    from indexer.reindex import reindex_params

    _require_broker(console)
    catalog = _catalog(settings)
    try:
        job_id = create_job(catalog, "reindex", reindex_params(catalog))
        queue_job(job_id)
        return _after_enqueue(catalog, job_id, wait=wait, console=console, json_out=json_out)
    finally:
        catalog.dispose()


def _after_enqueue(catalog: Catalog, job_id: str, *, wait: bool, console: Console, json_out: bool) -> str:
    if not wait:
        if json_out:
            sys.stdout.write(json.dumps({"job_id": job_id, "status": "queued"}) + "\n")
        else:
            console.print(job_id)
        return job_id
    job = follow(catalog, job_id)
    print_summary(catalog, job, console=console, json_out=json_out)
    if job["status"] != "done":
        raise typer.Exit(1)
    return job_id


def follow(catalog: Catalog, job_id: str, timeout: float | None = None) -> dict:
    """Poll the job with the CLI's progress bar until it finishes; returns the final job view."""
    progress = RichProgress()
    started = False
    t0 = time.monotonic()
    try:
        while True:
            job = get_job(catalog, job_id)
            if job is None:
                raise DupesiftError(f"job {job_id} vanished from the catalog")
            if not started and (job["total"] or job["status"] in FINISHED) and job["status"] != "queued":
                progress.start(job["total"], "indexing (queued)")
                started = True
            if started:
                progress.total = job["total"]
                progress.advance(job["done"] + job["failed"], job["failed"])
            if job["status"] in FINISHED:
                return job
            if timeout is not None and time.monotonic() - t0 > timeout:
                raise TimeoutError(f"job {job_id} still {job['status']} after {timeout}s")
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        Console(stderr=True).print(f"[yellow]stopped following[/]: job {job_id} goes on in the workers "
                                   "(`dupesift jobs` shows it)")
        raise typer.Exit(130)
    finally:
        progress.stop()


def print_summary(catalog: Catalog, job: dict, *, console: Console, json_out: bool) -> None:
    s = dict(job.get("summary") or {})
    failed = failures(catalog, job["id"])
    if json_out:
        out = {"job_id": job["id"], "status": job["status"], "message": job["message"], **s, "failed": failed}
        sys.stdout.write(json.dumps(out) + "\n")
        return
    if job["status"] != "done":
        console.print(f"[bold red]job {job['id']} {job['status']}[/]: {job['message']}")
        return
    table = Table(title=f"ingest summary (job {job['id']})", show_header=False)
    for k, v in [("files seen", s.get("seen")), ("newly indexed", s.get("indexed")),
                 ("  of which byte-identical copies", s.get("exact_copies")), ("changed", s.get("changed")),
                 ("unchanged (skipped)", s.get("unchanged")), ("removed (deleted since last run)", s.get("removed")),
                 ("failed", s.get("failed")), ("ignored (not image files)", s.get("ignored")),
                 ("duplicate groups", s.get("groups")), ("duplicates (beyond one keeper per group)", s.get("duplicates")),
                 ("seconds", f"{s.get('seconds', 0):.1f}"), ("files/s", f"{job['files_per_s']:.1f}")]:
        table.add_row(k, str(v))
    console.print(table)
    if failed:
        console.print("[bold]failed files:[/]")
        for f in failed[:50]:
            console.print(f"  {f['reason']:<13} {f['path']}: {f['message']}")
