"""Ranks: who launched this process, as which rank of how many, and the MPI world of ingestion.

One table (``LAUNCHERS``) of the variables through which torchrun, mpiexec (Open MPI, MPICH/PMI,
PMIx) and srun announce a process's rank, the world size and its rank on the node; ingestion and
training read it alike (``dist_from_env``). Training then shares the node's CPU cores among its
ranks (``share_cpu_threads``) and joins a torch process group (``init_distributed``).

A plain ``snia ingest`` runs as one rank with no MPI at all. Under ``mpiexec``/``srun`` the launcher's
environment says how many ranks to expect; if mpi4py then reports fewer (missing, or built against a
different MPI) we stop instead of letting N independent copies write the same output.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

log = logging.getLogger(__name__)

SUM, MAX = "sum", "max"

# (launcher, rank, world size, local rank): the variables each launcher sets, in the order they
# are trusted. MPI's come before SLURM's: an mpiexec inside a batch job inherits the job's
# SLURM_PROCID=0 for every rank it starts, while srun (with PMI) sets both consistently.
LAUNCHERS = (
    ("torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK"),
    ("mpiexec", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"),
    ("mpiexec", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID"),
    ("mpiexec", "PMIX_RANK", "PMIX_SIZE", "PMIX_LOCAL_RANK"),
    ("srun", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"),
)
# Ranks on this node, from the same launchers (SLURM writes e.g. "2(x3)" for 3 nodes of 2).
LOCAL_SIZE_VARS = ("LOCAL_WORLD_SIZE", "SLURM_STEP_TASKS_PER_NODE", "SLURM_TASKS_PER_NODE",
                   "OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS")


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    launcher: str = "none"  # who started the ranks: torchrun, srun, mpiexec or none

    @property
    def main(self) -> bool:
        return self.rank == 0


def dist_from_env(env=os.environ, launchers=LAUNCHERS) -> Dist:
    """Rank, world size and local rank from the first launcher whose variables are set (else
    one rank). srun with PMI sets PMI_* too: then it is srun, with SLURM's local rank."""
    for launcher, rank, world, local in launchers:
        if rank in env and world in env:
            if launcher == "mpiexec" and env.get("SLURM_PROCID") == env[rank] and "SLURM_STEP_ID" in env:
                launcher, local = "srun", "SLURM_LOCALID"
            return Dist(int(env[rank]), int(env[world]), int(env.get(local, 0)), launcher)
    return Dist()


def local_ranks(env=os.environ) -> int:
    """Ranks on this node, from torchrun, srun or mpiexec (1 when none says)."""
    for key in LOCAL_SIZE_VARS:
        value = env.get(key, "").split("(")[0]
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 1


def share_cpu_threads(env=os.environ) -> int:
    """On CPUs, give each rank its share of the cores (torch and numba threads), so N ranks on
    one node do not oversubscribe it. The cores are this process's CPU affinity, capped by
    OMP_NUM_THREADS when set: the budget of the node's ranks together (Snakemake sets it to a
    job's threads; torchrun sets 1)."""
    import numba
    import torch

    cores = len(os.sched_getaffinity(0))
    if env.get("OMP_NUM_THREADS", "").isdigit():
        cores = min(cores, int(env["OMP_NUM_THREADS"]))
    threads = max(1, cores // local_ranks(env))
    torch.set_num_threads(threads)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    return threads


def init_distributed(dist: Dist, device) -> None:
    """Join the torch process group (no-op for one rank). MASTER_ADDR/PORT default to values every
    rank derives alike: the SLURM launch node and a port from the job id, else localhost:29500."""
    if dist.world == 1:
        return
    import torch.distributed as td

    os.environ.setdefault("MASTER_ADDR", os.environ.get("SLURM_LAUNCH_NODE_IPADDR", "127.0.0.1"))
    job = os.environ.get("SLURM_JOB_ID")
    os.environ.setdefault("MASTER_PORT", str(20000 + int(job) % 20000) if job else "29500")
    td.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=dist.rank,
                          world_size=dist.world)


class SerialComm:
    """The subset of the mpi4py communicator API snia uses, for a single process."""

    rank = 0
    size = 1

    def barrier(self):
        pass

    def bcast(self, obj, root=0):
        return obj

    def gather(self, obj, root=0):
        return [obj]

    def allgather(self, obj):
        return [obj]

    def allreduce(self, obj, op=SUM):
        return obj

    def exscan(self, obj, op=SUM):
        return None


class MPIComm:
    """Thin wrapper mapping snia's op names to MPI ops (keeps mpi4py out of the callers)."""

    def __init__(self, comm):
        from mpi4py import MPI

        self._comm = comm
        self._ops = {SUM: MPI.SUM, MAX: MPI.MAX}
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()

    def barrier(self):
        self._comm.barrier()

    def bcast(self, obj, root=0):
        return self._comm.bcast(obj, root=root)

    def gather(self, obj, root=0):
        return self._comm.gather(obj, root=root)

    def allgather(self, obj):
        return self._comm.allgather(obj)

    def allreduce(self, obj, op=SUM):
        return self._comm.allreduce(obj, op=self._ops[op])

    def exscan(self, obj, op=SUM):
        return self._comm.exscan(obj, op=self._ops[op])

    @property
    def mpi_comm(self):
        """The raw mpi4py communicator (for h5py's mpio driver)."""
        return self._comm


def expected_ranks(env=os.environ) -> int:
    """MPI ranks the launcher started (torchrun starts no MPI; inside a SLURM allocation but not
    under srun, SLURM_NTASKS alone does not count: that is a single process)."""
    return dist_from_env(env, [row for row in LAUNCHERS if row[0] != "torchrun"]).world


def world():
    """The communicator for this process (see module docstring)."""
    expected = expected_ranks()
    try:
        from mpi4py import MPI

        comm = MPIComm(MPI.COMM_WORLD)
    except (ImportError, RuntimeError) as exc:
        if expected > 1:
            raise RuntimeError(f"launched as one of {expected} MPI ranks but mpi4py cannot start "
                               f"MPI ({exc}); install mpi4py against this MPI") from exc
        log.debug("mpi4py unavailable (%s); running as a single rank", exc)
        return SerialComm()
    if expected > 1 and comm.size != expected:
        raise RuntimeError(f"the launcher started {expected} ranks but MPI sees {comm.size}: "
                           f"mpi4py is linked to a different MPI than the launcher (e.g. the pip "
                           f"'mpich' wheel under OpenMPI's mpiexec)")
    return comm


def raw_comm(comm):
    """mpi4py communicator for h5py's mpio driver (only for MPIComm)."""
    return comm.mpi_comm
