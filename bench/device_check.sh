#!/usr/bin/env bash
# ONE command for a machine with an NVIDIA GPU and a Python that already has torch, CuPy, numba +
# numba-cuda, numpy, h5py, pyarrow, scikit-learn and pytest (nothing is installed; no network):
# versions and device, the GPU kernel tests, rasterization LC/s on real objects, training
# samples/s with its stage breakdown, each model arch's size and speed; one table at the end. snia runs from this checkout
# (PYTHONPATH), the CUDA sources from kernels/. Inputs (git-ignored, ~31 MB: bring them along):
#   results/stores/plasticc_train.h5, results/stores/plasticc_train.h5.shards/,
#   results/model/student/best.pt (optional: the inference row). See bench/device_check.py.
#   PYTHON=python3 bash bench/device_check.sh [--objects N] [--steps S]
#   bash bench/device_check.sh --smoke     (CPU, small: what CI runs)
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec "${PYTHON:-python3}" bench/device_check.py "$@"
