"""The layers hold: the core (``indexer``) imports no web, queue or command-line code, not even inside a function,
and no module imports itself through others (every import counts, also those inside functions).

Read from the source with ``ast``, so a lazy import cannot hide a dependency.
"""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("indexer", "api", "workers", "dupesift", "migrations")
SHELLS = ("api", "workers", "dupesift")  # what the core must never import

# Import cycles that exist today in code other helpers are rewriting. Each must disappear with that work; an
# entry that no longer matches a cycle fails the test so that it is deleted here.
KNOWN_CYCLES: set[frozenset[str]] = set()


def modules(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    """Dotted name -> file of every module of ``packages`` under ``root``."""
    out: dict[str, Path] = {}
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _type_checking_only(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return isinstance(test, ast.Name) and test.id == "TYPE_CHECKING" or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imported_names(name: str, path: Path) -> set[str]:
    """Every module name ``path`` imports, anywhere in it (blocks under ``if TYPE_CHECKING:`` left out)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    skipped = {id(n) for node in ast.walk(tree) if _type_checking_only(node)
               for child in node.body for n in ast.walk(child)}
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            out.update(f"{base}.{a.name}" for a in node.names)  # a module, or a name in module `base`
    return out


def graph(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    """Module -> the project modules it imports (an imported name is resolved to its longest module prefix)."""
    mods = modules(root, packages)
    edges: dict[str, set[str]] = {}
    for name, path in mods.items():
        targets = set()
        for imported in imported_names(name, path):
            parts = imported.split(".")
            hit = next((".".join(parts[:n]) for n in range(len(parts), 0, -1) if ".".join(parts[:n]) in mods), None)
            if hit is not None and hit != name:
                targets.add(hit)
        edges[name] = targets
    return edges


def cycles(edges: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(frozenset(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def core_violations(root: Path) -> list[str]:
    """``module -> imported name`` for every import of a shell package by a core module."""
    out = []
    for name, path in modules(root, ("indexer",)).items():
        for imported in sorted(imported_names(name, path)):
            if imported.split(".")[0] in SHELLS:
                out.append(f"{name} -> {imported}")
    return out


def test_the_core_imports_no_shell() -> None:
    assert core_violations(REPO) == []


def test_no_module_imports_itself_through_others() -> None:
    found = set(cycles(graph(REPO)))
    assert found - KNOWN_CYCLES == set(), sorted(sorted(c) for c in found - KNOWN_CYCLES)
    assert KNOWN_CYCLES - found == set(), f"no longer a cycle, delete it from KNOWN_CYCLES: {KNOWN_CYCLES - found}"


def test_the_checks_see_lazy_and_relative_imports(tmp_path: Path) -> None:
    """The two checks on a made-up tree: a lazy shell import in the core and a cycle through a relative import."""
    (tmp_path / "indexer" / "sub").mkdir(parents=True)
    (tmp_path / "api").mkdir()
    (tmp_path / "indexer" / "__init__.py").write_text("")
    (tmp_path / "indexer" / "sub" / "__init__.py").write_text("")
    (tmp_path / "api" / "__init__.py").write_text("")
    (tmp_path / "indexer" / "a.py").write_text("def f():\n    from api import routes\n")
    (tmp_path / "indexer" / "sub" / "b.py").write_text("from .. import a\nfrom typing import TYPE_CHECKING\n"
                                                       "if TYPE_CHECKING:\n    from indexer.sub import c\n")
    (tmp_path / "indexer" / "sub" / "c.py").write_text("import indexer.sub.b\n")
    (tmp_path / "api" / "routes.py").write_text("def g():\n    import indexer.sub.b as b\n")
    assert core_violations(tmp_path) == ["indexer.a -> api.routes"]
    edges = graph(tmp_path, ("indexer", "api"))
    assert edges["indexer.sub.b"] == {"indexer.a"}  # the TYPE_CHECKING import does not count
    assert cycles(edges) == [frozenset({"indexer.a", "api.routes", "indexer.sub.b"})]
