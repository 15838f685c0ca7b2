"""EditScore-style generative scores (``editscore-v1``): two questions per edit, through the
real google-genai SDK and the OpenAI-compatible client against local servers, reduced to
the benchmark's dimensions the same way for every backend."""

from __future__ import annotations

import json
import logging
import math

import pytest
from gemini_stub import GeminiStub, motion_answers
from openai_stub import OpenAIStub, open_model_answers, request_image_urls, request_texts
from test_evaluate_generative import body_for, image_parts, items, key, scorer, text_parts
from test_evaluate_scores import make_bench, predictions, scene, score
from test_mllm_open_models import config, reply, run_batch_as_vllm_does

from motionedit.evaluate.editscore import (
    QUALITY_PROMPT,
    SCORE_RANGE,
    consistency_prompt,
    editscore_scores,
)
from motionedit.evaluate.generative import DIMENSIONS, GenerativeScorer, overall
from motionedit.mllm import MLLMError

LOG = logging.getLogger("test-evaluate-editscore")
assert key  # the fixture, used by name


def test_the_reduction_to_the_benchmark_scale_and_editscores_overall():
    scores = editscore_scores(
        {"reasoning": " raised ", "score": [25, 20]}, {"reasoning": "ok", "score": [15, 10]}
    )
    # Each 0-25 score is a 0-5 dimension; perceptual quality is the lower of the two.
    assert (scores["fidelity"], scores["preservation"], scores["coherence"]) == (5.0, 4.0, 2.0)
    # EditScore's own overall: sqrt(min(SC) * min(PQ)) on 0-10.
    assert scores["editscore"] == round(math.sqrt(8.0 * 4.0), 4)
    assert scores["reasons"] == {"consistency": "raised", "quality": "ok"}
    assert overall(scores) == 3.6667  # the paper's Overall, as for every prompt


def test_the_consistency_prompt_takes_the_instruction_and_keeps_its_answer_line():
    filled = consistency_prompt(" Make the {dog} sit. ")
    assert "Instruction: Make the {dog} sit.\n" in filled
    assert filled.endswith('"score": [<prompt following>, <consistency>]}')
    assert "{" not in QUALITY_PROMPT.split("in this form:")[0]
    assert "Instruction" not in QUALITY_PROMPT


def test_two_questions_per_edit_the_second_on_the_edit_alone(tmp_path, key):
    edits = items(tmp_path, 3)
    with GeminiStub(answer=motion_answers) as stub:
        outcomes = scorer(tmp_path, stub.url, version="editscore-v1").score_all(edits)
        assert stub.count == 6
        consistency = body_for(stub, edits[1].instruction)
        quality = [b for b in stub.calls if "Instruction:" not in text_parts(b)[-1]]
    assert [o.error for o in outcomes] == [None] * 3
    # Consistency: input then edit, no labels, no target, then the prompt with the
    # instruction; the answer schema is EditScore's.
    images = image_parts(consistency)
    assert len(images) == 2 and len(text_parts(consistency)) == 1
    assert f"Instruction: {edits[1].instruction}" in text_parts(consistency)[0]
    schema = consistency["generationConfig"]["responseSchema"]
    assert set(schema["properties"]) == {"reasoning", "score"}
    # Quality: the edit alone, once per edit, and no instruction anywhere.
    assert len(quality) == 3 and all(len(image_parts(b)) == 1 for b in quality)
    assert images[1] in [image_parts(b)[0] for b in quality]
    assert not any(e.instruction in json.dumps(b) for b in quality for e in edits)

    for outcome in outcomes:
        value, calls = outcome.value, outcome.calls
        assert [c["prompt_version"] for c in calls] == ["editscore-v1"] * 2
        assert [len(c["images"]) for c in calls] == [2, 1]
        assert set(value) == {*DIMENSIONS, "overall", "editscore", "reasons"}
        assert all(0 <= value[d] <= 5 for d in DIMENSIONS)
        assert value["overall"] == overall(value) and 0 <= value["editscore"] <= 10
        answers = [json.loads(c["answer"]) for c in calls]
        assert value == editscore_scores(*answers) | {"overall": value["overall"]}
    assert len({o.value["overall"] for o in outcomes}) > 1

    with GeminiStub(answer=motion_answers) as stub:  # a rerun asks nothing
        again = scorer(tmp_path, stub.url, version="editscore-v1").score_all(edits)
        assert stub.count == 0
    assert [o.value for o in again] == [o.value for o in outcomes]


def test_either_question_failing_makes_an_error_row_that_costs_both_calls(tmp_path, key):
    edits = items(tmp_path, 3)
    high = {"reasoning": "great", "score": [SCORE_RANGE + 5, 20]}
    one = {"reasoning": "one score", "score": [20]}
    with GeminiStub(answer=motion_answers) as stub:
        # Asked in order: the three consistency questions, then the three quality ones.
        stub.script.extend([{"text": json.dumps(high)}, {}, {}, {}, {"text": json.dumps(one)}])
        outcomes = scorer(tmp_path, stub.url, concurrency=1, version="editscore-v1").score_all(
            edits
        )
        assert stub.count == 6
    first, second, third = outcomes
    assert first.error.startswith("schema: score.0:") and "less than or equal to 25" in first.error
    assert second.error.startswith("schema: score:") and "at least 2" in second.error
    assert third.error is None and third.value["overall"] >= 0
    assert first.value is None and second.value is None
    assert [len(o.calls) for o in outcomes] == [2, 2, 2]

    # No edit, or an input that does not decode: both questions fail alike, say so once,
    # and neither is asked.
    edits[0].edited_path = None
    (tmp_path / "in1.png").write_bytes(b"")
    with GeminiStub(answer=motion_answers) as stub:
        outcomes = scorer(tmp_path, stub.url, version="editscore-v1").score_all(edits[:2])
        assert stub.count == 0
    assert outcomes[0].error == "images: no edited image (the model produced none)"
    assert outcomes[1].error.startswith("images: input image:") and ";" not in outcomes[1].error
    assert [o.calls for o in outcomes] == [[], []]


