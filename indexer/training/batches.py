"""Which bank views make up a training batch."""
from __future__ import annotations

import random

__all__ = ["draw_batch", "lookalike_batch"]


def lookalike_batch(rng: random.Random, lookalikes: list[list[int]], size: int) -> list[int]:
    """``size`` distinct photos: half drawn at random, each followed by its nearest photo in the teacher's
    eyes that is not in the batch yet. Look-alike photos (two beetles) set the duplicate threshold on
    new photos, and in random batches of 16 of 600 they rarely meet, so KoLeo never pushes them apart."""
    n = len(lookalikes)
    size = min(size, n)
    chosen: list[int] = []
    taken: set[int] = set()
    while len(chosen) < size:
        k = rng.choice([i for i in range(n) if i not in taken])
        chosen.append(k)
        taken.add(k)
        if len(chosen) < size:
            mate = next(j for j in lookalikes[k] if j not in taken)
            chosen.append(mate)
            taken.add(mate)
    return chosen


def draw_batch(rng: random.Random, by_photo: list[list[int]], photos: int, views: int,
               lookalikes: list[list[int]] | None = None) -> list[int]:
    """Bank view indices of one batch: ``photos`` photos (at random, or in look-alike pairs when their ranking
    is given), ``views`` of each photo's views."""
    if lookalikes is not None:
        chosen = lookalike_batch(rng, lookalikes, photos)
    else:
        chosen = rng.sample(range(len(by_photo)), min(photos, len(by_photo)))
    return [v for k in chosen for v in rng.sample(by_photo[k], min(views, len(by_photo[k])))]
