"""What the core reports progress to: a bar on a terminal (``dupesift/progress.py``), nothing elsewhere."""
from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """One phase at a time: ``start`` names it and its total, ``advance`` gives the counts done so far."""

    def start(self, total: int, description: str) -> None: ...
    def advance(self, done: int, failed: int) -> None: ...


class Quiet:
    """Progress that shows nothing."""

    def start(self, total: int, description: str) -> None:
        pass

    def advance(self, done: int, failed: int) -> None:
        pass
