"""Ranks: who launched this process, as which rank of how many, and the MPI world of ingestion.

One table (``LAUNCHERS``) of the variables through which torchrun, mpiexec (Open MPI, MPICH/PMI,
PMIx) and srun announce a process's rank, the world size and its rank on the node; ingestion and
training read it alike (``dist_from_env``). Training then shares the node's CPU cores among its
ranks (``share_cpu_threads``) and joins a torch process group (``init_distributed``) at a port of
its own (``rendezvous``: torchrun's, one from the SLURM job, or a free one rank 0 shares over MPI),
on rank 0's host (under srun the first node of the step, from SLURM's compact node list:
``snia.nodelist``).

A plain ``snia ingest`` runs as one rank with no MPI at all. Under ``mpiexec``/``srun`` the launcher's
environment says how many ranks to expect; if mpi4py then reports fewer (missing, or built against a
different MPI) we stop instead of letting N independent copies write the same output.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from snia.nodelist import LaunchError, expand_nodelist, hostnames  # noqa: F401 (callers' names)

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


def cores_per_task(env=os.environ) -> int | None:
    """Cores SLURM gave each task (--cpus-per-task, or --cpus-per-gpu over --ntasks-per-gpu);
    None when the job did not say."""
    if env.get("SLURM_CPUS_PER_TASK", "").isdigit():
        return int(env["SLURM_CPUS_PER_TASK"])
    if env.get("SLURM_CPUS_PER_GPU", "").isdigit():
        per_gpu = env.get("SLURM_NTASKS_PER_GPU", "1")
        return int(env["SLURM_CPUS_PER_GPU"]) // max(1, int(per_gpu) if per_gpu.isdigit() else 1)
    return None


def threads_per_rank(dist: Dist, cores: int, env=os.environ) -> int:
    """Threads (torch, numba) for one rank, given the ``cores`` this process may run on.

    A rank srun started is a SLURM task: it gets the task's cores (with task binding they are
    its affinity; without, the whole node is, and the node's ranks would oversubscribe it). Ranks
    of other launchers share the process's cores, capped by OMP_NUM_THREADS when set: the budget
    of the node's ranks together (Snakemake sets it to a job's threads; torchrun sets 1)."""
    per_task = cores_per_task(env)
    if dist.launcher == "srun" and per_task:
        return max(1, min(per_task, cores))
    if env.get("OMP_NUM_THREADS", "").isdigit():
        cores = min(cores, int(env["OMP_NUM_THREADS"]))
    return max(1, cores // local_ranks(env))


def share_cpu_threads(dist: Dist | None = None, env=os.environ) -> int:
    """Limit torch's and numba's threads to this rank's share of the cores
    (``threads_per_rank``), so that N ranks on one node do not oversubscribe it."""
    import numba
    import torch

    dist = dist or dist_from_env(env)
    threads = threads_per_rank(dist, len(os.sched_getaffinity(0)), env)
    torch.set_num_threads(threads)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    return threads


# srun: ports from the job and step ids, below Linux's ephemeral range (32768-60999), where
# the kernel hands out ports to outgoing connections
SLURM_PORTS = (20000, 12000)  # first port, how many


def rendezvous(dist: Dist, env=os.environ) -> tuple[str, int]:
    """Where this job's ranks meet (MASTER_ADDR, MASTER_PORT), the same on every rank and unique
    to the job: never a fixed port, since a second job on the node would then die with EADDRINUSE
    or, worse, join the first job's process group.

    - MASTER_PORT set (torchrun always sets it, or a user): respected as given;
    - srun: a port from the SLURM job and step ids (the steps of one job may run side by side),
      at the first node of the step (``first_node``);
    - mpiexec: a free port picked by rank 0 and broadcast over MPI with rank 0's host name;
    - else a LaunchError asking for MASTER_PORT."""
    addr = env.get("MASTER_ADDR")
    if env.get("MASTER_PORT"):
        if not env["MASTER_PORT"].isdigit():
            raise LaunchError(f"MASTER_PORT must be a port number, not {env['MASTER_PORT']!r}")
        return addr or first_node(dist, env), int(env["MASTER_PORT"])
    if dist.launcher == "srun" and env.get("SLURM_JOB_ID", "").isdigit():
        step = env.get("SLURM_STEP_ID", "0")
        key = int(env["SLURM_JOB_ID"]) * 64 + (int(step) if step.isdigit() else 0)
        first, count = SLURM_PORTS
        return addr or first_node(dist, env), first + key % count
    if dist.launcher == "mpiexec":
        import socket

        try:
            comm = world()
        except RuntimeError as exc:
            raise LaunchError(f"{exc}; or set MASTER_PORT (a free port, the same for every rank) "
                              "and MASTER_ADDR (rank 0's host)") from None
        if comm.size != dist.world:
            raise LaunchError(f"mpiexec started {dist.world} ranks but MPI sees {comm.size}; set "
                              "MASTER_PORT (a free port, the same for every rank) and MASTER_ADDR")
        here = socket.gethostname()
        host, port = comm.bcast((here, free_port()) if comm.rank == 0 else None)
        return addr or ("127.0.0.1" if host == here else host), port
    raise LaunchError(f"{dist.world} ranks ({dist.launcher}) but no rendezvous port: set MASTER_PORT "
                      "(a free port, the same for every rank) and MASTER_ADDR (rank 0's host)")


def first_node(dist: Dist, env=os.environ) -> str:
    """Rank 0's host when MASTER_ADDR does not say: under srun the first node of the step (srun
    puts task 0 there, in block and cyclic distribution alike), else of the job; elsewhere this
    host. Not SLURM_LAUNCH_NODE_IPADDR: that is where srun was typed, a login node under salloc."""
    nodes = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST")
    if dist.launcher != "srun" or not nodes:
        return "127.0.0.1"
    return hostnames(nodes)[0]


def free_port() -> int:
    """A TCP port free on this host now (the OS picks it; the process group opens it moments
    later)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def init_distributed(dist: Dist, device) -> None:
    """Join the torch process group (no-op for one rank), meeting at ``rendezvous(dist)``."""
    if dist.world == 1:
        return
    import torch.distributed as td

    addr, port = rendezvous(dist)
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = addr, str(port)
    try:
        td.init_process_group(rank=dist.rank, world_size=dist.world, **group_options(device))
    except td.DistNetworkError as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
        raise LaunchError(f"rank {dist.rank} cannot open the rendezvous at {addr}:{port} ({reason}): "
                          "another job may hold the port; set MASTER_PORT to a free one") from None


