"""Prefilter decisions: on measurements whose answer is known, and on clips made of real
photographs (tests/realistic_clips.py), followed through each window's sampled frames."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pandas as pd
import pytest
from matplotlib import cbook
from PIL import Image
from realistic_clips import MOTION_S, make_clip

from motionedit.config import validate_config
from motionedit.flow import make_flow, window_flow_config
from motionedit.flow.chain import load_chained
from motionedit.flow.dis import DISFlow
from motionedit.pairs import fit_side
from motionedit.prefilter import (
    camera_step,
    colour_correlation,
    decide,
    measure_window,
    pair_seed,
    prefilter_shard,
    window_stats,
)

CFG = validate_config({"sources": [{"name": "s", "kind": "synthetic"}]})["prefilter"]
FLOW = validate_config({"sources": [{"name": "s", "kind": "synthetic"}]})["flow"]
SAMPLES = validate_config({"sources": [{"name": "s", "kind": "synthetic"}]})["frames"]["samples"]
H, W = 120, 160

#: A window that should be kept, to change one number at a time.
GOOD = {
    "frame_correlation": 0.99,
    "link_consistency": 0.98,
    "camera_motion": 0.001,
    "lost_frac": 0.05,
    "exit_frac": 0.0,
    "motion_peak": 0.2,
    "motion_moving": 0.15,
    "moving_frac": 0.1,
}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({}, "ok"),
        ({"link_consistency": 0.1}, "scene_cut"),
        # A cut also breaks the colours and makes everything "move": it is reported as a cut.
        ({"link_consistency": 0.1, "frame_correlation": 0.0, "camera_motion": 0.5}, "scene_cut"),
        ({"frame_correlation": 0.1}, "lighting_change"),
        ({"camera_motion": 0.05}, "camera_motion"),
        ({"camera_motion": 0.05, "lost_frac": 0.7}, "camera_motion"),
        ({"lost_frac": 0.7}, "untrackable"),
        ({"exit_frac": 0.8}, "subject_leaves"),
        ({"exit_frac": 0.8, "motion_peak": 0.001}, "subject_leaves"),
        ({"motion_peak": 0.005}, "static"),
        ({"moving_frac": 0.001}, "static"),
        ({"motion_moving": 0.9}, "extreme_motion"),
    ],
)  # fmt: skip
def test_decisions(change, reason):
    assert decide(GOOD | change, CFG)[1] == reason


def grid_flow(fn) -> np.ndarray:
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float32)
    return np.stack(fn(xs, ys), -1).astype(np.float32)


def test_the_camera_is_what_the_border_does():
    pan = grid_flow(lambda x, y: (np.full_like(x, 3.0), np.zeros_like(y)))
    motion, fit = camera_step(pan, 0.08, 0.5)
    assert motion == pytest.approx(3.0, abs=0.01) and fit > 0.99
    zoom = grid_flow(lambda x, y: (0.02 * (x - W / 2), 0.02 * (y - H / 2)))
    assert camera_step(zoom, 0.08, 0.5)[0] == pytest.approx(np.abs(zoom).sum(-1).mean(), rel=0.3)
    # A subject filling 70% of the frame moves; the border stays: the camera is still.
    big = np.zeros((H, W, 2), np.float32)
    big[12:108, 15:145] = (4.0, 1.0)
    assert camera_step(big, 0.08, 0.5)[0] < 0.01


def sampled(frames: np.ndarray, fps: float, samples: int = SAMPLES) -> list[np.ndarray]:
    """The window's samples at the working size, as the frames stage keeps them."""
    picks = np.unique(np.round(np.linspace(0, MOTION_S * fps, samples)).astype(int))
    return [fit_side(frames[i], 256) for i in picks]


@pytest.fixture(scope="module")
def dis():
    return make_flow(window_flow_config(FLOW))


@pytest.mark.parametrize(
    ("clip", "reason"),
    [
        ("translate", "ok"),
        ("rise", "ok"),
        ("pan", "camera_motion"),
        ("zoom", "camera_motion"),
        ("shake", "camera_motion"),
        ("static", "static"),
        ("cut", "scene_cut"),
        ("flicker", "lighting_change"),
    ],
)
def test_real_photographs_in_motion(clip, reason, dis):
    frames, truth = make_clip(clip)
    stats = window_stats(sampled(frames, truth["fps"]), dis, CFG)
    assert decide(stats, CFG)[1] == reason, stats
    if reason == "ok":
        # The subject's motion through the window, not what the end frames show.
        assert stats["motion_peak"] == pytest.approx(truth["travel"], rel=0.2)


def test_a_large_translation_needs_the_samples_in_between(dis):
    frames, truth = make_clip("translate")
    assert truth["travel"] == pytest.approx(0.30, abs=0.01)
    ends = window_stats(sampled(frames, truth["fps"], samples=2), dis, CFG)
    chained = window_stats(sampled(frames, truth["fps"]), dis, CFG)
    assert ends["motion_peak"] < 0.5 * truth["travel"] < chained["motion_peak"]


