"""Ranks (snia.parallel): who launched this process as which rank, the cores each rank gets, where
the ranks meet, the one-process stand-ins for MPI and torch collectives. Real multi-rank runs are
in test_ingest (MPI) and test_train (DDP)."""

from __future__ import annotations

import os
import socket
import sys

import pytest

from snia.parallel import (
    LAUNCHERS,
    Dist,
    LaunchError,
    SerialComm,
    all_gather,
    all_reduce_sum,
    barrier,
    dist_from_env,
    expected_ranks,
    free_port,
    local_ranks,
    rendezvous,
    share_cpu_threads,
    world,
)


def test_rank_world_and_local_rank_come_from_the_launchers_variables():
    torchrun = dist_from_env({"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (torchrun.rank, torchrun.world, torchrun.local_rank, torchrun.launcher) == (1, 4, 1, "torchrun")
    slurm = dist_from_env({"SLURM_PROCID": "3", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1"})
    assert (slurm.rank, slurm.world, slurm.local_rank, slurm.launcher) == (3, 8, 1, "srun")
    alone = dist_from_env({})
    assert (alone.rank, alone.world, alone.local_rank, alone.launcher, alone.main) == (0, 1, 0, "none", True)
    assert not Dist(2, 4).main


def test_launcher_detection():
    # srun with PMI sets PMI_* and SLURM_* alike: srun, with SLURM's local rank
    srun = dist_from_env({"SLURM_PROCID": "1", "SLURM_NTASKS": "2", "SLURM_LOCALID": "1",
                          "SLURM_STEP_ID": "0", "PMI_RANK": "1", "PMI_SIZE": "2"})
    assert (srun.rank, srun.world, srun.local_rank, srun.launcher) == (1, 2, 1, "srun")
    # mpiexec inside a batch job: every rank inherits SLURM_PROCID=0; the MPI rank wins
    nested = dist_from_env({"SLURM_PROCID": "0", "SLURM_NTASKS": "1", "SLURM_STEP_ID": "batch",
                            "PMI_RANK": "3", "PMI_SIZE": "4", "MPI_LOCALRANKID": "3"})
    assert (nested.rank, nested.world, nested.local_rank, nested.launcher) == (3, 4, 3, "mpiexec")
    ompi = dist_from_env({"OMPI_COMM_WORLD_RANK": "2", "OMPI_COMM_WORLD_SIZE": "3",
                          "OMPI_COMM_WORLD_LOCAL_RANK": "0"})
    assert (ompi.rank, ompi.world, ompi.launcher) == (2, 3, "mpiexec")


def test_mpi_ranks_expected_are_the_mpi_launchers_not_torchruns():
    assert expected_ranks({"RANK": "0", "WORLD_SIZE": "2"}) == 1  # torchrun starts no MPI
    assert expected_ranks({"PMI_RANK": "0", "PMI_SIZE": "3"}) == 3
    assert expected_ranks({"SLURM_PROCID": "0", "SLURM_NTASKS": "4"}) == 4
    assert expected_ranks({}) == 1


def test_ranks_share_the_cores():
    assert local_ranks({"SLURM_STEP_TASKS_PER_NODE": "4(x2)"}) == 4
    assert local_ranks({"MPI_LOCALNRANKS": "2"}) == 2 and local_ranks({}) == 1
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    try:
        cores = len(os.sched_getaffinity(0))
        assert share_cpu_threads({"LOCAL_WORLD_SIZE": "1"}) == cores
        # Snakemake's OMP_NUM_THREADS is the job's budget, shared by its ranks
        assert share_cpu_threads({"OMP_NUM_THREADS": "1", "LOCAL_WORLD_SIZE": "2"}) == 1
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_rendezvous_port_is_the_launchers_or_this_jobs_own():
    torchrun = Dist(1, 2, 1, "torchrun")
    assert rendezvous(torchrun, {"MASTER_ADDR": "10.1.2.3", "MASTER_PORT": "31234"}) == ("10.1.2.3", 31234)
    with pytest.raises(LaunchError, match="set MASTER_PORT"):
        rendezvous(torchrun, {})  # RANK/WORLD_SIZE by hand, no port: not a guess of 29500
    srun = Dist(0, 4, 0, "srun")
    steps = {rendezvous(srun, {"SLURM_JOB_ID": "81234", "SLURM_STEP_ID": str(k)})[1] for k in range(3)}
    assert len(steps) == 3 and all(1024 < p < 65536 for p in steps)  # steps of one job differ
    assert rendezvous(srun, {"SLURM_JOB_ID": "81234", "SLURM_STEP_ID": "0",
                             "MASTER_PORT": "40000"})[1] == 40000
    # the port of an srun step, by hand: key = job x 64 + step = 5,198,976; 20000 + key % 12000
    assert rendezvous(srun, {"SLURM_JOB_ID": "81234", "SLURM_STEP_ID": "0",
                             "SLURM_LAUNCH_NODE_IPADDR": "10.0.0.7"}) == ("10.0.0.7", 22976)
    with pytest.raises(LaunchError, match="port number"):
        rendezvous(torchrun, {"MASTER_PORT": "auto"})


def test_a_free_port_can_be_opened():
    port = free_port()
    assert 0 < port < 65536
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", port))  # free: nothing else holds it


def test_one_process_without_mpi_is_a_world_of_one(monkeypatch):
    for _, rank, size, _ in LAUNCHERS:
        monkeypatch.delenv(rank, raising=False)
        monkeypatch.delenv(size, raising=False)
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py fails
    comm = world()
    assert isinstance(comm, SerialComm) and (comm.rank, comm.size) == (0, 1)
    assert comm.bcast({"a": 1}) == {"a": 1} and comm.gather(3) == [3] and comm.allgather(3) == [3]
    assert comm.allreduce(5) == 5 and comm.exscan(5) is None  # rank 0's exscan: nothing before it
    comm.barrier()
    # launched as one of 3 MPI ranks, but MPI cannot start: refused, not 3 copies of one rank
    monkeypatch.setenv("PMI_RANK", "0")
    monkeypatch.setenv("PMI_SIZE", "3")
    with pytest.raises(RuntimeError, match="one of 3 MPI ranks but mpi4py cannot start MPI"):
        world()


def test_torch_collectives_of_one_rank_hand_back_what_they_were_given():
    one = Dist()
    values = [3.0, 4.5]
    assert all_reduce_sum(values, one, "cpu") is values
    assert all_gather({"rows": 2}, one) == [{"rows": 2}]
    barrier(one)  # nothing to wait for
