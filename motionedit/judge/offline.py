"""The offline judge: the paper's inspection questions answered from image statistics and flow.

It is what the default configuration runs with no network and no API key, and a cheap
first opinion at scale. The flow is followed through the window's sampled frames (the
frames stage's strip), so motion is measured where the subject went, not guessed from two
frames 3 seconds apart. Each check is a measured number compared with a threshold from
``judge:`` in the config, and every number is kept in the verdict's ``details`` so a user
can see why a pair was kept or dropped:

- setting: a hard cut or a new scene breaks the flow (its forward-backward check fails
  at one step, or for most points on the way), cannot be warped back onto the input by
  the flow (photometric error after warping) and changes the colour distribution
  (histogram correlation);
- quality: heavy blur leaves no sharp region (variance of the Laplacian in the sharpest
  tile); heavy noise raises a robust high-pass noise estimate;
- subject: a subject that leaves the frame takes its tracked points out of it; one that
  vanishes or changes leaves change the flow cannot explain, or its tracked points change
  colour;
- motion: the moving region must move a significant distance; its rigid fit (rotation,
  scale, translation and the pivot of the rotation) and the number of moving blobs give
  one of the six motion categories and the "before -> after" summary.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from motionedit.flow import FlowEstimator, make_flow, window_flow_config
from motionedit.flow.chain import (
    ChainedFlow,
    chain_links,
    exit_fraction,
    link_flows,
    load_chained,
)
from motionedit.frames import load_strip
from motionedit.judge.base import PairInput, Verdict
from motionedit.pairs import load_pair
from motionedit.prefilter import colour_correlation, peak_motion, pearson

PROMPT_VERSION = "offline-v1"

_COLOURS = (
    (0, "red"),
    (20, "orange"),
    (45, "yellow"),
    (90, "green"),
    (170, "cyan"),
    (220, "blue"),
    (280, "purple"),
    (320, "pink"),
    (345, "red"),
)


def colour_name(rgb: np.ndarray) -> str:
    """A plain colour word for a mean RGB value (used in summaries and instructions)."""
    r, g, b = (float(c) / 255.0 for c in rgb)
    mx, mn = max(r, g, b), min(r, g, b)
    if mx - mn < 0.12:
        return "white" if mx > 0.8 else ("black" if mx < 0.2 else "grey")
    hue = cv2.cvtColor(np.uint8([[rgb]]), cv2.COLOR_RGB2HSV_FULL)[0, 0, 0] * 360.0 / 255.0
    name = "red"
    for start, label in _COLOURS:
        if hue >= start:
            name = label
    if name == "orange" and mx < 0.55:
        return "brown"
    return name


def dominant_colour(img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean RGB of the more saturated half of a region.

    A moving region's mask also covers some background around the subject; the subject's
    colour is the one that stands out, so the duller half is left out.
    """
    pixels = img[mask]
    if len(pixels) == 0:
        return np.zeros(3)
    sat = cv2.cvtColor(pixels[None].astype(np.uint8), cv2.COLOR_RGB2HSV)[0, :, 1]
    return pixels[sat >= np.median(sat)].mean(0)


def direction_words(dx: float, dy: float) -> str:
    """Screen direction of a displacement (y grows downward)."""
    horiz = "to the right" if dx > 0 else "to the left"
    vert = "downward" if dy > 0 else "upward"
    if abs(dx) > 2.0 * abs(dy):
        return horiz
    if abs(dy) > 2.0 * abs(dx):
        return vert
    return f"{vert} and {horiz}"


def place_words(x: float, width: int) -> str:
    third = x / max(width, 1)
    return "on the left" if third < 0.36 else ("on the right" if third > 0.64 else "in the centre")


