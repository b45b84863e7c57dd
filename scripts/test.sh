#!/usr/bin/env bash
# Install if needed, lint, and run the whole test suite on the CPU (extra args go to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
venv="${MACO_TF_VENV:-.venv}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
"$venv/bin/ruff" check .
"$venv/bin/ruff" format --check .
bash scripts/install_browser.sh >/dev/null || echo "note: no Chromium; tests/test_atlas_browser.py will skip"
"$venv/bin/python" -m pytest -q "$@"
