"""Probing videos and pulling exact frames out of them.

Both run in-process on FFmpeg's libraries through PyAV. Probing demuxes (no decoding) to
count frames, record their timestamps and find keyframes, and decodes one frame. Extraction
decodes only what the requested frames need: each group of frames starts at the keyframe
before it, so a video with a short GOP is never decoded whole, and a video with one keyframe
is decoded once, up to its last wanted frame. The ffmpeg binary imageio-ffmpeg pins only
encodes: the synthetic corpus and the test clips.

Frames are addressed by their presentation timestamps, not by ``round(t * fps)``: phones and
screen recorders write variable-rate video, and a stream that dropped one frame is off a
fixed grid from there on. A frame's index is its rank among the stream's timestamps.
"""

from __future__ import annotations

import bisect
import functools
import math
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np
from av.video.reformatter import VideoReformatter


class VideoError(Exception):
    """A video that cannot be used; the message is the reason stored in its error row."""


@functools.cache
def bundled_ffmpeg_exe() -> str:
    """The static ffmpeg that imageio-ffmpeg pins: the same build on every machine."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@functools.cache
def ffmpeg_exe() -> str:
    """The ffmpeg a user would run: the system's if on PATH, else the pinned one."""
    return shutil.which("ffmpeg") or bundled_ffmpeg_exe()


#: Default of ``video.max_pixels`` (the schema holds the same number): 4096x4096.
MAX_PIXELS = 4096 * 4096

#: A time this fraction of a frame before a timestamp still counts as that frame's: window
#: bounds are rounded to the microsecond and Matroska stores timestamps in milliseconds.
TIME_TOLERANCE_FRAMES = 0.05

#: A time whose frame has been on screen longer than this many nominal frame durations sits
#: in a hole of the stream (frames dropped or cut out): what was in view then was never
#: recorded. One dropped frame stays below it; two in a row do not.
MAX_HOLE_FRAMES = 2.0


@dataclass
class VideoInfo:
    duration_s: float
    fps: float
    n_frames: int
    width: int  # display width (after rotation metadata is applied)
    height: int
    codec: str
    rotation: int
    keyframes_s: list[float] = field(default_factory=list)  # from the stream's start
    # Sorted distinct presentation times from the stream's start; left empty, the frames
    # are taken to lie on the fixed grid of ``fps`` (a manifest written before they were
    # recorded).
    frame_times_s: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.frame_times_s:
            self.frame_times_s = [i / self.fps for i in range(self.n_frames)]

    @functools.cached_property
    def frame_interval_s(self) -> float:
        """The nominal frame duration: the median gap between timestamps.

        The median, so that one hole does not stretch it; from the timestamps, because the
        rate a container announces for a variable-rate stream is often just a default.
        """
        if len(self.frame_times_s) < 2:
            return 1.0 / self.fps
        return float(np.median(np.diff(self.frame_times_s)))

    def frame_time(self, index: int) -> float:
        return self.frame_times_s[index]


def _seconds(pts: int, origin: int, time_base) -> float:
    # One expression for probe and extraction, so a timestamp converts to the same float.
    return float((pts - origin) * time_base)


