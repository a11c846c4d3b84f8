"""What every command shares: the global ``--data-dir`` option, the settings it gives, the consoles, and the
one way a command stops on bad input (``fail``: ``error: ...`` on stderr, exit 2)."""
from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from indexer.config import Settings, load_settings

console = Console(stderr=True)  # progress, warnings and errors
out = Console()  # results


class _State:
    data_dir: Path | None = None


state = _State()


def settings() -> Settings:
    """The settings of this run: ``--data-dir`` over the environment over ``<data-dir>/dupesift.env``."""
    overrides = {"data_dir": state.data_dir} if state.data_dir else {}
    return load_settings(**overrides)


def fail(message: str, code: int = 2) -> NoReturn:
    """Stop the command with one line on stderr (exit 2: bad input or an unusable store)."""
    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)
