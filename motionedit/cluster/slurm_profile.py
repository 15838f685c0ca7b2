"""The Snakemake profile of a Slurm cluster, from the cluster's own facts.

``snakemake --profile slurm`` reads ``~/.config/snakemake/slurm/config.yaml``. What the
workflow needs from it is the cluster's side of each job: the partition CPU jobs go to,
the one GPU jobs go to and its GPU model, how job states are polled (``sacct`` needs
accounting; ``squeue`` works without it if finished jobs stay listed long enough), and the
account. The rules declare the rest themselves (memory, time, GPU count, nodes).

The profile is written once and then belongs to the user: writing it again shows the
difference instead of overwriting edits. ``profiles/slurm/config.yaml`` in the repository
is this module's output for an example cluster (tests/test_cluster_profile.py keeps them in
step), so the documented profile and the generated one cannot drift apart.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path

from motionedit.cluster.slurm_facts import MIN_JOB_AGE_FOR_SQUEUE, Partition, SlurmFacts

#: CPUs each CPU-heavy rule asks for (its threads too), at most a node's.
CPU_RULES = {"frames": 4, "prefilter": 4}
#: Rules that may run on a GPU, with the CPUs they ask for there. Each declares its GPU
#: count (0 for an editor pinned to the CPU); the profile says where GPUs are.
GPU_RULES = {"sft": 8, "train": 16, "infer": 8, "evaluate": 8}
PROFILE_FILE = "config.yaml"


def default_dest() -> Path:
    """Where Snakemake looks for a profile named ``slurm`` (its user config folder)."""
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "snakemake" / "slurm"


@dataclass(frozen=True)
class Placement:
    cpu_partition: Partition
    gpu_partition: Partition | None
    notes: tuple[str, ...]


def _describe(p: Partition) -> str:
    gpus = ", ".join(f"{n}x {k or 'gpu'}" for k, n in sorted(p.gpus.items())) or "no GPU"
    state = "" if p.up else ", down"
    size = f"{p.nodes} nodes, {p.cpus} CPUs, {p.memory_mb // 1000} GB"
    return f"{p.name}{'*' if p.default else ''} ({size}, {gpus}{state})"


def place(facts: SlurmFacts) -> Placement:
    """The partitions for CPU and GPU jobs: CPU jobs on the default partition unless it has
    GPUs and another has none; GPU jobs on the partition with the most GPUs per node,
    preferring one that is not the CPU jobs' and is up."""
    parts = facts.partitions
    default = next((p for p in parts if p.default), parts[0])
    without = [p for p in parts if not p.gpus and p.up]
    cpu = default if not default.gpus or not without else without[0]
    with_gpus = [p for p in parts if p.gpus]
    notes = []
    gpu = None
    if with_gpus:
        gpu = max(with_gpus, key=lambda p: (p.up, p is not cpu, p.gpu_count))
        others = [p.name for p in with_gpus if p is not gpu]
        if others:
            notes.append(f"other partitions with GPUs: {', '.join(others)}")
        if gpu.gpu_model is None:
            notes.append(f"{gpu.name}'s GPUs have no type in gres.conf: no gpu_model is asked")
    else:
        notes.append("no partition has GPUs (sinfo's gres): GPU jobs ask the CPU partition")
    return Placement(cpu, gpu, tuple(notes))


def _cpus(wanted: int, partition: Partition) -> int:
    return min(wanted, partition.cpus) if partition.cpus else wanted


