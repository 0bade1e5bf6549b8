"""The layers stay apart: lint rules per layer (ruff) and an import graph without cycles."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.assets import REPO

ROOT = REPO
LAYERS = ("clsp", "clsp_cli", "commands")
RUFF = [sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise"]


def test_layer_lint_rules_pass():
    res = subprocess.run(RUFF + list(LAYERS), cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("layer,source,rule", [
    ("clsp", "import typer\n", "TID251"),
    ("clsp", "from clsp_cli.console import log\n", "TID251"),
    ("clsp_cli", "import torch\n", "TID253"),
    ("commands", "from commands.embed import main\n", "TID251"),
    ("commands", "from clsp_cli.commands.embed import main\n", "TID251"),
    ("commands", "import clsp_cli.commands.search\n", "TID251"),
    ("clsp", "from clsp_cli.commands.search import main\n", "TID251"),
    ("commands", "import numpy as np\n", "TID253"),
])
def test_layer_lint_rules_catch_a_crossing(tmp_path, layer, source, rule):
    shutil.copy(ROOT / "ruff.toml", tmp_path / "ruff.toml")
    (tmp_path / layer).mkdir()
    shutil.copy(ROOT / layer / "ruff.toml", tmp_path / layer / "ruff.toml")
    (tmp_path / layer / "bad.py").write_text(source)
    res = subprocess.run(RUFF + [layer], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and rule in res.stdout, res.stdout + res.stderr


def _imports(path: Path, package: str) -> set[str]:
    """Modules of ``package`` that ``path`` imports anywhere (top level or inside functions)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == package}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.split(".")[0] == package:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def import_graph(package: str = "clsp") -> dict[str, set[str]]:
    """module -> the modules of ``package`` it imports (names that are not modules are dropped)."""
    files = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
             for p in (ROOT / package).rglob("*.py")}
    return {mod: {m for m in _imports(path, package) if m in files and m != mod} for mod, path in files.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_library_imports_have_no_cycle():
    graph = import_graph("clsp")
    # package __init__ files re-export their modules; an edge into the package itself is not a cycle
    graph = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph.items()}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_cycle_finder_finds_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("argv", [["--help"], ["search", "--help"], ["similarity", "--help"]])
def test_help_loads_neither_torch_nor_rich(argv):
    # torch, transformers and faiss load inside the commands that need them; rich (and typer's rich
    # help with its markdown parser) only when something is printed to the stderr console.
    code = (f"import sys; sys.argv = ['clsp'] + {argv!r}\n"
            "from clsp_cli.app import main\n"
            "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
            "heavy = ('torch', 'transformers', 'faiss', 'numpy', 'rich', 'markdown_it', 'pygments')\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & set(heavy)), file=sys.stderr)")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "Usage: clsp" in res.stdout
    assert res.stderr.strip().splitlines()[-1] == "[]"
