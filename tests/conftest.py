"""Shared fixtures and settings. Models, corpora and CLI runners live in ``tests/helpers``;
the names below are re-exported so ``from tests.conftest import ...`` keeps working."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Subprocess tests call `clsp` by name: make the interpreter's own scripts folder win.
os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tests.helpers.assets import clips, make_clips, tiny_model, tiny_model_dir, tone, write_wav  # noqa: E402
from tests.helpers.cli import CLSP, invoke, jsonl, run_clsp  # noqa: E402

__all__ = ["CLSP", "clips", "invoke", "jsonl", "make_clips", "run_clsp", "tiny_model", "tiny_model_dir", "tone", "write_wav"]
