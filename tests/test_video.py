"""Probing and frame extraction on real files, the bad ones included."""

from __future__ import annotations

import av
import cv2
import numpy as np
import pytest
from conftest import make_bad_videos, make_video

from motionedit.frames import window_bounds
from motionedit.manifest import probe_row
from motionedit.video import (
    VideoError,
    VideoInfo,
    extract_frames,
    frame_at,
    frame_index,
    hole_at,
    plan_groups,
    probe,
)

VIDEO_CFG = {"min_side": 32, "max_duration_s": 3600}


def decoded_frames(path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


@pytest.mark.parametrize(("gop", "seek_cost"), [(12, 0), (12, 10**9), (1000, 0)])
def test_extracts_exactly_the_requested_frames(tmp_path, monkeypatch, gop, seek_cost):
    monkeypatch.setattr("motionedit.video.SEEK_COST_FRAMES", seek_cost)
    video = make_video(tmp_path / "v.mp4", seconds=9, gop=gop)
    info = probe(video)
    assert info.n_frames == 216 and abs(info.duration_s - 9.0) < 1e-6
    wanted = sorted({frame_index(info, t) for t in (0.0, 3.0, 6.0, 9.0)})
    assert wanted[-1] == 215  # t = duration is clamped to the last frame
    assert len(plan_groups(info, wanted)) == (4 if gop == 12 and seek_cost == 0 else 1)
    outs = {i: tmp_path / f"{i}.png" for i in wanted}
    extract_frames(video, info, wanted, outs)
    reference = decoded_frames(video)
    for i in wanted:
        got = cv2.imread(str(outs[i]))[:, :, ::-1].astype(float)
        errors = [np.abs(got - f).mean() for f in reference]
        assert int(np.argmin(errors)) == i and min(errors) < 0.5


def test_frames_nothing_refers_to_are_skipped_unless_wanted(tmp_path):
    """A window's samples come out exact although the B-frames between them are skipped."""
    video = make_video(tmp_path / "b.mp4", size="160x120", seconds=4, gop=48)
    info = probe(video)
    with av.open(str(video)) as c:
        stream = c.streams.video[0]
        stream.codec_context.skip_frame = "NONREF"
        assert sum(1 for _ in c.decode(stream)) < info.n_frames  # there is something to skip
    wanted = list(range(3, 90, 4))
    outs = {i: tmp_path / f"{i}.png" for i in wanted}
    small: dict[int, np.ndarray] = {}
    extract_frames(video, info, wanted, outs, on_small=small.__setitem__, small_side=160)
    reference = decoded_frames(video)
    assert sorted(small) == wanted
    for i in wanted:
        assert np.array_equal(cv2.imread(str(outs[i]))[:, :, ::-1], reference[i])
        assert np.abs(small[i].astype(int) - reference[i]).mean() < 0.5


def test_seek_groups_follow_keyframes_and_size():
    info = VideoInfo(9.0, 24.0, 216, 1920, 1080, "h264", 0, keyframes_s=[0.0, 1.0, 2.0, 3.0, 4.0])
    assert plan_groups(info, [0, 72, 144, 215]) == [[0], [72], [144, 215]]
    info.keyframes_s = [0.0]  # one keyframe: one decode run
    assert plan_groups(info, [0, 72, 144, 215]) == [[0, 72, 144, 215]]
    info.keyframes_s = [0.0, 1.0, 2.0, 3.0, 4.0]
    # A window's samples four frames apart: a keyframe between two of them saves too little
    # decoding to be worth a seek; one a second past the previous frame is.
    assert plan_groups(info, [0, 4, 8, 20, 24, 28]) == [[0, 4, 8, 20, 24, 28]]
    assert plan_groups(info, [0, 4, 8, 44, 48]) == [[0, 4, 8], [44, 48]]


def test_windows_fit_inside_the_video():
    cfg = {
        "window_seconds": 3.0,
        "stride_seconds": 3.0,
        "max_windows_per_video": 100,
        "min_window_fraction": 1.0,
    }
    assert window_bounds(9.0, 24, cfg) == [(0.0, 3.0), (3.0, 6.0), (6.0, 8.958333)]
    assert window_bounds(8.0, 24, cfg) == [(0.0, 3.0), (3.0, 6.0)]
    assert window_bounds(2.0, 24, cfg) == []
    assert len(window_bounds(9.0, 24, cfg | {"stride_seconds": 1.0})) == 7


def test_bad_inputs_become_error_rows(tmp_path):
    videos = make_bad_videos(tmp_path)
    rows = {k: probe_row(k, "t", str(p), str(p), VIDEO_CFG) for k, p in videos.items()}
    assert rows["good"]["error"] is None
    assert rows["unicode"]["error"] is None
    assert "empty file" in rows["empty"]["error"]
    assert "not a readable video" in rows["text"]["error"]
    assert "no video stream" in rows["audio_only"]["error"]
    assert "below video.min_side=32" in rows["tiny"]["error"]
    assert "not a readable video container" in rows["truncated"]["error"]
    # A truncated file whose index survived: the header promises more than the stream holds.
    assert "truncated: the header says 7.00 s" in rows["truncated_faststart"]["error"]
    assert rows["one_frame"]["error"] is None and rows["one_frame"]["n_frames"] == 1
    rot = rows["rotated"]
    assert rot["error"] is None and rot["rotation"] in (90, 270)
    assert (rot["width"], rot["height"]) == (64, 96)  # display orientation


def test_rotated_video_frames_come_out_upright(tmp_path):
    videos = make_bad_videos(tmp_path)
    info = probe(videos["rotated"])
    out = {0: tmp_path / "r0.png"}
    extract_frames(videos["rotated"], info, [0], out)
    assert cv2.imread(str(out[0])).shape[:2] == (96, 64)


def test_a_stream_that_starts_after_the_container_gives_the_right_frames(tmp_path):
    from conftest import ffmpeg

    plain = make_video(tmp_path / "p.mp4", seconds=7, fps=10, gop=1000)
    delayed = tmp_path / "delayed.mp4"
    ffmpeg("-itsoffset", "0.5", "-i", str(plain), "-f", "lavfi", "-i",
           "sine=frequency=440:duration=8", "-map", "0:v", "-map", "1:a", "-c:v", "copy",
           "-c:a", "aac", str(delayed))  # fmt: skip
    info = probe(delayed)
    wanted = [5, 20, 69]
    outs = {i: tmp_path / f"d{i}.png" for i in wanted}
    extract_frames(delayed, info, wanted, outs)
    reference = decoded_frames(plain)
    for i in wanted:
        got = cv2.imread(str(outs[i]))[:, :, ::-1].astype(float)
        assert int(np.argmin([np.abs(got - f).mean() for f in reference])) == i


def test_a_frame_the_probe_saw_but_the_decoder_does_not_return_is_reported(tmp_path):
    video = make_video(tmp_path / "v.mp4", seconds=4)
    info = probe(video)
    info.frame_times_s.append(9.5)  # as if the index listed a frame the stream lacks
    last = len(info.frame_times_s) - 1
    outs = {i: tmp_path / f"{i}.png" for i in (0, 50, last)}
    missing = extract_frames(video, info, sorted(outs), outs)
    assert missing == {last: "frame at t=9.500 s not returned by the decoder"}
    assert outs[0].is_file() and outs[50].is_file() and not outs[last].exists()


def test_a_packet_the_decoder_rejects_costs_only_its_frame(tmp_path):
    from test_frames import zero_packet

    video = make_video(tmp_path / "v.mp4", seconds=2, gop=1)
    info = probe(video)
    zero_packet(video, info.frame_time(20))  # H.264 refuses it outright (invalid data)
    outs = {i: tmp_path / f"{i}.png" for i in (5, 20, 40)}
    missing = extract_frames(video, info, sorted(outs), outs)
    assert list(missing) == [20] and "rejected a packet" in missing[20]
    reference = decoded_frames(make_video(tmp_path / "clean.mp4", seconds=2, gop=1))
    for i in (5, 40):
        got = cv2.imread(str(outs[i]))[:, :, ::-1].astype(float)
        assert int(np.argmin([np.abs(got - f).mean() for f in reference])) == i


def test_frames_above_max_pixels_are_refused_before_decoding(tmp_path):
    video = make_video(tmp_path / "v.mp4", size="96x96", seconds=1)
    with pytest.raises(
        VideoError, match=r"frame size 96x96 \(9216 pixels\) above video.max_pixels=4096"
    ):
        probe(video, max_pixels=64 * 64)
    assert probe(video, max_pixels=96 * 96).width == 96
    row = probe_row("v", "t", str(video), str(video), VIDEO_CFG | {"max_pixels": 4096})
    assert "video.max_pixels=4096" in row["error"] and row["n_frames"] is None
    assert probe_row("v", "t", str(video), str(video), VIDEO_CFG)["error"] is None  # default


def test_frame_times_are_recorded_and_a_constant_rate_falls_on_its_grid(tmp_path):
    info = probe(make_video(tmp_path / "v.mp4", seconds=2, fps=30))
    assert info.frame_times_s == pytest.approx([i / 30 for i in range(60)], abs=1e-9)
    assert info.frame_interval_s == pytest.approx(1 / 30)
    grid = VideoInfo(2.0, 30.0, 60, 96, 64, "h264", 0)  # a manifest without frame times
    assert grid.frame_times_s == [i / 30 for i in range(60)]
    for t in np.linspace(0, 2.1, 211):  # the synthetic truth's rule is the same
        assert frame_index(info, t) == frame_index(grid, t) == frame_at(t, 30.0, 60)
    assert frame_index(info, 1 / 30 - 1e-7) == 1  # a bound rounded to the microsecond
    assert frame_index(info, 1.7 / 30) == 1  # the frame shown, not the nearest one


def test_hole_rule():
    times = [0.0, 0.04, 0.08, 0.12, 0.2, 0.24, 0.6, 0.64, 0.68]
    info = VideoInfo(0.72, 25.0, len(times), 96, 64, "h264", 0, frame_times_s=times)
    assert info.frame_interval_s == pytest.approx(0.04)
    assert hole_at(info, 0.19) is None  # one dropped frame: 0.12 s is 70 ms old
    assert hole_at(info, 0.3) is None  # the frame of 0.24 s is 60 ms old
    assert "no frame near t=0.500 s" in hole_at(info, 0.5)  # 260 ms old
    assert hole_at(info, 0.6) is None and hole_at(info, 0.68) is None


def test_scene_cut_detection_skips_windows_that_span_a_cut(tmp_path):
    import json

    import pandas as pd

    from motionedit.frames import video_pairs
    from motionedit.sources.synthetic import clip_specs, fetch_shard, truth_path

    source = {"name": "s", "kind": "synthetic", "clips": 24, "shards": 12}
    spec = next(s for s in clip_specs(source) if s.negative_type == "scene_cut")
    videos = fetch_shard(source, spec.shard, tmp_path / "v")
    truth = pd.read_parquet(truth_path(tmp_path / "v")).set_index("video_id")
    cut_clip = next(v for v in videos if truth.loc[v.video_id, "negative_type"] == "scene_cut")
    cuts = json.loads(truth.loc[cut_clip.video_id, "timeline"])["cuts_s"]
    row = pd.Series(probe_row(cut_clip.video_id, "s", cut_clip.path, "", VIDEO_CFG))
    cfg = {"window_seconds": 3.0, "stride_seconds": 3.0, "max_windows_per_video": 100,
           "min_window_fraction": 1.0, "timeout_s": 60,
           "scene_cuts": {"enabled": True, "threshold": 27.0}}  # fmt: skip
    rows = video_pairs(row, tmp_path / "f", cfg)
    assert rows and all(r["skip"] and "scene cut" in r["skip"] for r in rows)
    for r in rows:
        assert any(r["t0"] < c <= r["t1"] + 0.05 for c in cuts)
    assert not list((tmp_path / "f").glob("*.png"))  # nothing extracted for skipped windows
