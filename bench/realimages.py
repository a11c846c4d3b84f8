#!/usr/bin/env python3
"""Collect real images that ship inside installable packages, for the confuser benchmark (bench/confusers.py).

    python bench/realimages.py [--out /work/scratch/realimages] [--install] [--pip-venv /work/scratch/img-venv]

--install first installs the Debian packages (apt-get, as root) and, into --pip-venv (created if missing), the PyPI
packages listed in SOURCES; without it, only what is already installed is collected. Nothing is downloaded at
run time other than through those clients.

OUT/<source>/ gets one file per distinct file content (PNG renders for SVG wallpapers and PDF pages) and
OUT/manifest.json records, per image: its source and package, the file it came from, size, sha256, a texture
figure (mean absolute gradient of the 256-px grey image: low values are the smooth/abstract images), its
``kind`` (wallpaper, photo, document, clipart, sample), its ``picture`` (files that are the same picture: one
wallpaper at several resolutions, a wallpaper and its preview thumbnail; these are real copies), its
``variant_set`` (pictures that are the same design recoloured or relaid: dark/light, portrait/landscape,
with/without logo; ambiguous as duplicates, so a library takes at most one picture of a set) and its ``part``
(A or B: every variant set lies wholly in one part; bench/confusers.py tunes on A and measures on B).
Per source: package, version, licences (from the package's copyright file or metadata), count and resolution
range. Images are never committed; the manifest is written first with what is there, then grown.
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

Image.MAX_IMAGE_PIXELS = 400_000_000
IMAGE_EXT = {".jpg", ".jpeg", ".png", ".webp", ".svg", ".pdf", ".npz"}
MIN_SIDE = 160  # smaller files are icons and theme pieces, not pictures
SVG_WIDTH = 1920


@dataclass
class Source:
    """One package's images: a Debian package (files from ``dpkg -L``) or a PyPI package (files under its dir)."""
    name: str
    package: str
    kind: str  # wallpaper | photo | document | clipart | sample
    registry: str = "apt"  # apt | pip
    include: str = r".*"  # regex a file path must match
    exclude: str = r"^$"
    pdf_pages: int = 0  # pages rendered per PDF (spread over the document)


SOURCES = [
    Source("gnome", "gnome-backgrounds", "wallpaper"),
    Source("mate", "mate-backgrounds", "wallpaper"),
    Source("plasma", "plasma-workspace-wallpapers", "wallpaper"),
    Source("desktop-base", "desktop-base", "wallpaper", include=r"/desktop-base/.*-theme/.*contents/images/"),
    Source("lomiri", "lomiri-wallpapers", "wallpaper"),
    Source("lomiri-16.04", "lomiri-wallpapers-16.04", "wallpaper"),
    Source("lomiri-20.04", "lomiri-wallpapers-20.04", "wallpaper"),
    Source("sway", "sway-backgrounds", "wallpaper"),
    Source("ukui", "ukui-wallpapers", "wallpaper"),
    Source("xplanet", "xplanet-images", "photo", include=r"(earth|night|sun)\.jpg$"),
    Source("tuxpaint", "tuxpaint-stamps-default", "clipart", include=r"\.png$", exclude=r"(_mirror|_flip|thumb)"),
    Source("r-manuals", "r-doc-pdf", "document", include=r"^/usr/share/doc/r-doc-pdf/.*\.pdf$", pdf_pages=14),
    Source("skimage", "scikit-image", "sample", registry="pip", include=r"/skimage/data/[^/]+\.(png|jpg|jpeg)$"),
    Source("sklearn", "scikit-learn", "photo", registry="pip", include=r"/sklearn/datasets/images/.*\.jpg$"),
    Source("matplotlib", "matplotlib", "sample", registry="pip", include=r"/mpl-data/sample_data/.*\.(png|jpg)$"),
    Source("pywavelets", "PyWavelets", "sample", registry="pip", include=r"/pywt/data/(aero|ascent|camera)\.npz$"),
]


@dataclass
class Entry:
    path: str  # relative to OUT
    source: str
    package: str
    origin: str  # the packaged file (and page, for a PDF)
    kind: str
    width: int
    height: int
    sha256: str
    texture: float
    picture: str = ""
    variant_set: str = ""
    part: str = ""
    also: list[str] = field(default_factory=list)  # byte-identical packaged files dropped for this one


