"""The training commands: `dupesift train` and `dupesift crossfit` on the one CLI (``register``), and with
`soup` and `export` as ``python -m indexer.training [train|crossfit|soup|export]``.

Imports no torch until a command runs: the base install imports this module to list the commands, and each
command first checks for the `train` extra (``require_extra``). Errors a person can act on (a missing file,
a recipe that cannot run) are one line on stderr and exit status 2.
"""
from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from indexer.calibrate import TARGET_PRECISION
from indexer.errors import DupesiftError
from indexer.extras import require_extra

__all__ = ["COMMANDS", "crossfit", "export", "main", "register", "soup", "train"]

DEFAULT_RECIPE = Path("configs/arcface-kd.toml")  # relative to the current folder: the repository root


def _one_line_errors(*kinds: type[Exception]) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Report a DupesiftError (and ``kinds``) as ``error: ...`` on stderr with exit status 2, not a traceback."""
    def wrap(command: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(command)
        def run(*args, **kwargs) -> None:
            try:
                command(*args, **kwargs)
            except (DupesiftError, *kinds) as exc:
                typer.echo(f"error: {exc}", err=True)
                raise typer.Exit(2) from None
        return run
    return wrap


@_one_line_errors()
def train(
    config: Annotated[Path, typer.Option("--config", help="Training recipe (a TOML file).")] = DEFAULT_RECIPE,
    steps: Annotated[int | None, typer.Option("--steps", min=0, help="Training steps (default: the recipe's).")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out-dir", help="Run folder: checkpoints, metrics, calibration "
                                                     "curve (default: the recipe's, or runs/NAME).")] = None,
    export: Annotated[Path | None, typer.Option("--export", help="ONNX file to write after training (default: "
                                                    "the recipe's export).")] = None,
    no_export: Annotated[bool, typer.Option("--no-export", help="Write no ONNX file (and calibrate none).")] = False,
    train_photos: Annotated[int | None, typer.Option("--train-photos", min=1, help="Photos to train on (default: "
                                                         "the recipe's).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of the split, bank and batches.")] = None,
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="CPU threads (default: the recipe's).")] = None,
) -> None:
    """Train, export and calibrate a model from a recipe (needs the `train` extra).

    Relative paths in the recipe are under its repository, paths given here under the current folder.
    The photos come from the recipe's photos_dir, or from DUPESIFT_PHOTOS_DIR when that is set.
    Prints the run's summary as JSON.
    """
    require_extra("train", "train")
    from indexer.training.config import ConfigError, load_config
    from indexer.training.train import train as run_recipe

    if export is not None and no_export:
        raise ConfigError("--export and --no-export contradict each other")
    cfg = load_config(config, steps=steps, train_photos=train_photos, seed=seed, threads=threads,
                      out_dir=str(out_dir.resolve()) if out_dir else None,
                      export="" if no_export else str(export.resolve()) if export else None)
    typer.echo(json.dumps(run_recipe(cfg), indent=1))


@_one_line_errors(ValueError, FileNotFoundError)
def crossfit(
    folds: Annotated[list[str], typer.Argument(metavar="FOLD.toml[=MODEL.onnx]...", help="Training recipes of the "
                                                "folds, each with the model it exported (or the one after =).")],
    target: Annotated[float, typer.Option("--target", min=0.0, max=1.0, help="Target pair precision.")] = TARGET_PRECISION,
    write: Annotated[Path | None, typer.Option("--write", metavar="MODEL.onnx", help="Store the pooled threshold "
                                                   "in this model's spec.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write the pooled and per-fold results here as "
                                                 "JSON.")] = None,
) -> None:
    """Calibrate a model trained on every photo from its folds' held-out photos (needs the `train` extra).

    Each fold is the recipe trained without one block of photos (calib_block) and scores its own held-out block.
    The threshold is picked from all folds' held-out pairs together (cross-fitting).
    """
    require_extra("train", "crossfit")
    from indexer.calibrate import format_curve
    from indexer.training.crossfit import Fold, results
    from indexer.training.crossfit import crossfit as pool

    parsed = [Fold.parse(f) for f in folds]
    pooled, own = pool(parsed, target)
    typer.echo(format_curve(pooled))
    if out:
        out.write_text(json.dumps(results(parsed, pooled, own), indent=1))
    if write:
        from indexer.modelspec import read_spec, write_spec

        write_spec(write, read_spec(write).with_threshold(pooled.threshold))
        typer.echo(f"wrote threshold {pooled.threshold:.4f} into {write}")


@_one_line_errors(ValueError)
def soup(
    models: Annotated[list[Path], typer.Argument(help="Exported ONNX embedders fine-tuned from one start.")],
    out: Annotated[Path, typer.Option("--out", help="The averaged model's ONNX file.")],
    config: Annotated[Path, typer.Option("--config", help="The recipe whose split, spec and calibration the soup "
                                          "takes.")] = DEFAULT_RECIPE,
    threads: Annotated[int, typer.Option("--threads", min=1, help="CPU threads.")] = 2,
) -> None:
    """Average the weights of exported embedders fine-tuned from one start (a uniform model soup).

    The mean is exported with the recipe's spec and calibrated on the recipe's held-out photos.
    """
    require_extra("train", "soup")
    import torch

    from indexer.training.config import ConfigError, load_config
    from indexer.training.soup import soup as average

    missing = [str(p) for p in models if not p.is_file()]
    if missing:
        raise ConfigError(f"no such model file: {', '.join(missing)}")
    torch.set_num_threads(threads)
    typer.echo(json.dumps(average(load_config(config), models, out), indent=1))


@_one_line_errors()
def export(
    baseline: Annotated[bool, typer.Option("--baseline", help="The untouched ImageNet Lite0, average pool, "
                                            "1280-d.")] = False,
    checkpoint: Annotated[Path | None, typer.Option("--checkpoint", help="A training checkpoint "
                                                        "(runs/NAME/final.pt).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="ONNX file (default: the shipped file of the model's "
                                                 "name under models/).")] = None,
    threshold: Annotated[float | None, typer.Option("--threshold", help="Cosine threshold to store (default: "
                                                        "the shipped file's calibrated value, if any).")] = None,
    fp16: Annotated[bool, typer.Option("--fp16", help="float16 weights/activations for CUDA (float32 "
                                        "I/O).")] = False,
) -> None:
    """Export the baseline or a training checkpoint to ONNX with its ModelSpec in the metadata."""
    require_extra("train", "export")
    from indexer.modelspec import read_spec
    from indexer.training.export import export_file

    if baseline == (checkpoint is not None):
        raise DupesiftError("give one of --baseline and --checkpoint")
    path = export_file(checkpoint, out, threshold, fp16)
    typer.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB): {read_spec(path).to_json()}")


COMMANDS: dict[str, Callable[..., None]] = {"train": train, "crossfit": crossfit, "soup": soup, "export": export}


def register(app: typer.Typer) -> None:
    """Add `train` and `crossfit` to ``app``; they check for the `train` extra when run."""
    app.command("train")(train)
    app.command("crossfit")(crossfit)


def main(argv: list[str] | None = None) -> int:
    """``python -m indexer.training``: ``train`` (the default: ``--config ...`` runs it), ``crossfit``, ``soup``
    or ``export`` followed by its options; returns the exit status."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    app = typer.Typer(add_completion=False, help="Train, cross-fit, average and export dupesift's models.")
    for name, command in COMMANDS.items():
        app.command(name)(command)
    if not args or args[0] not in COMMANDS:
        args.insert(0, "train")
    try:
        app(args=args, prog_name="python -m indexer.training")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0
