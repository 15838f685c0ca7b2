"""The judge, the rewriter and the generative scores on an open model behind an
OpenAI-compatible server (the `openai` backends), through the real HTTP client against a
local server that speaks vLLM's chat-completions wire format.

The answers are the ones small open models give: JSON wrapped in a sentence or a code fence,
a note left out, a category capitalised or spelt with a hyphen, a category that is none of
the six, text that is not JSON at all; and the server's own failures (429 with Retry-After,
500).
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import ROOT
from openai_stub import OpenAIStub, completion, request_image_urls, request_texts
from PIL import Image
from test_judge_gemini import ANSWER, shard

from motionedit.config import ConfigError, layered, validate_config
from motionedit.evaluate.agreement import cohen_kappa, judge_agreement
from motionedit.evaluate.generative import EditToScore, GenerativeScorer
from motionedit.judge import make_judge, make_rewriter
from motionedit.judge.stage import judge_shard, rewrite_shard
from motionedit.mllm import MLLMError, section_pricing

LOG = logging.getLogger("test-open-models")
KEY_VAR = "MOTIONEDIT_TEST_OPEN_KEY"
SENTINEL = "sentinel-open-5c1f-never-written"


def config(tmp_path, url: str, **openai) -> dict:
    """The default config with the judge, the rewriter and the generative scores on the
    local OpenAI-compatible server."""
    full = yaml.safe_load((ROOT / "config.yaml").read_text())
    full |= {
        "judge": {"backend": "openai"},
        "rewrite": {"backend": "openai"},
        "evaluate": {"generative": {"backend": "openai"}},
        "mllm": {
            "cache_dir": str(tmp_path / "cache"),
            "timeout_s": 5,
            "max_attempts": 3,
            "backoff_s": 0.05,
            "max_backoff_s": 0.5,
            "requests_per_minute": None,
            "openai": {"base_url": url, "api_key_env": KEY_VAR} | openai,
        },
    }
    return validate_config(full)


@pytest.fixture
def png(tmp_path) -> str:
    path = tmp_path / "frame.png"
    Image.fromarray(np.full((24, 32, 3), 128, np.uint8)).save(path)
    return str(path)


def reply(content: str) -> dict:
    """A whole answer as the server sends it (finished, no log-probabilities)."""
    return {"content": content, "logprobs": None, "finish": "stop"}


def judge_table(tmp_path, stub, n: int, **openai) -> pd.DataFrame:
    prefilter, frames = shard(tmp_path, n)
    cfg = config(tmp_path, stub.url, **openai)
    cfg["mllm"]["concurrency"] = 1  # the scripted answers go to the pairs in order
    judge = make_judge(cfg, cfg["mllm"], LOG)
    pricing = section_pricing(cfg["judge"], cfg["mllm"])
    return judge_shard(prefilter, frames, judge, tmp_path / "judge.raw.jsonl", LOG, pricing)


def test_the_judge_asks_with_images_a_schema_and_the_key_and_reads_what_small_models_say(
    tmp_path, monkeypatch
):
    monkeypatch.setenv(KEY_VAR, SENTINEL)
    answers = [
        json.dumps(ANSWER),
        "Sure! Here is my assessment:\n```json\n" + json.dumps(ANSWER) + "\n```\nHope it helps.",
        json.dumps({k: v for k, v in ANSWER.items() if not k.endswith("_note")}),
        json.dumps(ANSWER | {"category": "Subject-Object"}),
        json.dumps(ANSWER | {"category": "dancing"}),
        "The subject raises its arm; the pair is good.",
    ]
    with OpenAIStub(answer=lambda body: reply(json.dumps(ANSWER))) as stub:
        stub.queue(*(reply(a) for a in answers))
        table = judge_table(tmp_path, stub, len(answers))
        body = stub.calls[0]
    assert stub.authorizations[0] == f"Bearer {SENTINEL}"
    assert body["model"] == "Qwen/Qwen2.5-VL-7B-Instruct" and body["temperature"] == 0.0
    assert len(request_image_urls(body)) == 2
    assert body["response_format"]["type"] == "json_schema"
    prompt = request_texts(body)[-1]
    assert '- "category": one of "pose", "locomotion"' in prompt  # the keys spelt out
    assert "follows the given schema" not in prompt

    assert table["reason"].tolist()[:4] == ["ok"] * 4
    assert table["category"].tolist()[:4] == ["pose", "pose", "pose", "subject_object"]
    assert json.loads(table["details"][2]) == {"setting_note": "", "subject_note": ""}
    assert (table["backend"] == "openai").all() and (
        table["prompt_version"] == "judge-open-v1"
    ).all()
    # A category outside the six and an answer without JSON are errors, never discards.
    assert table["keep"][4:].isna().all()
    assert table["error"][4].startswith("schema: category: Input should be 'pose'")
    assert table["error"][5].startswith("schema: answer: Invalid JSON")
    # Our own server: no price, no cost.
    assert (table["cost_usd"] == 0.0).all() and (table["input_tokens"] == 900).all()


def test_429_and_500_are_retried_and_malformed_json_is_an_error_row(tmp_path):
    with OpenAIStub(answer=lambda body: reply(json.dumps(ANSWER))) as stub:
        stub.queue(
            {"status": 429, "retry_after": "0.2"},
            reply(json.dumps(ANSWER)),
            {"status": 500},
            reply(json.dumps(ANSWER)),
            reply('{"setting_consistent": true, "significant_motion": tru'),
        )
        table = judge_table(tmp_path, stub, 3)
        # The first call waited out the Retry-After before it asked again.
        assert stub.arrivals[1] - stub.arrivals[0] >= 0.2
    assert stub.count == 5
    assert table["reason"].tolist() == ["ok", "ok", "error:schema"]
    assert table["error"][2].startswith("schema: answer: Invalid JSON")


def test_a_server_without_response_format_is_asked_without_it(tmp_path):
    with OpenAIStub(answer=lambda body: reply(json.dumps(ANSWER))) as stub:
        table = judge_table(tmp_path, stub, 1, response_format="none")
        assert "response_format" not in stub.calls[0]
    assert table["reason"].tolist() == ["ok"]


def test_the_rewriter_reads_an_instruction_in_prose_and_asks_again_for_a_bad_one(tmp_path):
    judged = pd.DataFrame(
        [{"pair_id": "v0-w0", "video_id": "v0", "source": "s", "keep": True, "summary":
          "arm down -> arm raised", "before": "arm down", "after": "arm raised",
          "category": "pose", "details": "{}", "error": None}]
    )  # fmt: skip
    with OpenAIStub() as stub:
        stub.queue(
            reply('{"instruction": "The woman raises her arm."}'),
            reply('Here you go: {"instruction": "Make the woman raise her arm."}'),
        )
        cfg = config(tmp_path, stub.url)
        rewriter = make_rewriter(cfg, cfg["mllm"], LOG)
        pricing = section_pricing(cfg["rewrite"], cfg["mllm"])
        table = rewrite_shard(judged, rewriter, tmp_path / "rw.raw.jsonl", LOG, pricing)
        prompts = [request_texts(body)[-1] for body in stub.calls]
    assert table["instruction"].tolist() == ["Make the woman raise her arm."]
    assert '- "instruction": a string' in prompts[0]
    assert "Attempt 2: an earlier answer was rejected (not imperative" in prompts[1]
    assert table["prompt_version"].tolist() == ["rewrite-open-v1"]


def test_generative_scores_from_an_open_model(tmp_path, png):
    scores = {"fidelity_reason": "raised", "fidelity": 4, "preservation_reason": "same",
              "preservation": "5", "coherence_reason": "clean", "coherence": 3.0}  # fmt: skip
    items = [EditToScore("s0", png, png, png, "Make the woman raise her arm."),
             EditToScore("s1", png, None, png, "Make the woman raise her arm.")]  # fmt: skip
    with OpenAIStub() as stub:
        stub.queue(reply("```json\n" + json.dumps(scores) + "\n```"))
        cfg = config(tmp_path, stub.url)
        scorer = GenerativeScorer(cfg["evaluate"]["generative"], cfg["mllm"], LOG)
        first, second = scorer.score_all(items)
        assert stub.count == 1  # the item without an edit costs no call
        assert len(request_image_urls(stub.calls[0])) == 3
    assert scorer.backend == "openai" and scorer.prompt_version == "gen-open-v1"
    assert first.value["overall"] == 4.0 and first.value["preservation"] == 5
    assert second.error.startswith("images: no edited image")


def test_a_stage_on_the_open_server_needs_its_url():
    full = yaml.safe_load((ROOT / "config.yaml").read_text())
    with pytest.raises(ConfigError, match=r"mllm.openai.base_url: not set, and judge.backend"):
        validate_config(full | {"judge": {"backend": "openai"}})


def test_cohen_kappa_and_the_agreement_of_two_judge_tables():
    # The textbook case: 50 items, both yes 20, A yes B no 5, A no B yes 10, both no 15.
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(pd.Series(a), pd.Series(b)) == pytest.approx(0.4)
    assert cohen_kappa(pd.Series(["x"] * 3), pd.Series(["x"] * 3)) == 1.0

    ids = [f"p{i}" for i in range(6)]
    first = pd.DataFrame({"pair_id": ids, "keep": [True, True, True, False, False, True],
                          "category": ["pose", "pose", "locomotion", None, None, "pose"],
                          "error": [None] * 6})  # fmt: skip
    second = first.assign(
        keep=[True, True, False, False, None, True],
        category=["pose", "orientation", None, None, None, "pose"],
        error=[None, None, None, None, "schema: category", None],
    )
    out = judge_agreement(first, second, ("gemini", "open"))
    assert out["pairs"] == 6 and out["errors"] == 1
    assert out["keep_agreement"] == pytest.approx(4 / 5)
    assert out["keep_confusion"].loc["True", "False"] == 1
    assert out["kept_by_both"] == 3
    assert out["category_confusion"].loc["pose", "orientation"] == 1


def run_batch_as_vllm_does(source, output, answer) -> None:
    """What `python -m vllm.entrypoints.openai.run_batch -i source -o output` writes: one
    line per input line, the chat completion in response.body (a failed line: its error)."""
    lines = []
    for number, line in enumerate(source.read_text().splitlines()):
        request = json.loads(line)
        assert request["method"] == "POST" and request["url"] == "/v1/chat/completions"
        content = answer(request["body"])
        if content is None:
            response = {"status_code": 400, "request_id": f"vllm-batch-{number}",
                        "body": {"error": {"message": "bad request", "code": 400}}}  # fmt: skip
        else:
            body = completion(content, None, request["body"]["model"], number, "stop")
            response = {"status_code": 200, "request_id": f"vllm-batch-{number}", "body": body}
        lines.append(json.dumps({"id": f"vllm-{number}", "custom_id": request["custom_id"],
                                 "response": response, "error": None}))  # fmt: skip
    output.write_text("\n".join(lines) + "\n")


def test_batch_mode_writes_the_batch_file_and_reads_its_output_back(tmp_path):
    prefilter, frames = shard(tmp_path, 3)
    cfg = config(tmp_path, "http://127.0.0.1:9/v1")  # never called in batch mode
    cfg["mllm"]["mode"] = "batch"
    judge = make_judge(cfg, cfg["mllm"], LOG)
    raw = tmp_path / "judge.raw.jsonl"
    with pytest.raises(MLLMError, match=r"3 questions are in the batch file .*run_batch -i"):
        judge_shard(prefilter, frames, judge, raw, LOG)
    (source,) = (tmp_path / "cache" / "batches").glob("openai-*.jsonl")
    assert [json.loads(line)["body"]["response_format"]["type"]
            for line in source.read_text().splitlines()] == ["json_schema"] * 3  # fmt: skip
    output = source.with_suffix(".output.jsonl")

    def answer(body):  # the second pair's line fails
        first_image = request_image_urls(body)[0]
        return None if first_image == request_image_urls(second)[0] else json.dumps(ANSWER)

    second = json.loads(source.read_text().splitlines()[1])["body"]
    run_batch_as_vllm_does(source, output, answer)
    table = judge_shard(prefilter, frames, make_judge(cfg, cfg["mllm"], LOG), raw, LOG)
    assert sorted(table["reason"]) == ["error:batch", "ok", "ok"]
    assert table["error"].dropna().str.startswith("batch: http 400: bad request").all()

    # The answered two are in the cache now: online, only the failed one is asked.
    with OpenAIStub(answer=lambda body: reply(json.dumps(ANSWER))) as stub:
        cfg = config(tmp_path, stub.url)
        table = judge_shard(prefilter, frames, make_judge(cfg, cfg["mllm"], LOG), raw, LOG)
        assert stub.count == 1
    assert table["reason"].tolist() == ["ok"] * 3


def test_the_open_config_puts_every_mllm_on_one_server():
    full = yaml.safe_load((ROOT / "config.yaml").read_text())
    layer = yaml.safe_load((ROOT / "configs" / "open-mllm.yaml").read_text())
    config = validate_config(layered(full, layer))
    url = config["mllm"]["openai"]["base_url"]
    assert config["rewards"]["mllm"]["base_url"] == url
    assert config["train"]["tiny-nft"]["rewards"] == {"motion": 0.5, "mllm": 0.5, "appearance": 0}
    stages = (config["judge"], config["rewrite"], config["evaluate"]["generative"])
    assert {s["backend"] for s in stages} == {"openai"}
    assert {s["openai"]["model"] for s in stages} == {config["rewards"]["mllm"]["model"]}
