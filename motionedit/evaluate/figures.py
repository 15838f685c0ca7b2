"""The figures of the evaluation report, as PNG files.

Every figure is drawn on its own ``matplotlib.figure.Figure`` with the Agg canvas, never
through pyplot: the workflow renders figures from worker processes and tests in parallel,
and pyplot's global figure registry and backend switching would leak state between them.
Files are written without the "Software" PNG chunk (it carries the matplotlib version) and
through a temporary name plus ``os.replace``, so a rerun on the same inputs produces the
same bytes (Snakemake and reviewers see no spurious change) and a killed job never leaves a
truncated PNG that looks finished.

Free text from the data (instructions, run and model names, error messages) is drawn with
math parsing off, because a stray ``$`` in an instruction would otherwise be typeset as
TeX or raise. Long text is wrapped by ``textwrap`` and then measured with the Agg renderer
at the figures' dpi, so wrapped lines never run past their tile or the figure edge.
"""

from __future__ import annotations

import functools
import math
import numbers
import os
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import Affine2D, ScaledTranslation
from PIL import Image

__all__ = [
    "GridSample",
    "category_histogram",
    "dataset_funnel",
    "mas_curves",
    "metric_by_category",
    "reward_curves",
    "sample_grid",
]

#: Resolution of every figure: sharp on screen and in a PDF report, small enough to diff.
DPI = 150
_MUTED = "0.35"


# ----------------------------------------------------------------------------- helpers


def _figure(width: float, height: float, layout: str | None = "constrained") -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fig.savefig(tmp, format="png", dpi=fig.dpi, metadata={"Software": None})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _text(where: Any, x: float, y: float, text: str | list[str], **style: Any) -> None:
    """All text from the data goes through here, so none of it is parsed as mathtext."""
    where.text(x, y, text if isinstance(text, str) else "\n".join(text), parse_math=False, **style)


def _note(ax: Any, text: str, fontsize: float = 11) -> None:
    """Grey text in the middle of an axes that has nothing to show, saying why."""
    style = {"ha": "center", "va": "center", "color": _MUTED, "fontsize": fontsize}
    _text(ax, 0.5, 0.5, text, transform=ax.transAxes, **style)


def _message_figure(path: str | Path, title: str, message: str) -> None:
    """A figure that says why it is empty, so the report keeps its layout and says so."""
    fig = _figure(6.4, 2.0)
    fig.suptitle(title, fontsize=12, parse_math=False)
    _text(fig, 0.5, 0.42, message, ha="center", va="center", fontsize=11, color=_MUTED)
    _save(fig, path)


def _colours(n: int) -> list[tuple[float, ...]]:
    palette = colormaps["tab10" if n <= 10 else "tab20"].colors
    return [palette[i % len(palette)] for i in range(n)]


def _plain(text: Any) -> str:
    """Text for artists that cannot turn math parsing off (legend entries)."""
    return str(text).replace("$", r"\$")


@functools.cache
def _renderer() -> RendererAgg:
    return RendererAgg(1, 1, DPI)  # glyph widths are hinted per dpi: measure at the real one


def _width_pt(text: str, fontsize: float, **font: Any) -> float:
    prop = FontProperties(size=fontsize, **font)
    return _renderer().get_text_width_height_descent(text, prop, ismath=False)[0] * 72 / DPI


def _wrap(text: str, width_pt: float, fontsize: float, max_lines: int, **font: Any) -> list[str]:
    """Lines of ``text`` no wider than ``width_pt``, cut to ``max_lines`` with an ellipsis.

    ``textwrap`` counts characters, not points, so the width in characters starts at this
    text's own average and shrinks until every line measures short enough.
    """
    full = _width_pt(text, fontsize, **font)
    chars = max(1, int(len(text) * width_pt / full)) if full else 1
    while True:
        lines = textwrap.wrap(text, chars) or [""]
        if len(lines) > max_lines:  # textwrap's own placeholder can end up on a line alone
            lines = [*lines[: max_lines - 1], lines[max_lines - 1][: chars - 1].rstrip() + "…"]
        if chars == 1 or all(_width_pt(line, fontsize, **font) <= width_pt for line in lines):
            return lines
        chars -= 1


