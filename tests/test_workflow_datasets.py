"""A benchmark made elsewhere, through the real snakemake CLI: the released layout served by
the Hub double (or a local folder) is imported and scored, and no mining job runs."""

from __future__ import annotations

import io
import json

import pandas as pd
import pyarrow as pa
import pytest
import yaml
from conftest import ROOT
from hub_stub import COMMIT, hub_env, serve_hub
from PIL import Image
from test_dataset_import import PARQUET, REPO, parquet_bytes, photo_pair, released_table
from test_workflow import planned_rules, snakemake

pytestmark = pytest.mark.e2e

MINING_RULES = {"fetch", "frames", "prefilter", "judge", "rewrite", "dataset"}


def write_config(workdir, bench: dict) -> None:
    config = {
        "sources": [{"name": "synth", "kind": "synthetic", "clips": 4, "shards": 1}],
        "datasets": {"bench": bench},
        "models": {
            "do-nothing": {"kind": "identity"},
            "closed": {"kind": "predictions", "path": "predictions", "pattern": "{id}.png"},
        },
    }
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))


def write_predictions(workdir) -> None:
    """A closed editor's edits: the target frame for ids 0 and 1, nothing for id 2."""
    (workdir / "predictions").mkdir()
    for k in (0, 1):
        with Image.open(io.BytesIO(photo_pair(k)[1])) as im:
            im.save(workdir / "predictions" / f"{k}.png")


def test_the_released_bench_from_the_hub_is_scored_without_mining(tmp_path):
    write_config(tmp_path, {"kind": "hub", "repo_id": REPO, "revision": COMMIT})
    write_predictions(tmp_path)
    with serve_hub({REPO: {PARQUET: parquet_bytes(released_table())}}) as hub:
        env = hub_env(hub.base, tmp_path / "hf_home") | {"HF_HUB_OFFLINE": "0"}
        plan = planned_rules(snakemake(tmp_path, "--dry-run", "--until", "summarize", env=env))
        assert plan["import_dataset"] == 1 and plan["evaluate"] == 2
        assert not MINING_RULES & set(plan)
        snakemake(tmp_path, "--until", "summarize", env=env)
    assert not (tmp_path / "results" / "videos").exists()
    assert not (tmp_path / "results" / "dataset").exists()

    summary = json.loads((tmp_path / "results/datasets/bench/import.json").read_text())
    assert summary["rows"] == 3 and summary["source"] == f"hf://datasets/{REPO}@{COMMIT}"
    nothing = pd.read_parquet(tmp_path / "results/eval/do-nothing/scores.parquet")
    closed = pd.read_parquet(tmp_path / "results/eval/closed/scores.parquet")
    assert list(nothing["id"]) == list(closed["id"]) == ["0", "1", "2"]
    assert nothing["mas"].notna().all()
    # The target frame as the edit scores far above the unedited input; the missing edit is
    # an error row, not a dropped sample.
    assert (closed["mas"][:2] > nothing["mas"][:2]).all()
    assert closed["mas"].isna()[2] and "missing prediction" in closed["error"][2]
    table = pd.read_csv(tmp_path / "results/eval/summary.csv")
    assert set(table["model"]) == {"do-nothing", "closed"}

    # Offline, with the snapshot cached: the import reads the cache (no server running now).
    env_offline = env | {"HF_HUB_OFFLINE": "1"}
    snakemake(tmp_path, "--until", "summarize", "--forcerun", "import_dataset", env=env_offline)


def test_a_local_folder_bench_is_imported_and_broken_rows_stop_it_with_their_names(tmp_path):
    folder = tmp_path / "my_bench"
    folder.mkdir()
    (folder / "bench.parquet").write_bytes(parquet_bytes(released_table()))
    write_config(tmp_path, {"kind": "local", "path": "my_bench"})
    write_predictions(tmp_path)
    snakemake(tmp_path, "--until", "summarize")
    assert len(pd.read_parquet(tmp_path / "results/eval/closed/scores.parquet")) == 3

    table = released_table()
    (folder / "bench.parquet").write_bytes(
        parquet_bytes(table.set_column(0, "id", pa.array([0, 1, 0])))
    )
    proc = snakemake(tmp_path, "--until", "summarize", check=False)
    assert proc.returncode != 0
    log = (tmp_path / "results/logs/import_dataset/bench.log").read_text()
    assert "datasets.bench: 1 of 3 rows cannot be used" in log
    assert "bench.parquet row 2: id '0' repeats bench.parquet row 0" in log


def test_the_release_config_plans_the_released_lora_on_the_released_bench(tmp_path):
    """configs/motionedit-release.yaml, in a folder of its own as the README runs it: the
    benchmark imported from the hub, the base editor and the released LoRA inferred and
    scored with UniMatch; nothing mined or trained, and no network needed to plan."""
    config = str(ROOT / "configs" / "motionedit-release.yaml")
    plan = planned_rules(snakemake(tmp_path, "--dry-run", "--configfile", config))
    assert plan["import_dataset"] == 1 and plan["unimatch_weights"] == 1
    assert plan["infer"] == plan["evaluate"] == 2 and plan["summarize"] == 1
    assert not (MINING_RULES | {"sft", "train"}) & set(plan)


def test_the_table1_config_plans_every_model_of_the_papers_table(tmp_path):
    config = str(ROOT / "configs" / "table1.yaml")
    plan = planned_rules(snakemake(tmp_path, "--dry-run", "--configfile", config))
    models = yaml.safe_load((ROOT / "configs" / "table1.yaml").read_text())["models"]
    assert len(models) == 10
    assert plan["infer"] == plan["evaluate"] == len(models) and plan["import_dataset"] == 1
    assert not (MINING_RULES | {"sft", "train"}) & set(plan)
    named = {m["paper"] for m in models.values()}
    assert len(named) == 10  # one row each; only FLUX.1 Kontext + MotionNFT is not released


def test_the_newer_editors_config_plans_each_editor(tmp_path):
    """configs/newer-editors.yaml: FLUX.2 [klein], LongCat-Image-Edit and ChronoEdit beside
    Qwen-Image-Edit and the released LoRA, each inferred and scored on the released bench."""
    config = ROOT / "configs" / "newer-editors.yaml"
    plan = planned_rules(snakemake(tmp_path, "--dry-run", "--configfile", str(config)))
    kinds = {e["kind"] for e in yaml.safe_load(config.read_text())["editors"].values()}
    assert {"flux2-klein", "longcat-image-edit", "chronoedit"} <= kinds
    assert plan["infer"] == plan["evaluate"] == 5 and plan["import_dataset"] == 1
    assert not (MINING_RULES | {"sft", "train"}) & set(plan)
