"""EditScore-style generative scoring (prompt version ``editscore-v1``): the criteria,
answer format and reduction of the paper's reference [19], for motion edits.

The paper adapts its scoring prompts from EditScore, whose open reward models
(EditScore-7B to 72B, Qwen2.5-VL based) are served behind vLLM like any VLM. Those models
were trained to answer two separate questions in one format, so this version asks the same
two, in our own words, and reads the same answer shape:

- **Semantic consistency** (the input image, then the edited image, and the instruction):
  ``score = [prompt_following, consistency]``;
- **Perceptual quality** (the edited image alone, no instruction, so the judge cannot
  excuse a broken image by what it was asked to show): ``score = [naturalness, artifacts]``.

Each answer is ``{"reasoning": "...", "score": [a, b]}`` with both scores from 0 to
:data:`SCORE_RANGE` (25, EditScore's granularity); reasoning comes first so the scores
follow from it. The target image is never shown: EditScore's models see two images.

Reduction, so Table 1 and the win rate read the same for every prompt version:

- Fidelity = prompt_following / 5, Preservation = consistency / 5, Coherence =
  min(naturalness, artifacts) / 5, each on the benchmark's 0-5 scale;
- Overall is their mean, the paper's reduction, whatever the prompt (see ``overall``);
- EditScore's own overall, sqrt(min(SC) · min(PQ)) with both rescaled to 0-10, is kept as
  the ``editscore`` column for comparison with numbers reported on that scale.

A score outside 0-25, or a list that is not two numbers, fails the schema and makes the
item an error row: EditScore's own code substitutes mid-range, which would pass a failure
off as a middling edit.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, Field

#: Both questions' scores run from 0 to this, as EditScore's models answer by default.
SCORE_RANGE = 25
#: The benchmark's generative dimensions run from 0 to 5.
BENCH_RANGE = 5

Score = Annotated[float, Field(ge=0, le=SCORE_RANGE)]


class EditScoreAnswer(BaseModel):
    """One EditScore-style answer: the reasoning, then two scores in a fixed order."""

    reasoning: str = Field(description="What was seen that decides the two scores.")
    score: list[Score] = Field(min_length=2, max_length=2, description="The two scores, 0-25.")


def _answer_line(first: str, second: str) -> str:
    return (
        "Reason first, then score. Answer with one JSON object and nothing else, in this form:\n"
        f'{{"reasoning": "<at most 60 words>", "score": [<{first}>, <{second}>]}}'
    )


#: The semantic-consistency question, asked with the input image and then the edited image;
#: ``{instruction}`` is filled by :func:`consistency_prompt`.
CONSISTENCY_PROMPT = """\
You are an expert judge of image edits. You see two images. The first is the input image;
the second is what an image editing model made of it when asked to follow the instruction
below. The instruction asks for a change in how a subject moves, poses or interacts: its
posture, its position, the way it faces, its shape, or what it does with an object or
another subject.

Instruction: {instruction}

Give two scores, each a number from 0 to 25.

Prompt following: how completely and correctly does the second image carry out the
instruction? 25: the subject the instruction names does exactly what was asked, with the
right body part or object, in the right direction and to the right extent. Around 13: the
motion is begun but incomplete, partly wrong in direction or extent, or only some of the
requested actions happen. 0: nothing that was asked happened, or a different change was
made, or the second image is a copy of the first.

Consistency: is everything the instruction did not ask to change kept? 25: the subject
keeps its identity, face, clothing, colours and proportions, and the background, other
objects, lighting and viewpoint are those of the first image, apart from what the motion
itself uncovers or hides. Around 13: recognisably the same subject and scene, with clear
unrequested changes. 0: the subject is replaced, or the scene or viewpoint is a different
one.

Score the two on their own: an unchanged copy of the input gets 0 for prompt following
even though it keeps everything.

""" + _answer_line("prompt following", "consistency")

#: The perceptual-quality question, asked with the edited image alone.
QUALITY_PROMPT = """\
You are an expert judge of image quality. The image was made by an image editing model.
Judge the image on its own; you are not told what it should show.

Give two scores, each a number from 0 to 25.

Naturalness: does the image look like a real scene, or a consistent artwork? 25: anatomy,
contact between bodies and objects, scale, perspective, lighting and shadows are all
believable. Around 13: plausible at a glance, with flaws on a closer look, such as a
floating object or an oddly bent joint. 0: impossible anatomy or physics dominate.

Artifacts: is the image free of generation errors? 25: none visible. Around 13: local
errors such as a malformed hand, a smear, a seam or ghosting. 0: extra, missing or fused
limbs, melted shapes, smears or noise dominate the image.

""" + _answer_line("naturalness", "artifacts")


def consistency_prompt(instruction: str) -> str:
    """The consistency question for one instruction (not ``str.format``: the answer line
    has braces of its own)."""
    return CONSISTENCY_PROMPT.replace("{instruction}", instruction.strip())


def _bench(score: float) -> float:
    return round(score * BENCH_RANGE / SCORE_RANGE, 4)


def editscore_scores(consistency: dict[str, Any], quality: dict[str, Any]) -> dict[str, Any]:
    """The benchmark's dimensions and EditScore's overall from the two answers."""
    following, kept = consistency["score"]
    perceptual = min(quality["score"])
    to_ten = 10 / SCORE_RANGE
    return {
        "fidelity": _bench(following),
        "preservation": _bench(kept),
        "coherence": _bench(perceptual),
        "editscore": round(math.sqrt(min(following, kept) * to_ten * perceptual * to_ten), 4),
        "reasons": {
            "consistency": consistency["reasoning"].strip(),
            "quality": quality["reasoning"].strip(),
        },
    }
