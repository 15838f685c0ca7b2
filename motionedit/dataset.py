"""The dataset stage: join the stage tables, split by source video, write train and bench.

The split is by video, never by pair: two windows of one video share subject, scene and
often the motion itself, so a video in both splits would let a model be tested on what it
was trained on. Videos are stratified by (source, dominant category) so the benchmark
covers each source and category about as the whole set does, and assignment is a
seeded hash of the video id, so adding videos does not reshuffle the ones already placed.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from motionedit import CATEGORIES
from motionedit.mllm import spending_summary
from motionedit.tables import read_tables

SPLITS = ("train", "bench")
#: Prefilter numbers carried into the dataset rows and summarised in stats.json.
MOTION_COLUMNS = ("motion_mean", "motion_peak", "moving_frac", "border_motion")
COLUMNS = [
    "id",
    "prompt",
    "category",
    "source",
    "video_id",
    "t0",
    "t1",
    *MOTION_COLUMNS,
    "width",
    "height",
    "frame0",
    "frame1",
]


def _rank(seed: int, key: str) -> str:
    return hashlib.sha1(f"{seed}:{key}".encode()).hexdigest()


def split_videos(pairs: pd.DataFrame, bench_fraction: float, seed: int) -> dict[str, str]:
    """Map every video id to "train" or "bench".

    Each stratum gets its share of benchmark videos by the largest-remainder method so the
    total is round(bench_fraction * videos); with at least two videos and a fraction
    strictly between 0 and 1, both splits get at least one.
    """
    if pairs.empty:
        return {}
    dominant = (
        pairs.groupby("video_id")["category"]
        .agg(lambda s: sorted(Counter(s).items(), key=lambda kv: (-kv[1], str(kv[0])))[0][0])
        .to_dict()
    )
    source = pairs.groupby("video_id")["source"].first().to_dict()
    strata: dict[tuple[str, str], list[str]] = {}
    for vid in sorted(dominant):
        strata.setdefault((source[vid], str(dominant[vid])), []).append(vid)
    n = len(dominant)
    total = round(bench_fraction * n)
    if 0 < bench_fraction < 1 and n >= 2:
        total = min(max(total, 1), n - 1)
    quotas = {k: bench_fraction * len(v) for k, v in strata.items()}
    alloc = {k: math.floor(q) for k, q in quotas.items()}
    by_remainder = sorted(quotas, key=lambda k: (-(quotas[k] - alloc[k]), _rank(seed, str(k))))
    for k in by_remainder:
        if sum(alloc.values()) >= total:
            break
        if alloc[k] < len(strata[k]):
            alloc[k] += 1
    while sum(alloc.values()) > total:  # only when total was capped at n - 1
        k = max(alloc, key=lambda k: (alloc[k], _rank(seed, str(k))))
        alloc[k] -= 1
    out = {}
    for k, vids in strata.items():
        ordered = sorted(vids, key=lambda v: _rank(seed, v))
        for i, vid in enumerate(ordered):
            out[vid] = "bench" if i < alloc[k] else "train"
    return out


def collect_pairs(frames: list[str], prefilter: list[str], instructions: list[str]) -> pd.DataFrame:
    """One row per pair that has an instruction, with everything the dataset needs."""
    ins = read_tables(instructions)
    ins = ins[ins["error"].isna() & ins["instruction"].notna()]
    fr = read_tables(frames)[["pair_id", "t0", "t1", "frame0", "frame1", "width", "height"]]
    pre = read_tables(prefilter)[["pair_id", *MOTION_COLUMNS]]
    df = ins.merge(fr, on="pair_id", how="left").merge(pre, on="pair_id", how="left")
    df = df.rename(columns={"pair_id": "id", "instruction": "prompt"})
    return df[COLUMNS].sort_values("id", kind="stable").reset_index(drop=True)


def _copy_image(src: str, dst: Path, image_format: str) -> None:
    if image_format == "png" and src.endswith(".png"):
        shutil.copyfile(src, dst)
        return
    img = cv2.imdecode(np.fromfile(src, np.uint8), cv2.IMREAD_COLOR)
    cv2.imwrite(str(dst), img, [cv2.IMWRITE_JPEG_QUALITY, 95])


def _image_struct(path: Path, rel: str) -> dict[str, Any]:
    return {"bytes": path.read_bytes(), "path": rel}


HF_FEATURES = {
    "id": {"dtype": "string", "_type": "Value"},
    "prompt": {"dtype": "string", "_type": "Value"},
    "input_image": {"_type": "Image"},
    "target_image": {"_type": "Image"},
    "category": {"dtype": "string", "_type": "Value"},
    "source": {"dtype": "string", "_type": "Value"},
    "video_id": {"dtype": "string", "_type": "Value"},
    "t0": {"dtype": "float64", "_type": "Value"},
    "t1": {"dtype": "float64", "_type": "Value"},
    "motion_mean": {"dtype": "float64", "_type": "Value"},
    "motion_peak": {"dtype": "float64", "_type": "Value"},
}


def write_split(rows: pd.DataFrame, split_dir: Path, image_format: str) -> None:
    """Images, metadata.jsonl (imagefolder style) and a Parquet file with embedded images."""
    images = split_dir / "images"
    if images.exists():
        shutil.rmtree(images)
    images.mkdir(parents=True)
    ext = "png" if image_format == "png" else "jpg"
    records, table_rows = [], []
    for r in rows.itertuples(index=False):
        rel = [f"images/{r.id}_input.{ext}", f"images/{r.id}_target.{ext}"]
        _copy_image(r.frame0, split_dir / rel[0], image_format)
        _copy_image(r.frame1, split_dir / rel[1], image_format)
        meta = {
            "id": r.id,
            "prompt": r.prompt,
            "image": rel,
            "category": r.category,
            "source": r.source,
            "video_id": r.video_id,
            "t0": float(r.t0),
            "t1": float(r.t1),
            "motion_mean": round(float(r.motion_mean), 6),
            "motion_peak": round(float(r.motion_peak), 6),
        }
        records.append(json.dumps(meta, ensure_ascii=False))
        table_rows.append(
            {k: meta[k] for k in HF_FEATURES if k in meta}
            | {
                "input_image": _image_struct(split_dir / rel[0], rel[0]),
                "target_image": _image_struct(split_dir / rel[1], rel[1]),
            }
        )
    (split_dir / "metadata.jsonl").write_text("".join(line + "\n" for line in records))
    arrow = {
        "Image": pa.struct([("bytes", pa.binary()), ("path", pa.string())]),
        "string": pa.string(),
        "float64": pa.float64(),
    }
    schema = pa.schema(
        [(k, arrow[v.get("dtype", v["_type"])]) for k, v in HF_FEATURES.items()],
        metadata={"huggingface": json.dumps({"info": {"features": HF_FEATURES}})},
    )
    table = pa.Table.from_pylist(table_rows, schema=schema)
    pq.write_table(table, split_dir / "data.parquet", compression="zstd")


def _reason_key(text: Any) -> str:
    """Group error messages that differ only in numbers or names of files."""
    text = str(text)
    text = re.sub(r"\d+(\.\d+)?", "#", text)
    return text[:80]


# Histogram edges in image diagonals, doubling: pair motions span two orders of magnitude,
# from a hand that turns to a person who walks across the frame. The last bin is open.
MAGNITUDE_EDGES = (0.0, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32)


def motion_magnitude(dataset: pd.DataFrame) -> dict[str, Any]:
    """Mean input -> target motion and its histogram: the paper's dataset-difficulty number.

    Each pair's value is its mean flow magnitude in image diagonals (the prefilter's
    ``motion_mean``, from the configured flow backend). MotionEdit reports 0.19 against about
    0.03-0.07 for older editing datasets; the paper does not spell out its definition, so the
    number is comparable in trend, not digit for digit.
    """
    values = dataset["motion_mean"].astype(float).to_numpy()
    upper = (*MAGNITUDE_EDGES[1:], None)
    bins = np.searchsorted(MAGNITUDE_EDGES, values, side="right") - 1
    return {
        "mean": round(float(values.mean()), 6),
        "by_split": {
            s: round(float(dataset.loc[dataset["split"] == s, "motion_mean"].mean()), 6)
            for s in SPLITS
            if (dataset["split"] == s).any()
        },
        "histogram": [
            {"from": lo, "to": hi, "pairs": int((bins == i).sum())}
            for i, (lo, hi) in enumerate(zip(MAGNITUDE_EDGES, upper, strict=True))
        ],
    }


def funnel(
    manifests: list[str],
    frames: list[str],
    prefilter: list[str],
    judge: list[str],
    instructions: list[str],
    dataset: pd.DataFrame,
) -> dict[str, Any]:
    """Counts per stage and per reason: where the videos and pairs went."""
    man, fr = read_tables(manifests), read_tables(frames)
    pre, jd, ins = read_tables(prefilter), read_tables(judge), read_tables(instructions)
    fr_pairs = fr[fr["pair_id"].notna()]

    def counts(series: pd.Series) -> dict[str, int]:
        return dict(sorted(Counter(series.map(_reason_key)).items()))

    def hist(df: pd.DataFrame) -> dict[str, int]:
        c = Counter(df["category"])
        return {k: int(c.get(k, 0)) for k in CATEGORIES}

    stats = {
        "videos": {
            "total": len(man),
            "usable": int(man["error"].isna().sum()),
            "errors": counts(man.loc[man["error"].notna(), "error"]),
            "by_source": {k: int(v) for k, v in sorted(Counter(man["source"]).items())},
        },
        "windows": {
            "videos_failed": counts(fr.loc[fr["pair_id"].isna(), "error"]),
            "total": len(fr_pairs),
            "extracted": int(fr_pairs["skip"].isna().sum()),
            "skipped": counts(fr_pairs.loc[fr_pairs["skip"].notna(), "skip"]),
        },
        "prefilter": {
            "candidates": len(pre),
            "kept": int(pre["keep"].sum()) if len(pre) else 0,
            "reasons": dict(sorted(Counter(pre["reason"]).items())) if len(pre) else {},
        },
        "judge": {
            "judged": len(jd),
            "kept": int(jd["keep"].fillna(False).astype(bool).sum()) if len(jd) else 0,
            "reasons": dict(sorted(Counter(jd["reason"]).items())) if len(jd) else {},
        },
        "rewrite": {
            "instructions": int(ins["instruction"].notna().sum()) if len(ins) else 0,
            "errors": counts(ins.loc[ins["error"].notna(), "error"]) if len(ins) else {},
        },
        "mllm_spending": {"judge": spending_summary(jd), "rewrite": spending_summary(ins)},
        "dataset": {
            s: {
                "pairs": int((dataset["split"] == s).sum()),
                "videos": int(dataset.loc[dataset["split"] == s, "video_id"].nunique()),
            }
            for s in SPLITS
        },
        "categories": {s: hist(dataset[dataset["split"] == s]) for s in SPLITS}
        | {"all": hist(dataset)},
    }
    if len(dataset):
        # Motion magnitudes (normalised by the image diagonal) of the pairs in the dataset,
        # overall and per category: how large the edits are that models are asked to make.
        def summary(values: pd.Series) -> dict[str, float]:
            v = values.astype(float)
            return {q: round(float(v.quantile(p)), 6) for q, p in
                    (("p10", 0.1), ("p50", 0.5), ("p90", 0.9))} | {
                "mean": round(float(v.mean()), 6)}  # fmt: skip

        stats["motion_magnitude"] = motion_magnitude(dataset)
        stats["motion"] = {c: summary(dataset[c]) for c in MOTION_COLUMNS}
        stats["motion_peak_by_category"] = {
            cat: summary(g["motion_peak"]) for cat, g in sorted(dataset.groupby("category"))
        }
    return stats


def build_dataset(
    manifests: list[str],
    frames: list[str],
    prefilter: list[str],
    judge: list[str],
    instructions: list[str],
    out_dir: str | Path,
    cfg: dict[str, Any],
    seed: int,
    flow_backend: str | None = None,
) -> dict[str, Any]:
    out_dir = Path(out_dir)
    pairs = collect_pairs(frames, prefilter, instructions)
    assignment = split_videos(pairs, cfg["bench_fraction"], seed)
    pairs["split"] = pairs["video_id"].map(assignment)
    for split in SPLITS:
        write_split(pairs[pairs["split"] == split], out_dir / split, cfg["image_format"])
    stats = funnel(manifests, frames, prefilter, judge, instructions, pairs)
    if flow_backend and "motion_magnitude" in stats:
        stats["motion_magnitude"]["flow"] = flow_backend
    (out_dir / "stats.json").write_text(json.dumps(stats, indent=2, sort_keys=False) + "\n")
    return stats
