"""Walk library roots and diff what is on disk against the catalog: new, changed, unchanged, removed.

Nothing is forgotten on weak evidence: a photo leaves the catalog only when the scan read its folder and the
file is really gone (not when its folder could not be listed, and not when a root that had photos scans to none
at all, as an unmounted drive does, unless ``prune_empty``).
"""
from __future__ import annotations

import errno
import os
import stat
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import insert, or_, select

from indexer.batching import chunks
from indexer.catalog import Catalog, Image, ImageStatus, Root
from indexer.catalog.models import utcnow
from indexer.catalog.queries import scalars_in
from indexer.fsnames import MAX_CHARS, storable

IMAGE_EXTENSIONS = frozenset({
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".gif", ".bmp", ".dib", ".tif", ".tiff",
    ".heic", ".heif", ".avif",
})


UNSTORABLE = f"its path is longer than the catalog holds ({MAX_CHARS} characters, bytes that are not UTF-8 count 3)"


@dataclass(frozen=True)
class FileStat:
    path: str  # absolute, normalised
    size: int
    mtime: float


@dataclass
class ScanResult:
    files: list[FileStat] = field(default_factory=list)
    ignored: int = 0  # entries that are not image files (``ignored_why`` says what they were)
    ignored_why: Counter = field(default_factory=Counter)  # reason -> count
    # (path, why) for folders we could not list and files we could not stat: the scan cannot tell what
    # is under them, so the catalog keeps every photo it knows there (``diff``)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    # (path, why) for image files whose name the catalog cannot hold (``fsnames.storable``): each is one failure
    unstorable: list[tuple[str, str]] = field(default_factory=list)


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def normalise_root(path: str | Path) -> str:
    """Absolute path with symlinks resolved, so the same file is never registered twice."""
    return os.path.realpath(os.path.abspath(os.path.expanduser(str(path))))


NOT_AN_IMAGE = "not an image file name"


def _not_a_file(entry: os.DirEntry) -> str:
    """Why a folder entry that is not a regular file is skipped: links and special files are never followed."""
    if entry.is_symlink():
        try:
            os.stat(entry.path)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return "symbolic link loop"
            return "broken symbolic link"
        return "symbolic link (not followed)"
    mode = entry.stat(follow_symlinks=False).st_mode
    if stat.S_ISFIFO(mode):
        return "FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "device or other special file"


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
                if not entry.is_file(follow_symlinks=False):  # the real file is indexed where it lives
                    result.ignored += 1
                    result.ignored_why[_not_a_file(entry)] += 1
                    continue
                if not is_image_name(entry.name):
                    result.ignored += 1
                    result.ignored_why[NOT_AN_IMAGE] += 1
                    continue
                if not storable(entry.path):
                    result.unstorable.append((entry.path, UNSTORABLE))
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
            if not storable(root):
                result.unstorable.append((root, UNSTORABLE))
                continue
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


@dataclass
class Diff:
    """What a scan changes in the catalog (``diff``)."""

    todo: list[int] = field(default_factory=list)  # new or changed photos, now pending: to embed
    removed: list[int] = field(default_factory=list)  # really gone from disk: to forget
    unchanged: int = 0
    changed: int = 0  # of the todo, photos that were indexed with other content
    kept: int = 0  # not found, but under a folder the scan could not read (or an emptied root): kept
    warnings: list[str] = field(default_factory=list)


def register_roots(catalog: Catalog, roots: list[str]) -> dict[str, int]:
    """The catalog id of each root, registered if new."""
    out: dict[str, int] = {}
    with catalog.session() as s:
        for r in roots:
            row = s.scalar(select(Root).where(Root.path == r))
            if row is None:
                row = Root(path=r)
                s.add(row)
                s.flush()
            out[r] = row.id
    return out


def diff(catalog: Catalog, model_id: str, roots: list[str], root_ids: dict[str, int], files: list[FileStat], *,
         unreadable: Iterable[str] = (), prune_empty: bool = False) -> Diff:
    """Register new files, reset changed ones (or ones without a vector of ``model_id``) to pending.

    A known photo the scan did not find is removed only when it is really gone: not when it lies
    under a folder (or is a file) in ``unreadable``, not when it still exists, and not when its
    root scanned to no photos at all (an unmounted drive leaves an empty mount point) unless
    ``prune_empty``."""
    on_disk = {f.path: f for f in files}
    unreadable = sorted(set(unreadable))
    out = Diff()
    with catalog.session() as s:
        known: dict[str, Image] = {}
        for r in roots:
            like = r if os.path.isfile(r) else r.rstrip(os.sep) + os.sep + "%"
            for img in s.scalars(select(Image).where(or_(Image.path == r, Image.path.like(like)))):
                if under_root(img.path, r):
                    known[img.path] = img
        emptied = set() if prune_empty else _emptied_roots(roots, known, on_disk, unreadable, out)
        for path, img in known.items():
            f = on_disk.get(path)
            if f is None:
                unsure = any(under_root(path, u) for u in unreadable) or any(under_root(path, r) for r in emptied)
                if unsure or (gone := is_gone(path)) is None:
                    out.kept += 1
                elif gone:
                    out.removed.append(img.id)  # else it exists, just not where the scan looks (a hidden folder)
            elif img.status == ImageStatus.indexed and img.bytes == f.size and img.mtime == f.mtime \
                    and img.model_id == model_id:
                out.unchanged += 1
            else:
                if img.bytes != f.size or img.mtime != f.mtime:
                    img.decode_crashes = 0  # new content: its decoder gets a fresh try
                    if img.status == ImageStatus.indexed:
                        out.changed += 1
                img.status, img.bytes, img.mtime = ImageStatus.pending, f.size, f.mtime
                out.todo.append(img.id)
        root_of = sorted(root_ids, key=len, reverse=True)
        new = [f for p, f in on_disk.items() if p not in known]
        for chunk in chunks(new, 1000):
            rows = [{"path": f.path, "bytes": f.size, "mtime": f.mtime, "status": ImageStatus.pending, "linked": False,
                         "root_id": next((root_ids[r] for r in root_of if under_root(f.path, r)), None),
                         "first_seen_at": utcnow()}
                    for f in chunk]
            s.execute(insert(Image), rows)
        out.todo.extend(scalars_in(s, select(Image.id), Image.path, [f.path for f in new]))
    out.todo.sort()
    return out


def _emptied_roots(roots: list[str], known: dict, on_disk: dict, unreadable: list[str], out: Diff) -> set[str]:
    """Folder roots that had photos in the catalog and now scan to none (and were readable)."""
    emptied: set[str] = set()
    for r in roots:
        if not os.path.isdir(r) or r in unreadable:
            continue
        had = sum(1 for p in known if under_root(p, r))
        if had and not any(under_root(p, r) for p in on_disk):
            emptied.add(r)
            out.warnings.append(
                f"{r} has no photos any more but {had} were indexed under it: nothing removed (an unmounted "
                f"drive or share leaves an empty folder). If you really emptied it, ingest it with --prune-empty "
                f"(API: \"prune_empty\": true).")
    return emptied


def is_gone(path: str) -> bool | None:
    """True when ``path`` no longer exists as a regular file, False when it does, None when we cannot
    tell (permission denied, I/O error): a photo is removed only on True."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        return True if exc.errno in (errno.ENOENT, errno.ENOTDIR) else None
    return not stat.S_ISREG(st.st_mode)  # replaced by a link or a folder: the scan indexes those elsewhere
