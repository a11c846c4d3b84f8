"""Cross-process locks on the catalog, for steps that must not interleave (pair linking and grouping).

PostgreSQL: a session-level advisory lock on a dedicated connection. It is released on unlock, and by
the server when the holder dies (a SIGKILLed worker cannot leave it held). SQLite: an fcntl lock on a
file beside the database (same host only, which is all SQLite supports anyway).
"""
from __future__ import annotations

import fcntl
import os
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text

from indexer.catalog import Catalog


def lock_key(name: str) -> int:
    return zlib.crc32(f"dupesift:{name}".encode())  # fits PostgreSQL's bigint key


@contextmanager
def catalog_lock(catalog: Catalog, name: str = "groups") -> Iterator[None]:
    """Hold the named lock for the block; blocks until it is free."""
    if catalog.engine.dialect.name == "postgresql":
        key = lock_key(name)
        with catalog.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        return
    if catalog.url.startswith("sqlite:///"):
        path = Path(catalog.url[len("sqlite:///"):] + f".{name}.lock")
    else:  # sqlite in memory or another dialect: one process, nothing to coordinate across
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
