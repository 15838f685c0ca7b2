"""The judge and rewrite stages over one shard's tables."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from motionedit.judge.base import Judge, PairInput, Rewriter
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


def _empty_row(columns: list[str], pair: Any, who: Judge | Rewriter) -> dict[str, Any]:
    """A row with the pair's identity and who answered, so every row says where it came from."""
    return {c: None for c in columns} | {
        "pair_id": pair.pair_id,
        "video_id": pair.video_id,
        "source": pair.source,
        "backend": who.backend,
        "model": who.model,
        "prompt_version": who.prompt_version,
    }


def judge_shard(
    prefilter: pd.DataFrame,
    frames: pd.DataFrame,
    judge: Judge,
    raw_path: str | Path,
    log: logging.Logger,
) -> pd.DataFrame:
    """Judge the pairs the prefilter kept; write one raw JSON line per judged pair."""
    kept = prefilter[prefilter["keep"]].merge(
        frames[["pair_id", "frame0", "frame1"]], on="pair_id", how="left"
    )
    log.info("judging %d pairs with the %s judge", len(kept), judge.backend)
    rows = []
    with open(raw_path, "w", encoding="utf-8") as raw:
        for _, p in progress(kept.iterrows(), desc="judge", total=len(kept)):
            base = _empty_row(JUDGE_COLUMNS, p, judge)
            try:
                verdict = judge.judge(PairInput(p.pair_id, p.frame0, p.frame1))
            except (OSError, ValueError, cv2.error) as exc:
                row = base | {"keep": False, "reason": "error", "error": str(exc)}
                raw.write(json.dumps({"pair_id": p.pair_id, "error": str(exc)}) + "\n")
            else:
                v = _jsonable(verdict.as_row())
                row = base | v | {"details": json.dumps(v["details"], sort_keys=True)}
                raw.write(json.dumps({"pair_id": p.pair_id, **v}, sort_keys=True) + "\n")
            rows.append(row)
    df = pd.DataFrame(rows, columns=JUDGE_COLUMNS)
    for col in ("setting_ok", "motion_ok", "subject_ok", "quality_ok", "keep"):
        df[col] = df[col].astype("boolean")
    log.info("kept %d; reasons: %s", int(df["keep"].sum()), df["reason"].value_counts().to_dict())
    return df


def rewrite_shard(judged: pd.DataFrame, rewriter: Rewriter, log: logging.Logger) -> pd.DataFrame:
    """One instruction per kept pair; a failure is an error row, never a silent drop."""
    kept = judged[judged["keep"].fillna(False).astype(bool)]
    rows = []
    for _, j in progress(kept.iterrows(), desc="rewrite", total=len(kept)):
        row = _empty_row(REWRITE_COLUMNS, j, rewriter) | {"category": j.category}
        try:
            row["instruction"] = rewriter.rewrite(
                {"summary": j.summary, "category": j.category, "details": j.details}
            )
        except (OSError, ValueError, cv2.error) as exc:
            row["error"] = str(exc)
        rows.append(row)
    log.info("%d instructions written", len(rows))
    return pd.DataFrame(rows, columns=REWRITE_COLUMNS)
