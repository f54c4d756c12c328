#!/usr/bin/env bash
# Start a single-node SLURM cluster on this machine (root; Debian slurm-wlm + munge), as
# ../shared/CLUSTER_NOTES.md measured: no accounting, linuxproc, one partition `debug`.
# MpiDefault=pmi2 because the project's MPI is the `mpich` wheel (srun --mpi=pmix fails with it).
# Beside the machine's own node (partition `debug`, the workflow's), partition `gpu` has two more
# node names on this same host, gpu1 and gpu2, shaped like the 2 nodes x 4 GPUs x 32 cores the
# multi-node batch scripts ask for: a slurmd each (`slurmd -N`, own port), the configured shape
# taken as is (SlurmdParameters=config_overrides), 4 GPUs each (type a100, as the shipped profile names them) as stand-ins (character
# devices of /dev/null's numbers: SLURM wants devices, nothing opens them), and the names in
# /etc/hosts as 127.0.0.1. So `sbatch --test-only` checks a script's 2 x 4 request, and a job of
# one task per node runs its ranks as on 2 nodes (.ci/two-nodes-check.sh).
# Usage: .ci/slurm-up.sh [SCRATCH_DIR]    stop with .ci/slurm-down.sh [SCRATCH_DIR]
set -euo pipefail
scratch=${1:-/tmp/snia-slurm}
host=$(hostname -s)
mkdir -p "$scratch"/{state,log,dev} "$scratch"/spool/{"$host",gpu1,gpu2} /etc/slurm /run/munge
for k in 0 1 2 3; do
    [ -e "$scratch/dev/gpu$k" ] || mknod "$scratch/dev/gpu$k" c 1 3
done
grep -qw gpu1 /etc/hosts || echo "127.0.0.1 gpu1 gpu2  # snia CI: .ci/slurm-up.sh" >> /etc/hosts
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
SlurmdParameters=config_overrides
GresTypes=gpu
DefMemPerCPU=1024
ReturnToService=2
MailProg=/bin/true
MinJobAge=300
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
StateSaveLocation=$scratch/state
SlurmdSpoolDir=$scratch/spool/%n
SlurmctldPidFile=$scratch/slurmctld.pid
SlurmdPidFile=$scratch/slurmd-%n.pid
SlurmctldLogFile=$scratch/log/slurmctld.log
SlurmdLogFile=$scratch/log/slurmd-%n.log
NodeName=$host Port=6818 CPUs=$(nproc) RealMemory=$mem State=UNKNOWN
NodeName=gpu[1-2] NodeHostname=$host NodeAddr=127.0.0.1 Port=17001-17002 CPUs=32 RealMemory=64000 Gres=gpu:a100:4 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=gpu[1-2] MaxTime=INFINITE State=UP
CONF
cat > /etc/slurm/gres.conf <<CONF
NodeName=gpu[1-2] Name=gpu Type=a100 File=$scratch/dev/gpu[0-3]
CONF
chown munge:munge /run/munge
[ -f /etc/munge/munge.key ] || /usr/sbin/mungekey --create > /dev/null 2>&1 || true
pgrep -x munged > /dev/null || runuser -u munge -- /usr/sbin/munged
/usr/sbin/slurmctld -i
for node in "$host" gpu1 gpu2; do
    /usr/sbin/slurmd -N "$node"
done
for _ in $(seq 60); do
    state=$(sinfo -h -o %T 2>/dev/null | sort -u | tr '\n' ' ' || true)
    [ "$state" = "idle " ] && { echo "SLURM up:"; sinfo -h -o '%P %D %c %m %G %T'; exit 0; }
    sleep 1
done
echo "SLURM did not come up (state: ${state:-none}); logs in $scratch/log" >&2
exit 1
