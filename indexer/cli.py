"""The ``dupesift`` command."""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from indexer.config import Settings, load_settings, write_setting
from indexer.errors import DupesiftError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Find duplicate and similar photos.")
db_app = typer.Typer(help="Catalog database commands.", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = Console(stderr=True)
out = Console()


class _State:
    data_dir: Optional[Path] = None


state = _State()


def settings() -> Settings:
    overrides = {"data_dir": state.data_dir} if state.data_dir else {}
    return load_settings(**overrides)


def open_index():  # noqa: ANN201
    from indexer.index import Index

    return Index(settings())


def fail(message: str, code: int = 2) -> None:
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


@app.callback()
def main(data_dir: Annotated[Optional[Path], typer.Option("--data-dir", help="Catalog, vectors and thumbnails (env DUPESIFT_DATA_DIR).")] = None) -> None:
    state.data_dir = data_dir


class RichProgress:
    """Progress bar with files/s and ETA on a terminal; periodic plain lines otherwise."""

    def __init__(self) -> None:
        self.tty = console.is_terminal
        self.bar: Progress | None = None
        self.task = None
        self.total = 0
        self.t0 = time.perf_counter()
        self.last = 0.0
        self.unit = "files"

    def start(self, total: int, description: str) -> None:
        self.stop()  # one bar per phase (indexing, then verifying)
        self.total, self.t0, self.unit = total, time.perf_counter(), "pairs" if "pairs" in description else "files"
        if self.tty and total:
            self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[rate]:.1f}/s"), TextColumn("failed {task.fields[failed]}"),
                                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console)
            self.bar.start()
            self.task = self.bar.add_task(description, total=total, rate=0.0, failed=0)
        elif total:
            console.print(f"{description}: {total} {self.unit}")

    def advance(self, done: int, failed: int) -> None:
        elapsed = max(time.perf_counter() - self.t0, 1e-9)
        rate = done / elapsed
        if self.bar is not None:
            self.bar.update(self.task, completed=done, rate=rate, failed=failed)
        elif time.perf_counter() - self.last > 5 or done == self.total:
            self.last = time.perf_counter()
            eta = (self.total - done) / rate if rate else 0
            console.print(f"  {done}/{self.total} {self.unit}, {rate:.1f} {self.unit}/s, {failed} failed, ETA {eta:.0f}s")

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


@app.command()
def ingest(paths: Annotated[list[Path], typer.Argument(help="Folders (scanned recursively) and files.")],
           json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
           queue: Annotated[bool, typer.Option("--queue", help="Enqueue to Celery workers (DUPESIFT_BROKER_URL) instead of running here.")] = False,
           no_wait: Annotated[bool, typer.Option("--no-wait", help="With --queue: print the job id and return.")] = False,
           prune_empty: Annotated[bool, typer.Option("--prune-empty", help="Forget the photos of a root that now scans to no photos at all (by default they are kept: an unmounted drive looks the same).")] = False) -> None:
    """Index photos: new and changed files are embedded, deleted ones leave the index."""
    if queue:
        require_extra("workers", "ingest --queue")
        from workers.client import enqueue_ingest

        enqueue_ingest(settings(), [str(p) for p in paths], wait=not no_wait, console=out, json_out=json_out,
                       prune_empty=prune_empty)
        return
    progress = RichProgress()
    try:
        with open_index() as index:
            try:
                summary = index.ingest([str(p) for p in paths], progress, prune_empty=prune_empty)
            finally:
                progress.stop()
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: every finished batch is kept; run the same command again to resume.")
        raise typer.Exit(130)
    except DupesiftError as exc:
        fail(str(exc))
    if json_out:
        out.print_json(json.dumps(summary.as_dict()))
        return
    t = summary.timings
    table = Table(title="ingest summary", show_header=False)
    for k, v in [("files seen", summary.seen), ("newly indexed", summary.indexed),
                 ("  of which byte-identical copies", summary.exact_copies), ("changed", summary.changed),
                 ("unchanged (skipped)", summary.unchanged), ("removed (deleted since last run)", summary.removed),
                 ("failed", len(summary.failed)), ("ignored (not image files)", summary.ignored),
                 ("kept (not found, but its folder was unreadable or its root empty)", summary.kept_unreadable),
                 ("healed (vector was missing: embedded again)", summary.healed),
                 ("duplicate groups", summary.groups), ("duplicates (beyond one keeper per group)", summary.duplicates),
                 ("seconds", f"{summary.seconds:.1f}"),
                 ("time split", f"scan {t.scan:.1f}s, decode wait {t.decode:.1f}s, embed {t.embed:.1f}s, "
                                f"store {t.store:.1f}s, pairs {t.link:.1f}s, groups {t.group:.1f}s")]:
        table.add_row(k, str(v))
    out.print(table)
    if summary.failed:
        out.print("[bold]failed files:[/]")
        for f in summary.failed[:50]:
            out.print(f"  {f['reason']:<13} {f['path']}: {f['message']}")
        if len(summary.failed) > 50:
            out.print(f"  ... and {len(summary.failed) - 50} more")
    waiting = getattr(summary, "needs_embedding", None) or {}
    if waiting:
        out.print("[bold]waiting for a vector of the current model:[/]")
        for root, n in waiting.items():
            out.print(f"  {n:>8} {escape(root)}")
    for w in summary.warnings:
        out.print(f"[bold yellow]warning:[/] {escape(w)}", soft_wrap=True)