def group_options(device) -> dict:
    """The process group's backend, and on a GPU the rank's device: with ``device_id`` NCCL sets
    up its communicator on this rank's GPU at once, and collectives such as ``barrier`` need not
    guess the GPU from the rank (which is wrong when SLURM binds one GPU per task: all are cuda:0)."""
    if device.type == "cuda":
        return {"backend": "nccl", "device_id": device}
    return {"backend": "gloo"}


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


# ----------------------------------------------------------------------------- torch collectives
# (no-ops for one rank; torch imported only where there are ranks to talk to)


def all_reduce_sum(values: list, dist: Dist, device) -> list:
    """Sums over ranks (of sums and counts: never average per-rank averages)."""
    if dist.world == 1:
        return values
    import torch
    import torch.distributed as td

    t = torch.tensor(values, dtype=torch.float64, device=device)
    td.all_reduce(t)
    return t.tolist()


def all_gather(obj, dist: Dist) -> list:
    """Every rank's ``obj``, in rank order, on every rank."""
    if dist.world == 1:
        return [obj]
    import torch.distributed as td

    parts = [None] * dist.world
    td.all_gather_object(parts, obj)
    return parts


def barrier(dist: Dist) -> None:
    if dist.world > 1:
        import torch.distributed as td

        td.barrier()
