"""The benchmark's tables: the paper's Table 1 per model, the same per motion category, and
the motion statistics of the dataset.

Every interval is a percentile bootstrap over benchmark samples. All models and metrics
share one set of resamples (drawn from the config's seed), so the intervals are paired:
a sample drawn twice counts twice for every model at once, as it would in a benchmark
that happened to contain it twice. Numbers are rounded before they are written, so the
same scores give byte-identical CSV and Markdown. Table 1's columns, and the headline
scores a win rate can be decided on, come from motionedit/evaluate/metrics.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from motionedit.evaluate.metrics import HEADERS, HEADLINES, MEANS, TABLE1
from motionedit.evaluate.winrate import outcomes, pairwise_matrix, resampled_win_rates, win_rates

DECIMALS = 4


def resample_counts(n: int, resamples: int, seed: int) -> np.ndarray:
    """resamples x n: how often each sample is drawn in each bootstrap resample."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n)) if n else np.zeros((resamples, 0), int)
    counts = np.zeros((resamples, n))
    np.add.at(counts, (np.arange(resamples)[:, None], idx), 1.0)
    return counts


def _interval(resampled: np.ndarray, level: float) -> tuple[float, float]:
    resampled = resampled[~np.isnan(resampled)]
    if not resampled.size:
        return float("nan"), float("nan")
    tail = (1 - level) / 2
    lo, hi = np.quantile(resampled, [tail, 1 - tail])
    return float(lo), float(hi)


def mean_ci(values: np.ndarray, counts: np.ndarray, level: float) -> tuple[float, float, float]:
    """Mean over the scored samples (NaN left out) and its bootstrap interval."""
    values = np.asarray(values, dtype=float)
    ok = ~np.isnan(values)
    if not ok.any():
        return float("nan"), float("nan"), float("nan")
    with np.errstate(invalid="ignore", divide="ignore"):
        resampled = (counts @ np.where(ok, values, 0.0)) / (counts @ ok)
    return (float(values[ok].mean()), *_interval(resampled, level))


def win_basis(scores: pd.DataFrame, setting: str) -> str:
    """Which score decides a comparison: with ``auto``, the first headline in Table 1 order
    that has any score (Overall when the MLLM scored anything), else the last (MAS)."""
    if setting != "auto":
        return setting
    scored = [c for c in HEADLINES if c in scores and scores[c].notna().any()]
    return scored[0] if scored else HEADLINES[-1]


def _wide(scores: pd.DataFrame, column: str, ids: list[str], models: list[str]) -> pd.DataFrame:
    wide = scores.pivot(index="id", columns="model", values=column)
    return wide.reindex(index=ids, columns=models)