def probe(
    path: str | Path, max_duration_s: float | None = None, max_pixels: int | None = MAX_PIXELS
) -> VideoInfo:
    """Read duration, fps, size, codec, keyframe and frame times; raise VideoError with a reason.

    The duration is that of the packets actually present, and a file holding much less
    than its header announces is reported as truncated. One frame is decoded so that a file
    whose header parses but whose stream does not is caught here rather than in a later
    stage. A header longer than ``max_duration_s`` is refused before the file is read, and
    frames of more than ``max_pixels`` pixels before one is decoded: opening a file
    normally decodes a few frames to learn the stream's parameters (up to seven for H.264),
    so the decoder is given the same limit and refuses such frames instead of allocating
    them.
    """
    path = Path(path)
    if not path.exists():
        raise VideoError(f"file not found: {path}")
    if path.stat().st_size == 0:
        raise VideoError("empty file (0 bytes)")
    options = {"max_pixels": str(max_pixels)} if max_pixels is not None else {}
    try:
        container = av.open(str(path), options=options)
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        why = getattr(exc, "strerror", None) or str(exc)
        raise VideoError(f"not a readable video container ({why})") from None
    with container:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["none"]
            raise VideoError(f"no video stream (streams: {', '.join(kinds)})")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        _check_pixels(ctx.width, ctx.height, max_pixels)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        if fps <= 0:
            raise VideoError("video stream has no frame rate")
        tb = stream.time_base
        origin = stream.start_time or 0
        if stream.duration is not None:
            header_s = float(stream.duration * tb)
        elif container.duration is not None:
            header_s = container.duration / 1e6
        else:
            header_s = None
        _check_duration(header_s, max_duration_s)  # before reading a stray movie whole
        keyframes: list[float] = []
        times: list[float] = []
        try:
            for packet in container.demux(stream):
                if packet.pts is None:
                    continue
                t = _seconds(packet.pts, origin, tb)
                times.append(t)
                if packet.is_keyframe:
                    keyframes.append(t)
        except av.error.FFmpegError as exc:
            raise VideoError(f"stream cannot be demuxed: {exc}") from None
        if not times:
            raise VideoError("video stream has no frames")
        duration = max(times) + 1.0 / fps
        _check_duration(duration, max_duration_s)  # files whose header has no duration
        if header_s is not None and duration < 0.9 * header_s - 2.0 / fps:
            raise VideoError(
                f"truncated: the header says {header_s:.2f} s, the stream holds {duration:.2f} s"
            )
        container.seek(0)
        try:
            first = next(container.decode(stream), None)
        except av.error.FFmpegError as exc:
            raise VideoError(f"first frame cannot be decoded: {exc}") from None
        if first is None:
            raise VideoError("no decodable frame")
        width, height = ctx.width or first.width, ctx.height or first.height
        _check_pixels(width, height, max_pixels)  # a header that did not tell the size
        rotation = int(getattr(first, "rotation", 0) or 0) % 360
        if rotation in (90, 270):
            width, height = height, width
        return VideoInfo(
            duration_s=round(duration, 6),
            fps=fps,
            n_frames=len(times),
            width=width,
            height=height,
            codec=ctx.name,
            rotation=rotation,
            keyframes_s=sorted(keyframes) or [0.0],
            frame_times_s=sorted(set(times)),
        )


def _check_pixels(width: int, height: int, limit: int | None) -> None:
    if limit is not None and width * height > limit:
        raise VideoError(
            f"frame size {width}x{height} ({width * height} pixels) above video.max_pixels={limit}"
        )


def _check_duration(seconds: float | None, limit: float | None) -> None:
    if seconds is not None and limit is not None and seconds > limit:
        raise VideoError(f"duration {seconds:.1f} s above video.max_duration_s={limit}")


def frame_at(t: float, fps: float, n_frames: int) -> int:
    """Index of the frame shown at time t in a constant-rate stream, clamped to its frames.

    The same rule as :func:`frame_index` on a fixed grid, for timelines that know their
    rate but not their timestamps (the synthetic corpus's truth).
    """
    return max(0, min(math.floor(t * fps + TIME_TOLERANCE_FRAMES), n_frames - 1))


def frame_index(info: VideoInfo, t: float) -> int:
    """Index of the frame shown at time t: the last one whose timestamp is not after t.

    There is no frame after the last timestamp, so the end of a window that reaches the
    end of the video maps to the last frame; a time before the first frame maps to it.
    """
    tol = TIME_TOLERANCE_FRAMES * info.frame_interval_s
    return max(0, bisect.bisect_right(info.frame_times_s, t + tol) - 1)