def _series(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """``step`` and ``value`` rows where both are numbers, one per step (the last logged)."""
    if frame is None or "step" not in frame or column not in frame:
        return pd.DataFrame({"step": [], "value": []}, dtype=float)
    out = frame[["step", column]].apply(pd.to_numeric, errors="coerce")
    out = out[np.isfinite(out.to_numpy(dtype=float)).all(axis=1)]
    out.columns = ["step", "value"]
    return out.drop_duplicates("step", keep="last").sort_values("step").reset_index(drop=True)


def _components(frame: pd.DataFrame) -> list[str]:
    """Reward components: ``reward_<name>`` but not the total, its std or a timing (``_s``)."""
    return [
        name
        for name in map(str, frame.columns)
        if name.startswith("reward_")
        and name not in ("reward_mean", "reward_std")
        and not name.endswith("_s")
        and pd.to_numeric(frame[name], errors="coerce").notna().any()
    ]


def _steps_axis(ax: Any) -> None:
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 2.5, 5, 10]))
    ax.set_xlabel("training step (optimiser updates)")
    ax.grid(alpha=0.3)


# ----------------------------------------------------------------------------- training


def mas_curves(runs: dict[str, pd.DataFrame], path: str | Path) -> None:
    """Held-out MAS over training, to see whether MotionNFT improves on its base editor.

    ``eval_mas`` is only logged every ``eval_every`` steps, so NaN rows are skipped rather
    than drawn as gaps. The step-0 value is the untouched base model; a dotted line at its
    level makes "better or worse than where we started" readable at every step.
    """
    title = "MotionEdit-Bench MAS during MotionNFT training"
    if not runs:
        return _message_figure(path, title, "no MotionNFT runs configured")
    fig = _figure(7.8, 4.2)
    ax = fig.add_subplot()
    handles: list[Any] = []
    bases: dict[float, list[Any]] = {}  # step-0 MAS, as printed, and the colours of its runs
    for (name, frame), colour in zip(runs.items(), _colours(len(runs)), strict=True):
        points = _series(frame, "eval_mas")
        if points.empty:
            label = _plain(f"{name} (no evaluation)")
            handles.append(Line2D([], [], color=colour, marker="o", ls="", alpha=0.5, label=label))
            continue
        x, y = points["step"], points["value"]
        handles += ax.plot(x, y, marker="o", ms=4.5, lw=1.6, color=colour, label=_plain(name))
        if (x == 0).any():
            bases.setdefault(round(float(y[x == 0].iloc[0]), 2), []).append(colour)
    for value, colours in bases.items():
        # The value sits in the right margin and the line is dotted, so neither hides a
        # curve; a base shared by several runs (the usual case) is drawn once, in grey.
        colour = colours[0] if len(colours) == 1 else _MUTED
        ax.axhline(value, color=colour, lw=1.0, ls=":", zorder=0)
        style = {"va": "center", "fontsize": 8.5, "color": colour}
        _text(ax, 1.01, value, f"base {value:.2f}", transform=ax.get_yaxis_transform(), **style)
    if bases:
        colour = colour if len(bases) == 1 else _MUTED
        handles.append(Line2D([], [], color=colour, lw=1.0, ls=":", label="base model (step 0)"))
    ax.margins(x=0.04, y=0.12)
    _steps_axis(ax)
    if not ax.lines:
        _note(ax, "no evaluation rows logged yet")
        ax.set(xticks=[], yticks=[])
    ax.set_ylabel("MAS on MotionEdit-Bench (0–100, higher is better)")
    ax.set_title(title, fontsize=12)
    fig.legend(handles=handles, loc="outside right upper", fontsize=9, title="run")
    _save(fig, path)


