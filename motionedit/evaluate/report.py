"""What the report's figures show, picked from the stage outputs: which benchmark samples
go into the grid and with which labels, the metrics drawn per motion category (as
motionedit/evaluate/metrics.py lists them), the training logs, the dataset's categories."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from motionedit.evaluate import figures
from motionedit.evaluate.metrics import BY_CATEGORY
from motionedit.evaluate.tables import dataset_motion, markdown_dataset_motion
from motionedit.tables import read_table


def pick_samples(bench: pd.DataFrame, n: int) -> list[str]:
    """``n`` benchmark ids, taken in turn from each motion category (sorted), so a small
    grid still shows every kind of motion; the same ids on every run."""
    bench = bench.assign(category=bench["category"].fillna("unknown")).sort_values("id")
    queues = [list(g["id"]) for _, g in bench.groupby("category", sort=True)]
    picked: list[str] = []
    while len(picked) < n and any(queues):
        for queue in queues:
            if queue and len(picked) < n:
                picked.append(queue.pop(0))
    return picked


def _label(row: pd.Series) -> str:
    if row.get("error"):
        return ""
    parts = [f"MAS {row['mas']:.1f}" + (" (static)" if row.get("static") else "")]
    if pd.notna(row.get("overall")):
        parts.append(f"Overall {row['overall']:.2f}")
    return " | ".join(parts)


def grid_samples(
    bench_table: str | Path, scores: dict[str, str | Path], ids: list[str]
) -> list[figures.GridSample]:
    """The grid's rows: input, target and each model's edit with its scores."""
    bench_table = Path(bench_table)
    bench = read_table(bench_table).set_index("id")
    tables = {m: read_table(p).set_index("id") for m, p in scores.items()}
    samples = []
    for id_ in ids:
        b = bench.loc[id_]
        edits, labels, errors = {}, {}, {}
        for model, table in tables.items():
            row = table.loc[id_] if id_ in table.index else None
            if row is None or row["error"]:
                edits[model] = None
                errors[model] = "no score row" if row is None else str(row["error"])
                continue
            edits[model] = Path(scores[model]).parent / str(row["path"])
            labels[model] = _label(row)
        samples.append(
            figures.GridSample(
                id=id_,
                instruction=str(b["prompt"]),
                category=None if pd.isna(b["category"]) else str(b["category"]),
                input=bench_table.parent / b["input_image"]["path"],
                target=bench_table.parent / b["target_image"]["path"],
                edits=edits,
                labels=labels,
                errors=errors,
            )
        )
    return samples


def benchmark_figures(
    bench_table: str | Path,
    scores: dict[str, str | Path],
    per_category_csv: str | Path,
    samples: int,
    outputs: dict[str, str],
) -> None:
    bench = read_table(bench_table)
    ids = pick_samples(bench, samples)
    figures.sample_grid(grid_samples(bench_table, scores, ids), list(scores), outputs["samples"])
    table = pd.read_csv(per_category_csv)
    for column, label in BY_CATEGORY.items():
        figures.metric_by_category(table, column, outputs[f"{column}_by_category"], label=label)


def training_figures(run_dirs: dict[str, str | Path], outputs: dict[str, str]) -> None:
    """The MotionNFT curves from each run's metrics.csv (a run without one is left out)."""
    runs = {}
    for name, folder in run_dirs.items():
        path = Path(folder) / "metrics.csv"
        if path.is_file():
            runs[name] = pd.read_csv(path)
    figures.mas_curves(runs, outputs["mas_curves"])
    figures.reward_curves(runs, outputs["reward_curves"])


def dataset_figures(
    stats_json: str | Path,
    train_table: str | Path,
    bench_table: str | Path,
    outputs: dict[str, str],
    log: logging.Logger,
) -> None:
    columns = ["category", "video_id", "motion_mean", "motion_peak"]
    splits = {
        "train": read_table(train_table)[columns],
        "bench": read_table(bench_table)[columns],
    }
    figures.dataset_funnel(json.loads(Path(stats_json).read_text()), outputs["funnel"])
    figures.category_histogram(
        pd.concat([t.assign(split=s) for s, t in splits.items()], ignore_index=True),
        outputs["categories"],
    )
    motion = dataset_motion(splits)
    motion.to_csv(outputs["motion"], index=False)
    Path(outputs["motion_md"]).write_text(
        "# Motion magnitude of the dataset\n\n" + markdown_dataset_motion(motion)
    )
    log.info("dataset: %s", ", ".join(f"{s} {len(t)} pairs" for s, t in splits.items()))
