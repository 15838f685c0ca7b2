"""The one MLLM call layer: every stage that asks a multimodal LLM goes through it."""

from motionedit.mllm.gemini import GeminiCaller, MLLMError
from motionedit.mllm.request import CallSettings, Image, Reply, Request, call_record
from motionedit.mllm.usage import Usage, cost_usd, price_of, section_pricing

__all__ = [
    "CallSettings",
    "GeminiCaller",
    "Image",
    "MLLMError",
    "Reply",
    "Request",
    "Usage",
    "call_record",
    "cost_usd",
    "price_of",
    "section_pricing",
]
