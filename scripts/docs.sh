#!/usr/bin/env bash
# Build the documentation site (mkdocs-material + mkdocstrings, strict) into site/.
# Usage: bash scripts/docs.sh                 install docs/requirements.txt, build site/ (strict)
#        bash scripts/docs.sh serve           live preview on http://127.0.0.1:8000
#        bash scripts/docs.sh figures [STEPS] re-render docs/images/*.png (default 64 steps)
#        bash scripts/docs.sh notebooks [STEPS]  re-execute notebooks/*.ipynb in place (default 64)
# The virtual environment is .venv (MACO_TF_VENV=path to change it), made by scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
venv="${MACO_TF_VENV:-.venv}"
"$venv/bin/python" -m pip install -q -r docs/requirements.txt
export NO_MKDOCS_2_WARNING=1 TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
case "${1:-build}" in
    build) "$venv/bin/python" -m mkdocs build --strict ;;
    serve) "$venv/bin/python" -m mkdocs serve --strict ;;
    figures) "$venv/bin/python" docs/make_figures.py --steps "${2:-64}" ;;
    notebooks) "$venv/bin/python" -m tests.test_docs "${2:-64}" ;;
    *) echo "usage: bash scripts/docs.sh [build|serve|figures [STEPS]|notebooks [STEPS]]" >&2; exit 2 ;;
esac
