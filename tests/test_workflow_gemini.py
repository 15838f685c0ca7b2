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
    assert stats["mllm_spending"]["judge"]["cost_usd"] == pytest.approx(expected)
    assert not list((results / "cache" / "mllm" / "batches").glob("*.json"))
