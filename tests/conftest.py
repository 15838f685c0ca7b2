"""Shared fixtures: real videos made with ffmpeg, the repository root, an offline hub."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from motionedit.video import bundled_ffmpeg_exe

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _offline_hub(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


#: What the Snakemake DAG build must not need: the model stack, OpenCV and pydantic.
MODEL_STACK = ("torch", "diffusers", "transformers", "cv2", "pydantic")


def unimportable(folder: Path, names: tuple[str, ...] = MODEL_STACK) -> Path:
    """A folder of packages that raise ImportError when imported; put it first on
    PYTHONPATH to run a process as if they were not installed."""
    for name in names:
        (folder / name).mkdir(parents=True)
        message = f"{name} is not installed"
        (folder / name / "__init__.py").write_text(f"raise ImportError({message!r})\n")
    return folder


def ffmpeg(*args: str) -> None:
    subprocess.run([bundled_ffmpeg_exe(), "-nostdin", "-v", "error", "-y", *args], check=True)


def make_video(
    path: Path,
    size: str = "96x64",
    seconds: float = 4.0,
    fps: int = 24,
    gop: int = 48,
    extra: tuple[str, ...] = (),
) -> Path:
    """An H.264 clip of ffmpeg's moving test pattern."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size={size}:rate={fps}:duration={seconds}",
        "-c:v",
        "libx264",
        "-g",
        str(gop),
        "-pix_fmt",
        "yuv420p",
        *extra,
        str(path),
    )
    return path


def make_bad_videos(folder: Path) -> dict[str, Path]:
    """Every kind of bad input a real corpus holds, plus two good but awkward files."""
    folder.mkdir(parents=True, exist_ok=True)
    good = make_video(folder / "good clip.mp4", seconds=7)
    out = {"good": good}
    truncated = folder / "truncated.mp4"
    data = make_video(folder / "full.mp4", seconds=7).read_bytes()
    (folder / "full.mp4").unlink()
    truncated.write_bytes(data[: len(data) // 3])
    out["truncated"] = truncated
    # With the index at the front, the header survives truncation and the frames do not.
    data = make_video(
        folder / "full.mp4", seconds=7, extra=("-movflags", "+faststart")
    ).read_bytes()
    (folder / "full.mp4").unlink()
    out["truncated_faststart"] = folder / "truncated_faststart.mp4"
    out["truncated_faststart"].write_bytes(data[: len(data) // 3])
    out["empty"] = folder / "empty.mp4"
    out["empty"].write_bytes(b"")
    out["text"] = folder / "notes.mp4"
    out["text"].write_text("this is a text file, not a video\n")
    out["audio_only"] = folder / "audio only.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", "sine=frequency=440:duration=4", "-c:a", "aac", str(out["audio_only"])
    )
    out["one_frame"] = make_video(folder / "one_frame.mp4", seconds=1 / 24)
    out["tiny"] = folder / "tiny 17x9.mp4"
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x48:rate=24:duration=4",
        "-vf",
        "scale=17:9",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv444p",
        str(out["tiny"]),
    )
    plain = make_video(folder / "plain.mp4", size="96x64", seconds=7)
    out["rotated"] = folder / "rotated.mp4"
    ffmpeg("-display_rotation", "90", "-i", str(plain), "-c", "copy", str(out["rotated"]))
    plain.unlink()
    out["unicode"] = make_video(folder / "vidéo d'été 日本.mp4", seconds=7)
    return out


def kill_once_written(script: str, path: Path, timeout: float = 120) -> None:
    """Run ``script`` in a new Python process and SIGKILL it the moment ``path`` exists:
    the crash a resume test recovers from. Fails if the process ends first."""
    import os
    import signal
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if path.is_file():
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
