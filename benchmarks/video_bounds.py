"""What a huge frame and a long variable-rate video cost the fetch and frames stages.

1. An 8192x8192 clip (two black frames, 64x the pixels of 1080p) is probed with the default
   ``video.max_pixels`` (4096x4096) in a fresh process, whose peak memory is compared with
   that of opening it without the limit and of decoding one frame, as the probe did before
   the limit. The probe must refuse it and stay far below one decoded frame.
2. The frame timestamps of a 1-hour 60 fps video (216,000 of them, as the probe records
   them): their size in a manifest table, and the time to read them back and pick the
   frames of 100 windows.
3. The largest video the default accepts (4096x4096, 9 s, three windows) through the real
   workflow's fetch, frames and prefilter jobs: each job's peak memory, as Snakemake's
   ``benchmark:`` files record it, against the ``mem_mb`` its rule declares (what a Slurm
   job is killed past).

    .venv/bin/python benchmarks/video_bounds.py      # Linux: reads /proc/self/status
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from motionedit.frames import _info, window_bounds
from motionedit.tables import read_table, write_table
from motionedit.video import VideoInfo, bundled_ffmpeg_exe, frame_index, hole_at

SIDE = 8192

#: Run in a fresh process: prints its peak resident memory (MB) after the step. The peak is
#: the address space's high-water mark (VmHWM), which starts afresh at exec; ru_maxrss would
#: carry over the peak of the forking parent.
CHILD = """
import sys
import av
from motionedit.video import VideoError, probe
path, step = sys.argv[1], sys.argv[2]
outcome = "ok"
if step == "probe":
    try:
        probe(path)
    except VideoError as exc:
        outcome = f"refused: {exc}"
elif step == "open":
    av.open(path).close()
elif step == "decode":
    with av.open(path) as c:
        next(c.decode(video=0)).to_ndarray(format="rgb24")
status = open("/proc/self/status").read().split("VmHWM:")[1]
print(int(status.split()[0]) / 1024, outcome)
"""


def peak_mb(path: Path, step: str) -> tuple[float, str]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), step], check=True, capture_output=True, text=True
    ).stdout.split(" ", 1)
    return float(out[0]), out[1].strip()


def huge_frame(tmp: Path) -> bool:
    path = tmp / "huge.mkv"
    t = time.perf_counter()
    subprocess.run(
        [bundled_ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
         f"color=black:size={SIDE}x{SIDE}:rate=24:duration=0.08", "-c:v", "libx264",
         "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )  # fmt: skip
    print(f"{SIDE}x{SIDE} clip, 2 frames: encoded in {time.perf_counter() - t:.2f} s")
    rgb_mb = SIDE * SIDE * 3 / 2**20
    base_mb, _ = peak_mb(path, "none")
    print(f"  peak memory of a process that only imports: {base_mb:.0f} MB; above it:")
    t = time.perf_counter()
    probe_mb, outcome = peak_mb(path, "probe")
    print(f"  probe, default limit: +{probe_mb - base_mb:.0f} MB, {time.perf_counter() - t:.2f} s "
          f"with the process start; {outcome}")  # fmt: skip
    open_mb, _ = peak_mb(path, "open")
    print(f"  open without the limit (it decodes frames to learn the stream): "
          f"+{open_mb - base_mb:.0f} MB")  # fmt: skip
    decode_mb, _ = peak_mb(path, "decode")
    print(f"  decode one frame to RGB: +{decode_mb - base_mb:.0f} MB (the RGB frame alone: "
          f"{rgb_mb:.0f} MB)")  # fmt: skip
    return outcome.startswith("refused") and probe_mb - base_mb < rgb_mb / 4


def long_video(tmp: Path) -> None:
    fps, seconds = 60.0, 3600
    times = (np.arange(int(fps * seconds)) / fps).tolist()
    info = VideoInfo(seconds, fps, len(times), 1920, 1080, "h264", 0, [0.0], times)
    row = {
        "video_id": "long", "source": "s", "path": "long.mp4", "duration_s": info.duration_s,
        "fps": fps, "n_frames": info.n_frames, "width": 1920, "height": 1080, "codec": "h264",
        "rotation": 0, "keyframes_s": info.keyframes_s, "frame_times_s": times,
    }  # fmt: skip
    write_table(pd.DataFrame([row]), tmp / "manifest.parquet")
    size = (tmp / "manifest.parquet").stat().st_size
    t = time.perf_counter()
    back = _info(read_table(tmp / "manifest.parquet").iloc[0])
    read_s = time.perf_counter() - t
    cfg = {"window_seconds": 3.0, "stride_seconds": 3.0, "max_windows_per_video": 100,
           "min_window_fraction": 1.0}  # fmt: skip
    t = time.perf_counter()
    for t0, t1 in window_bounds(back.duration_s, back.fps, cfg):
        frame_index(back, t0), frame_index(back, t1), hole_at(back, t0), hole_at(back, t1)
    pick_s = time.perf_counter() - t
    print(f"1 h at 60 fps: {len(times)} frame times, {size / 2**20:.2f} MB in the manifest "
          f"(zstd parquet), read back in {read_s * 1000:.0f} ms, 100 windows' frames picked "
          f"in {pick_s * 1000:.0f} ms")  # fmt: skip


ROOT = Path(__file__).resolve().parent.parent


def declared_mb(rule: str) -> int:
    """The ``mem_mb`` a rule declares, read from its rule file."""
    for smk in (ROOT / "rules").glob("*.smk"):
        m = re.search(rf"^rule {rule}:\n(?:(?!^rule ).*\n)*?\s+mem_mb=(\d+)", smk.read_text(), re.M)
        if m:
            return int(m.group(1))
    raise LookupError(rule)


def largest_accepted(tmp: Path) -> bool:
    side = 4096
    video = tmp / "corpus" / "largest.mp4"
    video.parent.mkdir()
    subprocess.run(
        [bundled_ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
         f"testsrc2=size={side}x{side}:rate=24:duration=9", "-c:v", "libx264",
         "-preset", "ultrafast", "-g", "48", "-pix_fmt", "yuv420p", str(video)],
        check=True,
    )  # fmt: skip
    config = tmp / "config.yaml"
    config.write_text(
        "sources: [{name: big, kind: local, path_glob: corpus/*.mp4}]\nflow: {max_side: 256}\n"
    )
    snakemake = Path(sys.executable).with_name("snakemake")
    subprocess.run(
        [str(snakemake), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp),
         "--configfile", str(config), "--cores", "2", "--until", "prefilter"],
        check=True, capture_output=True, env=os.environ | {"HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    print(f"{side}x{side}, 9 s, 3 windows (the largest frame video.max_pixels accepts):")
    ok = True
    for rule in ("fetch", "frames", "prefilter"):
        tsv = next((tmp / "results" / "benchmarks" / rule).rglob("*.tsv"))
        peak = float(pd.read_csv(tsv, sep="\t")["max_rss"].iloc[0])
        limit = declared_mb(rule)
        ok = ok and peak < limit
        print(f"  {rule:9s} peak {peak:6.0f} MB of {limit} MB declared ({peak / limit:.0%})")
    return ok


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        ok = huge_frame(Path(tmp))
        long_video(Path(tmp))
    with tempfile.TemporaryDirectory() as tmp:
        ok = largest_accepted(Path(tmp)) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
