"""Judging candidate pairs and rewriting their summaries into instructions.

What lives here: ``base.py`` (the Judge and Rewriter interfaces, PairInput, Verdict);
``offline.py`` and ``offline_rewriter.py`` (the deterministic backends of the default);
``mllm_judge.py``, ``mllm_rewriter.py`` and ``prompts.py`` (the MLLM backends, Gemini or an
OpenAI-compatible server through motionedit/mllm, and their prompts and answer schemas);
``stage.py`` (the judge and
rewrite stages over one shard's tables). Backends are chosen by ``judge.backend`` and
``rewrite.backend`` in :func:`make_judge` and :func:`make_rewriter` below.
"""

from __future__ import annotations

import logging
from typing import Any

from motionedit.judge.base import (
    BatchJudge,
    BatchRewriter,
    Judge,
    PairInput,
    Rewriter,
    Verdict,
)
from motionedit.mllm import BACKENDS, Outcome


def make_judge(
    config: dict[str, Any],
    transport: dict[str, Any] | None = None,
    log: logging.Logger | None = None,
) -> Judge | BatchJudge:
    """The configured judge; ``transport`` is the ``mllm`` section for MLLM backends."""
    backend = config["judge"]["backend"]
    if backend == "offline":
        from motionedit.judge.offline import OfflineJudge

        return OfflineJudge(config["judge"], config["prefilter"], config["flow"])
    if backend in BACKENDS:
        from motionedit.judge.mllm_judge import MLLMJudge

        return MLLMJudge(config["judge"], _need(transport), log or logging.getLogger(__name__))
    raise ValueError(f"judge.backend: unknown backend {backend!r}; use offline, gemini or openai")


def make_rewriter(
    config: dict[str, Any],
    transport: dict[str, Any] | None = None,
    log: logging.Logger | None = None,
) -> Rewriter | BatchRewriter:
    backend = config["rewrite"]["backend"]
    if backend == "offline":
        from motionedit.judge.offline_rewriter import OfflineRewriter

        return OfflineRewriter()
    if backend in BACKENDS:
        from motionedit.judge.mllm_rewriter import MLLMRewriter

        rewrite_cfg = config["rewrite"]
        return MLLMRewriter(rewrite_cfg, _need(transport), log or logging.getLogger(__name__))
    raise ValueError(f"rewrite.backend: unknown backend {backend!r}; use offline, gemini or openai")


def _need(transport: dict[str, Any] | None) -> dict[str, Any]:
    if transport is None:
        raise ValueError("an MLLM backend needs the validated 'mllm' section of the config")
    return transport


__all__ = [
    "BatchJudge",
    "BatchRewriter",
    "Judge",
    "Outcome",
    "PairInput",
    "Rewriter",
    "Verdict",
    "make_judge",
    "make_rewriter",
]
