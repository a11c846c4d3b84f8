"""Files in the cache folder that runs share (view banks, turn targets): each process writes its own."""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["own_temp_file"]


@contextlib.contextmanager
def own_temp_file(folder: Path, prefix: str, suffix: str) -> Iterator[Path]:
    """A new file of this process's own in ``folder``, removed on exit unless it was moved away: trainings
    building banks side by side share the cache and must not overwrite or delete each other's files."""
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    os.close(fd)
    try:
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)
