"""The synthetic source: a deterministic corpus of short videos with known ground truth.

It lets the whole pipeline run offline and, more importantly, lets the filters be scored:
every clip is either a positive (a textured subject performs a motion of one of the six
MotionEdit categories under a still camera) or one of the negatives a real corpus is full
of (camera pans and zooms, static shots, subjects leaving, scene cuts, degraded footage).
The answer for each clip goes to a sidecar table next to the videos, read only by tests
and benchmarks, never by the filters, so the filters cannot learn from it by accident.

Clips are encoded like web video (H.264, yuv420p, a keyframe every ``gop_seconds``) so
the frame extraction and the filters see compression artefacts and GOP structure, not
pristine frames. The same configuration always gives byte-identical files.
"""

from __future__ import annotations

import json
import math
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from motionedit import CATEGORIES
from motionedit.sources.base import FetchedVideo
from motionedit.sources.synthetic_scenes import (
    POSITIVE_BUILDERS,
    SEGMENT_S,
    Scene,
    Stage,
    build_leaving,
)
from motionedit.sources.synthetic_specs import (
    NEGATIVE_TYPES,
    ClipSpec,
    clip_specs,
    shard_count,
    with_defaults,
)
from motionedit.video import bundled_ffmpeg_exe, frame_at

#: Below this displacement (fraction of the diagonal) a window counts as not moving.
STILL_MOTION = 0.02

SENSOR_NOISE = 1.1  # grey levels: what a clean camera leaves after compression
TRUTH_SUFFIX = ".truth.parquet"

#: Columns of the sidecar truth table, one row per clip.
TRUTH_COLUMNS = [
    "video_id",
    "clip",
    "scenario",
    "positive",
    "category",
    "negative_type",
    "width",
    "height",
    "fps",
    "duration_s",
    "timeline",
]


@dataclass
class Shot:
    start: int  # first frame
    end: int  # one past the last frame
    scene: Scene
    motion: str | None
    time_scale: float = 1.0
    time_offset: float = 0.0
    cache: dict[float, np.ndarray] = field(default_factory=dict)

    def world(self, t: float) -> np.ndarray:
        ts = self.time_offset + self.time_scale * t
        if self.time_scale == 0.0:
            if ts not in self.cache:
                self.cache[ts] = self.scene.render(ts)
            return self.cache[ts]
        return self.scene.render(ts)


