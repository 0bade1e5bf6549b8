"""The layers stay apart: lint rules per layer (ruff)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
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
    ("commands", "import numpy as np\n", "TID253"),
])
def test_layer_lint_rules_catch_a_crossing(tmp_path, layer, source, rule):
    shutil.copy(ROOT / "ruff.toml", tmp_path / "ruff.toml")
    (tmp_path / layer).mkdir()
    shutil.copy(ROOT / layer / "ruff.toml", tmp_path / layer / "ruff.toml")
    (tmp_path / layer / "bad.py").write_text(source)
    res = subprocess.run(RUFF + [layer], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and rule in res.stdout, res.stdout + res.stderr
