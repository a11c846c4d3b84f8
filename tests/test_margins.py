"""Where a picture's content lies (indexer/margins.py) and the link features' thumbnail of it."""
from __future__ import annotations

import random

import numpy as np
from PIL import Image, ImageDraw

from bench import confusers as C
from indexer import features, linkrule, margins
from indexer.config import Settings


def sky() -> Image.Image:
    im = C.low_sky(random.Random(3), None).convert("RGB")
    im.thumbnail((900, 900))
    return im


def test_the_content_box_leaves_plain_padding_out_and_keeps_a_whole_picture() -> None:
    im = sky()
    w, h = im.size
    assert margins.content_box(margins.look(im).plain, im.size) == (0, 0, w, h)
    boxed = C.pad(im, 40, 90, (0, 0, 0))
    x0, y0, x1, y1 = margins.content_box(margins.look(boxed).plain, boxed.size)
    assert abs(x0 - 40) <= 4 and abs(y0 - 90) <= 4 and abs(x1 - (40 + w)) <= 4 and abs(y1 - (90 + h)) <= 4
    assert margins.content_box(np.ones((10, 10), bool), (300, 200)) == (0, 0, 300, 200)  # all fill: all of it


def test_features_keep_the_content_thumbnail_through_the_catalog() -> None:
    boxed = features.extract(C.pad(sky(), 0, 80, (0, 0, 0)))
    again = features.unpack(features.pack(boxed))
    assert boxed.content is not None and np.array_equal(again.content, boxed.content)
    assert np.array_equal(again.thumb, boxed.thumb) and not np.array_equal(again.thumb, again.content)
    assert features.unpack(features.pack(features.extract(sky()))).content is None  # nothing cut: the thumbnail


def test_a_padded_copy_has_the_content_thumbnail_of_its_original() -> None:
    """Letterbox bars and a frame are cut off the content thumbnail (squashed whole, they were not a match)."""
    im = sky()
    original = features.extract(im)
    limit = Settings().pixel_max_distance
    for copy in (C.pad(im, 0, im.height // 6, (0, 0, 0)), C.pad(im, im.width // 10, im.width // 10, (255, 255, 255))):
        whole = np.asarray(copy.resize((features.THUMB, features.THUMB), Image.Resampling.BILINEAR))
        assert linkrule.pixel_distance(original.content_thumb, whole) > limit
        assert linkrule.pixel_distance(original.content_thumb, features.extract(copy).content_thumb) <= limit / 4


def test_a_page_keeps_its_margins_in_the_content_thumbnail() -> None:
    """A page's margins are its layout: inside them every page of a template looks alike."""
    page = Image.new("RGB", (600, 800), (250, 248, 240))
    d = ImageDraw.Draw(page)
    for y in range(120, 700, 40):
        d.line((80, y, 520, y), fill=(40, 40, 40), width=2)
    on_desk = C.pad(page, 60, 60, (60, 50, 40))
    f = features.extract(on_desk)
    assert f.page is not None
    assert np.abs(f.content_thumb[0, 0].astype(int) - (60, 50, 40)).max() <= 2  # the desk is still in the corner