def reward_curves(runs: dict[str, pd.DataFrame], path: str | Path) -> None:
    """The training reward and what it is made of, per MotionNFT run.

    The total reward alone hides which term moves (motion, appearance, MLLM), so every
    ``reward_<name>`` component gets a thinner line in the run's colour, one line style per
    component. The lower panel shows how many prompt groups the group filter skipped: a step
    with most groups skipped learns from little data, which explains a flat reward.
    """
    title = "MotionNFT training reward"
    if not runs:
        return _message_figure(path, title, "no MotionNFT runs configured")
    fig = _figure(8.4, 5.6)
    ax, ax_skip = fig.subplots(2, 1, sharex=True, height_ratios=[3.0, 1.25])
    dashes = ["--", ":", "-.", (0, (5, 1.5, 1, 1.5, 1, 1.5)), (0, (1, 3)), (0, (8, 3))]
    styles: dict[str, Any] = {}
    handles: list[Any] = []
    for (name, frame), colour in zip(runs.items(), _colours(len(runs)), strict=True):
        mean = _series(frame, "reward_mean")
        if not mean.empty:
            std = _series(frame, "reward_std").set_index("step")["value"]
            spread = std.reindex(mean["step"]).fillna(0.0).to_numpy()
            x, y = mean["step"].to_numpy(), mean["value"].to_numpy()
            ax.fill_between(x, y - spread, y + spread, color=colour, alpha=0.18, lw=0)
            ax.plot(x, y, color=colour, lw=2.0)
        label = _plain(name if len(mean) else f"{name} (no training rows)")
        alpha = 1.0 if len(mean) else 0.5
        handles.append(Line2D([], [], color=colour, lw=2.2, alpha=alpha, label=label))
        for column in _components(frame):
            style = styles.setdefault(column, dashes[len(styles) % len(dashes)])
            part = _series(frame, column)
            ax.plot(part["step"], part["value"], color=colour, lw=1.0, ls=style, alpha=0.9)
        skipped = _series(frame, "filtered_fraction")
        if len(skipped):
            ax_skip.plot(skipped["step"], 100 * skipped["value"], color=colour, lw=1.3)
    if not ax.lines:
        _note(ax, "no training rows logged yet")
    if not ax_skip.lines:
        _note(ax_skip, "filtered_fraction not logged", fontsize=9)
    # One legend, runs first and the line-style key under its own heading, so the key sits
    # next to the reward panel it explains rather than next to the skip panel.
    grey = "0.25"
    key = [(Patch(color=grey, alpha=0.18, lw=0), Line2D([], [], color=grey, lw=2.0))]
    key += [Line2D([], [], color=grey, lw=1.0, ls=style) for style in styles.values()]
    key_labels = ["total reward, mean ± std"] + [
        _plain(f"{column.removeprefix('reward_')} component (mean)") for column in styles
    ]
    legend = fig.legend(
        [*handles, Line2D([], [], ls="none"), *key],
        [h.get_label() for h in handles] + ["line style"] + key_labels,
        loc="outside right upper",
        fontsize=8.5,
        title="run",
    )
    legend.get_texts()[len(handles)].set_fontweight("bold")
    ax.set_ylabel("reward per edit (higher is better)")
    ax.set_title(title, fontsize=12)
    ax.grid(alpha=0.3)
    ax_skip.set_ylim(-5, 105)
    ax_skip.set_yticks([0, 50, 100])
    ax_skip.set_ylabel("groups\nskipped (%)")
    _steps_axis(ax_skip)
    _save(fig, path)


# ----------------------------------------------------------------------------- samples


@dataclass
class GridSample:
    """One benchmark item of the qualitative grid, with each model's edit of it."""

    id: str
    instruction: str
    category: str | None
    input: str | Path
    target: str | Path
    edits: dict[str, str | Path | None] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def _missing(value: Any) -> bool:
    """None, NaN or pd.NA: the empty cells of a parquet column."""
    return value is None or (not isinstance(value, str | Path) and bool(pd.isna(value)))


def _load_image(path: str | Path | None) -> tuple[np.ndarray | None, str | None]:
    """The RGB pixels, or why there are none: the grid must render whatever is broken."""
    if _missing(path):
        return None, "no image"
    file = Path(path)
    if not file.is_file():
        return None, f"file not found: {file.name}"
    try:
        with Image.open(file) as image:
            return np.asarray(image.convert("RGB")), None
    except Exception as exc:  # any decoder failure is shown in the tile, not raised
        reason = str(exc).replace(str(file), file.name)  # the folder only costs tile space
        return None, f"unreadable image: {type(exc).__name__}: {reason}"