def summarize(
    scores: pd.DataFrame,
    models: list[str],
    *,
    basis: str,
    draw_margin: float,
    resamples: int,
    level: float,
    seed: int,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per model with every Table 1 metric and its interval, the pairwise matrix).

    ``scores`` is the long table of every model's ``scores.parquet`` with a ``model``
    column. A model's means are over its scored samples; ``errors`` counts the samples it
    made no image for and ``mllm_errors`` those the MLLM could not score.
    """
    ids = sorted(scores["id"].unique())
    counts = resample_counts(len(ids), resamples, seed)
    failed = _wide(scores.assign(failed=scores["error"].fillna("") != ""), "failed", ids, models)
    results = outcomes(_wide(scores, basis, ids, models), failed.fillna(True), draw_margin)
    rates = win_rates(results, models).set_index("model")
    resampled = resampled_win_rates(results, models, counts)
    rows = []
    for model in models:
        own = scores[scores["model"] == model].set_index("id").reindex(ids)
        row: dict[str, Any] = {
            "model": model,
            "samples": len(ids),
            "errors": int((own["error"].fillna("missing") != "").sum()),
            "mllm_errors": int((own["mllm_error"].fillna("") != "").sum()),
            "static": int(own["static"].fillna(False).astype(bool).sum()),
        }
        for metric in MEANS:
            mean, lo, hi = mean_ci(own[metric].to_numpy(float), counts, level)
            row |= {metric: mean, f"{metric}_lo": lo, f"{metric}_hi": hi}
        lo, hi = _interval(resampled[model], level)
        row |= {
            "win_rate": rates.loc[model, "win_rate"],
            "win_rate_lo": lo,
            "win_rate_hi": hi,
            "win_basis": basis,
            "comparisons": int(rates.loc[model, "comparisons"]),
        }
        rows.append(row)
    summary = pd.DataFrame(rows).round(DECIMALS)
    return summary, pairwise_matrix(results, models).round(DECIMALS)


def per_category(scores: pd.DataFrame, models: list[str], **settings: Any) -> pd.DataFrame:
    """:func:`summarize` within each motion category (win rates within the category too)."""
    scores = scores.assign(category=scores["category"].fillna("unknown"))
    parts = []
    for category in sorted(scores["category"].unique()):
        summary, _ = summarize(scores[scores["category"] == category], models, **settings)
        parts.append(summary.assign(category=category))
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    front = ["category", "model"]
    return table[front + [c for c in table.columns if c not in front]] if len(table) else table


def _cell(row: pd.Series, metric: str, scale: float, decimals: int) -> str:
    value = row.get(metric)
    if value is None or pd.isna(value):
        return "–"
    text = f"{value * scale:.{decimals}f}"
    lo, hi = row.get(f"{metric}_lo"), row.get(f"{metric}_hi")
    if lo is not None and hi is not None and not (pd.isna(lo) or pd.isna(hi)):
        text += f" [{lo * scale:.{decimals}f}, {hi * scale:.{decimals}f}]"
    return text


def markdown_table1(summary: pd.DataFrame, level: float, group: str | None = None) -> str:
    """Table 1 of the paper as Markdown: mean [interval] per metric, with the sample counts.

    ``group`` names an extra leading column (``category`` for the per-category table).
    """
    basis = summary["win_basis"].iloc[0] if len(summary) else "overall"
    headers = ([group.capitalize()] if group else []) + ["Model"]
    headers += [
        c.header if c.column != "win_rate" else f"Win Rate on {HEADERS[basis]} (%)" for c in TABLE1
    ]
    headers += ["Scored / samples"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for _, row in summary.iterrows():
        cells = [str(row[group])] if group else []
        cells.append(f"`{row['model']}`")
        cells += [_cell(row, c.column, c.scale, c.decimals) for c in TABLE1]
        scored = row["samples"] - row["errors"]
        cells.append(f"{scored} / {row['samples']}")
        lines.append("| " + " | ".join(cells) + " |")
    notes = [
        f"Mean [{level:.0%} bootstrap interval] over benchmark samples; generative scores 0-5, "
        "MAS 0-100."
    ]
    if basis == "mas":
        notes.append(
            "No MLLM scored these edits (evaluate.generative.backend: none), so the generative "
            "columns are empty and the win rate compares MAS instead of Overall."
        )
    errors = summary[summary["errors"] > 0]
    if len(errors):
        notes.append(
            "A model that made no image for a sample loses its comparisons on that sample; "
            "its means are over the samples it made."
        )
    return "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n"


def markdown_pairwise(matrix: pd.DataFrame) -> str:
    """Row model's win rate (%) against each column model."""
    models = list(matrix.columns)
    lines = [
        "| vs | " + " | ".join(f"`{m}`" for m in models) + " |",
        "|" + "---|" * (len(models) + 1),
    ]
    for a in models:
        cells = ["–" if pd.isna(v) else f"{100 * v:.1f}" for v in matrix.loc[a, models]]
        lines.append(f"| `{a}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def dataset_motion(splits: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Motion magnitude per split and category (and over all categories): pairs, videos,
    and the distribution of the mean and peak flow (units: image diagonals)."""
    rows = []
    for split, table in splits.items():
        table = table.assign(category=table["category"].fillna("unknown"))
        groups = [("all", table)] + [(c, g) for c, g in table.groupby("category", sort=True)]
        for category, g in groups:
            mean, peak = g["motion_mean"].astype(float), g["motion_peak"].astype(float)
            rows.append(
                {
                    "split": split,
                    "category": category,
                    "pairs": len(g),
                    "videos": int(g["video_id"].nunique()),
                    "motion_mean": mean.mean(),
                    "motion_mean_median": mean.median(),
                    "motion_mean_p90": mean.quantile(0.9),
                    "motion_peak": peak.mean(),
                    "motion_peak_median": peak.median(),
                    "motion_peak_p90": peak.quantile(0.9),
                }
            )
    return pd.DataFrame(rows).round(6)


def markdown_dataset_motion(table: pd.DataFrame) -> str:
    headers = [
        "Split",
        "Category",
        "Pairs",
        "Videos",
        "Mean motion (median, p90)",
        "Peak motion (median, p90)",
    ]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for r in table.itertuples():
        lines.append(
            f"| {r.split} | {r.category} | {r.pairs} | {r.videos} | "
            f"{r.motion_mean:.4f} ({r.motion_mean_median:.4f}, {r.motion_mean_p90:.4f}) | "
            f"{r.motion_peak:.4f} ({r.motion_peak_median:.4f}, {r.motion_peak_p90:.4f}) |"
        )
    note = (
        "Flow magnitudes in image diagonals, measured by the prefilter between the input and "
        "the target frame; the mean is over the whole frame, the peak is the 95th percentile "
        "inside the moving region."
    )
    return "\n".join(lines) + "\n\n" + note + "\n"
