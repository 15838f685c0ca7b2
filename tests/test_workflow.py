"""End to end through the real snakemake CLI on a small config in a temporary directory."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import ROOT, make_bad_videos, make_video

pytestmark = pytest.mark.e2e
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))

SMALL = {
    "sources": [
        {
            "name": "synth",
            "kind": "synthetic",
            "clips": 8,
            "shards": 2,
            "min_side": 64,
            "max_side": 128,
            "min_seconds": 6.0,
            "max_seconds": 7.0,
            "negative_fraction": 0.25,
        },
        {"name": "bad", "kind": "local", "path_glob": "incoming/**/*.mp4", "shards": 1},
    ],
}


def snakemake_command(workdir: Path, *args: str) -> list[str]:
    return [
        SNAKEMAKE,
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(workdir / "config.yaml"),
        "--cores",
        "2",
        *args,
    ]


def snakemake(
    workdir: Path, *args: str, check: bool = True, env: dict | None = None
) -> subprocess.CompletedProcess:
    env = os.environ | {"HF_HUB_OFFLINE": "1"} | (env or {})
    proc = subprocess.run(
        snakemake_command(workdir, *args),
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def planned_rules(proc: subprocess.CompletedProcess) -> dict[str, int]:
    """The rule -> job count table a dry run prints."""
    text = proc.stdout + proc.stderr
    table = text.split("Job stats:")[-1]
    return {
        m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m[1] != "total"
    }


def config_of(workdir: Path) -> dict:
    return yaml.safe_load((workdir / "config.yaml").read_text())


def planned_with(workdir: Path, cfg: dict) -> dict[str, int]:
    """The jobs a dry run plans with ``cfg`` (an edited copy of the workdir's config)."""
    (workdir / "changed.yaml").write_text(yaml.safe_dump(cfg))
    return planned_rules(
        snakemake(workdir, "--dry-run", "--configfile", str(workdir / "changed.yaml"))
    )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    wd = tmp_path_factory.mktemp("wf")
    make_bad_videos(wd / "incoming" / "sub dir")
    (wd / "config.yaml").write_text(yaml.safe_dump(SMALL))
    snakemake(wd)
    return wd


def test_run_builds_the_dataset(workdir):
    ds = workdir / "results" / "dataset"
    stats = json.loads((ds / "stats.json").read_text())
    assert stats["dataset"]["train"]["pairs"] > 0
    assert stats["dataset"]["bench"]["pairs"] > 0
    for split in ("train", "bench"):
        meta = [json.loads(x) for x in (ds / split / "metadata.jsonl").read_text().splitlines()]
        for m in meta:
            assert (ds / split / m["image"][0]).exists() and m["prompt"].endswith(".")
    train = pd.read_parquet(ds / "train" / "data.parquet")
    bench = pd.read_parquet(ds / "bench" / "data.parquet")
    assert not set(train["video_id"]) & set(bench["video_id"])  # no leak across splits
    for rule in ("fetch", "frames", "prefilter", "judge", "rewrite"):
        assert list((workdir / "results" / "logs" / rule).rglob("*.log")), rule
    assert list((workdir / "results" / "benchmarks" / "frames").rglob("*.tsv"))


def test_every_bad_input_is_one_error_row_and_good_ones_yield_pairs(workdir):
    man = pd.read_parquet(workdir / "results" / "videos" / "bad" / "0000.parquet")
    frames = pd.read_parquet(workdir / "results" / "frames" / "bad" / "0000.parquet")
    by_name = {Path(o).name: r for o, r in zip(man["origin"], man.to_dict("records"), strict=True)}
    assert len(man) == len(list((workdir / "incoming").rglob("*.mp4")))
    errors = {
        "truncated.mp4": "not a readable video",
        "empty.mp4": "empty file",
        "notes.mp4": "not a readable video",
        "audio only.mp4": "no video stream",
        "tiny 17x9.mp4": "min_side",
    }
    for name, text in errors.items():
        assert text in by_name[name]["error"], name
    video_errors = frames[frames["pair_id"].isna()].set_index("video_id")["error"]
    one_frame = by_name["one_frame.mp4"]["video_id"]
    assert "too short" in video_errors[one_frame]
    for name in ("good clip.mp4", "rotated.mp4", "vidéo d'été 日本.mp4"):
        vid = by_name[name]["video_id"]
        assert pd.isna(by_name[name]["error"])
        got = frames[(frames["video_id"] == vid) & frames["error"].isna()]
        assert len(got) == 2 and got["frame0"].map(lambda p: (workdir / p).exists()).all(), name
    rotated = frames[frames["video_id"] == by_name["rotated.mp4"]["video_id"]].iloc[0]
    assert (rotated["width"], rotated["height"]) == (64, 96)


def test_rerun_does_nothing(workdir):
    proc = snakemake(workdir)
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_a_video_added_to_a_folder_reruns_its_shard_and_what_follows(workdir):
    added = make_video(workdir / "incoming" / "late arrival.mp4", size="80x64", seconds=4)
    try:
        plan = planned_rules(snakemake(workdir, "--dry-run"))
    finally:
        added.unlink()
    # The synthetic source's two shards are not touched; the local source's one shard is.
    assert plan == {"fetch": 1, "frames": 1, "prefilter": 1, "judge": 1, "rewrite": 1,
                    "dataset": 1, "report_dataset": 1, "all": 1}  # fmt: skip
    again = snakemake(workdir, "--dry-run")
    assert "Nothing to be done" in again.stdout + again.stderr


def test_forcerun_judge_reruns_only_judge_and_what_follows(workdir):
    plan = planned_rules(snakemake(workdir, "--dry-run", "--forcerun", "judge"))
    assert plan == {"judge": 3, "rewrite": 3, "dataset": 1, "report_dataset": 1, "all": 1}


def test_changing_a_prefilter_threshold_reruns_from_prefilter(workdir):
    plan = planned_with(workdir, config_of(workdir) | {"prefilter": {"min_motion": 0.02}})
    assert "fetch" not in plan and "frames" not in plan
    assert plan["prefilter"] == 3 and plan["judge"] == 3


def test_changing_a_judge_setting_reruns_from_judge(workdir):
    plan = planned_with(workdir, config_of(workdir) | {"judge": {"max_warp_error": 0.2}})
    assert plan == {"judge": 3, "rewrite": 3, "dataset": 1, "report_dataset": 1, "all": 1}


def test_until_and_a_single_target_run_only_what_they_name(workdir):
    plan = planned_rules(snakemake(workdir, "--dry-run", "--forceall", "--until", "prefilter"))
    assert plan == {"fetch": 3, "frames": 3, "prefilter": 3}
    target = "results/frames/synth/0001.parquet"
    plan = planned_rules(snakemake(workdir, target, "--dry-run", "--forcerun", "frames"))
    assert plan == {"frames": 1}


def test_bad_config_fails_before_any_job(tmp_path):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(SMALL | {"frames": {"window_secs": 3}}))
    proc = snakemake(tmp_path, check=False)
    assert proc.returncode != 0
    assert "frames.window_secs: unknown key" in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


