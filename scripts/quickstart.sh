#!/usr/bin/env bash
# Install if needed, then visualise two ImageNet classes with the offline EfficientNet-Lite0.
# Extra arguments are passed to `maco-tf visualize` (e.g. --steps 24 --size 224 for a preview).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
venv="${MACO_TF_VENV:-.venv}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
"$venv/bin/maco-tf" visualize --classes espresso,goldfish --out maco_out "$@"
