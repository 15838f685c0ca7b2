"""The realistic clips are what their truth says: right length and size once encoded, the
subject where the truth puts it, and the negatives broken the way they claim to be.

These check the clip renderer only; benchmarks/realistic_clips.py scores the miner on them.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import realistic_clips as rc

SMALL = (160, 120)  # the whole folder at a quarter of the pixels keeps the test fast


def centroid(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()])


def axis_deg(mask: np.ndarray) -> float:
    m = cv2.moments(mask.astype(np.uint8), True)
    return 0.5 * math.degrees(math.atan2(2 * m["mu11"], m["mu20"] - m["mu02"]))


def test_an_encoded_clip_decodes_to_its_frames(tmp_path):
    frames, truth = rc.make_clip("rise")
    path = rc.write_video(frames, tmp_path / "rise.mp4", rc.FPS)
    back = rc.read_video(path)
    assert back.shape == frames.shape == (78, 240, 320, 3)
    assert truth["n_frames"] == 78
    # x264 at crf 18 and 4:2:0 chroma: close to the rendering, never identical.
    error = np.abs(back.astype(np.float32) - frames).mean()
    assert 0.1 < error < 6.0


def test_the_folder_holds_every_clip_and_the_truth_table_describes_them(tmp_path):
    table = rc.write_folder(tmp_path, size=SMALL)
    assert list(table.columns) == rc.TRUTH_COLUMNS
    assert sorted(p.name for p in tmp_path.glob("*.mp4")) == sorted(f"{n}.mp4" for n in rc.CLIPS)
    assert len(table) == 14 and table["keep"].sum() == 6
    positives, negatives = table[table["keep"]], table[~table["keep"]]
    assert set(positives["category"]) <= {
        "pose", "locomotion", "deformation", "orientation", "subject_object", "subject_subject"
    }  # fmt: skip
    assert (positives["direction"] != "").all() and (positives["reason"] == "").all()
    assert set(negatives["reason"]) == {
        "static", "camera_motion", "scene_cut", "subject_leaves", "degraded", "lighting"
    }  # fmt: skip
    for row in table.itertuples():
        back = rc.read_video(row.path)
        assert back.shape == (row.n_frames, SMALL[1], SMALL[0], 3), row.name


@pytest.mark.parametrize("travel", [0.1, 0.3])
def test_the_translated_subject_moves_by_the_stated_travel(travel):
    frames, truth = rc.translate_clip(travel)
    diag = math.hypot(*rc.SIZE)
    moved = centroid(truth["mask_end"]) - centroid(truth["mask"])
    assert np.linalg.norm(moved) / diag == pytest.approx(travel, abs=0.005)
    assert truth["travel"] == pytest.approx(travel)
    angle = math.degrees(math.atan2(moved[1], moved[0]))
    assert angle == pytest.approx(truth["direction_deg"], abs=1.0)
    # The pixels moved too: the subject of the first frame is found in the frame at 3 s
    # where the truth says.
    x0, y0, x1, y1 = cv2.boundingRect(truth["mask"].astype(np.uint8))
    x0, y0 = x0 + 8, y0 + 8
    patch = frames[0][y0 : y0 + y1 - 16, x0 : x0 + x1 - 16]
    end = frames[round(rc.MOTION_S * rc.FPS)]
    score = cv2.matchTemplate(end, patch, cv2.TM_SQDIFF)
    found = np.array(cv2.minMaxLoc(score)[2]) - (x0, y0)
    assert np.linalg.norm(found - moved) < 1.5


def test_placement_is_sub_pixel_and_the_motion_holds_after_the_window():
    # Without sensor noise: 20 pixels over 72 frames changes every frame (whole-pixel
    # pasting would repeat most of them), and nothing changes after 3 s.
    frames, _ = rc.translate_clip(0.05, noise=0.0)
    last = round(rc.MOTION_S * rc.FPS)
    changed = [(frames[i] != frames[i + 1]).any(-1).sum() for i in range(last)]
    assert min(changed) > 500
    assert all(np.array_equal(f, frames[last]) for f in frames[last:])


def test_turns_and_growth_are_as_stated():
    _, turn = rc.rotate_clip(45.0)
    change = (axis_deg(turn["mask_end"]) - axis_deg(turn["mask"]) + 90) % 180 - 90
    assert change == pytest.approx(45.0, abs=2.0) and turn["direction"] == "clockwise"
    assert np.linalg.norm(centroid(turn["mask_end"]) - centroid(turn["mask"])) < 1.0
    _, grow = rc.scale_clip(1.5)
    assert grow["mask_end"].sum() / grow["mask"].sum() == pytest.approx(1.5**2, rel=0.05)


def test_the_cut_clip_changes_scene_at_one_and_a_half_seconds():
    frames, truth = rc.make_clip("cut")
    f = frames.astype(np.float32)
    steps = np.abs(np.diff(f, axis=0)).mean(axis=(1, 2, 3))
    cut = round(1.5 * rc.FPS)
    assert int(np.argmax(steps)) == cut - 1
    assert steps[cut - 1] > 10 * np.delete(steps, cut - 1).max()
    assert truth["reason"] == "scene_cut" and not truth["keep"]


def test_the_subject_that_leaves_is_gone_at_the_end():
    _, truth = rc.make_clip("leaves")
    assert truth["mask"].sum() > 1000 and not truth["mask_end"].any()


def test_rendering_is_deterministic():
    a, _ = rc.make_clip("shake")
    b, _ = rc.make_clip("shake")
    assert np.array_equal(a, b)


def test_an_unknown_clip_is_refused():
    with pytest.raises(ValueError, match="unknown clip"):
        rc.make_clip("teleport")
