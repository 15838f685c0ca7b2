"""The cluster path against a real Slurm, as a user runs it: `python -m motionedit.cluster
slurm-profile` reads the cluster and writes ~/.config/snakemake/slurm, then `snakemake
--profile slurm` runs through sbatch. The one-node test cluster has two fake A100s, so
GPU jobs are submitted and placed as on a GPU cluster; two tasks on its one node stand in
for two machines of a MotionNFT run.

Needs root (to install Debian's slurm-wlm and munge when missing and start the daemons);
CI has it. Elsewhere the tests are skipped and say why.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tiny_flux
import torch
import yaml
from conftest import ROOT
from safetensors.torch import load_file
from slurm_cluster import GPU_MODEL, OneNodeSlurm, unavailable
from test_inference import make_bench
from test_workflow import snakemake

from motionedit.models.base import LORA_WEIGHT_NAME

pytestmark = pytest.mark.e2e

CONFIG = {
    "sources": [{"name": "synth", "kind": "synthetic", "clips": 6, "shards": 1,
                 "min_side": 64, "max_side": 96, "min_seconds": 6.0, "max_seconds": 6.5}],
}  # fmt: skip
#: Faster status polling than a real cluster wants; everything else is the profile's.
FAST = [
    "--slurm-init-seconds-before-status-checks", "1",
    "--seconds-between-status-checks", "2",
]  # fmt: skip


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    why = unavailable()
    if why:
        pytest.skip(f"no one-node Slurm here: {why}")
    with OneNodeSlurm(tmp_path_factory.mktemp("cluster")) as running:
        yield running


@pytest.fixture
def home(cluster, tmp_path):
    """A user's HOME with the profile the command writes for the test cluster."""
    home = tmp_path / "home"
    # Both the command and Snakemake read the user config folder from here.
    env = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
    proc = subprocess.run([sys.executable, "-m", "motionedit.cluster", "slurm-profile"],
                          capture_output=True, text=True, cwd=ROOT,
                          env=os.environ | env)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return env


def profile_path(home: dict) -> Path:
    return Path(home["HOME"]) / ".config" / "snakemake" / "slurm" / "config.yaml"


