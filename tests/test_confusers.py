"""Specification of trustworthy groups (issue 31): different pictures that look alike stay apart, copies group.

Each case ingests a small library through the real service (Milvus Lite + SQLite, ``Index``) built from
../shared photos and the confuser benchmark's own overlays and generators (bench/confusers.py), and checks
the groups. Preconditions that make a case mean something (a look-alike pair the embedding scores in or above
the verification band, keypoints that agree on the overlay) are asserted first, so a case cannot pass because
its confusers were too easy.
"""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter
from sqlalchemy import select

from api.review import compare_rows, pair_evidence
from bench import confusers as C
from bench import probes as P
from indexer import bulk, featurestore, grouping, linkrule, verify
from indexer.catalog import Image as CatalogImage
from indexer.catalog import Pair
from indexer.config import Settings
from indexer.features import LOW_TEXTURE, THUMB
from indexer.index import Index
from tests.conftest import PHOTOS, SHARED

HARVESTMAN, HOUND = PHOTOS / "n01770081_harvestman.JPEG", PHOTOS / "n02089078_black-and-tan_coonhound.JPEG"
UKBENCH = SHARED / "data" / "realdup" / "simbench" / "ukbench"
JEEP, VAN = PHOTOS / "n03594945_jeep.JPEG", PHOTOS / "n03977966_police_van.JPEG"
ANT, COCK = PHOTOS / "n02219486_ant.JPEG", PHOTOS / "n01514668_cock.JPEG"
BOAT = PHOTOS / "n02951358_canoe.JPEG"
TEXT = "when the weekend finally arrives"


def save(root: Path, name: str, im: Image.Image, **kw) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / name
    im.convert("RGB").save(path, **kw)
    return path


def shrunk(im: Image.Image, f: float = 0.6) -> Image.Image:
    return im.resize((max(1, int(im.width * f)), max(1, int(im.height * f))), Image.Resampling.BILINEAR)


def cropped(im: Image.Image, keep: float = 0.9) -> Image.Image:
    w, h = im.size
    return im.crop((int(w * (1 - keep) / 2), int(h * (1 - keep) / 2), int(w * (1 + keep) / 2), int(h * (1 + keep) / 2)))


def keystoned(im: Image.Image, k: float) -> Image.Image:
    """``im`` as photographed from below: its top edge narrowed by ``k`` of the width at each end."""
    w, h = im.size
    return C.perspective(im, [(k * w, 0), (w - k * w, 0), (w, h), (0, h)])


def ingest(lib: Path, settings_factory) -> tuple[list[set[str]], dict[tuple[str, str], float], float, float]:
    """(groups as sets of file names, cosine of every pair of names, threshold, verification band)."""
    with Index(settings_factory()) as index:
        s = index.ingest([str(lib)])
        assert not s.failed, s.failed
        with index.catalog.session() as sess:
            ids = {Path(p).name: i for i, p in sess.execute(select(CatalogImage.id, CatalogImage.path))}
        vec = index.store.get(list(ids.values()))
        cos = {(a, b): float(vec[ids[a]] @ vec[ids[b]]) for a in ids for b in ids}
        groups = [{Path(m["path"]).name for m in g["members"]} for g in index.groups()]
        return groups, cos, index.threshold, index.settings.verify_band


def pair_kinds(settings_factory) -> dict[frozenset[str], str]:
    """The evidence kind of every stored pair, by the two file names."""
    with Index(settings_factory()) as index, index.catalog.session() as s:
        names = {i: Path(p).name for i, p in s.execute(select(CatalogImage.id, CatalogImage.path))}
        return {frozenset((names[a], names[b])): k for a, b, k in s.execute(select(Pair.a_id, Pair.b_id, Pair.kind))}


def together(groups: list[set[str]], a: set[str], b: set[str]) -> bool:
    """True when one group holds a file of ``a`` and a file of ``b``."""
    return any(g & a and g & b for g in groups)


def test_different_photos_with_the_same_caption_stay_apart(tmp_path: Path, settings_factory) -> None:
    """Two look-alike photos under the same tweet-style caption band: the band's text and avatar give keypoints
    that agree on one transform across the image, but the photos differ. A copy of one still groups."""
    lib, r = tmp_path / "lib", random.Random(0)
    jeep = C.caption_tweet(C.photo(JEEP), TEXT, r, "heldout")
    save(lib, "jeep_caption.jpg", jeep, quality=90)
    save(lib, "jeep_caption_copy.jpg", shrunk(jeep), quality=75)
    save(lib, "van_caption.jpg", C.caption_tweet(C.photo(VAN), TEXT, r, "heldout"), quality=90)
    save(lib, "boat_caption.jpg", C.caption_tweet(C.photo(BOAT), TEXT, r, "heldout"), quality=90)
    groups, cos, thr, band = ingest(lib, settings_factory)
    assert cos[("jeep_caption.jpg", "van_caption.jpg")] >= thr - band  # the pair reaches verification
    jeeps = {"jeep_caption.jpg", "jeep_caption_copy.jpg"}
    assert not together(groups, jeeps, {"van_caption.jpg", "boat_caption.jpg"}), (groups, cos[("jeep_caption.jpg", "van_caption.jpg")])
    assert not together(groups, {"van_caption.jpg"}, {"boat_caption.jpg"}), groups
    assert jeeps in groups, groups


def test_the_same_photo_with_different_captions_groups(tmp_path: Path, settings_factory) -> None:
    """One photo under three captions (meme, bar, tweet band) is one picture; another photo under the
    first caption is not."""
    lib, r = tmp_path / "lib", random.Random(1)
    ant = C.photo(ANT)
    save(lib, "ant_meme.jpg", C.caption_meme(ant, TEXT, r, "tune"), quality=90)
    save(lib, "ant_bar.jpg", C.caption_bar(ant, "me at 3am", r, "tune"), quality=90)
    save(lib, "ant_tweet.png", C.caption_tweet(ant, "guess where I am", r, "heldout"))
    save(lib, "cock_meme.jpg", C.caption_meme(C.photo(COCK), TEXT, r, "tune"), quality=90)
    groups, _, _, _ = ingest(lib, settings_factory)
    assert {"ant_meme.jpg", "ant_bar.jpg", "ant_tweet.png"} in groups, groups


