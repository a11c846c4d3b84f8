"""The README's module map matches the tree: every module it names exists, and every module of the four packages
is named (``__init__.py`` aside; the training package is one row, its own documentation names its modules)."""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("indexer", "api", "workers", "dupesift")
ONE_ROW = ("indexer/training/",)  # folders listed as a whole


def module_map(readme: str) -> list[str]:
    """The paths in the first column of the table under the "module map" heading."""
    section = readme.split("(module map)", 1)[1].split("\n## ", 1)[0]
    rows = [ln for ln in section.splitlines() if ln.startswith("| `")]
    return [p for ln in rows for p in re.findall(r"`([^`]+)`", ln.split("|")[1])]


def unlisted(root: Path, listed: list[str]) -> list[str]:
    out = []
    for pkg in PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if path.name != "__init__.py" and rel not in listed and not rel.startswith(ONE_ROW):
                out.append(rel)
    return out


def test_every_module_in_the_map_exists_and_every_module_is_in_it() -> None:
    listed = module_map((REPO / "README.md").read_text())
    assert len(listed) == len(set(listed)), "a module is listed twice"
    assert [p for p in listed if not (REPO / p).exists()] == []
    assert unlisted(REPO, listed) == []


def test_the_check_sees_a_missing_and_an_unlisted_module(tmp_path: Path) -> None:
    for rel in ("indexer/a.py", "indexer/training/t.py", "api/__init__.py", "workers/w.py", "dupesift/d.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    readme = ("## How it works (module map)\n\n| module | job |\n|---|---|\n| `indexer/a.py` | a |\n"
              "| `indexer/training/` | t |\n| `workers/gone.py` | g |\n\n## Next\n| `dupesift/d.py` | elsewhere |\n")
    listed = module_map(readme)
    assert listed == ["indexer/a.py", "indexer/training/", "workers/gone.py"]
    assert [p for p in listed if not (tmp_path / p).exists()] == ["workers/gone.py"]
    assert unlisted(tmp_path, listed) == ["workers/w.py", "dupesift/d.py"]
