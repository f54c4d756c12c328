# snia: the two commands of the README, plus the parallel-HDF5 test run that CI adds.
#   make run    set up .venv and run the main Snakemake workflow on this machine (cluster/local
#               profile): fetch PLAsTiCC + SPCC, ingest on 2 MPI ranks, train the CNN on 2 DDP
#               ranks, evaluate, random-forest baseline, report (results/report/report.md)
#   make compare  the six architectures side by side, then the report with their table
#   make test   set up .venv and run the test suite (MPI tests on real ranks)
# Everything lives in local virtual environments; only Python 3.11+ and the package registries are
# needed (MPI comes from the 'mpich' wheel).

PYTHON ?= python3
VENV ?= .venv
RESULTS ?= results
BIN := $(VENV)/bin
# PyTorch for training; this pin is the CPU build that these machines carry locally (elsewhere pip
# takes the CUDA build; set TORCH=... to choose another).
TORCH ?= torch==2.13.0

.PHONY: run compare test test-mpio bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[test,mpi-wheel,train]"
	touch $@

run: $(BIN)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --profile cluster/local --config results_dir=$(RESULTS)
	@$(BIN)/python -m snia.report.summary $(RESULTS)/report/report.md

# The architectures side by side (trains six models: ~35 minutes on 2 cores), then the report
# again with their table.
compare: $(BIN)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake compare --profile cluster/local --config results_dir=$(RESULTS)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --profile cluster/local --config results_dir=$(RESULTS)
	@$(BIN)/python -m snia.report.summary $(RESULTS)/report/report.md

# The architecture contract (import-linter: layers, no cycles) and the lint rules (ruff) first.
test: $(BIN)/.installed
	$(BIN)/lint-imports
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

# Parallel HDF5 (h5py built against Debian's OpenMPI HDF5) for the collective single-file layout.
# Needs root once: apt-get install openmpi-bin libopenmpi-dev libhdf5-openmpi-dev pkg-config build-essential
MPIO_VENV ?= .venv-mpio
$(MPIO_VENV)/bin/.installed: pyproject.toml
	$(PYTHON) -m venv $(MPIO_VENV)
	$(MPIO_VENV)/bin/pip install --quiet --upgrade pip
	$(MPIO_VENV)/bin/pip install --quiet "Cython>=3" pkgconfig numpy mpi4py "setuptools>=77" wheel
	HDF5_MPI=ON CC=mpicc HDF5_PKGCONFIG_NAME=hdf5-openmpi $(MPIO_VENV)/bin/pip install --quiet \
		--no-binary=h5py --no-build-isolation h5py
	$(MPIO_VENV)/bin/python -c "import h5py, sys; sys.exit(0 if h5py.get_config().mpi else 'h5py built without MPI')"
	$(MPIO_VENV)/bin/pip install --quiet -e ".[test]"
	touch $@

test-mpio: $(MPIO_VENV)/bin/.installed
	OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 $(MPIO_VENV)/bin/python -m pytest -q -m "mpi or mpio"

bench: $(BIN)/.installed
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) $(MPIO_VENV) $(RESULTS) *.egg-info
