"""The Gemini judge and rewriter, through the real SDK against the local Gemini server."""

from __future__ import annotations

import json
import logging

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import ROOT
from gemini_stub import GeminiStub, motion_answers, request_text
from test_mllm_gemini import SENTINEL, transport

from motionedit.config import validate_config
from motionedit.judge import make_judge, make_rewriter
from motionedit.judge.mllm_judge import verdict_from_answer
from motionedit.judge.mllm_rewriter import instruction_problem
from motionedit.judge.offline_rewriter import instruction_for
from motionedit.judge.stage import judge_shard, rewrite_shard
from motionedit.mllm import section_pricing

LOG = logging.getLogger("test-judge-gemini")


@pytest.fixture
def key(monkeypatch):
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.setenv("GEMINI_API_KEY", SENTINEL)


def shard(tmp_path, n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Prefilter and frames tables of ``n`` pairs (plus one the prefilter dropped)."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n + 1):
        paths = []
        for t in (0, 1):
            path = tmp_path / f"p{i}_{t}.png"
            cv2.imwrite(str(path), rng.integers(0, 255, (24, 32, 3), dtype=np.uint8))
            paths.append(str(path))
        rows.append({"pair_id": f"v{i // 2}-w{i % 2}", "video_id": f"v{i // 2}",
                     "source": "synth", "frame0": paths[0], "frame1": paths[1]})  # fmt: skip
    frames = pd.DataFrame(rows)
    prefilter = frames[["pair_id", "video_id", "source"]].assign(keep=[True] * n + [False])
    return prefilter, frames


def config(tmp_path, url: str, **mllm) -> dict:
    """The default config with both stages on Gemini, talking to the local server."""
    full = yaml.safe_load((ROOT / "config.yaml").read_text())
    full |= {"judge": {"backend": "gemini"}, "rewrite": {"backend": "gemini"}}
    full = validate_config(full)
    full["mllm"] = transport(tmp_path, url, **mllm)
    return full


ANSWER = {
    "setting_consistent": True,
    "setting_note": "unchanged",
    "significant_motion": True,
    "before": "arm down",
    "after": "arm raised",
    "category": "pose",
    "subject_intact": True,
    "quality_ok": True,
    "subject_note": "none",
}


@pytest.mark.parametrize(
    ("change", "reason", "keep"),
    [
        ({}, "ok", True),
        ({"setting_consistent": False, "quality_ok": False}, "setting:inconsistent", False),
        ({"category": "none"}, "motion:insignificant", False),
        ({"significant_motion": False}, "motion:insignificant", False),
        ({"subject_intact": False}, "subject:not_intact", False),
        ({"quality_ok": False}, "quality:poor", False),
    ],
)
def test_answers_map_to_the_four_checks_and_the_first_failed_reason(change, reason, keep):
    verdict = verdict_from_answer(ANSWER | change)
    assert verdict.reason == reason and verdict.keep is keep
    assert verdict.summary == "arm down -> arm raised"


def test_judge_shard_keeps_errors_apart_from_discards(tmp_path, key):
    prefilter, frames = shard(tmp_path, 4)
    refuse = dict(ANSWER, setting_consistent=False, setting_note="the camera pans")

    with GeminiStub(answer=lambda body: json.dumps(ANSWER)) as stub:
        stub.script.extend([{}, {"text": json.dumps(refuse)}, {"finish": "SAFETY"}, {}])
        cfg = config(tmp_path, stub.url, concurrency=1)
        raw = tmp_path / "judge.raw.jsonl"
        table = judge_shard(
            prefilter,
            frames,
            make_judge(cfg, cfg["mllm"], LOG),
            raw,
            LOG,
            section_pricing(cfg["judge"], cfg["mllm"]),
        )
        assert stub.count == 4  # the pair the prefilter dropped is never asked about
    assert list(table["reason"]) == ["ok", "setting:inconsistent", "error:finish", "ok"]
    assert table["keep"].tolist()[:2] == [True, False] and pd.isna(table["keep"][2])
    assert table["error"][2].startswith("finish: generation stopped with SAFETY")
    assert json.loads(table["details"][1])["setting_note"] == "the camera pans"
    assert set(table["backend"]) == {"gemini"} and set(table["prompt_version"]) == {"judge-v1"}
    # Tokens and cost per row: 300 in, 50 out at $0.30 / $2.50 per million.
    assert table["input_tokens"].tolist() == [300] * 4
    assert table["cost_usd"][0] == pytest.approx((300 * 0.30 + 50 * 2.50) / 1e6)
    lines = [json.loads(x) for x in raw.read_text().splitlines()]
    assert [line["pair_id"] for line in lines] == list(table["pair_id"])
    call = lines[0]["calls"][0]
    assert len(call["images"]) == 2 and all(len(h) == 64 for h in call["images"])
    assert call["model_version"] == "gemini-2.5-flash-stub-001" and call["latency_s"] >= 0
    text = raw.read_text()
    assert "inlineData" not in text and "iVBOR" not in text and SENTINEL not in text


def test_a_missing_frame_is_that_pairs_error_only(tmp_path, key):
    prefilter, frames = shard(tmp_path, 2)
    (tmp_path / "p0_1.png").unlink()
    with GeminiStub(answer=motion_answers) as stub:
        cfg = config(tmp_path, stub.url)
        table = judge_shard(
            prefilter, frames, make_judge(cfg, cfg["mllm"], LOG), tmp_path / "r.jsonl", LOG
        )
        assert stub.count == 1
    assert table["reason"].tolist() == ["error", "ok"] and "p0_1.png" in table["error"][0]


@pytest.mark.parametrize(
    "text",
    [
        "Make the woman turn her head toward the dog.",
        "Have the man lift the box onto the table.",
        "Bring the cup to her lips.",
        "Raise both arms above the head!",
        "Make the man raise the camera to his eye.",
        "Have the girl hang the picture frame on the wall.",
    ],
)
def test_good_instructions_pass_the_shape_check(text):
    assert instruction_problem(text) is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty"),
        ("The woman turns her head.", "not imperative"),
        ("Raising the arm.", "not imperative"),
        ("Make her sit. Then make her stand.", "more than one sentence"),
        ("Make the dog jump.\nIt was sitting.", "more than one line"),
        ("make the dog jump.", "capitalised"),
        ("Make the subject in the last frame jump.", "mentions 'last frame'"),
        ("Make the dog jump as in the video.", "mentions 'in the video'"),
        ("Turn the man while the camera pans left.", "mentions 'camera pans'"),
        ("Lift the arm as in the target image.", "mentions 'target image'"),
        ("Move the car between the two frames.", "mentions 'between the two frames'"),
        ("Turn sitting -> standing.", "mentions '->'"),
        ("Make " + "the very " * 15 + "dog jump.", "more than 30"),
    ],
)
def test_bad_instructions_are_named(text, problem):
    assert problem in (instruction_problem(text) or "")