@app.command()
def groups(json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
           min_size: Annotated[int, typer.Option("--min-size", min=2)] = 2) -> None:
    """List duplicate groups, keeper first."""
    try:
        with open_index() as index:
            gs = index.groups(min_size)
    except DupesiftError as exc:
        fail(str(exc))
    if json_out:
        sys.stdout.write(json.dumps({"groups": gs}, indent=1) + "\n")
        return
    if not gs:
        out.print("no duplicate groups")
    for g in gs:
        out.print(f"[bold]group {g['id']}[/] ({g['size']} photos, reclaimable {g['reclaimable_bytes']} bytes, "
                  f"max distance {g['max_distance']:.3f}) keeper: {g['keeper_reason']}")
        for m in sorted(g["members"], key=lambda m: m["id"] != g["keeper"]):
            mark = "keep" if m["id"] == g["keeper"] else "    "
            sim = m["similarity_to_keeper"]
            out.print(f"  {mark} {sim if sim is not None else 0:.3f} {m['width']}x{m['height']} {m['format']:<5} {m['path']}")


@app.command()
def similar(image: Annotated[Path, typer.Argument(help="Any image file, indexed or not.")],
            k: Annotated[int, typer.Option("-k", min=1, max=1000)] = 10,
            json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Nearest indexed photos to an image, with cosine similarity and duplicate verdict."""
    from indexer.decode import load_image

    try:
        with open_index() as index:
            d = load_image(image, max_pixels=index.settings.max_pixels, size=index.spec.input_size)
            results = index.similar_to_pixels(d.pixels, k, source=image)
            threshold = index.threshold
    except (DupesiftError, FileNotFoundError) as exc:
        fail(str(exc))
    if json_out:
        sys.stdout.write(json.dumps({"query": str(image), "threshold": threshold, "results": results}, indent=1) + "\n")
        return
    for r in results:
        out.print(f"{r['similarity']:.4f} {'DUPLICATE' if r['is_duplicate'] else 'similar  '} {r['path']}")


@app.command()
def status(json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Counts, model, threshold, data dir and store locations."""
    try:
        with open_index() as index:
            st = index.status()
    except DupesiftError as exc:
        fail(str(exc))
    if json_out:
        sys.stdout.write(json.dumps(st, indent=1) + "\n")
        return
    for k, v in st.items():
        if k == "needs_embedding":  # root -> photos without a vector of the current model
            v = ", ".join(f"{root}: {n}" for root, n in v.items()) or "none"
        out.print(f"[bold]{k:>16}[/]: {escape(str(v))}", soft_wrap=True)


@app.command()
def serve(host: Annotated[str, typer.Option()] = "127.0.0.1", port: Annotated[int, typer.Option()] = 8000) -> None:
    """Start the HTTP API (and web UI) on HOST:PORT."""
    import uvicorn

    if state.data_dir:
        os.environ["DUPESIFT_DATA_DIR"] = str(state.data_dir)
    from api.main import create_app

    uvicorn.run(create_app(settings(), host=host), host=host, port=port, log_level="info")


@app.command()
def calibrate(folder: Annotated[Optional[Path], typer.Argument(help="Photos to calibrate on (default: the training split).")] = None,
              target_precision: Annotated[Optional[float], typer.Option("--target-precision", min=0.5, max=1.0, help="Pair precision to aim for (default: indexer.calibrate.TARGET_PRECISION).")] = None,
              limit: Annotated[int, typer.Option("--limit", min=10, help="At most this many photos, an even spread over the folder's files.")] = 300,
              copies: Annotated[Optional[int], typer.Option("--copies", min=1, help="Synthetic copies per photo (default: indexer.calibrate.COPIES).")] = None,
              seed: Annotated[int, typer.Option("--seed", help="Seed of the photo sample and of the copies' edits.")] = 0,
              write: Annotated[bool, typer.Option("--write", help="Save the threshold to <data-dir>/dupesift.env.")] = False) -> None:
    """Choose the duplicate threshold for a target precision from synthetic copies of your photos.

    Unusable files (empty, corrupt, not an image, over DUPESIFT_MAX_PIXELS) are reported and skipped."""
    from indexer.calibrate import (COPIES, TARGET_PRECISION, calibrate as run, folder_photos, format_curve,
                                   onnx_embed_fn, spread, train_split)
    from indexer.errors import ImageError

    st = settings()
    copies = COPIES if copies is None else copies
    target_precision = TARGET_PRECISION if target_precision is None else target_precision
    if folder is None:
        files = train_split()
    else:
        if not folder.exists():
            fail(f"no such folder: {folder}")
        files = folder_photos(folder)
    if len(files) < 10:
        fail(f"need at least 10 photos to calibrate, found {len(files)}")
    photos = spread(files, limit, seed)
    skipped: list[Path] = []

    def skip(path: Path, exc: ImageError) -> None:
        skipped.append(path)
        console.print(f"skipped ({exc.reason}) {path}: {exc}", markup=False, highlight=False, soft_wrap=True)

    try:
        embed_fn, spec = onnx_embed_fn(st.model_path)
        console.print(f"calibrating {spec.model_id} on {len(photos)} photos x {copies} copies ...")
        result = run(photos, embed_fn, target_precision=target_precision, copies=copies, seed=seed,
                     max_pixels=st.max_pixels, on_skip=skip, verify_band=st.verify_band,
                     min_inliers=st.verify_min_inliers)
    except DupesiftError as exc:
        fail(str(exc))
    if skipped:
        console.print(f"skipped {len(skipped)} unusable files; calibrated on the other {result.photos} photos",
                      soft_wrap=True)
    out.print(format_curve(result))
    out.print(f"threshold {result.threshold:.4f}: precision {result.precision:.4f}, recall {result.recall:.4f} "
              f"(model default {spec.threshold:.4f})")
    if write:
        path = write_setting(st.data_dir, "threshold", round(result.threshold, 4))
        out.print(f"wrote DUPESIFT_THRESHOLD to {path}; the next ingest relinks pairs at the new threshold")


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply catalog migrations (also done automatically on start)."""
    from indexer.catalog.db import migrate, safe_url

    st = settings()
    st.ensure_dirs()
    if st.sqlalchemy_url.startswith("sqlite:///"):
        Path(st.sqlalchemy_url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    try:
        migrate(st.sqlalchemy_url, revision)
    except DupesiftError as exc:
        fail(str(exc))
    out.print(f"catalog at {safe_url(st.sqlalchemy_url)} is at {revision}")


def require_extra(extra: str, command: str) -> None:
    """Exit 2 with one line naming the extra to install when ``command`` needs a module it lacks."""
    from indexer.extras import require_extra as require

    try:
        require(extra, command)
    except DupesiftError as exc:
        fail(escape(str(exc)))


def _register_extensions() -> None:
    """Commands that live beside their code: `worker`/`beat`/`jobs`/`reindex` (workers/cli.py), `train` and
    `crossfit` (indexer/training/cli.py). Always registered; those that need an optional extra check for it
    when run (``require_extra``), so the base install runs every other command."""
    from indexer.training import cli as training_cli
    from workers import cli as workers_cli

    workers_cli.register(app)
    training_cli.register(app)


_register_extensions()

if __name__ == "__main__":  # pragma: no cover
    app()