def hole_at(info: VideoInfo, t: float) -> str | None:
    """Why no recorded frame shows time t, or None when one does.

    The frame :func:`frame_index` picks may have been on screen long before t when frames
    are missing around it (see ``MAX_HOLE_FRAMES``); pairing it as the picture at t would
    pass off an older picture, so a window there is dropped with this reason instead.
    """
    times = info.frame_times_s
    i = frame_index(info, t)
    limit = MAX_HOLE_FRAMES * info.frame_interval_s
    if abs(t - times[i]) <= limit:
        return None
    after = f" and the next at {times[i + 1]:.3f} s" if i + 1 < len(times) else ""
    return (
        f"no frame near t={t:.3f} s: the nearest before it is at {times[i]:.3f} s{after}, "
        f"a hole of more than {MAX_HOLE_FRAMES:g} frame durations in the stream"
    )


#: A seek (decoder flush, demuxer jump) costs about as much as decoding this many frames;
#: a keyframe gap is only worth a seek when it skips more than that. Measured on 2 cores
#: at 720p: about 4 ms a seek, five frames' decoding (the frame threads drain and refill).
SEEK_COST_FRAMES = 5


def plan_groups(info: VideoInfo, indices: list[int]) -> list[list[int]]:
    """Split wanted frame indices into groups that each need one decode run.

    A new group starts when a keyframe lies between two wanted frames and seeking to it
    skips more decoding than the seek costs; otherwise decoding runs on through the gap.
    """
    groups: list[list[int]] = []
    for idx in sorted(set(indices)):
        if groups:
            prev = groups[-1][-1]
            k = bisect.bisect_right(info.keyframes_s, info.frame_time(idx) + 1e-6) - 1
            key_t = info.keyframes_s[k] if k >= 0 else 0.0
            skipped = (key_t - info.frame_time(prev)) * info.fps
            if key_t <= info.frame_time(prev) + 1e-6 or skipped <= SEEK_COST_FRAMES:
                groups[-1].append(idx)
                continue
        groups.append([idx])
    return groups


def extract_frames(
    path: str | Path,
    info: VideoInfo,
    indices: list[int],
    out_paths: dict[int, Path],
    timeout_s: float = 600.0,
    on_small: Callable[[int, np.ndarray], None] | None = None,
    small_side: int = 256,
) -> dict[int, str]:
    """Write the frames with the given indices that ``out_paths`` names as PNG.

    Every delivered frame (all of ``indices``) is also handed to ``on_small`` when given,
    in decoding (time) order, upright RGB with its longer side at most ``small_side``:
    the frames stage keeps the frames sampled inside each window that way, from the same
    decoding pass. FFmpeg's scaler converts and shrinks such a frame in one step (area
    averaging), so a 720p frame costs a fraction of its full-size conversion.

    Decoding runs in this process through PyAV (FFmpeg's own libraries): one open of the
    file, one seek per group of :func:`plan_groups`, decoding from the keyframe before each
    group up to its last frame. A frame no other frame refers to (most B-frames) is not
    decoded unless it is wanted; if one that was wanted still does not come, the run is
    decoded again in full before it counts as missing. Starting an ffmpeg process per
    video costs more than decoding a short clip, which is why the command-line tool is not
    used here. Frames are turned upright as ffmpeg would (display-matrix rotation) and
    encoded to PNG on all cores.

    A decoded frame is matched to an index by its timestamp. Returns the indices the decoder
    did not deliver (a corrupt packet, a truncated tail), each with the reason: they are
    the failure of the windows that use them, not of the video, so the other frames are
    still written. Packets the decoder rejects are skipped rather than ending the run.
    Raises VideoError when the file cannot be opened, a PNG cannot be written or the run
    times out; no partial set of frames is left behind then.
    """
    deadline = time.monotonic() + timeout_s
    workers = min(len(indices), os.cpu_count() or 1) or 1
    pending: list[Future] = []
    missing: dict[int, str] = {}
    times = info.frame_times_s
    try:
        with av.open(str(path)) as container, ThreadPoolExecutor(workers) as pool:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            # One scaler each for the run: PyAV makes a new one per call otherwise, which
            # cost more than converting a small frame.
            shrink, full = VideoReformatter(), VideoReformatter()

            def deliver(idx: int, frame: av.VideoFrame) -> None:
                turns = (frame.rotation or 0) // 90
                if on_small is not None:
                    small = shrink.reformat(frame, *_fit(frame.width, frame.height, small_side),
                                            format="rgb24", interpolation="AREA")  # fmt: skip
                    on_small(idx, np.rot90(small.to_ndarray(), turns))
                if idx in out_paths:
                    rgb = np.rot90(full.reformat(frame, format="rgb24").to_ndarray(), turns)
                    pending.append(pool.submit(_write_png, rgb, out_paths[idx]))
                if len(pending) > 2 * workers:  # bound the frames held in memory
                    pending.pop(0).result()

            for group in plan_groups(info, indices):
                wanted = set(group)
                why = _decode_run(container, stream, times, wanted, deliver, deadline, timeout_s)
                if wanted:  # a container whose packets do not say which frame they hold
                    why = _decode_run(
                        container, stream, times, wanted, deliver, deadline, timeout_s, False
                    )
                missing |= {i: f"frame at t={times[i]:.3f} s {why}" for i in sorted(wanted)}
            for job in pending:
                job.result()
    except (av.error.FFmpegError, OSError) as exc:
        _remove(out_paths.values())
        raise VideoError(f"decoding failed: {_why(exc)}") from None
    except VideoError:
        _remove(out_paths.values())  # no half-extracted video left behind
        raise
    return missing


