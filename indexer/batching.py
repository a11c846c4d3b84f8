"""Split id lists into bounded chunks (SQL IN lists, Milvus calls)."""
from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def chunks(items: Iterable[T], n: int = 500) -> Iterator[list[T]]:
    """Consecutive lists of at most ``n`` items."""
    it = iter(items)
    while chunk := list(itertools.islice(it, n)):
        yield chunk
