"""Drawing and motion of the synthetic corpus: backgrounds, textured sprites and scenes.

Everything is laid out in *units* (output pixels of a still camera) and drawn into a world
canvas at ``q`` pixels per unit, so a zooming camera can sample a denser world and stay
sharp. Motions are scheduled in segments of ``SEGMENT_S`` seconds, the paper's window
length: a motion that reverses (an arm goes up, then down) changes something else in the
next segment, so no window of that length sees a motion cancel itself out.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

#: Length of one step of every piecewise motion (the default window length).
SEGMENT_S = 3.0

#: Largest step of a translating subject per segment, as a fraction of its size: optical
#: flow cannot follow a small image region that jumps further than its own extent.
MAX_STEP = 0.5

#: Surface patterns of moving subjects (see ``make_texture``): mostly random cells, which
#: have texture in every direction; stripes (1) are left to props, as flow slides along them.
SUBJECT_PATTERNS = (0, 0, 2, 3)

#: (x, y, angle in degrees, scale x, scale y, opacity) of a sprite, in world units.
Pose = tuple[float, float, float, float, float, float]


def ease(u: float) -> float:
    """Cosine ease: motions start and stop gently, like bodies do, and never overshoot."""
    u = min(1.0, max(0.0, u))
    return 0.5 - 0.5 * math.cos(math.pi * u)


def hsv_colour(h: float, s: float, v: float) -> np.ndarray:
    """RGB (0-255, float32) of a hue in degrees and saturation/value in 0-1."""
    px = np.uint8([[[round(h / 2) % 180, round(s * 255), round(v * 255)]]])
    return cv2.cvtColor(px, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def vivid_colour(
    rng: np.random.Generator, avoid: list[float] | None = None
) -> tuple[np.ndarray, float]:
    """A saturated colour, and its hue, far from the hues in ``avoid``.

    Subjects must stand out from the muted backgrounds and from each other, so that a
    judge (or a person) can tell which region is which.
    """
    for _ in range(20):
        hue = float(rng.uniform(0, 360))
        if not avoid or min(abs((hue - a + 180) % 360 - 180) for a in avoid) > 45:
            break
    sat, val = float(rng.uniform(0.6, 0.9)), float(rng.uniform(0.6, 0.9))
    return hsv_colour(hue, sat, val), hue


def _aa_mask(h: int, w: int, draw: Callable[[np.ndarray, int], None]) -> np.ndarray:
    """Anti-aliased 0-1 mask: drawn at 4x with integer shapes, then area-averaged."""
    big = np.zeros((h * 4, w * 4), np.uint8)
    draw(big, 4)
    return cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def rounded_rect_mask(h: int, w: int, pad: int, radius: float) -> np.ndarray:
    def draw(img: np.ndarray, k: int) -> None:
        x0, y0, x1, y1 = pad * k, pad * k, (w - pad) * k - 1, (h - pad) * k - 1
        r = int(min(radius * k, (x1 - x0) / 2, (y1 - y0) / 2))
        cv2.rectangle(img, (x0 + r, y0), (x1 - r, y1), 255, -1)
        cv2.rectangle(img, (x0, y0 + r), (x1, y1 - r), 255, -1)
        for cx, cy in ((x0 + r, y0 + r), (x1 - r, y0 + r), (x0 + r, y1 - r), (x1 - r, y1 - r)):
            cv2.circle(img, (cx, cy), r, 255, -1)

    return _aa_mask(h, w, draw)


def ellipse_mask(h: int, w: int, pad: int) -> np.ndarray:
    def draw(img: np.ndarray, k: int) -> None:
        centre = (w * k // 2, h * k // 2)
        axes = (max(1, (w - 2 * pad) * k // 2), max(1, (h - 2 * pad) * k // 2))
        cv2.ellipse(img, centre, axes, 0, 0, 360, 255, -1)

    return _aa_mask(h, w, draw)


def blob_mask(h: int, w: int, pad: int, rng: np.random.Generator) -> np.ndarray:
    """An irregular rounded shape: a star-convex polygon with a smooth random radius."""
    n = 48
    phases = rng.uniform(0, 2 * math.pi, 3)
    amps = rng.uniform(0.04, 0.12, 3)
    ang = np.linspace(0, 2 * math.pi, n, endpoint=False)
    rad = (
        1.0
        - amps.sum()
        + sum(
            a * np.cos((i + 2) * ang + p) for i, (a, p) in enumerate(zip(amps, phases, strict=True))
        )
    )

    def draw(img: np.ndarray, k: int) -> None:
        cx, cy = w * k / 2, h * k / 2
        rx, ry = (w - 2 * pad) * k / 2, (h - 2 * pad) * k / 2
        pts = np.stack([cx + rx * rad * np.cos(ang), cy + ry * rad * np.sin(ang)], 1)
        cv2.fillPoly(img, [np.round(pts).astype(np.int32)], 255)

    return _aa_mask(h, w, draw)


def make_texture(
    rng: np.random.Generator,
    h: int,
    w: int,
    colour: np.ndarray,
    q: float,
    kinds: tuple[int, ...] = SUBJECT_PATTERNS,
) -> np.ndarray:
    """A subject's surface: its colour modulated by a high-contrast, high-frequency pattern.

    Optical flow locks on luminance texture, and a patterned surface shows rotation and
    stretching that a flat fill would hide. Pattern sizes are in units, so a subject looks
    the same on a dense zoom canvas.
    """
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) / q
    theta = rng.uniform(0, math.pi)
    u = xx * math.cos(theta) + yy * math.sin(theta)
    v = -xx * math.sin(theta) + yy * math.cos(theta)
    kind = kinds[int(rng.integers(len(kinds)))]
    # Every pattern is aperiodic: a regular checkerboard or stripe lets flow snap to a
    # displacement one period off, which no real surface invites.
    if kind == 0:  # cells of random brightness
        cell = rng.uniform(2.5, 5.0)
        table = rng.uniform(-1, 1, (97, 89)).astype(np.float32)
        iu = np.floor(u / cell).astype(np.int64) % 97
        iv = np.floor(v / cell).astype(np.int64) % 89
        pat = table[iu, iv]
    elif kind == 1:  # stripes of random width and brightness
        span = float(np.abs(u).max()) + 1.0
        widths = rng.uniform(1.5, 5.0, int(2 * span / 1.5) + 2)
        edges = np.cumsum(widths) - span
        levels = rng.uniform(-1, 1, len(edges) + 1).astype(np.float32)
        pat = levels[np.searchsorted(edges, u)]
    elif kind == 2:  # blotches at two scales
        pat = np.zeros((h, w), np.float32)
        for scale, weight in ((1.6, 0.6), (5.0, 0.6)):
            small = rng.standard_normal(
                (max(2, int(h / (scale * q))), max(2, int(w / (scale * q))))
            )
            up = cv2.resize(small.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
            pat += weight * up / (up.std() + 1e-6)
        pat = np.clip(pat, -1.5, 1.5) / 1.5
    else:  # scattered dots of random size on a mottled ground
        canvas = np.zeros((h, w), np.float32)
        for _ in range(max(4, int(h * w / (q * q * 14)))):
            r = max(1, int(round(rng.uniform(0.8, 2.2) * q)))
            centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            cv2.circle(canvas, centre, r, float(rng.choice([-1.0, 1.0])), -1, cv2.LINE_AA)
        pat = np.clip(canvas, -1, 1) * 0.9
    shade = (u - u.mean()) / (np.ptp(u) + 1e-6) * rng.uniform(-0.35, 0.35)
    pat = pat + shade.astype(np.float32)
    amp = rng.uniform(0.35, 0.5)
    fine = rng.standard_normal((h, w)).astype(np.float32) * 0.07
    lum = (1.0 + amp * pat.astype(np.float32) + fine)[..., None]
    tint = rng.uniform(-10, 10, 3).astype(np.float32)
    # Keep the brightest texel below white: a clipped pattern is a flat, untrackable patch.
    colour = colour * min(1.0, 235.0 / (float(colour.max()) * (1.0 + amp + 0.25)))
    return np.clip(colour[None, None, :] * lum + tint, 0, 255).astype(np.float32)


def outline(tex: np.ndarray, alpha: np.ndarray, q: float) -> np.ndarray:
    """Darken the rim of a sprite: real objects have shading at their silhouettes."""
    k = max(3, int(round(2.5 * q)) | 1)
    inner = cv2.erode(alpha, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    rim = np.clip(alpha - inner, 0, 1)[..., None]
    return tex * (1.0 - 0.45 * rim)


@dataclass
class Sprite:
    """A textured shape: RGB texture, 0-1 alpha, and the anchor it is placed by (pixels)."""

    tex: np.ndarray
    alpha: np.ndarray
    anchor: tuple[float, float]

    @property
    def size(self) -> tuple[int, int]:
        return self.alpha.shape[1], self.alpha.shape[0]


def make_sprite(
    rng: np.random.Generator,
    shape: str,
    w_units: float,
    h_units: float,
    colour: np.ndarray,
    q: float,
    anchor: str = "centre",
    kinds: tuple[int, ...] = SUBJECT_PATTERNS,
) -> Sprite:
    """A sprite of a given shape and size in units; ``anchor`` is centre, top or bottom.

    ``kinds`` restricts the surface patterns (0 cells, 1 stripes, 2 blotches, 3 dots).
    """
    pad = 2
    w = max(4, int(round(w_units * q)) + 2 * pad)
    h = max(4, int(round(h_units * q)) + 2 * pad)
    if shape == "disc":
        alpha = ellipse_mask(h, w, pad)
    elif shape == "blob":
        alpha = blob_mask(h, w, pad, rng)
    elif shape == "capsule":
        alpha = rounded_rect_mask(h, w, pad, min(w, h) / 2 - pad)
    else:  # box
        alpha = rounded_rect_mask(h, w, pad, 0.12 * min(w, h))
    tex = outline(make_texture(rng, h, w, colour, q, kinds), alpha, q)
    ax = (w - 1) / 2
    ay = {
        "centre": (h - 1) / 2,
        "top": pad + min(w_units * q, h_units * q) / 2,  # centre of a capsule's top cap
        "bottom": h - 1 - pad,
    }[anchor]
    return Sprite(tex, alpha, (ax, ay))


def add_nose(sprite: Sprite, colour: np.ndarray, rng: np.random.Generator) -> Sprite:
    """Paint a contrasting wedge on the sprite's +x end so its heading is visible.

    A rotating disc or box looks almost the same after a half turn; the wedge makes the
    orientation of the subject unambiguous, as a face or a front does on a real one.
    """
    h, w = sprite.alpha.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    wedge = (xx - cx) > 0.45 * (w / 2) + 0.5 * np.abs(yy - cy) * (w / max(h, 1)) * 0.6
    tex = sprite.tex.copy()
    shade = 0.85 + 0.3 * rng.random((h, w)).astype(np.float32)
    tex[wedge] = np.clip(colour[None, :] * shade[wedge][:, None], 0, 255)
    return Sprite(tex, sprite.alpha, sprite.anchor)


def composite(canvas: np.ndarray, sprite: Sprite, pose: Pose, q: float) -> None:
    """Draw a sprite into a float canvas in place, warping only its bounding box."""
    x, y, angle, sx, sy, opacity = pose
    if opacity <= 0.0:
        return
    rad = math.radians(angle)
    c, s = math.cos(rad), math.sin(rad)
    a = np.array([[c * sx, -s * sy], [s * sx, c * sy]], np.float64)
    t = np.array([x * q, y * q]) - a @ np.asarray(sprite.anchor)
    w, h = sprite.size
    corners = a @ np.array([[0, w, w, 0], [0, 0, h, h]], np.float64) + t[:, None]
    hc, wc = canvas.shape[:2]
    x0, x1 = max(0, math.floor(corners[0].min()) - 1), min(wc, math.ceil(corners[0].max()) + 2)
    y0, y1 = max(0, math.floor(corners[1].min()) - 1), min(hc, math.ceil(corners[1].max()) + 2)
    if x1 <= x0 or y1 <= y0:
        return
    m = np.hstack([a, (t - [x0, y0])[:, None]])
    size = (x1 - x0, y1 - y0)
    tex = cv2.warpAffine(
        sprite.tex, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )
    alpha = cv2.warpAffine(
        sprite.alpha, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )
    if opacity < 1.0:
        alpha *= opacity
    roi = canvas[y0:y1, x0:x1]
    roi += (tex - roi) * alpha[..., None]


def make_background(rng: np.random.Generator, h: int, w: int, q: float) -> np.ndarray:
    """A smooth, varied backdrop with faint texture, different for every seed.

    Two muted tones split at a soft, tilted horizon, low-frequency colour drift and soft
    blobs make scenes distinguishable (cuts change the colour distribution); a faint
    mid- and fine-scale grain gives optical flow something to hold still on.
    """
    hue = rng.uniform(0, 360)
    top = hsv_colour(hue, rng.uniform(0.1, 0.35), rng.uniform(0.55, 0.85))
    bottom = hsv_colour(
        (hue + rng.uniform(40, 160)) % 360, rng.uniform(0.15, 0.4), rng.uniform(0.3, 0.65)
    )
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    horizon = rng.uniform(0.35, 0.7) * h + (xx - w / 2) * rng.uniform(-0.15, 0.15)
    width = rng.uniform(0.01, 0.06) * h + 1.0
    mix = 1.0 / (1.0 + np.exp(-(yy - horizon) / width))
    img = top[None, None, :] * (1 - mix[..., None]) + bottom[None, None, :] * mix[..., None]
    gy, gx = int(rng.integers(3, 6)), int(rng.integers(3, 6))
    low = rng.standard_normal((gy, gx, 3)).astype(np.float32) * 14.0
    img += cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC)
    # Soft blobs, computed on a coarse grid: they are smooth by construction.
    sh, sw = max(4, h // 8), max(4, w // 8)
    cy, cx = np.mgrid[0:sh, 0:sw].astype(np.float32)
    blobs = np.zeros((sh, sw, 3), np.float32)
    for _ in range(int(rng.integers(3, 7))):
        bx, by = rng.uniform(0, sw), rng.uniform(0, sh)
        r = rng.uniform(0.1, 0.35) * max(sh, sw)
        fall = np.exp(-((cx - bx) ** 2 + (cy - by) ** 2) / (2 * r * r))
        blobs += fall[..., None] * rng.uniform(-35, 35, 3).astype(np.float32)
    img += cv2.resize(blobs, (w, h), interpolation=cv2.INTER_LINEAR)
    mh, mw = max(2, int(h / (6 * q))), max(2, int(w / (6 * q)))
    mid = rng.standard_normal((mh, mw)).astype(np.float32) * 6.0
    img += cv2.resize(mid, (w, h), interpolation=cv2.INTER_CUBIC)[..., None]
    fine = rng.standard_normal((h, w)).astype(np.float32) * 3.0
    if q > 1.0:
        fine = cv2.GaussianBlur(fine, (0, 0), 0.5 * q) * math.sqrt(q)
    img += fine[..., None]
    return np.clip(img, 0, 255).astype(np.float32)


@dataclass
class Actor:
    """A sprite and where it is at time t (world units)."""

    sprite: Sprite
    pose: Callable[[float], Pose]
    name: str = ""


@dataclass
class Stage:
    """Where a scene is built: world size and the frame it is seen through, in units.

    Sizes of subjects follow the frame (``m``, its shorter side) and motions follow its
    diagonal, so a wide world for a panning camera still holds frame-sized subjects.
    """

    rng: np.random.Generator
    world_w: float
    world_h: float
    frame_w: float
    frame_h: float
    q: float
    duration: float
    used_hues: list[float] = field(default_factory=list)

    @property
    def m(self) -> float:
        return min(self.frame_w, self.frame_h)

    @property
    def diag(self) -> float:
        return math.hypot(self.frame_w, self.frame_h)

    @property
    def margin(self) -> float:
        return 0.05 * self.m

    @property
    def segments(self) -> int:
        return int(math.ceil(self.duration / SEGMENT_S)) + 1

    def colour(self) -> np.ndarray:
        col, hue = vivid_colour(self.rng, self.used_hues)
        self.used_hues.append(hue)
        return col

    def sprite(self, shape: str, w: float, h: float, anchor: str = "centre") -> Sprite:
        return make_sprite(self.rng, shape, w, h, self.colour(), self.q, anchor)

    def uniform(self, lo: float, hi: float) -> float:
        return float(self.rng.uniform(lo, hi)) if hi > lo else float(lo)


@dataclass
class Scene:
    """A backdrop and its actors; ``render(t)`` draws the world canvas at time t."""

    background: np.ndarray
    actors: list[Actor]
    q: float
    info: dict[str, Any] = field(default_factory=dict)

    def render(self, t: float) -> np.ndarray:
        canvas = self.background.copy()
        for actor in self.actors:
            composite(canvas, actor.sprite, actor.pose(t), self.q)
        return canvas


def still(x: float, y: float, angle: float = 0.0) -> Callable[[float], Pose]:
    return lambda t: (x, y, angle, 1.0, 1.0, 1.0)


def add_props(st: Stage, bg: np.ndarray, n: int) -> None:
    """Bake a few motionless, muted objects into the backdrop (furniture of the scene)."""
    for _ in range(n):
        w, h = st.uniform(0.12, 0.3) * st.m, st.uniform(0.1, 0.25) * st.m
        col = hsv_colour(st.rng.uniform(0, 360), st.rng.uniform(0.1, 0.3), st.rng.uniform(0.3, 0.8))
        shape = ("box", "disc", "blob")[int(st.rng.integers(3))]
        spr = make_sprite(st.rng, shape, w, h, col, st.q, kinds=(0, 1, 2, 3))
        x, y = st.uniform(0, st.world_w), st.uniform(0, st.world_h)
        composite(bg, spr, (x, y, st.uniform(-20, 20), 1.0, 1.0, 1.0), st.q)


def backdrop(st: Stage) -> np.ndarray:
    bg = make_background(st.rng, int(round(st.world_h * st.q)), int(round(st.world_w * st.q)), st.q)
    add_props(st, bg, int(st.rng.integers(0, 3)))
    return bg


def _segment(t: float) -> tuple[int, float]:
    k = max(0, int(math.floor(t / SEGMENT_S)))
    return k, (t - k * SEGMENT_S) / SEGMENT_S


def toggled(t: float, owner: list[int], who: int) -> float:
    """Progress (0-1) of a two-state part that flips in the segments it owns.

    ``owner[k]`` is the part that moves in segment k; each part flips between its two
    states each time it owns a segment, easing in and out within the segment.
    """
    k, u = _segment(t)
    flips = sum(1 for j in range(min(k, len(owner))) if owner[j] == who)
    state = float(flips % 2)
    if k < len(owner) and owner[k] == who:
        p = ease(u)
        return state + (1 - 2 * state) * p
    return state


# ---------------------------------------------------------------- positive motions


def build_pose(st: Stage) -> Scene:
    """A front-facing figure that raises an arm or lifts a leg each segment; the torso stays."""
    rest = [st.uniform(5, 15), st.uniform(5, 15), st.uniform(0, 4), st.uniform(0, 4)]
    swing = [st.uniform(40, 50), st.uniform(40, 50), st.uniform(24, 30), st.uniform(24, 30)]
    raised = [r + d for r, d in zip(rest, swing, strict=True)]
    # Proportions in figure units; long, thick limbs so a moved limb covers enough pixels.
    tw_u, th_u, head_u = 0.3, 0.26, 0.08
    arm_u, arm_th_u, leg_u, leg_th_u = 0.3, 0.1, 0.3, 0.11
    # The figure fills most of the frame: thin or small limbs are invisible to flow.
    height_u = 2.3 * head_u + 0.02 + th_u + leg_u + leg_th_u / 2
    width_u = tw_u + 2 * (arm_th_u + arm_u * math.sin(math.radians(max(raised[:2]))))
    u = min(0.9 * st.frame_h / height_u, 0.9 * st.frame_w / width_u) * st.uniform(0.9, 1.0)
    tw, th = tw_u * u, th_u * u
    head_r = head_u * u
    arm_len, arm_th = arm_u * u, arm_th_u * u
    leg_len, leg_th = leg_u * u, leg_th_u * u
    half_span = tw / 2 + arm_th + arm_len * math.sin(math.radians(max(raised[:2])))
    above = 2.3 * head_r + 0.02 * u
    cx = st.uniform(half_span + st.margin, st.world_w - half_span - st.margin)
    top_lo = above + st.margin
    top_hi = st.world_h - th - leg_len - leg_th / 2 - st.margin
    top = st.uniform(top_lo, max(top_lo, top_hi))
    body = st.colour()
    limb_col = np.clip(body * st.uniform(0.75, 1.15), 0, 255)
    leg_col = st.colour()  # trousers: a hue of their own, as bright as the body
    skin = hsv_colour(st.uniform(15, 35), st.uniform(0.3, 0.6), st.uniform(0.6, 0.9))
    torso = make_sprite(st.rng, "box", tw, th, body, st.q)
    head = make_sprite(st.rng, "disc", 2 * head_r, 2 * head_r * 1.1, skin, st.q)
    names = ["left arm", "right arm", "left leg", "right leg"]
    sides = [-1, 1, -1, 1]
    # Legs sit at the torso's edges with a gap between them: a leg pressed against its
    # twin moves as an indistinct part of a bigger still region.
    hip = tw / 2 - leg_th * 0.6
    shoulder = tw / 2 + arm_th * 0.35
    pivots = [
        (-shoulder, top + arm_th * 0.6),
        (shoulder, top + arm_th * 0.6),
        (-hip, top + th - leg_th * 0.3),
        (hip, top + th - leg_th * 0.3),
    ]
    order = [int(i) for i in st.rng.permutation(4)]
    owner = [order[k % 4] for k in range(st.segments)]

    def limb_pose(i: int) -> Callable[[float], Pose]:
        px, py = cx + pivots[i][0], pivots[i][1]

        def pose(t: float) -> Pose:
            a = rest[i] + (raised[i] - rest[i]) * toggled(t, owner, i)
            dx, dy = sides[i] * math.sin(math.radians(a)), math.cos(math.radians(a))
            return (px, py, math.degrees(math.atan2(-dx, dy)), 1.0, 1.0, 1.0)

        return pose

    actors = []
    for i in (2, 3):
        spr = make_sprite(st.rng, "capsule", leg_th, leg_len, leg_col, st.q, "top", (0, 2))
        actors.append(Actor(spr, limb_pose(i), names[i]))
    actors.append(Actor(torso, still(cx, top + th / 2), "torso"))
    for i in (0, 1):
        spr = make_sprite(st.rng, "capsule", arm_th, arm_len, limb_col, st.q, "top", (0, 2))
        actors.append(Actor(spr, limb_pose(i), names[i]))
    actors.append(Actor(head, still(cx, top - head_r * 1.05), "head"))
    swing = 2 * arm_len * math.sin(math.radians((raised[0] - rest[0]) / 2))
    info = {
        "motion_per_window": round(swing / st.diag, 4),
        "moves": [names[j] for j in owner[: int(math.ceil(st.duration / SEGMENT_S))]],
    }
    return Scene(backdrop(st), actors, st.q, info)


def _shape(st: Stage, options: tuple[str, ...] = ("disc", "box", "blob")) -> str:
    return options[int(st.rng.integers(len(options)))]


def _axis(st: Stage) -> tuple[float, float]:
    """A unit direction along the frame's longer side, tilted a little, either way."""
    base = 0.0 if st.frame_w >= st.frame_h else 90.0
    ang = math.radians(base + st.uniform(-20, 20) + (180.0 if st.rng.random() < 0.5 else 0.0))
    return math.cos(ang), math.sin(ang)


