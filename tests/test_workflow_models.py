"""The editor stages through the real snakemake CLI: SFT from scratch, a LoRA on top, inference."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pandas as pd
import pytest
import tiny_flux
import yaml
from diffusers import FluxKontextPipeline
from PIL import Image
from test_inference import make_bench
from test_workflow import config_of, planned_with, snakemake, snakemake_command

pytestmark = pytest.mark.e2e

CONFIG = {
    "sources": [
        {
            "name": "synth",
            "kind": "synthetic",
            "clips": 10,
            "shards": 1,
            "min_side": 64,
            "max_side": 96,
            "min_seconds": 6.0,
            "max_seconds": 6.5,
            "negative_fraction": 0.0,
        }
    ],
    # Two inference steps, not the kind's one: the training curve must edit with them too.
    "editors": {
        "tiny": {
            "kind": "tiny",
            "source": "results/models/tiny",
            "device": "cpu",
            "inference": {"steps": 2},
        }
    },
    "sft": {
        "tiny": {
            "editor": "tiny",
            "from_scratch": True,
            "steps": 4,
            "batch_size": 2,
            "checkpoint_every": 2,
            "vae": {"steps": 3, "batch_size": 2},
        },
        "tiny-lora": {"editor": "tiny", "steps": 3, "batch_size": 2, "lora": {"rank": 2}},
    },
    "train": {
        "tiny-nft": {
            "editor": "tiny",
            "steps": 2,
            "groups": 2,
            "group_size": 2,
            "sampling_steps": 1,
            "resolution": None,  # the tiny editor's own 32x32 budget, as config.yaml
            "rewards": {"motion": 0.5, "appearance": 0.5},
            "checkpoint_every": 1,
            "eval_every": 1,
            "eval_pairs": 2,
            "lora": {"rank": 2},
        }
    },
    "models": {
        "do-nothing": {"kind": "identity"},
        "tiny": {"kind": "editor", "editor": "tiny"},
        "tiny-lora": {"kind": "editor", "editor": "tiny", "lora": "results/models/tiny-lora"},
        "tiny-nft": {"kind": "editor", "editor": "tiny", "lora": "results/train/tiny-nft"},
        "closed": {"kind": "predictions", "path": "predictions", "pattern": "{id}.png"},
    },
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    wd = tmp_path_factory.mktemp("models")
    (wd / "predictions").mkdir()
    (wd / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    snakemake(wd, "--until", "dataset")
    bench = pd.read_parquet(wd / "results" / "dataset" / "bench" / "data.parquet")
    Image.new("RGB", (40, 30), "blue").save(wd / "predictions" / f"{bench['id'].iloc[0]}.png")
    snakemake(wd)
    return wd


def test_every_model_has_one_row_per_benchmark_id(workdir):
    bench = pd.read_parquet(workdir / "results" / "dataset" / "bench" / "data.parquet")
    for model in CONFIG["models"]:
        out = pd.read_parquet(workdir / "results" / "eval" / model / "outputs.parquet")
        assert sorted(out["id"]) == sorted(bench["id"]), model
        ok = out[out["error"] == ""]
        for path in ok["path"]:
            assert (workdir / "results" / "eval" / model / path).is_file()
    closed = pd.read_parquet(workdir / "results" / "eval" / "closed" / "outputs.parquet")
    assert (closed["error"] == "").sum() == 1
    assert closed["error"].str.startswith("missing prediction").sum() == len(bench) - 1
    assert (workdir / "results" / "logs" / "infer" / "tiny.log").is_file()
    assert (workdir / "results" / "benchmarks" / "sft" / "tiny.tsv").is_file()


def test_the_tiny_editor_is_a_diffusers_pipeline_with_its_training_log(workdir):
    folder = workdir / "results" / "models" / "tiny"
    pipe = FluxKontextPipeline.from_pretrained(folder)
    assert pipe.transformer.config.in_channels > 0
    log = pd.read_csv(folder / "sft_log.csv")
    assert set(log["stage"]) == {"vae", "transformer"}
    summary = json.loads((folder / "sft_summary.json").read_text())
    assert summary["from_scratch"] and summary["pairs"] > 0
    assert (
        workdir / "results" / "models" / "tiny-lora" / "pytorch_lora_weights.safetensors"
    ).is_file()


def test_motionnft_trains_on_the_tiny_editor_and_its_lora_is_evaluated(workdir):
    folder = workdir / "results" / "train" / "tiny-nft"
    metrics = pd.read_csv(folder / "metrics.csv")
    assert metrics["step"].tolist() == [0, 1, 2] and metrics["eval_mas"].notna().all()
    assert (folder / "pytorch_lora_weights.safetensors").is_file()
    assert (folder / "checkpoints" / "step-000001").is_dir()
    assert (workdir / "results" / "checkpoints" / "train" / "tiny-nft" / "state.pt").is_file()
    assert (workdir / "results" / "benchmarks" / "train" / "tiny-nft.tsv").is_file()
    out = pd.read_parquet(workdir / "results" / "eval" / "tiny-nft" / "outputs.parquet")
    assert (out["error"] == "").all()


def test_the_training_curve_ends_at_the_benchmark_mas_of_the_saved_lora(workdir):
    """The held-out curve edits as inference does, the editor's inference settings included."""
    metrics = pd.read_csv(workdir / "results" / "train" / "tiny-nft" / "metrics.csv")
    bench = pd.read_parquet(workdir / "results" / "dataset" / "bench" / "data.parquet")
    slice_ids = sorted(bench["id"])[: CONFIG["train"]["tiny-nft"]["eval_pairs"]]
    scores = pd.read_parquet(workdir / "results" / "eval" / "tiny-nft" / "scores.parquet")
    benchmark_mas = scores.set_index("id").loc[slice_ids, "mas"].mean()
    assert metrics["eval_mas"].iloc[-1] == pytest.approx(benchmark_mas, abs=1e-6)


