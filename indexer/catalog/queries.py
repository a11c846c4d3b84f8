"""Queries over many ids: one statement per chunk of an ``IN`` list, and the escaped ``LIKE`` prefix.

Every catalog query that filters by a list of ids goes through ``rows_in``, ``scalars_in`` or ``execute_in``
(SQLite allows 32,766 bound parameters per statement, PostgreSQL 65,535: a million ids never fit one).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from sqlalchemy import ColumnElement, Executable, Select, select
from sqlalchemy.orm import Session

from indexer.batching import chunks
from indexer.catalog.models import Image

CHUNK = 500  # ids per IN list

# A column (filtered with ``column.in_(chunk)``) or a function of the chunk that returns the filter.
Filter = Any | Callable[[list], ColumnElement[bool]]


def _where(column: Filter, chunk: list) -> ColumnElement[bool]:
    return column.in_(chunk) if hasattr(column, "in_") else column(chunk)


def rows_in(session: Session, stmt: Select, column: Filter, ids: Iterable, size: int = CHUNK) -> Iterator[Any]:
    """The rows of ``stmt`` restricted to ``ids`` (sorted, then taken ``size`` at a time)."""
    for chunk in chunks(sorted(ids), size):
        yield from session.execute(stmt.where(_where(column, chunk)))


def scalars_in(session: Session, stmt: Select, column: Filter, ids: Iterable, size: int = CHUNK) -> Iterator[Any]:
    """The scalars of ``stmt`` restricted to ``ids``."""
    for chunk in chunks(sorted(ids), size):
        yield from session.scalars(stmt.where(_where(column, chunk)))


def execute_in(session: Session, stmt: Executable, column: Filter, ids: Iterable, size: int = CHUNK) -> None:
    """Run an UPDATE or DELETE on the rows of ``ids``."""
    for chunk in chunks(sorted(ids), size):
        session.execute(stmt.where(_where(column, chunk)))  # type: ignore[attr-defined]


def under_prefix(column: ColumnElement[str], prefix: str) -> ColumnElement[bool]:
    """``column LIKE 'prefix%' ESCAPE '\\'``: the prefix's own ``%``, ``_`` and ``\\`` match only themselves
    (SQLite has no default escape character, so without ESCAPE a ``\\%`` never matched)."""
    esc = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return column.like(esc + "%", escape="\\")


def paths_of(session: Session, ids: Iterable[int]) -> dict[int, str]:
    """The file path of each photo of ``ids``."""
    return dict(rows_in(session, select(Image.id, Image.path), Image.id, ids))