def _score_lines(label: str, width_pt: float) -> list[str]:
    """A score label broken only at its `` | `` separators, keeping "MAS 81.2" together."""
    glued = label.replace(" ", "\xa0").replace("\xa0|\xa0", " | ")  # no-break spaces
    return [line.strip(" |") for line in _wrap(glued, width_pt, 7.5, 2)] if label else []


def _tile(sample: GridSample, column: str) -> tuple[np.ndarray | None, str | None]:
    """A tile's pixels, or why it has none; the model's own error says more than ours."""
    if column in ("input", "target"):
        return _load_image(getattr(sample, column))
    pixels, problem = _load_image(sample.edits[column]) if column in sample.edits else (None, "")
    given = str(sample.errors.get(column) or "").strip()
    return pixels, given or problem or "no edit from this model"


#: Grid geometry, in inches.
_TILE, _GAP, _MARGIN = 1.55, 0.1, 0.2


def sample_grid(samples: list[GridSample], models: list[str], path: str | Path) -> None:
    """Input, target and every model's edit side by side, one benchmark item per row.

    Every tile has the same display size whatever the image size, because models edit at
    their own resolution (64x64 next to a 256x256 input) and a reader compares the content,
    not the pixel count; the pixel size is printed under the tile instead. Images smaller
    than their tile are drawn with nearest-neighbour interpolation so single pixels stay
    visible. A missing or unreadable edit becomes a grey tile with the reason, so one
    failed model never hides the others' results.
    """
    if not samples:
        return _message_figure(path, "MotionEdit-Bench samples", "no samples to show")
    columns = ["input", "target", *models]
    left = [_MARGIN + k * (_TILE + _GAP) for k in range(len(columns))]
    width = 2 * _MARGIN + len(columns) * _TILE + (len(columns) - 1) * _GAP
    line_pt, tile_pt = (width - 2 * _MARGIN) * 72, _TILE * 72 - 4
    fig = _figure(width, 1.0, layout=None)  # its height is known once every row is laid out
    # Inches from the top left, resolved at drawing time, when the height is final.
    from_top = Affine2D().scale(1, -1) + fig.dpi_scale_trans
    from_top += ScaledTranslation(0, 1, fig.transFigure)

    def put(x: float, y: float, lines: list[str], fontsize: float = 9.0, **style: Any) -> float:
        """Lines of text at (``x``, ``y``) inches; the height they take, in inches."""
        style = {"va": "top", "linespacing": 1.1, **style}
        _text(fig, x, y, lines, transform=from_top, fontsize=fontsize, **style)
        return len(lines) * fontsize * 1.3 / 72

    heads = [_wrap(c, tile_pt, 9.0, 2, weight="bold") for c in columns]
    y = 0.14 + max(len(h) for h in heads) * 9.0 * 1.3 / 72
    for k, lines in enumerate(heads):
        # "baseline", because "bottom" would lift names with a descender ("target")
        put(left[k] + _TILE / 2, y - 0.09, lines, ha="center", va="baseline", weight="bold")
    tiles = []  # each tile's axes and its top left corner: placed once the height is known
    for r, sample in enumerate(samples):
        if r:
            line = Line2D([_MARGIN, width - _MARGIN], [y, y], color="0.8", lw=0.8)
            fig.add_artist(line).set_transform(from_top)
        category = None if _missing(sample.category) else str(sample.category).strip()
        title = f"{sample.id} · {category}" if category else str(sample.id)
        title = _wrap(title, line_pt, 9.0, 2, weight="bold")
        y += 0.06 + put(_MARGIN, y + 0.06, title, weight="bold")
        instruction = " ".join(str(sample.instruction or "").split()) or "(no instruction)"
        instruction = _wrap(f"“{instruction}”", line_pt, 9.0, 3, style="italic")
        y += 0.04 + put(_MARGIN, y, instruction, style="italic")
        below = 0.0
        for k, column in enumerate(columns):
            pixels, problem = _tile(sample, column)
            ax = fig.add_axes((0, 0, 1, 1))
            tiles.append((ax, left[k], y))
            _draw_tile(ax, pixels, problem)
            # The score label first, then the pixel size in grey: it explains why a tile
            # looks blocky without competing with the score for attention.
            x, under = left[k] + _TILE / 2, y + _TILE + 0.04
            style = {"ha": "center", "fontsize": 7.5, "linespacing": 1.15}
            h = put(x, under, _score_lines(str(sample.labels.get(column) or ""), tile_pt), **style)
            size = [] if pixels is None else [f"{pixels.shape[1]}×{pixels.shape[0]} px"]
            below = max(below, h + put(x, under + h, size, color=_MUTED, **style))
        y += _TILE + 0.13 + below
    height = y + _MARGIN
    fig.set_size_inches(width, height)
    fig.set_dpi(min(DPI, 60_000 / height))  # Agg refuses images above 2**16 pixels a side
    for ax, x, top in tiles:
        ax.set_position((x / width, 1 - (top + _TILE) / height, _TILE / width, _TILE / height))
        for image in ax.images:  # enlarged by whole pixels, smoothed when shrunk
            small = max(image.get_size()) <= _TILE * fig.dpi
            image.set_interpolation("nearest" if small else "antialiased")
    _save(fig, path)


