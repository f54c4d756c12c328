"""`snia profile check`: a SLURM profile's GPU jobs as SLURM will see them, before any is queued.

Snakemake resolves the profile and the workflow's config in a dry run (``--dry-run``: no job is
submitted, nothing is read), printing each job's resources; each GPU job's geometry is then
checked (ranks = nodes x GPUs per node, one rank per GPU, CPUs per rank given) and turned into
the sbatch call the SLURM executor plugin would make (its own ``get_submit_command``), which
``--test-only`` hands to ``sbatch --test-only`` where SLURM is installed.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from snia.errors import ConfigError

log = logging.getLogger(__name__)

# what a dry run prints of each job (Snakemake 8/9): "rule NAME:", then indented "key: value" lines
RULE = re.compile(r"^(?:local)?rule (\w+):$")
DETAIL = re.compile(r"^\s+(wildcards|resources|threads): (.*)$")


@dataclass
class Job:
    rule: str
    wildcards: str = ""
    threads: int = 1
    resources: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.rule}[{self.wildcards}]" if self.wildcards else self.rule


def parse_dry_run(text: str) -> list[Job]:
    """The jobs of a ``snakemake --dry-run`` log, with their resources (numbers as ints)."""
    jobs = []
    for line in text.splitlines():
        if m := RULE.match(line):
            jobs.append(Job(m[1]))
        elif jobs and (m := DETAIL.match(line)):
            key, value = m[1], m[2]
            if key == "wildcards":
                jobs[-1].wildcards = value
            elif key == "threads":
                jobs[-1].threads = int(value)
            else:
                jobs[-1].resources = dict(_resource(item) for item in value.split(", "))
    return jobs


def _resource(item: str) -> tuple[str, object]:
    key, _, value = item.partition("=")
    return key, int(value) if value.isdigit() else value


def gpus_per_node(resources: dict) -> int | None:
    """GPUs per node a job asks for: gres ``gpu[:MODEL]:COUNT`` counts per node; ``gpu`` (SLURM's
    --gpus) counts per job, spread over its nodes. None: no GPUs."""
    gres = str(resources.get("gres", ""))
    if gres.startswith("gpu"):
        count = gres.split(":")[-1]
        return int(count) if count.isdigit() else 1
    total = int(resources.get("gpu") or 0)
    return total // int(resources.get("nodes") or 1) if total else None


def problems(job: Job) -> list[str]:
    """What is wrong with a GPU job's geometry (nothing for a job without GPUs)."""
    r = job.resources
    per_node = gpus_per_node(r)
    if per_node is None:
        return []
    nodes, tasks = int(r.get("nodes") or 1), int(r.get("tasks") or 1)
    found = []
    if str(r.get("gres", "")).startswith("gpu") and r.get("gpu"):
        found.append("both gres and gpu ask for GPUs: keep one (gres counts per node)")
    if not str(r.get("gres", "")).startswith("gpu") and int(r["gpu"]) % nodes:
        found.append(f"gpu={r['gpu']} does not split evenly over {nodes} nodes")
    if tasks > 1 and r.get("tasks_per_gpu") != 1:
        found.append("tasks_per_gpu must be 1 (one DDP rank per GPU; without it the plugin turns "
                     "the ranks into --ntasks-per-gpu)")
    if tasks > 1 and tasks != nodes * per_node:
        found.append(f"{tasks} ranks on {nodes} node(s) x {per_node} GPU(s): ranks must be nodes x "
                     "GPUs per node (one rank per GPU; config.yaml's ranks or the profile's "
                     "nodes/gres)")
    if not r.get("cpus_per_gpu") and not r.get("cpus_per_task"):
        found.append("no cpus_per_gpu: each rank would get one core to make its batches")
    return found


