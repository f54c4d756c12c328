#!/usr/bin/env bash
# The Snakemake workflow for real, on the small config (.test/: 300 real PLAsTiCC objects per
# file, 2 epochs): `snakemake --lint`; a local run (--profile cluster/local, mpiexec); then a run
# through a real single-node SLURM cluster (--profile cluster/slurm + the cluster/slurm-local
# overlay: sbatch jobs, srun ranks). Each run's outputs are checked by .ci/check_workflow.py.
# Last, on the same cluster's 2-node partition, the tests marked `slurm` (multi-node jobs).
# Needs: .venv (make test), data/plasticc (fetched by make test), root, Debian slurm-wlm + munge.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PWD/.venv/bin:$PATH
smk=(snakemake --snakefile Snakefile --directory .test)

echo "== snakemake --lint"
lint=$(snakemake --lint 2>&1) || { echo "$lint"; exit 1; }
if grep -q "Lints for" <<<"$lint"; then echo "$lint"; exit 1; fi
tail -n 1 <<<"$lint"

echo "== local run (cluster/local profile)"
rm -rf .test/results .test/.snakemake
start=$SECONDS
# the comparison first (not part of `all`), so that the report of `all` includes its table
timeout -k 30 1200 bash -c '"$@" compare scaling && "$@" all' _ "${smk[@]}" --profile cluster/local \
    > .test/local.log 2>&1 || { tail -n 60 .test/local.log; exit 1; }
echo "local run: $(( SECONDS - start )) s"
python .ci/check_workflow.py .test/results --launcher mpiexec

echo "== SLURM run (cluster/slurm + cluster/slurm-local)"
rm -rf .test/results .test/.snakemake
.ci/slurm-up.sh
trap .ci/slurm-down.sh EXIT
start=$SECONDS
slurm=("${smk[@]}" --profile cluster/slurm --workflow-profile cluster/slurm-local)
timeout -k 30 1500 bash -c '"$@" compare scaling && "$@" all' _ "${slurm[@]}" \
    > .test/slurm.log 2>&1 || { tail -n 60 .test/slurm.log; exit 1; }
echo "SLURM run: $(( SECONDS - start )) s, $(grep -c 'has been submitted with SLURM jobid' .test/slurm.log) sbatch jobs"
python .ci/check_workflow.py .test/results --launcher srun --slurm-logs .test/.snakemake/slurm_logs

echo "== 2 nodes x 4 GPUs as SLURM sees them (partition gpu: stand-in nodes on this host)"
# sbatch --test-only of every GPU job the shipped profile makes for 8 ranks on 2 nodes and of
# cluster/sbatch/train_ddp.sbatch; then ranks on two SLURM nodes train what one rank trains
SNIA_REQUIRE_SLURM=1 timeout -k 30 900 python -m pytest -q -p no:cacheprovider -m slurm tests/test_workflow.py
