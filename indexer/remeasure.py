"""Keeper evidence for grouped photos measured by an older ``keeper.measure`` (or never measured).

A new measure (``keeper.VERSION``) would otherwise leave every photo indexed before it to the fallback rule (most
pixels first) until its file changed. After each link step, the grouped photos whose evidence is stale are read
once more, measured as the decode workers measure (``decodepool.measure_file``: also the camera's capture time,
which bulk review reads), and their groups' keepers are chosen again. Only grouped photos: a photo in no group
needs no keeper.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import or_, select, update

from indexer import keeper
from indexer.catalog import Image, ImageStatus
from indexer.decodepool import measure_file
from indexer.grouping import regroup
from indexer.locks import catalog_lock
from indexer.parts import Parts
from indexer.progress import Progress

CHUNK = 256  # photos measured between commits and progress reports


def stale(ix: Parts) -> list[tuple[int, str, str | None]]:
    """(id, path, content hash) of the grouped photos whose keeper evidence is not ``keeper.VERSION``'s."""
    with ix.catalog.session() as s:
        rows = s.execute(select(Image.id, Image.path, Image.sha256).where(
            Image.group_id.is_not(None), Image.status == ImageStatus.indexed,
            or_(Image.measured.is_(None), Image.measured != keeper.VERSION)).order_by(Image.id))
        return [(i, p, h) for i, p, h in rows]


def remeasure(ix: Parts, progress: Progress | None = None) -> int:
    """Measure the stale grouped photos again and refresh their groups; returns how many were measured. A file
    that cannot be read now, or whose content changed since it was indexed, is left for the next ingest."""
    todo = stale(ix)
    if not todo:
        return 0
    st = ix.settings
    if progress is not None:
        progress.start(len(todo), "measuring photos for the keeper")
    done = 0
    with ThreadPoolExecutor(st.decode_workers or os.cpu_count() or 1) as pool:
        for start in range(0, len(todo), CHUNK):
            chunk = todo[start:start + CHUNK]
            got = pool.map(lambda row: measure_file(row[1], st.max_pixels, st.max_file_bytes, ix.spec.input_size),
                           chunk)
            measured = {i: a for (i, _, sha), (now, a) in zip(chunk, got, strict=True)
                        if a is not None and now == sha}
            with catalog_lock(ix.catalog, "groups"), ix.catalog.session() as s:
                for i, a in measured.items():
                    s.execute(update(Image).where(Image.id == i).values(**keeper.columns(a)))
                regroup(s, measured, ix.store.get)  # keepers, and bulk review's hold on groups of two moments
            done += len(measured)
            if progress is not None:
                progress.advance(min(start + CHUNK, len(todo)), 0)
    return done
