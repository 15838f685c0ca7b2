"""What the synthetic corpus will hold, decided from the configuration alone.

The clip specifications (how many clips, which are positives and which negatives, their
sizes, lengths, seeds and shards) need only numpy. They live apart from the renderer so
that counting a synthetic source's shards, which happens at every DAG build, imports no
imaging stack: a login node that builds the DAG may have neither OpenCV nor PyAV.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from motionedit import CATEGORIES

#: Negative clip types, in the order they are dealt out.
NEGATIVE_TYPES: tuple[str, ...] = (
    "camera_pan",
    "camera_zoom",
    "static",
    "subject_leaves",
    "scene_cut",
    "degraded",
)

DEFAULTS: dict[str, Any] = {
    "name": "synthetic",
    "clips": 24,
    "shards": 2,
    "seed": 0,
    "min_side": 64,
    "max_side": 256,
    "min_seconds": 6.0,
    "max_seconds": 9.0,
    "fps": 24,
    "negative_fraction": 0.5,
    "gop_seconds": 2.0,
    "crf": 18,
}

#: Frame shapes (width:height) of web video, portrait included.
ASPECTS: tuple[tuple[int, int], ...] = ((4, 3), (16, 9), (1, 1), (3, 4), (9, 16), (3, 2), (2, 3))


def with_defaults(source: dict) -> dict[str, Any]:
    return {k: source.get(k, v) for k, v in DEFAULTS.items()}


@dataclass
class ClipSpec:
    """What one clip will show, fixed by the configuration before anything is drawn."""

    index: int
    video_id: str
    shard: int
    scenario: str
    positive: bool
    category: str | None
    negative_type: str | None
    variant: int
    width: int
    height: int
    fps: int
    n_frames: int
    seed: int

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.fps

    @property
    def origin(self) -> str:
        return f"synthetic:{self.scenario}:{self.seed}:{self.index}"

    @property
    def filename(self) -> str:
        return f"clip_{self.index:04d}.mp4"


def shard_count(source: dict) -> int:
    return int(with_defaults(source)["shards"])


def _even(x: float) -> int:
    return int(2 * round(x / 2))


def _frame_size(rng: np.random.Generator, min_side: int, max_side: int) -> tuple[int, int]:
    """Width and height (even, for yuv420p) with the shorter side >= min_side.

    The longer side stays within max_side; an aspect ratio that cannot fit between the two
    bounds is flattened towards square rather than breaking either bound.
    """
    aw, ah = ASPECTS[int(rng.integers(len(ASPECTS)))]
    ratio = min(max(aw, ah) / min(aw, ah), max_side / min_side)
    # Skewed towards the larger end: flow needs pixels, yet small videos must occur too.
    long_side = min_side * ratio + (max_side - min_side * ratio) * math.sqrt(rng.random())
    lo = 2 * math.ceil(min_side / 2)
    hi = max(lo, 2 * math.floor(max_side / 2))
    long_e = min(hi, max(lo, _even(long_side)))
    short_e = min(long_e, max(lo, _even(long_side / ratio)))
    return (long_e, short_e) if aw >= ah else (short_e, long_e)


def _deal(n: int, n_pos: int, shards: int) -> list[tuple[bool, int]]:
    """(positive, rank among its kind) for each clip index.

    Positives and negatives alternate along a sequence that is dealt shard by shard, so
    every shard holds both kinds and, with enough clips, every category and negative type.
    """
    seq = []
    pos = neg = 0
    for q in range(n):
        if (q + 1) * n_pos // n > q * n_pos // n:
            seq.append((True, pos))
            pos += 1
        else:
            seq.append((False, neg))
            neg += 1
    out: list[tuple[bool, int]] = [(False, 0)] * n
    q = 0
    for s in range(shards):
        for i in range(s, n, shards):
            out[i] = seq[q]
            q += 1
    return out


def clip_specs(source: dict) -> list[ClipSpec]:
    """Every clip of the source, in index order; a pure function of the configuration."""
    cfg = with_defaults(source)
    n, shards, seed = int(cfg["clips"]), int(cfg["shards"]), int(cfg["seed"])
    n_neg = min(n, int(math.floor(n * float(cfg["negative_fraction"]) + 0.5)))
    specs = []
    for i, (positive, rank) in enumerate(_deal(n, n - n_neg, shards)):
        rng = np.random.default_rng([seed, i, 0])
        width, height = _frame_size(rng, int(cfg["min_side"]), int(cfg["max_side"]))
        seconds = rng.uniform(float(cfg["min_seconds"]), float(cfg["max_seconds"]))
        fps = int(cfg["fps"])
        if positive:
            category, negative, scenario = CATEGORIES[rank % 6], None, CATEGORIES[rank % 6]
        else:
            category, negative = None, NEGATIVE_TYPES[rank % 6]
            scenario = negative
        specs.append(
            ClipSpec(
                index=i,
                video_id=f"{cfg['name']}/clip_{i:04d}",
                shard=i % shards,
                scenario=scenario,
                positive=positive,
                category=category,
                negative_type=negative,
                variant=rank // 6,
                width=width,
                height=height,
                fps=fps,
                n_frames=max(2, int(round(seconds * fps))),
                seed=seed,
            )
        )
    return specs


# ---------------------------------------------------------------- clip assembly