def _fit_line(st: Stage, ux: float, uy: float, length: float, half: float) -> tuple[float, float]:
    """Start point of a straight path of ``length`` along (ux, uy) whose sprite stays inside.

    ``half`` is the sprite's half-extent; the start is random within the slack.
    """
    lo_x, hi_x = half + st.margin, st.world_w - half - st.margin
    lo_y, hi_y = half + st.margin, st.world_h - half - st.margin
    dx, dy = ux * length, uy * length
    x_min, x_max = lo_x - min(0, dx), hi_x - max(0, dx)
    y_min, y_max = lo_y - min(0, dy), hi_y - max(0, dy)
    x = st.uniform(x_min, x_max) if x_max > x_min else (lo_x + hi_x - dx) / 2
    y = st.uniform(y_min, y_max) if y_max > y_min else (lo_y + hi_y - dy) / 2
    return x, y


def _max_length(st: Stage, ux: float, uy: float, half: float) -> float:
    room_x = st.world_w - 2 * (half + st.margin)
    room_y = st.world_h - 2 * (half + st.margin)
    lx = room_x / abs(ux) if abs(ux) > 1e-6 else float("inf")
    ly = room_y / abs(uy) if abs(uy) > 1e-6 else float("inf")
    return max(0.0, min(lx, ly))


