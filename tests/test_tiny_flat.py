"""Tiny and flat pictures are not duplicates of each other by cosine alone (issue 28, also seen: a red 1-pixel
PNG was grouped with an all-black 15000² PNG at cosine 0.71)."""
from __future__ import annotations

import shutil
from pathlib import Path

from PIL import Image

from indexer.config import Settings
from indexer.index import Index
from tests.conftest import photo_files


def test_a_red_pixel_and_a_black_page_are_not_grouped(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    root.mkdir()
    Image.new("RGB", (1, 1), (255, 0, 0)).save(root / "red1px.png")
    Image.new("RGB", (6000, 6000), (0, 0, 0)).save(root / "black.png")
    Image.new("RGB", (1, 1), (250, 5, 5)).save(root / "nearly-red1px.png")  # the same colour, re-encoded
    shutil.copy(photo_files(1, offset=660)[0], root / "photo.jpg")
    with Index(Settings(data_dir=tmp_path / "data", decode_workers=1)) as index:
        s = index.ingest([str(root)])
        assert s.indexed == 4 and not s.failed, s.failed
        groups = index.groups()
    # the two reds match pixel for pixel (the low-texture rule's colour check); the black page joins nothing
    assert [sorted(Path(m["path"]).name for m in g["members"]) for g in groups] == [["nearly-red1px.png",
                                                                                      "red1px.png"]]