def _draw_tile(ax: Any, pixels: np.ndarray | None, problem: str | None) -> None:
    """One square tile: the image letterboxed in it, or a grey box with the reason."""
    ax.set(xticks=[], yticks=[])
    ax.spines[:].set_color("0.75")
    ax.spines[:].set_linewidth(0.6)
    if pixels is None:
        ax.set_facecolor("0.82")
        lines = _wrap(problem or "no image", _TILE * 72 - 12, 7.0, 6)
        style = {"ha": "center", "va": "center", "color": "0.15", "linespacing": 1.15}
        _text(ax, 0.5, 0.5, lines, fontsize=7.0, **style)
        return
    ax.set_facecolor("0.95")
    h, w = pixels.shape[:2]
    half_w, half_h = (0.5, 0.5 * h / w) if w >= h else (0.5 * w / h, 0.5)
    box = (0.5 - half_w, 0.5 + half_w, 0.5 - half_h, 0.5 + half_h)
    ax.imshow(pixels, extent=box, aspect="auto")
    ax.set(xlim=(0, 1), ylim=(0, 1))


# ----------------------------------------------------------------------------- dataset


def _number(stats: Any, *keys: str) -> float | None:
    """The number under ``keys``, or None where a stage did not run or wrote no number."""
    node = functools.reduce(lambda n, k: n.get(k) if isinstance(n, dict) else None, keys, stats)
    real = isinstance(node, numbers.Real) and not isinstance(node, bool) and math.isfinite(node)
    return float(node) if real else None


def _reasons(stats: dict, stage: str) -> list[tuple[str, float]]:
    """Why a stage dropped candidates, most frequent first ("ok" counts the kept ones)."""
    node = stats.get(stage)
    reasons = node.get("reasons") if isinstance(node, dict) else None
    keys = [k for k in reasons if k != "ok"] if isinstance(reasons, dict) else []
    counts = [(str(k), n) for k in keys if (n := _number(reasons, k)) is not None]
    return sorted(counts, key=lambda kv: (-kv[1], kv[0]))


def _percent(kept: float, of: float | None) -> str:
    return f"  ({100 * kept / of:.0f}% of {of:,.0f})" if of else ""


