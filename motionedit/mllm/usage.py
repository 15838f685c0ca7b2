"""Token usage of MLLM calls and what it costs, from the price table in ``mllm.prices``.

Prices are US dollars per million tokens; thinking tokens are billed as output, and a call
answered through the Batch API costs ``mllm.batch_discount`` of the standard price. Tokens
come from the server's usage report, so a cached answer carries the cost it had when it
was paid for and a rerun reports the same totals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0  # answer plus thinking tokens, as billed

    @classmethod
    def from_metadata(cls, meta: Any) -> Usage:
        """From the SDK's ``usage_metadata`` (or its dict in a cache entry)."""
        if meta is None:
            return cls()
        get = meta.get if isinstance(meta, dict) else lambda k: getattr(meta, k, None)
        return cls(
            input_tokens=int(get("prompt_token_count") or 0),
            output_tokens=int(get("candidates_token_count") or 0)
            + int(get("thoughts_token_count") or 0),
        )

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens
        )


def price_of(prices: dict[str, Any], model: str) -> dict[str, float] | None:
    """The price entry of ``model``, also found under its versionless name."""
    if model in prices:
        return prices[model]
    base = model.removeprefix("models/")
    for name, entry in prices.items():
        if base == name or base.startswith(f"{name}-0") or base.startswith(f"{name}-preview"):
            return entry
    return None


def section_pricing(section: dict[str, Any], mllm: dict[str, Any]) -> dict[str, Any] | None:
    """What the calls of one config section (a stage with ``backend`` and ``gemini``) cost:
    its model's price entry and the batch discount; None for a backend that calls nothing."""
    if section["backend"] in ("offline", "none"):
        return None
    return {
        "price": price_of(mllm["prices"], section["gemini"]["model"]),
        "batch_discount": mllm["batch_discount"],
    }


def cost_usd(
    usage: Usage, price: dict[str, float] | None, batch: bool, batch_discount: float
) -> float | None:
    """Estimated cost in dollars; None when the model has no price in the table."""
    if price is None:
        return None
    dollars = (usage.input_tokens * price["input"] + usage.output_tokens * price["output"]) / 1e6
    return round(dollars * (batch_discount if batch else 1.0), 8)
