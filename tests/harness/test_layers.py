"""The harness's imports flow one way (docs/api.md): the contenders below the config, the grid and the cost
model; the dry run's cost model without the run (each import runs in a fresh interpreter); and datasets/,
harness/ and pertvae_core/ have no import cycle, not even one dodged by an import inside a function (the
module-level import graph, parsed)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest


def _loaded(module: str) -> set[str]:
    code = f"import sys, {module}; print(' '.join(m for m in sys.modules if m.startswith('harness')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize("module, not_loaded", [
    ("harness.cost", {"harness.run", "harness.tasks"}),
    ("harness.prepare", {"harness.run", "harness.cost"}),
    ("harness.contenders", {"harness.config", "harness.grid", "harness.cost", "harness.tasks", "harness.run",
                            "harness.calibrate"}),
])
def test_imports_flow_one_way(module, not_loaded):
    loaded = _loaded(module)
    assert module in loaded and not loaded & not_loaded, sorted(loaded & not_loaded)


# --- no import cycles, and no import hidden inside a function to dodge one -------------------------------

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("datasets", "harness", "pertvae_core")


def _module_name(rel: Path) -> str:
    rel = rel.with_suffix("")
    return ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)


def _imported(node: ast.Import | ast.ImportFrom, name: str, is_pkg: bool, known: set[str]) -> list[str]:
    """The project modules an import statement of module ``name`` loads (the longest known prefix)."""
    if isinstance(node, ast.Import):
        wanted = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:
            parts = name.split(".")[: None if is_pkg else -1]
            parts = parts[: len(parts) - node.level + 1]
            base = ".".join([*parts, base] if base else parts)
        wanted = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
    out = []
    for w in wanted:
        while w and w not in known:
            w = w.rpartition(".")[0]
        if w and w != name:
            out.append(w)
    return out


def import_graph(sources: dict[str, tuple[str, bool]]
                 ) -> tuple[dict[str, set[str]], list[tuple[str, str, int]]]:
    """``sources`` {module: (source, is_package)} -> (module-level imports: module -> the project modules it
    loads, parents of a submodule included; imports inside functions: (module, target, line)). Imports
    under ``if TYPE_CHECKING`` load nothing."""
    known = set(sources)
    top: dict[str, set[str]] = {m: set() for m in sources}
    inner: list[tuple[str, str, int]] = []

    def visit(node: ast.AST, name: str, is_pkg: bool, in_func: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                for t in _imported(child, name, is_pkg, known):
                    if in_func:
                        inner.append((name, t, child.lineno))
                    else:
                        parts = t.split(".")
                        top[name].update(p for i in range(1, len(parts) + 1)
                                         if (p := ".".join(parts[:i])) in known and p != name
                                         and not name.startswith(p + "."))
            visit(child, name, is_pkg, in_func or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef))

    for name, (src, is_pkg) in sources.items():
        visit(ast.parse(src), name, is_pkg, False)
    return top, inner


def _reach(top: dict[str, set[str]], start: str) -> set[str]:
    seen, stack = set(), [start]
    while stack:
        for t in top.get(stack.pop(), ()):
            if t not in seen:
                seen.add(t)
                stack.append(t)
    return seen


def import_problems(sources: dict[str, tuple[str, bool]]) -> list[str]:
    """Every module on a module-level import cycle, and every import inside a function whose target loads
    the importing module at module level (a cycle it dodges)."""
    top, inner = import_graph(sources)
    out = [f"cycle: {m} imports itself through {sorted(t for t in _reach(top, m) if m in _reach(top, t))}"
           for m in sorted(top) if m in _reach(top, m)]
    out += [f"hidden: {m}:{line} imports {t} inside a function, and {t} imports {m}"
            for m, t, line in inner if m in _reach(top, t)]
    return out


def test_datasets_and_harness_have_no_import_cycles_and_no_hidden_ones():
    sources = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            sources[_module_name(path.relative_to(ROOT))] = (path.read_text(), path.name == "__init__.py")
    assert len(sources) > 50
    assert not import_problems(sources), "\n".join(import_problems(sources))


def test_the_import_check_finds_cycles_and_hidden_imports():
    planted = {
        "harness": ("", True),
        "harness.a": ("from harness import b\n", False),
        "harness.b": ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from harness import c\n"
                      "def f():\n    from harness.a import x\n", False),
        "harness.c": ("from harness.d import y\n", False),
        "harness.d": ("import harness.c\n", False),
    }
    found = import_problems(planted)
    assert any(p.startswith("cycle: harness.c ") for p in found), found
    assert any(p.startswith("cycle: harness.d ") for p in found), found
    assert "hidden: harness.b:5 imports harness.a inside a function, and harness.a imports harness.b" in found
    assert not any("harness.a imports itself" in p for p in found)   # a TYPE_CHECKING import loads nothing
