"""MLLM generative scoring of edits, through the real SDK against the local Gemini server."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import yaml
from conftest import ROOT
from gemini_stub import GeminiStub, motion_answers, request_text
from PIL import Image as PILImage
from test_mllm_gemini import SENTINEL, transport

from motionedit.config import validate_config
from motionedit.evaluate import generative
from motionedit.evaluate.generative import (
    DIMENSIONS,
    GENERATIVE_PROMPTS,
    PROMPT_VERSIONS,
    EditToScore,
    GenerativeScorer,
    overall,
)

LOG = logging.getLogger("test-evaluate-generative")
LABELS = ["Input image:", "Edited image:", "Reference target (for reference only):"]


@pytest.fixture
def key(monkeypatch):
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.setenv("GEMINI_API_KEY", SENTINEL)


def png(path, seed: int) -> str:
    pixels = np.random.default_rng(seed).integers(0, 255, (20, 28, 3), dtype=np.uint8)
    PILImage.fromarray(pixels).save(path)
    return str(path)


def items(tmp_path, n: int) -> list[EditToScore]:
    """``n`` edits, each with its own input, edited and target image and instruction."""
    return [
        EditToScore(
            id=f"s{i}",
            input_path=png(tmp_path / f"in{i}.png", 3 * i),
            edited_path=png(tmp_path / f"ed{i}.png", 3 * i + 1),
            target_path=png(tmp_path / f"tg{i}.png", 3 * i + 2),
            instruction=f"Make the person number {i} raise the left arm.",
        )
        for i in range(n)
    ]


def scorer(tmp_path, url: str, version: str = "gen-v1", with_target: bool = True, gemini=None,
           **mllm) -> GenerativeScorer:  # fmt: skip
    """A scorer with the default Gemini call settings, talking to the local server."""
    defaults = validate_config(yaml.safe_load((ROOT / "config.yaml").read_text()))
    cfg = {
        "backend": "gemini",
        "prompt_version": version,
        "with_target": with_target,
        "gemini": defaults["judge"]["gemini"] | (gemini or {}),
    }
    return GenerativeScorer(cfg, transport(tmp_path, url, **mllm), LOG)


def body_for(stub: GeminiStub, instruction: str) -> dict:
    (body,) = [b for b in stub.calls if instruction in request_text(b)]
    return body


def text_parts(body: dict) -> list[str]:
    return [p["text"] for c in body["contents"] for p in c["parts"] if "text" in p]


def image_parts(body: dict) -> list[str]:
    return [p["inlineData"]["data"] for c in body["contents"] for p in c["parts"]
            if "inlineData" in p]  # fmt: skip


def test_overall_is_the_mean_of_the_three():
    assert overall({"fidelity": 5, "preservation": 4, "coherence": 4}) == 4.3333
    assert overall({"fidelity": 0, "preservation": 3, "coherence": 3}) == 2.0


def test_scores_are_parsed_with_reasons_and_overall_is_their_mean(tmp_path, key):
    edits = items(tmp_path, 4)
    with GeminiStub(answer=motion_answers) as stub:
        outcomes = scorer(tmp_path, stub.url).score_all(edits)
        assert stub.count == 4
        body = body_for(stub, edits[2].instruction)
    assert [o.error for o in outcomes] == [None] * 4
    for outcome in outcomes:
        value = outcome.value
        assert all(isinstance(value[d], int) and 0 <= value[d] <= 5 for d in DIMENSIONS)
        assert value["overall"] == round(sum(value[d] for d in DIMENSIONS) / 3, 4)
        assert set(value["reasons"]) == set(DIMENSIONS)
        assert all(value["reasons"][d].startswith(f"{d} {value[d]} ") for d in DIMENSIONS)
    # The stub rates by the edited image, so different edits get different scores.
    assert len({json.dumps(o.value, sort_keys=True) for o in outcomes}) == 4

    # The request: labelled input, edited and target image, then the prompt with the
    # instruction; the edited image is the second one sent.
    texts = text_parts(body)
    assert texts[:3] == LABELS and len(image_parts(body)) == 3
    assert f"Instruction: {edits[2].instruction}" in texts[3]
    assert set(body["generationConfig"]["responseSchema"]["properties"]) >= set(DIMENSIONS)

    call = outcomes[2].calls[0]
    assert call["tag"] == "s2" and call["prompt_version"] == "gen-v1"
    assert call["model"] == "gemini-2.5-flash" and not call["cached"]
    assert len(call["images"]) == 3 and all(len(h) == 64 for h in call["images"])
    assert SENTINEL not in json.dumps([o.calls for o in outcomes])


def test_without_target_only_input_and_edited_are_sent(tmp_path, key):
    edits = items(tmp_path, 2)
    edits[1].target_path = None
    with GeminiStub(answer=motion_answers) as stub:
        outcomes = scorer(tmp_path, stub.url, with_target=False).score_all(edits[:1])
        outcomes += scorer(tmp_path, stub.url).score_all(edits[1:])
        bodies = [body_for(stub, e.instruction) for e in edits]
    assert [o.error for o in outcomes] == [None, None]
    for body, outcome in zip(bodies, outcomes, strict=True):
        assert text_parts(body)[:2] == LABELS[:2] and len(image_parts(body)) == 2
        assert LABELS[2] not in request_text(body)
        assert len(outcome.calls[0]["images"]) == 2


def test_a_rerun_is_answered_from_the_cache(tmp_path, key):
    edits = items(tmp_path, 3)
    with GeminiStub(answer=motion_answers) as stub:
        first = scorer(tmp_path, stub.url).score_all(edits)
        assert stub.count == 3
        again = scorer(tmp_path, stub.url).score_all(edits)
        assert stub.count == 3
    assert [o.value for o in again] == [o.value for o in first]
    assert [o.error for o in again] == [None] * 3
    assert all(o.calls[0]["cached"] for o in again)
    assert [o.calls[0]["key"] for o in again] == [o.calls[0]["key"] for o in first]


def test_equal_questions_in_one_run_are_asked_once(tmp_path, key):
    edits = items(tmp_path, 1)
    twin = EditToScore("twin", edits[0].input_path, edits[0].edited_path,
                       edits[0].target_path, edits[0].instruction)  # fmt: skip
    with GeminiStub(answer=motion_answers) as stub:
        outcomes = scorer(tmp_path, stub.url).score_all([edits[0], twin])
        assert stub.count == 1
    assert outcomes[0].value == outcomes[1].value is not None


@pytest.mark.parametrize("max_image_side", [1024, None])
def test_unusable_images_are_errors_of_their_item_only(tmp_path, key, max_image_side):
    edits = items(tmp_path, 5)
    (tmp_path / "ed0.png").unlink()
    edits[1].edited_path = None
    (tmp_path / "tg2.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (tmp_path / "in3.png").write_bytes(b"")
    with GeminiStub(answer=motion_answers) as stub:
        cfg = {"max_image_side": max_image_side}
        outcomes = scorer(tmp_path, stub.url, gemini=cfg).score_all(edits)
        assert stub.count == 1
    errors = [o.error for o in outcomes]
    assert errors[0].startswith("images: edited image:") and "ed0.png" in errors[0]
    assert errors[1] == "images: no edited image (the model produced none)"
    assert errors[2].startswith("images: target image:") and "tg2.png" in errors[2]
    assert errors[3].startswith("images: input image:") and "in3.png" in errors[3]
    assert [o.calls for o in outcomes[:4]] == [[]] * 4
    assert [o.value for o in outcomes[:4]] == [None] * 4
    assert errors[4] is None and outcomes[4].value["overall"] >= 0


def test_refusals_and_bad_answers_are_errors_not_scores(tmp_path, key):
    edits = items(tmp_path, 5)
    seven = {"fidelity_reason": "x", "fidelity": 7, "preservation_reason": "y",
             "preservation": 4, "coherence_reason": "z", "coherence": 4}  # fmt: skip
    with GeminiStub(answer=motion_answers) as stub:
        stub.script.extend(
            [{"text": json.dumps(seven)}, {"text": "not json"}, {"finish": "SAFETY"},
             {"status": 400, "message": "bad image"}, {}]
        )  # fmt: skip
        outcomes = scorer(tmp_path, stub.url, concurrency=1).score_all(edits)
        assert stub.count == 5  # none of these is retried
    errors = [o.error for o in outcomes]
    assert errors[0].startswith("schema: fidelity:") and "less than or equal to 5" in errors[0]
    assert errors[1].startswith("schema: ")
    assert errors[2].startswith("finish: generation stopped with SAFETY")
    assert errors[3].startswith("http 400")
    assert errors[4] is None and outcomes[4].value is not None
    assert all(o.value is None for o in outcomes[:4])
    assert [len(o.calls) for o in outcomes] == [1] * 5
    assert outcomes[0].calls[0]["answer"] == json.dumps(seven)
    assert outcomes[2].calls[0]["error"] == errors[2]


def test_the_prompt_version_is_part_of_the_cache_key(tmp_path, key, monkeypatch):
    monkeypatch.setitem(GENERATIVE_PROMPTS, "gen-test", GENERATIVE_PROMPTS["gen-v1"])
    edits = items(tmp_path, 1)
    with GeminiStub(answer=motion_answers) as stub:
        first = scorer(tmp_path, stub.url).score_all(edits)
        second = scorer(tmp_path, stub.url, version="gen-test").score_all(edits)
        assert stub.count == 2
        third = scorer(tmp_path, stub.url, version="gen-test").score_all(edits)
        assert stub.count == 2
    assert first[0].calls[0]["key"] != second[0].calls[0]["key"] == third[0].calls[0]["key"]
    assert second[0].calls[0]["prompt_version"] == "gen-test" and third[0].calls[0]["cached"]


def test_every_prompt_version_has_a_prompt_with_the_instruction_only():
    assert (*GENERATIVE_PROMPTS, *generative.EDITSCORE_VERSIONS) == PROMPT_VERSIONS
    for text in GENERATIVE_PROMPTS.values():
        filled = text.format(instruction="Make the dog sit.")
        assert "Instruction: Make the dog sit." in filled and "{" not in filled
        assert all(d.capitalize() + ":" in filled for d in DIMENSIONS)
        assert "pixel for pixel" in filled
