"""``dupesift worker``, ``beat``, ``jobs`` and ``reindex``. Celery is imported only inside commands."""
from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from dupesift.options import console, out, settings, state
from dupesift.progress import RichProgress
from indexer.config import Settings
from indexer.extras import require_extra

if TYPE_CHECKING:
    from celery import Celery


def _settings() -> Settings:
    """The command line's settings (its --data-dir), also in the environment: workers.app reads it there."""
    if state.data_dir:
        os.environ["DUPESIFT_DATA_DIR"] = str(state.data_dir)
    return settings()


def _app(command: str) -> Celery:
    """The Celery app; a missing `workers` extra or broker is a DupesiftError (the CLI prints it, exit 2)."""
    require_extra("workers", command)
    from workers.app import app

    return app


def worker(queues: Annotated[str, typer.Option("--queues", "-Q", help="Comma-separated: gpu (embed), cpu (scan, link, reindex), default.")] = "gpu,cpu,default",
           concurrency: Annotated[int, typer.Option("--concurrency", "-c", min=1, help="Pool processes (each one ONNX session).")] = 1,
           loglevel: Annotated[str, typer.Option("--loglevel", "-l")] = "info",
           hostname: Annotated[str | None, typer.Option("--hostname", "-n", help="Node name (default dupesift-PID@host).")] = None) -> None:
    """Start a Celery worker (broker: DUPESIFT_BROKER_URL)."""
    _settings()
    app = _app("worker")
    from workers.app import QUEUES

    wanted = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = [q for q in wanted if q not in QUEUES]
    if unknown:
        console.print(f"[bold red]error:[/] unknown queue(s) {', '.join(unknown)}; known: {', '.join(QUEUES)}")
        raise typer.Exit(2)
    app.worker_main(["worker", "-Q", ",".join(wanted), "-c", str(concurrency), "-l", loglevel,
                     "-n", hostname or f"dupesift-{os.getpid()}@%h", "--without-gossip", "--without-mingle"])


def beat(loglevel: Annotated[str, typer.Option("--loglevel", "-l")] = "info") -> None:
    """Start Celery beat: the nightly reindex at DUPESIFT_REINDEX_AT (default 03:00 local)."""
    st = _settings()
    app = _app("beat")
    st.ensure_dirs()
    app.start(["beat", "-l", loglevel, "-s", str(st.data_dir / "celerybeat-schedule")])


def jobs(json_out: Annotated[bool, typer.Option("--json")] = False,
         limit: Annotated[int, typer.Option("--limit", min=1)] = 20,
         status: Annotated[str | None, typer.Option("--status", help="queued, running, done, failed, interrupted")] = None) -> None:
    """List ingest and reindex jobs: progress, files/s, ETA."""
    from indexer.catalog import Catalog
    from indexer.jobs import list_jobs

    st = _settings()
    st.ensure_dirs()
    cat = Catalog(st.sqlalchemy_url)
    try:
        rows = list_jobs(cat, limit, status)
    finally:
        cat.dispose()
    if json_out:
        sys.stdout.write(json.dumps({"jobs": rows}, indent=1) + "\n")
        return
    if not rows:
        out.print("no jobs")
        return
    table = Table("id", "kind", "status", "done/total", "failed", "files/s", "ETA", "created", "paths")
    for j in rows:
        eta = "" if j["eta_s"] is None else f"{j['eta_s']:.0f}s"
        table.add_row(j["id"][:8], j["kind"], j["status"], f"{j['done']}/{j['total']}", str(j["failed"]),
                      f"{j['files_per_s']:.1f}", eta, j["created_at"] or "", ", ".join(j["paths"])[:60])
    out.print(table)


def reindex(queue: Annotated[bool, typer.Option("--queue", help="Run through the workers instead of here.")] = False,
            no_wait: Annotated[bool, typer.Option("--no-wait", help="With --queue: print the job id and return.")] = False,
            json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Rescan every registered root; with a new model, rebuild its collection and swap the alias."""
    st = _settings()
    if queue:
        require_extra("workers", "reindex --queue")
        from workers.client import enqueue_reindex

        enqueue_reindex(st, wait=not no_wait, console=out, json_out=json_out)
        return
    from indexer.index import Index
    from indexer.reindex import reindex as run

    progress = RichProgress(console)
    with Index(st) as index:
        try:
            summary = run(index, progress)
        finally:
            progress.stop()
    if json_out:
        sys.stdout.write(json.dumps(summary.as_dict()) + "\n")
    else:
        out.print(f"reindex: {summary.indexed} indexed, {summary.changed} changed, {summary.removed} removed, "
                  f"{len(summary.failed)} failed; {summary.groups} groups, {summary.duplicates} duplicates")


def register(app: typer.Typer) -> None:
    """Add these commands to ``app``; those that need Celery check for the `workers` extra when run."""
    app.command("worker")(worker)
    app.command("beat")(beat)
    app.command("jobs")(jobs)
    app.command("reindex")(reindex)
