"""MPI world for snia commands: mpi4py's COMM_WORLD, or a one-rank stand-in when run without MPI.

A plain ``snia ingest`` runs as one rank with no MPI at all. Under ``mpiexec``/``srun`` the launcher's
environment says how many ranks to expect; if mpi4py then reports fewer (missing, or built against a
different MPI) we stop instead of letting N independent copies write the same output.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

SUM, MAX = "sum", "max"

# Variables through which common launchers announce the job size.
_LAUNCHER_SIZE_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS",
                       "SLURM_NTASKS")


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


def expected_ranks() -> int:
    for var in _LAUNCHER_SIZE_VARS:
        value = os.environ.get(var)
        if value and value.isdigit():
            if var == "SLURM_NTASKS" and "SLURM_PROCID" not in os.environ:
                continue  # inside an allocation but not launched by srun: a single process
            return int(value)
    return 1


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