def build_locomotion(st: Stage) -> Scene:
    """A subject travels steadily in one direction across part of the scene."""
    size = st.uniform(0.28, 0.36) * st.m
    shape = _shape(st)
    spr = st.sprite(shape, size, size * st.uniform(0.8, 1.2))
    ux, uy = _axis(st)
    per_window = min(st.uniform(0.05, 0.08) * st.diag, MAX_STEP * size)
    length = per_window * st.duration / SEGMENT_S
    half = 0.6 * size
    length = min(length, _max_length(st, ux, uy, half))
    per_window = length * SEGMENT_S / st.duration
    x0, y0 = _fit_line(st, ux, uy, length, half)
    speed = length / st.duration

    def pose(t: float) -> Pose:
        return (x0 + ux * speed * t, y0 + uy * speed * t, 0.0, 1.0, 1.0, 1.0)

    info = {"motion_per_window": round(per_window / st.diag, 4)}
    return Scene(backdrop(st), [Actor(spr, pose, "walker")], st.q, info)


def build_deformation(st: Stage) -> Scene:
    """A subject standing on its base stretches or squashes, one axis per segment."""
    w0, h0 = st.uniform(0.25, 0.32) * st.m, st.uniform(0.25, 0.32) * st.m
    # Edge displacements follow the diagonal, like every other motion of the corpus.
    fx = min(1 + 2 * st.uniform(0.04, 0.06) * st.diag / w0, 2.0, (st.world_w - 2 * st.margin) / w0)
    squash = st.rng.random() < 0.5
    dy = st.uniform(0.04, 0.06) * st.diag / h0
    fy = max(1 - dy, 0.45) if squash else min(1 + dy, 1.9, (st.world_h - 2 * st.margin) / h0)
    spr = st.sprite(_shape(st, ("box", "disc")), w0, h0, anchor="bottom")
    max_w, max_h = w0 * fx, h0 * max(fy, 1.0)
    cx = st.uniform(max_w / 2 + st.margin, st.world_w - max_w / 2 - st.margin)
    lo = max_h + st.margin
    base = st.uniform(lo, max(lo, st.world_h - st.margin))
    first = int(st.rng.integers(2))
    owner = [(first + k) % 2 for k in range(st.segments)]

    def pose(t: float) -> Pose:
        sx = 1.0 + (fx - 1.0) * toggled(t, owner, 0)
        sy = 1.0 + (fy - 1.0) * toggled(t, owner, 1)
        return (cx, base, 0.0, sx, sy, 1.0)

    change = max((fx - 1) * w0 / 2, abs(fy - 1) * h0)
    info = {"motion_per_window": round(change / st.diag, 4), "squash": squash}
    return Scene(backdrop(st), [Actor(spr, pose, "shape")], st.q, info)


