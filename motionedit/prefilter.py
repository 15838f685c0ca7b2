"""The prefilter stage: cheap, explained decisions on the flow of every candidate pair.

It runs before any MLLM is paid, so it removes what flow alone can tell apart: windows
with a cut, windows where the camera moves, pairs where nothing moves, and motion too large
to be an edit. The flow is followed through the frames sampled inside the window (the
frames stage's strip), so a subject that crosses a third of the frame is measured as such
and a cut or a shake between the two end frames is seen. Every pair keeps its numbers, and
its point trajectories, so thresholds can be revisited from the table without recomputing.
"""

from __future__ import annotations

import functools
import logging
import zlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
from PIL import Image

from motionedit.flow import FlowEstimator, make_flow, window_flow_config
from motionedit.flow.chain import (
    ChainedFlow,
    chain_links,
    exit_fraction,
    link_flows,
    save_chained,
    tracks_along,
)
from motionedit.frames import load_strip
from motionedit.runlog import progress

COLUMNS = [
    "pair_id",
    "video_id",
    "source",
    "samples",
    "motion_mean",
    "motion_peak",
    "motion_moving",
    "moving_frac",
    "tracked_frac",
    "lost_frac",
    "exit_frac",
    "frame_correlation",
    "link_consistency",
    "camera_motion",
    "camera_fit",
    "tracks",
    "track_visible",
    "motion",
    "keep",
    "reason",
    "error",
]


def border_mask(h: int, w: int, fraction: float) -> np.ndarray:
    bh, bw = max(1, round(h * fraction)), max(1, round(w * fraction))
    mask = np.ones((h, w), bool)
    mask[bh : h - bh, bw : w - bw] = False
    return mask


def camera_step(
    flow: np.ndarray, border_fraction: float, tol_px: float, step: int = 4
) -> tuple[float, float]:
    """The camera's motion between two frames, from where the border band's points went.

    A homography is fitted by RANSAC to the flow of the border band only: subjects rarely
    cover most of the border, so the border shows the camera even when a subject fills
    the middle of the frame. Returns (mean displacement of the whole frame under that
    homography, in pixels; fraction of the border's points it explains). A border that no
    single motion explains (a subject crossing it, a cut) gives (0, fraction).
    """
    h, w = flow.shape[:2]
    grid, border = _grid(h, w, border_fraction, step)
    src = grid[border]
    dst = src + flow[src[:, 1].astype(int), src[:, 0].astype(int)]
    if len(src) < 8:
        return 0.0, 0.0
    hom, inliers = cv2.findHomography(src, dst, cv2.RANSAC, tol_px, maxIters=500, confidence=0.99)
    if hom is None:
        return 0.0, 0.0
    fit = float(inliers.mean())
    if fit < 0.5:
        return 0.0, fit
    moved = cv2.perspectiveTransform(grid[None], hom)[0]
    return float(np.linalg.norm(moved - grid, axis=1).mean()), fit


@functools.lru_cache(maxsize=16)
def _grid(h: int, w: int, border_fraction: float, step: int) -> tuple[np.ndarray, np.ndarray]:
    """Every ``step``-th pixel as (x, y) rows, and which of them lie in the border band."""
    ys, xs = np.mgrid[0:h:step, 0:w:step]
    grid = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32)
    return grid, border_mask(h, w, border_fraction)[ys, xs].ravel()


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two histograms, in float64.

    OpenCV's HISTCMP_CORREL sums in float32 and returned -1.006 for two noisy frames whose
    histograms correlate at 0.998, which dropped good pairs as scene cuts. Two flat
    histograms correlate at 1 when equal and 0 otherwise.
    """
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    a, b = a - a.mean(), b - b.mean()
    norm = float(np.sqrt((a * a).sum() * (b * b).sum()))
    if norm == 0.0:
        return 1.0 if not a.any() and not b.any() else 0.0
    return float((a * b).sum() / norm)


def colour_histogram(img: np.ndarray) -> np.ndarray:
    return cv2.calcHist([img], [0, 1, 2], None, [8, 8, 8], [0, 256] * 3)


def colour_correlation(img0: np.ndarray, img1: np.ndarray) -> float:
    """Correlation of the two frames' colour histograms: near 1 unless the scene changed."""
    return pearson(colour_histogram(img0), colour_histogram(img1))


def peak_motion(mag: np.ndarray, moving: np.ndarray) -> float:
    """95th percentile of the motion inside the moving region (0 when nothing moves).

    Taken over the moving pixels, not the whole image, so a limb covering 1% of the frame
    counts as much as a subject covering half of it.
    """
    return float(np.percentile(mag[moving], 95)) if moving.any() else 0.0


def window_stats(
    frames: list[np.ndarray], flow: FlowEstimator, cfg: dict[str, Any], seed: int = 0
) -> dict[str, Any]:
    """:func:`measure_window`'s numbers alone."""
    return measure_window(frames, flow, cfg, seed)[0]


