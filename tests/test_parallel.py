"""Ranks (snia.parallel): who launched this process as which rank, the cores each rank gets, where
the ranks meet, the one-process stand-ins for MPI and torch collectives. Real multi-rank runs are
in test_ingest (MPI) and test_train (DDP)."""

from __future__ import annotations

import os
import shutil
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
    cores_per_task,
    dist_from_env,
    expand_nodelist,
    expected_ranks,
    free_port,
    group_options,
    hostnames,
    local_ranks,
    rendezvous,
    share_cpu_threads,
    threads_per_rank,
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
        assert share_cpu_threads(env={"LOCAL_WORLD_SIZE": "1"}) == cores
        # Snakemake's OMP_NUM_THREADS is the job's budget, shared by its ranks
        assert share_cpu_threads(env={"OMP_NUM_THREADS": "1", "LOCAL_WORLD_SIZE": "2"}) == 1
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_a_rank_srun_started_gets_the_cores_of_its_task():
    assert cores_per_task({"SLURM_CPUS_PER_TASK": "8"}) == 8
    # --cpus-per-gpu=16 with --ntasks-per-gpu=2: each task has 8 of its GPU's cores
    assert cores_per_task({"SLURM_CPUS_PER_GPU": "16", "SLURM_NTASKS_PER_GPU": "2"}) == 8
    assert cores_per_task({"SLURM_CPUS_PER_GPU": "6"}) == 6 and cores_per_task({}) is None
    srun = Dist(5, 8, 1, "srun")
    # 4 ranks on a 64-core node without task binding (all 64 are every rank's affinity):
    # 8 each, as asked, not 64 each (oversubscribed 4 x) nor 64 / 4 = 16 (more than asked)
    node = {"SLURM_CPUS_PER_TASK": "8", "SLURM_STEP_TASKS_PER_NODE": "4(x2)", "OMP_NUM_THREADS": "32"}
    assert threads_per_rank(srun, 64, node) == 8
    # with binding the task's 8 cores are its affinity: not divided again by the 4 ranks
    assert threads_per_rank(srun, 8, node) == 8
    assert threads_per_rank(srun, 4, node) == 4  # never more threads than cores to run on
    # torchrun's ranks share the cores of the one task that started them (OMP cap included)
    torchrun = Dist(1, 8, 1, "torchrun")
    assert threads_per_rank(torchrun, 32, {"SLURM_CPUS_PER_TASK": "32", "LOCAL_WORLD_SIZE": "4"}) == 8
    assert threads_per_rank(torchrun, 32, {"OMP_NUM_THREADS": "1", "LOCAL_WORLD_SIZE": "4"}) == 1
    assert threads_per_rank(Dist(), 2, {}) == 2


NODELISTS = [  # (SLURM node list, hosts by hand)
    ("node[01-03,07],gpu5", ["node01", "node02", "node03", "node07", "gpu5"]),
    ("gpu5", ["gpu5"]),
    ("n[8-10]", ["n8", "n9", "n10"]),  # the first number's width: no padding here
    ("n[098-101]", ["n098", "n099", "n100", "n101"]),
    ("a[1-2]b,c[3]", ["a1b", "a2b", "c3"]),
    ("r[1-2]n[1-2]", ["r1n1", "r1n2", "r2n1", "r2n2"]),
]


@pytest.mark.parametrize("nodelist, hosts", NODELISTS)
def test_compact_node_lists_expand_like_scontrol(nodelist, hosts):
    assert expand_nodelist(nodelist) == hosts


@pytest.mark.parametrize("nodelist, why", [
    ("node[01-03", "unclosed bracket"), ("node]01[", "unbalanced"), ("n[[1]]", "unbalanced"),
    ("n[3-1]", "runs backwards"), ("n[a-b]", "not a number"), ("a,,b", "empty name"), ("", "empty")])
def test_a_malformed_node_list_is_one_line_naming_it(nodelist, why):
    with pytest.raises(LaunchError, match=why) as caught:
        expand_nodelist(nodelist)
    assert repr(nodelist) in str(caught.value) and "\n" not in str(caught.value)


def scontrol_answers() -> bool:
    """scontrol is installed and can expand a node list (it needs a SLURM configuration)."""
    import subprocess

    scontrol = shutil.which("scontrol")
    if scontrol is None:
        return False
    done = subprocess.run([scontrol, "show", "hostnames", "n[1-2]"], capture_output=True, text=True,
                          timeout=30)
    return done.returncode == 0 and done.stdout.split() == ["n1", "n2"]


@pytest.mark.skipif(not scontrol_answers(), reason="no working scontrol here (not installed, or no "
                    "SLURM configuration)")
@pytest.mark.parametrize("nodelist, hosts", NODELISTS)
def test_scontrol_agrees_with_the_hand_written_hosts(nodelist, hosts):
    assert hostnames(nodelist) == hosts


def test_an_scontrol_that_cannot_answer_falls_back_to_the_own_parser(tmp_path, monkeypatch):
    """scontrol installed without a SLURM configuration (a login image, CI before its cluster
    starts) exits 1: the node list is read by expand_nodelist instead, and a malformed one is
    still the one-line LaunchError."""
    fake = tmp_path / "scontrol"
    fake.write_text("#!/bin/sh\necho 'scontrol: fatal: Could not establish a configuration "
                    "source' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    assert shutil.which("scontrol") == str(fake)
    assert hostnames("gpu[07-08],c1") == ["gpu07", "gpu08", "c1"]
    with pytest.raises(LaunchError, match="malformed SLURM node list 'gpu\\[07-'"):
        hostnames("gpu[07-")


def test_a_malformed_list_is_refused_even_where_scontrol_echoes_it(tmp_path, monkeypatch):
    """A configured scontrol prints a malformed list back as one host name and exits 0 (seen on
    CI's cluster with 'gpu[07-'): the list is still the one-line LaunchError, not a host."""
    fake = tmp_path / "scontrol"
    fake.write_text('#!/bin/sh\necho "$3"\nexit 0\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    assert hostnames("gpu07") == ["gpu07"]
    with pytest.raises(LaunchError, match="malformed SLURM node list 'gpu\\[07-'"):
        hostnames("gpu[07-")


def test_an_srun_job_meets_on_the_first_node_of_its_step():
    srun = Dist(3, 8, 1, "srun")
    job = {"SLURM_JOB_ID": "81234", "SLURM_STEP_ID": "0", "SLURM_JOB_NODELIST": "gpu[07-08]",
           "SLURM_LAUNCH_NODE_IPADDR": "10.0.0.7"}  # a login node under salloc: not used
    assert rendezvous(srun, job)[0] == "gpu07"
    # a step on part of the job's nodes: its own first node
    assert rendezvous(srun, {**job, "SLURM_STEP_NODELIST": "gpu08"})[0] == "gpu08"
    assert rendezvous(srun, {**job, "MASTER_ADDR": "10.1.1.1"})[0] == "10.1.1.1"
    assert rendezvous(srun, {**job, "MASTER_PORT": "31000"}) == ("gpu07", 31000)
    with pytest.raises(LaunchError, match="malformed SLURM node list 'gpu\\[07-'"):
        rendezvous(srun, {**job, "SLURM_JOB_NODELIST": "gpu[07-"})


def test_a_gpu_rank_binds_its_process_group_to_its_device():
    torch = pytest.importorskip("torch")
    assert group_options(torch.device("cuda:3")) == {"backend": "nccl", "device_id": torch.device("cuda:3")}
    assert group_options(torch.device("cpu")) == {"backend": "gloo"}


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
                             "SLURM_JOB_NODELIST": "c7"}) == ("c7", 22976)
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
