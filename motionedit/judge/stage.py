"""The judge and rewrite stages over one shard's tables.

Each pair gets exactly one row: the backend's answer, or an error row whose ``error`` says
what failed (``keep`` is left empty on a judge error row, so a failure is never counted as
a discard). Rows that come from MLLM calls also carry their tokens and estimated cost, and
the raw log (JSONL, one line per pair) keeps every call behind the row: cache key, model
version, latency, usage, finish reason, the answer, and images by hash only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from motionedit.judge.base import PairInput
from motionedit.mllm import COST_COLUMNS, Outcome, row_spending, spending_summary
from motionedit.runlog import progress

JUDGE_COLUMNS = [
    "pair_id",
    "video_id",
    "source",
    "setting_ok",
    "motion_ok",
    "subject_ok",
    "quality_ok",
    "keep",
    "reason",
    "before",
    "after",
    "summary",
    "category",
    "details",
    "backend",
    "model",
    "prompt_version",
    *COST_COLUMNS,
    "error",
]
REWRITE_COLUMNS = [
    "pair_id",
    "video_id",
    "source",
    "instruction",
    "category",
    "backend",
    "model",
    "prompt_version",
    *COST_COLUMNS,
    "error",
]


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float):
        return round(value, 6)
    return value


def _empty_row(columns: list[str], pair: Any, who: Any) -> dict[str, Any]:
    """A row with the pair's identity and who answered, so every row says where it came from."""
    return {c: None for c in columns} | {
        "pair_id": pair.pair_id,
        "video_id": pair.video_id,
        "source": pair.source,
        "backend": who.backend,
        "model": who.model,
        "prompt_version": who.prompt_version,
    }


def _one_by_one(items: list[Any], answer: Callable[[Any], Any], desc: str) -> list[Outcome]:
    """Outcomes of a backend that answers one item at a time without calling an MLLM."""
    outcomes = []
    for item in progress(items, desc=desc, total=len(items)):
        try:
            outcomes.append(Outcome(value=answer(item)))
        except (OSError, ValueError, cv2.error) as exc:
            outcomes.append(Outcome(error=str(exc)))
    return outcomes


def _raw_line(pair_id: str, fields: dict[str, Any], outcome: Outcome) -> str:
    return json.dumps({"pair_id": pair_id, **fields, "calls": outcome.calls}, sort_keys=True)


def _pair_input(p: Any) -> PairInput:
    times = getattr(p, "strip_times", None)
    return PairInput(
        p.pair_id,
        p.frame0,
        p.frame1,
        getattr(p, "strip", None),
        None if times is None else list(times),
        getattr(p, "motion", None),
    )


def judge_shard(
    prefilter: pd.DataFrame,
    frames: pd.DataFrame,
    judge: Any,
    raw_path: str | Path,
    log: logging.Logger,
    pricing: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Judge the pairs the prefilter kept; write one raw JSON line per judged pair.

    ``pricing`` is ``{"price": {"input": ..., "output": ...} or None, "batch_discount": ...}``
    for backends that call an MLLM.
    """
    # The strip and the saved motion serve the offline judge; an MLLM judge sees two frames.
    extra = [c for c in ("strip", "strip_times") if c in frames]
    kept = prefilter[prefilter["keep"]].merge(
        frames[["pair_id", "frame0", "frame1", *extra]], on="pair_id", how="left"
    )
    log.info("judging %d pairs with the %s judge", len(kept), judge.backend)
    pairs = [_pair_input(p) for p in kept.itertuples()]
    if hasattr(judge, "judge_all"):
        outcomes = judge.judge_all(pairs)
    else:
        outcomes = _one_by_one(pairs, judge.judge, "judge")
    rows = []
    with open(raw_path, "w", encoding="utf-8") as raw:
        for p, outcome in zip(kept.itertuples(), outcomes, strict=True):
            base = _empty_row(JUDGE_COLUMNS, p, judge) | row_spending(outcome, pricing)
            if outcome.error is not None:
                kind = outcome.error.split(":", 1)[0]
                reason = f"error:{kind}" if outcome.calls else "error"
                row = base | {"reason": reason, "error": outcome.error}
                raw.write(_raw_line(p.pair_id, {"error": outcome.error}, outcome) + "\n")
            else:
                v = _jsonable(outcome.value.as_row())
                row = base | v | {"details": json.dumps(v["details"], sort_keys=True)}
                raw.write(_raw_line(p.pair_id, v, outcome) + "\n")
            rows.append(row)
    df = pd.DataFrame(rows, columns=JUDGE_COLUMNS)
    for col in ("setting_ok", "motion_ok", "subject_ok", "quality_ok", "keep"):
        df[col] = df[col].astype("boolean")
    log.info("kept %d; reasons: %s", int(df["keep"].sum()), df["reason"].value_counts().to_dict())
    _log_spending(df, log)
    return df


def rewrite_shard(
    judged: pd.DataFrame,
    rewriter: Any,
    raw_path: str | Path,
    log: logging.Logger,
    pricing: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """One instruction per kept pair; a failure is an error row, never a silent drop."""
    kept = judged[judged["keep"].fillna(False).astype(bool)]
    verdicts = [
        {
            "pair_id": j.pair_id,
            "before": j.before,
            "after": j.after,
            "summary": j.summary,
            "category": j.category,
            "details": j.details,
        }
        for j in kept.itertuples()
    ]
    if hasattr(rewriter, "rewrite_all"):
        outcomes = rewriter.rewrite_all(verdicts)
    else:
        outcomes = _one_by_one(verdicts, rewriter.rewrite, "rewrite")
    rows = []
    with open(raw_path, "w", encoding="utf-8") as raw:
        for j, outcome in zip(kept.itertuples(), outcomes, strict=True):
            row = _empty_row(REWRITE_COLUMNS, j, rewriter) | row_spending(outcome, pricing)
            row |= {"category": j.category, "instruction": outcome.value, "error": outcome.error}
            fields = {"instruction": outcome.value, "error": outcome.error}
            raw.write(_raw_line(j.pair_id, fields, outcome) + "\n")
            rows.append(row)
    df = pd.DataFrame(rows, columns=REWRITE_COLUMNS)
    log.info("%d instructions written, %d errors", int(df["instruction"].notna().sum()),
             int(df["error"].notna().sum()))  # fmt: skip
    _log_spending(df, log)
    return df


def _log_spending(df: pd.DataFrame, log: logging.Logger) -> None:
    spent = spending_summary(df)
    if spent["input_tokens"]:
        cost = spent["cost_usd"]
        priced = "unknown (no price for the model)" if cost is None else f"${cost:.4f}"
        log.info("tokens: %d in, %d out; estimated cost %s",
                 spent["input_tokens"], spent["output_tokens"], priced)  # fmt: skip
