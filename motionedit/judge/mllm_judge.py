"""The MLLM judge: the paper's quality inspection of a candidate pair, asked of Gemini or
of an open model behind an OpenAI-compatible server (``judge.backend``).

The model sees the first and the last frame of the window and answers the three questions of
the paper (setting consistency; a significant motion or interaction change, summarised as
"before -> after" with one of the six categories; subject integrity and image quality) as
JSON checked against ``JudgeAnswer``. A pair is kept only when every answer is yes. A call
that fails in any way (refusal, cut-off answer, bad JSON, timeout, server error) gives an
error row with ``keep`` left empty, so it can never be counted as a discard.
"""

from __future__ import annotations

import logging
from typing import Any

from motionedit.judge.base import PairInput, Verdict
from motionedit.judge.prompts import DEFAULT_PROMPTS, JUDGE_PROMPTS, JUDGE_SCHEMAS
from motionedit.mllm import CallSettings, Image, Outcome, Request, ask_each, make_caller


def verdict_from_answer(answer: dict[str, Any]) -> Verdict:
    """Map the schema's answer onto the judge's four checks and the first failed reason."""
    category = None if answer["category"] == "none" else answer["category"]
    checks = {
        "setting": (answer["setting_consistent"], "setting:inconsistent"),
        "motion": (answer["significant_motion"] and category is not None, "motion:insignificant"),
        "subject": (answer["subject_intact"], "subject:not_intact"),
        "quality": (answer["quality_ok"], "quality:poor"),
    }
    reason = next((why for ok, why in checks.values() if not ok), "ok")
    before, after = answer["before"].strip(), answer["after"].strip()
    return Verdict(
        setting_ok=bool(checks["setting"][0]),
        motion_ok=bool(checks["motion"][0]),
        subject_ok=bool(checks["subject"][0]),
        quality_ok=bool(checks["quality"][0]),
        before=before,
        after=after,
        summary=f"{before} -> {after}",
        category=category,
        reason=reason,
        details={"setting_note": answer["setting_note"], "subject_note": answer["subject_note"]},
    )


class MLLMJudge:
    def __init__(self, judge_cfg: dict[str, Any], transport: dict[str, Any], log: logging.Logger):
        self.backend = judge_cfg["backend"]
        self.settings = CallSettings.from_config(judge_cfg[self.backend])
        self.model = self.settings.model
        self.prompt_version = judge_cfg["prompt_version"] or DEFAULT_PROMPTS["judge"][self.backend]
        self.prompt = JUDGE_PROMPTS[self.prompt_version]
        self.schema = JUDGE_SCHEMAS[self.prompt_version]
        self.caller = make_caller(self.backend, transport, log)

    def request(self, pair: PairInput) -> Request:
        return Request(
            parts=(
                "First frame:",
                Image.read(pair.frame0, self.settings.max_image_side),
                "Last frame:",
                Image.read(pair.frame1, self.settings.max_image_side),
                self.prompt,
            ),
            settings=self.settings,
            prompt_version=self.prompt_version,
            schema=self.schema,
            tag=pair.pair_id,
        )

    def judge_all(self, pairs: list[PairInput]) -> list[Outcome]:
        return ask_each(pairs, self.request, self.caller, "judge", verdict_from_answer, "frames")
