"""Clips made of real photographs and real terrain, with known motion, for scoring the miner.

The synthetic corpus draws flat-coloured shapes on flat backgrounds, and optical flow and
the offline judge's texture cues behave on those as on nothing ever filmed. These clips are
built from matplotlib's sample photographs (Grace Hopper's portrait, a gift-box product
shot) and hill-shaded elevation models (real terrain texture), placed with sub-pixel affine
warps and anti-aliased edges, with a little sensor noise, and encoded with x264 as a camera
file would be. What the miner measures on them is close to what it measures on footage,
and the true motion is known exactly.

A clip lasts 3.25 s by default, so exactly one 3-second window fits; its motion runs over
t in [0, 3] s, starting and stopping smoothly as bodies do, and holds after. Angles are in
image coordinates (y down): a positive rotation or direction angle turns clockwise on
screen, as :func:`motionedit.judge.offline.rigid_fit` reports it.

``CLIPS`` names the 14 clips (6 that a good miner keeps, 8 it rejects, each with the reason
a rejection should give); :func:`write_folder` encodes them all and returns the truth table.
:func:`translate_clip`, :func:`rotate_clip` and :func:`scale_clip` sweep one motion's size.
Everything is seeded: the same call gives the same pixels.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any

import av
import cv2
import matplotlib
import numpy as np
import pandas as pd
from matplotlib import cbook
from matplotlib.colors import LightSource, ListedColormap

SIZE = (320, 240)  # (W, H)
FPS = 24
DURATION_S = 3.25
#: The motion runs over [0, MOTION_S] seconds: exactly the default window.
MOTION_S = 3.0
#: Standard deviation of the sensor noise every clip gets (8-bit levels): a camera never
#: delivers two identical frames, and a miner must not read that as motion.
SENSOR_NOISE = 1.0
CRF = 18

#: Columns of :func:`write_folder`'s table, in order.
TRUTH_COLUMNS = [
    "name",
    "path",
    "keep",
    "category",
    "direction",
    "reason",
    "travel",
    "direction_deg",
    "rotation_deg",
    "scale",
    "note",
    "fps",
    "width",
    "height",
    "n_frames",
]

Pose = tuple[float, float, float, float]  # x, y (output pixels), angle (deg), scale


# --------------------------------------------------------------------------- sources


def _sample_path(name: str) -> str:
    return str(cbook.get_sample_data(name, asfileobj=False))


@lru_cache(maxsize=4)
def _photo(name: str) -> np.ndarray:
    """A sample photograph as float32 RGBA in 0-255 (alpha 255 where the file has none)."""
    data = np.fromfile(_sample_path(name), np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGRA)
    elif img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2BGRA)
    out = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA).astype(np.float32)
    out.flags.writeable = False
    return out


@lru_cache(maxsize=16)
def _terrain(
    width: int,
    height: int,
    crop: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0),
    azimuth: float = 315.0,
    blur: float = 0.8,
) -> np.ndarray:
    """A hill-shaded rendering of the Jacksboro fault elevation model, float32 RGB 0-255.

    The elevation is resampled to the canvas before shading, so the relief stays crisp at
    any size, and shaded with the greens and browns of the middle of ``gist_earth``
    (vegetation and bare ground) so subjects of any colour stand out as they would on a
    landscape. A slight blur plays the shallow depth of field behind a subject in focus.
    ``crop`` is (x0, y0, x1, y1) as fractions of the model.
    """
    dem = np.load(_sample_path("jacksboro_fault_dem.npz"))["elevation"].astype(np.float32)
    h, w = dem.shape
    x0, y0, x1, y1 = crop
    part = dem[round(y0 * h) : round(y1 * h), round(x0 * w) : round(x1 * w)]
    per_cell = width / part.shape[1]
    z = cv2.resize(part, (width, height), interpolation=cv2.INTER_CUBIC)
    palette = ListedColormap(matplotlib.colormaps["gist_earth"](np.linspace(0.3, 0.85, 256)))
    light = LightSource(azdeg=azimuth, altdeg=40)
    rgb = light.shade(z, cmap=palette, vert_exag=0.08 / per_cell, blend_mode="soft")
    out = (rgb[..., :3] * 255.0).astype(np.float32)
    if blur > 0:
        out = cv2.GaussianBlur(out, (0, 0), blur)
    out.flags.writeable = False
    return out


# --------------------------------------------------------------------------- sprites


@dataclass(frozen=True)
class Sprite:
    """A cut-out with a soft edge, drawn by premultiplied-alpha warps."""

    premul: np.ndarray  # [h, w, 3] float32, colour x alpha
    alpha: np.ndarray  # [h, w] float32 in [0, 1]
    #: Sprite pixel (x, y) that sits at the layer's position and turns about it.
    anchor: tuple[float, float]
    #: Sprite pixels per output pixel at scale 1: above 1 keeps detail when it grows.
    density: float = 1.0


def _soft_mask(width: int, height: int, shape: str, supersample: int = 4) -> np.ndarray:
    """An ellipse or rounded rectangle filling the box, its edge anti-aliased by
    supersampling, as a real object's silhouette is by the lens and the sensor."""
    k = supersample
    big = np.zeros((height * k, width * k), np.uint8)
    if shape == "ellipse":
        cv2.ellipse(big, ((width * k / 2, height * k / 2), (width * k - 2, height * k - 2), 0),
                    255, -1, cv2.LINE_AA)  # fmt: skip
    else:
        r = int(min(width, height) * k * 0.25)
        cv2.rectangle(big, (r, 1), (width * k - 1 - r, height * k - 2), 255, -1)
        cv2.rectangle(big, (1, r), (width * k - 2, height * k - 1 - r), 255, -1)
        for cx, cy in ((r, r), (width * k - 1 - r, r), (r, height * k - 1 - r),
                       (width * k - 1 - r, height * k - 1 - r)):  # fmt: skip
            cv2.circle(big, (cx, cy), r - 1, 255, -1, cv2.LINE_AA)
    return cv2.resize(big, (width, height), interpolation=cv2.INTER_AREA).astype(np.float32) / 255


