"""`dupesift train` and `dupesift crossfit`: the training entry points on the one CLI (need the `train` extra)."""
from __future__ import annotations

import typer


def train(ctx: typer.Context) -> None:
    """Train, export and calibrate a model from a recipe: dupesift train --config configs/arcface-kd.toml
    [--steps N] [--out-dir DIR] [--export PATH | --no-export] [--threads N] (see python -m indexer.training -h)."""
    from indexer.cli import require_extra

    require_extra("train", "train")
    from indexer.training.train import main

    raise typer.Exit(main(list(ctx.args)))


def crossfit(ctx: typer.Context) -> None:
    """Calibrate a model trained on every photo from fold models' held-out photos: dupesift crossfit
    FOLD.toml[=FOLD.onnx] ... [--target P] [--write MODEL.onnx] [--out F.json] (python -m indexer.training.crossfit -h)."""
    from indexer.cli import require_extra

    require_extra("train", "crossfit")
    from indexer.training.crossfit import main

    raise typer.Exit(main(list(ctx.args)))


def register(app: typer.Typer) -> None:
    """Add these commands to ``app``; they check for the `train` extra when run."""
    passthrough = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}
    app.command("train", context_settings=passthrough)(train)
    app.command("crossfit", context_settings=passthrough)(crossfit)
