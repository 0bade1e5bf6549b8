#!/usr/bin/env bash
# Create ./.venv with clsp installed (editable) and, with "test", the test tools and the
# Debian packages the tests use (espeak-ng, sox). Safe to run again: it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import clsp, torch, torchaudio, transformers, faiss, polars, soundfile" 2>/dev/null \
   || [ pyproject.toml -nt .venv/.clsp-installed ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q "torch==2.11.0" "torchaudio==2.11.0"
  .venv/bin/python -m pip install -q -e ".[test]"
  touch .venv/.clsp-installed
fi
if [ "${1:-}" = "test" ] && ! { command -v espeak-ng && command -v chromium; } >/dev/null; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -q && $SUDO apt-get install -y -q espeak-ng sox libsox-fmt-mp3 lame chromium >/dev/null
fi
