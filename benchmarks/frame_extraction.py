"""Frame extraction time relative to a plain full decode of the same videos.

For every video of the synthetic corpus (rendered into a temporary folder), times the frames
stage's extraction of all window frames against `ffmpeg -i V -f null -`, both run in this
process one after the other, and prints the ratio (target: at most 1.0). It also re-encodes
the corpus with one keyframe per video (the worst case for seeking) and at 1280x720 with a
keyframe every 2 s (typical of web video), and reports those ratios.

    .venv/bin/python benchmarks/frame_extraction.py [--config config.yaml] [--repeat 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from motionedit.config import load_config
from motionedit.frames import window_bounds
from motionedit.sources import fetch_shard, shard_names
from motionedit.video import extract_frames, ffmpeg_exe, frame_index, probe


def full_decode(path: Path) -> None:
    subprocess.run(
        [ffmpeg_exe(), "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"], check=True
    )


def extract_all(path: Path, info, cfg: dict, out: Path) -> int:
    idx = sorted(
        {frame_index(info, t) for w in window_bounds(info.duration_s, info.fps, cfg) for t in w}
    )
    extract_frames(path, info, idx, {i: out / f"{path.stem}_{i}.png" for i in idx})
    return len(idx)


def measure(videos: list[Path], cfg: dict, out: Path, repeat: int) -> tuple[float, float, int]:
    """Best-of-N times; probing is left out because the fetch stage does it, not frames."""
    infos = [probe(v) for v in videos]
    best_x, best_d, n = float("inf"), float("inf"), 0
    for _ in range(repeat):
        t = time.perf_counter()
        n = sum(extract_all(v, i, cfg, out) for v, i in zip(videos, infos, strict=True))
        best_x = min(best_x, time.perf_counter() - t)
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
        x, d, n = measure(videos, config["frames"], tmp / "frames", args.repeat)
        print(f"{len(videos)} videos, {n} frames extracted")
        print(f"extraction {x:.3f} s, full decode {d:.3f} s, ratio {x / d:.2f} (target <= 1.0)")
        variants = {
            "one keyframe per video (worst case for seeking)": ["-g", "100000"],
            "scaled to 1280x720, keyframe every 2 s (web video)": [
                "-vf", "scale=1280:720", "-g", "48"],
        }  # fmt: skip
        for label, opts in variants.items():
            folder = tmp / label.split()[0]
            folder.mkdir()
            encoded = [reencode(v, folder / v.name, opts) for v in videos]
            x2, d2, _ = measure(encoded, config["frames"], tmp / "frames", args.repeat)
            print(f"{label}: extraction {x2:.3f} s, full decode {d2:.3f} s, ratio {x2 / d2:.2f}")
    return 0 if x / d <= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