def build_orientation(st: Stage) -> Scene:
    """An elongated subject with a marked front turns in place at a steady rate."""
    length = st.uniform(0.36, 0.46) * st.m
    width = length * st.uniform(0.5, 0.65)
    spr = st.sprite(_shape(st, ("box", "disc", "capsule")), length, width)
    spr = add_nose(spr, st.colour(), st.rng)
    rate = st.uniform(60, 75) / SEGMENT_S * (1 if st.rng.random() < 0.5 else -1)
    r = length / 2 + st.margin
    cx = st.uniform(r, max(r, st.world_w - r))
    cy = st.uniform(r, max(r, st.world_h - r))
    a0 = st.uniform(0, 360)

    def pose(t: float) -> Pose:
        return (cx, cy, a0 + rate * t, 1.0, 1.0, 1.0)

    tip = 2 * (length / 2) * math.sin(math.radians(abs(rate) * SEGMENT_S / 2))
    info = {
        "motion_per_window": round(tip / st.diag, 4),
        "degrees_per_window": round(abs(rate) * SEGMENT_S, 1),
    }
    return Scene(backdrop(st), [Actor(spr, pose, "turner")], st.q, info)


def build_subject_object(st: Stage) -> Scene:
    """A subject walks into an object and kicks it ahead, once per segment.

    The subject moves steadily; the object rests until contact at mid-segment, then
    slides ahead and comes to rest again by the segment's end, half a step in front. So
    at every segment boundary the two are apart and both have moved by one step.
    """
    s_sub = st.uniform(0.26, 0.32) * st.m
    s_obj = st.uniform(0.24, 0.3) * st.m
    subject = st.sprite(_shape(st, ("disc", "blob")), s_sub, s_sub)
    obj = st.sprite("box", s_obj, s_obj)
    ux, uy = _axis(st)
    step = min(st.uniform(0.05, 0.075) * st.diag, MAX_STEP * min(s_sub, s_obj))
    n_seg = math.ceil(st.duration / SEGMENT_S)
    chain = s_sub / 2 + step / 2 + s_obj / 2  # centre-to-centre at a segment boundary
    half = 0.6 * max(s_sub, s_obj)
    room = _max_length(st, ux, uy, half)
    if chain + n_seg * step > room:
        step = max(0.0, (room - s_sub / 2 - s_obj / 2) / (n_seg + 0.5))
        chain = s_sub / 2 + step / 2 + s_obj / 2
    x0, y0 = _fit_line(st, ux, uy, chain + n_seg * step, half)
    v = step / SEGMENT_S

    def sub_pose(t: float) -> Pose:
        return (x0 + ux * v * t, y0 + uy * v * t, 0.0, 1.0, 1.0, 1.0)

    def obj_pose(t: float) -> Pose:
        k, u = _segment(t)
        d = k * step
        if u > 0.5:
            w = (u - 0.5) / 0.5
            d += step * (1 - (1 - w) ** 2)
        return (x0 + ux * (chain + d), y0 + uy * (chain + d), 0.0, 1.0, 1.0, 1.0)

    info = {"motion_per_window": round(step / st.diag, 4)}
    actors = [Actor(obj, obj_pose, "object"), Actor(subject, sub_pose, "pusher")]
    return Scene(backdrop(st), actors, st.q, info)


