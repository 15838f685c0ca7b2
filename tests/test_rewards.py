"""The reward mix MotionNFT trains on: components, weights, and gaps where a server failed."""

from __future__ import annotations

import math

import numpy as np
import pytest
from openai_stub import OpenAIStub
from PIL import Image

from motionedit.config import validate_config
from motionedit.rewards import RewardMix, make_rewards
from motionedit.rewards.appearance import AppearanceReward


def frames(n, value):
    return [Image.fromarray(np.full((24, 32, 3), value + 10 * i, np.uint8)) for i in range(n)]


def config(**rewards):
    return validate_config({"sources": [{"name": "s", "kind": "synthetic"}], "rewards": rewards})


def test_appearance_is_one_for_the_target_and_falls_with_the_error():
    reward = AppearanceReward(scale=0.25)
    targets = frames(3, 100)
    edited = [
        targets[0],
        Image.fromarray(np.full((24, 32, 3), 110 + 32, np.uint8)),
        frames(1, 255)[0],
    ]
    values = reward.score(frames(3, 0), edited, ["p"] * 3, targets)
    assert values[0] == 1.0
    assert values[1] == pytest.approx(1 - (32 / 255) / 0.25, abs=1e-6)
    assert values[2] == 0.0  # an error of a quarter of the range or more
    # An edit at another size is compared with the target resized to it.
    small = [t.resize((16, 12)) for t in targets]
    assert reward.score(frames(3, 0), small, ["p"] * 3, targets)[0] == pytest.approx(1.0, abs=1e-6)


def test_the_mix_normalises_weights_and_leaves_a_gap_where_the_mllm_failed():
    with OpenAIStub() as server:
        server.queue({}, {"content": "no idea", "top_logprobs": []}, {})
        cfg = config(mllm={"base_url": server.url, "concurrency": 1, "backoff_s": 0.01})
        mix = make_rewards({"appearance": 1.0, "mllm": 3.0, "motion": 0.0}, cfg)
        assert isinstance(mix, RewardMix) and mix.weights == {"appearance": 0.25, "mllm": 0.75}
        targets = frames(3, 60)
        scores = mix(frames(3, 0), targets, ["Raise the arm."] * 3, targets)
    mllm = (0.6 * 4 + 0.3 * 5 + 0.1 * 3) / 5
    assert scores.total[0].item() == pytest.approx(0.25 + 0.75 * mllm)
    assert math.isnan(scores.total[1].item()) and scores.errors[1].startswith("mllm: no digit")
    assert scores.parts["appearance"].tolist() == [1.0, 1.0, 1.0]


def test_unknown_rewards_and_empty_weights_are_refused():
    with pytest.raises(ValueError, match="unknown reward"):
        make_rewards({"clip": 1.0}, config())
    with pytest.raises(ValueError, match="more than 0"):
        RewardMix({}, {"motion": 0.0})


def test_the_gemini_reward_goes_through_the_call_layer(tmp_path, monkeypatch):
    import json

    from gemini_stub import GeminiStub

    monkeypatch.setenv("GEMINI_API_KEY", "test-key")
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    with GeminiStub(answer=lambda body: json.dumps({"score": 4})) as stub:
        stub.script.extend([{}, {"text": json.dumps({"score": 9})}, {"finish": "SAFETY"}])
        cfg = config()
        cfg["mllm"] |= {"base_url": stub.url, "cache_dir": str(tmp_path), "concurrency": 1}
        mix = make_rewards({"gemini": 1.0}, cfg)
        targets = frames(3, 60)
        scores = mix(frames(3, 0), targets, ["Raise the arm."] * 3, targets)
        body = stub.calls[0]
    assert scores.total[0].item() == pytest.approx(0.8)
    assert math.isnan(scores.total[1].item()) and scores.errors[1].startswith("gemini: schema")
    assert scores.errors[2].startswith("gemini: finish: generation stopped with SAFETY")
    parts = body["contents"][0]["parts"]
    assert sum("inlineData" in p for p in parts) == 3  # input, result, reference
    assert "Raise the arm." in parts[-1]["text"]
