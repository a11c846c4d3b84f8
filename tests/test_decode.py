"""Decoding real files of every supported format, and every kind of bad input."""
from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from indexer.decode import capture_time, load_image, read_file
from indexer.errors import CorruptImage, EmptyFile, ImageTooLarge, NotAnImage, UnreadableFile
from tests.conftest import REALDUP, photo_files

LIMIT = 250_000_000


@pytest.mark.parametrize("name", ["bmp", "gif", "pbm", "pgm", "ppm", "tiff", "webp", "png", "jpeg"])
def test_formats_decode_to_model_pixels(name: str) -> None:
    folder = REALDUP / "imagededup" / "formats_images"
    matches = [p for p in folder.iterdir() if p.suffix.lower().lstrip(".") in (name, "jpg" if name == "jpeg" else name)]
    if not matches:
        pytest.skip(f"no {name} sample in {folder}")
    d = load_image(matches[0], max_pixels=LIMIT, size=224)
    assert d.pixels.shape == (224, 224, 3) and d.pixels.dtype == np.uint8
    assert d.width > 0 and d.height > 0


def test_odd_modes_decode() -> None:
    for p in sorted((REALDUP / "pdq" / "misc-images").rglob("*")):
        if p.is_file() and p.suffix.lower() in (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp"):
            d = load_image(p, max_pixels=LIMIT, size=224)
            assert d.pixels.shape == (224, 224, 3), p


def test_exif_orientation_is_applied() -> None:
    """Files tagged 1/3/6/8: the decoded pixels and display size follow the tag."""
    from PIL import ImageOps

    folder = REALDUP / "pdq" / "exif-rotn"
    for n in (1, 3, 6, 8):
        path = folder / f"exif-rotn-{n}.jpg"
        d = load_image(path, max_pixels=LIMIT, size=None)
        with Image.open(path) as im:
            stored = im.size
            want = ImageOps.exif_transpose(im).convert("RGB")
        assert (d.width, d.height) == (want.size if n in (6, 8) else stored) == want.size
        assert np.array_equal(d.pixels, np.asarray(want)), f"orientation {n} not applied"


def test_heic_round_trip(tmp_path: Path) -> None:
    import pillow_heif

    im = Image.open(photo_files(1)[0]).convert("RGB")
    heif = pillow_heif.from_pillow(im)
    path = tmp_path / "photo.heic"
    heif.save(str(path), quality=80)
    d = load_image(path, max_pixels=LIMIT, size=224)
    assert d.format in ("HEIF", "HEIC") and (d.width, d.height) == im.size


def test_gif_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (64, 48), c) for c in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    d = load_image(path, max_pixels=LIMIT, size=32)
    assert d.pixels[..., 0].mean() > 200 and d.pixels[..., 2].mean() < 50


def test_reduced_jpeg_decode_matches_full_decode(tmp_path: Path) -> None:
    im = Image.open(photo_files(1)[0]).convert("RGB").resize((2000, 1500))
    path = tmp_path / "big.jpg"
    im.save(path, quality=92)
    fast = load_image(path, max_pixels=LIMIT, size=224).pixels.astype(np.float32)
    full = np.asarray(Image.open(path).convert("RGB").resize((224, 224), Image.BILINEAR), dtype=np.float32)
    assert np.abs(fast - full).mean() < 4.0
    assert load_image(path, max_pixels=LIMIT, size=224).width == 2000


def test_zero_byte(tmp_path: Path) -> None:
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    with pytest.raises(EmptyFile):
        read_file(p, 1 << 30)
    with pytest.raises(EmptyFile):
        load_image(b"", max_pixels=LIMIT, size=224)


def test_not_an_image(tmp_path: Path) -> None:
    p = tmp_path / "notes.jpg"
    p.write_text("this is a text file with a photo's name")
    with pytest.raises(NotAnImage):
        load_image(p, max_pixels=LIMIT, size=224)