def measure_window(
    frames: list[np.ndarray], flow: FlowEstimator, cfg: dict[str, Any], seed: int = 0
) -> tuple[dict[str, Any], ChainedFlow]:
    """Every number the decision uses, for one window's sampled frames (``[H, W, 3]``).

    Motion is the chained flow from the first to the last frame over tracked points,
    normalised by the diagonal; a cut is the worst link (forward-backward consistency) or
    the worst consecutive colour correlation; the camera is the path length of the
    border's homography summed over the links, so a shake that ends where it started
    counts as much as a pan. ``tracks`` are trajectories in these frames' pixels. Returns
    the numbers and the chained flow they were measured on.
    """
    links = link_flows(frames, flow)
    chained = chain_links(links)
    h, w = frames[0].shape[:2]
    diag = float(np.hypot(h, w))
    mag = np.linalg.norm(chained.displacement, axis=-1) / diag
    moving = chained.tracked & (mag > cfg["moving_threshold"])
    # Per step, a camera moving as little as a pixel that just "moves" over the window.
    tol = max(0.5, cfg["moving_threshold"] * diag / len(links.forward))
    steps = [camera_step(f, cfg["border_fraction"], tol) for f in links.forward]
    tracks = tracks_along(links, chained, cfg["track_count"], cfg["min_motion"], seed)
    hists = [colour_histogram(f) for f in frames]
    stats = {
        "samples": len(frames),
        "motion_mean": float(mag[chained.tracked].mean()) if chained.tracked.any() else 0.0,
        "motion_peak": peak_motion(mag, moving),
        "motion_moving": float(mag[moving].mean()) if moving.any() else 0.0,
        "moving_frac": float(moving.mean()),
        "tracked_frac": float(chained.tracked.mean()),
        "lost_frac": float((~chained.tracked & ~chained.exited).mean()),
        "exit_frac": exit_fraction(chained, moving, cfg["moving_threshold"] * diag),
        "frame_correlation": min(pearson(a, b) for a, b in zip(hists[:-1], hists[1:], strict=True)),
        "link_consistency": min(chained.link_consistency),
        "camera_motion": sum(m for m, _ in steps) / diag,
        "camera_fit": float(np.mean([f for _, f in steps])),
        "tracks": np.round(tracks.points, 2).tolist(),
        "track_visible": tracks.visible.tolist(),
    }
    return stats, chained


def decide(stats: dict[str, float], cfg: dict[str, Any]) -> tuple[bool, str]:
    """Keep or drop, with the reason; checks run cheapest-explanation first.

    A cut comes first: it also makes the whole frame "move" and would otherwise be
    reported as camera motion. The flow breaks at a cut; where only the colours jump and
    the flow still holds, the light changed (a flicker, a lamp switched on).
    """
    if stats["link_consistency"] < cfg["min_link_consistency"]:
        return False, "scene_cut"
    if stats["frame_correlation"] < cfg["min_frame_correlation"]:
        return False, "lighting_change"
    if stats["camera_motion"] > cfg["max_camera_motion"]:
        return False, "camera_motion"
    if stats["lost_frac"] > cfg["max_lost_fraction"]:
        return False, "untrackable"
    if stats["exit_frac"] > cfg["max_exit_fraction"]:
        return False, "subject_leaves"
    if (
        stats["motion_peak"] < cfg["min_motion"]
        or stats["moving_frac"] < cfg["min_moving_fraction"]
    ):
        return False, "static"
    if stats["motion_moving"] > cfg["max_motion"]:
        return False, "extreme_motion"
    return True, "ok"


def to_frame_pixels(tracks: list, working: tuple[int, ...], frame0: str | None) -> list:
    """Track points from the working size to the pixels of the pair's full-size frame.

    The dataset's input image is that frame, so a drag annotation lands where it should.
    Pixel centres map to pixel centres: x_full = (x + 0.5) * scale - 0.5.
    """
    if not tracks or not frame0:
        return tracks
    with Image.open(frame0) as im:
        width, height = im.size
    sx, sy = width / working[1], height / working[0]
    pts = (np.asarray(tracks, np.float64) + 0.5) * (sx, sy) - 0.5
    return np.round(pts, 2).tolist()


def pair_seed(pair_id: str) -> int:
    """A seed of the pair's own, so its trajectories do not depend on the shard's order."""
    return zlib.crc32(pair_id.encode("utf-8"))


def prefilter_shard(
    frames: pd.DataFrame,
    cfg: dict[str, Any],
    flow_cfg: dict[str, Any],
    log: logging.Logger,
    flow: FlowEstimator | None = None,
    motion_dir: str | Path | None = None,
) -> pd.DataFrame:
    """Stats and a decision for every candidate window of a frames table.

    A strip that cannot be read is that pair's error row; the rest of the shard goes on.
    The chained flow of each kept pair is saved in ``motion_dir`` (``<pair_id>.npz``,
    column ``motion``) when given, for the judge to use rather than measure again.
    """
    flow = flow or make_flow(window_flow_config(flow_cfg))
    if motion_dir is not None:
        Path(motion_dir).mkdir(parents=True, exist_ok=True)
    todo = frames[frames["error"].isna() & frames["skip"].isna()]
    log.info("%d candidate pairs", len(todo))
    rows = []
    for pair in progress(todo.itertuples(), desc="prefilter", total=len(todo)):
        row = {c: None for c in COLUMNS}
        row.update(pair_id=pair.pair_id, video_id=pair.video_id, source=pair.source)
        try:
            strip = load_strip(pair.strip, len(pair.strip_times))
        except (ValueError, cv2.error) as exc:
            row.update(keep=False, reason="error", error=str(exc))
        else:
            stats, chained = measure_window(strip, flow, cfg, seed=pair_seed(pair.pair_id))
            stats["tracks"] = to_frame_pixels(stats["tracks"], strip[0].shape, pair.frame0)
            keep, reason = decide(stats, cfg)
            row.update(stats, keep=keep, reason=reason)
            if keep and motion_dir is not None:
                row["motion"] = (Path(motion_dir) / f"{pair.pair_id}.npz").as_posix()
                save_chained(row["motion"], chained)
        rows.append(row)
    df = pd.DataFrame(rows, columns=COLUMNS)
    df["keep"] = df["keep"].astype(bool)
    df["samples"] = df["samples"].astype("Int64")
    kept = int(df["keep"].sum())
    log.info("kept %d of %d; reasons: %s", kept, len(df), df["reason"].value_counts().to_dict())
    return df
