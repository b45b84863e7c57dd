#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment and install maco_tf with its dev tools
# and the KerasHub extra (so that tests/test_hub.py runs).
# Usage: bash scripts/setup.sh            (venv in .venv; MACO_TF_VENV=path to change it)
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${MACO_TF_VENV:-.venv}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade pip
fi
stamp="$venv/.maco_tf_setup"
want="$(cat setup.cfg pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    "$venv/bin/python" -m pip install -q -e ".[dev,hub]"
    echo "$want" > "$stamp"
fi
# The labelled ImageNet photos of the foolbox wheel (maco_tf.models.zoo.photos): its data files
# only, so without its dependencies; maco_tf never imports foolbox.
if ! "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('foolbox') != '3.3.4')" 2>/dev/null; then
    "$venv/bin/python" -m pip install -q --no-deps foolbox==3.3.4
fi