def render(facts: SlurmFacts, header: str | None = None) -> str:
    """The profile's text, comments included; the same facts always give the same text."""
    where = place(facts)
    cpu, gpu = where.cpu_partition, where.gpu_partition
    lines = [
        header
        or (
            f"# Snakemake profile for the MotionEdit workflow on the Slurm cluster "
            f"'{facts.cluster}',\n"
            "# written by `python -m motionedit.cluster slurm-profile` from sinfo and "
            "scontrol.\n"
            "# It is yours to edit: running the command again shows what it would change"
            " and\n# keeps your file (--force replaces it, keeping a .bak)."
        ),
        "#",
        "# Partitions:",
        *(f"#   {_describe(p)}" for p in facts.partitions),
        *(f"# Note: {note}" for note in where.notes),
        "#",
        "# Each rule declares its memory, run time, GPU count and nodes (from the config where",
        "# they depend on it); this profile says where jobs run. Jobs use the Python",
        "# environment Snakemake runs in (setup.sh's .venv on a shared filesystem), or with",
        "# `software-deployment-method: conda` each rule family's pinned one from envs/.",
        "",
        "executor: slurm",
        "jobs: 100",
        "latency-wait: 60           # shared filesystems can show a job's outputs late",
        "retries: 1                 # a job killed by a node failure or preemption runs again",
        "rerun-incomplete: true",
        "keep-going: true",
        "slurm-init-seconds-before-status-checks: 20",
    ]
    if facts.accounting:
        lines.append("slurm-status-command: sacct    # Slurm accounting answers job states")
    else:
        lines.append("slurm-status-command: squeue   # no Slurm accounting: sacct cannot answer")
        age = facts.min_job_age_s
        if age is not None and age < MIN_JOB_AGE_FOR_SQUEUE:
            lines.append(
                f"# WARNING: MinJobAge is {age} s; squeue forgets a finished job after it,"
                f" so ask\n# your admins for {MIN_JOB_AGE_FOR_SQUEUE} s or more, or jobs"
                " may be reported lost."
            )
    if not facts.accounting and not facts.account:
        lines.append("slurm-no-account: true       # without accounting an account means nothing")
    lines += ["", "default-resources:", f"  slurm_partition: {cpu.name}"]
    if facts.account:
        lines.append(f"  slurm_account: {facts.account}    # {facts.account_source}")
    elif facts.accounting:
        lines.append(
            "  # slurm_account: TODO    # no default account found (sacctmgr, $SBATCH_ACCOUNT):"
            " set\n  #                        # yours, or Snakemake guesses one at each run"
        )
    lines += ["  cpus_per_task: 1", "", "set-resources:"]
    for rule, wanted in CPU_RULES.items():
        lines.append(f"  {rule}: {{cpus_per_task: {_cpus(wanted, cpu)}}}")
    target = gpu or cpu
    for rule, wanted in GPU_RULES.items():
        model = f", gpu_model: {target.gpu_model}" if target.gpu_model else ""
        cpus = _cpus(wanted, target)
        lines.append(f"  {rule}: {{slurm_partition: {target.name}{model}, cpus_per_task: {cpus}}}")
    lines += ["", "set-threads:"]
    for rule, wanted in CPU_RULES.items():
        lines.append(f"  {rule}: {_cpus(wanted, cpu)}")
    for rule, wanted in GPU_RULES.items():
        lines.append(f"  {rule}: {_cpus(wanted, target)}")
    return "\n".join(lines) + "\n"


def todos(facts: SlurmFacts) -> list[str]:
    """What the user still has to say, for the command's output."""
    if facts.accounting and not facts.account:
        return [
            "no default Slurm account was found (sacctmgr, $SBATCH_ACCOUNT): set "
            "default-resources.slurm_account in the profile"
        ]
    return []


@dataclass(frozen=True)
class Written:
    #: "written", "unchanged", "kept" (the file differs and was left as it is) or "replaced".
    status: str
    path: Path
    diff: str = ""


def install(dest: Path, text: str, force: bool = False) -> Written:
    """Write the profile into ``dest``, unless a different one is there and not ``force``."""
    path = dest / PROFILE_FILE
    if not path.exists():
        dest.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return Written("written", path)
    old = path.read_text()
    if old == text:
        return Written("unchanged", path)
    diff = "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            text.splitlines(keepends=True),
            fromfile=f"{path} (as it is)",
            tofile="what the cluster says now",
        )
    )
    if not force:
        return Written("kept", path, diff)
    path.with_name(PROFILE_FILE + ".bak").write_text(old)
    path.write_text(text)
    return Written("replaced", path, diff)


#: The cluster ``profiles/slurm/config.yaml`` is written for: partitions named as most
#: sites name them, A100 nodes, accounting on, an account to change.
EXAMPLE = SlurmFacts(
    cluster="example",
    partitions=(
        Partition("cpu", default=True, nodes=100, cpus=64, memory_mb=256000),
        Partition("gpu", nodes=20, cpus=64, memory_mb=512000, gpus={"a100": 8}),
    ),
    accounting=True,
    min_job_age_s=300,
    account="my-lab",
    account_source="CHANGE: your account",
)
EXAMPLE_HEADER = """\
# Snakemake profile for the MotionEdit workflow on an example Slurm cluster. Write the one
# for your cluster on its login node, where it reads the partitions, GPU model, accounting
# and account from sinfo, scontrol and sacctmgr:
#
#   .venv/bin/python -m motionedit.cluster slurm-profile     # ~/.config/snakemake/slurm/
#   .venv/bin/snakemake --profile slurm --configfile my.yaml
#
# or use this one as it is (--profile profiles/slurm) after changing the partitions, GPU
# model and account below. The example itself is written by
# `python -m motionedit.cluster slurm-profile --example --dest profiles/slurm --force`."""
