"""MLLM generative scoring of edited images, the MotionEdit-Bench judgement by Gemini or by
an open model behind an OpenAI-compatible server (``evaluate.generative.backend``).

Following the paper, an MLLM rates each edit from 0 to 5 on Fidelity (the instructed motion
happened), Preservation (identity, background and viewpoint kept) and Coherence (physically
plausible, free of artifacts); Overall is their mean. The judge sees the input, the edited
image and, unless ``with_target`` is off, the ground-truth target as a reference only: a
motion edit has many correct outcomes, and pixel agreement with one of them is what the
pixel metrics already measure.

``editscore-v1`` asks EditScore's two questions instead (motionedit/evaluate/editscore.py)
and maps them onto the same three dimensions; Overall is their mean for every prompt
version, so tables and win rates read the same whichever prompt and backend scored.

Every call goes through the shared call layer (cache, in-run dedup, retries, quota, batch
mode). An item whose images cannot be read, or whose model produced no image, is an error
for that item alone and costs no call; a refusal or an answer outside the schema is an error
too, never a low score, so failures cannot pull a model's mean down.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pydantic import BaseModel, Field

from motionedit.evaluate.editscore import (
    QUALITY_PROMPT,
    EditScoreAnswer,
    consistency_prompt,
    editscore_scores,
)
from motionedit.judge.prompts import open_prompt
from motionedit.mllm import CallSettings, Image, Outcome, Request, ask_each, make_caller

DIMENSIONS = ("fidelity", "preservation", "coherence")


class GenerativeAnswer(BaseModel):
    """The judge's scores, each after its reason so the score follows from what was seen."""

    fidelity_reason: str = Field(description="One short sentence: why this Fidelity score.")
    fidelity: int = Field(ge=0, le=5, description="Fidelity, 0 to 5.")
    preservation_reason: str = Field(description="One short sentence: why this Preservation score.")
    preservation: int = Field(ge=0, le=5, description="Preservation, 0 to 5.")
    coherence_reason: str = Field(description="One short sentence: why this Coherence score.")
    coherence: int = Field(ge=0, le=5, description="Coherence, 0 to 5.")


#: A prompt is never edited in place: a new wording is a new version, added here and to the
#: ``prompt_version`` enum of the config schema. The version is part of every cache key.
GENERATIVE_PROMPTS: dict[str, str] = {
    "gen-v1": """\
You are grading one result of a motion editing benchmark. An image editor was given the input
image and the instruction below; the edited image is what it produced. The instruction asks
for a change in how a subject moves, poses or interacts: its posture, its position, the way
it faces, its shape, or what it does with an object or another subject. Everything the
instruction does not mention should stay as it was in the input image.

Instruction: {instruction}

If a reference target image is shown, it is one correct outcome of this instruction, taken
from the real scene. Use it only to understand what the instructed motion looks like. Do not
require the edited image to match it pixel for pixel: a different pose or placement that
carries out the instruction just as well deserves the same score. Always judge the edited
image against the input image and the instruction.

Rate the edited image on three dimensions, each an integer from 0 to 5. The anchors below
fix 0, 3 and 5; use 1, 2 and 4 for results in between.

Fidelity: did the instructed motion or interaction happen?
- 5: the subject named in the instruction does exactly what was asked, fully and
  unambiguously: the right subject, the right body part or object, the right direction and
  extent.
- 3: the motion is only partly done: begun but incomplete, partly in the wrong direction or
  extent, or only some of the requested actions.
- 0: nothing that was asked happened: the edited image is a copy of the input, or it shows a
  different change.

Preservation: is everything the instruction did not ask to change kept?
- 5: the subject keeps its identity (face, body, clothing, colours, proportions) and the
  background, other objects, lighting and camera viewpoint are those of the input, apart
  from what the motion itself uncovers or hides.
- 3: the scene and the subject are recognisably the same, but with clear unrequested
  changes, such as altered clothing or colours, a shifted background or a slightly
  different framing.
- 0: the subject is replaced or unrecognisable, or the scene or viewpoint is a different one.

Coherence: is the edited image physically plausible and clean?
- 5: anatomy, contact between bodies and objects, scale, perspective and shadows are
  believable, and there are no artifacts (extra, missing or fused limbs, melted shapes,
  smears, seams, ghosting, blur or noise the input does not have).
- 3: plausible at a glance, with noticeable flaws on closer look, such as a malformed hand,
  a floating object or a local smear.
- 0: the image is broken: impossible anatomy or physics, or artifacts dominate the image.

Score each dimension on its own. An unchanged copy of the input gets Fidelity 0 even though
nothing was lost; a perfect motion in a different scene gets Preservation 0 even though the
motion is right. Defects the input image already has are not faults of the edit.

For each dimension give one short reason, a single sentence of at most 25 words, naming what
you saw in the edited image that decided the score.

Answer with JSON that follows the given schema.""",
}

GENERATIVE_PROMPTS["gen-open-v1"] = open_prompt(GENERATIVE_PROMPTS["gen-v1"], GenerativeAnswer)

#: Versions that ask EditScore's two questions per edit (their prompts are in editscore.py).
EDITSCORE_VERSIONS = ("editscore-v1",)

PROMPT_VERSIONS: tuple[str, ...] = (*GENERATIVE_PROMPTS, *EDITSCORE_VERSIONS)

#: The prompt version of each backend when ``prompt_version`` is null: the open models'
#: spells the answer's keys out.
DEFAULT_PROMPTS = {"gemini": "gen-v1", "openai": "gen-open-v1"}

