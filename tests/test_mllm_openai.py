"""The OpenAI-compatible caller against a local server that speaks vLLM's wire format."""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys

import pytest
from conftest import MODEL_STACK, ROOT, unimportable
from openai_stub import OpenAIStub, request_image_urls, request_texts
from pydantic import BaseModel
from test_mllm_gemini import VirtualClock

from motionedit.mllm import CallSettings, Image, MLLMError, OpenAICaller, Request, Usage

LOG = logging.getLogger("test-mllm-openai")
KEY_VAR = "MOTIONEDIT_TEST_OPENAI_KEY"


@pytest.fixture(autouse=True)
def _no_key(monkeypatch):
    monkeypatch.delenv(KEY_VAR, raising=False)


@pytest.fixture
def stub():
    with OpenAIStub() as server:
        yield server


def caller(url: str, cache_dir=None, **over) -> OpenAICaller:
    transport = {
        "base_url": url,
        "api_key_env": KEY_VAR,
        "timeout_s": 2,
        "max_attempts": 3,
        "backoff_s": 0.01,
        "concurrency": 4,
        "cache_dir": None if cache_dir is None else str(cache_dir),
    } | over
    return OpenAICaller(transport, LOG, section="test.mllm")


def grade(i: int, max_tokens: int = 1, schema=None) -> Request:
    settings = CallSettings(model="test-vl", max_output_tokens=max_tokens, top_logprobs=5)
    return Request(
        parts=(f"Grade item {i}:", Image(bytes([i]) * 40, "image/png"), "One digit."),
        settings=settings,
        prompt_version="t-v1",
        schema=schema,
        tag=f"item{i}",
    )


def test_the_wire_format_and_what_a_reply_keeps(stub):
    [reply] = caller(stub.url).run([grade(3)], "t")
    body = stub.calls[0]
    assert (body["model"], body["max_tokens"], body["temperature"]) == ("test-vl", 1, 0.0)
    assert body["logprobs"] is True and body["top_logprobs"] == 5
    assert request_texts(body) == ["Grade item 3:", "One digit."]
    [url] = request_image_urls(body)
    assert url.startswith("data:image/png;base64,")
    # A one-token answer stopped by its limit ("length") is a whole answer.
    assert reply.error is None and reply.finish_reason == "length" and reply.text == "4"
    assert [e["token"] for e in reply.top_logprobs] == ["4", "5", "3", " "]
    assert reply.top_logprobs[0]["logprob"] == pytest.approx(math.log(0.6))
    assert reply.usage == Usage(900, 1) and reply.model_version == "test-vl"


def test_the_cache_answers_a_repeated_question_without_a_call(stub, tmp_path):
    first = caller(stub.url, tmp_path / "cache").run([grade(0), grade(1)], "t")
    assert stub.count == 2
    again = caller(stub.url, tmp_path / "cache")
    replies = again.run([grade(1), grade(0), grade(2)], "t")
    assert stub.count == 3 and again.calls_made == 1
    assert [r.cached for r in replies] == [True, True, False]
    # The distribution comes back from the cache too, so a score can be computed from it.
    assert replies[1].top_logprobs == first[0].top_logprobs
    assert replies[0].usage == Usage(900, 1)


def test_without_a_cache_dir_nothing_is_cached_but_equal_questions_are_asked_once(stub, tmp_path):
    replies = caller(stub.url).run([grade(0), grade(0), grade(1)], "t")
    assert stub.count == 2 and [r.text for r in replies] == ["4"] * 3
    caller(stub.url).run([grade(0)], "t")
    assert stub.count == 3
    assert not any(tmp_path.iterdir())


def test_a_429_with_retry_after_is_waited_and_retried(stub):
    stub.queue({"status": 429, "retry_after": "0.4"})
    clock = VirtualClock()
    [reply] = clock.install(caller(stub.url, backoff_s=0.0)).run([grade(0)], "t")
    assert reply.error is None and reply.attempts == 2 and stub.count == 2
    assert clock.now == pytest.approx(0.4)  # the server's Retry-After, and no more


