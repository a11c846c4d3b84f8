"""`dupesift train`: the training entry point on the one CLI (needs the `train` extra)."""
from __future__ import annotations

import typer


def train(ctx: typer.Context) -> None:
    """Train, export and calibrate a model from a recipe: dupesift train --config configs/arcface-kd.toml
    [--steps N] [--out-dir DIR] [--export PATH | --no-export] [--threads N] (see python -m indexer.training -h)."""
    from indexer.training.train import main

    raise typer.Exit(main(list(ctx.args)))


def register(app: typer.Typer) -> None:
    import torch  # noqa: F401 - absent without the `train` extra: indexer.cli then skips this command

    app.command("train", context_settings={"allow_extra_args": True, "ignore_unknown_options": True,
                                           "help_option_names": []})(train)
