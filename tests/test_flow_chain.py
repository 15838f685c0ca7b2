"""Flow chained through a window, on clips made of real photographs: a subject (a product
photograph) slides a third of the frame's diagonal across a portrait. The first and last
frames alone do not measure that motion; the chain does, or loses the subject when its
links are too long for the flow, and a cut inside the window shows as one inconsistent
link."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib import cbook
from PIL import Image

from motionedit.flow.chain import chain_flows, link_flows, track_points
from motionedit.flow.dis import DISFlow

SIZE = (192, 144)  # (W, H)
SUBJECT = 40


def photo(name: str, size: tuple[int, int]) -> np.ndarray:
    with Image.open(cbook.get_sample_data(name, asfileobj=False)) as im:
        return np.asarray(im.convert("RGB").resize(size, Image.Resampling.BICUBIC))


def sliding_clip(frames: int, travel: float) -> tuple[list[np.ndarray], tuple[int, int]]:
    """The subject slides right and down by ``travel`` x the diagonal; (x, y) it starts at."""
    background = photo("grace_hopper.jpg", SIZE)
    subject = photo("Minduka_Present_Blue_Pack.png", (SUBJECT, SUBJECT))
    diag = float(np.hypot(*SIZE))
    direction = np.array([0.8, 0.6])
    start = np.array([16.0, 12.0])
    clip = []
    for t in np.linspace(0.0, 1.0, frames):
        x, y = np.round(start + t * travel * diag * direction).astype(int)
        frame = background.copy()
        frame[y : y + SUBJECT, x : x + SUBJECT] = subject
        clip.append(frame)
    return clip, (int(start[0]), int(start[1]))


def subject_motion(displacement: np.ndarray, tracked: np.ndarray, at: tuple[int, int]) -> float:
    """Median displacement (fraction of the diagonal) of the subject's inner pixels."""
    x, y = at
    inner = (slice(y + 8, y + SUBJECT - 8), slice(x + 8, x + SUBJECT - 8))
    moved = np.linalg.norm(displacement[inner], axis=-1)[tracked[inner]]
    return float(np.median(moved)) / float(np.hypot(*SIZE)) if moved.size else 0.0


def test_the_chain_measures_a_long_translation_the_end_frames_miss():
    # 13 frames: 6 pixels, 0.025 of the diagonal, a link.
    clip, at = sliding_clip(frames=13, travel=0.30)
    dis = DISFlow()
    direct = dis.estimate(np.stack(clip[:1]), np.stack(clip[-1:]))[0]
    assert subject_motion(direct, np.ones(direct.shape[:2], bool), at) < 0.15
    chained = chain_flows(clip, dis)
    assert subject_motion(chained.displacement, chained.tracked, at) == pytest.approx(
        0.30, abs=0.02
    )
    # The background stays put and is followed.
    assert chained.tracked[100:, 150:].mean() > 0.9
    assert np.abs(chained.displacement[100:, 150:][chained.tracked[100:, 150:]]).mean() < 0.5


def test_links_too_long_for_the_flow_lose_the_subject_rather_than_mismeasure_it():
    # 7 frames: 12 pixels a link, more than DIS follows on a 40-pixel subject.
    clip, (x, y) = sliding_clip(frames=7, travel=0.30)
    chained = chain_flows(clip, DISFlow())
    assert chained.tracked[y + 8 : y + SUBJECT - 8, x + 8 : x + SUBJECT - 8].mean() < 0.5


def test_a_cut_inside_the_window_is_one_inconsistent_link():
    clip, _ = sliding_clip(frames=7, travel=0.12)
    other = photo("Minduka_Present_Blue_Pack.png", SIZE)
    cut = clip[:4] + [other] * 3
    chained = chain_flows(cut, DISFlow())
    worst = int(np.argmin(chained.link_consistency))
    assert worst == 3 and chained.link_consistency[3] < 0.5
    assert min(c for i, c in enumerate(chained.link_consistency) if i != 3) > 0.8
    assert chained.tracked.mean() < 0.5


def test_a_still_clip_is_all_tracked_and_does_not_move():
    still = [photo("grace_hopper.jpg", SIZE)] * 4
    chained = chain_flows(still, DISFlow())
    assert chained.tracked.all() and np.abs(chained.displacement).max() < 0.05
    # Nothing moves: the flow takes two samples a step (0-2, then 2-3).
    assert chained.link_consistency == [1.0, 1.0]


