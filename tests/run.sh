#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite, offline, slow tests included (-m "").
# Extra arguments go to pytest, e.g. tests/run.sh -m "not slow" -x.
set -euo pipefail
cd "$(dirname "$0")/.."
examples/setup_env.sh test
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PATH="$PWD/.venv/bin:$PATH"
exec .venv/bin/python -m pytest -q -m "" tests "$@"