def sharpness(gray: np.ndarray, tiles: int = 4) -> float:
    """Variance of the Laplacian in the sharpest tile: blur leaves no sharp region anywhere."""
    lap = cv2.Laplacian(gray, cv2.CV_32F, ksize=3)
    h, w = gray.shape
    best = 0.0
    for i in range(tiles):
        for j in range(tiles):
            tile = lap[i * h // tiles : (i + 1) * h // tiles, j * w // tiles : (j + 1) * w // tiles]
            if tile.size:
                best = max(best, float(tile.var()))
    return best


def noise_sigma(gray: np.ndarray) -> float:
    """Robust noise standard deviation from the median of a second-difference filter.

    The median ignores the few textured regions, so a clean frame with a busy subject
    reads low and a frame covered in sensor noise reads high.
    """
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    resp = cv2.filter2D(gray, cv2.CV_32F, kernel)
    return float(np.median(np.abs(resp)) * 1.4826 / 6.0)


def warp_back(img1: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Sample image 1 at the flow targets, giving image 1 in image 0's coordinates."""
    h, w = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(
        img1,
        xs + flow[..., 0],
        ys + flow[..., 1],
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )


def colour_change(img0: np.ndarray, img1: np.ndarray) -> np.ndarray:
    """Pixels whose colour changed between the frames (lightly blurred against noise)."""
    s0 = cv2.GaussianBlur(img0.astype(np.float32), (0, 0), 1.5)
    s1 = cv2.GaussianBlur(img1.astype(np.float32), (0, 0), 1.5)
    return (np.abs(s0 - s1).max(-1) > 25).astype(np.uint8)


def subject_consistency(
    img0: np.ndarray, img1: np.ndarray, flow: np.ndarray, moving: np.ndarray
) -> float:
    """Colour agreement of the moving subject with itself, where the flow says it went.

    The subject's points in the first frame and the same points in the last frame are
    compared (hue-saturation histogram correlation). Comparing the changed pixels instead
    compares a subject that doubled in size with the background it now covers. 1.0 when
    too little moves to compare.
    """
    ys, xs = np.nonzero(moving)
    if len(xs) < 16:
        return 1.0
    x1 = np.clip(np.round(xs + flow[ys, xs, 0]).astype(int), 0, img1.shape[1] - 1)
    y1 = np.clip(np.round(ys + flow[ys, xs, 1]).astype(int), 0, img1.shape[0] - 1)
    hists = [
        cv2.calcHist([cv2.cvtColor(px[None], cv2.COLOR_RGB2HSV)], [0, 1], None, [18, 8],
                     [0, 180, 0, 256])
        for px in (img0[ys, xs], img1[y1, x1])
    ]  # fmt: skip
    return pearson(hists[0], hists[1])


def _local_variance(gray: np.ndarray) -> np.ndarray:
    mean = cv2.blur(gray, (5, 5))
    return cv2.blur(gray * gray, (5, 5)) - mean * mean


def _shape(mask: np.ndarray) -> dict[str, float] | None:
    m = cv2.moments(mask, True)
    if m["m00"] < 16:
        return None
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    areas = sorted((stats[i, cv2.CC_STAT_AREA] for i in range(1, n)), reverse=True)
    parts = sum(1 for a in areas if a >= max(30, 0.25 * areas[0]))
    return {
        "area": m["m00"],
        "cx": m["m10"] / m["m00"],
        "cy": m["m01"] / m["m00"],
        "axis": 0.5 * math.degrees(math.atan2(2 * m["mu11"], m["mu20"] - m["mu02"])),
        "parts": parts,
    }


def silhouette_change(img0: np.ndarray, img1: np.ndarray, changed: np.ndarray) -> dict[str, float]:
    """How the textured subject's silhouette changes around the pixels that changed.

    Subjects carry more texture than the scene around them; within a zone around the
    changed pixels, each frame's subject is where its local variance stands out. Returns
    area ratio, axis-angle change (degrees), centroid shift (in subject radii) and the
    number of parts in each frame; empty when no subject stands out.
    """
    zone = cv2.dilate(changed, np.ones((9, 9), np.uint8)).astype(bool)
    if zone.all() or not zone.any():
        return {}
    g0, g1 = (
        cv2.cvtColor(im, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0 for im in (img0, img1)
    )
    v0, v1 = _local_variance(g0), _local_variance(g1)
    level = 2.0 * float(np.percentile(np.concatenate([v0[~zone], v1[~zone]]), 95))
    close = np.ones((7, 7), np.uint8)
    shapes = [
        _shape(cv2.morphologyEx((zone & (v > level)).astype(np.uint8), cv2.MORPH_CLOSE, close))
        for v in (v0, v1)
    ]
    if shapes[0] is None or shapes[1] is None:
        return {}
    a, b = shapes
    return {
        "area_ratio": b["area"] / a["area"],
        "angle_change": (b["axis"] - a["axis"] + 90.0) % 180.0 - 90.0,
        "shift": math.hypot(b["cx"] - a["cx"], b["cy"] - a["cy"]) / math.sqrt(a["area"]),
        "parts0": a["parts"],
        "parts1": b["parts"],
    }


def moving_blobs(moving: np.ndarray, min_area: int) -> list[np.ndarray]:
    """Masks of the connected moving regions, largest first, after closing small gaps."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    m = cv2.morphologyEx(moving.astype(np.uint8), cv2.MORPH_OPEN, kernel)
    m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, kernel)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    order = sorted(range(1, n), key=lambda i: -stats[i, cv2.CC_STAT_AREA])
    blobs = [labels == i for i in order if stats[i, cv2.CC_STAT_AREA] >= min_area]
    if len(blobs) > 1:
        largest = blobs[0].sum()
        blobs = [b for b in blobs if b.sum() >= 0.15 * largest]
    return blobs


def rigid_fit(flow: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Similarity motion of one region: rotation, scale, translation, pivot, non-rigidity."""
    ys, xs = np.nonzero(mask)
    step = max(1, len(xs) // 2000)
    xs, ys = xs[::step], ys[::step]
    src = np.stack([xs, ys], 1).astype(np.float32)
    dst = src + flow[ys, xs]
    centre = src.mean(0)
    mean_flow = (dst - src).mean(0)
    radius = math.sqrt(mask.sum() / math.pi)
    out = {
        "cx": float(centre[0]),
        "cy": float(centre[1]),
        "dx": float(mean_flow[0]),
        "dy": float(mean_flow[1]),
        "radius": radius,
        "angle_deg": 0.0,
        "scale": 1.0,
        "anisotropy": 1.0,
        "pivot_dist": 0.0,
        "nonrigid": 0.0,
    }
    if len(src) < 6:
        return out
    sim, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.LMEDS)
    full, _ = cv2.estimateAffine2D(src, dst, method=cv2.LMEDS)
    if sim is None or full is None:
        return out
    a, b = float(sim[0, 0]), float(sim[1, 0])
    scale, angle = math.hypot(a, b), math.degrees(math.atan2(b, a))
    sv = np.linalg.svd(full[:, :2], compute_uv=False)
    resid = np.linalg.norm(src @ sim[:, :2].T + sim[:, 2] - dst, axis=1)
    tol = max(1.0, 0.1 * float(np.linalg.norm(dst - src, axis=1).mean()))
    pivot_dist = 0.0
    rot = sim[:, :2]
    if abs(angle) > 1.0:
        try:
            pivot = np.linalg.solve(np.eye(2) - rot, sim[:, 2])
            pivot_dist = float(np.linalg.norm(pivot - centre)) / max(radius, 1.0)
        except np.linalg.LinAlgError:
            pivot_dist = float("inf")
    out.update(
        angle_deg=angle,
        scale=scale,
        anisotropy=float(sv[0] / max(sv[1], 1e-6)),
        pivot_dist=pivot_dist,
        nonrigid=float((resid > tol).mean()),
    )
    return out


def _pushes(mover: dict[str, Any], obj: str, detail: dict) -> tuple[str, str, str, dict]:
    d = direction_words(mover["dx"], mover["dy"])
    return (
        "subject_object",
        f"the {mover['colour']} subject beside {obj}",
        f"the {mover['colour']} subject pushes {obj} {d}",
        detail | {"direction": d},
    )


class OfflineJudge:
    backend = "offline"
    model = "image-statistics"
    prompt_version = PROMPT_VERSION

    def __init__(
        self,
        cfg: dict[str, Any],
        prefilter_cfg: dict[str, Any],
        flow_cfg: dict[str, Any],
        flow: FlowEstimator | None = None,
    ) -> None:
        self.cfg, self.pre, self.flow_cfg = cfg, prefilter_cfg, flow_cfg
        self.flow = flow or make_flow(window_flow_config(flow_cfg))
        # A pair with no sampled frames between its two (an imported pair) is one long
        # step: the flow set for distant frames measures it, not the one for short steps.
        self.pair_flow = flow or make_flow(flow_cfg)

    def measure(
        self, frames: list[np.ndarray], chained: ChainedFlow | None = None
    ) -> dict[str, Any]:
        """Every number the checks use, for one window's sampled frames at the working size.

        The flow is the chained one from the first frame to the last (zero where a point
        was lost), so a subject that crossed the frame is measured where it went; the
        prefilter's, when it saved one.
        """
        img0, img1 = frames[0], frames[-1]
        if chained is None:
            step_flow = self.flow if len(frames) > 2 else self.pair_flow
            chained = chain_links(link_flows(frames, step_flow))
        flow, tracked = chained.displacement, chained.tracked
        h, w = flow.shape[:2]
        diag = math.hypot(h, w)
        g0 = cv2.cvtColor(img0, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
        g1 = cv2.cvtColor(img1, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
        s0, s1 = (cv2.GaussianBlur(g, (0, 0), 1.5) for g in (g0, g1))
        warped = warp_back(s1, flow)
        resid = np.abs(s0 - warped)
        change = np.abs(s0 - s1) > 0.08
        unexplained = change & (resid > 0.08)
        mag = np.linalg.norm(flow, axis=-1) / diag
        moving = tracked & (mag > self.pre["moving_threshold"])
        changed_px = colour_change(img0, img1)
        return {
            "silhouette": silhouette_change(img0, img1, changed_px),
            "flow": flow,
            "subject_consistency": subject_consistency(img0, img1, flow, moving),
            "moving": moving,
            "diag": diag,
            "warp_error": float(resid.mean()),
            "histogram_correlation": colour_correlation(img0, img1),
            "sharpness": min(sharpness(g0), sharpness(g1)),
            "noise": max(noise_sigma(g0), noise_sigma(g1)),
            "change_frac": float(change.mean()),
            "unexplained_frac": float(unexplained.sum() / max(change.sum(), 1)),
            "tracked_frac": float(tracked.mean()),
            "lost_frac": float((~tracked & ~chained.exited).mean()),
            "link_consistency": min(chained.link_consistency),
            "exit_frac": exit_fraction(chained, moving, self.pre["moving_threshold"] * diag),
            "motion_peak": peak_motion(mag, moving),
        }

    def categorise(self, m: dict[str, Any], img0: np.ndarray) -> tuple[str, str, str, dict]:
        """Category, before, after, and the geometry behind them.

        The chained flow follows a subject through the window, so the similarity fitted
        to each moving region says how it moved: two regions are an interaction (one
        pushes the other when they move the same way); one region turned about a point
        inside it (orientation) or near its end (a limb: pose), grew or shrank evenly
        (moved toward or away from the camera) or unevenly (deformation), or moved
        (locomotion). The textured silhouettes in the two frames decide what the flow
        cannot: two bodies moving as one region, a change of shape the fit misses.
        """
        h, w = img0.shape[:2]
        blobs = moving_blobs(m["moving"], min_area=max(12, int(0.002 * h * w)))
        if not blobs:
            blobs = [m["moving"]]
        fits = [rigid_fit(m["flow"], b) for b in blobs[:2]]
        colours = [colour_name(dominant_colour(img0, b)) for b in blobs[:2]]
        for f, c in zip(fits, colours, strict=True):
            f["colour"] = c
        a = fits[0]
        colour = a["colour"]
        sil = m.get("silhouette") or {}
        detail = {"blobs": len(blobs), "fits": fits, "silhouette": sil}
        if len(fits) == 2:
            b = fits[1]
            speed_a, speed_b = math.hypot(a["dx"], a["dy"]), math.hypot(b["dx"], b["dy"])
            cos = (a["dx"] * b["dx"] + a["dy"] * b["dy"]) / max(speed_a * speed_b, 1e-6)
            if cos > 0.3:  # moving the same way: one pushes the other
                mover, obj = (a, b) if speed_a >= speed_b else (b, a)
                return _pushes(mover, f"the {obj['colour']} object", detail)
            gap0 = math.hypot(a["cx"] - b["cx"], a["cy"] - b["cy"])
            gap1 = math.hypot(a["cx"] + a["dx"] - b["cx"] - b["dx"],
                              a["cy"] + a["dy"] - b["cy"] - b["dy"])  # fmt: skip
            meet = gap1 < gap0
            who = f"the {colour} and the {b['colour']} subjects"
            first, second = ("apart", "together") if meet else ("together", "apart")
            return "subject_subject", f"{who} {first}", f"{who} {second}", detail | {"meet": meet}
        shift = math.hypot(a["dx"], a["dy"])
        turned = abs(a["angle_deg"]) >= 10.0
        if turned and shift < 1.5 * a["radius"]:
            turn = "counter-clockwise" if a["angle_deg"] < 0 else "clockwise"
            if a["pivot_dist"] > 1.0:  # turning about a point near its end: a limb swings
                return (
                    "pose",
                    f"the {colour} figure with its limb at rest",
                    f"the {colour} figure with its limb swung {turn}",
                    detail | {"turn": turn},
                )
            deg = max(15, int(round(abs(a["angle_deg"]) / 15.0) * 15))
            return (
                "orientation",
                f"the {colour} subject facing its original way",
                f"the {colour} subject turned {turn} by about {deg} degrees",
                detail | {"turn": turn, "degrees": deg},
            )
        area_ratio = a["scale"] ** 2
        even = a["anisotropy"] <= 1.25
        if even and (area_ratio > 1.2 or area_ratio < 0.83):
            toward = area_ratio > 1.0
            d = "toward the camera" if toward else "away from the camera"
            return (
                "locomotion",
                f"the {colour} subject at its first distance",
                f"the {colour} subject moved {d}, now {'larger' if toward else 'smaller'}",
                detail | {"direction": d, "from": "", "to": ""},
            )
        # The silhouette moved by a third of its size, or the fit by half its radius.
        moved_far = sil.get("shift", 0.0) >= 0.3 or shift > 0.5 * a["radius"]
        sil_area = sil.get("area_ratio", area_ratio)
        if not moved_far and (not even or sil_area > 1.25 or sil_area < 0.8):
            grows = sil_area >= 1.0
            return (
                "deformation",
                f"the {colour} object in its original shape",
                f"the {colour} object {'stretched larger' if grows else 'squashed smaller'}",
                detail | {"grows": grows},
            )
        parts = (sil.get("parts0", 1), sil.get("parts1", 1))
        if parts[0] == parts[1] >= 2:
            # Two textured bodies moving as one region in one direction: one pushes the other.
            return _pushes(a, "the object", detail)
        if moved_far or shift > 0.3 * a["radius"]:
            d = direction_words(a["dx"], a["dy"])
            place0, place1 = place_words(a["cx"], w), place_words(a["cx"] + a["dx"], w)
            return (
                "locomotion",
                f"the {colour} subject {place0}",
                f"the {colour} subject moved {d}, now {place1}",
                detail | {"direction": d, "from": place0, "to": place1},
            )
        return (
            "pose",
            f"the {colour} figure in its first posture",
            f"the {colour} figure in a changed posture",
            detail,
        )

    def judge(self, pair: PairInput) -> Verdict:
        if pair.strip:
            frames = load_strip(pair.strip, len(pair.strip_times or ()))
        else:
            frames = list(load_pair(pair.frame0, pair.frame1, self.flow_cfg["max_side"]))
        img0 = frames[0]
        m = self.measure(frames, load_chained(pair.motion) if pair.motion else None)
        c = self.cfg
        numbers = {k: v for k, v in m.items() if k not in ("flow", "moving", "diag", "silhouette")}
        # (check, measurement, passed), in the order a failure is reported.
        checks = [
            ("quality", "sharpness", m["sharpness"] >= c["min_sharpness"]),
            ("quality", "noise", m["noise"] <= c["max_noise"]),
            ("setting", "link_consistency",
             m["link_consistency"] >= self.pre["min_link_consistency"]),
            ("setting", "lost_frac", m["lost_frac"] <= self.pre["max_lost_fraction"]),
            ("setting", "warp_error", m["warp_error"] <= c["max_warp_error"]),
            ("setting", "histogram_correlation",
             m["histogram_correlation"] >= c["min_histogram_correlation"]),
            ("subject", "exit_frac", m["exit_frac"] <= c["max_exit_fraction"]),
            ("subject", "unexplained_frac", m["unexplained_frac"] <= c["max_unexplained"]),
            ("subject", "subject_consistency",
             m["subject_consistency"] >= c["min_subject_consistency"]),
            ("motion", "motion_peak", m["motion_peak"] >= c["min_motion"]),
        ]  # fmt: skip
        failed = [f"{check}:{name}" for check, name, ok in checks if not ok]
        passed = {check: all(ok for c2, _, ok in checks if c2 == check) for check, _, _ in checks}
        setting_ok, motion_ok = passed["setting"], passed["motion"]
        subject_ok, quality_ok = passed["subject"], passed["quality"]
        reason = failed[0] if failed else "ok"
        category, before, after, geometry = self.categorise(m, img0)
        return Verdict(
            setting_ok=setting_ok,
            motion_ok=motion_ok,
            subject_ok=subject_ok,
            quality_ok=quality_ok,
            before=before,
            after=after,
            summary=f"{before} -> {after}",
            category=category,
            reason=reason,
            details=numbers | geometry,
        )
