"""bench/mixlib.py: two libraries become one, their truths joined, byte-identical pictures one group."""
from __future__ import annotations

import json
from pathlib import Path

from bench import mixlib
from tests.conftest import PHOTOS


def library(root: Path, files: dict[str, bytes], groups: list[list[str]], singles: list[str]) -> Path:
    for name, data in files.items():
        (root / "library" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "library" / name).write_bytes(data)
    edits = {p: "resize" for g in groups for p in g[1:]}
    classes = {p: "photo" for p in files}
    (root / "truth.json").write_text(json.dumps({"root": str(root / "library"), "groups": groups,
                                                 "singles": singles, "edits": edits, "classes": classes}))
    return root


def test_two_libraries_mix_into_one_truth(tmp_path: Path) -> None:
    photos = sorted(PHOTOS.glob("*.JPEG"))[:4]
    same = photos[0].read_bytes()  # in both libraries: one picture
    a = library(tmp_path / "a", {"x/1.jpg": same, "x/2.jpg": photos[1].read_bytes(), "y/3.jpg": photos[2].read_bytes()},
                [["x/1.jpg", "x/2.jpg"]], ["y/3.jpg"])
    b = library(tmp_path / "b", {"x/1.jpg": photos[3].read_bytes(), "z/9.jpg": same}, [], ["x/1.jpg", "z/9.jpg"])
    truth = mixlib.mix(tmp_path / "mixed", [("a", a), ("b", b)])
    root = Path(truth["root"])
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*.jpg")) == \
        ["a/x/1.jpg", "a/x/2.jpg", "a/y/3.jpg", "b/x/1.jpg", "b/z/9.jpg"]
    assert (root / "b/z/9.jpg").read_bytes() == same
    assert sorted(map(sorted, truth["groups"])) == [["a/x/1.jpg", "a/x/2.jpg", "b/z/9.jpg"]]
    assert sorted(truth["singles"]) == ["a/y/3.jpg", "b/x/1.jpg"]
    assert truth["edits"]["b/z/9.jpg"] == "identical" and truth["edits"]["a/x/2.jpg"] == "resize"
    assert truth["classes"]["b/x/1.jpg"] == "b:photo"
    assert json.loads((tmp_path / "mixed" / "truth.json").read_text()) == truth