def test_the_offline_templates_have_the_shape_the_rewriter_demands():
    details = {"fits": [{"colour": "red"}, {"colour": "blue"}], "direction": "to the left",
               "turn": "clockwise", "degrees": 30, "to": "at the top"}  # fmt: skip
    for category in ("pose", "locomotion", "deformation", "orientation", "subject_object",
                     "subject_subject", None):  # fmt: skip
        text = instruction_for(category, details)
        assert instruction_problem(text) is None, text


def test_rewriter_asks_again_with_the_reason_and_flags_what_stays_wrong(tmp_path, key):
    judged = pd.DataFrame(
        {
            "pair_id": ["a", "b", "c"],
            "video_id": ["v", "v", "w"],
            "source": "s",
            "keep": pd.array([True, True, True], dtype="boolean"),
            "before": "arm down",
            "after": ["arm raised", "arm up", "arm lifted"],
            "summary": None,
            "category": "pose",
            "details": "{}",
        }
    )
    bad = json.dumps({"instruction": "The woman raises her arm."})
    good = json.dumps({"instruction": "Make the woman raise her arm."})

    def answer(body):
        text = request_text(body)
        return good if "rejected" in text and "Before: arm down" in text else bad

    with GeminiStub(answer=answer) as stub:
        stub.script.extend([{}, {"text": good}, {"status": 400, "message": "bad image"}])
        cfg = config(tmp_path, stub.url, concurrency=1)
        cfg["rewrite"]["max_attempts"] = 2
        raw = tmp_path / "rewrite.raw.jsonl"
        table = rewrite_shard(
            judged,
            make_rewriter(cfg, cfg["mllm"], LOG),
            raw,
            LOG,
            section_pricing(cfg["rewrite"], cfg["mllm"]),
        )
        # a: bad then good (2 calls); b: good (1); c: a 400, not retried (1).
        assert stub.count == 4
    assert table["instruction"].tolist()[:2] == ["Make the woman raise her arm."] * 2
    assert table["error"][2].startswith("http 400: INVALID_ARGUMENT")
    lines = [json.loads(x) for x in raw.read_text().splitlines()]
    assert [len(line["calls"]) for line in lines] == [2, 1, 1]
    assert "rejected (not imperative" in lines[0]["calls"][1]["prompt"]
    assert table["input_tokens"].tolist() == [600, 300, 0]

    with GeminiStub(answer=lambda body: bad) as stub:
        cfg = config(tmp_path / "2", stub.url)
        table = rewrite_shard(judged[:1], make_rewriter(cfg, cfg["mllm"], LOG), raw, LOG)
        assert stub.count == 3  # max_attempts
    assert table["error"][0].startswith("instruction_shape: not imperative (starts with 'The')")
    assert table["instruction"].isna().all()


def test_every_prompt_version_the_config_accepts_has_a_prompt():
    from motionedit.config import SCHEMA_PATH
    from motionedit.evaluate.generative import DEFAULT_PROMPTS as GEN_DEFAULTS
    from motionedit.evaluate.generative import PROMPT_VERSIONS
    from motionedit.judge.prompts import DEFAULT_PROMPTS, JUDGE_PROMPTS, REWRITE_PROMPTS

    schema = yaml.safe_load(SCHEMA_PATH.read_text())["properties"]
    # null: the backend's own version (DEFAULT_PROMPTS)
    judge = schema["judge"]["properties"]["prompt_version"]["enum"]
    assert judge == [None, *JUDGE_PROMPTS]
    rewrite = schema["rewrite"]["properties"]["prompt_version"]["enum"]
    assert rewrite == [None, *REWRITE_PROMPTS]
    generative = schema["evaluate"]["properties"]["generative"]["properties"]
    assert generative["prompt_version"]["enum"] == [None, *PROMPT_VERSIONS]
    for stage, versions in DEFAULT_PROMPTS.items():
        assert set(versions.values()) <= set(JUDGE_PROMPTS if stage == "judge" else REWRITE_PROMPTS)
    assert set(GEN_DEFAULTS.values()) <= set(PROMPT_VERSIONS)
