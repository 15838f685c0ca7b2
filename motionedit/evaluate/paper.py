"""The paper's published Table 1, beside the table this workflow measures.

``paper_table1.csv`` holds the numbers as the paper prints them (its header cites the
table). A model whose config entry names a row (``models.<name>.paper``) gets that row's
numbers beside its own in ``summary.md`` and in ``summary.csv`` (``paper_<metric>``
columns), so a reproduction is read off one page. Torch-free and pandas-free at import:
the config check reads the row names while the DAG is built.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

PAPER_TABLE1 = Path(__file__).with_name("paper_table1.csv")
#: The paper's Table 1 columns, as this workflow's summary names them.
PAPER_METRICS = ("overall", "fidelity", "preservation", "coherence", "mas", "win_rate")
#: What the side-by-side table shows: (metric, header, scale of our value to the paper's).
COMPARED = (("overall", "Overall", 1), ("mas", "MAS", 1), ("win_rate", "Win Rate (%)", 100))


def paper_rows(path: Path = PAPER_TABLE1) -> dict[str, dict[str, float]]:
    """Row name -> metric -> value, in the table's order."""
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    return {r["row"]: {m: float(r[m]) for m in PAPER_METRICS} for r in csv.DictReader(lines)}


def with_paper_columns(summary: Any, paper: dict[str, str | None]) -> Any:
    """``summary`` (one row per model) with ``paper_row`` and ``paper_<metric>`` columns,
    empty for a model that names no row; unchanged when no model names one."""
    if not any(paper.get(m) for m in summary["model"]):
        return summary
    rows = paper_rows()
    names = [paper.get(m) for m in summary["model"]]
    out = summary.copy()
    out["paper_row"] = names
    for metric in PAPER_METRICS:
        out[f"paper_{metric}"] = [rows[r][metric] if r else float("nan") for r in names]
    return out


def markdown_beside_paper(summary: Any) -> str:
    """Ours against the paper's, for the models that name a paper row ('' if none does)."""
    if "paper_row" not in summary:
        return ""
    named = summary[summary["paper_row"].notna()]
    if named.empty:
        return ""
    header = ["Model", "Paper's row"]
    for _, label, _ in COMPARED:
        header += [f"{label} here", f"{label} paper"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in named.iterrows():
        cells = [f"`{row['model']}`", str(row["paper_row"])]
        for metric, _, scale in COMPARED:
            ours = row.get(metric)
            cells.append("–" if ours is None or ours != ours else f"{ours * scale:.2f}")
            cells.append(f"{row[f'paper_{metric}']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    note = (
        f"The paper's numbers are its Table 1 ({PAPER_TABLE1.name}); its win rates are over "
        "its own set of models, so they compare across tables only roughly."
    )
    return "\n".join(lines) + "\n\n" + note + "\n"