def test_an_editscore_model_behind_an_open_server(tmp_path):
    """Float scores in a code fence, as an EditScore model answers; the same dimensions and
    Overall as Gemini's, with the backend's own calls."""
    edits = items(tmp_path, 2)
    with OpenAIStub(answer=open_model_answers) as stub:
        cfg = config(tmp_path, stub.url)["evaluate"]["generative"] | {
            "prompt_version": "editscore-v1"
        }
        transport = config(tmp_path, stub.url)["mllm"]
        outcomes = GenerativeScorer(cfg, transport, LOG).score_all(edits)
        assert stub.count == 4
        counts = sorted(len(request_image_urls(b)) for b in stub.calls)
        texts = ["\n".join(request_texts(b)) for b in stub.calls]
        formats = {b["response_format"]["json_schema"]["name"] for b in stub.calls}
    assert counts == [1, 1, 2, 2] and formats == {"EditScoreAnswer"}
    assert sum(edits[0].instruction in t for t in texts) == 1
    assert [o.error for o in outcomes] == [None, None]
    for outcome in outcomes:
        answers = [json.loads(c["answer"].strip("`json\n")) for c in outcome.calls]
        assert all(isinstance(s, float) for a in answers for s in a["score"])
        assert outcome.value == editscore_scores(*answers) | {"overall": overall(outcome.value)}

    with OpenAIStub() as stub:  # prose around it is read too (a fresh cache: asked again)
        stub.queue(reply('Here you go: {"reasoning": "arm up", "score": [20, 25]} Done.'))
        stub.queue(reply('{"reasoning": "clean", "score": [25, 22.5]}'))
        gen = config(tmp_path / "fresh", stub.url)
        cfg = gen["evaluate"]["generative"] | {"prompt_version": "editscore-v1"}
        scorer_ = GenerativeScorer(cfg, gen["mllm"] | {"concurrency": 1}, LOG)
        (outcome,) = scorer_.score_all([edits[1]])
    assert outcome.value["fidelity"] == 4.0 and outcome.value["coherence"] == 4.5


def test_score_rows_keep_the_prompt_and_editscores_overall(tmp_path, key):
    """``scores.parquet`` from ``score_model``: editscore-v1 rows fill ``editscore`` and
    cost both calls; gen-v1 rows leave it empty; both keep backend, model and version."""
    bench = make_bench(tmp_path / "bench")
    outputs = predictions(tmp_path, bench, "model", {"s00": scene(10), "s01": scene(4)})
    pricing = {"price": {"input": 0.3, "output": 2.5}, "batch_discount": 0.5}
    tables = {}
    with GeminiStub(answer=motion_answers) as stub:
        for version in ("gen-v1", "editscore-v1"):
            tables[version] = score(
                tmp_path, bench, outputs, pricing=pricing,
                scorer=scorer(tmp_path, stub.url, version=version),
            ).loc[["s00", "s01"]]  # fmt: skip
        assert stub.count == 2 + 2 * 2
    gen, edit = tables["gen-v1"], tables["editscore-v1"]
    assert gen["editscore"].isna().all() and edit["editscore"].notna().all()
    assert (edit["prompt_version"] == "editscore-v1").all()
    assert (edit["mllm_backend"] == "gemini").all() and (edit["mllm_error"] == "").all()
    assert edit["overall"].tolist() == [
        overall(r) for r in edit[list(DIMENSIONS)].to_dict("records")
    ]
    # Two calls' worth of tokens per row.
    assert (edit["input_tokens"] > gen["input_tokens"]).all()


def test_batch_mode_puts_both_questions_in_one_file(tmp_path):
    """An open server's batch run: one file holds each edit's two questions, and the
    output vLLM's run_batch writes is read back into the same scores as online."""
    edits = items(tmp_path, 2)
    gen = config(tmp_path, "http://127.0.0.1:9/v1")  # never called in batch mode
    cfg = gen["evaluate"]["generative"] | {"prompt_version": "editscore-v1"}
    batch = gen["mllm"] | {"mode": "batch"}
    with pytest.raises(MLLMError, match=r"4 questions are in the batch file"):
        GenerativeScorer(cfg, batch, LOG).score_all(edits)
    (source,) = (tmp_path / "cache" / "batches").glob("openai-*.jsonl")
    bodies = [json.loads(line)["body"] for line in source.read_text().splitlines()]
    assert sorted(len(request_image_urls(b)) for b in bodies) == [1, 1, 2, 2]

    run_batch_as_vllm_does(
        source, source.with_suffix(".output.jsonl"), lambda b: open_model_answers(b)["content"]
    )
    outcomes = GenerativeScorer(cfg, batch, LOG).score_all(edits)
    assert [o.error for o in outcomes] == [None, None]
    with OpenAIStub(answer=open_model_answers) as stub:  # online, all from the cache
        server = gen["mllm"]["openai"] | {"base_url": stub.url}
        online = GenerativeScorer(cfg, gen["mllm"] | {"openai": server}, LOG)
        assert [o.value for o in online.score_all(edits)] == [o.value for o in outcomes]
        assert stub.count == 0