def test_trajectories_start_on_the_subject_and_follow_it(dis):
    frames, truth = make_clip("rise")
    window = sampled(frames, truth["fps"])
    stats = window_stats(window, dis, CFG, seed=3)
    tracks, visible = np.array(stats["tracks"]), np.array(stats["track_visible"])
    assert tracks.shape == (CFG["track_count"], len(window), 2) and visible.all()
    h, w = window[0].shape[:2]
    scale = w / truth["width"]
    mask = cv2.resize(truth["mask"].astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
    starts = np.round(tracks[:, 0]).astype(int)
    assert mask[starts[:, 1], starts[:, 0]].all()
    # The rocket rises: every track goes up at every step it moves, by about the truth.
    dy = np.diff(tracks[..., 1], axis=1)
    assert (dy <= 0.3).all()
    rise = (tracks[:, 0, 1] - tracks[:, -1, 1]) / np.hypot(w, h)
    assert np.median(rise) == pytest.approx(truth["travel"], rel=0.15)
    assert np.abs(tracks[:, -1, 0] - tracks[:, 0, 0]).max() < 3 * scale + 1
    # The same seed draws the same points.
    assert window_stats(window, dis, CFG, seed=3)["tracks"] == stats["tracks"]


def test_a_shard_keeps_going_past_a_broken_strip_and_saves_the_kept_motion(tmp_path, dis):
    frames, truth = make_clip("translate", size=(160, 120))
    window = sampled(frames, truth["fps"])
    good = tmp_path / "good_strip.png"
    cv2.imwrite(str(good), np.concatenate(window, axis=1)[:, :, ::-1])
    (tmp_path / "bad_strip.png").write_bytes(b"not a png")
    # The full-size frame is twice the working size: tracks come out in its pixels.
    big = tmp_path / "frame0.png"
    cv2.imwrite(str(big), cv2.resize(window[0], (320, 240))[:, :, ::-1])
    table = pd.DataFrame(
        [
            {"pair_id": p, "video_id": p, "source": "s", "strip": str(tmp_path / f"{p}_strip.png"),
             "strip_times": [0.0] * len(window), "frame0": str(big), "error": None, "skip": None}
            for p in ("bad", "good")
        ]
    )  # fmt: skip
    out = prefilter_shard(table, CFG, {"backend": "dis"}, logging.getLogger("t"), flow=dis,
                          motion_dir=tmp_path / "motion")  # fmt: skip
    bad, ok = out.iloc[0], out.iloc[1]
    assert bad["reason"] == "error" and "cannot read" in bad["error"] and not bad["keep"]
    assert ok["keep"] and ok["samples"] == len(window)
    stats, chained = measure_window(window, dis, CFG, seed=pair_seed("good"))
    working = stats["tracks"]
    assert np.allclose(np.array(ok["tracks"]), (np.array(working) + 0.5) * 2 - 0.5, atol=0.02)
    saved = load_chained(ok["motion"])
    assert saved.displacement.shape == window[0].shape[:2] + (2,)
    assert np.array_equal(saved.displacement, chained.displacement)
    assert saved.link_consistency == chained.link_consistency


def test_colour_correlation_of_noise_frames_is_a_correlation():
    # Two frames of sensor noise: OpenCV's float32 HISTCMP_CORREL gives -1.0007 for these,
    # outside [-1, 1], which read as a scene cut. Ours is numpy's float64 Pearson r.
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (144, 192, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-6, 7, a.shape), 0, 255).astype(np.uint8)
    hists = [cv2.calcHist([im], [0, 1, 2], None, [8, 8, 8], [0, 256] * 3) for im in (a, b)]
    assert cv2.compareHist(*hists, cv2.HISTCMP_CORREL) < -1.0  # what the measure used to be
    expected = np.corrcoef(*(h.ravel().astype(np.float64) for h in hists))[0, 1]
    assert colour_correlation(a, b) == pytest.approx(expected, abs=1e-12)
    # A photograph and the same photograph with noise keep their palette.
    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as im:
        photo = np.asarray(im.convert("RGB"))
    noisy = np.clip(photo + rng.normal(0, 4, photo.shape), 0, 255).astype(np.uint8)
    assert colour_correlation(photo, noisy) > 0.98
    red, blue = np.zeros((H, W, 3), np.uint8), np.zeros((H, W, 3), np.uint8)
    red[..., 0], blue[..., 2] = 200, 200
    assert colour_correlation(red, blue) < 0.5 and colour_correlation(red, red) > 0.99


def test_dis_recovers_a_moving_textured_patch():
    rng = np.random.default_rng(0)
    # DIS needs some texture everywhere, as real backgrounds have: on a flat background it
    # spreads the patch's motion into the void around it.
    bg = (90 + rng.normal(0, 12, (H, W, 3))).clip(0, 255).astype(np.uint8)
    patch = rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)
    a, b = bg.copy(), bg.copy()
    a[40:70, 30:70] = patch
    b[40:70, 38:78] = patch  # 8 px to the right
    flow = DISFlow("medium").estimate(a[None], b[None])[0]
    assert abs(np.median(flow[45:65, 35:65, 0]) - 8.0) < 0.5
    assert np.abs(flow[:20, :20]).max() < 0.1
    assert decide(window_stats([a, b], DISFlow(), CFG), CFG) == (True, "ok")
