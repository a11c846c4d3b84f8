"""The suggested keeper is the original (issue 27): each kind of copy, ingested beside its original through the
real index (Milvus Lite + SQLite), loses to it; a user's "keep" still overrides the suggestion.

Each copy's file is dated *before* its original (a copy restored from a backup): file age must not be what
decides. The rule before issue 27 (most pixels, then EXIF, then the oldest file) kept every one of these copies.
"""
from __future__ import annotations

import io
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw, ImageOps

from api.main import create_app
from indexer import keeper, resolution
from indexer.index import Index
from tests.conftest import photo_files

SOURCE = 9  # the ostrich: a photo with fine texture


def padded(im: Image.Image) -> Image.Image:
    side = max(im.size)
    canvas = Image.new("RGB", (side, side), (0, 0, 0))
    canvas.paste(im, ((side - im.width) // 2, (side - im.height) // 2))
    return canvas


def grey(im: Image.Image) -> Image.Image:
    return ImageOps.grayscale(im).convert("RGB")


def zoomed_crop(im: Image.Image) -> Image.Image:
    """The middle 60 % blown back up to the photo's size (same pixel count as the original)."""
    w, h = im.size
    return im.crop((w // 5, h // 5, w * 4 // 5, h * 4 // 5)).resize((w, h), Image.BICUBIC)


def recompressed(im: Image.Image) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=12)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def captioned(im: Image.Image) -> Image.Image:
    im = im.copy()
    w, h = im.size
    d = ImageDraw.Draw(im)
    d.rectangle((0, int(h * 0.84), w, h), fill=(0, 0, 0))
    d.text((10, int(h * 0.88)), "summer 2019", fill=(255, 255, 255))
    return im


def upscaled(im: Image.Image) -> Image.Image:
    return im.resize((im.width * 2, im.height * 2), Image.BICUBIC)


def _pair(root: Path, edit: Callable[[Image.Image], Image.Image]) -> tuple[Path, Path]:
    """The original and its copy in ``root``, both JPEG quality 92; the copy's file is the older one."""
    root.mkdir(parents=True)
    im = Image.open(photo_files(1, offset=SOURCE)[0]).convert("RGB")
    original, copy = root / "original.jpg", root / "copy.jpg"
    im.save(original, "JPEG", quality=92)
    edit(im).save(copy, "JPEG", quality=92)
    os.utime(copy, (1_000_000_000, 1_000_000_000))
    os.utime(original, (1_500_000_000, 1_500_000_000))
    return original, copy


def _only_group(index: Index) -> dict:
    groups = index.groups()
    assert len(groups) == 1, "the copy was not grouped with its original"
    return groups[0]


@pytest.mark.parametrize("edit", [upscaled, padded, grey, zoomed_crop, recompressed, captioned],
                         ids=lambda f: f.__name__)
def test_copy_loses_to_its_original(tmp_path: Path, settings_factory, edit) -> None:
    original, copy = _pair(tmp_path / "lib", edit)
    with Index(settings_factory()) as index:
        index.ingest([str(tmp_path / "lib")])
        g = _only_group(index)
    by_path = {m["path"]: m for m in g["members"]}
    assert by_path[str(original)]["id"] == g["keeper"], g["keeper_reason"]
    assert g["members"][0]["path"] == str(original)  # the keeper is listed first
    lost = by_path[str(copy)]
    assert lost["decided_by"] not in (None, "tie")  # the picture decided, not the file's age
    assert lost["effective_pixels"] and lost["detail"] is not None  # the evidence is shown per member
    assert g["keeper_reason"].startswith(("the others are", "only colour copy"))


def test_grey_copy_reason_and_user_keep_overrides(tmp_path: Path, settings_factory) -> None:
    original, copy = _pair(tmp_path / "lib", grey)
    with Index(settings_factory()) as index:
        index.ingest([str(tmp_path / "lib")])
        g = _only_group(index)
        assert g["keeper_reason"] == "only colour copy"
        assert g["best"]["colour"] == g["keeper"]
        ids = {m["path"]: m["id"] for m in g["members"]}
        with index.catalog.session() as s:  # the user keeps the grey copy: the original is moved, not the copy
            resolution.resolve(s, group_id=g["id"], action="move_others", keep=[ids[str(copy)]],
                               quarantine_dir=index.settings.quarantine_dir, vectors_fn=index.store.get,
                               commit=s.commit)
    assert copy.exists() and not original.exists()
    assert any(p.is_file() for p in index.settings.quarantine_dir.rglob("*"))  # moved, not deleted


def test_group_page_shows_why_the_keeper_won(tmp_path: Path, settings_factory) -> None:
    """The review page puts the keeper first, marks the best value of each attribute, and says what each copy
    lost on, in words."""
    _pair(tmp_path / "lib", grey)
    settings = settings_factory()
    with Index(settings) as index:
        index.ingest([str(tmp_path / "lib")])
        gid = _only_group(index)["id"]
    with TestClient(create_app(settings)) as c:
        html = c.get(f"/ui/groups/{gid}").text
    cards = re.split(r'<div class="member(?: keeper)?" data-id=', html)[1:]
    assert "original.jpg" in cards[0] and "suggested keeper" in cards[0]
    assert '<li class="top">colour' in cards[0] and "<li>grey</li>" in cards[1]
    assert "not kept: less colour (grey or faded)" in cards[1]


@pytest.mark.parametrize("size", [(1, 1), (2, 50), (16, 16), (300, 200), (40, 3000)])
def test_measure_takes_tiny_thin_and_plain_pictures(size: tuple[int, int]) -> None:
    a = keeper.measure(Image.new("RGB", size, (40, 40, 40)))
    assert a.detail_scale == 1.0 and a.border == 0.0 and a.analysed_side == max(size)
    assert a.effective_pixels(*size) == size[0] * size[1]
