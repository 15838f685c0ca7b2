"""The frames stage: cut each video into windows and save the first and last frame of each.

A window's two frames are a candidate (input, target) pair. Frames shared by neighbouring
windows (the end of one is the start of the next with the default stride) are decoded and
stored once; all frames of a video come from one decoding pass over it.

That pass also keeps ``samples`` frames spread evenly through each window (its two ends
included), small, at the flow's working size, and writes them side by side as one strip
image per window: the prefilter and the judge follow the motion through them, since the
two end frames alone do not show where a subject went over 3 seconds. A sampled frame
that falls in a hole of the stream or does not decode is left out of the strip; the
window only fails when one of its ends does.

A window's frame at time t is the frame shown at t, found among the timestamps the probe
recorded, so variable-rate video is cut like any other. A window whose frame is missing
(t falls in a hole of the stream, or the decoder did not deliver the frame) keeps its row
with ``error`` set and no frame paths; the video's other windows are unaffected. Only a
video that cannot be opened at all, or a failure that is not the video's (a PNG that cannot
be written, the time limit), becomes one error row for the whole video.
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from motionedit.pairs import read_rgb
from motionedit.runlog import progress
from motionedit.video import VideoError, VideoInfo, extract_frames, frame_index, hole_at

COLUMNS = [
    "pair_id",
    "video_id",
    "source",
    "window",
    "t0",
    "t1",
    "frame0",
    "frame1",
    "strip",
    "strip_times",
    "width",
    "height",
    "skip",
    "error",
]


def video_key(video_id: str) -> str:
    """A short, readable, filesystem-safe key that is unique per video id."""
    tail = re.sub(r"[^A-Za-z0-9_-]+", "_", video_id.rsplit("/", 1)[-1].rsplit(".", 1)[0])
    digest = hashlib.sha1(video_id.encode("utf-8")).hexdigest()[:10]
    return f"{tail.strip('_')[:40] or 'video'}-{digest}"


def window_bounds(duration_s: float, fps: float, cfg: dict[str, Any]) -> list[tuple[float, float]]:
    """Windows of ``window_seconds`` every ``stride_seconds`` that fit in the video.

    The last frame of a video is shown at duration - 1/fps, so a window "ends" there at
    the latest; a window is complete when it spans window_seconds up to one frame's slack.
    """
    win, stride = cfg["window_seconds"], cfg["stride_seconds"]
    last_t = max(0.0, duration_s - 1.0 / fps)
    min_len = win * cfg["min_window_fraction"] - 1.0 / fps - 1e-9
    out = []
    k = 0
    while len(out) < cfg["max_windows_per_video"]:
        t0 = k * stride
        if t0 >= last_t:
            break
        t1 = min(t0 + win, last_t)
        if t1 - t0 < min_len:
            break
        out.append((round(t0, 6), round(t1, 6)))
        k += 1
    return out


def scene_cut_times(path: str, threshold: float) -> list[float]:
    """Times of hard cuts found by PySceneDetect's content detector (decodes every frame)."""
    from scenedetect import ContentDetector, detect

    try:
        scenes = detect(path, ContentDetector(threshold=threshold))
    except Exception as exc:  # the library raises many kinds; any of them is this video's fault
        raise VideoError(f"scene detection failed: {type(exc).__name__}: {exc}") from None
    return [start.seconds for start, _ in scenes[1:]]


#: JPEG quality of the strips of sampled frames.
STRIP_QUALITY = 95


def sample_indices(info: VideoInfo, t0: float, t1: float, samples: int) -> list[int]:
    """Distinct frame indices shown at ``samples`` evenly spaced times from t0 to t1.

    The two ends are always in; an inner time that falls in a hole of the stream is left
    out, and a low frame rate can give fewer distinct frames than asked.
    """
    ends = frame_index(info, t0), frame_index(info, t1)
    inner = [
        frame_index(info, float(t))
        for t in np.linspace(t0, t1, max(samples, 2))[1:-1]
        if not hole_at(info, float(t))
    ]
    return sorted({ends[0], ends[1], *inner})


