"""The miner run on the clips of tests/realistic_clips.py, through the library as the
workflow runs it, and each clip's outcome set beside its truth.

Shared by tests/test_realistic_mining.py and benchmarks/realistic_clips.py.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pandas as pd

from motionedit.config import validate_config
from motionedit.frames import extract_shard
from motionedit.judge import make_judge, make_rewriter
from motionedit.judge.stage import judge_shard, rewrite_shard
from motionedit.manifest import build_manifest
from motionedit.prefilter import prefilter_shard
from motionedit.sources import shard_names

SOURCE = "realistic"

#: Reasons of the pipeline (their prefix before ':') that count as rejecting a negative for
#: the reason it was built with. A flickering still scene dropped as static or as a changed
#: setting is dropped for a right reason too, and so is a degraded clip whose flow cannot
#: be followed.
RIGHT_REASONS = {
    "static": ("static", "motion"),
    "camera_motion": ("camera_motion",),
    "scene_cut": ("scene_cut", "setting"),
    "subject_leaves": ("subject_leaves", "subject", "exit"),
    "degraded": ("quality", "untrackable"),
    "lighting": ("lighting_change", "static", "setting", "motion"),
}

#: Words that say a truth direction in an instruction, and words that contradict it.
SAYS = {
    "right": (r"\bright\b", r"\bleft\b"),
    "left": (r"\bleft\b", r"\bright\b"),
    "up": (r"\bup(ward)?s?\b|\brises?\b|\braise", r"\bdown(ward)?s?\b"),
    "down": (r"\bdown(ward)?s?\b|\bfalls?\b|\blower", r"\bup(ward)?s?\b"),
    "clockwise": (r"(?<!counter-)(?<!anti)\bclockwise\b", r"counter-clockwise|anticlockwise"),
    "counter-clockwise": (r"counter-clockwise|anticlockwise", r"(?<!counter-)(?<!anti)clockwise"),
    "larger": (
        r"\blarger\b|\bbigger\b|\bgrow|\bcloser\b|toward the (camera|viewer)|approach",
        r"\bsmaller\b|\bshrink|away from the (camera|viewer)",
    ),  # fmt: skip
    "smaller": (
        r"\bsmaller\b|\bshrink|away from the (camera|viewer)",
        r"\blarger\b|\bbigger\b|\bgrow",
    ),  # fmt: skip
    "together": (
        r"toward(s)? each other|together|\bcloser\b|approach|\bmeet",
        r"\bapart\b|away from each other",
    ),  # fmt: skip
}


def direction_matches(truth: str, text: str | None) -> bool | None:
    """Whether ``text`` names every part of the truth direction and contradicts none;
    None when there is nothing to compare."""
    if not truth or not isinstance(text, str):
        return None
    text = text.lower()
    for part in truth.split(" and "):
        says, contradicts = SAYS[part]
        if not re.search(says, text) or re.search(contradicts, text):
            return False
    return True


def local_config(config: dict[str, Any], folder: Path) -> dict[str, Any]:
    """``config`` with one ``local`` source over ``folder``'s MP4 files, validated again so
    the source gets its defaults as any configured source would."""
    source = {"name": SOURCE, "kind": "local", "path_glob": f"{folder.resolve()}/*.mp4"}
    return validate_config(config | {"sources": [source]})


def mine(config: dict[str, Any], workdir: Path, log: logging.Logger) -> dict[str, pd.DataFrame]:
    """Every stage's table over all shards of the local source."""
    (source,) = config["sources"]
    judge = make_judge(config, config.get("mllm"), log)
    rewriter = make_rewriter(config, config.get("mllm"), log)
    tables: dict[str, list[pd.DataFrame]] = {"frames": [], "pre": [], "judged": [], "rewrite": []}
    for shard in shard_names(source):
        base = workdir / source["name"] / shard
        man = build_manifest(source, shard, base / "videos", config["video"], log)
        frames = extract_shard(
            man, base / "frames", config["frames"], log, strip_side=config["flow"]["max_side"]
        )
        pre = prefilter_shard(
            frames, config["prefilter"], config["flow"], log, motion_dir=base / "motion"
        )
        judged = judge_shard(pre, frames, judge, base / "judge.raw.jsonl", log)
        rewritten = rewrite_shard(judged, rewriter, base / "rewrite.raw.jsonl", log)
        for key, df in zip(tables, (frames, pre, judged, rewritten), strict=True):
            tables[key].append(df)
    return {k: pd.concat(v, ignore_index=True) for k, v in tables.items()}


def clip_name(video_id: str) -> str:
    return video_id.rsplit("/", 1)[-1].removesuffix(".mp4")


def merge(truth: pd.DataFrame, t: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per clip (its one window): truth beside what every stage said."""
    frames = t["frames"][t["frames"]["pair_id"].notna()][["pair_id", "video_id", "t0", "t1"]]
    pre = t["pre"].drop(columns=["video_id", "source", "error"], errors="ignore")
    pre = pre.rename(columns={"keep": "pre_keep", "reason": "pre_reason"})
    judged = t["judged"][["pair_id", "keep", "reason", "category", "after", "details"]].rename(
        columns={"keep": "judge_keep", "reason": "judge_reason", "category": "judged_category"}
    )
    rewrite = t["rewrite"][["pair_id", "instruction"]]
    df = (
        frames.merge(pre, on="pair_id", how="left")
        .merge(judged, on="pair_id", how="left")
        .merge(rewrite, on="pair_id", how="left")
    )
    df["name"] = df["video_id"].map(clip_name)
    df = truth.merge(df, on="name", how="left")
    df["pre_keep"] = df["pre_keep"].fillna(False).astype(bool)
    df["kept"] = df["pre_keep"] & df["judge_keep"].fillna(False).astype(bool)
    df["reason_got"] = [
        (r.judge_reason if r.pre_keep else r.pre_reason) if not r.kept else "kept"
        for r in df.itertuples()
    ]
    df["right_reason"] = [
        not r.keep and not r.kept and str(r.reason_got).split(":")[0] in RIGHT_REASONS[r.reason]
        for r in df.itertuples()
    ]
    df["category_ok"] = df["kept"] & (df["judged_category"] == df["category"])
    text = [r.instruction if isinstance(r.instruction, str) else r.after for r in df.itertuples()]
    df["direction_ok"] = [
        direction_matches(r.direction, s) if r.kept else None
        for r, s in zip(df.itertuples(), text, strict=True)
    ]
    return df
