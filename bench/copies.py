"""Score a library of originals and their copies (``bench/perspective.py``, ``bench/padded.py``): ingest it at
the given settings through the service and count pairs, false pairs and each kind of copy found."""
from __future__ import annotations

import shutil
from collections.abc import Hashable
from pathlib import Path

from indexer.config import Settings
from indexer.index import Index


def run(lib: Path, data: Path, groups: dict[str, dict[Hashable, str]], **settings: float) -> dict:
    """Ingest ``lib`` into a fresh ``data`` dir with ``settings`` and score it against ``groups`` ({original file
    name: {kind of copy: copy file name}}): pairs, false pairs, pair precision, recall per kind."""
    shutil.rmtree(data, ignore_errors=True)
    with Index(Settings(data_dir=data, **settings)) as index:
        index.ingest([str(lib)])
        group_of = {Path(m["path"]).name: g["id"] for g in index.groups() for m in g["members"]}
    owner = {c: o for o, copies in groups.items() for c in copies.values()} | {o: o for o in groups}
    pred = [(a, b) for a in group_of for b in group_of if a < b and group_of[a] == group_of[b]]
    false = sum(owner[a] != owner[b] for a, b in pred)
    kinds = sorted({k for copies in groups.values() for k in copies}, key=str)
    recall = {k: sum(group_of.get(o) is not None and group_of.get(o) == group_of.get(c[k]) for o, c in groups.items())
              / len(groups) for k in kinds}
    return {"pairs": len(pred), "false": false, "precision": 1 - false / len(pred) if pred else 1.0, "recall": recall}
