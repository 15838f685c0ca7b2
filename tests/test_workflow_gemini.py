"""The mining workflow with the Gemini judge and rewriter, through the real snakemake CLI.

The jobs run the real google-genai SDK against a local server that speaks the Gemini wire
format; the API key is a sentinel that must appear nowhere in the results or the logs.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml
from gemini_stub import GeminiStub, motion_answers
from PIL import Image
from test_workflow import snakemake

pytestmark = pytest.mark.e2e
SENTINEL = "sentinel-9d2e-never-written"

CONFIG = {
    "sources": [{"name": "synth", "kind": "synthetic", "clips": 12, "shards": 2,
                 "min_side": 64, "max_side": 96, "min_seconds": 6.0, "max_seconds": 7.0}],
    "judge": {"backend": "gemini", "gemini": {"model": "gemini-2.5-flash"}},
    "rewrite": {"backend": "gemini"},
}  # fmt: skip


def test_gemini_backends_build_the_dataset_and_a_rerun_asks_nothing(tmp_path):
    with GeminiStub(answer=motion_answers) as stub:
        config = CONFIG | {"mllm": {"base_url": stub.url, "timeout_s": 10, "backoff_s": 0.1}}
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
        env = {"GEMINI_API_KEY": SENTINEL, "GOOGLE_API_KEY": ""}
        snakemake(tmp_path, "--until", "dataset", env=env)
        results = tmp_path / "results"
        judged = pd.concat(
            pd.read_parquet(p) for p in sorted(results.glob("judge/synth/*.parquet"))
        )
        asked = stub.count
        assert len(judged) > 0 and judged["error"].isna().all()
        instructions = pd.concat(
            pd.read_parquet(p) for p in sorted(results.glob("instructions/synth/*.parquet"))
        )
        assert asked == len(judged) + len(instructions)  # one call per pair and stage
        assert stub.api_keys == {SENTINEL}
        assert instructions["instruction"].str.startswith("Make the subject end up in a new").all()
        stats = json.loads((results / "dataset" / "stats.json").read_text())
        assert stats["dataset"]["train"]["pairs"] + stats["dataset"]["bench"]["pairs"] == len(
            instructions
        )
        spent = stats["mllm_spending"]["judge"]
        assert spent["input_tokens"] == 300 * len(judged)
        assert spent["cost_usd"] == pytest.approx(len(judged) * (300 * 0.30 + 50 * 2.50) / 1e6)
        assert set(judged["category"]) <= {
            "pose", "locomotion", "deformation", "orientation", "subject_object", "subject_subject"
        }  # fmt: skip
        tables = {p: p.read_bytes() for p in results.glob("**/*.parquet")}

        # Forcing both stages again answers everything from the cache: no call, same tables.
        snakemake(tmp_path, "--until", "dataset", "--forcerun", "judge", "rewrite", env=env)
        assert stub.count == asked
        assert {p: p.read_bytes() for p in results.glob("**/*.parquet")} == tables
        # ... and needs no key at all.
        snakemake(tmp_path, "--until", "dataset", "--forcerun", "judge", env={"GEMINI_API_KEY": ""})
        assert stub.count == asked

        # A changed judge setting re-runs the judge (params trigger) and asks again; the same
        # answers give the same rewrite prompts, which the cache answers.
        config["judge"]["gemini"]["temperature"] = 0.5
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
        snakemake(tmp_path, "--until", "dataset", env=env)
        assert stub.count == asked + len(judged)

    for path in [*tmp_path.rglob("*")]:
        if path.is_file():
            assert SENTINEL.encode() not in path.read_bytes(), path


def test_batch_mode_builds_the_same_dataset_through_batch_jobs(tmp_path):
    with GeminiStub(answer=motion_answers) as stub:
        mllm = {"base_url": stub.url, "mode": "batch", "batch": {"poll_s": 0.05}}
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(CONFIG | {"mllm": mllm}))
        snakemake(tmp_path, "--until", "dataset", env={"GEMINI_API_KEY": SENTINEL})
        assert stub.count == 0 and stub.batch_submissions == 4  # judge and rewrite, 2 shards
    results = tmp_path / "results"
    judged = pd.concat(pd.read_parquet(p) for p in sorted(results.glob("judge/synth/*.parquet")))
    assert len(judged) > 0 and judged["error"].isna().all() and judged["keep"].all()
    stats = json.loads((results / "dataset" / "stats.json").read_text())
    # Batch answers cost half: 300 tokens in and 50 out per judged pair.
    expected = len(judged) * (300 * 0.30 + 50 * 2.50) / 1e6 * 0.5
    # stats.json rounds dollars to 6 decimals
    assert stats["mllm_spending"]["judge"]["cost_usd"] == pytest.approx(expected, abs=1e-6)
    assert not list((results / "cache" / "mllm" / "batches").glob("*.json"))


def test_generative_scores_through_gemini_and_win_rates_on_overall(tmp_path):
    """Every made edit is scored once; a rerun of the evaluation asks nothing."""
    with GeminiStub(answer=motion_answers) as stub:
        (tmp_path / "preds").mkdir()
        config = {
            "sources": CONFIG["sources"],
            "mllm": {"base_url": stub.url, "timeout_s": 10, "backoff_s": 0.1},
            "evaluate": {"generative": {"backend": "gemini"}},
            "models": {
                "do-nothing": {"kind": "identity"},
                "closed": {"kind": "predictions", "path": str(tmp_path / "preds")},
            },
        }
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
        env = {"GEMINI_API_KEY": SENTINEL, "GOOGLE_API_KEY": ""}
        snakemake(tmp_path, "--until", "dataset", env=env)
        bench = pd.read_parquet(tmp_path / "results" / "dataset" / "bench" / "data.parquet")
        first = bench.sort_values("id")["id"].iloc[0]
        Image.new("RGB", (48, 40), "orange").save(tmp_path / "preds" / f"{first}.png")
        snakemake(tmp_path, env=env)
        assert stub.count == len(bench) + 1  # do-nothing's edits and closed's one image

        results = tmp_path / "results"
        closed = pd.read_parquet(results / "eval" / "closed" / "scores.parquet").set_index("id")
        assert closed.loc[first, "overall"] >= 0 and closed["overall"].notna().sum() == 1
        assert closed.drop(first)["mllm_error"].str.startswith("images: ").all()
        summary = pd.read_csv(results / "eval" / "summary.csv").set_index("model")
        assert (summary["win_basis"] == "overall").all()
        assert summary.loc["closed", "errors"] == len(bench) - 1
        assert "Win Rate on Overall (%)" in (results / "eval" / "summary.md").read_text()
        tables = {p: p.read_bytes() for p in results.glob("eval/**/*.csv")}

        snakemake(tmp_path, "--forcerun", "evaluate", env={"GEMINI_API_KEY": ""})
        assert stub.count == len(bench) + 1
        assert {p: p.read_bytes() for p in results.glob("eval/**/*.csv")} == tables

    for path in [*tmp_path.rglob("*")]:
        if path.is_file():
            assert SENTINEL.encode() not in path.read_bytes(), path