def sh(cmd: list[str], **kw) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def install(sources: list[Source], venv: Path) -> None:
    apt = sorted({s.package for s in sources if s.registry == "apt"}
                 | {"poppler-utils", "librsvg2-bin", "opencv-doc", "adwaita-icon-theme"})
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *apt], check=True, env=env)
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = sorted({s.package for s in sources if s.registry == "pip"})
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *pip], check=True)


def package_files(s: Source, venv: Path) -> list[str]:
    if s.registry == "apt":
        try:
            files = sh(["dpkg", "-L", s.package]).splitlines()
        except subprocess.CalledProcessError:
            return []
    else:
        site = glob.glob(str(venv / "lib" / "python3*" / "site-packages"))
        files = [str(p) for d in site for p in Path(d).rglob("*") if p.is_file()]
    return sorted(f for f in files if Path(f).suffix.lower() in IMAGE_EXT and os.path.isfile(f)
                  and re.search(s.include, f) and not re.search(s.exclude, f))


def package_meta(s: Source, venv: Path) -> tuple[str, list[str]]:
    """(version, licences) from dpkg and the copyright file, or from the wheel's METADATA."""
    if s.registry == "apt":
        try:
            version = sh(["dpkg-query", "-W", "-f=${Version}", s.package])
        except subprocess.CalledProcessError:
            return "", []
        text = Path(f"/usr/share/doc/{s.package}/copyright").read_text(errors="replace")
        found = re.findall(r"^License:\s*(.+)$", text, re.MULTILINE) or \
            re.findall(r"(?i)licen[cs]ed under (?:the )?(?:terms of )?(?:the )?([^\n.,]+)", text)
        return version, sorted({m.strip() for m in found})
    for meta in glob.glob(str(venv / "lib" / "python3*" / "site-packages" / "*.dist-info" / "METADATA")):
        text = Path(meta).read_text(errors="replace")
        name = re.search(r"^Name:\s*(.+)$", text, re.MULTILINE)
        if name and name.group(1).strip().lower().replace("_", "-") == s.package.lower():
            version = re.search(r"^Version:\s*(.+)$", text, re.MULTILINE).group(1).strip()
            lic = re.findall(r"^License-Expression:\s*(.+)$", text, re.MULTILINE) or \
                re.findall(r"^Classifier: License :: (?:OSI Approved :: )?(.+)$", text, re.MULTILINE) or \
                [x[:60] for x in re.findall(r"^License:\s*(.+)$", text, re.MULTILINE)]
            return version, sorted({x.strip() for x in lic}) or ["see package"]
    return "", []


def texture(im: Image.Image) -> float:
    g = np.asarray(ImageOps.grayscale(im).resize((256, 256), Image.BILINEAR), dtype=np.float32)
    return round(float(np.abs(np.diff(g, axis=0)).mean() + np.abs(np.diff(g, axis=1)).mean()) / 2, 3)


def rendered(src: str, s: Source, tmp: Path) -> list[tuple[str, Path]]:
    """(origin, file) pairs: the file itself, an SVG rendered to PNG, or a PDF's pages at 50-110 dpi."""
    ext = Path(src).suffix.lower()
    if ext == ".svg":
        out = tmp / (hashlib.sha1(src.encode()).hexdigest()[:12] + ".png")
        try:
            sh(["rsvg-convert", "-w", str(SVG_WIDTH), "-o", str(out), src])
        except (subprocess.CalledProcessError, FileNotFoundError):
            return []
        return [(src, out)]
    if ext == ".npz":
        with np.load(src) as z:
            arr = z[z.files[0]]
        out = tmp / (Path(src).stem + ".png")
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(out)
        return [(src, out)]
    if ext == ".pdf":
        n = int(re.search(r"Pages:\s+(\d+)", sh(["pdfinfo", src])).group(1))
        pages = sorted({1 + round(i * (n - 1) / max(1, s.pdf_pages - 1)) for i in range(s.pdf_pages)})
        out = []
        for k, p in enumerate(pages):
            dpi = 50 + (int(hashlib.sha1(f"{src}{p}".encode()).hexdigest(), 16) % 61)  # 50-110 dpi, fixed per page
            stem = f"{tmp}/{Path(src).stem}-p{p:04d}"  # the stem has dots: no with_suffix
            sh(["pdftoppm", "-f", str(p), "-l", str(p), "-r", str(dpi), "-png", "-singlefile", src, stem])
            out.append((f"{src}#page={p}@{dpi}dpi", Path(stem + ".png")))
        return out
    return [(src, Path(src))]


