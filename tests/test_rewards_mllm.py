"""The MLLM reward against a local server that speaks vLLM's chat-completions format."""

from __future__ import annotations

import math
import re
import socket
import threading

import pytest
import yaml
from openai_stub import OpenAIStub, decode_data_uri, request_image_urls, request_texts
from PIL import Image
from test_mllm_gemini import Held, VirtualClock

from motionedit.config import SCHEMA_PATH, validate_config
from motionedit.rewards.mllm import (
    DEFAULT_MODEL,
    DEFAULT_PROMPT_VERSION,
    DEFAULT_REFERENCE,
    PROMPTS,
    REFERENCES,
    MLLMReward,
    RewardServerError,
    expected_score,
    make_mllm_reward,
    parse_reply,
)

KEY_VAR = "MOTIONEDIT_TEST_MLLM_KEY"
DEFAULT_REWARD = (0.6 * 4 + 0.3 * 5 + 0.1 * 3) / 5


@pytest.fixture(autouse=True)
def _no_key(monkeypatch):
    monkeypatch.delenv(KEY_VAR, raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


@pytest.fixture
def stub():
    with OpenAIStub() as server:
        yield server


def images(n: int, size: tuple[int, int] = (40, 30)) -> list[Image.Image]:
    return [Image.new("RGB", size, (40 * i % 256, 90, 200 - 30 * i % 200)) for i in range(n)]


def reward(url: str, **cfg) -> MLLMReward:
    settings = {
        "base_url": url,
        "api_key_env": KEY_VAR,
        "timeout_s": 2,
        "max_attempts": 3,
        "backoff_s": 0.01,
        "concurrency": 4,
    }
    settings.update(cfg)
    return MLLMReward(settings)


def score_one(r: MLLMReward, instruction: str = "Raise the left arm.") -> float | None:
    return r.score(images(1), images(1), [instruction])[0]


# ---------------------------------------------------------------- the score
def test_expected_score_from_the_digit_logprobs(stub):
    r = reward(stub.url)
    assert score_one(r) == pytest.approx(DEFAULT_REWARD)
    assert r.last_errors == [None]


def test_digits_renormalised_when_they_carry_part_of_the_mass(stub):
    top = [
        ("The", math.log(0.4)),
        ("4", math.log(0.3)),
        (" 4", math.log(0.05)),  # the same digit with a leading space
        ("2", math.log(0.1)),
        ("9", math.log(0.1)),  # not on the scale
        ("\n", math.log(0.05)),
    ]
    stub.queue({"content": "The", "top_logprobs": top})
    expected = (0.35 * 4 + 0.1 * 2) / 0.45 / 5
    assert score_one(reward(stub.url)) == pytest.approx(expected)


def test_expected_score_and_parse_reply_without_a_server():
    assert expected_score([{"token": "5", "logprob": 0.0}]) == pytest.approx(5.0)
    assert expected_score([{"token": "a", "logprob": 0.0}]) is None
    assert expected_score([{"token": "3", "logprob": -math.inf}]) is None
    value, why = parse_reply({"choices": []})
    assert value is None and why.startswith("bad reply")
    assert parse_reply({"choices": [{"message": {"content": None}}]}) == (
        None,
        "no digit in the reply: ",
    )


def test_text_fallback_when_the_server_sends_no_logprobs(stub):
    stub.queue({"content": "3", "logprobs": None})
    r = reward(stub.url)
    assert score_one(r) == pytest.approx(0.6)
    assert r.last_errors == [None]


def test_text_fallback_when_no_digit_is_among_the_logprobs(stub):
    stub.queue({"content": "Score: 2", "top_logprobs": [("Score", -0.1), (" ", -3.0)]})
    assert score_one(reward(stub.url)) == pytest.approx(0.4)


def test_a_reply_without_a_digit_is_none_with_the_reason(stub):
    stub.queue({"content": "I think it is good", "top_logprobs": []})
    r = reward(stub.url)
    assert score_one(r) is None
    assert r.last_errors == ["no digit in the reply: I think it is good"]


def test_one_bad_item_leaves_the_others_scored(stub):
    stub.queue({}, {"content": "unsure", "logprobs": None}, {})
    r = reward(stub.url, concurrency=1)
    rewards = r.score(images(3), images(3), ["a", "b", "c"])
    assert rewards[0] == pytest.approx(DEFAULT_REWARD)
    assert rewards[1] is None
    assert rewards[2] == pytest.approx(DEFAULT_REWARD)
    assert r.last_errors[0] is None and r.last_errors[2] is None
    assert r.last_errors[1].startswith("no digit in the reply: unsure")


# ---------------------------------------------------------------- failures
def test_a_server_error_is_retried(stub):
    stub.queue({"status": 500})
    r = reward(stub.url)
    assert score_one(r) == pytest.approx(DEFAULT_REWARD)
    assert stub.count == 2
    assert r.last_errors == [None]


def test_a_lasting_server_error_gives_none_after_the_last_attempt(stub):
    stub.queue(*[{"status": 500, "message": "engine dead"}] * 3)
    r = reward(stub.url, max_attempts=3)
    assert score_one(r) is None
    assert stub.count == 3
    assert r.last_errors == ["http 500: engine dead"]


def test_retry_after_is_honoured(stub):
    stub.queue({"status": 429, "retry_after": "0.3"})
    r = reward(stub.url, backoff_s=0.0)
    clock = VirtualClock()
    clock.install(r.caller)
    assert score_one(r) == pytest.approx(DEFAULT_REWARD)
    assert stub.count == 2
    assert clock.now == pytest.approx(0.3)  # the server's Retry-After


def test_a_client_error_is_not_retried(stub):
    stub.queue({"status": 400, "message": "prompt too long"})
    r = reward(stub.url)
    assert score_one(r) is None
    assert stub.count == 1
    assert r.last_errors == ["http 400: prompt too long"]


def test_a_hang_past_the_timeout_is_retried(stub):
    stub.queue({"hang": 1.0})
    r = reward(stub.url, timeout_s=0.3)
    assert score_one(r) == pytest.approx(DEFAULT_REWARD)
    assert stub.count == 2


def test_a_lasting_hang_gives_none_with_timeout():
    held = Held(lambda body: {})
    with OpenAIStub(held) as server:
        try:
            r = reward(server.url, timeout_s=0.3, max_attempts=2)
            assert score_one(r) is None
            assert held.answered == 0  # both tries given up while the server still held them
        finally:
            held.release.set()
        assert server.count == 2 and r.last_errors[0].startswith("timeout")


def test_an_unreachable_server_gives_none_with_connection():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = reward(f"http://127.0.0.1:{port}/v1", max_attempts=2)
    assert score_one(r) is None
    assert r.last_errors[0].startswith("connection")


def test_a_refused_key_raises_without_showing_it(monkeypatch):
    secret = "sk-wrong-secret-4711"
    monkeypatch.setenv(KEY_VAR, secret)
    with OpenAIStub(api_key="sk-right") as server:
        r = reward(server.url)
        with pytest.raises(RewardServerError) as caught:
            r.score(images(3), images(3), ["a", "b", "c"])
    message = str(caught.value)
    assert isinstance(caught.value, RuntimeError)
    assert secret not in message and "4711" not in message
    assert KEY_VAR in message and "401" in message
    assert "refused the key" in message


def test_a_missing_key_raises_naming_the_variable():
    with OpenAIStub(api_key="sk-right") as server:
        with pytest.raises(RewardServerError, match=f"{KEY_VAR} is not set"):
            score_one(reward(server.url))
        assert server.count == 0  # refused before the body was read


def test_forbidden_raises(stub):
    stub.queue({"status": 403})
    with pytest.raises(RewardServerError, match="403"):
        score_one(reward(stub.url))


# ---------------------------------------------------------------- the request
INPUT, EDIT, TARGET = (200, 10, 10), (10, 200, 10), (10, 10, 200)


def coloured(colour: tuple[int, int, int], n: int = 1) -> list[Image.Image]:
    return [Image.new("RGB", (40, 30), colour) for _ in range(n)]


def shown_colours(body: dict) -> list[tuple[int, int, int]]:
    return [
        decode_data_uri(url).convert("RGB").getpixel((0, 0)) for url in request_image_urls(body)
    ]


def part_kinds(body: dict) -> list[str]:
    return [part["type"] for part in body["messages"][0]["content"]]


def test_the_default_shows_input_and_edit_then_the_instruction_not_the_target(stub):
    """As the released reward (elainew728/motion-edit train/reward_server/reward_server.py):
    the input, the edit, one text with the instruction and the 0-5 scale; the target is not
    sent even when the dataset has one, and the reward is the expected digit over 5."""
    top = [("3", math.log(0.5)), ("5", math.log(0.2)), ("0", math.log(0.1)), ("1", math.log(0.1))]
    top += [("2", math.log(0.05)), ("4", math.log(0.04)), ("Score", math.log(0.01))]
    stub.queue({"content": "3", "top_logprobs": top})
    r = reward(stub.url)
    instruction = "Turn the cat to face left."
    rewards = r.score(coloured(INPUT), coloured(EDIT), [instruction], coloured(TARGET))
    expected = (0.5 * 3 + 0.2 * 5 + 0.1 * 0 + 0.1 * 1 + 0.05 * 2 + 0.04 * 4) / 0.99 / 5
    assert rewards[0] == pytest.approx(expected)
    assert r.last_errors == [None]
    body = stub.calls[0]
    assert part_kinds(body) == ["image_url", "image_url", "text"]
    assert shown_colours(body) == [INPUT, EDIT]
    [text] = request_texts(body)
    assert f"Instruction: {instruction}" in text
    assert "two images" in text and "the original" in text and "edited version" in text
    assert "0 to 5" in text and "single digit" in text
    assert text == PROMPTS["mllm-reward-v2"]["question"].format(instruction=instruction)
    assert body["max_tokens"] == 1 and body["logprobs"] is True and body["top_logprobs"] == 20


def test_reference_target_also_shows_the_target_after_the_edit(stub):
    r = reward(stub.url, reference="target")
    rewards = r.score(coloured(INPUT), coloured(EDIT), ["Sit down."], coloured(TARGET))
    assert rewards[0] == pytest.approx(DEFAULT_REWARD)
    body = stub.calls[0]
    assert part_kinds(body) == ["image_url", "image_url", "image_url", "text"]
    assert shown_colours(body) == [INPUT, EDIT, TARGET]
    [text] = request_texts(body)
    assert "three images" in text and "reference" in text and "Instruction: Sit down." in text


def test_reference_target_without_targets(stub):
    r = reward(stub.url, reference="target", concurrency=1)
    with pytest.raises(ValueError, match="reference is 'target'"):
        r.score(coloured(INPUT), coloured(EDIT), ["Sit down."])
    assert stub.count == 0
    rewards = r.score(coloured(INPUT, 2), coloured(EDIT, 2), ["a", "b"], [None, *coloured(TARGET)])
    assert rewards[0] is None and r.last_errors[0].startswith("no target image")
    assert rewards[1] == pytest.approx(DEFAULT_REWARD) and r.last_errors[1] is None
    assert stub.count == 1 and shown_colours(stub.calls[0]) == [INPUT, EDIT, TARGET]


def test_the_v1_wording_with_and_without_the_target(stub):
    r = reward(stub.url, prompt_version="mllm-reward-v1")
    r.score(coloured(INPUT), coloured(EDIT), ["Wave."], coloured(TARGET))
    assert part_kinds(stub.calls[0]) == ["text", "text", "image_url", "text", "image_url", "text"]
    assert shown_colours(stub.calls[0]) == [INPUT, EDIT]
    r = reward(stub.url, prompt_version="mllm-reward-v1", reference="target")
    r.score(coloured(INPUT), coloured(EDIT), ["Wave."], coloured(TARGET))
    assert shown_colours(stub.calls[1]) == [INPUT, EDIT, TARGET]
    texts = request_texts(stub.calls[1])
    assert texts[0] == PROMPTS["mllm-reward-v1"]["task"].format(instruction="Wave.")
    assert texts[1:4] == [PROMPTS["mllm-reward-v1"][k] for k in ("input", "edited", "target")]
    assert texts[-1] == PROMPTS["mllm-reward-v1"]["rubric"]


def test_the_request_wire_format(stub, monkeypatch):
    monkeypatch.setenv(KEY_VAR, "sk-test")
    r = reward(
        stub.url,
        model="test-model",
        top_logprobs=5,
        max_image_side=20,
        prompt_version="mllm-reward-v1",
        reference="target",
    )
    rewards = r.score(images(1), images(1), ["Turn the cat to face left."], images(1))
    assert rewards[0] == pytest.approx(DEFAULT_REWARD)
    assert stub.paths == ["/v1/chat/completions"]
    body = stub.calls[0]
    assert body["model"] == "test-model"
    assert body["max_tokens"] == 1
    assert body["temperature"] == 0
    assert body["logprobs"] is True
    assert body["top_logprobs"] == 5
    assert [m["role"] for m in body["messages"]] == ["user"]
    kinds = part_kinds(body)
    assert kinds == ["text", "text", "image_url", "text", "image_url", "text", "image_url", "text"]
    urls = request_image_urls(body)
    assert len(urls) == 3
    for url in urls:
        assert url.startswith("data:image/png;base64,")
        assert decode_data_uri(url).size == (20, 15)  # 40x30 fitted into 20, aspect kept
    texts = request_texts(body)
    assert "Turn the cat to face left." in texts[0]
    assert "single digit" in texts[-1]
    assert stub.authorizations == ["Bearer sk-test"]


def test_two_images_without_targets_and_no_header_without_a_key(stub):
    r = reward(stub.url)
    r.score(images(1), [Image.new("RGBA", (40, 30))], ["Sit down."])
    body = stub.calls[0]
    urls = request_image_urls(body)
    assert len(urls) == 2
    assert decode_data_uri(urls[1]).size == (40, 30)  # small images are not enlarged
    assert body["model"] == DEFAULT_MODEL
    assert body["top_logprobs"] == 20
    assert stub.authorizations == [None]


def test_the_key_comes_from_openai_api_key_by_default(stub, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-default")
    MLLMReward({"base_url": stub.url + "/"}).score(images(1), images(1), ["Jump."])
    assert stub.authorizations == ["Bearer sk-default"]


def test_results_keep_input_order_when_answers_arrive_out_of_order():
    """Item i is answered only once items above it were (or after 1.5 s, below the 2 s
    timeout): with the four in flight together the answers go out 3, 2, 1, 0; a caller that
    sent them one at a time would see them answered in order."""
    finished: list[int] = []
    done = threading.Condition()

    def answer(body):
        item = int(re.search(r"item (\d)", request_texts(body)[0]).group(1))
        with done:
            done.wait_for(lambda: set(range(item + 1, 4)) <= set(finished), timeout=1.5)
            finished.append(item)
            done.notify_all()
        return {"content": str(item), "top_logprobs": [(str(item), 0.0)]}

    with OpenAIStub(answer) as server:
        r = reward(server.url, concurrency=4)
        rewards = r.score(images(4), images(4), [f"Move item {i}." for i in range(4)])
    assert rewards == pytest.approx([0.0, 0.2, 0.4, 0.6])
    assert r.last_errors == [None] * 4
    assert finished == [3, 2, 1, 0]


# ---------------------------------------------------------------- configuration
def test_configuration_errors():
    with pytest.raises(ValueError, match=r"rewards\.mllm\.base_url"):
        MLLMReward({})
    with pytest.raises(ValueError, match="prompt_version"):
        MLLMReward({"base_url": "http://127.0.0.1:1/v1", "prompt_version": "nope"})
    with pytest.raises(ValueError, match="reference"):
        MLLMReward({"base_url": "http://127.0.0.1:1/v1", "reference": "gt"})
    with pytest.raises(ValueError, match="http"):
        MLLMReward({"base_url": "127.0.0.1:8000/v1"})
    r = MLLMReward({"base_url": "http://127.0.0.1:1/v1"})
    with pytest.raises(ValueError, match="one length"):
        r.score(images(2), images(1), ["a", "b"])
    assert r.score([], [], []) == [] and r.last_errors == []


def test_defaults():
    r = MLLMReward({"base_url": "http://127.0.0.1:8000/v1/"})
    assert r.name == "mllm"
    assert r.url == "http://127.0.0.1:8000/v1/chat/completions"
    assert (r.model, r.api_key_env, r.prompt_version, r.reference) == (
        DEFAULT_MODEL,
        "OPENAI_API_KEY",
        "mllm-reward-v2",
        "none",
    )
    assert (r.timeout_s, r.max_attempts, r.backoff_s) == (60, 3, 1.0)
    assert (r.concurrency, r.top_logprobs, r.max_image_side) == (8, 20, 512)
    assert r.prompt_version in PROMPTS


def test_the_schema_offers_every_prompt_version_and_reference_with_the_same_defaults():
    schema = yaml.safe_load(SCHEMA_PATH.read_text())["properties"]
    mllm = schema["rewards"]["properties"]["mllm"]["properties"]
    assert mllm["prompt_version"]["enum"] == list(PROMPTS)
    assert mllm["prompt_version"]["default"] == DEFAULT_PROMPT_VERSION == "mllm-reward-v2"
    assert mllm["reference"]["enum"] == list(REFERENCES)
    assert mllm["reference"]["default"] == DEFAULT_REFERENCE == "none"
    for version, texts in PROMPTS.items():
        layout = {"question", "question_with_target"} if "question" in texts else None
        layout = layout or {"task", "input", "edited", "target", "rubric"}
        assert set(texts) == layout, version


def test_the_factory_passes_the_configured_block():
    sources = [{"name": "s", "kind": "synthetic"}]
    block = {"base_url": "http://127.0.0.1:1/v1", "reference": "target"}
    config = validate_config({"sources": sources, "rewards": {"mllm": block}})
    r = make_mllm_reward(config, None)
    assert (r.reference, r.prompt_version) == ("target", "mllm-reward-v2")