def _bar_rows(ax: Any, title: str, xlabel: str, rows: list, room: float, key: dict) -> None:
    """Horizontal bars, top to bottom, each of stacked (count, colour) parts with a note
    after it; ``room`` leaves space right of the longest bar for its note. The key of the
    colours sits above the panel, beside its title, where it can cover no bar or note."""
    widest = max((sum(n for n, _ in parts) for _, parts, _ in rows), default=0.0) or 1.0
    for y, (_, parts, note) in enumerate(rows):
        left = 0.0
        for count, colour in parts:
            ax.barh(y, count, left=left, color=colour, height=0.65)
            left += count
        ax.text(left + widest * 0.01, y, note, va="center", fontsize=9)
    ax.set_yticks(range(len(rows)), [label for label, _, _ in rows], parse_math=False)
    if rows:
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_xlim(0, widest * room)
    else:
        _note(ax, f"no {title} recorded", fontsize=10)
    if key:
        style = {"loc": "lower right", "bbox_to_anchor": (1, 1), "frameon": False, "fontsize": 8.5}
        ax.legend([Patch(color=c) for c in key.values()], list(key), ncols=len(key), **style)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10, loc="left")
    ax.grid(axis="x", alpha=0.3)


def dataset_funnel(stats: dict, path: str | Path) -> None:
    """How the mined dataset shrinks from videos to pairs, and why candidates were dropped.

    The percentages are relative to the stage that fed each filter (its candidates), so a
    reader sees at once which filter is the bottleneck; the reason panel then says what it
    rejected. Sections missing from ``stats.json`` (a stage that did not run) are left out.
    """
    stats = stats if isinstance(stats, dict) else {}
    count = functools.partial(_number, stats)
    total, usable = count("videos", "total"), count("videos", "usable")
    windows = count("windows", "extracted")
    windows = count("windows", "total") if windows is None else windows
    kept, judged = count("prefilter", "kept"), count("judge", "kept")
    stages = [  # name, count, and the count it is a share of
        ("videos", usable if total is None else total, None),
        ("usable videos", None if usable == total else usable, total),
        ("clip windows", windows, None),
        ("prefilter kept", kept, count("prefilter", "candidates") or windows),
        ("judge kept", judged, count("judge", "judged") or kept),
    ]
    rows = [
        (name, [(n, "#4c72b0")], f"{n:,.0f}{_percent(n, of)}")
        for name, n, of in stages
        if n is not None
    ]
    pairs = {split: count("dataset", split, "pairs") for split in ("train", "bench")}
    colours = {"train pairs": "#55a868", "bench pairs": "#dd8452"}
    if any(n is not None for n in pairs.values()):
        parts = [(n or 0.0, c) for n, c in zip(pairs.values(), colours.values(), strict=True)]
        note = " + ".join(f"{n:,.0f} {split}" for split, n in pairs.items() if n is not None)
        if judged is not None and sum(n for n, _ in parts) != judged:  # lost after the judge
            note += _percent(sum(n for n, _ in parts), judged)
        rows.append(("pairs (train + bench)", parts, note))
    why = {"prefilter": "#c44e52", "judge": "#8172b3"}
    reasons = [
        (reason, [(n, colour)], f"{n:,.0f}")
        for stage, colour in why.items()
        for reason, n in _reasons(stats, stage)
    ]
    title = "MotionEdit dataset funnel"
    if not rows and not reasons:
        return _message_figure(path, title, "no dataset statistics recorded")

    fig = _figure(8.4, 2.3 + 0.32 * (len(rows) + max(len(reasons), 1)))
    heights = [max(len(rows), 1) + 0.8, max(len(reasons), 1) + 0.8]
    ax, ax_why = fig.subplots(2, 1, height_ratios=heights)
    fig.suptitle(title, fontsize=12)
    xlabel = "count (videos, clip windows or pairs)"
    has_pairs = rows and rows[-1][0].startswith("pairs")
    _bar_rows(ax, "stage counts", xlabel, rows, 1.55, colours if has_pairs else {})
    used = {f"dropped by the {s}": c for s, c in why.items() if _reasons(stats, s)}
    _bar_rows(ax_why, "drop reasons", "candidates dropped", reasons, 1.35, used)
    _save(fig, path)


def _category_order(values: Iterable[str], counts: dict[str, float] | None = None) -> list[str]:
    """Categories by count (first seen without counts), then "unknown", then the summary
    rows ("all", "overall"...), which would otherwise dwarf or hide among the others."""
    unique = list(dict.fromkeys(values))
    summary = [c for c in unique if c.lower() in ("all", "overall", "total", "mean")]
    rest = [c for c in unique if c not in summary and c != "unknown"]
    if counts is not None:
        rest.sort(key=lambda c: (-counts.get(c, 0), c))
    return rest + (["unknown"] if "unknown" in unique else []) + summary


