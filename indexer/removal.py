"""Forgetting photos deleted from disk: their vectors, their pairs and their place in groups."""
from __future__ import annotations

from sqlalchemy import delete, select, update

from indexer.catalog import DupGroup, Image
from indexer.catalog.queries import execute_in, rows_in, scalars_in
from indexer.grouping import regroup
from indexer.locks import catalog_lock
from indexer.pairstore import delete_pairs_of
from indexer.parts import Parts


def remove(ix: Parts, image_ids: list[int]) -> None:
    """Forget photos (under the lock ``groups``: their groups are recomputed without them)."""
    if not image_ids:
        return
    with catalog_lock(ix.catalog, "groups"):
        ix.store.delete(image_ids)
        with ix.catalog.session() as s:
            gids = {g for g in scalars_in(s, select(Image.group_id), Image.id, image_ids) if g is not None}
            delete_pairs_of(s, image_ids)
            execute_in(s, delete(Image), Image.id, image_ids)
            survivors: set[int] = set()
            live: set[int] = set()
            for i, g in rows_in(s, select(Image.id, Image.group_id), Image.group_id, gids):
                survivors.add(i)
                live.add(g)
            execute_in(s, delete(DupGroup), DupGroup.id, gids - live)  # every member gone: regroup never sees these
            # the link step leaves out pairs of photos a group already joined; without the removed photo such a
            # pair may be what holds its group together: the next link step decides the survivors' pairs again
            execute_in(s, update(Image).values(linked=False), Image.id, survivors)
            regroup(s, survivors, ix.store.get)