def open_rgb(path: Path) -> Image.Image:
    im = ImageOps.exif_transpose(Image.open(path))
    if im.mode in ("RGBA", "LA", "P", "PA"):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, im).convert("RGB")
    return im.convert("RGB")


# --- same picture / variant rules from the packages' layouts ----------------------------------------------

VARIANT_WORDS = r"(?i)([-_ ](dark|light|portrait|landscape|no-logo|withlogo|with-logo|cold|warm|radioactive|"\
                r"blue|d|l))+$"


def picture_key(source: str, origin: str) -> tuple[str, str]:
    """(picture, variant set) a packaged file belongs to, from the package's own layout."""
    o = origin.split("#")[0]
    m = re.search(r"/wallpapers/([^/]+)/contents/(images[^/]*)/", o) or re.search(r"/wallpapers/([^/]+)/contents/(screenshot)", o)
    if m:  # plasma: NAME/contents/images/WxH.ext, images_dark/..., screenshot.ext (the preview)
        dark = "dark" if "dark" in m.group(2) else ""
        return f"{source}:{m.group(1)}{':' + dark if dark else ''}", f"{source}:{m.group(1)}"
    m = re.search(r"/desktop-base/([^/]+)-theme/([^/]+)/contents/images/", o)
    if m:  # desktop-base: THEME/{wallpaper,lockscreen,login,...}/contents/images/WxH.ext
        return f"{source}:{m.group(1)}:{m.group(2)}", f"{source}:{m.group(1)}"
    if "#page=" in origin:
        return f"{source}:{origin}", f"{source}:{origin}"
    stem = Path(o).stem
    base = re.sub(r"[-_]?\d{3,4}x\d{3,4}", "", stem)  # Elephants_3840x2160 = Elephants
    variant = re.sub(VARIANT_WORDS, "", base) or base
    if source in ("tuxpaint", "skimage", "matplotlib", "pywavelets", "sklearn", "xplanet"):
        variant = base
    return f"{source}:{base}", f"{source}:{variant}"


def thumb(im: Image.Image) -> np.ndarray:
    a = np.asarray(im.resize((24, 24), Image.BILINEAR), dtype=np.float32).ravel()
    a -= a.mean()
    return a / (np.linalg.norm(a) + 1e-6)


def merge_same_pictures(entries: list[Entry], thumbs: dict[str, np.ndarray], tol: float = 0.995) -> list[list[str]]:
    """Pictures of one source whose 24x24 colour thumbnails correlate above ``tol`` (the same image resized or
    re-encoded under another name) become one picture; returns the merged (picture, picture) pairs. Only
    within a source, and not among clip art and documents: two different smooth gradients, two dreidels with
    another letter, two pages of one manual can correlate that well, and they are the confusers."""
    parent = {e.picture: e.picture for e in entries}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    keys = [e.path for e in entries]
    mat = np.stack([thumbs[k] for k in keys])
    sim = mat @ mat.T
    merges = []
    for i, j in zip(*np.nonzero(np.triu(sim > tol, 1))):
        a, b = find(entries[i].picture), find(entries[j].picture)
        if a != b and entries[i].source == entries[j].source and entries[i].kind in ("wallpaper", "sample", "photo"):
            parent[b] = a
            merges.append([a, b])
    for e in entries:
        e.picture = find(e.picture)
    return merges


