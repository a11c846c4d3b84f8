"""Walk library roots and diff what is on disk against the catalog: new, changed, unchanged, removed."""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

IMAGE_EXTENSIONS = frozenset({
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".gif", ".bmp", ".dib", ".tif", ".tiff",
    ".heic", ".heif", ".avif",
})


@dataclass(frozen=True)
class FileStat:
    path: str  # absolute, normalised
    size: int
    mtime: float


@dataclass
class ScanResult:
    files: list[FileStat] = field(default_factory=list)
    ignored: int = 0  # files without an image extension
    # (path, why) for folders we could not list and files we could not stat: the scan cannot tell what
    # is under them, so the catalog keeps every photo it knows there (``Index._diff``)
    unreadable: list[tuple[str, str]] = field(default_factory=list)


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def normalise_root(path: str | Path) -> str:
    """Absolute path with symlinks resolved, so the same file is never registered twice."""
    return os.path.realpath(os.path.abspath(os.path.expanduser(str(path))))


def _walk(root: str, result: ScanResult) -> Iterator[FileStat]:
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            result.unreadable.append((folder, exc.strerror or str(exc)))
            continue
        for entry in sorted(entries, key=lambda e: e.name):
            try:
                if entry.is_dir(follow_symlinks=False):
                    if not entry.name.startswith("."):
                        stack.append(entry.path)
                    continue
                if not entry.is_file(follow_symlinks=False):
                    continue  # symlinks and specials: the real file is indexed where it lives
                if not is_image_name(entry.name):
                    result.ignored += 1
                    continue
                st = entry.stat(follow_symlinks=False)
                yield FileStat(entry.path, st.st_size, st.st_mtime)
            except OSError as exc:
                result.unreadable.append((entry.path, exc.strerror or str(exc)))


def scan(roots: Iterable[str]) -> ScanResult:
    """Every image-named file under the roots (a root may also be a single file)."""
    result = ScanResult()
    seen: set[str] = set()
    for root in roots:
        if os.path.isfile(root):
            try:
                st = os.stat(root)
            except OSError as exc:
                result.unreadable.append((root, exc.strerror or str(exc)))
                continue
            candidates: Iterable[FileStat] = [FileStat(root, st.st_size, st.st_mtime)]
        else:
            candidates = _walk(root, result)
        for f in candidates:
            if f.path not in seen:
                seen.add(f.path)
                result.files.append(f)
    return result


def under_root(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)
