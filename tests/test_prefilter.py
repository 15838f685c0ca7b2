"""Prefilter decisions on flows whose answer is known."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from matplotlib import cbook
from PIL import Image

from motionedit.flow.dis import DISFlow
from motionedit.prefilter import colour_correlation, decide, flow_stats

CFG = {
    "min_frame_correlation": 0.5,
    "min_motion": 0.01,
    "max_motion": 0.25,
    "moving_threshold": 0.004,
    "min_moving_fraction": 0.005,
    "border_fraction": 0.08,
    "max_border_moving": 0.5,
    "max_global_fit": 0.6,
}
H, W = 120, 160


def patch_flow(dx: float, dy: float, box=(40, 70, 60, 100)) -> np.ndarray:
    flow = np.zeros((H, W, 2), np.float32)
    y0, y1, x0, x1 = box
    flow[y0:y1, x0:x1] = (dx, dy)
    return flow


def global_flow(fn) -> np.ndarray:
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float32)
    return np.stack(fn(xs, ys), -1).astype(np.float32)


@pytest.mark.parametrize(
    ("flow", "reason"),
    [
        (np.zeros((H, W, 2), np.float32), "static"),
        (patch_flow(0.2, 0.0), "static"),
        (patch_flow(12.0, 3.0), "ok"),
        (patch_flow(120.0, 0.0), "extreme_motion"),
        (
            global_flow(lambda x, y: (np.full_like(x, 6.0), np.zeros_like(y))),
            "camera_motion:border",
        ),
        (
            global_flow(lambda x, y: (0.06 * (x - W / 2), 0.06 * (y - H / 2))),
            "camera_motion:border",
        ),
    ],
)
def test_decisions(flow, reason):
    assert decide(flow_stats(flow, CFG), CFG)[1] == reason


def test_a_new_palette_is_a_scene_cut_before_anything_else():
    stats = flow_stats(patch_flow(12.0, 3.0), CFG) | {"frame_correlation": 0.1}
    assert decide(stats, CFG) == (False, "scene_cut")
    a = np.zeros((H, W, 3), np.uint8)
    b = a.copy()
    a[..., 0], b[..., 2] = 200, 200  # red scene, then blue scene
    assert colour_correlation(a, b) < 0.5 and colour_correlation(a, a) > 0.99


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


def test_zoom_around_a_still_border_is_caught_by_the_global_fit():
    # With the border check off, one affine motion explaining every pixel still gives it away.
    flow = global_flow(lambda x, y: (0.03 * (x - W / 2), 0.03 * (y - H / 2)))
    stats = flow_stats(flow, CFG)
    assert stats["global_fit"] > 0.95
    assert decide(stats, CFG | {"max_border_moving": 1.0})[1] == "camera_motion:global_affine"


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
    stats = flow_stats(flow, CFG)
    assert decide(stats, CFG) == (True, "ok")


class _CountingFlow:
    """DIS that records the batch sizes it was called with."""

    def __init__(self, batch_size: int) -> None:
        self.batch_size, self.calls, self._dis = batch_size, [], DISFlow()

    def estimate(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        self.calls.append(len(a))
        return self._dis.estimate(a, b)


def test_flows_are_batched_by_size_and_keep_their_order():
    from motionedit.prefilter import _flows_in_batches

    rng = np.random.default_rng(0)
    shapes = [(48, 64), (64, 48), (48, 64), (48, 64), (64, 48)]
    pairs = []
    for h, w in shapes:
        a = (rng.random((h, w, 3)) * 255).astype(np.uint8)
        pairs.append((a, np.roll(a, 2, axis=1)))
    flow = _CountingFlow(batch_size=2)
    flows = _flows_in_batches(flow, pairs, flow.batch_size)
    assert sorted(flow.calls) == [1, 2, 2]
    for (a, b), f in zip(pairs, flows, strict=True):
        np.testing.assert_array_equal(f, DISFlow().estimate(a[None], b[None])[0])
