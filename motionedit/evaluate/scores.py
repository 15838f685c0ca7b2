"""Scoring one model's benchmark edits: MAS per sample and, when an MLLM is configured, the
generative scores.

Every benchmark id gets exactly one row, whatever went wrong: an id inference made no
image for, or whose image cannot be read, is a row with ``error`` set and no scores, so
the tables count it instead of silently averaging over fewer samples. A sample whose
image is fine but whose MLLM call failed keeps its MAS and gets ``mllm_error``.

MAS is computed as the released scorer does (:func:`motionedit.metrics.score_edits`): the
input and target are resized to the edit's size and both flows come from one batched
call. The MLLM calls go through the shared call layer, so a rerun is answered from its
cache, and ``scores.raw.jsonl`` keeps the calls behind each row (images by hash only).
The columns and dtypes each metric writes are declared in motionedit/evaluate/metrics.py.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image

from motionedit.evaluate.metrics import METRICS, SCORE_DTYPES, metric
from motionedit.flow import FlowEstimator
from motionedit.images import image_from_cell
from motionedit.metrics import score_edits
from motionedit.mllm import COST_COLUMNS, Outcome, row_spending
from motionedit.runlog import progress
from motionedit.tables import write_table

MAS_COLUMNS = list(metric("mas").columns)
GENERATIVE_COLUMNS = list(metric("generative").columns)
#: The columns of ``scores.parquet``: the sample, each metric's scores and error column (see
#: motionedit/evaluate/metrics.py), then which MLLM answered and what it cost.
SCORE_COLUMNS = [
    "id",
    "category",
    "path",
    *(c for m in METRICS for c in [*m.columns, m.error] if c),
    "mllm_backend",
    "mllm_model",
    "prompt_version",
    *COST_COLUMNS,
]
#: Edits scored per flow call; bounds memory on large benchmarks.
CHUNK = 32


def _cell_path(cell: Any, root: Path) -> Path | None:
    path = cell.get("path") if isinstance(cell, dict) else cell
    return root / str(path) if path else None


def _edits(bench: pd.DataFrame, outputs: pd.DataFrame, eval_dir: Path) -> dict[str, Any]:
    """Per benchmark id: the edited image's path, or the reason there is none."""
    by_id = outputs.set_index("id")
    found: dict[str, Any] = {}
    for id_ in bench["id"]:
        if id_ not in by_id.index:
            found[id_] = "no output row for this id: run the model's `infer` job again"
            continue
        row = by_id.loc[id_]
        if row["error"]:
            found[id_] = f"inference: {row['error']}"
        elif not row["path"] or not (eval_dir / row["path"]).is_file():
            found[id_] = f"missing image: {eval_dir / str(row['path'])}"
        else:
            found[id_] = eval_dir / row["path"]
    return found


def _read(path: Path) -> Image.Image:
    with Image.open(path) as im:
        im.load()
        return im.convert("RGB")


def mas_rows(
    bench: pd.DataFrame,
    edits: dict[str, Any],
    root: Path,
    flow: FlowEstimator,
    metrics: dict[str, Any],
    desc: str = "MAS",
) -> dict[str, dict[str, Any]]:
    """MAS and its terms per id; an id whose images cannot be read gets ``error`` only."""
    rows: dict[str, dict[str, Any]] = {}
    todo = []
    for r in bench.itertuples():
        edit = edits[r.id]
        if not isinstance(edit, Path):
            rows[r.id] = {"error": edit}
            continue
        try:
            images = (_read(edit), image_from_cell(r.input_image, root))
            images += (image_from_cell(r.target_image, root),)
        except (OSError, ValueError) as exc:
            rows[r.id] = {"error": f"unreadable image: {exc}"}
            continue
        todo.append((r.id, *images))
    chunks = [todo[i : i + CHUNK] for i in range(0, len(todo), CHUNK)]
    for chunk in progress(chunks, desc, total=len(chunks)):
        ids, edited, inputs, targets = zip(*chunk, strict=True)
        scored = score_edits(
            inputs, edited, targets, flow, metrics["motion_reward"], metrics["mas"]
        )
        for id_, s in zip(ids, scored, strict=True):
            rows[id_] = {c: s[c] for c in MAS_COLUMNS} | {"error": ""}
    return rows


def score_model(
    bench_table: str | Path,
    outputs_table: str | Path,
    flow: FlowEstimator,
    metrics: dict[str, Any],
    scores_table: str | Path,
    raw_path: str | Path,
    log: logging.Logger,
    scorer: Any | None = None,
    pricing: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Score one model's edits of the benchmark; write ``scores.parquet`` and the raw log.

    ``scorer`` is a :class:`motionedit.evaluate.generative.GenerativeScorer` or None (no
    MLLM configured: the generative columns stay empty).
    """
    bench_table, outputs_table = Path(bench_table), Path(outputs_table)
    root, eval_dir = bench_table.parent, outputs_table.parent
    bench = pd.read_parquet(
        bench_table, columns=["id", "prompt", "category", "input_image", "target_image"]
    ).sort_values("id", ignore_index=True)
    edits = _edits(bench, pd.read_parquet(outputs_table), eval_dir)
    rows = mas_rows(bench, edits, root, flow, metrics, f"MAS {eval_dir.name}")

    generative: list[Outcome] = [Outcome() for _ in range(len(bench))]
    if scorer is not None:
        from motionedit.evaluate.generative import EditToScore

        items = [
            EditToScore(
                id=r.id,
                input_path=_cell_path(r.input_image, root),
                edited_path=edits[r.id] if not rows[r.id]["error"] else None,
                target_path=_cell_path(r.target_image, root),
                instruction=r.prompt,
            )
            for r in bench.itertuples()
        ]
        generative = scorer.score_all(items)

    table, raw = [], []
    for r, outcome in zip(bench.itertuples(), generative, strict=True):
        edit = edits[r.id]
        row = {c: None for c in SCORE_COLUMNS} | rows[r.id]
        row |= {
            "id": r.id,
            "category": r.category,
            "path": str(edit.relative_to(eval_dir)) if isinstance(edit, Path) else None,
        }
        if scorer is not None:
            row |= {
                "mllm_backend": scorer.backend,
                "mllm_model": scorer.model,
                "prompt_version": scorer.prompt_version,
                "mllm_error": outcome.error or "",
            } | row_spending(outcome, pricing)
            if outcome.value is not None:
                row |= {c: outcome.value.get(c) for c in GENERATIVE_COLUMNS}
            raw.append(
                json.dumps(
                    {
                        "id": r.id,
                        "scores": outcome.value,
                        "error": outcome.error,
                        "calls": outcome.calls,
                    },
                    sort_keys=True,
                )
            )
        table.append(row)
    df = pd.DataFrame(table, columns=SCORE_COLUMNS)
    for column, dtype in SCORE_DTYPES.items():
        df[column] = df[column].astype(dtype)
    write_table(df, scores_table)
    Path(raw_path).write_text("".join(f"{line}\n" for line in raw))
    errors = int((df["error"] != "").sum())
    mllm_errors = int((df["mllm_error"].fillna("") != "").sum())
    log.info(
        "%s: %d samples, %d without an image, %d MLLM errors; mean MAS %.2f",
        eval_dir.name, len(df), errors, mllm_errors, df["mas"].mean(),
    )  # fmt: skip
    return df