def test_truncated_and_corrupt(tmp_path: Path) -> None:
    data = photo_files(1)[0].read_bytes()
    with pytest.raises(CorruptImage):
        load_image(data[: len(data) // 2], max_pixels=LIMIT, size=224)
    garbled = data[:600] + bytes(range(256)) * 40 + data[600 + 256 * 40 :]
    with pytest.raises((CorruptImage, NotAnImage)):
        load_image(garbled[:2000], max_pixels=LIMIT, size=224)
    corrupt = REALDUP / "imagededup" / "mixed_images" / "ukbench09268_corrupt.jpg"
    with pytest.raises((CorruptImage, NotAnImage)):
        load_image(corrupt, max_pixels=LIMIT, size=224)


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def test_decompression_bomb_is_refused_before_decoding() -> None:
    bomb = _png_header_only(30_000, 30_000)  # 900 MP declared in a few hundred bytes
    with pytest.raises(ImageTooLarge, match="MP"):
        load_image(bomb, max_pixels=LIMIT, size=224)


def test_file_size_limit_and_unreadable(tmp_path: Path) -> None:
    p = tmp_path / "x.jpg"
    p.write_bytes(b"\xff" * 2048)
    with pytest.raises(ImageTooLarge):
        read_file(p, 1024)
    if os.geteuid() != 0:  # root reads anything; the missing-file case below covers unreadable then
        p.chmod(0)
        with pytest.raises(UnreadableFile):
            read_file(p, 1 << 20)
    with pytest.raises(UnreadableFile):
        read_file(tmp_path / "gone.jpg", 1 << 20)


def test_alpha_is_composited_on_white() -> None:
    im = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    d = load_image(buf.getvalue(), max_pixels=LIMIT, size=8)
    assert d.pixels.min() == 255


def test_camera_exif_is_detected(tmp_path: Path) -> None:
    im = Image.new("RGB", (64, 48), (200, 100, 50))
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Canon", "EOS 5D"
    im.save(tmp_path / "camera.jpg", exif=exif.tobytes())
    dated = Image.Exif()
    dated.get_ifd(0x8769)[0x9003] = "2021:06:01 12:00:00"
    im.save(tmp_path / "dated.jpg", exif=dated.tobytes())
    im.save(tmp_path / "plain.png")
    got = {p: load_image(tmp_path / p, max_pixels=10**8, size=32).camera for p in ("camera.jpg", "dated.jpg", "plain.png")}
    assert got == {"camera.jpg": True, "dated.jpg": True, "plain.png": False}
    taken = {p: load_image(tmp_path / p, max_pixels=10**8, size=32).taken for p in ("camera.jpg", "dated.jpg")}
    assert taken == {"camera.jpg": None, "dated.jpg": "2021:06:01 12:00:00"}


def test_the_capture_time_keeps_sub_seconds_and_refuses_blank_dates() -> None:
    assert capture_time("2021:06:01 12:00:00", "045") == "2021:06:01 12:00:00.045"
    assert capture_time("2021:06:01 12:00:00\x00", " ") == "2021:06:01 12:00:00"
    assert capture_time("0000:00:00 00:00:00") is None and capture_time("    :  :     :  :  ") is None
    assert capture_time(None) is None and capture_time(b"2021:06:01 12:00:00") is None


def _rgba_png(path: Path, w: int, h: int) -> None:
    """A w×h RGBA PNG that compresses to almost nothing (a bomb-like upload) with real alpha variation."""
    a = np.zeros((h, w, 4), np.uint8)
    a[..., 0] = (np.arange(w) % 256)[None, :]
    a[..., 1] = 128
    a[..., 2] = (np.arange(h) % 256)[:, None]
    a[..., 3] = ((np.arange(w) // 50) * 8 % 256)[None, :]
    Image.fromarray(a, "RGBA").save(path, optimize=True)


PEAK_SCRIPT = """
import resource, sys
from indexer.decode import load_image
data = open(sys.argv[1], "rb").read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
load_image(data, max_pixels=10**9, size=224)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
"""


def test_rgba_decode_peak_memory_is_bounded(tmp_path: Path) -> None:
    """A transparent PNG costs the decoded image plus its RGB copy (~8 bytes/pixel at peak), not the
    ~24 bytes/pixel of full-size RGBA temporaries; and the pixels are those of a whole-image composite."""
    import subprocess
    import sys

    from indexer.preprocess import to_model_pixels

    w, h = 4000, 3000
    path = tmp_path / "alpha.png"
    _rgba_png(path, w, h)
    out = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(path)], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1], timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    per_pixel = int(out.stdout.strip()) / (w * h)
    assert per_pixel < 11, f"peak memory {per_pixel:.1f} bytes/pixel"
    with Image.open(path) as im:
        rgba = im.convert("RGBA")
    want = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    got = load_image(path, max_pixels=LIMIT, size=224).pixels
    assert np.array_equal(got, to_model_pixels(want, 224))


OOM_SCRIPT = """
import resource, sys
from indexer.decode import load_image
data = open(sys.argv[1], "rb").read()
vm = int(next(l for l in open("/proc/self/status") if l.startswith("VmSize")).split()[1]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + 32 * 1024 * 1024, resource.getrlimit(resource.RLIMIT_AS)[1]))
try:
    load_image(data, max_pixels=10**9, size=224)
except MemoryError:
    print("MemoryError")
except Exception as exc:
    print(type(exc).__name__, exc)
"""


def test_out_of_memory_is_not_reported_as_corrupt(tmp_path: Path) -> None:
    """Running out of memory is the machine's state, not the file's: load_image lets MemoryError through
    (the decode pool records it as too-large, the API answers 503) instead of calling the file corrupt."""
    import subprocess
    import sys

    path = tmp_path / "alpha.png"
    _rgba_png(path, 4000, 3000)  # 48 MB as RGBA, over the 32 MB of address space left to the child
    out = subprocess.run([sys.executable, "-c", OOM_SCRIPT, str(path)], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1], timeout=120, check=False)
    assert out.stdout.strip() == "MemoryError", out.stdout + out.stderr