def test_the_written_profile_runs_the_mining_stages_like_a_local_run(tmp_path, home):
    written = yaml.safe_load(profile_path(home).read_text())
    # What the cluster says: no accounting, so squeue and no account; GPUs on `gpu`.
    assert written["slurm-status-command"] == "squeue" and written["slurm-no-account"]
    assert written["default-resources"]["slurm_partition"] == "cpu"
    assert written["set-resources"]["infer"]["slurm_partition"] == "gpu"
    assert written["set-resources"]["infer"]["gpu_model"] == GPU_MODEL

    runs = {}
    for name in ("local", "slurm"):
        runs[name] = tmp_path / name
        runs[name].mkdir()
        (runs[name] / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    snakemake(runs["local"])
    proc = snakemake(runs["slurm"], "--profile", "slurm", *FAST, env=home)
    log = proc.stdout + proc.stderr
    # Every job went through sbatch, on the partition the profile names.
    assert "has been submitted with SLURM jobid" in log
    assert "slurm_partition=cpu" in log
    local = runs["local"]
    tables = sorted(p.relative_to(local) for p in local.glob("results/**/*.parquet"))
    assert any(str(t).startswith("results/dataset/") for t in tables)
    for rel in tables:
        assert (runs["slurm"] / rel).read_bytes() == (runs["local"] / rel).read_bytes(), rel
    assert (runs["slurm"] / "results" / "report" / "funnel.png").is_file()


def sbatch_calls(log: str) -> dict[str, str]:
    """The sbatch command line of each rule's job, from Snakemake's --verbose log."""
    calls = {}
    for line in log.splitlines():
        if "sbatch call:" in line:
            rule = re.search(r"--comment '?rule_(\w+?)(_wildcards|'|\s)", line)
            calls[rule.group(1) if rule else "?"] = line
    return calls


def test_gpu_jobs_go_to_the_gpu_partition_and_two_machines_train_one_process_lora(tmp_path, home):
    """The tiny Kontext editor on `auto`: inference asks for a GPU and lands on the GPU
    partition with the profile's model. MotionNFT with `nodes: 2` on CPU machines: one
    job, two srun tasks (each an `accelerate launch`), the LoRA of one local process."""
    source = tmp_path / "kontext"
    tiny_flux.build().save_pretrained(source)
    config = {
        "sources": [{"name": "synth", "kind": "synthetic"}],
        "flow": {"backend": "dis", "max_side": 64},
        "editors": {"k": tiny_flux.editor(source, device="auto", inference={"steps": 2})},
        "train": {
            "nft": {
                "editor": "k", "steps": 3, "groups": 2, "group_size": 3,
                "sampling_steps": 2, "resolution": 32, "lr": 1e-3, "micro_batch": 4,
                "checkpoint_every": 2, "eval_every": 0, "lora": {"rank": 4, "alpha": 4},
                "rewards": {"motion": 0.5, "appearance": 0.5},
                "group_filter": {"enabled": False, "ban_prompts": False},
                "nodes": 2,
            }
        },
        "models": {"k": {"kind": "editor", "editor": "k"}},
    }  # fmt: skip
    targets = ["results/train/nft", "results/eval/k/outputs.parquet"]
    runs = {}
    for name in ("local", "slurm"):
        wd = runs[name] = tmp_path / name
        make_bench(wd / "results" / "dataset" / "train", n=6)
        make_bench(wd / "results" / "dataset" / "bench", n=2)
        (wd / "config.yaml").write_text(yaml.safe_dump(config))
    # Outside Slurm, `nodes: 2` trains on this machine alone, in one process.
    snakemake(runs["local"], *targets, "--allowed-rules", "train", "infer")
    local_log = (runs["local"] / "results/logs/train/nft.log").read_text()
    assert "need a Slurm allocation; not in one, training on this machine alone" in local_log

    # The user's edit for the stand-in: the one node hosts both machines, with 2 CPUs each.
    path = profile_path(home)
    profile = yaml.safe_load(path.read_text())
    profile["set-resources"]["train"] |= {"nodes": 1, "cpus_per_task": 2}
    path.write_text(yaml.safe_dump(profile))
    proc = snakemake(runs["slurm"], *targets, "--allowed-rules", "train", "infer",
                     "--profile", "slurm", "--verbose", *FAST, env=home)  # fmt: skip
    calls = sbatch_calls(proc.stdout + proc.stderr)
    assert set(calls) == {"train", "infer"}, calls
    assert " -p gpu " in calls["infer"] and f"--gpus={GPU_MODEL}:1" in calls["infer"]
    assert " -p gpu " in calls["train"] and "--nodes=1" in calls["train"]
    assert "--ntasks=2" in calls["train"] and "--cpus-per-task=2" in calls["train"]

    state = runs["slurm"] / "results" / "checkpoints" / "train" / "nft"
    rendezvous = json.loads((state / "rendezvous.json").read_text())
    assert rendezvous["machines"] == 2 and rendezvous["port"] > 0
    log = (runs["slurm"] / "results/logs/train/nft.log").read_text()
    assert "launching 2 processes: srun --ntasks=2 --ntasks-per-node=2" in log
    assert "--machine_rank $SLURM_PROCID" in log
    ranks = sorted(p.name for p in (runs["slurm"] / "results/logs/train").glob("nft.log.rank*"))
    assert ranks == ["nft.log.rank0", "nft.log.rank1"]
    # Two processes of one run, not two copies: process 1 saved its generators.
    assert (state / "rng-1-step-000002.pt").is_file()
    assert not (runs["local"] / "results/checkpoints/train/nft/rng-1-step-000002.pt").exists()

    one = load_file(runs["local"] / "results/train/nft" / LORA_WEIGHT_NAME)
    two = load_file(runs["slurm"] / "results/train/nft" / LORA_WEIGHT_NAME)
    assert one.keys() == two.keys()
    # Equal up to float32 sums taken in another order (the gradients are all-reduced):
    # 2e-6 at most here, against LoRA-B weights of 2.6e-3 after 3 steps.
    assert all(torch.allclose(one[k], two[k], atol=1e-5, rtol=0) for k in one)
    assert any(torch.count_nonzero(two[k]) for k in two if "lora_B" in k)
