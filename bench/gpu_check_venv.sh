#!/usr/bin/env bash
# Run bench/gpu_check.py as the lent GPU machine would run it: a fresh venv holding torch and only the packages
# that machine's python3 has (issue 25: numpy, scipy, pandas, pyarrow, opencv-python-headless, scikit-image,
# pillow, tqdm, pyyaml, tensorboard, pytest; no dlib, snakemake, PyAV, lpips, jsonschema), hfagp not installed
# (the check imports it from the checkout), on CPU at toy size.
#
#   bash bench/gpu_check_venv.sh [VENV_DIR] [OUT_DIR]      # TORCH_SPEC=torch==2.11.0 by default (the lent machine's)
#
# PyPI's torch 2.11.0 for Linux is the CUDA 13.0 build (about 3 GB with its nvidia-* wheels); it runs on CPU too.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-/tmp/hfagp-gpu-venv}
OUT=${2:-/tmp/hfagp-gpu-check-venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.11.0}
PYTHON=${PYTHON:-python3}
test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet "$TORCH_SPEC" numpy scipy pandas pyarrow opencv-python-headless \
    scikit-image pillow tqdm pyyaml tensorboard pytest
for absent in hfagp dlib snakemake av lpips jsonschema; do
    if (cd / && "$VENV/bin/python" -c "import $absent" 2>/dev/null); then
        echo "$VENV has $absent, which the lent machine lacks: use a fresh VENV_DIR" >&2
        exit 1
    fi
done
"$VENV/bin/python" bench/gpu_check.py --device cpu --quick --out "$OUT"