class ClipPlan:
    """Everything needed to draw any frame of one clip, and the truth about it."""

    def __init__(self, spec: ClipSpec) -> None:
        self.spec = spec
        self.rng = np.random.default_rng([spec.seed, spec.index, 1])
        self.shots: list[Shot] = []
        self.camera: dict[str, Any] | None = None
        self.degradation: dict[str, Any] | None = None
        self.timeline: dict[str, Any] = {}
        w, h = spec.width, spec.height
        self.diag = math.hypot(w, h)
        noise_rng = np.random.default_rng([spec.seed, spec.index, 3])
        self.noise_bank = noise_rng.standard_normal((6, h, w, 1), np.float32) * SENSOR_NOISE
        self.noise_pick = noise_rng.integers(0, 6, spec.n_frames)
        self._build()

    # -- construction

    def _stage(
        self, world_w: float | None = None, world_h: float | None = None, q: float = 1.0
    ) -> Stage:
        s = self.spec
        return Stage(
            self.rng, world_w or s.width, world_h or s.height, s.width, s.height, q, s.duration_s
        )

    def _base_category(self) -> str:
        return CATEGORIES[int(self.rng.integers(len(CATEGORIES)))]

    def _build(self) -> None:
        s = self.spec
        n, T = s.n_frames, s.duration_s
        static = False
        motion_info: dict[str, Any] = {}
        subjects: list[dict[str, Any]] = []
        if s.positive:
            scene = POSITIVE_BUILDERS[s.category](self._stage())
            self.shots = [Shot(0, n, scene, s.category)]
            motion_info = scene.info
        elif s.negative_type == "static":
            base = self._base_category()
            scene = POSITIVE_BUILDERS[base](self._stage())
            freeze = float(self.rng.uniform(0, T))
            self.shots = [Shot(0, n, scene, None, time_scale=0.0, time_offset=freeze)]
            static = True
        elif s.negative_type == "degraded":
            base = self._base_category()
            scene = POSITIVE_BUILDERS[base](self._stage())
            self.shots = [Shot(0, n, scene, base)]
            motion_info = scene.info
            if s.variant % 2 == 0:
                sigma = max(2.5, float(self.rng.uniform(0.022, 0.03)) * self.diag)
                self.degradation = {"type": "blur", "sigma_px": round(sigma, 3)}
            else:
                self.degradation = {
                    "type": "noise",
                    "sigma": round(float(self.rng.uniform(35, 45)), 3),
                }
        elif s.negative_type == "camera_pan":
            self._build_pan()
        elif s.negative_type == "camera_zoom":
            self._build_zoom()
        elif s.negative_type == "subject_leaves":
            scene = build_leaving(self._stage(), s.fps, n)
            self.shots = [Shot(0, n, scene, None)]
            subjects = scene.info["subjects"]
        elif s.negative_type == "scene_cut":
            self._build_cuts()
        else:  # pragma: no cover - clip_specs deals only known types
            raise ValueError(f"unknown scenario {s.scenario!r}")
        cut_frames = [sh.start for sh in self.shots[1:]]
        self.timeline = {
            "version": 1,
            "fps": s.fps,
            "n_frames": n,
            "segment_s": SEGMENT_S,
            "shots": [
                {
                    "start_frame": sh.start,
                    "end_frame": sh.end,
                    "start_s": round(sh.start / s.fps, 6),
                    "end_s": round(sh.end / s.fps, 6),
                    "motion": sh.motion,
                }
                for sh in self.shots
            ],
            "cut_frames": cut_frames,
            "cuts_s": [round(f / s.fps, 6) for f in cut_frames],
            "camera": self.camera,
            "degradation": self.degradation,
            "static": static,
            "subjects": subjects,
            "motion_per_window": motion_info.get("motion_per_window"),
            "motion_details": {k: v for k, v in motion_info.items() if k != "motion_per_window"},
        }

    def _slight_motion(self, T: float) -> tuple[float, float]:
        """Time scale and offset of a camera clip: a frozen scene, or one barely moving."""
        if self.spec.variant % 2 == 0:
            return 0.0, float(self.rng.uniform(0, T))
        return 0.12, float(self.rng.uniform(0, T / 2))

    def _build_pan(self) -> None:
        s = self.spec
        T = s.duration_s
        speed = float(self.rng.uniform(0.08, 0.14)) * self.diag / SEGMENT_S
        ang = float(self.rng.uniform(0, 2 * math.pi))
        vx, vy = speed * math.cos(ang), speed * math.sin(ang)
        world_w = s.width + abs(vx) * T + 4
        world_h = s.height + abs(vy) * T + 4
        base = self._base_category()
        scene = POSITIVE_BUILDERS[base](self._stage(world_w, world_h))
        scale, offset = self._slight_motion(T)
        self.shots = [Shot(0, s.n_frames, scene, base if scale else None, scale, offset)]
        ox = 2.0 if vx >= 0 else 2.0 + abs(vx) * T
        oy = 2.0 if vy >= 0 else 2.0 + abs(vy) * T
        self.camera = {
            "type": "pan",
            "origin_px": [round(ox, 4), round(oy, 4)],
            "velocity_px_s": [round(vx, 4), round(vy, 4)],
            "shift_per_window": round(speed * SEGMENT_S / self.diag, 4),
            "subject_time_scale": scale,
        }

    def _build_zoom(self) -> None:
        s = self.spec
        T = s.duration_s
        per_window = float(self.rng.uniform(1.18, 1.3))
        zmax = per_window ** (T / SEGMENT_S)
        q = min(zmax, 2.5)
        zoom_in = bool(self.rng.random() < 0.5)
        base = self._base_category()
        scene = POSITIVE_BUILDERS[base](self._stage(q=q))
        scale, offset = self._slight_motion(T)
        self.shots = [Shot(0, s.n_frames, scene, base if scale else None, scale, offset)]
        px = float(self.rng.uniform(0.3, 0.7)) * s.width
        py = float(self.rng.uniform(0.3, 0.7)) * s.height
        # How far content at the frame's corners moves per window, as a fraction of the
        # diagonal (about half the diagonal from the zoom centre, scaled by the zoom step).
        border = 0.5 * ((per_window - 1) if zoom_in else (1 - 1 / per_window))
        self.camera = {
            "type": "zoom",
            "direction": "in" if zoom_in else "out",
            "factor_per_window": round(per_window, 4),
            "max_factor": round(zmax, 4),
            "world_px_per_unit": round(q, 4),
            "centre_px": [round(px, 4), round(py, 4)],
            "shift_per_window": round(border, 4),
            "subject_time_scale": scale,
        }

    def _build_cuts(self) -> None:
        s = self.spec
        n, fps = s.n_frames, s.fps
        cuts, t = [], float(self.rng.uniform(1.0, 2.2))
        while True:
            f = int(round(t * fps))
            if f >= n - 1:
                break
            if not cuts or f > cuts[-1]:
                cuts.append(f)
            t += float(self.rng.uniform(1.5, 2.5))
        bounds = [0, *cuts, n]
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            base = self._base_category()
            scene = POSITIVE_BUILDERS[base](self._stage())
            self.shots.append(Shot(a, b, scene, base))

    # -- drawing

    def _shot(self, i: int) -> Shot:
        for sh in self.shots:
            if sh.start <= i < sh.end:
                return sh
        return self.shots[-1]

    def _view(self, world: np.ndarray, t: float) -> np.ndarray:
        s, cam = self.spec, self.camera
        size = (s.width, s.height)
        if cam is None:
            return world
        if cam["type"] == "pan":
            ox = cam["origin_px"][0] + cam["velocity_px_s"][0] * t
            oy = cam["origin_px"][1] + cam["velocity_px_s"][1] * t
            m = np.float64([[1, 0, -ox], [0, 1, -oy]])
            return cv2.warpAffine(
                world, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
            )
        q = cam["world_px_per_unit"]
        k = cam["factor_per_window"] ** (t / SEGMENT_S)
        z = k if cam["direction"] == "in" else cam["max_factor"] / k
        z = max(1.0, z)
        down = q / z  # world pixels per output pixel
        if down > 1.05:  # pre-blur so shrinking the dense canvas does not alias
            world = cv2.GaussianBlur(world, (0, 0), 0.5 * math.sqrt(down * down - 1))
        px, py = cam["centre_px"]
        m = np.float64([[z / q, 0, px * (1 - z)], [0, z / q, py * (1 - z)]])
        return cv2.warpAffine(world, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)

    def frame(self, i: int) -> np.ndarray:
        """Frame i as RGB uint8; depends only on the spec and i, not on call order."""
        s = self.spec
        t = i / s.fps
        img = self._view(self._shot(i).world(t), t)
        deg = self.degradation
        if deg is not None and deg["type"] == "blur":
            img = cv2.GaussianBlur(img, (0, 0), deg["sigma_px"])
        img = img + self.noise_bank[self.noise_pick[i]]
        if deg is not None and deg["type"] == "noise":
            rng = np.random.default_rng([s.seed, s.index, 2, i])
            img = img + rng.standard_normal(img.shape, np.float32) * deg["sigma"]
        return np.clip(img + 0.5, 0, 255).astype(np.uint8)

    def truth_row(self) -> dict[str, Any]:
        s = self.spec
        return {
            "video_id": s.video_id,
            "clip": s.index,
            "scenario": s.scenario,
            "positive": s.positive,
            "category": s.category,
            "negative_type": s.negative_type,
            "width": s.width,
            "height": s.height,
            "fps": float(s.fps),
            "duration_s": s.duration_s,
            "timeline": json.dumps(self.timeline, sort_keys=True, separators=(",", ":")),
        }


