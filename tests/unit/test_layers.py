"""The import rules of ARCHITECTURE.md, held by a test: dependencies point one way
(``rayjobs -> services -> actors -> gridfare``), the core knows nothing of Ray, the faces
start Ray work only inside the functions that need it, ``datasets`` imports only the
kernel, and ``actors`` has no import cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FACES = {"gridfare/api.py", "gridfare/cli.py", "gridfare/cli_seats.py",
         "gridfare/cli_loadshare.py", "gridfare/cli_accounts.py"}
RAY_SIDE = ("ray", "actors", "rayjobs", "services", "backends")
KERNEL = ("gridfare.errors", "gridfare.period", "gridfare.money")


def _modules(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


def _rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def _imports(path: Path) -> list[tuple[str, bool]]:
    """Every module ``path`` imports, and whether at module level (else inside a function
    or class body)."""
    tree = ast.parse(path.read_text(), str(path))
    top = set()
    for node in tree.body:
        for sub in ast.walk(node) if isinstance(node, (ast.If, ast.Try)) else [node]:
            top.add(id(sub))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, id(node) in top))
    return found


def _under(module: str, roots) -> bool:
    return any(module == r or module.startswith(r + ".") for r in roots)


def _core() -> list[Path]:
    return [p for p in _modules("gridfare") if _rel(p) not in FACES and "gridfare/cli/" not in
            _rel(p)]


@pytest.mark.parametrize("path", _core(), ids=_rel)
def test_the_core_imports_no_ray_actors_rayjobs_or_services(path):
    bad = [m for m, _ in _imports(path) if _under(m, RAY_SIDE)]
    assert not bad, f"{_rel(path)} imports {bad}"


@pytest.mark.parametrize("path", [p for p in _modules("gridfare") if _rel(p) in FACES
                                  or "gridfare/cli/" in _rel(p)], ids=_rel)
def test_the_faces_start_ray_work_only_inside_functions(path):
    bad = [m for m, top in _imports(path) if top and _under(m, RAY_SIDE)]
    assert not bad, f"{_rel(path)} imports {bad} at module level"


@pytest.mark.parametrize("path", _modules("datasets"), ids=_rel)
def test_datasets_import_only_the_kernel(path):
    bad = [m for m, _ in _imports(path)
           if _under(m, RAY_SIDE) or (_under(m, ("gridfare",)) and not _under(m, KERNEL))]
    assert not bad, f"{_rel(path)} imports {bad}"


@pytest.mark.parametrize("package, above", [
    ("actors", ("services", "rayjobs")),
    ("services", ("rayjobs",)),
])
def test_dependencies_point_one_way(package, above):
    for path in _modules(package):
        bad = [m for m, _ in _imports(path) if _under(m, above)]
        assert not bad, f"{_rel(path)} imports {bad}"


def test_actors_have_no_import_cycle():
    graph = {}
    for path in _modules("actors"):
        name = _rel(path).removesuffix(".py").replace("/", ".").removesuffix(".__init__")
        graph[name] = {m for m, _ in _imports(path) if _under(m, ("actors",)) and m != name}
    # ``from actors import X`` is the package itself (its __init__), which imports nothing
    graph.setdefault("actors", set())

    def visit(node: str, trail: list[str]) -> None:
        if node in trail:
            raise AssertionError("import cycle: " + " -> ".join([*trail[trail.index(node):],
                                                                  node]))
        for nxt in sorted(graph.get(node, ())):
            visit(nxt, [*trail, node])

    for node in sorted(graph):
        visit(node, [])
