"""Running a MotionNFT job in one process, in several through ``accelerate launch``, or on
several machines of a Slurm allocation.

A Snakemake job is one Python process. With ``train.<run>.gpus`` above 1 it writes its
settings to a JSON file and starts ``accelerate launch --multi_gpu --num_processes N -m
motionedit.nft <file>``, one process per GPU; otherwise it trains in-process. The processes
share each step: ``train.<run>.groups`` counts the prompt groups of a step over all of them,
each makes and trains on ``groups / N`` of them, rewards are gathered before they are
normalised and LoRA gradients are summed.

With ``train.<run>.nodes`` above 1 inside a Slurm allocation, the job starts one
``accelerate launch`` per machine with ``srun``: machine ``$SLURM_PROCID`` of ``nodes``,
meeting the first node of the allocation on a free port chosen there and recorded in
``<state_dir>/rendezvous.json``. ``SLURM_PROCID`` rather than ``SLURM_NODEID`` names the
machine: with one task per node they are the same, and two tasks on one node can stand in
for two machines. Machines without GPUs (``gpus: 0``) run one CPU process each, with
gloo. Outside an allocation the run trains on the one machine, as with one node, and makes
the same LoRA: the groups of a step are the same whatever shares them.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from motionedit.models import ModelError
from motionedit.nft.trainer import groups_error, run_motionnft

RENDEZVOUS_FILE = "rendezvous.json"


def _accelerate() -> str:
    return shutil.which("accelerate") or str(Path(sys.executable).with_name("accelerate"))


def _accelerate_options(processes: int, machines: int = 1) -> list[str]:
    return ["launch", "--multi_gpu", "--num_processes", str(processes),
            "--num_machines", str(machines), "--mixed_precision", "no",
            "--dynamo_backend", "no"]  # fmt: skip


def launch(
    settings: dict[str, Any],
    processes: int,
    logger: logging.Logger,
    cpu: bool = False,
    machines: int = 1,
) -> dict[str, Any]:
    """Train with ``settings`` (the keyword arguments of ``run_motionnft`` but the logger),
    with ``processes`` processes on each of ``machines`` machines."""
    name = settings["name"]
    if machines > 1 and not os.environ.get("SLURM_JOB_ID"):
        logger.warning(
            "train.%s.nodes: %d machines need a Slurm allocation; not in one, training on "
            "this machine alone (the same steps, with fewer processes)", name, machines,
        )  # fmt: skip
        machines = 1
    total = processes * machines
    if total <= 1:  # the job's own logger; "log" names the files of launched processes
        in_process = {k: v for k, v in settings.items() if k != "log"}
        return run_motionnft(**in_process, logger=logger)
    groups = settings["run"]["groups"]
    if groups % total:  # refused here, before any process starts and loads a model
        raise ModelError(groups_error(name, groups, total))
    state_dir = Path(settings["state_dir"])
    state_dir.mkdir(parents=True, exist_ok=True)
    spec = state_dir / "launch.json"
    spec.write_text(json.dumps(settings, indent=1, default=str))
    env = None
    if machines > 1:
        command = machines_command(spec, machines, processes, cpu, state_dir, logger)
        env = os.environ | {"ACCELERATE_USE_CPU": "1"} if cpu else None
    elif cpu:
        # accelerate's CPU multi-process launch goes through MPI; torch's own launcher (what
        # `accelerate launch --multi_gpu` runs underneath) starts the gloo processes directly.
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   "--nproc_per_node", str(processes),
                   "-m", "motionedit.nft", str(spec)]  # fmt: skip
    else:
        command = [_accelerate(), *_accelerate_options(processes), "-m", "motionedit.nft",
                   str(spec)]  # fmt: skip
    logger.info("launching %d processes: %s", total, " ".join(command))
    subprocess.run(command, check=True, env=env)
    summary_file = Path(settings["out_dir"]) / "summary.json"
    return json.loads(summary_file.read_text()) if summary_file.is_file() else {}


def allocation(job_id: str) -> dict[str, Any]:
    """The hosts of a Slurm job, first node first, and its CPUs per task, from scontrol:
    inside a Snakemake job the SLURM_* variables but the job id are cleared."""
    shown = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True,
                           text=True, check=True).stdout  # fmt: skip
    fields = dict(f.split("=", 1) for f in shown.split() if "=" in f)
    hosts = subprocess.run(["scontrol", "show", "hostnames", fields["NodeList"]],
                           capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    cpus = fields.get("CPUs/Task", "")
    return {"hosts": hosts, "cpus_per_task": int(cpus) if cpus.isdigit() else None}


def free_port() -> int:
    """A TCP port free on this host (the first node, where the job runs) right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


def machines_command(
    spec: Path,
    machines: int,
    processes: int,
    cpu: bool,
    state_dir: Path,
    logger: logging.Logger,
) -> list[str]:
    """The srun command that starts one ``accelerate launch`` per machine; records where
    the machines meet."""
    job_id = os.environ["SLURM_JOB_ID"]
    where = allocation(job_id)
    hosts = where["hosts"]
    rendezvous = {
        "job": job_id,
        "host": hosts[0],
        "port": free_port(),
        "machines": machines,
        "processes_per_machine": processes,
        "nodes": hosts,
    }
    (state_dir / RENDEZVOUS_FILE).write_text(json.dumps(rendezvous, indent=1))
    logger.info("machines meet at %s:%d (%s)", rendezvous["host"], rendezvous["port"],
                state_dir / RENDEZVOUS_FILE)  # fmt: skip
    accelerate = [_accelerate(), *_accelerate_options(machines * processes, machines),
                  "--machine_rank", "$SLURM_PROCID",
                  "--main_process_ip", rendezvous["host"],
                  "--main_process_port", str(rendezvous["port"]),
                  "-m", "motionedit.nft", str(spec)]  # fmt: skip
    inner = " ".join(a if a.startswith("$") else shlex.quote(a) for a in accelerate)
    command = ["srun", f"--ntasks={machines}",
               f"--ntasks-per-node={math.ceil(machines / len(hosts))}",
               "--kill-on-bad-exit=1"]  # fmt: skip
    if where["cpus_per_task"]:
        command.append(f"--cpus-per-task={where['cpus_per_task']}")
    if not cpu:
        command.append(f"--gpus-per-task={processes}")
    return [*command, "bash", "-c", f"exec {inner}"]