class StripWriter:
    """Small copies of the sampled frames, each window's strip written once it is complete.

    Frames arrive in time order, so a window is complete when a frame at or past its last
    sample has arrived (a sample that never came is missing for good); frames no pending
    window needs are dropped then, which keeps memory to about one window's samples.
    """

    def __init__(self) -> None:
        self.pending: list[tuple[dict, list[int], Path]] = []
        self.small: dict[int, np.ndarray] = {}
        self.written: list[Path] = []

    def add(self, row: dict, indices: list[int], path: Path) -> None:
        self.pending.append((row, indices, path))
        self.pending.sort(key=lambda item: item[1][-1])

    def wanted(self) -> set[int]:
        return {i for _, indices, _ in self.pending for i in indices}

    def take(self, idx: int, rgb: np.ndarray, times: list[float]) -> None:
        """``rgb``: the frame at the flow's working size, as the decoder shrank it."""
        if any(idx in indices for _, indices, _ in self.pending):
            # Kept in OpenCV's BGR order, so the strip is written without another copy.
            self.small[idx] = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        while self.pending and self.pending[0][1][-1] <= idx:
            self._write(*self.pending.pop(0), times)
        first = min((indices[0] for _, indices, _ in self.pending), default=idx + 1)
        self.small = {i: f for i, f in self.small.items() if i >= first}

    def finish(self, times: list[float]) -> None:
        while self.pending:
            self._write(*self.pending.pop(0), times)
        self.small.clear()

    def remove(self) -> None:
        for p in self.written:
            p.unlink(missing_ok=True)

    def _write(self, row: dict, indices: list[int], path: Path, times: list[float]) -> None:
        got = [i for i in indices if i in self.small]
        if indices[0] not in self.small or indices[-1] not in self.small:
            return  # an end is missing: the window becomes an error row
        strip = np.concatenate([self.small[i] for i in got], axis=1)
        # JPEG at quality 95: deflating a PNG of 19 frames took ten times as long as the
        # decoding, and the frames come out of a lossy video codec anyway.
        if not cv2.imwrite(str(path), strip, [cv2.IMWRITE_JPEG_QUALITY, STRIP_QUALITY]):
            raise VideoError(f"cannot write {path}")
        self.written.append(path)
        row["strip"] = path.as_posix()
        row["strip_times"] = [round(times[i], 6) for i in got]


def load_strip(path: str | Path, count: int) -> list[np.ndarray]:
    """The ``count`` frames of a strip image, in time order."""
    strip = read_rgb(path)
    if strip.shape[1] % count:
        raise ValueError(f"{path}: {strip.shape[1]} px wide, not {count} frames of one width")
    return np.split(strip, count, axis=1)


def _info(row: pd.Series) -> VideoInfo:
    return VideoInfo(
        duration_s=float(row.duration_s),
        fps=float(row.fps),
        n_frames=int(row.n_frames),
        width=int(row.width),
        height=int(row.height),
        codec=str(row.codec),
        rotation=int(row.rotation),
        keyframes_s=[float(t) for t in row.keyframes_s],
        frame_times_s=_floats(row.get("frame_times_s")),
    )


def _floats(values: Any) -> list[float]:
    # A manifest written before frame times were recorded has no such column (or None).
    if not isinstance(values, list | tuple | np.ndarray):
        return []
    return np.asarray(values, dtype=np.float64).tolist()


