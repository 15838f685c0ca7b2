"""The MLLM reward of MotionNFT: a vision-language model grades each edit from 0 to 5.

The default (``prompt_version: mllm-reward-v2``, ``reference: none``) asks the question the
way the paper's released code does. There the MLLM reward is UniWorld-V2's editing reward,
served by ``train/reward_server/reward_server.py`` with the prompt of
``train/reward_server/prompt_template.py`` and called from ``mllm_score_continue`` in
``train/flow_grpo/rewards.py`` (elainew728/motion-edit on GitHub): one user turn holding
the input image, then the edited image, then a text that calls them "the original and the
edited version", gives the instruction and asks for a 0-5 score as a bare number. The
ground-truth target is not shown (the training scripts hand it to the flow reward only).
The reward is the expected score under the first answer token's distribution over the six
digit tokens, over 5.

Here the model (``vllm serve Qwen/Qwen2.5-VL-32B-Instruct`` or any other OpenAI-compatible
chat-completions server) returns ``top_logprobs`` for one answer token, and the reward is
``sum(p(d) * d) / sum(p(d)) / 5`` over the digit tokens among them. That is the released
softmax over the digit logits, up to digits too unlikely to be listed. Taking the written
digit would give six levels that barely move between policy samples; the expected score is
continuous and tells a confident 4 from a hesitant one. Servers that leave out
log-probabilities still work: the written digit is the fallback (the released server scores
a failed call 0.0; here it has no reward, see below).

``reference: target`` also shows the ground-truth target after the edit, as a reference
result the edit need not match exactly. ``mllm-reward-v1`` is the earlier wording: labelled
images between the instruction and a rubric on motion, identity, background and artifacts.

This module holds what is the reward's own: the prompt texts, one request per edit, and
the score read from a reply. The calls go through the shared call layer
(:class:`motionedit.mllm.OpenAICaller`), which owns the wire format, the API key (read
from the variable named by ``api_key_env``), concurrency, retries and Retry-After.

No answer cache: training rollouts are fresh images every step, so a cache would only fill
the disk with answers nobody asks for again (and a cache key per item costs a hash of every
image). ``cache_dir`` is therefore never set for this reward; the equal-question dedupe of
the call layer still applies within one ``score`` call.

Failures are per item: a reply without a digit, a timeout, an HTTP error that outlived
its retries, or a missing target under ``reference: target`` gives ``None`` (the trainer
skips those samples) with the reason in ``last_errors``. Only a missing ``base_url``, a
server that refuses the API key, or ``reference: target`` with no targets at all raises,
because then every item would fail the same way and training on no reward is pointless.
"""

from __future__ import annotations

import json
import logging
import math
import re
from typing import Any

from PIL import Image

from motionedit.mllm import CallSettings, MLLMError, OpenAICaller, Reply, Request
from motionedit.mllm import Image as Part
from motionedit.mllm.openai_compatible import response_entry

log = logging.getLogger(__name__)

DEFAULT_MODEL = "Qwen/Qwen2.5-VL-32B-Instruct"
DEFAULT_PROMPT_VERSION = "mllm-reward-v2"
#: What the model is shown besides the input and the edit: nothing (the released reward) or
#: the ground-truth target as a reference result.
REFERENCES = ("none", "target")
DEFAULT_REFERENCE = "none"

#: The instruction and the 0-5 scale of ``mllm-reward-v2``, shared by its two questions.
_V2_SCALE = (
    "Instruction: {instruction}\n"
    "Rate the edit from 0 to 5 by how accurately it follows the instruction and how "
    "good the result looks.\n"
    "0: the wrong thing was changed, or the edit does not follow the instruction at "
    "all.\n"
    "5: the right subject was changed, the instruction is fully followed, and the "
    "result is of high visual quality.\n"
    "Reply with the score alone, a single digit from 0 to 5."
)