class _Resources(dict):
    """Resources as the plugin reads them: ``.get(key)`` and ``.key``."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


def sbatch_call(job: Job) -> str | None:
    """The sbatch call the SLURM executor plugin makes for a job (None without the plugin)."""
    try:
        from snakemake_executor_plugin_slurm.submit_string import get_submit_command
        from snakemake_executor_plugin_slurm.utils import set_gres_string
    except ImportError:
        return None
    from types import SimpleNamespace

    r = job.resources
    account = f"-A {r['slurm_account']}" if r.get("slurm_account") else ""
    partition = f"-p {r['slurm_partition']}" if r.get("slurm_partition") else ""
    params = {"run_uuid": "snia-profile-check", "slurm_logfile": f"slurm-{job.rule}-%j.log",
              "comment_str": f"rule_{job.rule}", "account": account, "partition": partition,
              "workdir": ""}
    plugin_job = SimpleNamespace(resources=_Resources(r), threads=job.threads)
    return get_submit_command(plugin_job, params) + set_gres_string(plugin_job)  # as run_job does


def dry_run(profile: Path, snakemake_args: list[str]) -> list[Job]:
    """Every job of a dry run of the workflow with this profile."""
    snakemake = shutil.which("snakemake", path=os.path.dirname(sys.executable)) or shutil.which("snakemake")
    if snakemake is None:
        raise ConfigError("snakemake not found: pip install -e '.[workflow]'")
    done = subprocess.run([snakemake, "--profile", str(profile), "--dry-run", "--forceall",
                           *snakemake_args], capture_output=True, text=True)
    if done.returncode:
        raise ConfigError(f"snakemake --dry-run with {profile} failed: {snakemake_error(done)}")
    return parse_dry_run(done.stdout + done.stderr)


def snakemake_error(done) -> str:
    """The line that says why Snakemake stopped (it may print it on stdout, after an
    ``...Error:`` line)."""
    lines = [line.strip() for line in (done.stdout + "\n" + done.stderr).splitlines() if line.strip()]
    marks = [i for i, line in enumerate(lines) if re.match(r"^(\w*Error|error)\b", line)]
    if not marks:
        return lines[-1] if lines else "no output"
    first = marks[0]
    return lines[first + 1] if lines[first].endswith(":") and first + 1 < len(lines) else lines[first]


def sbatch_test_only(call: str) -> str | None:
    """What ``sbatch --test-only`` says against a call (None if it accepts it)."""
    done = subprocess.run(f"{call} --test-only --wrap=true", shell=True, capture_output=True, text=True)
    return None if done.returncode == 0 else (done.stderr.strip().splitlines() or ["refused"])[-1]


def check(profile: Path, snakemake_args: list[str], sbatch_test: bool = False) -> int:
    """Print each GPU job's sbatch call and problems; 1 if any job has a problem."""
    if sbatch_test and shutil.which("sbatch") is None:
        raise ConfigError("--test-only needs SLURM's sbatch on PATH")
    bad = 0
    for job in dry_run(profile, snakemake_args):
        if gpus_per_node(job.resources) is None:
            continue
        call = sbatch_call(job)
        found = problems(job)
        if call and sbatch_test and (refusal := sbatch_test_only(call)):
            found.append(f"sbatch --test-only: {refusal}")
        print(f"{job.name}: {call or '(install snakemake-executor-plugin-slurm for its sbatch call)'}")
        for problem in found:
            print(f"  problem: {problem}")
        bad += bool(found)
    print(f"{bad} GPU job(s) with problems" if bad else "GPU jobs: ok")
    return 1 if bad else 0


def add_profile_parser(sub) -> None:
    """``snia profile install`` and ``snia profile check``."""
    p = sub.add_parser("profile", help="install or check a Snakemake profile (e.g. cluster/slurm)")
    psub = p.add_subparsers(dest="profile_command", required=True)
    i = psub.add_parser("install", help="copy a profile folder to ~/.config/snakemake/NAME",
                        description="After 'snia profile install cluster/slurm', "
                                    "'snakemake --profile slurm' finds it by name.")
    i.add_argument("source", type=Path, nargs="?", default=Path("cluster/slurm"))
    i.add_argument("--name", default="slurm")
    i.add_argument("--force", action="store_true", help="replace an installed profile")
    c = psub.add_parser("check", help="each GPU job's sbatch call and geometry, from a dry run",
                        description="Dry-run the workflow with a SLURM profile (nothing is submitted) "
                                    "and check each GPU job: ranks = nodes x GPUs per node, one rank "
                                    "per GPU, CPUs per GPU given; print the sbatch call the SLURM "
                                    "executor plugin would make.")
    c.add_argument("source", type=Path, nargs="?", default=Path("cluster/slurm"))
    c.add_argument("--test-only", action="store_true",
                   help="also hand each call to 'sbatch --test-only' (needs SLURM)")
    c.add_argument("--snakemake", dest="snakemake_args", nargs=argparse.REMAINDER, default=[],
                   metavar="ARG", help="the rest of the line goes to snakemake: targets (default: "
                                       "all scaling) and options (e.g. --snakemake --directory .test all)")