def build_subject_subject(st: Stage) -> Scene:
    """Two subjects facing each other close in and back off in turns while circling."""
    s = st.uniform(0.22, 0.28) * st.m
    a = add_nose(st.sprite(_shape(st, ("disc", "blob")), s, s), st.colour(), st.rng)
    b = add_nose(st.sprite(_shape(st, ("disc", "box")), s, s), st.colour(), st.rng)
    rate = st.uniform(6, 10) * (1 if st.rng.random() < 0.5 else -1)
    sweep = abs(rate) * st.duration
    mid = (0.0 if st.frame_w >= st.frame_h else 90.0) + st.uniform(-15, 15)
    phi0 = mid - rate * st.duration / 2
    cx = st.world_w / 2 + st.uniform(-0.05, 0.05) * st.world_w
    cy = st.world_h / 2 + st.uniform(-0.05, 0.05) * st.world_h
    bx = min(cx, st.world_w - cx) - s / 2 - st.margin
    by = min(cy, st.world_h - cy) - s / 2 - st.margin
    r_max = float("inf")
    for phi in np.linspace(mid - sweep / 2, mid + sweep / 2, 25):
        c, sn = abs(math.cos(math.radians(phi))), abs(math.sin(math.radians(phi)))
        r_max = min(r_max, bx / max(c, 1e-6), by / max(sn, 1e-6))
    r_near = 0.5 * s + 0.04 * st.m
    r_far = min(r_max, r_near + min(st.uniform(0.05, 0.075) * st.diag, MAX_STEP * s))
    r_far = max(r_far, r_near)
    owner = [0] * st.segments

    def geometry(t: float) -> tuple[float, float, float]:
        r = r_far + (r_near - r_far) * toggled(t, owner, 0)
        return r, math.cos(math.radians(phi0 + rate * t)), math.sin(math.radians(phi0 + rate * t))

    def pose_a(t: float) -> Pose:
        r, c, sn = geometry(t)
        return (cx - r * c, cy - r * sn, phi0 + rate * t, 1.0, 1.0, 1.0)

    def pose_b(t: float) -> Pose:
        r, c, sn = geometry(t)
        return (cx + r * c, cy + r * sn, phi0 + rate * t + 180.0, 1.0, 1.0, 1.0)

    info = {"motion_per_window": round((r_far - r_near) / st.diag, 4)}
    return Scene(backdrop(st), [Actor(a, pose_a, "first"), Actor(b, pose_b, "second")], st.q, info)


