"""One item's answer from an MLLM question, or the error that stands in its place.

Judging pairs, rewriting instructions and scoring benchmark edits all ask one question per
item and need the same bookkeeping: an item whose request cannot even be built (an
unreadable image) fails alone and costs no call, every other item gets its reply's value or
error, and each outcome keeps the raw-log records of the calls behind it for the stage's
raw log and cost columns. That bookkeeping is the call layer's, not any one stage's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from motionedit.mllm.request import call_record


@dataclass
class Outcome:
    """One item's answer (a Verdict, an instruction, scores) or the error in its place.

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
    (a ``GeminiCaller`` or any caller with ``run(requests, desc)``). An item whose request
    cannot be built (``build`` raises OSError, ValueError or TypeError, e.g. an unreadable
    image) is an error of that item alone, ``"<unusable>: <why>"``, and costs no call; the
    others are still asked."""
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
