#!/usr/bin/env bash
# Stop the daemons started by .ci/slurm-up.sh.
scratch=${1:-/tmp/snia-slurm}
for pid in "$scratch"/slurmd-*.pid "$scratch"/slurmctld.pid; do
    [ -f "$pid" ] && kill "$(cat "$pid")" 2>/dev/null
done
pkill -x munged 2>/dev/null
true
