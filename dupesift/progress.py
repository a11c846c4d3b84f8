"""The progress bar of a command run on a terminal (files/s, failed, ETA); periodic plain lines otherwise."""
from __future__ import annotations

import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class RichProgress:
    """An ``indexer.progress.Progress`` for people: one bar per phase (indexing, then verifying)."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.tty = self.console.is_terminal
        self.bar: Progress | None = None
        self.task: TaskID | None = None
        self.total = 0
        self.t0 = time.perf_counter()
        self.last = 0.0
        self.unit = "files"

    def start(self, total: int, description: str) -> None:
        self.stop()
        self.total, self.t0, self.unit = total, time.perf_counter(), "pairs" if "pairs" in description else "files"
        if self.tty and total:
            self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[rate]:.1f}/s"), TextColumn("failed {task.fields[failed]}"),
                                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=self.console)
            self.bar.start()
            self.task = self.bar.add_task(description, total=total, rate=0.0, failed=0)
        elif total:
            self.console.print(f"{description}: {total} {self.unit}")

    def advance(self, done: int, failed: int) -> None:
        elapsed = max(time.perf_counter() - self.t0, 1e-9)
        rate = done / elapsed
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, completed=done, rate=rate, failed=failed)
        elif time.perf_counter() - self.last > 5 or done == self.total:
            self.last = time.perf_counter()
            eta = (self.total - done) / rate if rate else 0
            self.console.print(f"  {done}/{self.total} {self.unit}, {rate:.1f} {self.unit}/s, {failed} failed, "
                               f"ETA {eta:.0f}s")

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
