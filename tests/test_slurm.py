"""The cluster path against a real Slurm: the README's `--profile profiles/slurm` command runs
a small mining config through sbatch to the end, with the same tables as a local run.

Needs root (to install Debian's slurm-wlm and munge when missing and start the daemons);
CI has it. Elsewhere the test is skipped and says why.
"""

from __future__ import annotations

import pytest
import yaml
from conftest import ROOT
from slurm_cluster import OneNodeSlurm, unavailable
from test_workflow import snakemake

pytestmark = pytest.mark.e2e

CONFIG = {
    "sources": [{"name": "synth", "kind": "synthetic", "clips": 6, "shards": 1,
                 "min_side": 64, "max_side": 96, "min_seconds": 6.0, "max_seconds": 6.5}],
}  # fmt: skip
#: What README "Running on a Slurm cluster" tells a user of a cluster without accounting
#: to add, plus faster status polling than a real cluster wants.
SLURM = [
    "--profile", str(ROOT / "profiles" / "slurm"),
    "--slurm-status-command", "squeue",
    "--slurm-init-seconds-before-status-checks", "1",
    "--seconds-between-status-checks", "2",
]  # fmt: skip


def test_the_slurm_profile_runs_the_mining_stages_like_a_local_run(tmp_path):
    why = unavailable()
    if why:
        pytest.skip(f"no one-node Slurm here: {why}")
    runs = {}
    for name in ("local", "slurm"):
        runs[name] = tmp_path / name
        runs[name].mkdir()
        (runs[name] / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    snakemake(runs["local"])
    with OneNodeSlurm(tmp_path / "cluster"):
        proc = snakemake(runs["slurm"], *SLURM)
    log = proc.stdout + proc.stderr
    # Every job went through sbatch, on the partition the profile names.
    assert "has been submitted with SLURM jobid" in log
    assert "slurm_partition=cpu" in log and "slurm_account=my-lab" in log
    local = runs["local"]
    tables = sorted(p.relative_to(local) for p in local.glob("results/**/*.parquet"))
    assert any(str(t).startswith("results/dataset/") for t in tables)
    for rel in tables:
        assert (runs["slurm"] / rel).read_bytes() == (runs["local"] / rel).read_bytes(), rel
    assert (runs["slurm"] / "results" / "report" / "funnel.png").is_file()
