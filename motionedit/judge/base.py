"""The judge and rewriter interfaces every backend implements.

The judge answers the paper's inspection questions for one candidate pair (is the setting
consistent, is there a significant motion or interaction change, is the subject intact and
the image good) and summarises the change as "before -> after"; the rewriter turns that
into one imperative instruction. Backends differ in how they answer, never in what.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from motionedit.mllm import Outcome


@dataclass
class PairInput:
    pair_id: str
    frame0: str
    frame1: str
    #: The window's sampled frames side by side (frames stage), and their times; the
    #: offline judge follows the motion through them. None: the two frames only.
    strip: str | None = None
    strip_times: list[float] | None = None
    #: The prefilter's chained flow of the window (``.npz``), reused rather than measured again.
    motion: str | None = None


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
