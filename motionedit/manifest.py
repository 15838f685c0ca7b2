"""The fetch stage: a source shard's videos, probed, as one manifest table.

Every video the source named gets a row. A video that could not be fetched, decoded or
used keeps its row with ``error`` set, so the dataset funnel can be counted from the files
and a user can see why a particular video produced nothing.

Each usable video also gets two identities that the dataset split uses to keep copies of
one video out of different splits: ``sha256`` (the file's bytes: the same file under two
names) and ``signature`` (a difference hash of three frames: the same footage re-encoded,
rescaled or re-muxed, whose bytes all differ).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pandas as pd

from motionedit.download import sha256_of
from motionedit.runlog import progress
from motionedit.sources import fetch_shard
from motionedit.video import MAX_PIXELS, VideoError, VideoInfo, frame_index, plan_groups, probe

log = logging.getLogger(__name__)

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
    "signature",
    "error",
]

#: Where the signature's frames are taken, as fractions of the duration: away from the
#: first and last moments, where fades, titles and trims make copies of a video differ.
SIGNATURE_POINTS = (0.1, 0.5, 0.9)
#: Thumbnail size of a difference hash: 9x8 cells give 8x8 = 64 left/right comparisons.
DHASH_SIZE = (9, 8)
#: A thumbnail whose cells span fewer grey levels than this is flat (black, a fade, a
#: blank title card): its comparisons are noise, so it gets the empty hash.
FLAT_RANGE = 3.0


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
    add_signature(row, info)
    return row


def dhash(grey: np.ndarray) -> str:
    """64-bit difference hash of a grey image as 16 hex digits, or "" for a flat image.

    Each bit says whether a cell of a 9x8 area-averaged thumbnail is brighter than its
    left neighbour. Area averaging removes what re-encoding and rescaling change (noise,
    blocking, resolution), and comparing neighbours ignores brightness and contrast
    shifts (a full-range re-encode, a levels filter), so copies of one frame land a few
    bits apart while unrelated frames differ in about half of them.
    """
    thumb = cv2.resize(grey.astype(np.float32), DHASH_SIZE, interpolation=cv2.INTER_AREA)
    if float(thumb.max() - thumb.min()) < FLAT_RANGE:
        return ""
    bits = (thumb[:, 1:] > thumb[:, :-1]).ravel()
    return f"{int(np.packbits(bits).view('>u8')[0]):016x}"


def _grey_frames(path: str | Path, info: VideoInfo, indices: list[int]) -> dict[int, np.ndarray]:
    """Upright grey images of the given frames; the first frame at or after each one's time.

    Decoding starts at the keyframe before each group of :func:`plan_groups`, so a
    short-GOP video costs a few frames per point and a one-keyframe video one pass up to
    the last point. Matching on timestamps, and taking the first frame at or after one
    (rather than requiring it), tolerates variable frame rates and skipped frames.
    """
    out: dict[int, np.ndarray] = {}
    slack = 0.5 * info.frame_interval_s
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        tb = stream.time_base
        origin = stream.start_time or 0
        for group in plan_groups(info, indices):
            todo = [i for i in group if i not in out]
            if not todo:
                continue
            start = origin + int(info.frame_time(todo[0]) / tb)
            container.seek(start, stream=stream, backward=True)
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                t = float((frame.pts - origin) * tb)
                if t < info.frame_time(todo[0]) - slack:
                    continue
                grey = np.rot90(frame.to_ndarray(format="gray"), (frame.rotation or 0) // 90)
                while todo and info.frame_time(todo[0]) - slack <= t:
                    out[todo.pop(0)] = grey
                if not todo:
                    break
    return out


def content_signature(path: str | Path, info: VideoInfo) -> list[str]:
    """Difference hashes of the frames at :data:`SIGNATURE_POINTS` of the duration.

    Points are times, not frame numbers, so a copy at another frame rate hashes the same
    moments. Frames are turned upright first, as the frames stage extracts them, so a
    copy with its rotation baked in matches the original. Raises VideoError when a frame
    cannot be decoded.
    """
    indices = [frame_index(info, p * info.duration_s) for p in SIGNATURE_POINTS]
    try:
        frames = _grey_frames(path, info, sorted(set(indices)))
    except (av.error.FFmpegError, OSError) as exc:
        raise VideoError(f"decoding failed: {getattr(exc, 'strerror', None) or exc}") from None
    missing = [i for i in indices if i not in frames]
    if missing:
        raise VideoError(f"frames {missing} not in the stream")
    return [dhash(frames[i]) for i in indices]


def add_signature(row: dict[str, Any], info: VideoInfo) -> None:
    """Fill ``signature`` of a usable row; a frame that does not decode leaves it empty.

    A missing signature is not an error: the video can still be mined, and the split
    still catches exact copies by sha256 and shared frames by their bytes.
    """
    if row["error"]:
        return
    try:
        row["signature"] = content_signature(row["path"], info)
    except VideoError as exc:
        log.warning("%s: no content signature: %s", row["video_id"], exc)


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