POSITIVE_BUILDERS: dict[str, Callable[[Stage], Scene]] = {
    "pose": build_pose,
    "locomotion": build_locomotion,
    "deformation": build_deformation,
    "orientation": build_orientation,
    "subject_object": build_subject_object,
    "subject_subject": build_subject_subject,
}


# ---------------------------------------------------------------- subjects that leave


@dataclass
class _Exit:
    """A subject that fades in at its spot, waits, then walks straight out of the frame."""

    x: float
    y: float
    ux: float
    uy: float
    start: float  # when it starts walking
    speed: float
    walk: float  # how long it walks (it is out of the frame well before the end)
    fade: tuple[float, float]  # fade-in start and end

    def __call__(self, t: float) -> Pose:
        f0, f1 = self.fade
        opacity = min(1.0, max(0.0, (t - f0) / (f1 - f0)))
        d = self.speed * min(max(0.0, t - self.start), self.walk)
        return (self.x + self.ux * d, self.y + self.uy * d, 0.0, 1.0, 1.0, opacity)

    def path(self) -> list[list[float]]:
        """Its centre as (t, x, y) nodes of a piecewise-linear path."""
        end = (self.x + self.ux * self.speed * self.walk, self.y + self.uy * self.speed * self.walk)
        nodes = [[0.0, self.x, self.y]] if self.start > 0 else []
        nodes.append([self.start, self.x, self.y])
        nodes.append([self.start + self.walk, *end])
        return nodes