def encode(plan: ClipPlan, path: Path, gop_seconds: float, crf: int) -> None:
    """Pipe the clip's frames through x264; the file appears only once it is complete."""
    s = plan.spec
    part = path.with_name(path.name + ".part")
    cmd = [
        bundled_ffmpeg_exe(), "-nostdin", "-v", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{s.width}x{s.height}", "-r", str(s.fps),
        "-i", "-", "-an", "-c:v", "libx264", "-preset", "veryfast", "-crf", str(crf),
        "-g", str(max(1, round(gop_seconds * s.fps))), "-threads", "1", "-pix_fmt", "yuv420p",
        "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact",
        "-f", "mp4", str(part),
    ]  # fmt: skip
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err)
        assert proc.stdin is not None
        try:
            for i in range(s.n_frames):
                proc.stdin.write(plan.frame(i).tobytes())
        except BrokenPipeError:
            pass
        except BaseException:
            proc.kill()
            proc.wait()
            part.unlink(missing_ok=True)
            raise
        finally:
            proc.stdin.close()
        rc = proc.wait()
        if rc != 0:
            err.seek(0)
            tail = err.read().decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
            part.unlink(missing_ok=True)
            raise RuntimeError(f"ffmpeg failed (exit {rc}): {tail[0]}")
    part.replace(path)


