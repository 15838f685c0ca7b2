"""Windows cut on timestamps: variable-rate video, holes in a stream, frames the decoder drops."""

from __future__ import annotations

import logging
from pathlib import Path

import av
import cv2
import numpy as np
import pandas as pd
from conftest import ffmpeg
from matplotlib import cbook

from motionedit.config import validate_config
from motionedit.frames import extract_shard, load_strip, video_key, video_pairs
from motionedit.manifest import COLUMNS, probe_row
from motionedit.pairs import fit_side
from motionedit.tables import read_table, write_table
from motionedit.video import frame_index, probe

LOG = logging.getLogger("test_frames")

#: Irregular frame durations (ms) as a phone writes them; none is more than twice the median.
IRREGULAR_MS = [33, 50, 41, 67, 25, 45] * 7


def config(**frames) -> dict:
    cfg = validate_config({"sources": [{"name": "s", "kind": "synthetic"}]})
    cfg["frames"].update(frames)
    return cfg


def photo_frames(n: int) -> list[np.ndarray]:
    """Crops panning across a real photograph, 8 px apart: every frame tells which it is."""
    photo = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    return [np.ascontiguousarray(photo[100:196, 50 + 8 * i : 178 + 8 * i, ::-1]) for i in range(n)]


def timed_clip(path: Path, times_ms: list[int], codec: str = "libx264") -> list[np.ndarray]:
    """Encode photo frames so frame n is shown from ``times_ms[n]``; return what was encoded.

    The timestamps go through setpts in a millisecond time base and the encoder keeps them
    (``-fps_mode passthrough``), so the file holds exactly these times.
    """
    frames = photo_frames(len(times_ms))
    src = path.parent / f"{path.stem}_src"
    src.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        cv2.imwrite(str(src / f"{i:03d}.png"), f[:, :, ::-1])
    expr = "+".join(f"{t}*eq(N\\,{n})" for n, t in enumerate(times_ms) if t) or "0"
    pix = ["-pix_fmt", "yuv420p"] if codec == "libx264" else ["-q:v", "2", "-pix_fmt", "yuvj420p"]
    ffmpeg("-framerate", "25", "-i", str(src / "%03d.png"), "-vf",
           f"settb=1/1000,setpts={expr}", "-fps_mode", "passthrough", "-enc_time_base:v",
           "1/1000", "-c:v", codec, *pix, str(path))  # fmt: skip
    return frames


def cumulative(intervals_ms: list[int], n: int) -> list[int]:
    return [int(sum(intervals_ms[:i])) for i in range(n)]