def test_one_frame_is_refused():
    with pytest.raises(ValueError, match="two frames or more"):
        chain_flows([photo("grace_hopper.jpg", SIZE)], DISFlow())


def test_trajectories_sit_on_the_moving_subject_and_follow_it():
    clip, (x, y) = sliding_clip(frames=13, travel=0.30)
    tracks = track_points(clip, DISFlow(), count=16, min_motion=0.05, seed=0)
    assert tracks.points.shape == (16, 13, 2) and tracks.visible.all()
    start, end = tracks.points[:, 0], tracks.points[:, -1]
    assert ((start >= (x, y)) & (start < (x + SUBJECT, y + SUBJECT))).all()
    # The clip places the subject at whole pixels: it travels (58, 43).
    error = np.linalg.norm(end - start - np.array([58.0, 43.0]), axis=-1)
    # Sub-pixel for most; a point at the subject's edge, where the flow blends it with the
    # background, within a tenth of the 72-pixel travel.
    assert np.median(error) < 1.0 and error.max() < 7.2
    steps = np.diff(tracks.points, axis=1)
    assert (steps > 0).all()  # right and down at every sampled frame
    again = track_points(clip, DISFlow(), count=16, min_motion=0.05, seed=0)
    assert np.array_equal(again.points, tracks.points)


def test_nothing_moves_no_trajectories():
    still = [photo("grace_hopper.jpg", SIZE)] * 4
    tracks = track_points(still, DISFlow(), count=16, min_motion=0.01, seed=0)
    assert tracks.points.shape == (0, 4, 2) and tracks.visible.shape == (0, 4)


def test_slow_steps_take_two_samples_and_fast_ones_one():
    dis = DISFlow()
    slow, _ = sliding_clip(frames=13, travel=0.03)  # under a pixel a sample
    fast, _ = sliding_clip(frames=13, travel=0.30)  # 6 pixels a sample
    assert link_flows(slow, dis).ends == (2, 4, 6, 8, 10, 12)
    assert link_flows(fast, dis).ends == tuple(range(1, 13))
    # Either way, the trajectories have a position at every sample.
    tracks = track_points(slow, dis, count=4, min_motion=0.01, seed=0)
    assert tracks.points.shape == (4, 13, 2)
    steps = np.diff(tracks.points[..., 0], axis=1)
    assert (steps > 0).all() and steps.std() < 0.5  # moving right, about evenly


class ScriptedFlow:
    """Flow with a known answer: frame ``i`` is filled with the value ``i``; the left half
    moves ``px`` to the right per sample step and the backward flow of the top ``lost``
    share of the rows points the wrong way, so those points fail the forward-backward
    check. Records the (from, to) frame pairs it was asked for."""

    def __init__(self, px: float, lost: float) -> None:
        self.px, self.lost, self.asked = px, lost, []

    def estimate(self, images0: np.ndarray, images1: np.ndarray) -> np.ndarray:
        out = np.zeros(images0.shape[:3] + (2,), np.float32)
        h, w = images0.shape[1:3]
        for k, (a, b) in enumerate(zip(images0[:, 0, 0, 0], images1[:, 0, 0, 0], strict=True)):
            self.asked.append((int(a), int(b)))
            steps = int(b) - int(a)
            if steps > 0:
                out[k, :, : w // 2, 0] = self.px * steps
            else:
                out[k, :, :, 0] = self.px * steps
                out[k, : round(self.lost * h), :, 0] *= -1
        return out


@pytest.mark.parametrize(("px", "lost", "ends"), [(1.5, 0.10, (2, 4)), (1.5, 0.30, (1, 2, 3, 4)),
                                                  (2.5, 0.0, (1, 2, 3, 4))])  # fmt: skip
def test_a_step_is_refined_for_its_speed_or_the_points_it_loses(px, lost, ends):
    frames = [np.full((20, 40, 3), i, np.uint8) for i in range(5)]
    flow = ScriptedFlow(px, lost)
    assert link_flows(frames, flow).ends == ends
    backward = [(a, b) for a, b in flow.asked if b < a]
    if px * 2 >= 4:  # too fast on its forward flow: no backward flow paid for the long step
        assert all(a - b == 1 for a, b in backward)
