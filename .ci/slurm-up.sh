#!/usr/bin/env bash
# Start a single-node SLURM cluster on this machine (root; Debian slurm-wlm + munge), as
# ../shared/CLUSTER_NOTES.md measured: no accounting, linuxproc, one partition `debug`.
# MpiDefault=pmi2 because the project's MPI is the `mpich` wheel (srun --mpi=pmix fails with it).
# Usage: .ci/slurm-up.sh [SCRATCH_DIR]    stop with .ci/slurm-down.sh [SCRATCH_DIR]
set -euo pipefail
scratch=${1:-/tmp/snia-slurm}
mkdir -p "$scratch"/{state,spool,log} /etc/slurm /run/munge
host=$(hostname -s)
mem=$(( $(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) - 1024 ))
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=snia-ci
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
MpiDefault=pmi2
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
ReturnToService=2
MailProg=/bin/true
MinJobAge=300
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
StateSaveLocation=$scratch/state
SlurmdSpoolDir=$scratch/spool
SlurmctldPidFile=$scratch/slurmctld.pid
SlurmdPidFile=$scratch/slurmd.pid
SlurmctldLogFile=$scratch/log/slurmctld.log
SlurmdLogFile=$scratch/log/slurmd.log
NodeName=$host CPUs=$(nproc) RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
chown munge:munge /run/munge
[ -f /etc/munge/munge.key ] || /usr/sbin/mungekey --create > /dev/null 2>&1 || true
pgrep -x munged > /dev/null || runuser -u munge -- /usr/sbin/munged
/usr/sbin/slurmctld -i
/usr/sbin/slurmd
for _ in $(seq 60); do
    state=$(sinfo -h -o %T 2>/dev/null || true)
    [ "$state" = idle ] && { echo "SLURM up: $(sinfo -h -o '%P %D %c %m %T')"; exit 0; }
    sleep 1
done
echo "SLURM did not come up (state: ${state:-none}); logs in $scratch/log" >&2
exit 1