def _sprite(
    name: str,
    box: tuple[int, int, int, int] | None,
    width: float,
    shape: str | None = None,
    anchor: tuple[float, float] = (0.5, 0.5),
    density: float = 1.0,
) -> Sprite:
    """A crop ``box`` (x0, y0, x1, y1 source pixels) of a photograph, ``width`` output
    pixels wide, cut out by ``shape`` (or by the file's own alpha when None); ``anchor``
    is a fraction of the sprite's size."""
    src = _photo(name)
    if box is not None:
        x0, y0, x1, y1 = box
        src = src[y0:y1, x0:x1]
    w = max(2, round(width * density))
    h = max(2, round(w * src.shape[0] / src.shape[1]))
    premul = src[..., :3] * (src[..., 3:] / 255.0)
    premul = cv2.resize(premul, (w, h), interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(src[..., 3] / 255.0, (w, h), interpolation=cv2.INTER_AREA)
    if shape is not None:
        cut = _soft_mask(w, h, shape)
        premul, alpha = premul * cut[..., None], alpha * cut
    return Sprite(premul, alpha, (anchor[0] * (w - 1), anchor[1] * (h - 1)), density)


def pack(width: float = 70.0, density: float = 1.0) -> Sprite:
    """The blue gift box of the product photograph, cut out by its own alpha."""
    return _sprite("Minduka_Present_Blue_Pack.png", None, width, density=density)


def face(width: float = 64.0, density: float = 1.0) -> Sprite:
    """Grace Hopper's head, cap included, in an oval."""
    return _sprite("grace_hopper.jpg", (150, 20, 380, 340), width, "ellipse", density=density)


def tall_figure(width: float = 44.0) -> Sprite:
    """A tall crop of the portrait (cap, face and collar): the rising 'rocket'."""
    return _sprite("grace_hopper.jpg", (190, 20, 340, 360), width, "rounded")


def glasses(width: float = 96.0) -> Sprite:
    """A wide crop across the eyes and spectacles: long enough that turning shows."""
    return _sprite("grace_hopper.jpg", (150, 150, 380, 270), width, "rounded")


def figure(width: float = 84.0) -> Sprite:
    """Grace Hopper from cap to chest: the still body a limb hangs from."""
    return _sprite("grace_hopper.jpg", (100, 20, 420, 560), width, "rounded")


def limb(length: float = 72.0) -> Sprite:
    """The ribbon bar of the uniform, stood upright, hanging from its top end."""
    src = _sprite("grace_hopper.jpg", (326, 489, 454, 524), length, "rounded")
    premul = np.ascontiguousarray(np.rot90(src.premul, -1))
    alpha = np.ascontiguousarray(np.rot90(src.alpha, -1))
    return Sprite(premul, alpha, ((alpha.shape[1] - 1) / 2, 2.0))


# --------------------------------------------------------------------------- scenes


def ease(u: float) -> float:
    """Smoothstep: starts and stops at rest, like a body, and never overshoots."""
    u = min(1.0, max(0.0, u))
    return u * u * (3.0 - 2.0 * u)


@dataclass
class Layer:
    """A sprite moving from pose ``start`` (at t=0) to ``end`` (at MOTION_S)."""

    sprite: Sprite
    start: Pose
    end: Pose | None = None
    #: Whether it counts in the clip's subject mask.
    subject: bool = True

    def pose(self, t: float) -> Pose:
        if self.end is None:
            return self.start
        u = ease(t / MOTION_S)
        a, b = self.start, self.end
        return tuple(p + u * (q - p) for p, q in zip(a, b, strict=True))  # type: ignore[return-value]


def _affine(x: float, y: float, angle: float = 0.0, scale: float = 1.0) -> np.ndarray:
    """3x3 matrix: scale and turn by ``angle`` degrees (clockwise on screen), then move to
    (x, y)."""
    c, s = math.cos(math.radians(angle)) * scale, math.sin(math.radians(angle)) * scale
    return np.array([[c, -s, x], [s, c, y], [0.0, 0.0, 1.0]])


def _still(_t: float) -> np.ndarray:
    return np.eye(3)


@dataclass
class Scene:
    """A background canvas, layers on it and a camera.

    The canvas holds the world at ``density`` pixels per output pixel with ``margin``
    output pixels around the frame, so a camera that pans, zooms or shakes never runs out
    of it. ``camera(t)`` maps world to frame coordinates (the identity is a still camera).
    """

    background: np.ndarray
    layers: list[Layer] = field(default_factory=list)
    margin: float = 0.0
    density: float = 1.0
    camera: Callable[[float], np.ndarray] = _still
    gain: Callable[[float], float] = lambda _t: 1.0


def _canvas(size: tuple[int, int], margin: float = 0.0, density: float = 1.0, **kw) -> np.ndarray:
    w, h = size
    return _terrain(round((w + 2 * margin) * density), round((h + 2 * margin) * density), **kw)


def _warp(image: np.ndarray, m: np.ndarray, size: tuple[int, int], border: int) -> np.ndarray:
    return cv2.warpAffine(image, m[:2], size, flags=cv2.INTER_LINEAR, borderMode=border)


def _draw(scene: Scene, t: float, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """One frame (float32 RGB) and its subject coverage (float32 [H, W] in [0, 1])."""
    cam = scene.camera(t)
    to_canvas = _affine(-scene.margin, -scene.margin) @ _affine(0, 0, 0, 1.0 / scene.density)
    out = _warp(scene.background, cam @ to_canvas, size, cv2.BORDER_REFLECT101)
    cover = np.zeros(out.shape[:2], np.float32)
    for layer in scene.layers:
        sp = layer.sprite
        x, y, angle, scale = layer.pose(t)
        m = cam @ _affine(x, y, angle, scale / sp.density) @ _affine(-sp.anchor[0], -sp.anchor[1])
        shrink = math.sqrt(abs(np.linalg.det(m[:2, :2])))
        premul, alpha = sp.premul, sp.alpha
        if shrink < 0.95:  # prefilter a shrinking sprite so its texture does not alias
            sigma = 0.5 * math.sqrt(1.0 / shrink**2 - 1.0)
            premul = cv2.GaussianBlur(premul, (0, 0), sigma)
            alpha = cv2.GaussianBlur(alpha, (0, 0), sigma)
        p = _warp(premul, m, size, cv2.BORDER_CONSTANT)
        a = _warp(alpha, m, size, cv2.BORDER_CONSTANT)
        out = out * (1.0 - a[..., None]) + p
        cover = np.maximum(cover, a) if layer.subject else cover * (1.0 - a)
    return out * scene.gain(t), cover


@dataclass(frozen=True)
class Look:
    """How the camera degrades what it films."""

    noise: float = SENSOR_NOISE
    blur: float = 0.0


def _render(
    shots: list[tuple[float, Scene]],
    size: tuple[int, int],
    fps: float,
    duration: float,
    seed: int,
    look: Look = Look(),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames [T, H, W, 3] uint8, and the subject masks at t=0 and t=MOTION_S (bool).

    ``shots`` are (start time, scene), the first starting at 0: a hard cut at each start.
    """
    rng = np.random.default_rng(seed)
    n = int(round(duration * fps))
    w, h = size
    frames = np.empty((n, h, w, 3), np.uint8)

    def scene_at(t: float) -> Scene:
        return [s for start, s in shots if start <= t + 1e-9][-1]

    for i in range(n):
        t = i / fps
        img, _ = _draw(scene_at(t), t, size)
        if look.blur > 0:
            img = cv2.GaussianBlur(img, (0, 0), look.blur)
        if look.noise > 0:
            img = img + look.noise * rng.standard_normal(img.shape, dtype=np.float32)
        frames[i] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    masks = [_draw(scene_at(t), t, size)[1] > 0.5 for t in (0.0, MOTION_S)]
    return frames, masks[0], masks[1]


# --------------------------------------------------------------------------- truth


def _truth(
    name: str,
    frames: np.ndarray,
    mask: np.ndarray,
    mask_end: np.ndarray,
    *,
    keep: bool,
    category: str | None = None,
    direction: str = "",
    reason: str = "",
    moved: tuple[float, float] = (0.0, 0.0),
    rotation_deg: float = 0.0,
    scale: float = 1.0,
    note: str = "",
    fps: float = FPS,
) -> dict[str, Any]:
    h, w = frames.shape[1:3]
    dx, dy = moved
    travel = math.hypot(dx, dy) / math.hypot(w, h)
    return {
        "name": name,
        "keep": keep,
        "category": category,
        "direction": direction,
        "reason": reason,
        "travel": travel,
        "direction_deg": math.degrees(math.atan2(dy, dx)) if travel > 0 else float("nan"),
        "rotation_deg": rotation_deg,
        "scale": scale,
        "note": note,
        "fps": fps,
        "width": w,
        "height": h,
        "n_frames": len(frames),
        "mask": mask,
        "mask_end": mask_end,
    }


Clip = tuple[np.ndarray, dict[str, Any]]


@dataclass(frozen=True)
class Format:
    """The frame size, rate, length and seed one set of clips shares; subject sizes and
    distances are given for 320x240 and scale with the width."""

    size: tuple[int, int] = SIZE
    fps: float = FPS
    duration: float = DURATION_S
    seed: int = 0

    @property
    def diag(self) -> float:
        return math.hypot(*self.size)

    @property
    def centre(self) -> tuple[float, float]:
        return self.size[0] / 2, self.size[1] / 2


def _fmt(size: tuple[int, int], fps: float, duration: float, seed: int) -> Format:
    return Format(tuple(size), fps, duration, seed)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- sweeps


def translate_clip(
    travel: float,
    angle_deg: float = 15.0,
    *,
    size: tuple[int, int] = SIZE,
    fps: float = FPS,
    duration: float = DURATION_S,
    seed: int = 0,
    blur: float = 0.0,
    noise: float = SENSOR_NOISE,
    name: str = "translate",
) -> Clip:
    """The gift box slides ``travel`` x the diagonal in direction ``angle_deg`` (0 is
    right, 90 down), centred on the frame, over a static landscape."""
    f = _fmt(size, fps, duration, seed)
    d = travel * f.diag
    dx, dy = d * math.cos(math.radians(angle_deg)), d * math.sin(math.radians(angle_deg))
    cx, cy = f.centre
    scale = size[0] / SIZE[0]
    box = Layer(
        pack(70 * scale), (cx - dx / 2, cy - dy / 2, 0, 1), (cx + dx / 2, cy + dy / 2, 0, 1)
    )
    scene = Scene(_canvas(size), [box])
    frames, m0, m1 = _render([(0.0, scene)], size, fps, duration, seed, Look(noise, blur))
    words = _direction_words(dx, dy)
    truth = _truth(name, frames, m0, m1, keep=True, category="locomotion", direction=words,
                   moved=(dx, dy), fps=fps)  # fmt: skip
    return frames, truth


def rotate_clip(
    degrees: float,
    *,
    size: tuple[int, int] = SIZE,
    fps: float = FPS,
    duration: float = DURATION_S,
    seed: int = 0,
    name: str = "rotate",
) -> Clip:
    """A wide crop of the portrait turns in place by ``degrees`` (positive: clockwise)."""
    f = _fmt(size, fps, duration, seed)
    cx, cy = f.centre
    scale = size[0] / SIZE[0]
    layer = Layer(glasses(96 * scale), (cx, cy, -degrees / 2, 1), (cx, cy, degrees / 2, 1))
    frames, m0, m1 = _render([(0.0, Scene(_canvas(size), [layer]))], size, fps, duration, seed)
    turn = "clockwise" if degrees >= 0 else "counter-clockwise"
    truth = _truth(name, frames, m0, m1, keep=True, category="orientation", direction=turn,
                   rotation_deg=degrees, fps=fps)  # fmt: skip
    return frames, truth


def scale_clip(
    factor: float,
    *,
    size: tuple[int, int] = SIZE,
    fps: float = FPS,
    duration: float = DURATION_S,
    seed: int = 0,
    name: str = "scale",
) -> Clip:
    """The gift box grows ``factor`` times in place, as when it comes toward the camera."""
    f = _fmt(size, fps, duration, seed)
    cx, cy = f.centre
    end_width = 100 * size[0] / SIZE[0]
    start = 1.0 / factor if factor >= 1 else 1.0
    end = 1.0 if factor >= 1 else factor
    layer = Layer(pack(end_width if factor >= 1 else end_width / factor, density=1.0),
                  (cx, cy, 0, start), (cx, cy, 0, end))  # fmt: skip
    frames, m0, m1 = _render([(0.0, Scene(_canvas(size), [layer]))], size, fps, duration, seed)
    truth = _truth(
        name, frames, m0, m1, keep=True, category="locomotion",
        direction="larger" if factor >= 1 else "smaller", scale=factor, fps=fps,
        note="grows as it approaches the camera: a change of distance, so locomotion "
        "(toward the viewer) in the six-category scheme, not a deformation of its shape",
    )  # fmt: skip
    return frames, truth


def _direction_words(dx: float, dy: float) -> str:
    """'right', 'up', 'left and down'...: the smaller component is named too when it is
    more than half the larger, the way a person would name the direction."""
    horiz = "right" if dx > 0 else "left"
    vert = "down" if dy > 0 else "up"
    if abs(dx) >= 2.0 * abs(dy):
        return horiz
    if abs(dy) >= 2.0 * abs(dx):
        return vert
    return f"{horiz} and {vert}"


# --------------------------------------------------------------------------- the clips


def _positives(f: Format) -> dict[str, Callable[[], Clip]]:
    size, fps, duration, seed = f.size, f.fps, f.duration, f.seed
    w, h = size
    k = w / SIZE[0]  # sizes below are for 320x240 and scale with the frame
    common = {"size": size, "fps": fps, "duration": duration, "seed": seed}

    def rise() -> Clip:
        d = 0.25 * f.diag
        x, y = w * 0.45, h * 0.5 + d / 2
        layer = Layer(tall_figure(44 * k), (x, y, 0, 1), (x, y - d, 0, 1))
        frames, m0, m1 = _render([(0.0, Scene(_canvas(size), [layer]))], size, fps, duration, seed)
        return frames, _truth("rise", frames, m0, m1, keep=True, category="locomotion",
                              direction="up", moved=(0.0, -d), fps=fps)  # fmt: skip

    def approach() -> Clip:
        cy = h * 0.5
        a = Layer(pack(62 * k), (w * 0.18, cy + 6 * k, 0, 1), (w * 0.39, cy, 0, 1))
        b = Layer(face(56 * k), (w * 0.82, cy - 6 * k, 0, 1), (w * 0.60, cy, 0, 1))
        frames, m0, m1 = _render([(0.0, Scene(_canvas(size), [a, b]))], size, fps, duration, seed)
        return frames, _truth(
            "approach", frames, m0, m1, keep=True, category="subject_subject",
            direction="together", moved=(w * 0.21, -6 * k), fps=fps,
            note="two subjects each move about 0.17 of the diagonal toward the other and stop "
            "a few pixels apart; travel is the left one's",
        )  # fmt: skip

    def swing() -> Clip:
        body = figure(84 * k)
        bx, by = w * 0.42, h * 0.45
        bh, bw = body.alpha.shape
        shoulder = (bx + bw / 2 + 2 * k, by + 0.1 * bh)
        arm = Layer(limb(72 * k), (*shoulder, 0, 1), (*shoulder, -50, 1))
        torso = Layer(body, (bx, by, 0, 1), subject=False)
        frames, m0, m1 = _render([(0.0, Scene(_canvas(size), [arm, torso]))], size, fps,
                                 duration, seed)  # fmt: skip
        return frames, _truth(
            "swing", frames, m0, m1, keep=True, category="pose", direction="counter-clockwise",
            rotation_deg=-50.0, fps=fps,
            note="a limb hanging from the shoulder of a still figure swings 50 degrees outward "
            "about the shoulder; the mask is the limb's",
        )  # fmt: skip

    return {
        "translate": lambda: translate_clip(0.30, **common),
        "rise": rise,
        "rotate": lambda: rotate_clip(60.0, **common),
        "scale": lambda: scale_clip(2.0, **common),
        "approach": approach,
        "swing": swing,
    }


def _smooth_jitter(rng: np.random.Generator, amplitude: float) -> Callable[[float], float]:
    """A sum of a few slow sinusoids of random frequency and phase, its peak ``amplitude``
    over the motion: the drift of a hand-held camera, not white noise."""
    freqs = rng.uniform(0.6, 2.5, 3)
    phases = rng.uniform(0, 2 * math.pi, 3)
    weights = rng.uniform(0.5, 1.0, 3)

    def raw(t: float) -> float:
        return float(sum(a * math.sin(2 * math.pi * fr * t + p)
                         for a, fr, p in zip(weights, freqs, phases, strict=True)))  # fmt: skip

    peak = max(abs(raw(t)) for t in np.linspace(0, MOTION_S, 200))
    return lambda t: amplitude * raw(t) / peak


def _negatives(f: Format) -> dict[str, Callable[[], Clip]]:
    size, fps, duration, seed = f.size, f.fps, f.duration, f.seed
    w, h = size
    k = w / SIZE[0]
    cx, cy = f.centre

    def reject(name: str, frames: np.ndarray, m0: np.ndarray, m1: np.ndarray, reason: str,
               **kw: Any) -> Clip:  # fmt: skip
        return frames, _truth(name, frames, m0, m1, keep=False, reason=reason, fps=fps, **kw)

    def pan() -> Clip:
        span = 0.2 * w
        margin = span / 2 + 8
        subject = Layer(pack(64 * k), (cx + 20 * k, cy + 10 * k, 0, 1))

        def camera(t: float) -> np.ndarray:
            return _affine(span / 2 - span * ease(t / MOTION_S), 0.0)

        scene = Scene(_canvas(size, margin), [subject], margin=margin, camera=camera)
        frames, m0, m1 = _render([(0.0, scene)], size, fps, duration, seed)
        return reject(
            "pan",
            frames,
            m0,
            m1,
            "camera_motion",
            moved=(-span, 0.0),
            note="the camera pans right by 0.2 of the width; the scene moves left",
        )

    def zoom() -> Clip:
        subject = Layer(face(56 * k, density=1.5), (cx - 30 * k, cy + 8 * k, 0, 1))

        def camera(t: float) -> np.ndarray:
            z = 1.5 ** ease(t / MOTION_S)
            return _affine(cx, cy, 0, z) @ _affine(-cx, -cy)

        scene = Scene(_canvas(size, 0, 1.5), [subject], density=1.5, camera=camera)
        frames, m0, m1 = _render([(0.0, scene)], size, fps, duration, seed)
        return reject(
            "zoom",
            frames,
            m0,
            m1,
            "camera_motion",
            scale=1.5,
            note="the camera zooms in 1.5x on the frame centre",
        )

    def shake() -> Clip:
        rng = np.random.default_rng(seed + 101)
        jx, jy = _smooth_jitter(rng, 0.02 * w), _smooth_jitter(rng, 0.02 * h)
        jr = _smooth_jitter(rng, 1.0)
        margin = 0.06 * w
        subject = Layer(pack(64 * k), (cx - 10 * k, cy, 0, 1))

        def camera(t: float) -> np.ndarray:
            return _affine(cx + jx(t), cy + jy(t), jr(t)) @ _affine(-cx, -cy)

        scene = Scene(_canvas(size, margin), [subject], margin=margin, camera=camera)
        frames, m0, m1 = _render([(0.0, scene)], size, fps, duration, seed)
        return reject("shake", frames, m0, m1, "camera_motion",
                      note="hand-held shake: smooth jitter of up to 2% of the frame in x and y "
                      "and 1 degree of roll; the subject is still")  # fmt: skip

    def static() -> Clip:
        scene = Scene(_canvas(size), [Layer(face(60 * k), (cx + 30 * k, cy, 0, 1))])
        frames, m0, m1 = _render([(0.0, scene)], size, fps, duration, seed)
        return reject(
            "static",
            frames,
            m0,
            m1,
            "static",
            note="nothing moves; only sensor and encoder noise change",
        )

    def cut() -> Clip:
        slow = 0.03 * f.diag
        first = Scene(
            _canvas(size, crop=(0.0, 0.0, 0.62, 0.62)),
            [Layer(pack(64 * k), (cx - slow, cy, 0, 1), (cx + slow, cy, 0, 1))],
        )
        second = Scene(_canvas(size, crop=(0.36, 0.38, 0.98, 1.0), azimuth=300.0),
                       [Layer(face(60 * k), (cx + 40 * k, cy + slow, 0, 1),
                              (cx + 40 * k, cy - slow, 0, 1))])  # fmt: skip
        frames, m0, m1 = _render([(0.0, first), (1.5, second)], size, fps, duration, seed)
        return reject("cut", frames, m0, m1, "scene_cut",
                      note="hard cut at 1.5 s between two parts of one landscape, a different "
                      "subject drifting slowly in each")  # fmt: skip

    def leaves() -> Clip:
        r = 30 * k
        layer = Layer(face(60 * k), (w * 0.66, cy, 0, 1), (w + 2 * r, cy - 10 * k, 0, 1))
        frames, m0, m1 = _render([(0.0, Scene(_canvas(size), [layer]))], size, fps, duration,
                                 seed)  # fmt: skip
        moved = (w + 2 * r - w * 0.66, -10 * k)
        return reject(
            "leaves",
            frames,
            m0,
            m1,
            "subject_leaves",
            moved=moved,
            note="the subject walks out of the right edge and is gone at the end",
        )

    def degraded() -> Clip:
        frames, truth = translate_clip(0.30, size=size, fps=fps, duration=duration, seed=seed,
                                       blur=4.0, noise=18.0, name="degraded")  # fmt: skip
        truth.update(
            keep=False,
            category=None,
            reason="degraded",
            note="the translate clip with heavy blur (sigma 4) and strong noise (18)",
        )
        return frames, truth

    def flicker() -> Clip:
        hz = 2.5

        def gain(t: float) -> float:  # 0.75 at t=0 and 1.25 at t=3 s: the worst pair
            return 1.0 + 0.25 * math.sin(2 * math.pi * hz * t - math.pi / 2)

        scene = Scene(_canvas(size), [Layer(pack(64 * k), (cx, cy, 0, 1))], gain=gain)
        frames, m0, m1 = _render([(0.0, scene)], size, fps, duration, seed)
        return reject("flicker", frames, m0, m1, "lighting",
                      note="still scene; brightness swings +-25% at 2.5 Hz (0.75x in the first "
                      "frame of the window, 1.25x in the last)")  # fmt: skip

    return {
        "pan": pan,
        "zoom": zoom,
        "shake": shake,
        "static": static,
        "cut": cut,
        "leaves": leaves,
        "degraded": degraded,
        "flicker": flicker,
    }


POSITIVES = ("translate", "rise", "rotate", "scale", "approach", "swing")
NEGATIVES = ("pan", "zoom", "shake", "static", "cut", "leaves", "degraded", "flicker")
CLIPS = POSITIVES + NEGATIVES


def make_clip(
    name: str,
    *,
    size: tuple[int, int] = SIZE,
    fps: float = FPS,
    duration: float = DURATION_S,
    seed: int = 0,
) -> Clip:
    """Frames and truth of one of :data:`CLIPS`."""
    f = _fmt(size, fps, duration, seed)
    makers = _positives(f) | _negatives(f)
    if name not in makers:
        raise ValueError(f"unknown clip {name!r}; use one of {list(CLIPS)}")
    return makers[name]()


# --------------------------------------------------------------------------- files


def write_video(frames: np.ndarray, path: str | Path, fps: float, crf: int = CRF) -> Path:
    """Encode ``frames`` ([T, H, W, 3] uint8 RGB) as H.264 (yuv420p) in an MP4 file.

    x264 at a visually lossless quality, as a camera or a phone stores video: the miner
    sees chroma subsampling and compression noise, not the renderer's exact pixels.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = np.asarray(frames, np.uint8)
    h, w = frames.shape[1:3]
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast", "threads": "1"}
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            frame.pts = i
            frame.time_base = 1 / rate
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def read_video(path: str | Path) -> np.ndarray:
    """Every frame of a video as [T, H, W, 3] uint8 RGB."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def write_folder(
    dest: str | Path,
    *,
    size: tuple[int, int] = SIZE,
    fps: float = FPS,
    duration: float = DURATION_S,
    seed: int = 0,
    names: tuple[str, ...] = CLIPS,
) -> pd.DataFrame:
    """Encode every clip to ``dest/<name>.mp4``; the truth table, one row per clip.

    Masks are left out of the table (they are arrays); :func:`make_clip` gives them.
    """
    dest = Path(dest)
    rows = []
    for name in names:
        frames, truth = make_clip(name, size=size, fps=fps, duration=duration, seed=seed)
        path = write_video(frames, dest / f"{name}.mp4", fps)
        rows.append({c: truth.get(c) for c in TRUTH_COLUMNS} | {"path": str(path)})
    return pd.DataFrame(rows, columns=TRUTH_COLUMNS)