def video_pairs(
    row: pd.Series, out_dir: Path, cfg: dict[str, Any], strip_side: int = 256
) -> list[dict]:
    """All window rows of one video, the failed windows included as error rows.

    Raises VideoError only for a failure of the whole video, which then gets one row.
    """
    info = _info(row)
    bounds = window_bounds(info.duration_s, info.fps, cfg)
    if not bounds:
        raise VideoError(
            f"too short: {info.duration_s:.2f} s holds no {cfg['window_seconds']} s window "
            f"(frames.window_seconds)"
        )
    cuts: list[float] = []
    if cfg["scene_cuts"]["enabled"]:
        cuts = scene_cut_times(row.path, cfg["scene_cuts"]["threshold"])
    key = video_key(row.video_id)
    rows, wanted, picks = [], {}, []
    strips = StripWriter()
    for k, (t0, t1) in enumerate(bounds):
        i0, i1 = frame_index(info, t0), frame_index(info, t1)
        cut = next((c for c in cuts if t0 < c <= t1), None)
        r = {
            "pair_id": f"{key}_w{k:03d}",
            "video_id": row.video_id,
            "source": row.source,
            "window": k,
            "t0": t0,
            "t1": t1,
            "frame0": None,
            "frame1": None,
            "strip": None,
            "strip_times": None,
            "width": info.width,
            "height": info.height,
            "skip": None,
            "error": None,
        }
        rows.append(r)
        if cut is not None:
            r["skip"] = f"scene cut at {cut:.2f} s inside the window"
        elif hole := hole_at(info, t0) or hole_at(info, t1):
            r["error"] = hole
        else:
            for idx, col in ((i0, "frame0"), (i1, "frame1")):
                wanted[idx] = out_dir / f"{key}_f{idx:06d}.png"
                r[col] = wanted[idx].as_posix()
            picks.append((r, i0, i1))
            strips.add(
                r,
                sample_indices(info, t0, t1, cfg["samples"]),
                out_dir / f"{r['pair_id']}_strip.jpg",
            )
    if wanted:
        times = info.frame_times_s
        try:
            missing = extract_frames(
                row.path,
                info,
                sorted(set(wanted) | strips.wanted()),
                wanted,
                timeout_s=cfg["timeout_s"],
                on_small=lambda idx, rgb: strips.take(idx, rgb, times),
                small_side=strip_side,
            )
            strips.finish(times)
        except VideoError:
            strips.remove()
            raise
        missing = {i: why for i, why in missing.items() if i in wanted}
        if missing:
            _drop_missing(picks, missing, wanted)
    return rows


def _drop_missing(
    picks: list[tuple[dict, int, int]], missing: dict[int, str], wanted: dict[int, Path]
) -> None:
    """Turn the windows that lost a frame into error rows.

    The other frame of such a window was written but no row points at it any more, so it
    is deleted: the frames folder holds exactly the frames the table lists.
    """
    for r, i0, i1 in picks:
        reasons = [missing[i] for i in dict.fromkeys((i0, i1)) if i in missing]
        if reasons:
            r.update(
                frame0=None, frame1=None, strip=None, strip_times=None, error="; ".join(reasons)
            )
    used = {r[c] for r, _, _ in picks for c in ("frame0", "frame1") if r[c]}
    for p in wanted.values():
        if p.as_posix() not in used:
            p.unlink(missing_ok=True)


def extract_shard(
    manifest: pd.DataFrame,
    out_dir: str | Path,
    cfg: dict[str, Any],
    log: logging.Logger,
    strip_side: int = 256,
) -> pd.DataFrame:
    """Window rows of every usable video of a shard; ``strip_side`` is the flow's max_side."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    good = manifest[manifest["error"].isna()]
    log.info("%d of %d videos usable", len(good), len(manifest))
    rows: list[dict] = []
    for _, row in progress(good.iterrows(), desc="frames", total=len(good)):
        try:
            rows.extend(video_pairs(row, out_dir, cfg, strip_side))
        except VideoError as exc:
            log.warning("%s: %s", row.video_id, exc)
            rows.append(
                {c: None for c in COLUMNS}
                | {"video_id": row.video_id, "source": row.source, "error": str(exc)}
            )
    df = pd.DataFrame(rows, columns=COLUMNS)
    for col in ("window", "width", "height"):
        df[col] = df[col].astype("Int64")
    for col in ("t0", "t1"):
        df[col] = df[col].astype("float64")
    return df
