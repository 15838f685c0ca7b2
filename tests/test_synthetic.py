"""The synthetic corpus: determinism, the scenario mix, real decodable files, ground truth."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest

from motionedit import CATEGORIES
from motionedit.sources import fetch_shard as dispatch_fetch
from motionedit.sources import shard_names
from motionedit.sources.synthetic import (
    NEGATIVE_TYPES,
    ClipPlan,
    clip_specs,
    fetch_shard,
    shard_count,
    truth_path,
    truth_table,
    window_truth,
)
from motionedit.sources.synthetic_scenes import Sprite, composite
from motionedit.video import probe

#: Small, short clips: enough to exercise every code path in a fraction of a second each.
SMALL = {
    "name": "syn",
    "kind": "synthetic",
    "clips": 4,
    "shards": 2,
    "min_side": 64,
    "max_side": 112,
    "min_seconds": 3.2,
    "max_seconds": 3.6,
}


def _plan(scenario: str, source: dict | None = None) -> ClipPlan:
    spec = next(s for s in clip_specs(source or {}) if s.scenario == scenario)
    return ClipPlan(spec)


def _row(scenario: str) -> dict:
    table = truth_table({})
    return table[table["scenario"] == scenario].iloc[0].to_dict()


def test_same_config_gives_byte_identical_files(tmp_path):
    first = fetch_shard(SMALL, 0, tmp_path / "a" / "videos")
    second = fetch_shard(SMALL, 0, tmp_path / "b" / "videos")
    assert len(first) == 2 and all(v.error is None for v in first + second)
    for x, y in zip(first, second, strict=True):
        assert x.video_id == y.video_id and x.origin == y.origin
        assert Path(x.path).read_bytes() == Path(y.path).read_bytes()
    ta = pd.read_parquet(tmp_path / "a" / "videos.truth.parquet")
    tb = pd.read_parquet(tmp_path / "b" / "videos.truth.parquet")
    pd.testing.assert_frame_equal(ta, tb)
    other = fetch_shard(SMALL | {"seed": 1}, 0, tmp_path / "c" / "videos")
    assert Path(other[0].path).read_bytes() != Path(first[0].path).read_bytes()


def test_default_mix_and_shards():
    specs = clip_specs({"name": "synthetic"})
    assert len(specs) == 24 and shard_count({}) == 2
    pos = Counter(s.category for s in specs if s.positive)
    neg = Counter(s.negative_type for s in specs if not s.positive)
    assert pos == {c: 2 for c in CATEGORIES}
    assert neg == {t: 2 for t in NEGATIVE_TYPES}
    for s in specs:
        assert s.shard == s.index % 2
        assert s.video_id == f"synthetic/clip_{s.index:04d}"
        assert s.origin == f"synthetic:{s.scenario}:0:{s.index}"
        assert (s.category is None) == (not s.positive) == (s.negative_type is not None)
    for shard in (0, 1):
        mine = [s for s in specs if s.shard == shard]
        assert {s.category for s in mine if s.positive} == set(CATEGORIES)
        assert {s.negative_type for s in mine if not s.positive} == set(NEGATIVE_TYPES)
    # Sizes and lengths vary within the configured bounds, portrait frames included.
    assert len({(s.width, s.height) for s in specs}) > 12
    assert any(s.height > s.width for s in specs) and any(s.width > s.height for s in specs)
    for s in specs:
        assert s.width % 2 == 0 and s.height % 2 == 0
        assert min(s.width, s.height) >= 64 and max(s.width, s.height) <= 256
        assert 6.0 - 1 / 24 <= s.duration_s <= 9.0 + 1 / 24


@pytest.mark.parametrize(("clips", "shards", "fraction"), [(7, 3, 0.3), (5, 8, 1.0), (3, 1, 0.0)])
def test_shards_partition_any_config(clips, shards, fraction):
    source = {"clips": clips, "shards": shards, "negative_fraction": fraction}
    specs = clip_specs(source)
    assert [s.index for s in specs] == list(range(clips))
    assert sorted(i for sh in range(shards) for i in range(clips) if specs[i].shard == sh) == list(
        range(clips)
    )
    n_neg = sum(not s.positive for s in specs)
    assert n_neg == int(clips * fraction + 0.5)
    assert shard_names({"kind": "synthetic", **source}) == [f"{i:04d}" for i in range(shards)]


def test_files_probe_to_their_spec(tmp_path):
    source = SMALL | {"gop_seconds": 1.0}
    out = tmp_path / "0001" / "videos"
    fetched = dispatch_fetch(source | {"kind": "synthetic"}, "0001", out)
    specs = {s.video_id: s for s in clip_specs(source)}
    assert [v.video_id for v in fetched] == ["syn/clip_0001", "syn/clip_0003"]
    for v in fetched:
        spec = specs[v.video_id]
        info = probe(v.path)
        assert (info.width, info.height) == (spec.width, spec.height)
        assert info.codec == "h264" and info.fps == spec.fps
        assert info.n_frames == spec.n_frames
        assert abs(info.duration_s - spec.duration_s) <= 1 / spec.fps
        assert np.allclose(np.diff(info.keyframes_s), 1.0, atol=1e-6)
        # What was drawn is what decodes, up to compression.
        with av.open(v.path) as container:
            decoded = next(container.decode(video=0)).to_ndarray(format="rgb24")
        drawn = ClipPlan(spec).frame(0)
        mse = np.mean((decoded.astype(float) - drawn) ** 2)
        assert 10 * np.log10(255**2 / max(mse, 1e-9)) > 28
    truth = pd.read_parquet(truth_path(out))
    assert truth_path(out) == tmp_path / "0001" / "videos.truth.parquet"
    assert list(truth["video_id"]) == [v.video_id for v in fetched]
    assert set(truth.columns) >= {
        "video_id", "clip", "scenario", "positive", "category", "negative_type", "width",
        "height", "fps", "duration_s", "timeline",
    }  # fmt: skip
    for row in truth.to_dict("records"):
        json.loads(row["timeline"])


def test_window_truth_positive_for_any_window():
    for category in CATEGORIES:
        row = _row(category)
        for t0, t1 in ((0.0, 3.0), (3.0, 6.0), (1.5, 4.5), (0.5, 2.0)):
            assert window_truth(row, t0, t1) == {"positive": True, "label": category}


def test_window_truth_scene_cut():
    row = _row("scene_cut")
    tl = json.loads(row["timeline"])
    fps = tl["fps"]
    assert len(tl["cut_frames"]) >= 2
    for t0 in (0.0, 3.0):  # every default window holds a cut
        if t0 + 3.0 <= row["duration_s"]:
            assert window_truth(row, t0, t0 + 3.0) == {"positive": False, "label": "scene_cut"}
    # A window inside one shot shows that shot's own motion.
    shot = tl["shots"][1]
    t0, t1 = (shot["start_frame"] + 2) / fps, (shot["end_frame"] - 2) / fps
    assert window_truth(row, t0, t1) == {"positive": True, "label": shot["motion"]}
    # The cut frame itself belongs to the new shot: a window ending on it spans the cut,
    # one starting on it does not.
    cut = tl["cut_frames"][0]
    assert window_truth(row, (cut - 5) / fps, cut / fps)["label"] == "scene_cut"
    assert window_truth(row, cut / fps, (cut + 5) / fps)["positive"]


def test_window_truth_subject_leaves():
    row = _row("subject_leaves")
    tl = json.loads(row["timeline"])
    fps = tl["fps"]
    first = tl["subjects"][0]
    assert first["visible_frames"][0][0] == 0
    gone = first["visible_frames"][-1][1]  # first frame without it
    assert 0.5 * fps < gone < 3.0 * fps
    assert window_truth(row, 0.0, 3.0) == {"positive": False, "label": "subject_leaves"}
    assert window_truth(row, 3.0, 6.0) == {"positive": False, "label": "subject_leaves"}
    # After the subject left and before the next appears, nothing moves.
    nxt = tl["subjects"][1]["visible_frames"][0][0]
    assert gone + 3 < nxt
    assert window_truth(row, (gone + 1) / fps, (nxt - 1) / fps) == {
        "positive": False,
        "label": "static",
    }
    # While it walks but is still in view, the window is plain locomotion.
    assert window_truth(row, 0.1, (gone - 3) / fps) == {"positive": True, "label": "locomotion"}


def test_window_truth_other_negatives():
    for label in ("camera_pan", "camera_zoom", "static", "degraded"):
        row = _row(label)
        for t0, t1 in ((0.0, 3.0), (3.0, 6.0), (1.0, 2.5)):
            assert window_truth(row, t0, t1) == {"positive": False, "label": label}


def _diff(plan: ClipPlan, f0: int, f1: int) -> np.ndarray:
    return np.abs(plan.frame(f0).astype(np.int16) - plan.frame(f1).astype(np.int16))


def test_motion_is_visible_and_static_is_still():
    end = 72  # the end of the first 3 s window at 24 fps
    for category in CATEGORIES:
        d = _diff(_plan(category), 0, end).max(-1)
        assert (d > 30).mean() > 0.008, category  # the subject's pixels change clearly
    still = _diff(_plan("static"), 0, end)
    assert still.mean() < 2.0 and (still.max(-1) > 30).mean() == 0


def test_camera_pan_moves_the_border():
    def border_change(plan: ClipPlan) -> float:
        d = _diff(plan, 0, 72).mean(-1)
        h, w = d.shape
        bh, bw = max(1, round(0.08 * h)), max(1, round(0.08 * w))
        band = np.ones((h, w), bool)
        band[bh : h - bh, bw : w - bw] = False
        return float(d[band].mean())

    assert border_change(_plan("camera_pan")) > 5.0
    assert border_change(_plan("camera_zoom")) > 5.0
    for still_camera in ("static", *CATEGORIES):
        assert border_change(_plan(still_camera)) < 2.0, still_camera


def test_subjects_stay_inside_a_still_frame():
    """Positives keep every subject whole: a cropped subject would be a different edit."""
    for spec in clip_specs({"seed": 3}):
        if not spec.positive:
            continue
        scene = ClipPlan(spec).shots[0].scene
        pad = max(spec.width, spec.height)
        for f in range(0, spec.n_frames, 12):
            for actor in scene.actors:
                # Draw the silhouette on a canvas with a wide margin: none may land there.
                canvas = np.zeros((spec.height + 2 * pad, spec.width + 2 * pad, 3), np.float32)
                white = Sprite(np.full_like(actor.sprite.tex, 255.0), actor.sprite.alpha,
                               actor.sprite.anchor)  # fmt: skip
                x, y, *rest = actor.pose(f / spec.fps)
                composite(canvas, white, (x + pad, y + pad, *rest), 1.0)
                inside = canvas[pad : pad + spec.height, pad : pad + spec.width].sum()
                assert canvas.sum() - inside < 1e-3 * canvas.sum(), (spec.scenario, actor.name)
