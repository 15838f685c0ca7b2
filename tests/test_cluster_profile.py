"""The Slurm profile written from the cluster's own facts: parsing recorded sinfo and
scontrol output, the choices made from it, and the command run as a user runs it, with
the cluster's commands on PATH answering as a real cluster does, and HOME in a temp
folder so `snakemake --profile slurm` finds the profile where Snakemake looks."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT
from test_workflow import SNAKEMAKE, planned_rules

from motionedit.cluster.slurm_facts import Partition, SlurmFacts, parse_gres, parse_sinfo
from motionedit.cluster.slurm_profile import EXAMPLE, EXAMPLE_HEADER, place, render

#: `sinfo -h -o "%P|%a|%D|%c|%m|%G"` on a cluster with a CPU partition, a GPU partition
#: of two node kinds and a small partition of untyped GPUs.
SINFO = """\
compute*|up|120|128|512000|(null)
gpu|up|16|64|1024000|gpu:h100:8(S:0-1)
gpu|up|4|48|512000|gpu:a100:4(S:0),nvme:1
debug-gpu|up|2|32|256000|gpu:2
"""
CONFIG = """\
Configuration data as of 2026-12-05T10:00:00
AccountingStorageType   = accounting_storage/slurmdbd
ClusterName             = hpc7
MinJobAge               = 300 sec
"""


def test_gres_fields_give_gpus_per_node_by_type():
    assert parse_gres("(null)") == {}
    assert parse_gres("gpu:a100:4(S:0-1)") == {"a100": 4}
    assert parse_gres("gpu:2") == {"": 2}
    assert parse_gres("gpu:a100:4(S:0),gpu:v100:2(S:1),mps:200") == {"a100": 4, "v100": 2}
    assert parse_gres("nvme:1") == {}


def test_sinfo_lines_of_one_partition_are_merged():
    cpu, gpu, debug = parse_sinfo(SINFO)
    assert (cpu.name, cpu.default, cpu.gpus, cpu.cpus) == ("compute", True, {}, 128)
    assert gpu.nodes == 20 and gpu.cpus == 48 and gpu.memory_mb == 512000
    assert gpu.gpus == {"h100": 8, "a100": 4} and gpu.gpu_model == "h100"
    assert debug.gpus == {"": 2} and debug.gpu_model is None


def facts(**changes) -> SlurmFacts:
    base = SlurmFacts("hpc7", parse_sinfo(SINFO), accounting=True, min_job_age_s=300,
                      account="lab42", account_source="alice's default (sacctmgr)")  # fmt: skip
    return SlurmFacts(**(base.__dict__ | changes))


def profile(text: str) -> dict:
    return yaml.safe_load(text)


def test_cpu_jobs_go_to_the_default_partition_and_gpu_jobs_to_the_most_gpus():
    written = profile(render(facts()))
    assert written["default-resources"] == {
        "slurm_partition": "compute", "slurm_account": "lab42", "cpus_per_task": 1
    }  # fmt: skip
    assert written["slurm-status-command"] == "sacct" and "slurm-no-account" not in written
    for rule in ("sft", "train", "infer", "evaluate"):
        assert written["set-resources"][rule]["slurm_partition"] == "gpu"
        assert written["set-resources"][rule]["gpu_model"] == "h100"
    # CPUs at most the smallest node of the partition has.
    assert written["set-resources"]["train"]["cpus_per_task"] == 16
    assert written["set-threads"]["frames"] == 4
    text = render(facts())
    assert "other partitions with GPUs: debug-gpu" in text and "cluster 'hpc7'" in text


def test_without_accounting_jobs_are_polled_with_squeue_and_no_account():
    text = render(facts(accounting=False, account=None, min_job_age_s=60))
    written = profile(text)
    assert written["slurm-status-command"] == "squeue" and written["slurm-no-account"] is True
    assert "slurm_account" not in written["default-resources"]
    assert "WARNING: MinJobAge is 60 s" in text
    quiet = render(facts(accounting=False, account=None, min_job_age_s=300))
    assert "WARNING" not in quiet


def test_an_unknown_account_is_a_todo_and_odd_clusters_still_get_a_profile():
    text = render(facts(account=None))
    assert "# slurm_account: TODO" in text
    assert "slurm_account" not in profile(text)["default-resources"]
    # The default partition has the GPUs and there is no other: everything goes there.
    only = SlurmFacts("one", (Partition("all", default=True, cpus=8, gpus={"": 2}),),
                      accounting=False, min_job_age_s=None)  # fmt: skip
    written = profile(render(only))
    assert written["set-resources"]["infer"] == {"slurm_partition": "all", "cpus_per_task": 8}
    assert "no type in gres.conf" in render(only)
    none = SlurmFacts("cpus", (Partition("c", default=True, cpus=4),), False, None)
    assert profile(render(none))["set-resources"]["train"]["slurm_partition"] == "c"
    assert "no partition has GPUs" in render(none)
    # A GPU partition beside a GPU-less default keeps CPU jobs off the GPUs.
    assert place(facts()).cpu_partition.name == "compute"


def test_the_repositorys_profile_is_the_example_clusters():
    assert (ROOT / "profiles" / "slurm" / "config.yaml").read_text() == render(
        EXAMPLE, EXAMPLE_HEADER
    )


def fake_cluster(folder, sinfo: str = SINFO, config: str = CONFIG, account: str = "lab42"):
    """sinfo, scontrol, sacct and sacctmgr that answer as the cluster of SINFO does."""
    folder.mkdir(parents=True)
    scripts = {
        "sinfo": f"cat <<'EOF'\n{sinfo}EOF",
        "scontrol": f"cat <<'EOF'\n{config}EOF",
        "sacct": "exit 0",
        "sacctmgr": f"echo '{account}'",
    }
    for name, body in scripts.items():
        path = folder / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return folder


def user_env(tmp_path, bin_dir=None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_CONFIG_HOME", "SBATCH_ACCOUNT",
                                                             "SLURM_ACCOUNT")}  # fmt: skip
    env["HOME"] = str(tmp_path / "home")
    if bin_dir is not None:
        env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    return env


def slurm_profile(env, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "motionedit.cluster", "slurm-profile", *args],
                          capture_output=True, text=True, env=env, cwd=ROOT)  # fmt: skip


def test_the_command_writes_the_profile_that_snakemake_profile_slurm_finds(tmp_path):
    env = user_env(tmp_path, fake_cluster(tmp_path / "bin"))
    proc = slurm_profile(env)
    assert proc.returncode == 0, proc.stderr
    path = tmp_path / "home" / ".config" / "snakemake" / "slurm" / "config.yaml"
    assert f"{path}: written" in proc.stdout
    written = profile(path.read_text())
    assert written["default-resources"]["slurm_account"] == "lab42"
    assert written["set-resources"]["infer"]["gpu_model"] == "h100"

    # As typed, from a folder of the user's: the default workflow plans.
    work = tmp_path / "work"
    work.mkdir()
    (work / "config.yaml").write_text((ROOT / "config.yaml").read_text())
    plan = subprocess.run(
        [SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--profile", "slurm", "-n"],
        capture_output=True, text=True, env=env, cwd=work,
    )  # fmt: skip
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "Using profiles slurm and" in plan.stderr
    # Jobs carry the cluster's partitions, account and GPU model.
    assert "slurm_partition=compute, slurm_account=lab42" in plan.stdout
    train = plan.stdout.split("rule train:")[1].split("rule ")[0]
    assert "slurm_partition=gpu," in train and "gpu_model=h100" in train
    jobs = planned_rules(plan)
    assert jobs["train"] == 1 and jobs["infer"] >= 3 and jobs["frames"] >= 1

    # Again, after the user's edit: the difference is shown, the edit kept.
    edited = path.read_text().replace("jobs: 100", "jobs: 40")
    path.write_text(edited)
    again = slurm_profile(env)
    assert again.returncode == 1
    assert "-jobs: 40\n+jobs: 100" in again.stdout and "was kept" in again.stdout
    assert path.read_text() == edited
    forced = slurm_profile(env, "--force")
    assert forced.returncode == 0 and "replaced" in forced.stdout
    assert path.with_name("config.yaml.bak").read_text() == edited
    assert slurm_profile(env).stdout.startswith(f"{path}: unchanged")


def test_without_slurm_commands_it_says_where_to_run_it(tmp_path):
    env = user_env(tmp_path)
    env["PATH"] = str(tmp_path / "empty")
    proc = slurm_profile(env)
    assert proc.returncode == 2
    assert "`sinfo` is not on PATH" in proc.stderr and "login node" in proc.stderr
    assert not (tmp_path / "home" / ".config").exists()


@pytest.mark.parametrize("variable", ["SBATCH_ACCOUNT", "SLURM_ACCOUNT"])
def test_an_account_in_the_environment_comes_first(tmp_path, variable):
    env = user_env(tmp_path, fake_cluster(tmp_path / "bin")) | {variable: "proj9"}
    assert slurm_profile(env, "--dest", str(tmp_path / "p")).returncode == 0
    text = (tmp_path / "p" / "config.yaml").read_text()
    assert f"slurm_account: proj9    # from ${variable}" in text
