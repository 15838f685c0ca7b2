"""The fetch stage: a source shard's videos, probed, as one manifest table.

Every video the source named gets a row. A video that could not be fetched, decoded or
used keeps its row with ``error`` set, so the dataset funnel can be counted from the files
and a user can see why a particular video produced nothing.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from motionedit.download import sha256_of
from motionedit.runlog import progress
from motionedit.sources import fetch_shard
from motionedit.video import MAX_PIXELS, VideoError, probe

COLUMNS = [
    "video_id",
    "source",
    "path",
    "origin",
    "sha256",
    "bytes",
    "duration_s",
    "fps",
    "n_frames",
    "width",
    "height",
    "codec",
    "rotation",
    "keyframes_s",
    "frame_times_s",
    "error",
]


def check_usable(info, video_cfg: dict[str, Any]) -> str | None:
    """Why a decodable video is still unusable (too small), or None; probe checks duration."""
    short = min(info.width, info.height)
    if short < video_cfg["min_side"]:
        return f"resolution {info.width}x{info.height} below video.min_side={video_cfg['min_side']}"
    return None


def probe_row(video_id: str, source: str, path: str, origin: str, video_cfg: dict) -> dict:
    row: dict[str, Any] = {c: None for c in COLUMNS}
    row.update(video_id=video_id, source=source, path=path, origin=origin)
    p = Path(path)
    try:
        row["bytes"] = p.stat().st_size
        row["sha256"] = sha256_of(p)
        info = probe(
            p,
            max_duration_s=video_cfg["max_duration_s"],
            max_pixels=video_cfg.get("max_pixels", MAX_PIXELS),
        )
    except VideoError as exc:
        row["error"] = str(exc)
        return row
    except OSError as exc:
        row["error"] = f"cannot read the file: {exc.strerror or exc}"
        return row
    row.update(
        duration_s=info.duration_s,
        fps=info.fps,
        n_frames=info.n_frames,
        width=info.width,
        height=info.height,
        codec=info.codec,
        rotation=info.rotation,
        keyframes_s=info.keyframes_s,
        frame_times_s=info.frame_times_s,
    )
    row["error"] = check_usable(info, video_cfg)
    return row


def build_manifest(
    source: dict, shard: str, out_dir: str | Path, video_cfg: dict, log: logging.Logger
) -> pd.DataFrame:
    fetched = fetch_shard(source, shard, Path(out_dir))
    log.info("source %s shard %s: %d videos fetched", source["name"], shard, len(fetched))
    rows = []
    for item in progress(fetched, desc=f"probe {source['name']}/{shard}"):
        if item.error or not item.path:
            row = {c: None for c in COLUMNS}
            row.update(
                video_id=item.video_id,
                source=source["name"],
                path=item.path,
                origin=item.origin,
                error=item.error or "no file",
            )
        else:
            row = probe_row(item.video_id, source["name"], item.path, item.origin, video_cfg)
        if row["error"]:
            log.warning("%s: %s", item.video_id, row["error"])
        rows.append(row)
    df = pd.DataFrame(rows, columns=COLUMNS)
    for col in ("bytes", "n_frames", "width", "height", "rotation"):
        df[col] = df[col].astype("Int64")
    for col in ("duration_s", "fps"):
        df[col] = df[col].astype("float64")
    return df.sort_values("video_id", kind="stable").reset_index(drop=True)
