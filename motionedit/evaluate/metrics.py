"""The benchmark's metrics: what each writes per sample and what the tables print of it.

Scoring (motionedit/evaluate/scores.py), the tables (tables.py) and the report's figures
(report.py) all name the same columns; declaring them once here keeps ``scores.parquet``,
Table 1 and the schema's ``evaluate.win_rate.basis`` in step. A metric declares:

- its per-sample score columns with their dtypes, in ``scores.parquet`` order, and the
  column that says why a sample has none;
- the columns it adds to Table 1 (header, printed scale and decimals, and the position in
  the paper's order: Overall, Fidelity, Preservation, Coherence, MAS, then Win Rate);
- its headline column, which a win rate can be decided on (``evaluate.win_rate.basis``;
  ``auto`` takes the first headline in Table 1 order that was scored);
- the columns the report draws by motion category, with their axis labels.

How a metric is computed stays with its stage; a new one is its computation plus one
:class:`Metric` in :data:`METRICS` (and its headline in the schema's ``basis`` enum, which
tests/test_registries.py checks). This module imports nothing beyond the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TableColumn:
    """One column of Table 1: a mean with its bootstrap interval, printed times ``scale``."""

    column: str
    header: str
    #: Place in the paper's order of Table 1's columns (lowest first).
    position: int
    scale: float = 1.0
    decimals: int = 2


@dataclass(frozen=True)
class Metric:
    name: str
    #: Per-sample score columns and their pandas dtypes, in ``scores.parquet`` order.
    columns: dict[str, str] = field(default_factory=dict)
    #: The column saying why a sample has no score ("" when it has), after ``columns``.
    error: str | None = None
    table1: tuple[TableColumn, ...] = ()
    #: The column a win rate can be decided on, if any.
    headline: str | None = None
    #: Columns the report draws per motion category, with their axis labels.
    by_category: dict[str, str] = field(default_factory=dict)


#: Every metric, in the order their columns stand in ``scores.parquet``: MAS first, as it
#: is computed from the images; then the MLLM's generative scores; the win rate last, which
#: the tables compute from the others' headlines.
METRICS: tuple[Metric, ...] = (
    Metric(
        "mas",
        columns={
            "mas": "float64",
            "d_ovl": "float64",
            "d_mag": "float64",
            "d_dir": "float64",
            "m_pred": "float64",
            "m_gt": "float64",
            "static": "boolean",
        },
        # Set when a sample has no readable image, so it has no score of any metric.
        error="error",
        table1=(TableColumn("mas", "MAS", 5),),
        headline="mas",
        by_category={"mas": "MAS (0-100, higher is better)"},
    ),
    Metric(
        "generative",
        columns={
            "fidelity": "float64",
            "preservation": "float64",
            "coherence": "float64",
            "overall": "float64",
            # EditScore's own overall (0-10), set by the editscore-v1 prompt only.
            "editscore": "float64",
        },
        error="mllm_error",
        table1=(
            TableColumn("overall", "Overall", 1),
            TableColumn("fidelity", "Fidelity", 2),
            TableColumn("preservation", "Preservation", 3),
            TableColumn("coherence", "Coherence", 4),
        ),
        headline="overall",
    ),
    Metric(
        "win_rate",
        table1=(TableColumn("win_rate", "Win Rate (%)", 6, scale=100.0, decimals=1),),
    ),
)

#: Every per-sample score column and its dtype, in ``scores.parquet`` order.
SCORE_DTYPES: dict[str, str] = {c: t for m in METRICS for c, t in m.columns.items()}
#: Table 1's columns in the paper's order.
TABLE1: tuple[TableColumn, ...] = tuple(
    sorted((c for m in METRICS for c in m.table1), key=lambda c: c.position)
)
#: The Table 1 columns that are means of a score column (all but the win rate).
MEANS: tuple[str, ...] = tuple(c.column for c in TABLE1 if c.column in SCORE_DTYPES)
#: The columns a win rate can be decided on, in Table 1 order (``auto`` tries them so).
HEADLINES: tuple[str, ...] = tuple(
    c.column for c in TABLE1 if c.column in {m.headline for m in METRICS}
)
#: Header of each Table 1 column.
HEADERS: dict[str, str] = {c.column: c.header for c in TABLE1}
#: The report's per-category figures: column and axis label.
BY_CATEGORY: dict[str, str] = {c: label for m in METRICS for c, label in m.by_category.items()}


def metric(name: str) -> Metric:
    """The registered metric called ``name``."""
    for m in METRICS:
        if m.name == name:
            return m
    raise KeyError(f"no metric {name!r}; known: {', '.join(m.name for m in METRICS)}")
