"""The one MLLM call layer: every stage that asks a multimodal LLM goes through it.

- ``request``: what is asked (:class:`Request`, :class:`CallSettings`, :class:`Image`) and
  what came back (:class:`Reply`), and the raw-log record of a call;
- ``caller``: the policy every caller shares (answer cache, dedupe, concurrency, quota,
  retries) and :class:`MLLMError`; ``gemini``: :class:`GeminiCaller` (google-genai SDK,
  online or batch); ``openai_compatible``: :class:`OpenAICaller` (chat completions, vLLM);
- ``outcome``: :class:`Outcome` and :func:`ask_each`, one answer or error per item;
- ``usage``: tokens, prices and the cost columns of the stage tables;
- ``cache``, ``limits``: the answer cache and the rate limiter;
- :func:`make_caller`: the caller of a stage's ``backend`` (``gemini`` or ``openai``), with
  the shared policy of the ``mllm`` config section.

Nothing else in the project imports an MLLM client library. Importing the package is light
(no torch, cv2, pydantic or HTTP client): the Snakemake DAG build reads prices through it,
so the callers are imported on first use of their names.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from motionedit.mllm.outcome import Outcome, ask_each
from motionedit.mllm.request import CallSettings, Image, Reply, Request, call_record
from motionedit.mllm.usage import (
    COST_COLUMNS,
    Usage,
    cost_usd,
    price_of,
    row_spending,
    section_pricing,
    spending_summary,
)

if TYPE_CHECKING:
    from motionedit.mllm.caller import Caller, MLLMError
    from motionedit.mllm.gemini import GeminiCaller
    from motionedit.mllm.openai_compatible import OpenAICaller

#: Names imported from their module when first used, with the client libraries they need.
_LAZY = {
    "Caller": "motionedit.mllm.caller",
    "MLLMError": "motionedit.mllm.caller",
    "GeminiCaller": "motionedit.mllm.gemini",
    "OpenAICaller": "motionedit.mllm.openai_compatible",
}


#: The MLLM backends a stage may name, besides the ones that call nothing.
BACKENDS = ("gemini", "openai")


def openai_transport(mllm: dict[str, Any]) -> dict[str, Any]:
    """The ``mllm`` section as an OpenAI-compatible caller takes it: the shared policy
    (concurrency, quota, retries, cache) with the server of ``mllm.openai``."""
    return {k: v for k, v in mllm.items() if k != "openai"} | mllm["openai"]


def make_caller(backend: str, mllm: dict[str, Any], log: Any) -> Caller:
    """The caller of ``backend`` for a stage, from the validated ``mllm`` section."""
    if backend == "gemini":
        from motionedit.mllm.gemini import GeminiCaller

        return GeminiCaller(mllm, log)
    if backend == "openai":
        from motionedit.mllm.openai_compatible import OpenAICaller

        return OpenAICaller(openai_transport(mllm), log, section="mllm.openai")
    raise ValueError(f"no MLLM backend {backend!r}; use one of {', '.join(BACKENDS)}")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BACKENDS",
    "COST_COLUMNS",
    "CallSettings",
    "Caller",
    "GeminiCaller",
    "Image",
    "MLLMError",
    "OpenAICaller",
    "Outcome",
    "Reply",
    "Request",
    "Usage",
    "ask_each",
    "call_record",
    "cost_usd",
    "make_caller",
    "openai_transport",
    "price_of",
    "row_spending",
    "section_pricing",
    "spending_summary",
]
