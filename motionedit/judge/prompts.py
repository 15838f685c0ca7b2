"""The versioned prompts and answer schemas of the Gemini judge and rewriter.

A prompt is never edited in place: a change is a new version, added here and to the
``prompt_version`` enum of the config schema. The version is part of every cached answer's
key and of every output row, so answers to different prompts are never mixed.
"""

from __future__ import annotations

import re
import typing
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from motionedit import CATEGORIES

Category = Literal["pose", "locomotion", "deformation", "orientation", "subject_object",
                   "subject_subject", "none"]  # fmt: skip
assert set(Category.__args__) == {*CATEGORIES, "none"}


class JudgeAnswer(BaseModel):
    """The judge's answer on the paper's three dimensions (subject and quality kept apart)."""

    setting_consistent: bool = Field(
        description="Background, camera viewpoint and lighting are the same in both frames."
    )
    setting_note: str = Field(description="What changed in the setting, or 'unchanged'.")
    significant_motion: bool = Field(
        description="A subject's motion or interaction changes clearly and meaningfully."
    )
    before: str = Field(description="The subject's state in the first frame, a few words.")
    after: str = Field(description="The subject's state in the last frame, a few words.")
    category: Category
    subject_intact: bool = Field(
        description="The same subject, complete, recognisable, not occluded or distorted."
    )
    quality_ok: bool = Field(description="Both frames sharp, clean and free of artifacts.")
    subject_note: str = Field(description="Problems with the subject or image, or 'none'.")


class RewriteAnswer(BaseModel):
    instruction: str = Field(description="One imperative edit instruction.")


#: Category names open models write for the six (after lower-casing, spaces and hyphens
#: made underscores).
CATEGORY_ALIASES = {
    "subject_object_interaction": "subject_object",
    "subject_subject_interaction": "subject_subject",
    "object_interaction": "subject_object",
    "interaction_with_object": "subject_object",
    "no_change": "none",
    "no_motion": "none",
}


class OpenJudgeAnswer(JudgeAnswer):
    """The judge's answer as small open models give it: the two free-text notes may be
    left out, and a category may come capitalised or spelt with spaces or hyphens. A
    category that is none of the six after that is still an error, not a guess."""

    setting_note: str = Field("", description="What changed in the setting, or 'unchanged'.")
    subject_note: str = Field("", description="Problems with the subject or image, or 'none'.")

    @field_validator("category", mode="before")
    @classmethod
    def _spelling(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        name = re.sub(r"[\s\-]+", "_", value.strip().lower())
        return CATEGORY_ALIASES.get(name, name)


def json_template(schema: type[BaseModel]) -> str:
    """The answer format spelt out in the prompt, for servers that cannot be held to a
    schema (no ``response_format``) and models that follow text better than schemas."""
    lines = ["Answer with one JSON object and nothing else, with these keys in this order:"]
    for name, field in schema.model_fields.items():
        kind = field.annotation
        if kind is bool:
            what = "true or false"
        elif kind is int:
            bounds = {type(m).__name__: m for m in field.metadata}
            low, high = getattr(bounds.get("Ge"), "ge", None), getattr(bounds.get("Le"), "le", None)
            what = "an integer" + (f" from {low} to {high}" if low is not None else "")
        elif typing.get_origin(kind) is Literal:
            what = "one of " + ", ".join(f'"{v}"' for v in typing.get_args(kind))
        else:
            what = "a string"
        note = f". {field.description}" if field.description else ""
        lines.append(f'- "{name}": {what}{note}')
    return "\n".join(lines)


_SCHEMA_LINE = "Answer with JSON that follows the given schema."


def open_prompt(prompt: str, schema: type[BaseModel]) -> str:
    """A prompt written for a schema-bound model, with its answer format spelt out."""
    assert prompt.endswith(_SCHEMA_LINE), "the prompt must end with its answer line"
    return prompt.removesuffix(_SCHEMA_LINE) + json_template(schema)


JUDGE_PROMPTS: dict[str, str] = {
    "judge-v1": """\
The two images are the first and the last frame of a 3-second video window. We want pairs
where the last frame is what an image editor should produce from the first frame when asked
to change how a subject moves, poses or interacts, with nothing else changed. Inspect the
pair and answer three questions.

1. Setting consistency. Are the background, the camera viewpoint and the lighting the same
in both frames? A camera pan, zoom or tilt, a cut to another shot or a lighting change
fails. Changes caused only by the subject's own movement are fine.

2. Motion and interaction change. Does a subject change its pose, place, orientation or
shape, or its interaction with an object or another subject, clearly and meaningfully?
A tiny shift, blinking, lip movement or noise is not significant. Describe the subject in
the first frame ("before") and in the last frame ("after") in a few words each, for
example "not holding a cup" and "drinking from a cup". Choose the category that fits best:
- pose: body posture or limbs change (raises an arm, sits down, bends over)
- locomotion: the subject moves elsewhere or changes its distance to something
- deformation: an object changes state or shape (a door opens, dough stretches)
- orientation: the subject turns to face another way
- subject_object: the subject acts on an object (picks up, pushes, throws, drinks from)
- subject_subject: subjects interact with each other (hug, shake hands, approach)
Choose "none" when there is no significant change.

3. Subject integrity and quality. Is the main subject the same, complete and recognisable
in both frames, not occluded, not cut off by the image border, not distorted or
hallucinated? Separately: are both frames sharp, free of heavy noise, blur and artifacts?

Answer with JSON that follows the given schema.""",
}

REWRITE_PROMPTS: dict[str, str] = {
    "rewrite-v1": """\
Write the instruction a person would type into an image editor to turn the first picture
into the second, from this description of the change.

Before: {before}
After: {after}
Kind of motion: {category}

Rules: one sentence in the imperative mood that starts with a verb, like "Make the woman
turn her head toward the dog." or "Have the man lift the box onto the table."; say only
who moves and how; no explanation, no description of the scene; never mention frames,
images, videos, clips or the camera; at most 25 words.

Answer with JSON that follows the given schema.""",
}

#: Added to the rewrite prompt when an earlier answer had the wrong shape. The attempt number
#: makes every retry a new question, so the cache cannot answer it with the rejected reply.
REWRITE_RETRY = """

Attempt {attempt}: an earlier answer was rejected ({problem}): "{previous}". Follow every rule."""

JUDGE_PROMPTS["judge-open-v1"] = open_prompt(JUDGE_PROMPTS["judge-v1"], OpenJudgeAnswer)
REWRITE_PROMPTS["rewrite-open-v1"] = open_prompt(REWRITE_PROMPTS["rewrite-v1"], RewriteAnswer)

#: The answer schema of each prompt version.
JUDGE_SCHEMAS: dict[str, type[BaseModel]] = {
    "judge-v1": JudgeAnswer,
    "judge-open-v1": OpenJudgeAnswer,
}

#: The prompt version a backend asks with when its stage's ``prompt_version`` is null: the
#: wording Gemini was tuned on, and the one that spells the answer out for open models.
DEFAULT_PROMPTS = {
    "judge": {"gemini": "judge-v1", "openai": "judge-open-v1"},
    "rewrite": {"gemini": "rewrite-v1", "openai": "rewrite-open-v1"},
}