def test_every_model_is_scored_and_compared_with_error_rows_kept(workdir):
    bench = pd.read_parquet(workdir / "results" / "dataset" / "bench" / "data.parquet")
    for model in CONFIG["models"]:
        scores = pd.read_parquet(workdir / "results" / "eval" / model / "scores.parquet")
        assert sorted(scores["id"]) == sorted(bench["id"]), model
    closed = pd.read_parquet(workdir / "results" / "eval" / "closed" / "scores.parquet")
    assert (closed["error"] == "").sum() == 1 and closed["mas"].notna().sum() == 1
    nothing = pd.read_parquet(workdir / "results" / "eval" / "do-nothing" / "scores.parquet")
    assert nothing["static"].all() and (nothing["mas"] == 0).all()

    summary = pd.read_csv(workdir / "results" / "eval" / "summary.csv").set_index("model")
    assert list(summary.index) == sorted(CONFIG["models"])  # the config order (dumped sorted)
    assert summary.loc["closed", "errors"] == len(bench) - 1
    assert (summary["win_basis"] == "mas").all() and summary["overall"].isna().all()
    md = (workdir / "results" / "eval" / "summary.md").read_text()
    assert "Win Rate on MAS (%)" in md and "`tiny-nft`" in md
    per_category = pd.read_csv(workdir / "results" / "eval" / "per_category.csv")
    assert set(per_category["category"]) == set(bench["category"])
    for png in ("samples", "mas_by_category", "mas_curves", "reward_curves", "funnel",
                "categories"):  # fmt: skip
        with Image.open(workdir / "results" / "report" / f"{png}.png") as im:
            assert im.size[0] > 300, png
    motion = pd.read_csv(workdir / "results" / "report" / "dataset_motion.csv")
    assert set(motion["split"]) == {"train", "bench"}


def test_the_report_gathers_the_tables_and_figures(workdir):
    snakemake(workdir, "--report", "results/report.html")
    html = (workdir / "results" / "report.html").read_text()
    for name in ("summary.csv", "per_category.csv", "samples.png", "mas_curves.png", "funnel.png"):
        assert name in html, name