def truth_path(out_dir: Path) -> Path:
    """Where the sidecar truth table of a shard's video folder lives."""
    out_dir = Path(out_dir)
    return out_dir.parent / f"{out_dir.name}{TRUTH_SUFFIX}"


def truth_table(source: dict, shard: int | None = None) -> pd.DataFrame:
    """The truth rows of a source (or of one shard) without rendering any video."""
    specs = [s for s in clip_specs(source) if shard is None or s.shard == shard]
    return pd.DataFrame([ClipPlan(s).truth_row() for s in specs], columns=TRUTH_COLUMNS)


def fetch_shard(source: dict, shard: int, out_dir: Path) -> list[FetchedVideo]:
    """Render this shard's clips into ``out_dir`` and write the sidecar truth table."""
    cfg = with_defaults(source)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fetched, rows = [], []
    for spec in clip_specs(source):
        if spec.shard != shard:
            continue
        path = out_dir / spec.filename
        try:
            plan = ClipPlan(spec)
            rows.append(plan.truth_row())
            encode(plan, path, float(cfg["gop_seconds"]), int(cfg["crf"]))
        except (OSError, RuntimeError, ValueError, cv2.error) as exc:
            fetched.append(FetchedVideo(spec.video_id, None, spec.origin, f"render failed: {exc}"))
            continue
        fetched.append(FetchedVideo(spec.video_id, str(path), spec.origin))
    table = pd.DataFrame(rows, columns=TRUTH_COLUMNS)
    dest = truth_path(out_dir)
    part = dest.with_name(dest.name + ".part")
    table.to_parquet(part, index=False)
    part.replace(dest)
    return fetched


# ---------------------------------------------------------------- ground truth per window


def _visible(subject: dict, f: int) -> bool:
    return any(a <= f < b for a, b in subject["visible_frames"])


def _position(subject: dict, t: float) -> tuple[float, float]:
    path = np.asarray(subject["path"], np.float64)
    return float(np.interp(t, path[:, 0], path[:, 1])), float(np.interp(t, path[:, 0], path[:, 2]))


def window_truth(truth_row: dict, t0: float, t1: float) -> dict[str, Any]:
    """Positive with its category, or the negative type, of the window [t0, t1] of a clip.

    Decided on the two frames a window pairs (as the frames stage picks them), in order of
    how a reader would explain the pair: a cut between them, degraded frames, a moving
    camera, a subject that left (or arrived), nothing moving, else the motion shown.
    """
    tl = truth_row["timeline"]
    tl = json.loads(tl) if isinstance(tl, str) else tl
    fps, n = float(tl["fps"]), int(tl["n_frames"])
    f0, f1 = frame_at(t0, fps, n), frame_at(t1, fps, n)

    def negative(label: str) -> dict[str, Any]:
        return {"positive": False, "label": label}

    if any(f0 < c <= f1 for c in tl["cut_frames"]):
        return negative("scene_cut")
    if tl["degradation"]:
        return negative("degraded")
    if f1 <= f0:
        return negative("static")
    if tl["camera"]:
        return negative(f"camera_{tl['camera']['type']}")
    if tl["subjects"]:
        w, h = float(truth_row["width"]), float(truth_row["height"])
        diag = math.hypot(w, h)
        moved = False
        for sub in tl["subjects"]:
            v0, v1 = _visible(sub, f0), _visible(sub, f1)
            if v0 != v1:
                return negative("subject_leaves")
            if v0 and v1:
                (x0, y0), (x1, y1) = _position(sub, f0 / fps), _position(sub, f1 / fps)
                moved |= math.hypot((x1 - x0) * w, (y1 - y0) * h) / diag >= STILL_MOTION
        return {"positive": True, "label": "locomotion"} if moved else negative("static")
    if tl["static"]:
        return negative("static")
    motion = next(
        (sh["motion"] for sh in tl["shots"] if sh["start_frame"] <= f0 < sh["end_frame"]), None
    )
    if motion is None:
        return negative("static")
    return {"positive": True, "label": motion}


__all__ = [
    "ClipPlan",
    "ClipSpec",
    "NEGATIVE_TYPES",
    "clip_specs",
    "fetch_shard",
    "shard_count",
    "truth_path",
    "truth_table",
    "window_truth",
]
