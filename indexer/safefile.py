"""A photo's file as the catalog knows it: still a regular file, still the indexed content, opened without
following a link swapped in for it, and only under a library root or the quarantine.

Used before a decision moves files (``indexer/resolution.py``) and before the API serves a file or makes a
thumbnail. Size and mtime are compared first; the SHA-256 is read only when they differ (a copy that kept its
bytes but not its mtime is still the same photo).
"""
from __future__ import annotations

import errno
import hashlib
import os
import stat
from typing import BinaryIO

from indexer.errors import DupesiftError

CHUNK = 1 << 20


class NotServable(DupesiftError):
    """The file is gone, was replaced (a link, a folder, other content) or lies outside every allowed folder."""


def _sha256(f: BinaryIO) -> str:
    h = hashlib.sha256()
    for block in iter(lambda: f.read(CHUNK), b""):
        h.update(block)
    f.seek(0)
    return h.hexdigest()


def _same(f: BinaryIO, st: os.stat_result, size: int, mtime: float, sha256: str | None) -> bool:
    if st.st_size != size:
        return False
    return st.st_mtime == mtime or (sha256 is not None and _sha256(f) == sha256)


def open_nofollow(path: str) -> BinaryIO:
    """``path`` opened for reading, refusing a symbolic link as its last part (``O_NOFOLLOW``) and anything
    that is not a regular file (a FIFO would block the reader). Raises ``NotServable``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise NotServable(f"{path} is gone") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotServable(f"{path} is a symbolic link now, not the indexed file") from None
        raise NotServable(f"cannot open {path}: {exc.strerror or exc}") from None
    f = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        f.close()
        raise NotServable(f"{path} is not a regular file any more")
    os.set_blocking(fd, True)
    return f


def check_unchanged(path: str, *, size: int, mtime: float, sha256: str | None) -> str | None:
    """None when ``path`` is a regular file (not a link) holding the indexed content; else why not."""
    try:
        f = open_nofollow(path)
    except NotServable as exc:
        return str(exc)
    with f:
        if not _same(f, os.fstat(f.fileno()), size, mtime, sha256):
            return f"{path} has changed since it was indexed (rescan it first)"
    return None


def open_indexed(path: str, *, size: int, mtime: float, sha256: str | None, folders: list[str]) -> BinaryIO:
    """The indexed file at ``path``, open for reading, when it is a regular file inside ``folders`` that still
    holds the indexed content. Raises ``NotServable`` otherwise."""
    real = os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))  # last part: O_NOFOLLOW
    if not any(real.startswith(os.path.realpath(d).rstrip(os.sep) + os.sep) for d in folders):
        raise NotServable(f"{path} is outside the library roots and the quarantine")
    f = open_nofollow(real)
    try:
        if not _same(f, os.fstat(f.fileno()), size, mtime, sha256):
            raise NotServable(f"{path} has changed since it was indexed (rescan it first)")
    except BaseException:
        f.close()
        raise
    return f
