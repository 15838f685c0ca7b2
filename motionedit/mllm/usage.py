"""Token usage of MLLM calls and what it costs, from the price table in ``mllm.prices``.

Prices are US dollars per million tokens; thinking tokens are billed as output, and a call
answered through the Batch API costs ``mllm.batch_discount`` of the standard price. Tokens
come from the server's usage report, so a cached answer carries the cost it had when it
was paid for and a rerun reports the same totals.

Every table a stage writes from MLLM answers (judge, rewrite, evaluation scores) carries the
same cost columns, filled by :func:`row_spending`, and :func:`spending_summary` totals them
for dataset/stats.json. They live here, not with any one stage, and the module imports
nothing heavy: the Snakemake DAG build reads prices through it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: The cost columns of every stage table whose rows come from MLLM calls.
COST_COLUMNS = ["input_tokens", "output_tokens", "cost_usd"]


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0  # answer plus thinking tokens, as billed

    @classmethod
    def from_metadata(cls, meta: Any) -> Usage:
        """From Gemini's ``usage_metadata`` or an OpenAI ``usage`` object (or either's dict
        in a cache entry)."""
        if meta is None:
            return cls()
        get = meta.get if isinstance(meta, dict) else lambda k: getattr(meta, k, None)
        if get("prompt_tokens") is not None or get("completion_tokens") is not None:
            return cls(int(get("prompt_tokens") or 0), int(get("completion_tokens") or 0))
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
    """What the calls of one config section (a stage with ``backend`` and its settings under
    the backend's name) cost: its model's price entry and the batch discount; None for a
    backend that calls nothing. A model on one's own OpenAI-compatible server costs nothing
    per token unless ``mllm.prices`` gives it a price; a Gemini model without one is
    unknown, not free."""
    backend = section["backend"]
    if backend in ("offline", "none"):
        return None
    price = price_of(mllm["prices"], section[backend]["model"])
    if price is None and backend == "openai":
        price = {"input": 0.0, "output": 0.0}
    return {"price": price, "batch_discount": mllm["batch_discount"]}


def cost_usd(
    usage: Usage, price: dict[str, float] | None, batch: bool, batch_discount: float
) -> float | None:
    """Estimated cost in dollars; None when the model has no price in the table."""
    if price is None:
        return None
    dollars = (usage.input_tokens * price["input"] + usage.output_tokens * price["output"]) / 1e6
    return round(dollars * (batch_discount if batch else 1.0), 8)


def row_spending(outcome: Any, pricing: dict[str, Any] | None) -> dict[str, Any]:
    """Tokens and estimated dollars of the calls behind one row (an ``Outcome``; cached calls
    included: the row reports what its answer cost, so a rerun gives the same table).

    ``pricing`` is what :func:`section_pricing` gives; None for a backend that calls nothing.
    """
    usage, dollars = Usage(), 0.0
    for call in outcome.calls:
        one = Usage(call["input_tokens"], call["output_tokens"])
        usage += one
        if pricing is not None:
            cost = cost_usd(one, pricing.get("price"), call["batch"], pricing["batch_discount"])
            dollars = None if cost is None or dollars is None else dollars + cost
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cost_usd": None if dollars is None else round(dollars, 8),
    }


def spending_summary(table: Any) -> dict[str, Any]:
    """Tokens and estimated dollars of a stage's table (a DataFrame with the cost columns;
    cached answers included)."""
    if not len(table) or "input_tokens" not in table:
        return {"input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0}
    cost = table["cost_usd"]
    return {
        "input_tokens": int(table["input_tokens"].sum()),
        "output_tokens": int(table["output_tokens"].sum()),
        # None when a model has no entry in mllm.prices: unknown, not free.
        "cost_usd": None if cost.isna().any() else round(float(cost.sum()), 6),
    }