def test_a_retry_after_beyond_the_cap_is_cut_to_it(stub):
    stub.queue({"status": 503, "retry_after": "3600"})
    clock = VirtualClock()
    [reply] = clock.install(caller(stub.url, backoff_s=0.0, max_retry_after_s=0.2)).run(
        [grade(0)], "t"
    )
    assert reply.error is None and stub.count == 2
    assert clock.sleeps == pytest.approx([0.2])


def test_lasting_failures_and_client_errors_are_error_replies(stub):
    stub.queue(*[{"status": 502, "message": "bad gateway"}] * 2, {"status": 400, "message": "no"})
    first, second = caller(stub.url, max_attempts=2, concurrency=1).run([grade(0), grade(1)], "t")
    assert first.error == "http 502: bad gateway (after 2 attempts)" and not first.answered
    assert second.error == "http 400: no" and second.attempts == 1  # not retried
    assert stub.count == 3


def test_a_cut_off_longer_answer_is_an_error_and_a_schema_is_asked_for(stub):
    class Score(BaseModel):
        score: int

    stub.queue(
        {"content": "The edit", "finish": "length"}, {"content": '{"score": 4}', "finish": "stop"}
    )
    cut, parsed = caller(stub.url, concurrency=1).run(
        [grade(0, max_tokens=16), grade(1, max_tokens=16, schema=Score)], "t"
    )
    assert cut.error == "finish: generation stopped with length"
    assert parsed.error is None and parsed.parsed == {"score": 4}
    response_format = stub.calls[1]["response_format"]
    assert response_format["type"] == "json_schema"
    assert set(response_format["json_schema"]["schema"]["properties"]) == {"score"}


def test_a_refused_key_stops_the_run_naming_the_variable(monkeypatch):
    monkeypatch.setenv(KEY_VAR, "sk-wrong-0815")
    with OpenAIStub(api_key="sk-right") as server, pytest.raises(MLLMError) as caught:
        caller(server.url).run([grade(0), grade(1)], "t")
    assert KEY_VAR in str(caught.value) and "test.mllm.api_key_env" in str(caught.value)
    assert "0815" not in str(caught.value)


def test_the_base_url_is_checked():
    with pytest.raises(ValueError, match=r"test\.mllm\.base_url is not set"):
        caller(None)
    with pytest.raises(ValueError, match="http"):
        caller("127.0.0.1:8000/v1")


def test_a_new_setting_leaves_the_keys_of_earlier_requests_alone():
    """top_logprobs joined the settings after Gemini answers were cached under these keys."""

    class A(BaseModel):  # the schema's title is part of the key
        ok: bool

    settings = CallSettings(
        model="gemini-2.5-flash", max_output_tokens=64, media_resolution="medium"
    )
    parts = ("Look:", Image(b"x" * 50), "q")
    gemini = Request(parts=parts, settings=settings, prompt_version="t-v1", schema=A)
    assert gemini.key == "19f5259333dada0f30a4f0ff8e4ddc2a69b468dbd2455cc69bc63edf9a68ef88"
    plain = Request(parts=parts, settings=CallSettings(model="m"), prompt_version="v")
    assert plain.key == "906c9e26d9d21aece231fc5b99613d6f30e20612ebfe9d54dcc4c94a015a1e78"
    asked = CallSettings(model="m", top_logprobs=5)
    assert Request(parts=parts, settings=asked, prompt_version="v").key != plain.key


def test_the_package_imports_without_heavy_libraries(tmp_path):
    """The Snakemake DAG build reads prices through motionedit.mllm: it must not need torch,
    cv2 or pydantic (nor the HTTP clients, which load with the callers)."""
    unimportable(tmp_path)
    script = (
        "import sys\n"
        "from motionedit.mllm import section_pricing, COST_COLUMNS, Request, Outcome\n"
        "import motionedit.mllm.usage\n"
        "import motionedit.retry_after\n"
        "loaded = {'requests', 'google.genai', *" + repr(MODEL_STACK) + "} & set(sys.modules)\n"
        "assert not loaded, loaded\n"
        "print(section_pricing({'backend': 'none'}, {}))\n"
    )
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "None"


def test_reply_bodies_without_choices_are_empty_answers():
    from motionedit.mllm.openai_compatible import response_entry

    entry = response_entry({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 0}})
    assert entry["has_candidates"] is False and entry["top_logprobs"] is None
    assert json.loads(json.dumps(response_entry(["not", "a", "dict"])))["text"] is None