def assign_variants_and_parts(entries: list[Entry]) -> None:
    """A variant set holds every picture any of its files share; each set goes wholly to part A or B,
    alternating over each source's sets in hash order (an even split per source)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for e in entries:  # variant set and picture are joined
        parent[find("v:" + e.variant_set)] = find("p:" + e.picture)
    for e in entries:
        e.variant_set = find("p:" + e.picture)[2:]
    by_source: dict[str, list[str]] = {}
    for e in entries:
        by_source.setdefault(e.source, [])
        if e.variant_set not in by_source[e.source]:
            by_source[e.source].append(e.variant_set)
    part = {}
    for sets in by_source.values():
        for k, v in enumerate(sorted(sets, key=lambda x: hashlib.sha1(x.encode()).hexdigest())):
            part.setdefault(v, "AB"[k % 2])
    for e in entries:
        e.part = part[e.variant_set]


def collect(out: Path, sources: list[Source], venv: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    entries: list[Entry] = []
    by_hash: dict[str, Entry] = {}
    thumbs: dict[str, np.ndarray] = {}
    meta = {}
    for s in sources:
        files = package_files(s, venv)
        version, licences = package_meta(s, venv)
        if not files:
            print(f"{s.name}: {s.package} not installed or no images", file=sys.stderr)
            continue
        (out / s.name).mkdir(exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            for src in files:
                for origin, f in rendered(src, s, Path(tmp)):
                    try:
                        im = open_rgb(f)
                    except Exception as exc:  # noqa: BLE001 - a packaged file we cannot read is reported, not fatal
                        print(f"skip {origin}: {exc}", file=sys.stderr)
                        continue
                    if min(im.size) < MIN_SIDE:
                        continue
                    digest = hashlib.sha256(f.read_bytes()).hexdigest()
                    if digest in by_hash:
                        by_hash[digest].also.append(origin)
                        continue
                    ext = f.suffix.lower() if f.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp") else ".png"
                    rel = f"{s.name}/{digest[:16]}{ext}"
                    if not (out / rel).exists():
                        shutil.copyfile(f, out / rel)
                    picture, variant = picture_key(s.name, origin)
                    e = Entry(rel, s.name, s.package, origin, s.kind, im.width, im.height, digest, texture(im),
                              picture, variant)
                    entries.append(e)
                    by_hash[digest] = e
                    thumbs[rel] = thumb(im)
        mine = [e for e in entries if e.source == s.name]
        meta[s.name] = {"package": s.package, "registry": s.registry, "version": version, "licences": licences,
                        "kind": s.kind, "files": len(mine)}
        print(f"{s.name}: {len(mine)} files from {s.package} {version}", flush=True)
        write_manifest(out, entries, meta, final=False)
    merges = merge_same_pictures(entries, thumbs)
    assign_variants_and_parts(entries)
    return write_manifest(out, entries, meta, final=True, merges=merges)


def write_manifest(out: Path, entries: list[Entry], meta: dict, final: bool, merges: list | None = None) -> dict:
    for name, m in meta.items():
        mine = [e for e in entries if e.source == name]
        sides = [(e.width, e.height) for e in mine]
        m.update({"files": len(mine), "pictures": len({e.picture for e in mine}),
                  "variant_sets": len({e.variant_set for e in mine}),
                  "min_size": list(min(sides, key=lambda x: x[0] * x[1])) if sides else None,
                  "max_size": list(max(sides, key=lambda x: x[0] * x[1])) if sides else None})
    manifest = {"root": str(out), "complete": final, "thumbnail_merges": merges or [], "sources": meta,
                "totals": {"files": len(entries), "pictures": len({e.picture for e in entries}),
                           "variant_sets": len({e.variant_set for e in entries}),
                           "part_A_sets": len({e.variant_set for e in entries if e.part == "A"}),
                           "part_B_sets": len({e.variant_set for e in entries if e.part == "B"})},
                "images": [asdict(e) for e in entries]}
    tmp = out / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1))
    tmp.replace(out / "manifest.json")
    return manifest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("/work/scratch/realimages"))
    ap.add_argument("--pip-venv", type=Path, default=Path("/work/scratch/img-venv"))
    ap.add_argument("--install", action="store_true")
    ap.add_argument("--only", default="", help="comma-separated source names (default: all)")
    a = ap.parse_args(argv)
    sources = [s for s in SOURCES if not a.only or s.name in a.only.split(",")]
    if a.install:
        install(sources, a.pip_venv)
    m = collect(a.out, sources, a.pip_venv)
    print(f"{'source':14s} {'package':28s} {'files':>5s} {'pics':>5s} {'sets':>5s}  sizes  licences")
    for name, s in m["sources"].items():
        print(f"{name:14s} {s['package']:28s} {s['files']:5d} {s['pictures']:5d} {s['variant_sets']:5d}  "
              f"{s['min_size']}..{s['max_size']}  {', '.join(s['licences'])[:70]}")
    t = m["totals"]
    print(f"total: {t['files']} files, {t['pictures']} pictures, {t['variant_sets']} variant sets "
          f"(A {t['part_A_sets']}, B {t['part_B_sets']}); {len(m['thumbnail_merges'])} merges by thumbnail")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