def test_two_abstract_images_stay_apart_and_their_copies_group(tmp_path: Path, settings_factory) -> None:
    """Two different skies (soft gradient, other clouds): the embedding puts them above the threshold, as it
    does most smooth pictures; each still groups with its own copies (shrunk, cropped, re-saved as WebP,
    darkened and white-balanced: every pixel moved, which only the thumbnails compared up to a brightness gain
    and colour cast see through; letterboxed and framed: the thumbnails leave the bars and the frame out)."""
    lib = tmp_path / "lib"
    names = {}
    for k in (0, 1):
        sky = C.low_sky(random.Random(k), None)
        sky.thumbnail((1600, 1600))
        names[k] = {f"sky{k}.png", f"sky{k}_small.jpg", f"sky{k}_crop.jpg", f"sky{k}_resaved.webp",
                    f"sky{k}_dark.jpg", f"sky{k}_warm.jpg", f"sky{k}_letterbox.jpg", f"sky{k}_framed.png"}
        save(lib, f"sky{k}.png", sky)
        save(lib, f"sky{k}_dark.jpg", ImageEnhance.Brightness(sky).enhance(0.8), quality=90)
        warm = Image.merge("RGB", [c.point(lambda v, g=g: min(255, round(v * g))) for c, g in
                                   zip(sky.convert("RGB").split(), (1.1, 1.0, 0.88), strict=True)])
        save(lib, f"sky{k}_warm.jpg", warm, quality=90)
        save(lib, f"sky{k}_small.jpg", shrunk(sky, 0.5), quality=80)
        save(lib, f"sky{k}_crop.jpg", cropped(sky, 0.9), quality=85)
        save(lib, f"sky{k}_resaved.webp", sky, quality=85)
        w, h = sky.size
        save(lib, f"sky{k}_letterbox.jpg", C.pad(sky, 0, h // 6, (0, 0, 0)), quality=90)
        save(lib, f"sky{k}_framed.png", C.pad(sky, w // 12, w // 12, (255, 255, 255)))
    for k, copy in ((0, "dark"), (1, "dark"), (0, "warm"), (1, "warm")):  # no pixel match as they are
        a, b = (featurestore.of_file(lib / n, 10**8) for n in (f"sky{k}.png", f"sky{k}_{copy}.jpg"))
        assert a.low_texture and b.low_texture
        assert linkrule.pixel_distance(a.thumb, b.thumb) > Settings().pixel_max_distance, copy
    for k, copy in ((0, "letterbox.jpg"), (1, "framed.png")):  # nor do padded copies, squashed whole
        a, b = (np.asarray(Image.open(lib / n).convert("RGB").resize((THUMB, THUMB), Image.Resampling.BILINEAR))
                for n in (f"sky{k}.png", f"sky{k}_{copy}"))
        assert linkrule.pixel_distance(a, b) > Settings().pixel_max_distance, copy
    groups, cos, thr, _ = ingest(lib, settings_factory)
    assert cos[("sky0.png", "sky1.png")] >= thr - 0.1  # look-alikes to the embedding, not an easy pair
    assert not together(groups, names[0], names[1]), (groups, cos[("sky0.png", "sky1.png")])
    assert names[0] in groups and names[1] in groups, [sorted(g ^ names[k]) for g in groups for k in (0, 1) if g & names[k]]


def test_one_photo_in_two_frames_groups_and_two_photos_in_one_window_stay_apart(tmp_path: Path,
                                                                               settings_factory) -> None:
    """A photo in a film strip and the same photo in a wide mat: the two frames differ over so much of the overlap
    that its content agreement fails, but inside the inliers' box (the photo) everything agrees, so the pair
    groups, as ``framed``. Two other frogs in one phone gallery window give a fit on the window's keypoints; the box
    around those holds both photos, which differ, so they stay apart."""
    lib, st, r = tmp_path / "lib", Settings(), random.Random(0)
    frogs = {}
    for name in ("bullfrog", "tailed_frog", "tree_frog"):
        frogs[name] = C.photo(next(PHOTOS.glob(f"*_{name}.JPEG")))
    frog = frogs["tree_frog"]
    save(lib, "frog_film.jpg", C.frame_film(frog, r), quality=90)
    save(lib, "frog_mat.jpg", C.frame_mat(frog, r), quality=90)
    for name in ("bullfrog", "tailed_frog"):
        save(lib, f"{name}_gallery.jpg", C.chrome_phone_gallery(frogs[name], random.Random(1)), quality=90)
    rule = linkrule.rule_of(st, 0.6)  # geometry does not depend on the threshold
    for pair in (("frog_film.jpg", "frog_mat.jpg"), ("bullfrog_gallery.jpg", "tailed_frog_gallery.jpg")):
        inliers, agree, _, _ = linkrule.geometry(rule, *(featurestore.of_file(lib / n, 10**8) for n in pair))
        assert inliers >= st.verify_min_inliers and agree is not None and agree < st.verify_min_agreement, \
            (pair, inliers, agree)
    groups, cos, threshold, band = ingest(lib, settings_factory)
    assert cos[("bullfrog_gallery.jpg", "tailed_frog_gallery.jpg")] >= threshold - band  # the rule is asked
    assert {"frog_film.jpg", "frog_mat.jpg"} in groups, (groups, cos)
    assert not together(groups, {"bullfrog_gallery.jpg"}, {"tailed_frog_gallery.jpg"}), groups
    kinds = pair_kinds(settings_factory)
    assert kinds[frozenset(("frog_film.jpg", "frog_mat.jpg"))] == "framed", kinds


def test_two_photos_under_one_banner_photo_stay_apart(tmp_path: Path, settings_factory) -> None:
    """A cock and an ant, each under the same banner (a canoe photo across the top, taller than they are): the
    banner's keypoints fit, and inside their box everything agrees over well over a quarter of the picture, even
    its centre, as one photo in two frames would; but the box's own centre lies high, as a frame's photo's does
    not (a frame surrounds it), so the frame test does not link them."""
    lib = tmp_path / "lib"
    banner = C.photo(BOAT)
    for name, path in (("cock", COCK), ("ant", ANT)):
        im = C.photo(path).resize((500, 375))
        out = Image.new("RGB", (500, 375 + 487))
        out.paste(banner.resize((500, 487)), (0, 0))
        out.paste(im, (0, 487))
        save(lib, f"{name}_banner.jpg", out, quality=90)
    st = Settings()
    rule = linkrule.rule_of(st, 0.6)  # geometry does not depend on the threshold
    a, b = (featurestore.of_file(lib / n, 10**8) for n in ("cock_banner.jpg", "ant_banner.jpg"))
    inliers, agree, fits, _ = linkrule.geometry(rule, a, b)
    assert inliers >= st.verify_min_inliers and agree is not None and agree < st.verify_min_agreement, (inliers, agree)
    held = [verify.held_agreement(a.grey, b.grey, fits[0]), verify.held_agreement(b.grey, a.grey, fits[1])]
    assert all(h is not None and h >= st.verify_frame_agreement and share >= linkrule.FRAME_SHARE and not centred
               for h, share, centred in held), held  # only the box's place keeps them apart
    groups, cos, threshold, band = ingest(lib, settings_factory)
    assert cos[("cock_banner.jpg", "ant_banner.jpg")] >= threshold - band  # the rule is asked
    assert not together(groups, {"cock_banner.jpg"}, {"ant_banner.jpg"}), groups


def test_a_soft_small_copy_groups_on_a_weaker_fit(tmp_path: Path, settings_factory) -> None:
    """A blurred, shrunk copy keeps few keypoints: fewer inliers than a sharp copy gives, too many keypoints for
    the cosine alone to decide. It groups on a weaker fit under which the photo agrees closely; two such
    copies of different photos stay apart."""
    lib, st = tmp_path / "lib", Settings()
    copies = {}
    for name, path, blur, f in (("harvestman", HARVESTMAN, 2.0, 0.35), ("hound", HOUND, 2.0, 0.35)):
        im = Image.open(path).convert("RGB")
        save(lib, f"{name}.jpg", im, quality=92)
        save(lib, f"{name}_soft.jpg", shrunk(im.filter(ImageFilter.GaussianBlur(blur)), f), quality=80)
        copies[name] = {f"{name}.jpg", f"{name}_soft.jpg"}
        a, b = (featurestore.of_file(lib / n, 10**8) for n in sorted(copies[name]))
        rule = linkrule.rule_of(st, 0.6)  # geometry does not depend on the threshold
        inliers, *_ = linkrule.geometry(rule, a, b)
        assert st.verify_weak_inliers <= inliers < st.verify_min_inliers, inliers  # a weak fit, not a strong one
        assert min(a.texture, b.texture) >= st.inconclusive_below  # the cosine alone may not link it
    groups, cos, _, _ = ingest(lib, settings_factory)
    assert copies["harvestman"] in groups and copies["hound"] in groups, (groups, cos)
    assert not together(groups, copies["harvestman"], copies["hound"]), groups


def test_a_copy_photographed_at_an_angle_groups_and_shots_of_one_object_stay_apart(
        tmp_path: Path, settings_factory) -> None:
    """A keystoned copy (a photo of the photo, taken from below) is no affine transform of it: under the best
    affine fit the content disagrees, and only a perspective fit lays it flat. Four shots of one object from
    other angles (UKBench) also fit one transform, but the photo under it differs: they stay apart."""
    lib, st = tmp_path / "lib", Settings()
    rule = linkrule.rule_of(st, 0.6)  # geometry does not depend on the threshold
    copies = {}
    for name, path in (("ant", ANT), ("jeep", JEEP)):
        im = Image.open(path).convert("RGB")
        save(lib, f"{name}.jpg", im, quality=92)
        save(lib, f"{name}_angle.jpg", keystoned(im, 0.15), quality=90)
        copies[name] = {f"{name}.jpg", f"{name}_angle.jpg"}
        a, b = (featurestore.of_file(lib / n, 10**8) for n in sorted(copies[name]))
        inliers, agree, _, _ = linkrule.geometry(rule, a, b)
        assert inliers >= st.verify_min_inliers and agree < st.verify_min_agreement, (inliers, agree)
    shots = [f"ukbench{n:05d}.jpg" for n in range(4, 8)]
    for n in shots:
        save(lib, n, Image.open(UKBENCH / n))
    a, b = (featurestore.of_file(UKBENCH / n, 10**8) for n in shots[:2])
    assert linkrule.geometry(rule, a, b)[0] >= st.verify_min_inliers  # one transform: the perspective fit is tried
    groups, cos, _, _ = ingest(lib, settings_factory)
    assert copies["ant"] in groups and copies["jeep"] in groups, (groups, cos)
    assert not any(len(g & set(shots)) > 1 for g in groups), groups


def second_shot(im: Image.Image, shift: float) -> Image.Image:
    """``im`` as a second shot from a step to the side: each point moves by up to ``shift`` px with its depth (the
    scene nearer at the bottom, with one near bump), which no single transform undoes."""
    cv2 = verify._cv2()
    a = np.asarray(im.convert("RGB"))
    h, w = a.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    depth = (yy / h) ** 2 + 0.5 * np.exp(-(((xx - 0.6 * w) / (0.2 * w)) ** 2 + ((yy - 0.4 * h) / (0.2 * h)) ** 2))
    return Image.fromarray(cv2.remap(a, xx + shift * depth, yy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))


def test_two_shots_of_one_scene_stay_apart_and_a_copy_groups(tmp_path: Path, settings_factory) -> None:
    """Two shots of one scene a step apart (a burst, a stereo pair) fit one transform but for the depth: the
    keypoints of near things move further, and their content agrees under the fit as a copy's would. What tells
    them apart is that the fit's residuals move together (``verify.moved``); a copy's are each point's own
    noise."""
    lib, st = tmp_path / "lib", Settings()
    rule = linkrule.rule_of(st, 0.6)
    shots, copies = set(), {}
    for name, path in (("ant", ANT), ("canoe", BOAT)):
        im = C.photo(path)
        save(lib, f"{name}.jpg", im, quality=92)
        save(lib, f"{name}_small.jpg", shrunk(im), quality=80)
        save(lib, f"{name}_next.jpg", second_shot(im, 8.0), quality=92)
        copies[name], shots = {f"{name}.jpg", f"{name}_small.jpg"}, shots | {f"{name}_next.jpg"}
        first, copy, nxt = (featurestore.of_file(lib / f"{name}{k}.jpg", 10**8) for k in ("", "_small", "_next"))
        fits = linkrule.geometry(rule, first, nxt).fits
        assert fits is not None and linkrule.two_shots(fits), [verify.moved(f) for f in fits]
        assert not linkrule.two_shots(linkrule.geometry(rule, first, copy).fits)
    groups, cos, _, _ = ingest(lib, settings_factory)
    assert copies["ant"] in groups and copies["canoe"] in groups, (groups, cos)
    assert not any(g & shots for g in groups), groups


def tiled(seed: int, tile: int = 48, n: tuple[int, int] = (20, 12)) -> Image.Image:
    """A wallpaper of one random motif repeated: plenty of keypoints, each with many look-alikes."""
    rng = np.random.default_rng(seed)
    motif = Image.fromarray(rng.integers(0, 255, (6, 6, 3), dtype=np.uint8))
    motif = motif.resize((tile, tile), Image.Resampling.BICUBIC)
    im = Image.new("RGB", (tile * n[0], tile * n[1]))
    for x in range(n[0]):
        for y in range(n[1]):
            im.paste(motif, (x * tile, y * tile))
    return im


def test_a_repeating_pattern_groups_with_its_copy_by_pixels(tmp_path: Path, settings_factory) -> None:
    """A repeating pattern gives keypoints that the ratio test cannot match (each has many look-alikes), so no
    transform is fitted; its shrunk copy still groups by its thumbnail, and another pattern stays apart."""
    lib, st = tmp_path / "lib", Settings()
    for k in (0, 1):
        save(lib, f"pattern{k}.jpg", tiled(k), quality=90)
        save(lib, f"pattern{k}_small.jpg", shrunk(tiled(k), 0.6), quality=85)
    a, b = (featurestore.of_file(lib / n, 10**8) for n in ("pattern0.jpg", "pattern0_small.jpg"))
    assert min(a.texture, b.texture) >= LOW_TEXTURE and a.page is None  # textured: not the low-texture rule
    check = linkrule.geometry(linkrule.rule_of(st, 0.6), a, b)
    assert check is None or check[0] < st.verify_weak_inliers  # no fit to verify by
    groups, cos, thr, _ = ingest(lib, settings_factory)
    assert cos[("pattern0.jpg", "pattern0_small.jpg")] >= thr
    assert {"pattern0.jpg", "pattern0_small.jpg"} in groups and {"pattern1.jpg", "pattern1_small.jpg"} in groups, \
        (groups, cos)


def test_a_photo_darkened_until_it_looks_like_paper_groups_with_its_original(tmp_path: Path,
                                                                           settings_factory) -> None:
    """An underexposed copy (brightness 0.35, contrast 0.6) keeps almost no keypoints and is mostly one flat tone,
    so it counts as a page; a photo and a page may still link on the cosine alone (two pages may not). The hen's
    look-alike, the cock, stays apart."""
    lib = tmp_path / "lib"
    hen, fish = PHOTOS / "n01514859_hen.JPEG", PHOTOS / "n01443537_goldfish.JPEG"
    for name, path in (("hen", hen), ("fish", fish)):
        im = C.photo(path)
        save(lib, f"{name}.jpg", im, quality=90)
        dark = ImageEnhance.Contrast(ImageEnhance.Brightness(im).enhance(0.35)).enhance(0.6)
        save(lib, f"{name}_dark.jpg", dark, quality=85)
        f = featurestore.of_file(lib / f"{name}_dark.jpg", 10**8)
        assert f.page is not None and f.texture < Settings().inconclusive_below, (name, f.texture)
    save(lib, "cock.jpg", C.photo(COCK), quality=90)
    groups, cos, _, _ = ingest(lib, settings_factory)
    assert {"hen.jpg", "hen_dark.jpg"} in groups and {"fish.jpg", "fish_dark.jpg"} in groups, groups
    assert not together(groups, {"hen.jpg", "hen_dark.jpg"}, {"cock.jpg"}), (groups, cos[("hen.jpg", "cock.jpg")])


def test_a_weak_bridge_does_not_merge_two_clusters(tmp_path: Path, settings_factory) -> None:
    """Two photos with their copies, and one collage that shows both side by side: the collage shares keypoints
    with each photo, but it must not chain the two photos' clusters into one group."""
    lib = tmp_path / "lib"
    ant, cock = C.photo(ANT), C.photo(COCK)
    clusters = {}
    for name, im in (("ant", ant), ("cock", cock)):
        save(lib, f"{name}.jpg", im, quality=92)
        save(lib, f"{name}_small.jpg", shrunk(im), quality=80)
        save(lib, f"{name}_crop.png", cropped(im, 0.88))
        clusters[name] = {f"{name}.jpg", f"{name}_small.jpg", f"{name}_crop.png"}
    collage = Image.new("RGB", (ant.width + cock.width, max(ant.height, cock.height)), (255, 255, 255))
    collage.paste(ant, (0, 0))
    collage.paste(cock, (ant.width, 0))
    save(lib, "collage.jpg", collage, quality=90)
    groups, cos, thr, band = ingest(lib, settings_factory)
    assert cos[("ant.jpg", "cock.jpg")] < thr - band  # the photos themselves are far apart
    assert any(clusters["ant"] <= g for g in groups) and any(clusters["cock"] <= g for g in groups), groups
    assert not together(groups, clusters["ant"], clusters["cock"]), \
        (groups, cos[("ant.jpg", "collage.jpg")], cos[("cock.jpg", "collage.jpg")])


def test_two_invoices_of_one_template_stay_apart_and_a_scan_groups(tmp_path: Path, settings_factory) -> None:
    """Two invoices of one template differ only in their text: their keypoints agree on one transform and the
    coarse content check agrees too, so only the page check (text-scale cells, indexer/pagecheck.py) tells them
    apart. A scan of one (grey, a small turn, noise) still groups with it."""
    from indexer import featurestore
    from indexer.linkrule import geometry

    lib, r = tmp_path / "lib", random.Random(3)
    one, two = C.doc_invoice(0, r), C.doc_invoice(1, r)
    save(lib, "invoice1.png", one)
    save(lib, "invoice2.png", two)
    save(lib, "invoice1_scan.jpg", C._doc_copy(one, random.Random(4), "tune"), quality=90)
    groups, cos, thr, band = ingest(lib, settings_factory)
    with Index(settings_factory()) as index:
        fa, fb = (featurestore.of_file(lib / n, 10**9) for n in ("invoice1.png", "invoice2.png"))
        inliers, agree, _, _ = geometry(index.rule, fa, fb)
        assert fa.page is not None and fb.page is not None
        assert inliers >= index.rule.min_inliers and agree >= index.rule.min_agreement  # geometry alone would link
    assert cos[("invoice1.png", "invoice2.png")] >= thr - band
    assert not together(groups, {"invoice1.png", "invoice1_scan.jpg"}, {"invoice2.png"}), groups
    assert {"invoice1.png", "invoice1_scan.jpg"} in groups, groups


def photographed_invoices(lib: Path, seed: int, photo_seeds: tuple[int, int], settings_factory
                          ) -> tuple[list[set[str]], dict[tuple[str, str], float], float, float]:
    """Two invoices of one template (``seed``) and a phone photo of each under a lamp (``photo_seeds``), as
    invoice1.png, invoice2.png, invoice1_photo.jpg and invoice2_photo.jpg, ingested (``ingest``)."""
    r = random.Random(seed)
    for k, s in enumerate(photo_seeds, start=1):
        page = C.doc_invoice(k - 1, r)
        save(lib, f"invoice{k}.png", page)
        save(lib, f"invoice{k}_photo.jpg", C.lamp_photo(page, random.Random(s)), quality=90)
    return ingest(lib, settings_factory)


def test_a_page_is_kept_over_its_phone_photo(tmp_path: Path, settings_factory) -> None:
    """An invoice and a phone photo of it under a lamp group, both pages to the page check: the clean page is the
    suggested keeper. Its white margin was read as padding and its black on white as a grey copy, so the photo,
    with the desk around the page and the lamp's warm light, won (``keeper.Usual.pages``)."""
    lib = tmp_path / "lib"
    groups, *_ = photographed_invoices(lib, 3, (3, 103), settings_factory)
    assert {"invoice1.png", "invoice1_photo.jpg"} in groups and {"invoice2.png", "invoice2_photo.jpg"} in groups
    with Index(settings_factory()) as index:
        keepers = {Path(m["path"]).name for g in index.groups() for m in g["members"] if m["id"] == g["keeper"]}
    assert keepers == {"invoice1.png", "invoice2.png"}, keepers


def test_an_invoice_photographed_under_a_lamp_groups_and_the_next_invoice_stays_apart(tmp_path: Path,
                                                                                       settings_factory) -> None:
    """A phone photo of a page on a desk under a lamp is not one flat tone, so it was not taken for a page and the
    text check was not asked: the photo of one invoice linked to the next invoice of its template, whose layout
    it shares. Divided by its light it is paper again (``pagecheck.is_page``): each photo groups with its own
    invoice only."""
    from indexer import featurestore, pagecheck
    from indexer.linkrule import geometry

    lib = tmp_path / "lib"
    groups, cos, thr, band = photographed_invoices(lib, 3, (3, 103), settings_factory)
    with Index(settings_factory()) as index:
        original, photo = (featurestore.of_file(lib / n, 10**9) for n in ("invoice1.png", "invoice2_photo.jpg"))
        assert not pagecheck.is_paper(photo.grey)  # not one flat tone as it is
        inliers, agree, _, _ = geometry(index.rule, original, photo)
        assert inliers >= index.rule.min_inliers and agree >= index.rule.min_agreement  # geometry alone would link
    assert cos[("invoice1.png", "invoice2_photo.jpg")] >= thr - band
    assert {"invoice1.png", "invoice1_photo.jpg"} in groups, groups
    assert {"invoice2.png", "invoice2_photo.jpg"} in groups, groups
    assert photo.page is not None  # a page once its light is divided out


def test_phone_photos_of_two_invoices_stay_apart_where_their_text_agrees_at_the_page_bar(tmp_path: Path,
                                                                                        settings_factory) -> None:
    """Two phone photos of different invoices of one template, both softened, find more of each other's text
    cells than two sharp pages do: here at least a lowered ``page_min_agreement`` (0.92) both ways. A pair with a
    photographed page still needs ``pagecheck.LIGHT_AGREEMENT``; each photo still groups with its invoice."""
    from indexer import featurestore
    from indexer.linkrule import geometry, text_agreements

    def lowered(**kw):
        return settings_factory(page_min_agreement=0.92, **kw)

    lib = tmp_path / "lib"
    groups, cos, thr, band = photographed_invoices(lib, 1, (1000, 1001), lowered)
    with Index(lowered()) as index:
        a, b = (featurestore.of_file(lib / n, 10**9) for n in ("invoice1_photo.jpg", "invoice2_photo.jpg"))
        inliers, agree, fits, _ = geometry(index.rule, a, b)
        assert inliers >= index.rule.min_inliers and agree >= index.rule.min_agreement and fits is not None
        text = text_agreements(a, b, fits)
        assert min(text) >= index.rule.page_min_agreement, text  # the bar of two sharp pages would link them
    assert cos[("invoice1_photo.jpg", "invoice2_photo.jpg")] >= thr - band
    assert {"invoice1.png", "invoice1_photo.jpg"} in groups, groups
    assert {"invoice2.png", "invoice2_photo.jpg"} in groups, groups


def test_two_invoices_with_the_same_items_and_other_numbers_stay_apart(tmp_path: Path, settings_factory) -> None:
    """Two invoices of one template with the same items, whose invoice number, date, customer, quantities and
    amounts differ: at the keypoints' frame (480 px) a digit is a few pixels tall, so they find almost all of
    each other's text cells, under ``page_min_agreement`` still. A re-saved copy of one groups with it."""
    from indexer import featurestore
    from indexer.linkrule import geometry, text_agreements

    pages = list(P.phone_pages(random.Random(3)))  # the phonepages probe's invoices 5 and 61
    lib = tmp_path / "lib"
    save(lib, "invoice1.png", pages[5][1])
    save(lib, "invoice2.png", pages[61][1])
    save(lib, "invoice1_copy.jpg", pages[5][1], quality=80)
    groups, cos, thr, _ = ingest(lib, settings_factory)
    with Index(settings_factory()) as index:
        a, b = (featurestore.of_file(lib / n, 10**9) for n in ("invoice1.png", "invoice2.png"))
        inliers, agree, fits, _ = geometry(index.rule, a, b)
        assert inliers >= index.rule.min_inliers and agree >= index.rule.min_agreement and fits is not None
        assert 0.9 <= min(text_agreements(a, b, fits)) < index.rule.page_min_agreement
    assert cos[("invoice1.png", "invoice2.png")] >= thr
    assert not together(groups, {"invoice1.png", "invoice1_copy.jpg"}, {"invoice2.png"}), groups
    assert {"invoice1.png", "invoice1_copy.jpg"} in groups, groups


PER_PAGE = 48


def invoices_and_photos(lib: Path) -> Path:
    """Six invoices of one template, a scan of the first, and three photos."""
    r = random.Random(5)
    invoices = [C.doc_invoice(k, r) for k in range(6)]
    for k, im in enumerate(invoices):
        save(lib, f"invoice{k}.png", im)
    save(lib, "invoice0_scan.jpg", C._doc_copy(invoices[0], random.Random(6), "tune"), quality=90)
    for name, path in (("jeep", JEEP), ("van", VAN), ("boat", BOAT)):
        save(lib, f"{name}.jpg", C.photo(path), quality=90)
    return lib


def test_a_page_gets_more_candidates_than_a_photo(tmp_path: Path, settings_factory) -> None:
    """To the embedding every invoice of a template looks alike, so a scan can rank far down among its
    original's neighbours: pages get ``verify_per_page`` candidates, photos ``verify_per_photo``."""
    from indexer import featurestore, linking

    lib = invoices_and_photos(tmp_path / "lib")

    def settings():
        return settings_factory(verify_per_photo=1, verify_per_page=PER_PAGE)

    groups = ingest(lib, settings)[0]
    with Index(settings()) as index, index.catalog.session() as s:
        ids = {Path(p).name: i for i, p in s.execute(select(CatalogImage.id, CatalogImage.path))}
        assert featurestore.pages(s, ids.values()) == {ids[n] for n in ids if n.startswith("invoice")}
        found, _ = linking.neighbours(index, list(ids.values()), len(ids))
    partners = {i: {b if a == i else a for a, b, _ in found if i in (a, b)} for i in ids.values()}
    assert len(partners[ids["invoice0_scan.jpg"]]) >= 6  # every other page within the band
    photos = {ids["jeep.jpg"], ids["van.jpg"], ids["boat.jpg"]}
    assert len([1 for a, b, _ in found if a in photos and b in photos]) <= 3  # one candidate per photo at most
    assert {"invoice0.png", "invoice0_scan.jpg"} in groups, groups


def test_a_page_kept_by_an_older_version_gets_a_pages_candidates(tmp_path: Path, settings_factory) -> None:
    """After an upgrade that changes what link features hold (``features.VERSION``), a photo's kept page flag is
    the old version's: the link step computes its features again before it chooses how many candidates the
    photo gets, so a scan kept as "no page" by the older version still gets a page's candidates."""
    from indexer import features, linking
    from indexer.catalog import Features
    from tests.conftest import packed_as

    lib = invoices_and_photos(tmp_path / "lib")

    def settings():
        return settings_factory(verify_per_photo=1, verify_per_page=PER_PAGE)

    ingest(lib, settings)
    with Index(settings()) as index:
        with index.catalog.session() as s:
            ids = {Path(p).name: i for i, p in s.execute(select(CatalogImage.id, CatalogImage.path))}
            scan = ids["invoice0_scan.jpg"]
            row = s.get(Features, scan)
            assert row.page and row.version == features.VERSION
            row.data, row.page, row.version = packed_as(row.data, features.VERSION - 1), False, features.VERSION - 1
        with index.catalog.session() as s:
            assert featurestore.pages(s, [scan]) == set() and featurestore.stale(s, [scan]) == {scan}
        found, _ = linking.neighbours(index, [scan], len(ids))
        with index.catalog.session() as s:
            assert featurestore.pages(s, [scan]) == {scan} and featurestore.stale(s, [scan]) == set()
    assert len({b if a == scan else a for a, b, _ in found}) >= 6  # every other page within the band, not one


def test_a_heavily_blurred_copy_groups_and_look_alikes_stay_apart(tmp_path: Path, settings_factory) -> None:
    """A heavy blur takes a photo's keypoints and much of its cosine (under the threshold here), not its layout:
    the blurred copy groups with its original on their grey copies, the original blurred as much. A blurred photo
    of the hen's look-alike, the cock, stays apart from the hen; a jeep on a smooth background stays apart from
    the background alone, though the two agree everywhere but under the jeep."""
    lib = tmp_path / "lib"
    save(lib, "hen.jpg", C.photo(PHOTOS / "n01514859_hen.JPEG"), quality=90)
    save(lib, "cock_blur.jpg", C.photo(COCK).filter(ImageFilter.GaussianBlur(6)), quality=85)
    background = C.low_radial(random.Random(2), None).convert("RGB").resize((1024, 768))
    jeep = C.photo(JEEP).resize((143, 107))
    scene = background.copy()
    scene.paste(jeep, (600, 300))
    save(lib, "background.jpg", background, quality=90)
    save(lib, "jeep_on_background.jpg", scene, quality=90)
    pairs = {}
    for name, path in (("magpie", PHOTOS / "n01582220_magpie.JPEG"), ("harvestman", HARVESTMAN)):
        im = C.photo(path)
        save(lib, f"{name}.jpg", im, quality=90)
        save(lib, f"{name}_blur.jpg", im.filter(ImageFilter.GaussianBlur(8)), quality=85)
        pairs[name] = {f"{name}.jpg", f"{name}_blur.jpg"}
        soft = featurestore.of_file(lib / f"{name}_blur.jpg", 10**8)
        assert soft.texture < LOW_TEXTURE, (name, soft.texture)
    plain, busy = (featurestore.of_file(lib / n, 10**8) for n in ("background.jpg", "jeep_on_background.jpg"))
    assert plain.low_texture and not busy.low_texture, (plain.texture, busy.texture)
    assert np.abs(plain.grey.astype(np.float32) - busy.grey).mean() < 3  # alike but for the jeep's corner
    groups, cos, threshold, band = ingest(lib, settings_factory)
    for name in pairs:
        assert threshold - band <= cos[(f"{name}.jpg", f"{name}_blur.jpg")] < threshold, (name, cos)  # no cosine link
    for a, b in (("hen.jpg", "cock_blur.jpg"), ("background.jpg", "jeep_on_background.jpg")):
        assert cos[(a, b)] >= threshold - band, (a, b, cos[(a, b)])  # candidates, so the rule is asked
    assert pairs["magpie"] in groups and pairs["harvestman"] in groups, (groups, cos)
    kinds = pair_kinds(settings_factory)
    assert kinds[frozenset(pairs["magpie"])] == kinds[frozenset(pairs["harvestman"])] == "soft", kinds
    assert not together(groups, {"hen.jpg"}, {"cock_blur.jpg"}), groups
    assert not together(groups, {"background.jpg"}, {"jeep_on_background.jpg"}), groups


def test_a_blurred_copy_also_cropped_or_turned_groups_and_a_blurred_other_shot_stays_apart(
        tmp_path: Path, settings_factory) -> None:
    """A blurred copy that was also cropped or turned a little has neither keypoints nor its original's framing:
    it groups once its grey copy is laid over the original's (ECC alignment). Another shot of one object
    (UKBench), blurred and cropped as much, which the alignment is asked about too, stays apart from the first."""
    lib = tmp_path / "lib"
    shots = sorted(UKBENCH.glob("*.jpg"))[:2]
    save(lib, "shot_a.jpg", C.photo(shots[0]), quality=90)
    save(lib, "shot_b_soft.jpg", cropped(C.photo(shots[1]).filter(ImageFilter.GaussianBlur(6)), 0.85), quality=85)
    edits = {"magpie": (PHOTOS / "n01582220_magpie.JPEG", lambda im: cropped(im, 0.8)),
             "harvestman": (HARVESTMAN, lambda im: im.rotate(8, resample=Image.Resampling.BILINEAR))}
    pairs = {}
    for name, (path, edit) in edits.items():
        im = C.photo(path)
        save(lib, f"{name}.jpg", im, quality=90)
        save(lib, f"{name}_soft.jpg", edit(im.filter(ImageFilter.GaussianBlur(8))), quality=85)
        pairs[name] = {f"{name}.jpg", f"{name}_soft.jpg"}
    for sharp_name, soft_name in [sorted(p) for p in pairs.values()] + [["shot_a.jpg", "shot_b_soft.jpg"]]:
        sharp, soft = (featurestore.of_file(lib / n, 10**8) for n in (sharp_name, soft_name))
        assert soft.low_texture and not sharp.low_texture, (soft_name, soft.texture, sharp.texture)
        # the framing differs: the soft test as it was (same framing) cannot link them
        assert linkrule.blur_residual(sharp.grey, soft.grey) > Settings().pixel_max_blur_residual, soft_name
    groups, cos, threshold, band = ingest(lib, settings_factory)
    for a, b in [sorted(p) for p in pairs.values()] + [["shot_a.jpg", "shot_b_soft.jpg"]]:
        assert cos[(a, b)] >= threshold - band, (a, b, cos[(a, b)])  # candidates, so the rule is asked
    assert pairs["magpie"] in groups and pairs["harvestman"] in groups, (groups, cos)
    kinds = pair_kinds(settings_factory)
    assert kinds[frozenset(pairs["magpie"])] == kinds[frozenset(pairs["harvestman"])] == "soft", kinds
    assert not together(groups, {"shot_a.jpg"}, {"shot_b_soft.jpg"}), groups


def test_quote_cards_on_one_gradient_stay_apart_and_a_card_groups_with_its_copy(tmp_path: Path,
                                                                                 settings_factory) -> None:
    """Quote cards of one account: other text on the same gradient (bench/confusers.py's text cards). Their
    thumbnails match and their keypoints (hundreds, on the text) fit no transform, so only the pixels rule could
    link them, and laid frame over frame their text disagrees. A shrunk, re-saved copy of a card groups with it."""
    r, st = random.Random(9), Settings()
    style = C.card_style(r, "tune", "quote")
    lib = tmp_path / "lib"
    for k in range(3):
        save(lib, f"card{k}.png", C.card_quote(r, "tune", style))
    save(lib, "card0_copy.jpg", shrunk(Image.open(lib / "card0.png"), 0.6), quality=80)
    f = {n: featurestore.of_file(lib / n, 10**8) for n in ("card0.png", "card1.png", "card2.png")}
    rule = linkrule.rule_of(st, 0.6)
    assert min(x.texture for x in f.values()) >= linkrule.PATTERN_KEYPOINTS and f["card0.png"].page is None
    for a, b in (("card0.png", "card1.png"), ("card0.png", "card2.png")):
        assert linkrule.thumbs_match(rule, f[a].thumb, f[b].thumb), (a, b)  # the pixels rule is asked
        check = linkrule.geometry(rule, f[a], f[b])
        assert check is None or check[0] < st.verify_weak_inliers, (a, b, check)
    groups, cos, thr, _ = ingest(lib, settings_factory)
    assert max(cos[("card0.png", "card1.png")], cos[("card0.png", "card2.png")]) >= thr, cos
    assert {"card0.png", "card0_copy.jpg"} in groups, groups
    assert not together(groups, {"card0.png"}, {"card1.png", "card2.png"}), (groups, cos)


def test_product_shots_on_one_backdrop_stay_apart_and_a_shot_groups_with_its_copy(tmp_path: Path,
                                                                                  settings_factory) -> None:
    """Three subjects shot on one studio backdrop (bench/probes.py's backdrop probe): their 32 px thumbnails
    differ only where the subject is and their keypoints fit no transform, so only the pixels rule could link
    them, and the keypoints of one subject find few matches in another. A shrunk, re-saved copy keeps its
    keypoints' descriptors and groups with its shot."""
    ground, st = P.backdrop(random.Random(3)), Settings()
    lib = tmp_path / "lib"
    for name in ("n02169497_leaf_beetle", "n04251144_snorkel", "n02089973_English_foxhound"):
        save(lib, f"{name}.jpg", P.shot(ground, PHOTOS / f"{name}.JPEG", 0.18), quality=90)
    beetle, snorkel, hound = "n02169497_leaf_beetle.jpg", "n04251144_snorkel.jpg", "n02089973_English_foxhound.jpg"
    save(lib, "beetle_copy.jpg", shrunk(Image.open(lib / beetle), 0.6), quality=75)
    f = {n: featurestore.of_file(lib / n, 10**8) for n in (beetle, snorkel, hound, "beetle_copy.jpg")}
    rule = linkrule.rule_of(st, 0.6)
    assert min(x.texture for x in f.values()) >= linkrule.MATCH_KEYPOINTS and not any(x.page is not None for x in f.values())
    for a, b in ((beetle, snorkel), (hound, snorkel)):
        assert linkrule.thumbs_match(rule, f[a].thumb, f[b].thumb), (a, b)  # the pixels rule is asked
        check = linkrule.geometry(rule, f[a], f[b])
        assert check is None or check[0] < st.verify_weak_inliers, (a, b, check)
        assert linkrule.laid_alike(rule, f[a], f[b]), (a, b)  # too few keypoints for the laid-over test
    groups, cos, thr, _ = ingest(lib, settings_factory)
    assert max(cos[(beetle, snorkel)], cos[(hound, snorkel)]) >= thr, cos
    assert {beetle, "beetle_copy.jpg"} in groups, groups
    assert not together(groups, {beetle, hound}, {snorkel}) and not together(groups, {beetle}, {hound}), (groups, cos)


def test_a_collage_of_two_photos_joins_neither_of_their_groups(tmp_path: Path, settings_factory) -> None:
    """Two photos side by side in one picture (bench/probes.py's collage probe): each half's keypoints fit its
    photo, so the collage links to both photos and their copies, but their two groups may not merge through it
    (the chain guard: the two sides are unlike as a whole), and the collage, whose two matched areas lie side by
    side, is a picture of its own: it joins neither group (``grouping.composed``)."""
    lib, r = tmp_path / "lib", random.Random(5)
    one, two = (Image.open(PHOTOS / f"{n}.JPEG").convert("RGB") for n in ("n03255030_dumbbell", "n02361337_marmot"))
    for name, im in (("one", one), ("two", two)):
        save(lib, f"{name}.jpg", im, quality=90)
        save(lib, f"{name}_copy.jpg", shrunk(im), quality=75)
    save(lib, "collage.jpg", P.collage([one, two], r), quality=85)
    groups, _, _, _ = ingest(lib, settings_factory)
    kinds = pair_kinds(settings_factory)
    assert {frozenset(("collage.jpg", "one.jpg")), frozenset(("collage.jpg", "two.jpg"))} <= kinds.keys(), kinds
    assert {"one.jpg", "one_copy.jpg"} <= next(g for g in groups if "one.jpg" in g), groups
    assert {"two.jpg", "two_copy.jpg"} <= next(g for g in groups if "two.jpg" in g), groups
    assert not together(groups, {"one.jpg", "one_copy.jpg"}, {"two.jpg", "two_copy.jpg"}), (groups, kinds)
    assert not any("collage.jpg" in g for g in groups), groups


def test_different_moons_on_one_night_sky_stay_apart_and_a_moon_groups_with_its_copy(tmp_path: Path,
                                                                                     settings_factory) -> None:
    """Moons on a night sky (bench/probes.py's moon probe): mostly black pictures with too few keypoints to
    check, whose content thumbnails match; laid frame over frame they differ where each moon is, and nowhere
    else. A shrunk, re-saved copy differs evenly and groups with its moon."""
    r, st = random.Random(3), Settings()
    lib = tmp_path / "lib"
    save(lib, "moon0.jpg", moon0 := P.moon(r), quality=90)
    _, small, options, _ = P._shrunk(moon0, r, 0.4, "")
    save(lib, "moon0_copy.jpg", small, **options)
    for k in (1, 2):
        save(lib, f"moon{k}.jpg", P.moon(r), quality=90)
    f = {n: featurestore.of_file(lib / n, 10**8) for n in ("moon0.jpg", "moon0_copy.jpg", "moon1.jpg", "moon2.jpg")}
    rule = linkrule.rule_of(st, 0.6)
    assert all(x.low_texture for x in f.values())
    assert linkrule.thumbs_match(rule, f["moon0.jpg"].content_thumb, f["moon1.jpg"].content_thumb)  # pixels asked
    groups, cos, thr, _ = ingest(lib, settings_factory)
    assert cos[("moon0.jpg", "moon1.jpg")] >= thr, cos
    assert {"moon0.jpg", "moon0_copy.jpg"} in groups, groups
    assert not together(groups, {"moon0.jpg"}, {"moon1.jpg", "moon2.jpg"}) and \
        not together(groups, {"moon1.jpg"}, {"moon2.jpg"}), (groups, cos)


def test_a_near_black_night_shot_groups_with_its_copies_and_other_dark_frames_stay_apart(
        tmp_path: Path, settings_factory) -> None:
    """A photo darkened to 4 % with sensor noise (as bench/confusers.py's ``low_night``, darker) is flat to its
    thumbnail, which once linked only byte-identical copies. Its re-save, a brightened, a quarter-turned and a
    mirrored copy keep its faint detail and group with it; another night shot and two black frames of noise hold
    other detail, or none, and stay apart."""
    rng = np.random.default_rng(5)

    def dark(path: Path) -> Image.Image:
        a = np.asarray(Image.open(path).convert("RGB"), np.float32)
        a = a * 0.04 + rng.normal(0, 2.5, a.shape)
        return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))

    lib = tmp_path / "lib"
    night = dark(BOAT)
    save(lib, "night.jpg", night, quality=90)
    save(lib, "night_resave.jpg", night, quality=70)
    save(lib, "night_bright.png", ImageEnhance.Brightness(night).enhance(1.3))
    save(lib, "night_turned.jpg", night.transpose(Image.Transpose.ROTATE_270), quality=85)
    save(lib, "night_mirrored.jpg", night.transpose(Image.Transpose.FLIP_LEFT_RIGHT), quality=85)
    save(lib, "other_night.jpg", dark(VAN), quality=90)
    for k in (0, 1):
        noise = rng.normal(4.0, 2.0, night.size[::-1] + (3,))
        save(lib, f"black{k}.jpg", Image.fromarray(np.clip(noise, 0, 255).astype(np.uint8)), quality=90)
    names = ("night.jpg", "night_turned.jpg", "night_mirrored.jpg", "other_night.jpg", "black0.jpg")
    f = {n: featurestore.of_file(lib / n, 10**8) for n in names}
    assert all(x.flat for x in f.values())  # the near-black path is what links them, or nothing
    assert linkrule.faint_alike(f["night.jpg"], f["night_turned.jpg"])
    assert linkrule.faint_alike(f["night_mirrored.jpg"], f["night.jpg"])
    assert not linkrule.faint_alike(f["night.jpg"], f["other_night.jpg"])
    assert not linkrule.faint_alike(f["black0.jpg"], f["night.jpg"])
    groups, cos, _, _ = ingest(lib, settings_factory)
    assert {"night.jpg", "night_resave.jpg", "night_bright.png", "night_turned.jpg", "night_mirrored.jpg"} in groups, \
        (groups, cos)
    assert not together(groups, {"other_night.jpg", "black0.jpg", "black1.jpg"}, {"night.jpg", "black0.jpg", "black1.jpg"}), groups


def _two_darks(tmp_path: Path, recipe) -> tuple[Path, Image.Image]:
    """Photos 000 and 020 of a dark probe recipe at seed 3, with their copies, in ``tmp_path``/library (the probe's
    names start with it); and photo 000."""
    entries = {name: (im, options, copies) for name, im, options, copies in recipe(random.Random(3))}
    (tmp_path / "library").mkdir()
    for name in ("library/000_dark.jpg", "library/020_dark.jpg"):
        im, options, copies = entries[name]
        im.save(tmp_path / name, **options)
        for copy_name, copy_im, copy_options, _ in copies:
            copy_im.save(tmp_path / copy_name, **copy_options)
    return tmp_path / "library", entries["library/000_dark.jpg"][0]


def _each_groups_with_its_own(lib: Path, settings_factory) -> None:
    """Ingest ``lib`` (``_two_darks``' photos and copies): photo 000 and its copies form one group, 020 and its
    copies another."""
    groups, cos, _, _ = ingest(lib, settings_factory)
    for photo in ("000_", "020_"):
        assert {p.name for p in lib.iterdir() if p.name.startswith(photo)} in groups, (groups, cos)


def test_dark_photos_of_other_aspects_stay_apart_and_a_crop_of_one_groups(tmp_path: Path,
                                                                         settings_factory) -> None:
    """Two different dark photos (bench/probes.py's ``dark`` probe, seed 3: 500 x 333 and 500 x 375, at 2-10 %):
    near-black content thumbnails are close to each other whatever they show, and pictures of other aspects cannot
    be laid over, so the pixels rule linked one photo's shrunk copy to the other photo and its copies. Their
    patterns differ wherever one is cut to the other's aspect (``plain_alike``). The copies of each, a crop of one
    to another aspect and a quarter-turned copy of it, group with it."""
    lib, im = _two_darks(tmp_path, P.darks)
    save(lib, "000_dark_crop.jpg", im.crop((0, 0, im.width, int(im.height * 0.85))), quality=85)
    save(lib, "000_dark_turned.jpg", im.transpose(Image.Transpose.ROTATE_90), quality=85)
    names = ("000_dark.jpg", "000_dark_crop.jpg", "000_dark_turned.jpg", "020_dark.jpg")
    f = {n: featurestore.of_file(lib / n, 10**8) for n in names}
    assert not linkrule.plain_alike(f["000_dark.jpg"], f["020_dark.jpg"])
    assert linkrule.plain_alike(f["000_dark.jpg"], f["000_dark_crop.jpg"])
    assert linkrule.plain_alike(f["000_dark.jpg"], f["000_dark_turned.jpg"])  # laid over by ``differ_evenly``
    _each_groups_with_its_own(lib, settings_factory)


def test_dark_photos_of_one_aspect_stay_apart_and_their_turned_copies_group(tmp_path: Path,
                                                                            settings_factory) -> None:
    """bench/probes.py's ``darkturn`` probe, seed 3: one dark photo's crop came out at the aspect of another's
    mirrored copy (480 x 360), and laid frame over frame two near-black photos differ evenly everywhere, as a copy
    does, so the pixels rule linked them. Their patterns do not correlate laid over, nor with one inside the other
    (``plain_alike``); the crop laid inside its own photo does, and each photo's turned or mirrored copy laid over
    it. Each photo groups with its own copies only."""
    lib, _ = _two_darks(tmp_path, P.darks_turned)
    names = ("000_dark.jpg", "000_dark_crop.jpg", "000_dark_mirror.jpg", "020_dark_mirror.jpg", "020_dark_turn.jpg",
             "020_dark.jpg")
    f = {n: featurestore.of_file(lib / n, 10**8) for n in names}
    assert f["000_dark_crop.jpg"].keypoints.size == f["020_dark_mirror.jpg"].keypoints.size
    assert not linkrule.plain_alike(f["000_dark_crop.jpg"], f["020_dark_mirror.jpg"])
    assert linkrule.plain_alike(f["000_dark.jpg"], f["000_dark_crop.jpg"])
    assert linkrule.plain_alike(f["020_dark_turn.jpg"], f["020_dark.jpg"])
    solid = Image.new("RGB", (400, 300), (70, 40, 30))  # dark, and no pattern at all: ``differ_evenly`` decides
    save(tmp_path / "solid", "solid.jpg", solid, quality=90)
    save(tmp_path / "solid", "solid.webp", solid, quality=80)
    solids = [featurestore.of_file(tmp_path / "solid" / n, 10**8) for n in ("solid.jpg", "solid.webp")]
    assert linkrule.plain_alike(*solids)
    _each_groups_with_its_own(lib, settings_factory)


def test_plain_pictures_under_one_logo_are_never_in_a_bulk_decision(tmp_path: Path, settings_factory) -> None:
    """Two different plain pictures under one centred logo (bench/probes.py's marked probe): the logo's keypoints
    agree on one transform and its cells are the only textured ones, so the content check agrees and the two are
    linked as verified. What agrees is a small part of what they share (``Pair.cover``), so their group is held
    back from bulk decisions. A photo and its copy with the same logo laid on agree over most of the picture:
    their group is offered."""
    entries = P.marked(random.Random(3))
    lib = tmp_path / "lib"
    for k in (0, 2):
        save(lib, f"plain{k}_logo.jpg", {c[0]: c[1] for c in entries[k][3]}[f"library/{k:02d}_centre.jpg"], quality=85)
    photo = Image.open(HOUND).convert("RGB")
    save(lib, "hound.jpg", photo, quality=90)
    save(lib, "hound_logo.jpg", C.wm_centre(photo, random.Random(3)), quality=85)
    with Index(settings_factory()) as index:
        assert not index.ingest([str(lib)]).failed
        with index.catalog.session() as s:
            names = {i: Path(p).name for i, p in s.execute(select(CatalogImage.id, CatalogImage.path))}
            pairs = {frozenset((names[a], names[b])): (k, c)
                     for a, b, k, c in s.execute(select(Pair.a_id, Pair.b_id, Pair.kind, Pair.cover))}
            plan = bulk.plan(s)
        groups = {frozenset(Path(m["path"]).name for m in g["members"]): g for g in index.groups()}
    plain, hound = frozenset({"plain0_logo.jpg", "plain2_logo.jpg"}), frozenset({"hound.jpg", "hound_logo.jpg"})
    kind, cover = pairs[plain]
    assert kind == "verified" and cover < grouping.MIN_COVER, pairs  # the logo is confirmed as one photo
    kind, cover = pairs[hound]
    assert kind == "verified" and cover >= grouping.MIN_COVER, pairs
    assert groups[plain]["look_only"] is True and groups[hound]["look_only"] is False, groups
    offered = {gid for gid, _ in plan.groups}
    assert groups[plain]["id"] not in offered and groups[hound]["id"] in offered and plan.held_back == 1


def save_taken(root: Path, name: str, im: Image.Image, taken: str | None, subsec: str | None = None) -> Path:
    """``im`` saved as a camera JPEG whose EXIF records the capture time ``taken`` (and its sub-seconds)."""
    exif = Image.Exif()
    exif[0x010F] = "TestCam"
    if taken is not None:
        sub = exif.get_ifd(0x8769)
        sub[0x9003] = taken
        if subsec is not None:
            sub[0x9291] = subsec
    return save(root, name, im, quality=92, exif=exif)


def test_shots_the_camera_took_at_two_moments_never_share_a_group(tmp_path: Path, settings_factory) -> None:
    """Two shots of a burst (a tenth of a second apart, nothing moved but the light) link as one photo would, but
    the camera recorded two capture times, so they never share a group (``grouping.two_moments``); the pair is
    still stored, and its evidence names the two moments. A copy that keeps its original's capture time, one whose
    time a time-zone fix moved by an hour, and copies without one group and are offered to bulk review."""
    lib = tmp_path / "lib"
    jeep, ant, hound = C.photo(JEEP), C.photo(ANT), C.photo(HOUND)
    save_taken(lib, "burst_1.jpg", jeep, "2026:07:01 10:00:00", "12")
    save_taken(lib, "burst_2.jpg", ImageEnhance.Brightness(jeep).enhance(1.03), "2026:07:01 10:00:00", "22")
    save_taken(lib, "burst_1_small.jpg", shrunk(jeep), "2026:07:01 10:00:00", "12")  # shared from the phone
    save_taken(lib, "ant.jpg", ant, "2025:05:05 08:30:00")
    save_taken(lib, "ant_small.jpg", shrunk(ant), "2025:05:05 09:30:00")  # its clock set to another time zone
    save(lib, "hound.jpg", hound, quality=92)
    save(lib, "hound_small.jpg", shrunk(hound), quality=80)
    with Index(settings_factory()) as index:
        assert not index.ingest([str(lib)]).failed
        with index.catalog.session() as s:
            plan = bulk.plan(s)
            shots = list(s.scalars(select(CatalogImage).where(CatalogImage.path.like("%burst_%"))))
            why = {frozenset((e.a, e.b)): e.text for e in pair_evidence(s, shots, index.threshold, {})}
            taken_row = next(r for r in compare_rows(shots, None) if r.label == "taken (camera clock)")
        assert taken_row.differs and "2026:07:01 10:00:00.22" in taken_row.values, taken_row
        groups = {frozenset(Path(m["path"]).name for m in g["members"]): g for g in index.groups()}
    assert "two moments" in why[frozenset({"burst_1.jpg", "burst_2.jpg"})], why
    assert "two moments" not in why[frozenset({"burst_1.jpg", "burst_1_small.jpg"})], why
    burst = frozenset({"burst_1.jpg", "burst_1_small.jpg"})
    ant_g, hound_g = frozenset({"ant.jpg", "ant_small.jpg"}), frozenset({"hound.jpg", "hound_small.jpg"})
    assert set(groups) == {burst, ant_g, hound_g}, list(groups)
    assert not any(g["look_only"] for g in groups.values()), groups
    assert {gid for gid, _ in plan.groups} == {g["id"] for g in groups.values()} and plan.held_back == 0


def test_a_group_larger_than_a_bulk_decision_is_shown_but_left_to_a_person(tmp_path: Path, settings_factory) -> None:
    """More copies of one photo than ``grouping.MAX_BULK`` group as any copies do, but bulk review leaves the
    group to a person (one decision would move that many photos); a pair beside it is offered as before."""
    lib = tmp_path / "lib"
    jeep, ant = C.photo(JEEP), C.photo(ANT)
    many = grouping.MAX_BULK + 1
    for k in range(many):  # re-saved at other qualities and sizes, no two files alike
        save(lib, f"jeep_{k:02d}.jpg", shrunk(jeep, 1.0 - 0.02 * (k % 10)), quality=70 + k)
    save(lib, "ant.jpg", ant, quality=92)
    save(lib, "ant_small.jpg", shrunk(ant), quality=80)
    with Index(settings_factory()) as index:
        assert not index.ingest([str(lib)]).failed
        with index.catalog.session() as s:
            plan = bulk.plan(s)
        groups = {len(g["members"]): g for g in index.groups()}
    assert set(groups) == {many, 2}, list(groups)
    assert groups[many]["look_only"] is True and groups[2]["look_only"] is False
    assert [gid for gid, _ in plan.groups] == [groups[2]["id"]] and plan.held_back == 1


def test_a_gradient_with_a_logo_laid_on_it_groups_with_its_original(tmp_path: Path, settings_factory) -> None:
    """A corner logo laid on a smooth gradient (bench/probes.py's captioned probe) differs from the original in one
    place, as another subject on one ground does, but there only the copy holds detail: it groups."""
    name, original, _, copies = P.captioned(random.Random(3))[2]
    lib = tmp_path / "lib"
    save(lib, "gradient.jpg", original, quality=90)
    save(lib, "gradient_logo.jpg", {c[0]: c[1] for c in copies}[name.replace("original", "logo")], quality=85)
    f = {n: featurestore.of_file(lib / n, 10**8) for n in ("gradient.jpg", "gradient_logo.jpg")}
    assert f["gradient.jpg"].low_texture and f["gradient.jpg"].page is None
    rule = linkrule.rule_of(Settings(), 0.6)
    assert linkrule.thumbs_match(rule, f["gradient.jpg"].thumb, f["gradient_logo.jpg"].thumb)
    assert linkrule.patch_contrast(f["gradient.jpg"].grey, f["gradient_logo.jpg"].grey) >= linkrule.EVEN_RATIO
    groups, _, _, _ = ingest(lib, settings_factory)
    assert {"gradient.jpg", "gradient_logo.jpg"} in groups, groups


def crossing(ground: Image.Image, step: int) -> Image.Image:
    """A still camera's frame of ``ground`` with four people crossing it (other photos cut to a figure's shape),
    each ``step`` pixels further along than in the frame at step 0."""
    im = ground.copy()
    w, h = im.size
    size = (48, 80)
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).ellipse([0, 0, size[0] - 1, size[1] - 1], fill=255)
    for (fx, fy), path in zip(((0.15, 0.55), (0.4, 0.5), (0.62, 0.6), (0.8, 0.45)), (HARVESTMAN, ANT, COCK, BOAT)):
        figure = C.photo(path).resize(size, Image.Resampling.BILINEAR)
        im.paste(figure, (int(w * fx) + step, int(h * fy) + step // 10), mask)
    return im


def test_frames_of_a_still_camera_are_shown_but_never_in_a_bulk_decision(tmp_path: Path, settings_factory) -> None:
    """Two frames of a camera that did not move, with people crossing the scene between them and no capture time,
    fit one transform and agree under it like copies, and the people are too few keypoints to move the fit
    (``verify.moved``). What tells them apart is that each person's patches, gone from their place, are found a
    step further on (``linkrule.shifted_cells``): the group is shown, with why, but bulk review leaves it to a
    person. A shrunk copy of a frame moves nothing; a copy pair beside them is offered as before."""
    lib, rule = tmp_path / "lib", linkrule.rule_of(Settings(), 0.6)
    ground = C.photo(PHOTOS / "n03899768_patio.JPEG")
    first, nxt = crossing(ground, 0), crossing(ground, 20)
    save(lib, "frame_1.png", first)
    save(lib, "frame_2.png", nxt)
    save(lib, "frame_1_small.jpg", shrunk(first), quality=80)
    save(lib, "ant.jpg", C.photo(ANT), quality=92)
    save(lib, "ant_small.jpg", shrunk(C.photo(ANT)), quality=80)
    a, b, copy = (featurestore.of_file(lib / n, 10**8) for n in ("frame_1.png", "frame_2.png", "frame_1_small.jpg"))
    check = linkrule.geometry(rule, a, b)
    assert check.fits is not None and all(verify.moved(f) < linkrule.MAX_MOVED for f in check.fits), check
    assert linkrule.shifted_cells(a, b, check.fits) >= grouping.MAX_SHIFTED
    assert linkrule.shifted_cells(a, copy, linkrule.geometry(rule, a, copy).fits) == 0
    with Index(settings_factory()) as index:
        assert not index.ingest([str(lib)]).failed
        groups = {frozenset(Path(m["path"]).name for m in g["members"]): g for g in index.groups()}
        with index.catalog.session() as s:
            plan = bulk.plan(s)
            frames = list(s.scalars(select(CatalogImage).where(CatalogImage.path.like("%frame_%"))))
            why = {frozenset((e.a, e.b)): e.text for e in pair_evidence(s, frames, index.threshold, {})}
    both, ants = frozenset({"frame_1.png", "frame_2.png", "frame_1_small.jpg"}), frozenset({"ant.jpg", "ant_small.jpg"})
    assert both in groups and ants in groups, list(groups)
    assert groups[both]["look_only"] is True and groups[ants]["look_only"] is False
    assert "moved between them" in why[frozenset({"frame_1.png", "frame_2.png"})], why
    assert "moved" not in why[frozenset({"frame_1.png", "frame_1_small.jpg"})], why
    assert [gid for gid, _ in plan.groups] == [groups[ants]["id"]] and plan.held_back == 1