#: The label before each image part, so the prompt can name the images unambiguously.
LABELS = {
    "input": "Input image:",
    "edited": "Edited image:",
    "target": "Reference target (for reference only):",
}


@dataclass
class EditToScore:
    id: str
    input_path: str | Path
    edited_path: str | Path | None  # None: the model produced no image
    target_path: str | Path | None  # None: no reference is shown
    instruction: str


def overall(scores: dict[str, Any]) -> float:
    """The paper's Overall: the unweighted mean of the three dimensions."""
    return round(sum(scores[d] for d in DIMENSIONS) / len(DIMENSIONS), 4)


def _read(path: str | Path, max_side: int | None) -> Image:
    """An image part, refusing files that do not decode: the service would otherwise be paid
    to look at garbage, or refuse with an error that does not name the file."""
    image = Image.read(path, max_side)
    if max_side is None:  # Image.read decodes only when it may have to downscale
        try:
            pixels = cv2.imdecode(np.frombuffer(image.data, np.uint8), cv2.IMREAD_COLOR)
        except cv2.error:  # an empty file
            pixels = None
        if pixels is None:
            raise OSError(f"{path}: not a readable image")
    return image


class GenerativeScorer:
    def __init__(self, cfg: dict[str, Any], transport: dict[str, Any], log: logging.Logger):
        self.backend = cfg.get("backend", "gemini")
        self.settings = CallSettings.from_config(cfg[self.backend])
        self.model = self.settings.model
        self.prompt_version = cfg.get("prompt_version") or DEFAULT_PROMPTS[self.backend]
        self.editscore = self.prompt_version in EDITSCORE_VERSIONS
        self.prompt = "" if self.editscore else GENERATIVE_PROMPTS[self.prompt_version]
        self.with_target = bool(cfg.get("with_target", True)) and not self.editscore
        self.caller = make_caller(self.backend, transport, log)

    def _images(self, item: EditToScore, roles: tuple[str, ...]) -> list[tuple[str, Image]]:
        """The item's images in ``roles`` order; raises OSError naming one that cannot be
        used. The target is left out when it is not to be shown or there is none."""
        if item.edited_path is None:
            raise OSError("no edited image (the model produced none)")
        paths = {"input": item.input_path, "edited": item.edited_path}
        if self.with_target and item.target_path is not None:
            paths["target"] = item.target_path
        images = []
        for role in (r for r in roles if r in paths):
            try:
                images.append((role, _read(paths[role], self.settings.max_image_side)))
            except (OSError, ValueError, TypeError) as exc:
                raise OSError(f"{role} image: {exc}") from exc
        return images

    def _request(self, item: EditToScore, parts: list[str | Image], schema: Any) -> Request:
        return Request(
            parts=tuple(parts),
            settings=self.settings,
            prompt_version=self.prompt_version,
            schema=schema,
            tag=item.id,
        )

    def request(self, item: EditToScore) -> Request:
        """The item's question; raises OSError naming the image that cannot be used."""
        parts: list[str | Image] = []
        for role, image in self._images(item, ("input", "edited", "target")):
            parts += [LABELS[role], image]
        parts.append(self.prompt.format(instruction=item.instruction.strip()))
        return self._request(item, parts, GenerativeAnswer)

    def consistency_request(self, item: EditToScore) -> Request:
        """EditScore's first question: the input, then the edit, then the instruction,
        with no labels between the images, the layout its models were trained on."""
        images = [image for _, image in self._images(item, ("input", "edited"))]
        prompt = consistency_prompt(item.instruction)
        return self._request(item, [*images, prompt], EditScoreAnswer)

    def quality_request(self, item: EditToScore) -> Request:
        """EditScore's second question: the edit alone, without the instruction. The input
        is read too, so an item with an unusable input costs no call at all."""
        _, (_, edited) = self._images(item, ("input", "edited"))
        return self._request(item, [edited, QUALITY_PROMPT], EditScoreAnswer)

    def score_all(self, items: list[EditToScore]) -> list[Outcome]:
        """One outcome per item, in order; unusable items are errors that cost no call.
        EditScore's two questions are asked together, so batch mode writes one file."""
        if not self.editscore:
            desc = "generative scores"
            return ask_each(items, self.request, self.caller, desc, _scores, "images")
        builds = (self.consistency_request, self.quality_request)
        questions = [(build, item) for build in builds for item in items]
        answers = ask_each(questions, _ask, self.caller, "EditScore questions", dict, "images")
        n = len(items)
        return [_joined(c, q) for c, q in zip(answers[:n], answers[n:], strict=True)]


def _ask(question: tuple[Any, EditToScore]) -> Request:
    build, item = question
    return build(item)


def _joined(consistency: Outcome, quality: Outcome) -> Outcome:
    """One item's outcome from its two EditScore answers: scores when both came, else the
    error(s), with the calls of both for the raw log and the cost columns."""
    errors = dict.fromkeys(e for e in (consistency.error, quality.error) if e)
    joined = Outcome(calls=consistency.calls + quality.calls)
    if errors:
        joined.error = "; ".join(errors)
    else:
        scores = editscore_scores(consistency.value, quality.value)
        joined.value = scores | {"overall": overall(scores)}
    return joined


def _scores(answer: dict[str, Any]) -> dict[str, Any]:
    scores: dict[str, Any] = {d: int(answer[d]) for d in DIMENSIONS}
    scores["overall"] = overall(scores)
    scores["reasons"] = {d: answer[f"{d}_reason"].strip() for d in DIMENSIONS}
    return scores
