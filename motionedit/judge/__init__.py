"""Judging candidate pairs and rewriting their summaries into instructions."""

from __future__ import annotations

from typing import Any

from motionedit.judge.base import Judge, PairInput, Rewriter, Verdict


def make_judge(config: dict[str, Any]) -> Judge:
    backend = config["judge"]["backend"]
    if backend == "offline":
        from motionedit.judge.offline import OfflineJudge

        return OfflineJudge(config["judge"], config["prefilter"], config["flow"])
    raise ValueError(f"judge.backend: unknown backend {backend!r}; use one of ['offline']")


def make_rewriter(config: dict[str, Any]) -> Rewriter:
    backend = config["rewrite"]["backend"]
    if backend == "offline":
        from motionedit.judge.offline_rewriter import OfflineRewriter

        return OfflineRewriter()
    raise ValueError(f"rewrite.backend: unknown backend {backend!r}; use one of ['offline']")


__all__ = ["Judge", "PairInput", "Rewriter", "Verdict", "make_judge", "make_rewriter"]