def test_rerun_does_nothing_and_a_new_model_runs_alone(workdir):
    assert "Nothing to be done" in snakemake(workdir, "--dry-run").stdout
    cfg = config_of(workdir)
    cfg["models"]["tiny-8"] = {"kind": "editor", "editor": "tiny"}
    cfg["editors"]["tiny"]["inference"] = {"steps": 8}
    plan = planned_with(workdir, cfg)
    # The editor's inference settings changed: its models rerun and are scored again, and
    # so does its MotionNFT run, whose held-out curve edits with them; its SFT runs and the
    # dataset figures do not.
    assert plan == {
        "train": 1, "infer": 4, "evaluate": 4, "summarize": 1, "report_benchmark": 1,
        "report_training": 1, "all": 1,
    }  # fmt: skip

    # A MotionNFT checkpoint is a model like any other; it needs its run, not a new one.
    cfg = config_of(workdir)
    step = "results/train/tiny-nft/checkpoints/step-000001"
    cfg["models"]["tiny-nft-1"] = {"kind": "editor", "editor": "tiny", "lora": step}
    plan = planned_with(workdir, cfg)
    assert plan == {
        "infer": 1, "evaluate": 1, "summarize": 1, "report_benchmark": 1, "all": 1
    }  # fmt: skip


def test_a_model_naming_an_unknown_editor_fails_before_any_job(tmp_path):
    cfg = yaml.safe_load(yaml.safe_dump(CONFIG))
    cfg["models"]["typo"] = {"kind": "editor", "editor": "tiyn"}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(tmp_path, check=False)
    assert proc.returncode != 0
    assert "models.typo.editor: no editor 'tiyn'" in proc.stderr + proc.stdout
    assert not (tmp_path / "results").exists()


def test_a_killed_infer_job_reruns_to_the_same_images(tmp_path):
    """Kill snakemake (and its job) mid-way through inference; the rerun finishes the rest."""
    source = tmp_path / "kontext"
    tiny_flux.build().save_pretrained(source)
    config = {
        "sources": [{"name": "synth", "kind": "synthetic"}],
        "editors": {"k": tiny_flux.editor(source, inference={"steps": 12, "batch_size": 1})},
        "models": {"k": {"kind": "editor", "editor": "k"}},
    }
    target = "results/eval/k/outputs.parquet"
    runs = {}
    for name in ("full", "killed"):
        wd = tmp_path / name
        make_bench(wd / "results" / "dataset" / "bench", n=10)
        (wd / "config.yaml").write_text(yaml.safe_dump(config))
        runs[name] = wd
    snakemake(runs["full"], target, "--allowed-rules", "infer")

    wd = runs["killed"]
    cmd = snakemake_command(wd, target, "--allowed-rules", "infer")
    proc = subprocess.Popen(
        cmd,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ | {"HF_HUB_OFFLINE": "1"},
    )
    journal = wd / "results" / "eval" / "k" / "progress.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if journal.is_file() and len(journal.read_text().splitlines()) >= 4:
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "snakemake ended before it could be killed"
    assert not (wd / target).exists()
    finished_before = len(journal.read_text().splitlines()) - 1
    assert 3 <= finished_before < 10

    # What a user does after a kill: release the lock, rerun the incomplete job.
    snakemake(wd, "--unlock")
    snakemake(wd, target, "--allowed-rules", "infer", "--rerun-incomplete")
    log = (wd / "results" / "logs" / "infer" / "k.log").read_text()
    assert f"{finished_before} of 10 images already made" in log
    full = runs["full"] / "results" / "eval" / "k" / "images"
    resumed = wd / "results" / "eval" / "k" / "images"
    assert len(list(full.glob("*.png"))) == 10
    for png in sorted(full.glob("*.png")):
        assert png.read_bytes() == (resumed / png.name).read_bytes(), png.name
