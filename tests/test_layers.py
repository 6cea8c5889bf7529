"""The import layers of docs/ARCHITECTURE.md, read from the source (every import statement, function-level ones
included): launch → daa → kernels, daa → data_shards; kernels and data_shards import nothing above them; the
product never imports a harness; no package edits sys.path; no import cycle between the product's modules."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("daa", "kernels", "data_shards")
# package → top-level packages of this repository it must never import
FORBIDDEN = {
    "kernels": {"daa", "data_shards", "launch", "tests"},
    "data_shards": {"daa", "kernels", "launch", "tests"},
    "daa": {"launch", "tests"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(), str(path))
    mod = _module_name(path)
    pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            # `from pkg import mod` may name a submodule: keep both candidates
            out.append((node.lineno, base))
            out += [(node.lineno, f"{base}.{a.name}") for a in node.names if a.name != "*"]
    return out


def _files(pkg: str):
    return sorted(p for p in (ROOT / pkg).rglob("*.py") if "__pycache__" not in p.parts)


def _layer_violations(pkg: str) -> list[str]:
    bad = []
    for f in _files(pkg):
        for line, name in _imports(f):
            top = name.split(".")[0]
            if top in FORBIDDEN[pkg]:
                bad.append(f"{f.relative_to(ROOT)}:{line} imports {name}")
    return sorted(set(bad))


@pytest.mark.parametrize("pkg", PRODUCT)
def test_import_direction(pkg):
    assert _layer_violations(pkg) == []


@pytest.mark.parametrize("pkg", PRODUCT)
def test_no_sys_path_edits_in_packages(pkg):
    bad = [f"{f.relative_to(ROOT)}:{n.lineno}" for f in _files(pkg) for n in ast.walk(ast.parse(f.read_text()))
           if isinstance(n, ast.Attribute) and n.attr in ("insert", "append")
           and isinstance(n.value, ast.Attribute) and n.value.attr == "path"
           and isinstance(n.value.value, ast.Name) and n.value.value.id == "sys"]
    assert bad == []


def _graph(packages=PRODUCT) -> dict[str, set[str]]:
    mods = {_module_name(f): f for pkg in packages for f in _files(pkg)}
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, f in mods.items():
        for _, name in _imports(f):
            # the longest known module the import names (a package's __init__ counts as that package)
            while name and name not in mods:
                name = name.rpartition(".")[0]
            if name and name != m and not m.startswith(name + "."):
                graph[m].add(name)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


# The one cycle kept on purpose: the restorer registry imports the built-in networks inside a function, on first
# use, so that their @register_restorer decorators run; each network imports that decorator from the registry.
ALLOWED_CYCLES = [["daa.models.dncnn", "daa.models.mini", "daa.models.nafnet", "daa.models.registry",
                   "daa.models.restormer", "daa.models.unet"]]


def test_no_import_cycles_in_the_product():
    # a package's __init__ re-exporting its submodules is not a cycle: edges from a module into its own parent
    # package are dropped in _graph
    assert [c for c in _cycles(_graph()) if c not in ALLOWED_CYCLES] == []


def test_the_checker_sees_what_it_must(tmp_path, monkeypatch):
    """The helpers find a relative import, a function-level import and a sys.path edit (the test can fail)."""
    pkg = tmp_path / "kernels"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from .b import g\n    import daa.metrics\n")
    (pkg / "b.py").write_text("import sys\nsys.path.insert(0, '.')\nfrom . import a\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert _layer_violations("kernels") == ["kernels/a.py:3 imports daa.metrics"]
    assert _cycles(_graph(("kernels",))) == [["kernels.a", "kernels.b"]]
    with pytest.raises(AssertionError):
        test_no_sys_path_edits_in_packages("kernels")


def test_dead_code_scan_is_clean():
    """vulture over the product and the harnesses finds nothing beyond tests/vulture_allowlist.py (each line there
    says why the name is used)."""
    r = subprocess.run([sys.executable, "-m", "vulture", "daa", "kernels", "data_shards", "launch",
                        "tests/vulture_allowlist.py", "--min-confidence", "60"], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
