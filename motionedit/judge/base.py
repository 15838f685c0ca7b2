"""The judge and rewriter interfaces every backend implements.

The judge answers the paper's inspection questions for one candidate pair (is the setting
consistent, is there a significant motion or interaction change, is the subject intact and
the image good) and summarises the change as "before -> after"; the rewriter turns that
into one imperative instruction. Backends differ in how they answer, never in what.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from motionedit.mllm.request import call_record


@dataclass
class PairInput:
    pair_id: str
    frame0: str
    frame1: str


@dataclass
class Verdict:
    setting_ok: bool
    motion_ok: bool
    subject_ok: bool
    quality_ok: bool
    before: str
    after: str
    summary: str
    category: str | None
    reason: str  # "ok" or the first failed check, e.g. "setting:warp_error"
    details: dict[str, Any] = field(default_factory=dict)  # evidence behind the verdict

    @property
    def keep(self) -> bool:
        return self.setting_ok and self.motion_ok and self.subject_ok and self.quality_ok

    def as_row(self) -> dict[str, Any]:
        row = asdict(self)
        row["keep"] = self.keep
        return row


@dataclass
class Outcome:
    """One pair's answer (a Verdict, or an instruction) or the error that stands in its place.

    ``calls`` holds the raw-log records of the MLLM calls behind it (see
    ``motionedit.mllm.call_record``); backends that call no MLLM leave it empty.
    """

    value: Any = None
    error: str | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)


def ask_each(
    items: list[Any],
    build: Callable[[Any], Any],
    caller: Any,
    desc: str,
    value: Callable[[dict[str, Any]], Any],
    unusable: str,
) -> list[Outcome]:
    """One outcome per item from one MLLM question each, asked together through ``caller``
    (a ``GeminiCaller``). An item whose request cannot be built (``build`` raises OSError,
    ValueError or TypeError, e.g. an unreadable image) is an error of that item alone,
    ``"<unusable>: <why>"``, and costs no call; the others are still asked."""
    requests: list[Any] = []
    outcomes: list[Outcome] = []
    for item in items:
        try:
            requests.append(build(item))
            outcomes.append(Outcome())
        except (OSError, ValueError, TypeError) as exc:
            requests.append(None)
            outcomes.append(Outcome(error=f"{unusable}: {exc}"))
    replies = iter(caller.run([r for r in requests if r is not None], desc))
    for request, outcome in zip(requests, outcomes, strict=True):
        if request is None:
            continue
        reply = next(replies)
        outcome.calls = [call_record(request, reply)]
        if reply.error:
            outcome.error = reply.error
        else:
            outcome.value = value(reply.parsed)
    return outcomes


class Judge(Protocol):
    backend: str
    model: str
    prompt_version: str

    def judge(self, pair: PairInput) -> Verdict: ...


class BatchJudge(Protocol):
    """A judge that answers a whole shard at once (concurrent or batched MLLM calls)."""

    backend: str
    model: str
    prompt_version: str

    def judge_all(self, pairs: list[PairInput]) -> list[Outcome]: ...


class Rewriter(Protocol):
    backend: str
    model: str
    prompt_version: str

    def rewrite(self, verdict: dict[str, Any]) -> str: ...


class BatchRewriter(Protocol):
    backend: str
    model: str
    prompt_version: str

    def rewrite_all(self, verdicts: list[dict[str, Any]]) -> list[Outcome]: ...
