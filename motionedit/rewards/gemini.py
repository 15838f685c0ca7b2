"""An MLLM reward from Gemini, through the shared call layer (motionedit/mllm).

For runs that would rather pay an API than serve a vision-language model: Gemini sees the
input, the edited image and the ground-truth target and returns a 0-5 score as JSON checked
against a schema; the reward is the score over 5. Refusals, bad answers and failed calls
are missing rewards with their reason (the trainer skips those prompt groups). Every answer
goes through the call layer's cache, quota and retries like any other stage's.
"""

from __future__ import annotations

import logging
from typing import Any

from PIL import Image as PILImage
from pydantic import BaseModel, Field

from motionedit.images import to_pil
from motionedit.mllm import CallSettings, GeminiCaller, Image, Request

#: The prompt's version, part of every cached answer's key: a new wording gets a new name.
PROMPT_VERSION = "gemini-reward-v1"
PROMPT = (
    "The first image was edited with the instruction below; the second image is the "
    "result, and the third is a correct result for reference. Rate from 0 to 5 how well "
    "the result carries out the instruction: the instructed motion happened, the "
    "subject keeps its identity, the background and viewpoint are unchanged, and there "
    "are no artifacts. 0: the motion did not happen or the image is ruined; 5: exactly "
    "as instructed with everything else kept.\n\nInstruction: {instruction}"
)


class ScoreAnswer(BaseModel):
    score: int = Field(ge=0, le=5, description="0 to 5")


def _png(image: Any) -> Image:
    pil = image if isinstance(image, PILImage.Image) else to_pil(image)
    return Image.from_pil(pil.convert("RGB"))


class GeminiReward:
    name = "gemini"

    def __init__(self, cfg: dict[str, Any], transport: dict[str, Any], log: logging.Logger):
        self.settings = CallSettings.from_config(cfg)
        self.caller = GeminiCaller(transport, log)
        self.last_errors: list[str | None] = []

    def score(
        self, inputs: list[Any], edited: list[Any], prompts: list[str], targets: list[Any]
    ) -> list[float | None]:
        requests = [
            Request(
                parts=(
                    "Input:",
                    _png(a),
                    "Result:",
                    _png(e),
                    "Reference:",
                    _png(t),
                    PROMPT.format(instruction=p),
                ),
                settings=self.settings,
                prompt_version=PROMPT_VERSION,
                schema=ScoreAnswer,
                tag=f"edit{i}",
            )
            for i, (a, e, p, t) in enumerate(zip(inputs, edited, prompts, targets, strict=True))
        ]
        replies = self.caller.run(requests, "gemini reward")
        self.last_errors = [r.error for r in replies]
        return [None if r.error else r.parsed["score"] / 5.0 for r in replies]


def make_gemini_reward(config: dict[str, Any], options: Any) -> GeminiReward:
    """The registry's factory: the reward at ``rewards.gemini`` over the call layer at ``mllm``."""
    return GeminiReward(config["rewards"]["gemini"], config["mllm"], logging.getLogger(__name__))