def _fit(width: int, height: int, max_side: int) -> tuple[int, int]:
    """The size whose longer side is at most ``max_side``, as ``pairs.fit_side`` makes it."""
    scale = max_side / max(width, height)
    if scale >= 1.0:
        return width, height
    return max(1, round(width * scale)), max(1, round(height * scale))


def _decode_run(
    container, stream, times, wanted, deliver, deadline, timeout_s, skip_unwanted=True
) -> str:
    """Decode from the keyframe before the first of ``wanted`` past the last of them.

    Each wanted frame is handed to ``deliver`` and removed from ``wanted``; what is left
    did not come, and the returned phrase says why. Frames come out in timestamp order,
    so the first one past the last wanted timestamp ends the run. With ``skip_unwanted``,
    a packet whose timestamp is not a wanted frame's is decoded only if other frames
    refer to it: skipping a non-reference frame changes no other frame.
    """
    tb, origin = stream.time_base, stream.start_time or 0
    end = times[max(wanted)] + 1e-6
    why = "not returned by the decoder"
    codec = stream.codec_context
    try:
        container.seek(origin + round(times[min(wanted)] / tb), stream=stream, backward=True)
        for packet in container.demux(stream):
            if time.monotonic() > deadline:
                raise VideoError(f"frame extraction timed out after {timeout_s:.0f} s")
            unwanted = (
                skip_unwanted
                and packet.pts is not None
                and _index_of(times, _seconds(packet.pts, origin, tb)) not in wanted
            )
            codec.skip_frame = "NONREF" if unwanted else "DEFAULT"
            try:
                frames = packet.decode()
            except av.error.FFmpegError as exc:  # one bad packet costs its frames only
                why = f"not returned by the decoder, which rejected a packet ({_why(exc)})"
                continue
            past_end = False
            for frame in frames:
                if frame.pts is None:
                    continue
                t = _seconds(frame.pts, origin, tb)
                idx = _index_of(times, t)
                if idx in wanted:
                    wanted.discard(idx)
                    deliver(idx, frame)
                past_end = past_end or t > end
            if not wanted or past_end:
                break
    except av.error.FFmpegError as exc:  # a seek or a read that failed
        why = f"not read: {_why(exc)}"
    return why


def _why(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def _index_of(times: list[float], t: float) -> int | None:
    """Index of timestamp t among the probed ones; None for a frame the probe never saw."""
    i = bisect.bisect_left(times, t - 1e-6)
    return i if i < len(times) and times[i] <= t + 1e-6 else None


def _write_png(rgb: np.ndarray, path: Path) -> None:
    if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[:, :, ::-1])):
        raise VideoError(f"cannot write {path}")


def _remove(paths) -> None:
    for p in paths:
        Path(p).unlink(missing_ok=True)
