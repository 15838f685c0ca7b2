"""Mining and evaluation with every MLLM stage on an open model behind an OpenAI-compatible
server, through the real snakemake CLI.

The jobs send real HTTP requests to a local server that speaks vLLM's chat-completions wire
format; the API key is a sentinel that must appear nowhere in the results or the logs.
"""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from openai_stub import OpenAIStub, open_model_answers
from PIL import Image
from test_workflow import snakemake
from test_workflow_gemini import CONFIG

pytestmark = pytest.mark.e2e
SENTINEL = "sentinel-open-41a7-never-written"
KEY_VAR = "MOTIONEDIT_OPEN_KEY"


def answers(results) -> dict:
    """The tables the MLLM stages write, and what is made of them."""
    return {
        p: p.read_bytes()
        for pattern in ("judge/**/*.parquet", "instructions/**/*.parquet",
                        "dataset/**/*.parquet", "eval/*/scores.parquet", "eval/*.csv")
        for p in results.glob(pattern)
    }  # fmt: skip


def test_mining_and_evaluation_on_an_open_model_and_a_rerun_asks_nothing(tmp_path):
    with OpenAIStub(answer=open_model_answers, api_key=SENTINEL) as stub:
        (tmp_path / "preds").mkdir()
        config = {
            "sources": CONFIG["sources"],
            "judge": {"backend": "openai"},
            "rewrite": {"backend": "openai"},
            "evaluate": {"generative": {"backend": "openai"}},
            "mllm": {"timeout_s": 10, "backoff_s": 0.1,
                     "openai": {"base_url": stub.url, "api_key_env": KEY_VAR}},
            "models": {
                "do-nothing": {"kind": "identity"},
                "closed": {"kind": "predictions", "path": str(tmp_path / "preds")},
            },
        }  # fmt: skip
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
        env = {KEY_VAR: SENTINEL}
        snakemake(tmp_path, "--until", "dataset", env=env)
        results = tmp_path / "results"
        judged = pd.concat(pd.read_parquet(p) for p in sorted(results.glob("judge/*/*.parquet")))
        instructions = pd.concat(
            pd.read_parquet(p) for p in sorted(results.glob("instructions/*/*.parquet"))
        )
        assert len(judged) > 0 and judged["error"].isna().all()
        assert set(judged["category"]) <= {
            "pose", "locomotion", "deformation", "orientation", "subject_object", "subject_subject"
        }  # fmt: skip
        assert (judged["backend"] == "openai").all()
        assert (judged["model"] == "Qwen/Qwen2.5-VL-7B-Instruct").all()
        assert instructions["instruction"].str.startswith("Make the subject end up in a new").all()
        assert stub.count == len(judged) + len(instructions)

        bench = pd.read_parquet(results / "dataset" / "bench" / "data.parquet")
        first = bench.sort_values("id")["id"].iloc[0]
        Image.new("RGB", (48, 40), "orange").save(tmp_path / "preds" / f"{first}.png")
        snakemake(tmp_path, env=env)
        asked = stub.count
        assert asked == len(judged) + len(instructions) + len(bench) + 1
        scores = pd.read_parquet(results / "eval" / "do-nothing" / "scores.parquet")
        assert scores["overall"].notna().all() and (scores["mllm_backend"] == "openai").all()
        assert (scores["prompt_version"] == "gen-open-v1").all()
        summary = pd.read_csv(results / "eval" / "summary.csv").set_index("model")
        assert (summary["win_basis"] == "overall").all()
        tables = answers(results)

        # Everything again from the cache: no call, the same tables, and no key needed.
        snakemake(tmp_path, "--forcerun", "judge", "rewrite", "evaluate", env={KEY_VAR: ""})
        assert stub.count == asked
        assert sorted(answers(results)) == sorted(tables)
        assert [p for p, table in answers(results).items() if table != tables[p]] == []

    for path in [*tmp_path.rglob("*")]:
        if path.is_file():
            assert SENTINEL.encode() not in path.read_bytes(), path
