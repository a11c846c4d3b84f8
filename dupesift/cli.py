"""The ``dupesift`` command (also ``python -m dupesift``).

Its own commands are the library's (ingest, groups, similar, status, calibrate, db) and ``serve`` (``api``);
``worker``, ``beat``, ``jobs`` and ``reindex`` come from ``workers/cli.py``, ``train`` and ``crossfit`` from
``indexer/training/cli.py``. Every command is always registered: one that needs an optional extra says which
when it is run (``indexer.extras``), so the base install runs every other command. A ``DupesiftError`` from
any command is printed as one line, ``error: ...``, with exit status 2.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from dupesift.options import console, fail, out, settings, state
from dupesift.progress import RichProgress
from indexer.config import write_setting
from indexer.errors import DupesiftError
from indexer.summary import IngestSummary
from indexer.training import cli as training_cli
from workers import cli as workers_cli


class _Commands(TyperGroup):
    """Turns a ``DupesiftError`` that a command lets through into ``error: ...`` and exit 2."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except DupesiftError as exc:
            fail(str(exc))


app = typer.Typer(cls=_Commands, add_completion=False, no_args_is_help=True,
                  help="Find duplicate and similar photos.")
db_app = typer.Typer(help="Catalog database commands.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def open_index():
    from indexer.index import Index

    return Index(settings())


@app.callback()
def main(data_dir: Annotated[Path | None, typer.Option(
        "--data-dir", help="Catalog, vectors and thumbnails (env DUPESIFT_DATA_DIR).")] = None) -> None:
    state.data_dir = data_dir


@app.command()
def ingest(paths: Annotated[list[Path], typer.Argument(help="Folders (scanned recursively) and files.")],
           json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
           queue: Annotated[bool, typer.Option(
               "--queue", help="Enqueue to Celery workers (DUPESIFT_BROKER_URL) instead of running here.")] = False,
           no_wait: Annotated[bool, typer.Option("--no-wait", help="With --queue: print the job id and return.")] = False,
           prune_empty: Annotated[bool, typer.Option("--prune-empty", help=(
               "Forget the photos of a root that now scans to no photos at all (by default they are kept: an "
               "unmounted drive looks the same)."))] = False) -> None:
    """Index photos: new and changed files are embedded, deleted ones leave the index."""
    if queue:
        from indexer.extras import require_extra

        require_extra("workers", "ingest --queue")
        from workers.client import enqueue_ingest

        enqueue_ingest(settings(), [str(p) for p in paths], wait=not no_wait, console=out, json_out=json_out,
                       prune_empty=prune_empty)
        return
    progress = RichProgress(console)
    try:
        with open_index() as index:
            try:
                summary = index.ingest([str(p) for p in paths], progress, prune_empty=prune_empty)
            finally:
                progress.stop()
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: every finished batch is kept; run the same command again to resume.")
        raise typer.Exit(130) from None
    if json_out:
        out.print_json(json.dumps(summary.as_dict()))
        return
    print_summary(summary)


def print_summary(summary: IngestSummary) -> None:
    """An in-process ingest's summary as a table, then failed files, waiting photos and warnings."""
    t = summary.timings
    table = Table(title="ingest summary", show_header=False)
    for k, v in [("files seen", summary.seen), ("newly indexed", summary.indexed),
                 ("  of which byte-identical copies", summary.exact_copies), ("changed", summary.changed),
                 ("unchanged (skipped)", summary.unchanged), ("removed (deleted since last run)", summary.removed),
                 ("failed", len(summary.failed)), ("ignored (not image files)", summary.ignored),
                 *((f"  {why}", n) for why, n in sorted(summary.ignored_why.items())),
                 ("kept (not found, but its folder was unreadable or its root empty)", summary.kept_unreadable),
                 ("healed (vector was missing: embedded again)", summary.healed),
                 ("duplicate groups", summary.groups), ("duplicates (beyond one keeper per group)", summary.duplicates),
                 ("seconds", f"{summary.seconds:.1f}"),
                 ("time split", (f"scan {t.scan:.1f}s, decode wait {t.decode:.1f}s, embed {t.embed:.1f}s, "
                                 f"store {t.store:.1f}s, pairs {t.link:.1f}s, groups {t.group:.1f}s"))]:
        table.add_row(k, str(v))
    out.print(table)
    if summary.failed:
        out.print("[bold]failed files:[/]")
        for f in summary.failed[:50]:
            out.print(f"  {f['reason']:<13} {f['path']}: {f['message']}")
        if len(summary.failed) > 50:
            out.print(f"  ... and {len(summary.failed) - 50} more")
    if summary.needs_embedding:
        out.print("[bold]waiting for a vector of the current model:[/]")
        for root, n in summary.needs_embedding.items():
            out.print(f"  {n:>8} {escape(root)}")
    for w in summary.warnings:
        out.print(f"[bold yellow]warning:[/] {escape(w)}", soft_wrap=True)


@app.command()
def groups(json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
           min_size: Annotated[int, typer.Option("--min-size", min=2)] = 2) -> None:
    """List duplicate groups, keeper first."""
    with open_index() as index:
        gs = index.groups(min_size)
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
            why = f"  (lost on {m['decided_by']})" if m.get("decided_by") else ""
            out.print(f"  {mark} {sim if sim is not None else 0:.3f} {m['width']}x{m['height']} {m['format']:<5} "
                      f"{m['path']}{why}")


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
    except FileNotFoundError as exc:
        fail(str(exc))
    if json_out:
        sys.stdout.write(json.dumps({"query": str(image), "threshold": threshold, "results": results}, indent=1)
                         + "\n")
        return
    for r in results:
        out.print(f"{r['similarity']:.4f} {'DUPLICATE' if r['is_duplicate'] else 'similar  '} {r['path']}")


@app.command()
def status(json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Counts, model, threshold, data dir and store locations."""
    with open_index() as index:
        st = index.status()
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

    from api.main import KEEP_ALIVE_S, create_app

    if state.data_dir:
        os.environ["DUPESIFT_DATA_DIR"] = str(state.data_dir)
    uvicorn.run(create_app(settings(), host=host), host=host, port=port, log_level="info",
                timeout_keep_alive=KEEP_ALIVE_S)


@app.command()
def calibrate(folder: Annotated[Path | None, typer.Argument(
                  help="Photos to calibrate on (default: the train split of DUPESIFT_PHOTOS_DIR).")] = None,
              target_precision: Annotated[float | None, typer.Option(
                  "--target-precision", min=0.5, max=1.0,
                  help="Pair precision to aim for (default: indexer.calibrate.TARGET_PRECISION).")] = None,
              limit: Annotated[int, typer.Option(
                  "--limit", min=10, help="At most this many photos, an even spread over the folder's files.")] = 300,
              copies: Annotated[int | None, typer.Option(
                  "--copies", min=1, help="Synthetic copies per photo (default: indexer.calibrate.COPIES).")] = None,
              seed: Annotated[int, typer.Option("--seed", help="Seed of the photo sample and of the copies' edits.")] = 0,
              write: Annotated[bool, typer.Option(
                  "--write", help="Save the threshold to <data-dir>/dupesift.env.")] = False) -> None:
    """Choose the duplicate threshold for a target precision from synthetic copies of your photos.

    Unusable files (empty, corrupt, not an image, over DUPESIFT_MAX_PIXELS) are reported and skipped."""
    from indexer.calibrate import (
        COPIES,
        TARGET_PRECISION,
        folder_photos,
        format_curve,
        onnx_embed_fn,
        spread,
        train_split,
    )
    from indexer.calibrate import calibrate as run
    from indexer.errors import ImageError

    st = settings()
    copies = COPIES if copies is None else copies
    target_precision = TARGET_PRECISION if target_precision is None else target_precision
    if folder is None:
        if st.photos_dir is None:
            fail("no FOLDER given and DUPESIFT_PHOTOS_DIR is not set: name the photos to calibrate on, or set "
                 "DUPESIFT_PHOTOS_DIR to a folder whose train split (all but every fifth photo by name) to use")
        if not st.photos_dir.is_dir():
            fail(f"DUPESIFT_PHOTOS_DIR is not a folder: {st.photos_dir}")
        files = train_split(st.photos_dir)
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

    embed_fn, spec = onnx_embed_fn(st.model_path)
    console.print(f"calibrating {spec.model_id} on {len(photos)} photos x {copies} copies ...")
    result = run(photos, embed_fn, target_precision=target_precision, copies=copies, seed=seed,
                 max_pixels=st.max_pixels, on_skip=skip, settings=st)
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
    migrate(st.sqlalchemy_url, revision)
    out.print(f"catalog at {safe_url(st.sqlalchemy_url)} is at {revision}")


# Commands that live beside their code: `worker`/`beat`/`jobs`/`reindex`, `train`/`crossfit`.
workers_cli.register(app)
training_cli.register(app)
