"""The `summarize` stage: every model's scores into Table 1, per category, and win rates."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from motionedit.evaluate.paper import markdown_beside_paper, with_paper_columns
from motionedit.evaluate.tables import (
    markdown_pairwise,
    markdown_table1,
    per_category,
    summarize,
    win_basis,
)
from motionedit.tables import read_table


def load_scores(paths: dict[str, str | Path]) -> pd.DataFrame:
    """Every model's ``scores.parquet`` in one long table with a ``model`` column."""
    frames = [read_table(p).assign(model=m) for m, p in paths.items()]
    return pd.concat(frames, ignore_index=True)


def _section(title: str, body: str) -> str:
    return f"\n## {title}\n\n{body}" if body else ""


def _write(path: str | Path, text: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text)


def write_summary(
    paths: dict[str, str | Path],
    settings: dict[str, Any],
    seed: int,
    outputs: dict[str, str],
    log: logging.Logger,
    paper: dict[str, str | None] | None = None,
) -> pd.DataFrame:
    """Write summary.{csv,md}, per_category.{csv,md} and winrate.csv; return the summary.

    ``settings`` holds the ``evaluate.win_rate`` and ``evaluate.bootstrap`` sections;
    ``paper`` maps a model to the row of the paper's Table 1 it reproduces, if any.
    """
    scores = load_scores(paths)
    models = list(paths)
    level = settings["bootstrap"]["level"]
    basis = win_basis(scores, settings["win_rate"]["basis"])
    options = {
        "basis": basis,
        "draw_margin": settings["win_rate"]["draw_margin"],
        "resamples": settings["bootstrap"]["resamples"],
        "level": level,
        "seed": seed,
    }
    summary, matrix = summarize(scores, models, **options)
    summary = with_paper_columns(summary, paper or {})
    summary.to_csv(outputs["summary"], index=False)
    by_category = per_category(scores, models, **options)
    by_category.to_csv(outputs["per_category"], index=False)
    matrix.to_csv(outputs["winrate"])
    _write(
        outputs["summary_md"],
        "# MotionEdit-Bench\n\n"
        + markdown_table1(summary, level)
        + _section("Beside the paper's Table 1", markdown_beside_paper(summary))
        + "\n## Pairwise win rates (row against column, %)\n\n"
        + markdown_pairwise(matrix),
    )
    _write(
        outputs["per_category_md"],
        "# MotionEdit-Bench per motion category\n\n"
        + markdown_table1(by_category, level, group="category"),
    )
    for row in summary.itertuples():
        log.info(
            "%s: MAS %.2f, win rate %.3f on %s, %d of %d samples without an image",
            row.model, row.mas, row.win_rate, basis, row.errors, row.samples,
        )  # fmt: skip
    return summary