def zero_packet(path: Path, pts_seconds: float) -> None:
    """Overwrite the payload of the packet shown at ``pts_seconds`` with zero bytes: the
    container still lists the frame, the decoder cannot make a picture of it."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        hits = [(p.pos, p.size) for p in c.demux(s) if p.pts is not None and p.size
                and abs(float(p.pts * s.time_base) - pts_seconds) < 1e-6]  # fmt: skip
    assert len(hits) == 1
    pos, size = hits[0]
    data = bytearray(path.read_bytes())
    data[pos : pos + size] = bytes(size)
    path.write_bytes(bytes(data))


def shown_at(times_ms: list[int], t: float) -> int:
    """The frame on screen at t: the last one that started at or before it."""
    return max(i for i, ms in enumerate(times_ms) if ms <= round(t * 1000))


def which_frame(png: str, reference: list[np.ndarray]) -> int:
    got = cv2.imread(png)[:, :, ::-1].astype(np.float32)
    errors = [np.abs(got - f).mean() for f in reference]
    assert min(errors) < 4.0  # it is one of them, up to compression
    return int(np.argmin(errors))


def manifest_row(path: Path, video_id: str = "v") -> pd.Series:
    (path.parent / "f").mkdir(exist_ok=True)  # where video_pairs writes
    row = probe_row(video_id, "s", str(path), str(path), config()["video"])
    assert row["error"] is None, row["error"]
    return pd.Series(row)


def test_variable_rate_video_is_cut_on_its_timestamps(tmp_path):
    times = cumulative(IRREGULAR_MS, 40)
    reference = timed_clip(tmp_path / "vfr.mkv", times)
    info = probe(tmp_path / "vfr.mkv")
    assert np.allclose(info.frame_times_s, np.array(times) / 1000, atol=1e-9)
    assert len(set(np.diff(times))) > 3  # not on any fixed grid
    assert info.fps == 25  # Matroska reports the input's rate, not the stream's: not trusted
    row = manifest_row(tmp_path / "vfr.mkv")
    rows = video_pairs(row, tmp_path / "f", config(window_seconds=0.3, stride_seconds=0.3,
                                                   min_window_fraction=0.5)["frames"])  # fmt: skip
    assert [(r["t0"], r["t1"]) for r in rows] == [
        (0.0, 0.3), (0.3, 0.6), (0.6, 0.9), (0.9, 1.2), (1.2, 1.5), (1.5, 1.69)]  # fmt: skip
    assert [r["pair_id"] for r in rows] == [f"{video_key('v')}_w{k:03d}" for k in range(6)]
    # Window times fall between two frames or on one (1.69 s), never just before one, where
    # which frame is meant would be a matter of rounding.
    assert not any(0 < ms - 1000 * t <= 3 for r in rows for t in (r["t0"], r["t1"]) for ms in times)
    for r in rows:
        assert r["error"] is None and r["skip"] is None
        assert which_frame(r["frame0"], reference) == shown_at(times, r["t0"])
        assert which_frame(r["frame1"], reference) == shown_at(times, r["t1"])
    # The frame shown at 0.9 s started at 0.866 s; rounding 0.9 s x 25 fps picked 0.974 s.
    assert which_frame(rows[2]["frame1"], reference) == 20 and times[20] == 866


def test_each_window_keeps_its_sampled_frames_as_one_strip(tmp_path):
    # Variable-rate video, a 0.5 s window sampled 5 times: the strip holds, in order, the
    # frames shown at 0, 0.125, 0.25, 0.375 and 0.5 s after the window starts, at the
    # flow's size, from the same decoding pass as the end frames.
    times = cumulative(IRREGULAR_MS, 40)
    reference = timed_clip(tmp_path / "vfr.mkv", times)
    small = [fit_side(f, 64) for f in reference]
    cfg = config(window_seconds=0.5, stride_seconds=0.5, samples=5)["frames"]
    row = manifest_row(tmp_path / "vfr.mkv")
    info = probe(tmp_path / "vfr.mkv")
    rows = video_pairs(row, tmp_path / "f", cfg, strip_side=64)
    assert len(rows) == 3
    for r in rows:
        # The frame shown at t, where a frame starting a hair after t counts (frame_index).
        at = np.linspace(r["t0"], r["t1"], 5)
        expected = [frame_index(info, t) for t in at]
        assert all(0 <= frame_index(info, t) - shown_at(times, t) <= 1 for t in at)
        assert r["strip_times"] == [times[i] / 1000 for i in sorted(set(expected))]
        frames = load_strip(r["strip"], len(r["strip_times"]))
        assert all(f.shape == (48, 64, 3) for f in frames)
        got = [int(np.argmin([np.abs(f.astype(np.float32) - s).mean() for s in small]))
               for f in frames]  # fmt: skip
        assert got == sorted(set(expected))
        # The strip's ends are the pair's frames, at the flow's size.
        assert which_frame(r["frame0"], reference) == got[0]
        assert which_frame(r["frame1"], reference) == got[-1]


def test_a_sampled_frame_in_a_hole_is_left_out_of_the_strip_not_the_window(tmp_path):
    times = [40 * i for i in range(10)] + [760 + 40 * i for i in range(20)]  # 0.4-0.76 s
    timed_clip(tmp_path / "hole.mp4", times)
    cfg = config(window_seconds=1.0, stride_seconds=1.0, samples=6)["frames"]
    (r,) = video_pairs(manifest_row(tmp_path / "hole.mp4"), tmp_path / "f", cfg)
    assert r["error"] is None
    # 0.6 s lies in the hole; 0.4 s shows the frame of 0.36 s, only one frame stale.
    assert r["strip_times"] == [0.0, 0.2, 0.36, 0.8, 1.0]
    assert len(load_strip(r["strip"], 5)) == 5


def test_windows_in_a_hole_of_the_stream_fail_alone(tmp_path):
    # 25 frames a second, then 500 ms with no frame (two recorder stalls), then 25 again.
    times = [40 * i for i in range(20)] + [1260 + 40 * i for i in range(20)]
    reference = timed_clip(tmp_path / "hole.mp4", times)
    row = manifest_row(tmp_path / "hole.mp4")
    rows = video_pairs(row, tmp_path / "f", config(window_seconds=0.25,
                                                   stride_seconds=0.25)["frames"])  # fmt: skip
    assert len(rows) == 8
    failed = [r["window"] for r in rows if r["error"]]
    # 0.75 s shows the frame of 0.72 s; 1.0 s and 1.25 s would show the one of 0.76 s,
    # a quarter of a second stale.
    assert failed == [3, 4, 5]
    for r in rows:
        if r["error"]:
            assert "no frame near t=" in r["error"] and "hole" in r["error"]
            assert r["frame0"] is None and r["frame1"] is None and r["skip"] is None
        else:
            assert which_frame(r["frame0"], reference) == shown_at(times, r["t0"])
            assert which_frame(r["frame1"], reference) == shown_at(times, r["t1"])
    # Frames only the failed windows would have used are not extracted.
    assert len(list((tmp_path / "f").glob("*_f??????.png"))) == 7
    # Each good window has its strip, the failed ones none.
    strips = sorted(p.name for p in (tmp_path / "f").glob("*_strip.jpg"))
    assert strips == sorted(Path(r["strip"]).name for r in rows if not r["error"])
    assert all(r["strip"] is None for r in rows if r["error"])


def test_a_frame_the_decoder_does_not_deliver_fails_its_window_only(tmp_path):
    times = cumulative(IRREGULAR_MS, 40)
    clip = tmp_path / "mjpeg.mkv"
    reference = timed_clip(clip, times, codec="mjpeg")
    cfg = config(window_seconds=0.2, stride_seconds=0.3)["frames"]  # windows share no frame
    row = manifest_row(clip)  # the probe sees every packet, the broken one included
    lost = shown_at(times, 0.8)  # the last frame of window 2
    zero_packet(clip, times[lost] / 1000)
    rows = video_pairs(row, tmp_path / "f", cfg)
    assert len(rows) == 6
    bad = [r for r in rows if r["error"]]
    assert [r["window"] for r in bad] == [2]
    assert f"frame at t={times[lost] / 1000:.3f} s not returned by the decoder" in bad[0]["error"]
    assert bad[0]["frame0"] is None and bad[0]["frame1"] is None
    for r in rows:
        if not r["error"]:
            assert which_frame(r["frame0"], reference) == shown_at(times, r["t0"])
            assert which_frame(r["frame1"], reference) == shown_at(times, r["t1"])
    # The failed window's first frame was written, then removed: no row points at it.
    assert len(list((tmp_path / "f").glob("*_f??????.png"))) == 10
    assert bad[0]["strip"] is None and len(list((tmp_path / "f").glob("*_strip.jpg"))) == 5


def test_window_error_rows_survive_the_tables_and_the_prefilter_skips_them(tmp_path):
    from motionedit.prefilter import prefilter_shard

    times = [40 * i for i in range(20)] + [1260 + 40 * i for i in range(20)]
    timed_clip(tmp_path / "hole.mp4", times)
    manifest = pd.DataFrame([manifest_row(tmp_path / "hole.mp4")], columns=COLUMNS)
    write_table(manifest, tmp_path / "manifest.parquet")  # frame times as a list column
    cfg = config(window_seconds=0.25, stride_seconds=0.25)
    frames = extract_shard(read_table(tmp_path / "manifest.parquet"), tmp_path / "f",
                           cfg["frames"], LOG)  # fmt: skip
    write_table(frames, tmp_path / "frames.parquet")
    frames = read_table(tmp_path / "frames.parquet")
    assert len(frames) == 8 and frames["pair_id"].notna().all()
    assert frames["error"].notna().sum() == 3
    pre = prefilter_shard(frames, cfg["prefilter"], cfg["flow"], LOG)
    assert sorted(pre["pair_id"]) == sorted(frames.loc[frames["error"].isna(), "pair_id"])
