"""How far two MLLM backends agree on the same items: before a lab swaps Gemini for an open
model (or one open model for another), it asks both about a sample and looks here.

Keep decisions and categories are compared with Cohen's kappa, the agreement beyond what two
judges with the same rates would reach by chance (1: always agree, 0: chance, below 0: worse),
and a confusion table; scores with kappa on the 0-5 levels, the mean absolute difference and
Spearman's rank correlation. Items either backend could not answer (an error row) are left out
and counted, since an error is not a decision.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def cohen_kappa(a: pd.Series, b: pd.Series) -> float:
    """Cohen's kappa of two label series of equal length (NaN when nothing is compared;
    1.0 when both give every item the same single label)."""
    a, b = pd.Series(a).astype(str).to_numpy(), pd.Series(b).astype(str).to_numpy()
    if len(a) != len(b):
        raise ValueError(f"kappa needs two series of one length, got {len(a)} and {len(b)}")
    if not len(a):
        return float("nan")
    observed = float(np.mean(a == b))
    labels = np.union1d(a, b)
    expected = float(sum(np.mean(a == x) * np.mean(b == x) for x in labels))
    if expected == 1.0:
        return 1.0
    return (observed - expected) / (1.0 - expected)


def confusion(a: pd.Series, b: pd.Series, names: tuple[str, str]) -> pd.DataFrame:
    """Counts of (first backend's label, second's): rows the first, columns the second."""
    table = pd.crosstab(
        pd.Series(a, name=names[0]).astype(str), pd.Series(b, name=names[1]).astype(str)
    )
    labels = sorted(set(table.index) | set(table.columns))
    return table.reindex(index=labels, columns=labels, fill_value=0)


def judge_agreement(
    first: pd.DataFrame, second: pd.DataFrame, names: tuple[str, str] = ("a", "b")
) -> dict[str, Any]:
    """Agreement of two judge tables (``results/judge/...parquet`` rows) on their pairs."""
    both = first.merge(second, on="pair_id", suffixes=("_a", "_b"))
    answered = both["error_a"].isna() & both["error_b"].isna()
    ok = both[answered]
    keep_a, keep_b = ok["keep_a"].astype(bool), ok["keep_b"].astype(bool)
    kept = ok[keep_a & keep_b]
    return {
        "pairs": len(both),
        "errors": int((~answered).sum()),
        "keep_agreement": float((keep_a == keep_b).mean()) if len(ok) else float("nan"),
        "keep_kappa": cohen_kappa(keep_a, keep_b),
        "keep_confusion": confusion(keep_a, keep_b, names),
        "kept_by_both": len(kept),
        "category_kappa": cohen_kappa(kept["category_a"], kept["category_b"]),
        "category_confusion": confusion(kept["category_a"], kept["category_b"], names),
    }


def score_agreement(
    first: pd.DataFrame, second: pd.DataFrame, dimensions: tuple[str, ...]
) -> dict[str, Any]:
    """Agreement of two score tables (``results/eval/<model>/scores.parquet``) per dimension."""
    both = first.merge(second, on="id", suffixes=("_a", "_b"))
    out: dict[str, Any] = {"items": len(both)}
    for dim in dimensions:
        pair = both[[f"{dim}_a", f"{dim}_b"]].dropna()
        a, b = pair[f"{dim}_a"], pair[f"{dim}_b"]
        out[dim] = {
            "items": len(pair),
            "kappa": cohen_kappa(a.round().astype(int), b.round().astype(int)),
            "mean_abs_difference": float((a - b).abs().mean()) if len(pair) else float("nan"),
            "spearman": float(a.corr(b, method="spearman")) if len(pair) > 1 else float("nan"),
        }
    return out
