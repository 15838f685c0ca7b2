"""Frame extraction time relative to a plain full decode of the same videos.

For every video of the synthetic corpus (rendered into a temporary folder), times the frames
stage on each video (``video_pairs``: every window's two end frames as PNG and its
``frames.samples`` sampled frames as one strip, from one decoding pass) against
`ffmpeg -i V -f null -`, both run in this process one after the other, and prints the ratio
(target: at most 1.0). It also re-encodes the corpus with one keyframe per video (the worst
case for seeking, also held to the target) and at 1280x720 with a keyframe every 2 s
(typical of web video, reported: there a 720p PNG of each window's two end frames is a fifth
of the time), and the same with the end frames only (``--samples 2``).

    .venv/bin/python benchmarks/frame_extraction.py [--config config.yaml] [--repeat 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from motionedit.config import load_config
from motionedit.frames import video_pairs
from motionedit.manifest import probe_row
from motionedit.sources import fetch_shard, shard_names
from motionedit.video import ffmpeg_exe


def full_decode(path: Path) -> None:
    subprocess.run(
        [ffmpeg_exe(), "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"], check=True
    )


def measure(
    videos: list[Path], config: dict, out: Path, repeat: int, samples: int
) -> tuple[float, float, int]:
    """Best-of-N times of the frames stage and of ffmpeg's full decode, and the number of
    frames the stage stored; probing is left out because the fetch stage does it."""
    rows = [pd.Series(probe_row(v.stem, "bench", str(v), str(v), config["video"])) for v in videos]
    cfg = config["frames"] | {"samples": samples}
    best_x, best_d, n = float("inf"), float("inf"), 0
    for _ in range(repeat):
        t = time.perf_counter()
        windows = [
            w for row in rows for w in video_pairs(row, out, cfg, config["flow"]["max_side"])
        ]
        best_x = min(best_x, time.perf_counter() - t)
        n = sum(len(w["strip_times"] or ()) for w in windows)
        t = time.perf_counter()
        for v in videos:
            full_decode(v)
        best_d = min(best_d, time.perf_counter() - t)
    return best_x, best_d, n


def reencode(src: Path, dst: Path, opts: list[str]) -> Path:
    cmd = [ffmpeg_exe(), "-nostdin", "-v", "error", "-i", str(src), "-c:v", "libx264",
           "-preset", "veryfast", *opts, "-pix_fmt", "yuv420p", str(dst)]  # fmt: skip
    subprocess.run(cmd, check=True)
    return dst


#: label: (re-encoding options, None for the corpus as rendered; held to the 1.0 target)
VARIANTS = {
    "synthetic corpus as rendered": (None, True),
    "one keyframe per video (worst case for seeking)": (["-g", "100000"], True),
    "scaled to 1280x720, keyframe every 2 s (web video)": (
        ["-vf", "scale=1280:720", "-g", "48"],
        False,
    ),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="config.yaml")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    config = load_config(args.config)
    source = next(s for s in config["sources"] if s["kind"] == "synthetic")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        videos = [
            Path(v.path)
            for shard in shard_names(source)
            for v in fetch_shard(source, shard, tmp / "videos" / shard)
            if v.path
        ]
        (tmp / "frames").mkdir()
        samples = config["frames"]["samples"]
        worst, reported = 0.0, 0.0
        for label, (folder_opts, held) in VARIANTS.items():
            if folder_opts is None:
                clips = videos
            else:
                folder = tmp / label.split()[0]
                folder.mkdir()
                clips = [reencode(v, folder / v.name, folder_opts) for v in videos]
            for k in (samples, 2):
                x, d, n = measure(clips, config, tmp / "frames", args.repeat, k)
                if k == samples and held:
                    worst = max(worst, x / d)
                elif k == samples:
                    reported = max(reported, x / d)
                print(f"{label}, {k} frames a window: {n} frames stored, extraction {x:.3f} s, "
                      f"full decode {d:.3f} s, ratio {x / d:.2f}")  # fmt: skip
        print(f"largest ratio with {samples} frames a window: {worst:.2f} (target <= 1.0); "
              f"at 720p {reported:.2f}")  # fmt: skip
    return 0 if worst <= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
