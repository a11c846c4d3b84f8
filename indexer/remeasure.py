"""Keeper evidence for grouped photos measured by an older ``keeper.measure`` (or never measured), and keepers
chosen by an older rule.

A new measure (``keeper.VERSION``) would otherwise leave every photo indexed before it to the fallback rule (most
pixels first) until its file changed. After each link step, the grouped photos whose evidence is stale are read
once more, measured as the decode workers measure (``decodepool.measure_file``: also the camera's capture time,
which bulk review reads), and their groups' keepers are chosen again. Only grouped photos: a photo in no group
needs no keeper. A new ranking (``keeper.choice_id``) reads no file: ``rechoose`` chooses every group's keeper
again from what the catalog holds.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import or_, select, update

from indexer import keeper
from indexer.catalog import Image, ImageStatus
from indexer.catalog.models import DupGroup
from indexer.decodepool import measure_file
from indexer.grouping import refresh_groups, regroup
from indexer.locks import catalog_lock
from indexer.parts import Parts
from indexer.progress import Progress

CHUNK = 256  # photos measured, or groups refreshed, between commits and progress reports
CHOICE_KEY = "keeper_choice"  # the catalog's meta key: ``keeper.choice_id`` of the rule the keepers were chosen by


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


def rechoose(ix: Parts, progress: Progress | None = None) -> int:
    """Choose every group's keeper again when the stored ones were chosen by another rule (``keeper.choice_id``;
    a catalog with no group yet only records it); returns how many groups were refreshed. Killed half way, the
    next call starts over: the rule is recorded last."""
    now = keeper.choice_id()
    if ix.catalog.get_meta(CHOICE_KEY) == now:
        return 0
    with ix.catalog.session() as s:
        gids = list(s.scalars(select(DupGroup.id).order_by(DupGroup.id)))
    if gids and progress is not None:
        progress.start(len(gids), "choosing keepers by this release's rule")
    for start in range(0, len(gids), CHUNK):
        with catalog_lock(ix.catalog, "groups"), ix.catalog.session() as s:
            refresh_groups(s, gids[start:start + CHUNK], ix.store.get)
        if progress is not None:
            progress.advance(min(start + CHUNK, len(gids)), 0)
    ix.catalog.set_meta(CHOICE_KEY, now)
    return len(gids)
