#!/usr/bin/env bash
# ONE script for a machine with an NVIDIA GPU: every GPU test, then the GPU benchmark (< 5 min).
# It uses that machine's python3 as it is (CuPy, Numba CUDA, NumPy, h5py); it installs nothing:
# snia runs from this checkout on PYTHONPATH, so the CUDA sources come from kernels/ (see
# snia/raster/cuda_sources.py), not from an installed snia.kernels.
#   bash bench/gpu_check.sh            (OBJECTS=200000 bash bench/gpu_check.sh for a quicker run)
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
status=0
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || status=1
$PY -c "import cupy, numba; from numba import cuda
print('cupy', cupy.__version__, '| numba', numba.__version__, '| numba.cuda available:', cuda.is_available())" || status=1
$PY -c "from snia.raster.cuda_sources import source_dir; print('CUDA sources from', source_dir())" || status=1
# On a GPU the Numba CUDA tests run on the device (tests/conftest.py enables the simulator only
# where /dev/nvidiactl is absent) and the CuPy tests stop skipping.
$PY -m pytest -q -p no:cacheprovider tests/test_raster.py tests/test_kernels.py || status=1
timeout 240 $PY bench/raster_gpu.py --objects "${OBJECTS:-1000000}" || status=1
exit $status
