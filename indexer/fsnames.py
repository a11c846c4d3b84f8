"""File names as the catalog stores and shows them: Linux names are bytes, the catalog's text is UTF-8.

Python gives a name that is not UTF-8 as a ``str`` with lone surrogates (``os.fsdecode``'s surrogateescape),
which no UTF-8 database or JSON encoder accepts. ``to_text`` writes each such byte as ``MARK`` + two hex
digits (and a literal ``MARK`` as two of them), so every name has one UTF-8 form and ``from_text`` gives back
the exact bytes. A name without ``MARK`` and without undecodable bytes (all but a few) is stored unchanged,
so folder prefixes (``LIKE 'root/%'``) still match.
"""
from __future__ import annotations

import re

MAX_CHARS = 4096  # the catalog's path column: a longer stored form is one failed file, not a failed ingest
MARK = "\ufffd"  # the replacement character: where a name's undecodable byte was, readable as such
_ESCAPED = re.compile(f"{MARK}({MARK}|[0-9A-F]{{2}})")
_RAW = re.compile(f"[{MARK}\udc80-\udcff]")


def to_text(path: str) -> str:
    """The UTF-8-safe form of ``path`` (a ``str`` from ``os.fsdecode``, surrogateescape)."""
    if _RAW.search(path) is None:
        return path

    def esc(m: re.Match) -> str:
        c = m.group(0)
        return MARK * 2 if c == MARK else f"{MARK}{ord(c) - 0xDC00:02X}"

    return _RAW.sub(esc, path)


def storable(path: str) -> bool:
    """Whether the catalog can hold ``path`` (its stored form fits the column)."""
    return len(to_text(path)) <= MAX_CHARS


def from_text(text: str) -> str:
    """The path ``to_text`` made ``text`` from (``os.fsencode`` of it gives the name's bytes)."""
    if MARK not in text:
        return text

    def unesc(m: re.Match) -> str:
        v = m.group(1)
        return MARK if v == MARK else chr(0xDC00 + int(v, 16))

    return _ESCAPED.sub(unesc, text)
