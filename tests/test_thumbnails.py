"""Thumbnails decode like serving: 16-bit images are rescaled, not clipped to white."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from indexer.thumbnails import thumbnail


def test_16_bit_thumbnail_shows_the_picture(tmp_path: Path) -> None:
    x = np.mgrid[0:300, 0:400][1]
    deep = (x * 160).astype(np.uint16)  # 0..63840 left to right: every value past 255 would clip to white
    Image.fromarray(deep).save(tmp_path / "deep.png")
    out = thumbnail(tmp_path / "deep.png", sha256="ab" * 32, size=128, thumbnails_dir=tmp_path / "thumbs",
                    max_pixels=10**8)
    grey = np.asarray(Image.open(out).convert("L"), dtype=np.float64)
    assert grey.shape == (96, 128)
    assert grey[:, :8].mean() < 30 and grey[:, -8:].mean() > 225  # black on the left, white on the right
    assert abs(grey.mean() - 127.5) < 10


def test_bad_files_raise_the_typed_errors_ingest_raises(tmp_path: Path) -> None:
    """thumbnail opens through indexer.decode.open_image: the same ImageError for each kind of bad file."""
    from indexer.errors import ImageError

    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "notes.png").write_text("not a picture\n")
    Image.new("1", (1500, 1000)).save(tmp_path / "bomb.png")  # 1.5 MP in a few hundred bytes
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(buf, "JPEG")
    (tmp_path / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    want = {"empty.jpg": "empty", "notes.png": "not-an-image", "cut.jpg": "corrupt", "bomb.png": "too-large",
            "gone.jpg": "unreadable"}
    for name, reason in want.items():
        with pytest.raises(ImageError) as info:
            thumbnail(tmp_path / name, sha256=f"{len(name):064x}", size=128, thumbnails_dir=tmp_path / "thumbs",
                      max_pixels=1_000_000)
        assert info.value.reason == reason, name