def _category_ticks(ax: Any, labels: list[list[str]], axes_width_in: float) -> None:
    """Category tick labels, slanted only when the widest would run into its neighbour."""
    slot_pt = 72 * max(axes_width_in, 1.0) / max(len(labels), 1)
    widest = max((_width_pt(line, 10.0) for lines in labels for line in lines), default=0.0)
    upright = widest <= 0.92 * slot_pt
    text = ["\n".join(lines) if upright else " ".join(lines) for lines in labels]
    slant = {} if upright else {"rotation": 30, "ha": "right", "rotation_mode": "anchor"}
    ax.set_xticks(range(len(labels)), text, parse_math=False, **slant)


def _clean_categories(series: pd.Series) -> pd.Series:
    text = series.astype("object").where(series.notna(), None)
    return text.map(lambda c: "unknown" if c is None or not str(c).strip() else str(c))


def _category_axes(
    n_cat: int, n_series: int, per_bar: float, per_category: float, height: float
) -> tuple[Figure, Any, list[np.ndarray], float]:
    """A figure wide enough for every category's bars and label, where each series' bars
    go (side by side within their category) and how wide they are."""
    fig = _figure(max(6.6, 2.4 + n_cat * (per_bar * n_series + per_category)), height)
    width = 0.8 / n_series
    xs = [np.arange(n_cat) + (k - (n_series - 1) / 2) * width for k in range(n_series)]
    return fig, fig.add_subplot(), xs, width


def _finish_categories(
    fig: Figure, path: str | Path, title: str, ticks: list[list[str]], legend: dict[str, Any]
) -> None:
    """The end both per-category bar charts share. A metric's label can be long, so it is
    wrapped to the axes as laid out: the title to their width (the legend sits beside it),
    the y label to their height (slanted category names take some of it)."""
    ax = fig.axes[0]
    _category_ticks(ax, ticks, fig.get_figwidth() - 2.5)  # about the axes' width
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    fig.legend(loc="outside right upper", fontsize=9, **legend)
    fig.draw_without_rendering()
    height_pt = ax.get_window_extent().height * 72 / fig.dpi
    ax.set_ylabel("\n".join(_wrap(ax.get_ylabel(), height_pt, 10, 2)))
    fig.draw_without_rendering()
    width_pt = ax.get_window_extent().width * 72 / fig.dpi
    ax.set_title("\n".join(_wrap(title, width_pt, 12, 2)), fontsize=12)
    _save(fig, path)


def category_histogram(table: pd.DataFrame, path: str | Path) -> None:
    """Pairs per motion category and split, to check both splits cover every category.

    Counts are printed on the bars because the bench split is an order of magnitude
    smaller than train and its bars would otherwise be unreadable.
    """
    title = "Motion categories per split"
    if table is None or len(table) == 0:
        return _message_figure(path, title, "no pairs to count")
    split = table["split"].astype(str) if "split" in table else pd.Series("all", table.index)
    category = table["category"] if "category" in table else pd.Series(None, table.index)
    counts = pd.crosstab(_clean_categories(category), split)
    splits = [s for s in ("train", "bench") if s in counts.columns]
    splits += sorted(s for s in counts.columns if s not in splits)
    order = _category_order(counts.index, counts.sum(axis=1).to_dict())
    counts = counts.loc[order, splits]

    fig, ax, xs, width = _category_axes(len(order), len(splits), 0.35, 0.6, 4.4)
    colours = {"train": "#4c72b0", "bench": "#dd8452"}
    extra = iter(_colours(len(splits) + 2)[2:])
    for x, split in zip(xs, splits, strict=True):
        colour = colours.get(split) or next(extra)
        label = _plain(f"{split} ({counts[split].sum():,} pairs)")
        bars = ax.bar(x, counts[split].to_numpy(), width, color=colour, label=label)
        ax.bar_label(bars, fontsize=8, padding=2)
    ax.set_ylim(0, max(1, counts.to_numpy().max()) * 1.15)
    ax.set(ylabel="pairs", xlabel="motion category")
    ticks = [[c.replace("_", " ")] for c in order]
    _finish_categories(fig, path, title, ticks, {"title": "split"})