def _runs(flags: list[bool]) -> list[list[int]]:
    """[start, end) index ranges where ``flags`` is true."""
    runs: list[list[int]] = []
    for i, flag in enumerate(flags):
        if flag and runs and runs[-1][1] == i:
            runs[-1][1] = i + 1
        elif flag:
            runs.append([i, i + 1])
    return runs


def build_leaving(st: Stage, fps: float, n_frames: int) -> Scene:
    """Each segment a subject standing near an edge walks out of the frame.

    The next subject fades in shortly before the next segment starts, so every segment
    boundary shows a subject that is gone by the following boundary. ``info["subjects"]``
    holds, per subject, the frames where it is visible (opaque and at least half inside,
    exactly as drawn) and its path in fractions of the frame.
    """
    actors: list[Actor] = []
    subjects: list[dict[str, Any]] = []
    for k in range(math.ceil(st.duration / SEGMENT_S)):
        size = st.uniform(0.26, 0.34) * st.m
        spr = st.sprite(_shape(st), size, size)
        half = 0.55 * size
        # Wide frames are left through the sides, as people leave a wide shot.
        edge = int(st.rng.integers(2 if st.world_w > 1.3 * st.world_h else 4))
        gap = st.uniform(0.03, 0.08) * st.m
        along = st.uniform(
            half + st.margin, (st.world_h if edge < 2 else st.world_w) - half - st.margin
        )
        if edge == 0:
            x, y, ux, uy = half + gap, along, -1.0, 0.0
        elif edge == 1:
            x, y, ux, uy = st.world_w - half - gap, along, 1.0, 0.0
        elif edge == 2:
            x, y, ux, uy = along, half + gap, 0.0, -1.0
        else:
            x, y, ux, uy = along, st.world_h - half - gap, 0.0, 1.0
        out_time = st.uniform(1.6, 2.2)  # until it is fully out
        start = k * SEGMENT_S
        mover = _Exit(
            x, y, ux, uy, start,
            speed=(gap + 2 * half + 0.05 * st.m) / out_time,
            walk=out_time + 0.5,
            fade=(start - 0.55, start - 0.3) if k > 0 else (-1.0, -0.5),
        )  # fmt: skip
        actors.append(Actor(spr, mover, f"subject {k}"))
        visible = []
        for f in range(n_frames):
            px, py, _, _, _, opacity = mover(f / fps)
            visible.append(opacity >= 0.5 and 0 <= px <= st.world_w and 0 <= py <= st.world_h)
        subjects.append(
            {
                "id": k,
                "visible_frames": _runs(visible),
                "path": [
                    [round(t, 4), round(px / st.world_w, 5), round(py / st.world_h, 5)]
                    for t, px, py in mover.path()
                ],
            }
        )
    return Scene(backdrop(st), actors, st.q, {"subjects": subjects})