#: Prompt texts by version. A new wording gets a new key, so rewards logged under one
#: version are never compared with rewards from another without noticing.
#:
#: A version with a ``question`` is laid out as the released reward is: the images first
#: (input, edit, and the target with ``reference: target``), then one text. ``question`` is
#: that text for two images, ``question_with_target`` for three. A version with a ``task``
#: (v1) puts the instruction first, a label before each image, and the ``rubric`` last.
PROMPTS: dict[str, dict[str, str]] = {
    # The structure, inputs and scale of train/reward_server/prompt_template.py (SCORE_LOGIT)
    # in elainew728/motion-edit, in words of our own.
    "mllm-reward-v2": {
        "question": (
            "You are shown two images: first the original, then the edited version of it. "
            "Judge the edited image against the editing instruction below.\n" + _V2_SCALE
        ),
        "question_with_target": (
            "You are shown three images: first the original, then the edited version of it, "
            "then a reference: one correct result of the instruction, which the edited "
            "version does not have to match exactly. Judge the edited image against the "
            "editing instruction below.\n" + _V2_SCALE
        ),
    },
    "mllm-reward-v1": {
        "task": (
            "You are grading an image edit. The editor was given the input image and the "
            "instruction below, which asks for a change of motion: the subject's pose, "
            "position, orientation or interaction should change as described, while "
            "everything else stays as it was.\n\nInstruction: {instruction}"
        ),
        "input": "Input image (before the edit):",
        "edited": "Edited image (the result to grade):",
        "target": (
            "Reference image: one correct result of the instruction. The edited image does "
            "not have to match it exactly; use it to judge what the instructed motion looks "
            "like."
        ),
        "rubric": (
            "Rate from 0 to 5 how well the edited image carries out the instruction. A high "
            "score needs all of: the instructed motion has actually happened; the subject "
            "keeps its identity and appearance; the background and the camera viewpoint are "
            "unchanged; the image is free of artifacts such as distorted limbs, smeared "
            "regions or duplicated parts. 0 means the motion did not happen or the image is "
            "ruined; 5 means the motion is exactly as instructed and everything else is "
            "preserved.\nAnswer with a single digit (0, 1, 2, 3, 4 or 5) and nothing else."
        ),
    },
}

DIGITS = ("0", "1", "2", "3", "4", "5")
_FIRST_DIGIT = re.compile(r"[0-5]")
#: Longest wait honoured from a Retry-After header: a server asking for minutes is asked
#: again after one rather than left to stall the training step for longer.
_MAX_RETRY_AFTER_S = 60.0

#: The reward's name for what stops a run (a missing or refused key): the call layer's.
RewardServerError = MLLMError


def expected_score(top_logprobs: list[dict[str, Any]] | None) -> float | None:
    """The mean digit under the model's distribution, renormalised over the digits present.

    Renormalising keeps the reward on the 0-5 scale when some mass goes to tokens like a
    space or "The"; those say nothing about the grade. ``None`` when no digit is listed.
    """
    mass = dict.fromkeys(range(6), 0.0)
    for entry in top_logprobs or []:
        token = str(entry.get("token", "")).strip()
        logprob = entry.get("logprob")
        if token in DIGITS and isinstance(logprob, int | float) and not math.isnan(logprob):
            mass[int(token)] += math.exp(logprob)
    total = sum(mass.values())
    if total <= 0.0:
        return None
    return sum(p * d for d, p in mass.items()) / total


def grade(
    top_logprobs: list[dict[str, Any]] | None, text: str | None
) -> tuple[float | None, str | None]:
    """The reward in [0, 1] from the answer token's distribution, else from the written
    digit; or ``None`` and the reason."""
    score = expected_score(top_logprobs)
    if score is not None:
        return score / 5.0, None
    content = text or ""
    match = _FIRST_DIGIT.search(content)
    if match:
        return int(match.group()) / 5.0, None
    return None, f"no digit in the reply: {content[:80]}"


def parse_reply(reply: dict[str, Any]) -> tuple[float | None, str | None]:
    """The reward in [0, 1] from a chat-completions body as the server sends it, or ``None``
    and the reason."""
    choices = reply.get("choices") if isinstance(reply, dict) else None
    if not choices or not isinstance(choices[0], dict):
        return None, f"bad reply: no choices in {json.dumps(reply)[:80]}"
    entry = response_entry(reply)
    return grade(entry["top_logprobs"], entry["text"])


def reply_reward(reply: Reply) -> tuple[float | None, str | None]:
    """The reward of one call layer reply, or ``None`` and the reason. The reason of a call
    that failed after its retries leaves out the attempt count, so that equal failures read
    alike in the training logs."""
    if reply.error:
        return None, reply.error.removesuffix(f" (after {reply.attempts} attempts)")
    return grade(reply.top_logprobs, reply.text)