def test_same_config_gives_byte_identical_tables(workdir, tmp_path):
    make_bad_videos(tmp_path / "incoming" / "sub dir")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(SMALL))
    snakemake(tmp_path, "--until", "dataset")
    tables = [
        "dataset/train/data.parquet",
        "dataset/bench/metadata.jsonl",
        "dataset/stats.json",
        "judge/synth/0000.parquet",
        "prefilter/synth/0001.parquet",
    ]
    for rel in tables:
        assert (tmp_path / "results" / rel).read_bytes() == (
            workdir / "results" / rel
        ).read_bytes(), rel


def test_unimatch_flow_backend_runs_the_mining_stages(tmp_path):
    """The paper's flow model in the prefilter and judge, chosen by config alone."""
    weights = ROOT / "tests" / "fixtures" / "unimatch" / "unimatch_random_weights.pth"
    cfg = {
        "sources": [{"name": "synth", "kind": "synthetic", "clips": 2, "shards": 1,
                     "min_side": 64, "max_side": 96, "min_seconds": 6.0, "max_seconds": 6.5}],
        "flow": {"backend": "unimatch", "max_side": 64,
                 "unimatch": {"checkpoint": str(weights), "device": "cpu", "batch_size": 4}},
    }  # fmt: skip
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    snakemake(tmp_path, "--until", "prefilter")
    pre = pd.read_parquet(tmp_path / "results/prefilter/synth/0000.parquet")
    assert len(pre) >= 2 and pre["error"].isna().all()
    # Random weights give arbitrary but real flow: forward and backward flows disagree, so
    # the chain through the window's samples loses points in every pair.
    assert (pre["samples"] >= 2).all() and (pre["lost_frac"] > 0).all()
    log = (tmp_path / "results/logs/prefilter/synth/0000.log").read_text()
    assert "candidate pairs" in log


def test_unimatch_without_checkpoint_is_downloaded_by_a_job_first(tmp_path):
    cfg = {"sources": [{"name": "synth", "kind": "synthetic"}], "flow": {"backend": "unimatch"}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(tmp_path, "--dry-run", "--until", "prefilter")
    assert planned_rules(proc)["unimatch_weights"] == 1
    assert "results/weights/gmflow-scale2-regrefine6-mixdata-train320x576-4e7b215d.pth" in (
        proc.stdout
    )
    # A path that is given but not there fails before any job, naming the key and the file.
    cfg["flow"]["unimatch"] = {"checkpoint": "weights/nope.pth"}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(tmp_path, check=False)
    assert proc.returncode != 0
    assert "flow.unimatch.checkpoint" in proc.stderr + proc.stdout
    assert "4e7b215d.pth" in proc.stderr + proc.stdout
    assert not (tmp_path / "results").exists()


def test_paper_config_plans_without_weights_gpus_or_key(tmp_path):
    """The paper-parity evaluation builds its DAG with no hub weights, no UniMatch
    checkpoint, no GPU and no Gemini key here: each is needed only by the job that uses it."""
    env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    proc = subprocess.run(
        snakemake_command(
            tmp_path, "--dry-run", "--configfile",
            str(ROOT / "configs" / "mining-hub.yaml"), str(ROOT / "configs" / "paper.yaml"),
        ),
        capture_output=True, text=True, timeout=300, env=env | {"HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    plan = planned_rules(proc)
    assert plan["unimatch_weights"] == 1 and plan["train"] == 2
    assert plan["infer"] == plan["evaluate"] == 5
    assert plan["summarize"] == plan["report_benchmark"] == plan["report_training"] == 1
    assert not (tmp_path / "results").exists()


def test_reward_ablation_plans_its_runs_next_to_the_papers(tmp_path):
    configs = [str(ROOT / "configs" / n) for n in ("mining-hub.yaml", "paper.yaml",
                                                    "ablation-rewards.yaml")]  # fmt: skip
    proc = snakemake(tmp_path, "--dry-run", "--configfile", *configs)
    plan = planned_rules(proc)
    assert plan["train"] == 2 + 8 and plan["infer"] == plan["evaluate"] == 5 + 8
