"""What a Slurm cluster says about itself, read from its own commands.

A profile that names the wrong partition or GPU model fails at the first sbatch, and one
that polls job states with ``sacct`` on a cluster without accounting waits forever. All of
that is written down by the cluster: ``sinfo`` lists the partitions with their GPUs
(generic resources) and CPUs, ``scontrol show config`` says whether accounting is stored
and how long finished jobs stay listed (MinJobAge), and ``sacctmgr`` knows the user's
default account. Reading them means asking the user nothing the cluster can answer.

Parsing is kept apart from running the commands, so it is tested on recorded outputs.
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field

#: ``sinfo`` output: one line per partition and node configuration.
SINFO_FORMAT = "%P|%a|%D|%c|%m|%G"
#: Seconds a finished job should stay listed for squeue-based polling to see it end.
MIN_JOB_AGE_FOR_SQUEUE = 120


class ClusterError(RuntimeError):
    """The cluster's commands are missing or failed; the message says which and why."""


@dataclass(frozen=True)
class Partition:
    name: str
    default: bool = False
    up: bool = True
    nodes: int = 0
    #: CPUs of its smallest node, so a request that fits it fits every node.
    cpus: int = 0
    #: Memory (MB) of its smallest node, shown in the profile's list of partitions.
    memory_mb: int = 0
    #: GPUs per node by type ("" for untyped), the most any of its nodes has.
    gpus: dict[str, int] = field(default_factory=dict)

    @property
    def gpu_count(self) -> int:
        return max(self.gpus.values(), default=0)

    @property
    def gpu_model(self) -> str | None:
        """The GPU type most of its GPUs are, or None when they are untyped."""
        typed = {k: v for k, v in self.gpus.items() if k}
        return max(typed, key=lambda k: (typed[k], k)) if typed else None


@dataclass(frozen=True)
class SlurmFacts:
    cluster: str
    partitions: tuple[Partition, ...]
    #: Whether job states can be asked of ``sacct`` (accounting storage configured).
    accounting: bool
    min_job_age_s: int | None
    account: str | None = None
    #: Where ``account`` came from, the profile's comment on it.
    account_source: str = ""


def _number(text: str) -> int:
    """The leading integer of a sinfo field ("16", "32+", "64000"); 0 when there is none."""
    match = re.match(r"\d+", text.strip())
    return int(match.group()) if match else 0


def parse_gres(text: str) -> dict[str, int]:
    """GPUs per node by type from a sinfo gres field, e.g. ``gpu:a100:4(S:0-1),nvme:1``
    gives ``{"a100": 4}``; ``gpu:2`` gives ``{"": 2}``; ``(null)`` gives ``{}``."""
    text = re.sub(r"\([^)]*\)", "", text.strip())
    gpus: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        parts = item.split(":")
        if parts[0] != "gpu":
            continue
        if len(parts) == 2:
            kind, count = "", _number(parts[1])
        elif len(parts) >= 3:
            kind, count = parts[1], _number(parts[2])
        else:
            kind, count = "", 1
        gpus[kind] = max(gpus.get(kind, 0), count)
    return gpus


def parse_sinfo(text: str) -> tuple[Partition, ...]:
    """Partitions from ``sinfo -h -o SINFO_FORMAT``, in sinfo's order, with the lines of a
    partition's different node configurations merged."""
    merged: dict[str, dict] = {}
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) != 6:
            continue
        name, avail, nodes, cpus, memory, gres = fields
        default = name.endswith("*")
        name = name.rstrip("*")
        entry = merged.setdefault(
            name,
            {"name": name, "default": False, "up": False, "nodes": 0, "cpus": None,
             "memory_mb": None, "gpus": {}},
        )  # fmt: skip
        entry["default"] |= default
        entry["up"] |= avail.strip() == "up"
        entry["nodes"] += _number(nodes)
        for key, value in (("cpus", _number(cpus)), ("memory_mb", _number(memory))):
            entry[key] = value if entry[key] is None else min(entry[key], value)
        for kind, count in parse_gres(gres).items():
            entry["gpus"][kind] = max(entry["gpus"].get(kind, 0), count)
    return tuple(Partition(**entry) for entry in merged.values())


def parse_config(text: str) -> dict[str, str]:
    """``scontrol show config`` as a mapping of its ``Key = value`` lines."""
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def min_job_age(config: dict[str, str]) -> int | None:
    value = config.get("MinJobAge")
    return _number(value) if value and re.match(r"\d", value) else None


Runner = Callable[[list[str]], "subprocess.CompletedProcess[str]"]


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def _required(run: Runner, command: list[str]) -> str:
    if shutil.which(command[0]) is None:
        raise ClusterError(
            f"`{command[0]}` is not on PATH: run this on a login node of the Slurm cluster "
            "(or load its module first)"
        )
    proc = run(command)
    if proc.returncode != 0:
        raise ClusterError(
            f"`{' '.join(command)}` failed ({proc.returncode}): {proc.stderr.strip()[:500]}"
        )
    return proc.stdout


def _optional(run: Runner, command: list[str]) -> str | None:
    if shutil.which(command[0]) is None:
        return None
    proc = run(command)
    return proc.stdout if proc.returncode == 0 else None


def _account(run: Runner, accounting: bool) -> tuple[str | None, str]:
    """The account jobs are charged to: the environment's, else the user's default one."""
    for variable in ("SBATCH_ACCOUNT", "SLURM_ACCOUNT"):
        if os.environ.get(variable):
            return os.environ[variable], f"from ${variable}"
    if not accounting:
        return None, ""
    user = getpass.getuser()
    out = _optional(run, ["sacctmgr", "-nP", "show", "user", user, "format=DefaultAccount"])
    words = (out or "").split()
    return (words[0], f"{user}'s default account (sacctmgr)") if words else (None, "")


def read_facts(run: Runner = _run) -> SlurmFacts:
    """The facts of the cluster whose commands are on PATH; ClusterError when there is none."""
    partitions = parse_sinfo(_required(run, ["sinfo", "-h", "-o", SINFO_FORMAT]))
    if not partitions:
        raise ClusterError("`sinfo` lists no partition: is this a Slurm login node?")
    config = parse_config(_required(run, ["scontrol", "show", "config"]))
    stored = config.get("AccountingStorageType", "accounting_storage/none")
    accounting = stored != "accounting_storage/none"
    if accounting:  # configured, but does it answer?
        accounting = _optional(run, ["sacct", "-n", "-X", "-o", "JobID", "-S", "now"]) is not None
    account, source = _account(run, accounting)
    return SlurmFacts(
        cluster=config.get("ClusterName", "") or "cluster",
        partitions=partitions,
        accounting=accounting,
        min_job_age_s=min_job_age(config),
        account=account,
        account_source=source,
    )
