"""The MLLM rewriter: the judge's "before -> after" summary as one user-style instruction.

The paper's rewriting module cleans the judge's summary into an imperative instruction such
as "Make the woman turn her head toward the dog." Gemini or an open model behind an
OpenAI-compatible server (``rewrite.backend``) writes it; ``instruction_problem``
checks its shape (one imperative sentence, no analysis, no mention of frames or videos).
An instruction with the wrong shape is asked for again with the reason attached, up to
``rewrite.max_attempts`` times; after that the row is an error naming the problem.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from motionedit.judge.prompts import DEFAULT_PROMPTS, REWRITE_PROMPTS, REWRITE_RETRY, RewriteAnswer
from motionedit.mllm import CallSettings, Outcome, Request, call_record, make_caller

MAX_WORDS = 30
#: Words an imperative instruction does not start with (articles, pronouns, auxiliaries...).
# fmt: off
_NOT_A_VERB = frozenset([
    "a", "an", "the", "this", "that", "these", "those", "there", "here", "it", "he", "she",
    "they", "we", "i", "you", "his", "her", "their", "its", "my", "our", "your", "in", "on",
    "at", "from", "to", "with", "after", "before", "then", "now", "first", "next", "finally",
    "is", "are", "was", "were", "been", "being", "has", "had", "does", "did", "can", "could",
    "will", "would", "should", "may", "might", "image", "picture", "frame", "video", "scene",
    "subject", "person",
])
#: Verbs that end in -ing yet are imperative ("Bring the cup to her lips.").
_ING_VERBS = frozenset([
    "bring", "cling", "fling", "ring", "sing", "sling", "spring", "sting", "string", "swing",
    "wring",
])
# fmt: on
#: Phrases about the media rather than the edit ("in the last frame", "the video shows",
#: "the camera pans"); a camera or a picture frame as objects in the scene are fine.
_MEDIA = re.compile(
    r"\b(first|last|second|final|next|previous|earlier|later|input|output|target|source|"
    r"original|edited) (frame|image|picture|photo|shot)s?\b"
    r"|\b(in|of|from|across|between) (the |both |these )?(two )?(frames?|clips?|video|footage)\b"
    r"|\b(the|this) (video|footage)\b"
    r"|\bcamera (pans?|zooms?|moves?|tilts?|angle|view)\b|->|→",
    re.IGNORECASE,
)


def instruction_problem(text: str) -> str | None:
    """Why ``text`` is not one imperative, user-style instruction; None when it is."""
    text = text.strip()
    if not text:
        return "empty instruction"
    if "\n" in text:
        return "more than one line"
    body = text.rstrip(".!")
    if re.search(r"[.!?;]\s", body) or body.endswith("?"):
        return "more than one sentence"
    words = re.findall(r"[A-Za-z']+", body)
    if not words or not text[0].isalpha() or not text[0].isupper():
        return "does not start with a capitalised word"
    first = words[0].lower()
    if first in _NOT_A_VERB or (first.endswith("ing") and first not in _ING_VERBS):
        return f"not imperative (starts with {words[0]!r})"
    if len(words) > MAX_WORDS:
        return f"{len(words)} words, more than {MAX_WORDS}"
    media = _MEDIA.search(text)
    if media:
        return f"mentions {media.group(0)!r}"
    return None


class MLLMRewriter:
    def __init__(self, rewrite_cfg: dict[str, Any], transport: dict[str, Any], log: logging.Logger):
        self.backend = rewrite_cfg["backend"]
        self.settings = CallSettings.from_config(rewrite_cfg[self.backend])
        self.model = self.settings.model
        self.prompt_version = (
            rewrite_cfg["prompt_version"] or DEFAULT_PROMPTS["rewrite"][self.backend]
        )
        self.prompt = REWRITE_PROMPTS[self.prompt_version]
        self.max_attempts = rewrite_cfg["max_attempts"]
        self.caller = make_caller(self.backend, transport, log)

    def request(
        self, verdict: dict[str, Any], retry: tuple[int, str, str] | None = None
    ) -> Request:
        before, after = verdict.get("before"), verdict.get("after")
        if not before or not after:  # a summary written as one "before -> after" string
            before, _, after = str(verdict.get("summary", "")).partition(" -> ")
        text = self.prompt.format(before=before, after=after, category=verdict.get("category"))
        if retry is not None:
            attempt, problem, previous = retry
            text += REWRITE_RETRY.format(attempt=attempt, problem=problem, previous=previous)
        return Request(
            parts=(text,),
            settings=self.settings,
            prompt_version=self.prompt_version,
            schema=RewriteAnswer,
            tag=str(verdict.get("pair_id", "")),
        )

    def rewrite_all(self, verdicts: list[dict[str, Any]]) -> list[Outcome]:
        outcomes = [Outcome() for _ in verdicts]
        pending = {i: self.request(v) for i, v in enumerate(verdicts)}
        for attempt in range(1, self.max_attempts + 1):
            if not pending:
                break
            order = sorted(pending)
            replies = self.caller.run([pending[i] for i in order], f"rewrite (try {attempt})")
            retry: dict[int, Request] = {}
            for i, reply in zip(order, replies, strict=True):
                outcome = outcomes[i]
                outcome.calls.append(call_record(pending[i], reply))
                if reply.error:
                    outcome.error = reply.error
                    continue
                instruction = " ".join(reply.parsed["instruction"].split())
                problem = instruction_problem(instruction)
                if problem is None:
                    outcome.value, outcome.error = instruction, None
                elif attempt < self.max_attempts:
                    retry[i] = self.request(verdicts[i], (attempt + 1, problem, instruction))
                else:
                    outcome.error = (
                        f"instruction_shape: {problem} after {attempt} attempts: "
                        f"{json.dumps(instruction)}"
                    )
            pending = retry
        return outcomes