# ----------------------------------------------------------------------------- scores


def metric_by_category(
    table: pd.DataFrame, metric: str, path: str | Path, label: str | None = None
) -> None:
    """A benchmark score per motion category and model, with its bootstrap interval.

    Categories of the bench are small (a handful of pairs each), so the 95% interval is
    drawn as a whisker on every bar: a gap between models inside the whiskers is noise.
    A NaN score is left out instead of drawn as a zero-height bar, which would read as a
    real score of 0; the sample count under each category says how much data is behind it.
    """
    label = label or metric
    title = f"{label} by motion category"
    needed = {"model", "category", metric}
    if table is None or len(table) == 0 or not needed <= set(table.columns):
        return _message_figure(path, title, f"no {label} values to show")
    columns = [metric, f"{metric}_lo", f"{metric}_hi", "n"]
    frame = table.reindex(columns=["model", "category", *columns])  # no interval: NaN bounds
    frame[columns] = frame[columns].apply(pd.to_numeric, errors="coerce")
    frame = frame.assign(
        category=_clean_categories(frame["category"]), model=frame["model"].astype(str)
    )
    if not frame[metric].notna().any():
        return _message_figure(path, title, f"no {label} values to show (all NaN)")
    models = list(dict.fromkeys(frame["model"]))
    order = _category_order(frame["category"])
    fig, ax, xs, width = _category_axes(len(order), len(models), 0.28, 0.4, 4.6)
    value_labels = len(order) * len(models) <= 48
    above = {"xytext": (0, 3), "ha": "center", "va": "bottom", "rotation": 90, "fontsize": 7}
    handles: list[Any] = []
    for x, model, colour in zip(xs, models, _colours(len(models)), strict=True):
        rows = frame[frame["model"] == model].drop_duplicates("category", keep="last")
        values, lo, hi = rows.set_index("category").reindex(order)[columns[:3]].to_numpy().T
        ok = np.isfinite(values)
        ax.bar(x[ok], values[ok], width * 0.92, color=colour)
        handles.append(Patch(color=colour, label=_plain(model)))
        whisker = ok & np.isfinite(lo) & np.isfinite(hi)
        if whisker.any():
            v = values[whisker]
            err = np.clip([v - lo[whisker], hi[whisker] - v], 0, None)
            ax.errorbar(x[whisker], v, err, fmt="none", ecolor="0.2", elinewidth=0.9, capsize=2.5)
        ends = np.where(whisker, np.fmax(hi, values), values)
        for xi, v, end in zip(x[ok], values[ok], ends[ok], strict=True) if value_labels else ():
            text = f"{v:.{0 if abs(v) >= 100 else 1 if abs(v) >= 10 else 2}f}"
            ax.annotate(text, (xi, max(end, 0.0)), textcoords="offset points", **above)
    if ax.collections:  # the whiskers
        handles.append(Line2D([], [], color="0.2", lw=0.9, marker="_", ms=6, mew=0.9))
        handles[-1].set_label("bootstrap 95%\ninterval")
    # Bars keep the axis at 0; the margin above leaves room for the rotated value labels.
    ax.margins(y=0.2 if value_labels else 0.08)
    ax.axhline(0, color="0.3", lw=0.8)
    ax.set(ylabel=label, xlabel="motion category (pairs scored)")
    ticks = []
    for category in order:
        n = frame.loc[frame["category"] == category, "n"]
        n = sorted({int(v) for v in n[np.isfinite(n)]})
        count = f"(n={n[0]})" if len(n) == 1 else f"(n={n[0]}–{n[-1]})" if n else None
        ticks.append([category.replace("_", " ")] + ([count] if count else []))
    _finish_categories(fig, path, title, ticks, {"handles": handles, "title": "model"})