class MLLMReward:
    """Grades edits through an OpenAI-compatible chat-completions server.

    Connections live for one ``score`` call only, so a grader server restarted between
    training steps is simply picked up at the next one.
    """

    name = "mllm"

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.model = str(cfg.get("model", DEFAULT_MODEL))
        self.api_key_env = str(cfg.get("api_key_env", "OPENAI_API_KEY"))
        self.timeout_s = float(cfg.get("timeout_s", 60))
        self.max_attempts = max(1, int(cfg.get("max_attempts", 3)))
        self.backoff_s = float(cfg.get("backoff_s", 1.0))
        self.concurrency = max(1, int(cfg.get("concurrency", 8)))
        self.top_logprobs = int(cfg.get("top_logprobs", 20))
        self.max_image_side = int(cfg.get("max_image_side", 512))
        self.prompt_version = str(cfg.get("prompt_version", DEFAULT_PROMPT_VERSION))
        if self.prompt_version not in PROMPTS:
            raise ValueError(
                f"rewards.mllm.prompt_version {self.prompt_version!r} is unknown; "
                f"known: {sorted(PROMPTS)}"
            )
        self.prompt = PROMPTS[self.prompt_version]
        self.reference = str(cfg.get("reference", DEFAULT_REFERENCE))
        if self.reference not in REFERENCES:
            raise ValueError(
                f"rewards.mllm.reference {self.reference!r} is unknown; known: {list(REFERENCES)}"
            )
        # One token, greedy, with its distribution: the expected score needs nothing more.
        self.settings = CallSettings(
            model=self.model,
            temperature=0.0,
            max_output_tokens=1,
            max_image_side=self.max_image_side,
            top_logprobs=self.top_logprobs,
        )
        transport = {
            "base_url": cfg.get("base_url"),
            "api_key_env": self.api_key_env,
            "timeout_s": self.timeout_s,
            "max_attempts": self.max_attempts,
            "backoff_s": self.backoff_s,
            "concurrency": self.concurrency,
            "max_retry_after_s": _MAX_RETRY_AFTER_S,
            "cache_dir": None,
        }
        self.caller = OpenAICaller(transport, log, section="rewards.mllm")
        self.base_url, self.url = self.caller.base_url, self.caller.url
        self.last_errors: list[str | None] = []

    # ------------------------------------------------------------------ requests
    def build_request(
        self,
        source: Image.Image,
        edited: Image.Image,
        prompt: str,
        target: Image.Image | None = None,
        tag: str = "",
    ) -> Request:
        """One request per item: images of different pairs never share a context, so one
        item's grade cannot lean on another's. ``target`` is shown when given; ``score``
        gives it only under ``reference: target``."""
        texts = self.prompt
        side = self.max_image_side
        parts: list[str | Part] = []
        if "question" in texts:
            shown = [source, edited] + ([target] if target is not None else [])
            parts += [Part.from_pil(image, side) for image in shown]
            question = texts["question" if target is None else "question_with_target"]
            parts.append(question.format(instruction=prompt))
        else:
            parts.append(texts["task"].format(instruction=prompt))
            labelled = [("input", source), ("edited", edited)]
            if target is not None:
                labelled.append(("target", target))
            for label, image in labelled:
                parts += [texts[label], Part.from_pil(image, side)]
            parts.append(texts["rubric"])
        return Request(
            parts=tuple(parts), settings=self.settings, prompt_version=self.prompt_version, tag=tag
        )

    # ------------------------------------------------------------------ scoring
    def score(
        self,
        inputs: list[Image.Image],
        edited: list[Image.Image],
        prompts: list[str],
        targets: list[Image.Image] | None = None,
    ) -> list[float | None]:
        """Rewards in [0, 1] in input order; ``None`` where an item could not be graded.

        ``targets`` are shown to the model only under ``reference: target``; with the
        default ``reference: none`` they are ignored, as the released reward never sees them.

        Items are sent concurrently because vLLM batches requests that arrive together, so a
        group of samples costs little more than one; the order of the results never depends
        on which answer came first.
        """
        n = len(inputs)
        if len(edited) != n or len(prompts) != n or (targets is not None and len(targets) != n):
            raise ValueError(
                f"score() needs lists of one length: {n} inputs, {len(edited)} edited, "
                f"{len(prompts)} prompts, {'no' if targets is None else len(targets)} targets"
            )
        rewards: list[float | None] = [None] * n
        errors: list[str | None] = [None] * n
        self.last_errors = errors
        if n == 0:
            return rewards
        with_target = self.reference == "target"
        if with_target and targets is None:
            raise ValueError("rewards.mllm.reference is 'target' but score() was given no targets")
        requests: dict[int, Request] = {}
        for i in range(n):
            target = targets[i] if with_target and targets is not None else None
            if with_target and target is None:
                errors[i] = "no target image to show (rewards.mllm.reference: target)"
                continue
            try:
                requests[i] = self.build_request(
                    inputs[i], edited[i], prompts[i], target, tag=f"edit{i}"
                )
            except (OSError, ValueError) as exc:
                errors[i] = f"bad image: {exc}"
        replies = self.caller.run(list(requests.values()), "mllm reward")
        for i, reply in zip(requests, replies, strict=True):
            rewards[i], errors[i] = reply_reward(reply)
        failed = [e for e in errors if e is not None]
        if failed:
            log.warning("mllm reward: %d of %d items without a reward (first: %s)",
                        len(failed), n, failed[0])  # fmt: skip
        return rewards


def make_mllm_reward(config: dict[str, Any], options: Any) -> MLLMReward:
    """The registry's factory (motionedit/rewards/__init__.py): the reward at ``rewards.mllm``."""
    return MLLMReward(config["rewards"]["mllm"])
