"""Cross-process locks on the catalog, for steps that must not interleave (pair linking, grouping and
users' decisions on groups).

PostgreSQL: a session-level advisory lock on a dedicated connection. It is released on unlock, and by
the server when the holder dies (a SIGKILLed worker cannot leave it held). SQLite: an fcntl lock on a
file beside the database (same host only, which is all SQLite supports anyway).

The lock is re-entrant within one thread: ``Index.link`` takes it, and so do its callers that must
hold it across several steps (``indexer/stages.py``, the ``regroup`` task). A second acquisition by
the thread that holds it is a no-op instead of a self-deadlock (neither an advisory lock taken on a
second connection nor an flock on a second descriptor would see that the holder is the same thread).
Other threads and processes wait as before.
"""
from __future__ import annotations

import fcntl
import os
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine

from indexer.catalog import Catalog

_held = threading.local()  # .depth: {(database, lock name): nesting depth} for the current thread


def lock_key(name: str) -> int:
    return zlib.crc32(f"dupesift:{name}".encode())  # fits PostgreSQL's bigint key


@contextmanager
def catalog_lock(catalog: Catalog | Engine, name: str = "groups") -> Iterator[None]:
    """Hold the named lock for the block; blocks until it is free (re-entrant in the holding thread).

    ``catalog`` may be the Engine of a session (``session.get_bind()``). Take the lock before the
    session writes anything: with SQLite, a writer waiting for the lock would block the holder."""
    engine = catalog.engine if isinstance(catalog, Catalog) else catalog
    depth: dict[tuple[str, str], int] = _held.__dict__.setdefault("depth", {})
    key = (engine.url.render_as_string(hide_password=False), name)
    if depth.get(key):
        depth[key] += 1
        try:
            yield
        finally:
            depth[key] -= 1
        return
    with _acquire(engine, name):
        depth[key] = 1
        try:
            yield
        finally:
            depth.pop(key, None)


@contextmanager
def _acquire(engine: Engine, name: str) -> Iterator[None]:
    if engine.dialect.name == "postgresql":
        key = lock_key(name)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        return
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":  # in memory or another dialect: one process, nothing to coordinate
        yield
        return
    path = Path(database + f".{name}.lock")
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
