"""Everything the results folder knows about one candidate pair, as a report and a figure.

``python -m motionedit.inspect PAIR_ID [--results results] [--png out.png | --no-png]``

Why a pair was kept or dropped is spread over one row in each stage's table (and a line in
the judge's and rewriter's raw logs); finding them by hand means knowing which source and
shard the pair came from and opening a handful of Parquet files. This gathers them, says
in its first line what became of the pair, and draws the motion the prefilter judged, with
the pair's point trajectories, so a threshold or a judge verdict can be questioned from one
command.

Only the results folder is read. The figure's flow is the prefilter's own, saved for the
pairs it kept; for the others it is chained again over the window's sampled frames with
the CPU DIS backend at the prefilter's working resolution, so it is quick and shows what
the prefilter saw (a run configured with UniMatch saw a finer flow).
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import math
import os
import sys
import textwrap
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["PairNotFound", "describe", "find_pair", "flow_figure", "main"]

#: Stage folders with one table per ``{src}/{shard}``, in pipeline order, keyed by section.
SHARD_STAGES = {
    "frames": "frames",
    "prefilter": "prefilter",
    "judge": "judge",
    "rewrite": "instructions",
}
SECTIONS = ("video", "frames", "prefilter", "judge", "rewrite", "dataset", "evaluation")
SPLITS = ("train", "bench")
#: Dataset columns that embed image bytes: never read, never printed.
IMAGE_COLUMNS = ("input_image", "target_image")
#: The prefilter's default working resolution (``flow.max_side``).
MAX_SIDE = 256
NO_ROW = "no row: the stage did not run or never saw this pair"
#: Raw-log strings longer than this are cut in the report; the file keeps them whole.
#: Prompts are the same for every pair, so they get a much shorter leash.
LONG_TEXT, LONG_PROMPT = 2000, 160


class PairNotFound(LookupError):
    """No stage table has the pair; carries where it looked and the closest known ids."""

    def __init__(self, pair_id: str, looked: list[str], suggestions: list[str]) -> None:
        self.pair_id, self.looked, self.suggestions = pair_id, looked, suggestions
        lines = [f"pair id {pair_id!r} not found. Looked in:"]
        lines += [f"  {where}" for where in looked]
        if suggestions:
            lines.append("Did you mean: " + ", ".join(suggestions) + "?")
        else:
            lines.append("No similar pair id is known there.")
        super().__init__("\n".join(lines))


# ----------------------------------------------------------------------------- finding


def _shard_tables(results: Path, stage: str) -> list[Path]:
    """The per-shard tables of a stage, without side tables (``0000.truth.parquet``) or
    half-written temporaries."""
    return sorted(
        p
        for p in (results / stage).glob("*/*.parquet")
        if "." not in p.stem and not p.name.startswith(".")
    )


def _count(results: Path, stage: str) -> str:
    n = len(_shard_tables(results, stage))
    return f"{n} table{'' if n == 1 else 's'}"


def _hinted_first(paths: list[Path], hint: tuple[str, str] | None) -> list[Path]:
    """Every stage of a shard writes ``{src}/{shard}``, so the shard another stage found
    the pair in is tried first; the rest are still searched if it is not there."""
    if hint is None:
        return paths
    return sorted(paths, key=lambda p: (p.parent.name, p.stem) != hint)


def _lookup(path: Path, key: str, value: str, drop: Iterable[str] = ()) -> dict[str, Any] | None:
    """The first row of ``path`` whose ``key`` is ``value``, or None (also for a table
    without that column or one that cannot be read).

    Only the schema is read for a table without the column, and the filter lets Parquet
    skip row groups whose min/max statistics cannot hold the id.
    """
    try:
        names = pq.read_schema(path).names
    except (OSError, pa.ArrowException):
        return None
    if key not in names:
        return None
    columns = [n for n in names if n not in set(drop)]
    try:
        table = pq.read_table(path, columns=columns, filters=[(key, "==", value)])
    except pa.ArrowException:
        # A column of nulls only (every video of the shard failed) has no type to compare.
        table = pq.read_table(path, columns=columns)
        table = table.filter(pa.array([v == value for v in table[key].to_pylist()]))
    return table.slice(0, 1).to_pylist()[0] if table.num_rows else None


def _search(
    paths: list[Path], key: str, value: str, hint: tuple[str, str] | None = None, **kw: Any
) -> dict[str, Any] | None:
    for path in _hinted_first(paths, hint):
        row = _lookup(path, key, value, **kw)
        if row is not None:
            return {"path": str(path), "row": row}
    return None


def _raw_line(path: Path, key: str, value: str) -> dict[str, Any] | None:
    """The JSON line of a stage's raw log that belongs to ``value`` (None if there is none)."""
    if not path.is_file():
        return None
    needle = json.dumps(value)
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            if needle not in line:  # cheap test before parsing every line of a big log
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if entry.get(key) == value:
                return entry
    return None


def _raw_path(table: str) -> Path:
    return Path(table).with_suffix(".raw.jsonl")


def _shard_of(found: dict[str, Any] | None) -> tuple[str, str] | None:
    if not found:
        return None
    path = Path(found["path"])
    return path.parent.name, path.stem


def _known_ids(results: Path) -> list[str]:
    ids: set[str] = set()
    for stage in ("frames", "prefilter"):
        for path in _shard_tables(results, stage):
            try:
                if "pair_id" in pq.read_schema(path).names:
                    column = pq.read_table(path, columns=["pair_id"])["pair_id"].to_pylist()
                    ids.update(v for v in column if v)
            except (OSError, pa.ArrowException):
                continue
    return sorted(ids)


def _suggest(pair_id: str, known: list[str]) -> list[str]:
    """Close matches, those of the same video (the id's part before ``_w``) first: a
    mistyped window index is the commonest slip and difflib alone ranks it low on long ids.
    """
    key = pair_id.rsplit("_w", 1)[0]
    same_video = [k for k in known if k.startswith(key + "_w")]
    close = difflib.get_close_matches(pair_id, known, n=5, cutoff=0.6)
    return list(dict.fromkeys(same_video[:3] + close))[:5]


def find_pair(results_dir: str | Path, pair_id: str) -> dict[str, Any]:
    """Every row and raw-log line the results folder holds for ``pair_id``.

    The record maps each of ``SECTIONS`` to what was found (None where nothing was):
    ``{"path", "row"}`` for a table row, plus ``"raw"`` for the judge and the rewriter,
    ``"truth"`` for a synthetic video, ``"split"`` and ``"images"`` for the dataset, and
    one entry per model for the evaluation. Raises PairNotFound when no table has it.
    """
    results = Path(results_dir)
    record: dict[str, Any] = {"pair_id": pair_id, "results": str(results)}
    hint = None
    for section, stage in SHARD_STAGES.items():
        found = _search(_shard_tables(results, stage), "pair_id", pair_id, hint)
        if found and section in ("judge", "rewrite"):
            found["raw"] = _raw_line(_raw_path(found["path"]), "pair_id", pair_id)
        record[section] = found
        hint = hint or _shard_of(found)

    record["dataset"] = None
    for split in SPLITS:
        table = results / "dataset" / split / "data.parquet"
        row = _lookup(table, "id", pair_id, drop=IMAGE_COLUMNS) if table.is_file() else None
        if row is not None:
            images = sorted(str(p) for p in (table.parent / "images").glob(f"{pair_id}_*"))
            record["dataset"] = {"path": str(table), "split": split, "row": row, "images": images}
            break

    found_anywhere = [record[s] for s in ("frames", "prefilter", "judge", "rewrite", "dataset")]
    if not any(found_anywhere):
        looked = [
            f"{results / stage / '*' / '*.parquet'} ({_count(results, stage)})"
            for stage in SHARD_STAGES.values()
        ]
        for split in SPLITS:
            table = results / "dataset" / split / "data.parquet"
            looked.append(f"{table} ({'present' if table.is_file() else 'absent'})")
        raise PairNotFound(pair_id, looked, _suggest(pair_id, _known_ids(results)))

    video_id = next((f["row"].get("video_id") for f in found_anywhere if f), None)
    record["video"] = None
    if video_id:
        video = _search(_shard_tables(results, "videos"), "video_id", video_id, hint)
        if video is not None:
            truth = Path(video["path"]).with_suffix(".truth.parquet")
            video["truth"] = _lookup(truth, "video_id", video_id) if truth.is_file() else None
        record["video"] = video

    record["evaluation"] = {}
    for scores in sorted((results / "eval").glob("*/scores.parquet")):
        row = _lookup(scores, "id", pair_id)
        if row is not None:
            raw = _raw_line(_raw_path(str(scores)), "id", pair_id)
            record["evaluation"][scores.parent.name] = {
                "path": str(scores),
                "row": row,
                "raw": raw,
            }
    return record


# ----------------------------------------------------------------------------- report


def _round(value: Any) -> Any:
    """Numbers to 4 significant digits, long strings cut, throughout a nested value."""
    if isinstance(value, dict):
        return {
            k: (_cut(v, LONG_PROMPT) if k == "prompt" and isinstance(v, str) else _round(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_round(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return float(f"{value:.4g}") if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return _cut(value, LONG_TEXT)
    return value


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def _json(value: Any, indent: int = 0, width: int = 100) -> str:
    """One line when it fits, else one key (or item) per line with compact children."""
    flat = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    if len(flat) + indent <= width or not isinstance(value, dict | list) or not value:
        return flat
    pad = " " * (indent + 2)
    if isinstance(value, dict):
        items = [f"{pad}{json.dumps(k)}: {_json(v, indent + 2, width)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    items = [f"{pad}{_json(v, indent + 2, width)}" for v in value]
    return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"


def _value(value: Any, indent: int) -> str:
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, str) and value.startswith(("{", "[")):
        # JSON kept as text in a column (the judge's details, a video's timeline)
        with contextlib.suppress(json.JSONDecodeError):
            value = json.loads(value)
    value = _round(value)
    if isinstance(value, dict | list):
        return _json(value, indent)
    return repr(value) if isinstance(value, float) else str(value)


def _fields(row: dict[str, Any], indent: int = 2, skip: Iterable[str] = ()) -> list[str]:
    keys = [k for k in row if k not in set(skip)]
    width = max((len(k) for k in keys), default=0)
    pad = " " * indent
    return [f"{pad}{k.ljust(width)}  {_value(row[k], indent + width + 2)}" for k in keys]


def _dropped(row: dict[str, Any] | None) -> bool:
    return bool(row) and row.get("keep") is not None and not row["keep"]


def fate(record: dict[str, Any]) -> str:
    """One line: how far the pair got and what stopped it."""
    frames, pre = record.get("frames"), record.get("prefilter")
    judge, rewrite, dataset = record.get("judge"), record.get("rewrite"), record.get("dataset")
    if dataset:
        row = dataset["row"]
        return f"kept: {dataset['split']} split, instruction {row.get('prompt')!r}"
    if frames and frames["row"].get("error"):
        return f"frames error: {frames['row']['error']}"
    if frames and frames["row"].get("skip"):
        return f"skipped by frames: {frames['row']['skip']}"
    if not pre:
        return "not prefiltered (no prefilter row)"
    if pre["row"].get("error"):
        return f"prefilter error: {pre['row']['error']}"
    if _dropped(pre["row"]):
        return f"dropped by prefilter: {pre['row'].get('reason')}"
    if not judge:
        return "not judged (no judge row, though the prefilter kept it)"
    if judge["row"].get("error"):
        return f"judge error: {judge['row']['error']}"
    if not judge["row"].get("keep"):
        return f"dropped by judge: {judge['row'].get('reason')}"
    if not rewrite:
        return "not rewritten (no instructions row, though the judge kept it)"
    if rewrite["row"].get("error") or not rewrite["row"].get("instruction"):
        return f"rewrite error: {rewrite['row'].get('error')}"
    return (
        f"instructed but in no dataset split: instruction {rewrite['row']['instruction']!r} "
        "(the dataset stage has not run since?)"
    )


#: The stages a pair passes through one after another, and how a missing row reads.
CHAIN = ("frames", "prefilter", "judge", "rewrite", "dataset")
ABSENT = {
    "prefilter": "not prefiltered",
    "judge": "not judged",
    "rewrite": "not rewritten",
    "dataset": "not in the dataset",
}


def _why_absent(section: str, record: dict[str, Any]) -> str:
    """A missing row explained by the nearest earlier stage that has one, when that stage
    stopped the pair: "not judged (prefilter dropped it: static)"."""
    if section not in ABSENT:
        return NO_ROW
    earlier = CHAIN[: CHAIN.index(section)]
    for upstream in reversed(earlier):
        found = record.get(upstream)
        if found is None:
            continue
        row = found["row"]
        if row.get("skip"):
            return f"{ABSENT[section]} ({upstream} skipped it: {row['skip']})"
        if row.get("error"):
            return f"{ABSENT[section]} ({upstream} error: {row['error']})"
        if _dropped(row):
            return f"{ABSENT[section]} ({upstream} dropped it: {row.get('reason')})"
        if upstream != earlier[-1]:
            return f"{ABSENT[section]} (no {earlier[-1]} row either)"
        break
    return NO_ROW


def _raw_fields(
    raw: dict[str, Any] | None, path: str, skip: Iterable[str], indent: int = 2
) -> list[str]:
    pad = " " * indent
    if raw is None and not Path(path).is_file():
        return [f"{pad}raw log: {path} does not exist"]
    if raw is None:
        return [f"{pad}raw log: no line for this pair in {path}"]
    return [f"{pad}raw log ({path}):", *_fields(raw, indent=indent + 2, skip=skip)]


def _section(name: str, record: dict[str, Any]) -> list[str]:
    found = record.get(name)
    if name == "evaluation":
        return _evaluation(record)
    if not found:
        return [f"== {name}", f"  {_why_absent(name, record)}"]
    # The judge's details are printed once, from its raw log, when that has them.
    skip = ["details"] if name == "judge" and "details" in (found.get("raw") or {}) else []
    split = f": {found['split']} split" if name == "dataset" else ""
    lines = [f"== {name}{split}  ({found['path']})", *_fields(found["row"], skip=skip)]
    if name == "dataset":
        lines.append("  images (embedded in the table too, not shown):")
        lines += [f"    {p}" for p in found["images"]] or ["    -"]
    if name == "video" and found.get("truth"):
        truth = Path(found["path"]).with_suffix(".truth.parquet")
        lines += [f"  synthetic truth ({truth}):", *_fields(found["truth"], 4, ["video_id"])]
    if name in ("judge", "rewrite"):
        same = [k for k in found["raw"] or {} if k not in ("calls", "details", "pair_id")]
        lines += _raw_fields(found.get("raw"), str(_raw_path(found["path"])), ["pair_id", *same])
    return lines


def _evaluation(record: dict[str, Any]) -> list[str]:
    scored, dataset = record.get("evaluation") or {}, record.get("dataset")
    lines = ["== evaluation"]
    if not scored:
        if dataset and dataset["split"] != "bench":
            why = f"not evaluated ({dataset['split']} split: only the benchmark is scored)"
        elif dataset:
            why = NO_ROW
        else:
            why = "not evaluated (not in the benchmark)"
        return [*lines, f"  {why}"]
    for model, found in scored.items():
        lines += [f"  model {model}  ({found['path']})", *_fields(found["row"], 4, ["id"])]
        if found["raw"] is not None:
            lines += _raw_fields(found["raw"], str(_raw_path(found["path"])), ["id"], 4)
    return lines


def describe(record: dict[str, Any]) -> str:
    """The report: the pair's fate, then one section per stage in pipeline order."""
    lines = [fate(record), f"pair {record['pair_id']}  (results folder: {record['results']})"]
    for name in SECTIONS:
        lines += ["", *_section(name, record)]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- figure


def _frame_path(path: str, results: Path) -> Path:
    """Frames tables store paths relative to the workflow's working directory
    (``results/frames/...``); the report may run elsewhere, or on a copied results folder."""
    candidates = [Path(path), results.parent / path]
    parts = Path(path).parts
    if parts and parts[0] == "results":
        candidates.append(results.joinpath(*parts[1:]))
    return next((p for p in candidates if p.is_file()), Path(path))


def _flow_colours(flow: np.ndarray, scale: float) -> np.ndarray:
    """Hue from the direction (image axes, y down), value from the magnitude over ``scale``."""
    from matplotlib.colors import hsv_to_rgb

    angle = np.arctan2(flow[..., 1], flow[..., 0])
    hsv = np.stack(
        [
            (angle / (2 * np.pi)) % 1.0,
            np.ones(flow.shape[:2]),
            np.clip(np.linalg.norm(flow, axis=-1) / scale, 0.0, 1.0),
        ],
        axis=-1,
    )
    return hsv_to_rgb(hsv)


def _wheel(size: int = 64) -> np.ndarray:
    """The key to the colours: a disc whose pixel at (x, y) has the flow (x, y) from its centre."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) - (size - 1) / 2
    flow = np.stack([xs, ys], axis=-1)
    rgba = np.ones((size, size, 4))
    rgba[..., :3] = _flow_colours(flow, size / 2)
    rgba[..., 3] = np.hypot(xs, ys) <= size / 2
    return rgba


def _title(record: dict[str, Any]) -> str:
    lines = [str(record["pair_id"])]
    pre, judge, rewrite = record.get("prefilter"), record.get("judge"), record.get("rewrite")
    verdicts = []
    if pre:
        verdicts.append(f"prefilter: keep={pre['row'].get('keep')}, {pre['row'].get('reason')}")
    else:
        verdicts.append("prefilter: no row")
    verdicts.append(
        f"judge: keep={judge['row'].get('keep')}, {judge['row'].get('reason')}"
        if judge
        else "judge: not judged"
    )
    lines.append("   |   ".join(verdicts))
    instruction = rewrite["row"].get("instruction") if rewrite else None
    if instruction:
        lines += textwrap.wrap(f"instruction: {instruction}", 110)
    return "\n".join(lines)


def _window(record: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """First and last frame at the working size, the motion between them, and how many
    frames it was chained over (2: the end frames only, for results written before the
    frames stage kept a strip)."""
    import cv2

    from motionedit.flow import make_flow
    from motionedit.flow.chain import chain_flows, load_chained
    from motionedit.frames import load_strip
    from motionedit.pairs import load_pair

    frames = record.get("frames")
    row = frames["row"] if frames else {}
    if not row.get("frame0") or not row.get("frame1"):
        raise ValueError("no frames to draw: the pair has no frames row with frame paths")
    results = Path(record["results"])
    dis = make_flow({"backend": "dis", "dis_preset": "ultrafast"})  # as the prefilter chains
    times = row.get("strip_times")
    try:
        if row.get("strip") and times is not None and len(times) >= 2:
            window = load_strip(_frame_path(row["strip"], results), len(times))
            pre = (record.get("prefilter") or {}).get("row") or {}
            saved = _frame_path(pre["motion"], results) if pre.get("motion") else None
            chained = load_chained(saved) if saved and saved.is_file() else None
            if chained is None or chained.displacement.shape[:2] != window[0].shape[:2]:
                chained = chain_flows(window, dis)
            return window[0], window[-1], chained.displacement, len(window)
        paths = [_frame_path(row[c], results) for c in ("frame0", "frame1")]
        first, last = load_pair(str(paths[0]), str(paths[1]), MAX_SIDE)
    except (cv2.error, ValueError) as exc:
        raise ValueError(f"cannot load the frames: {exc}") from None
    return first, last, make_flow({"backend": "dis"}).estimate(first[None], last[None])[0], 2


def _tracks(record: dict[str, Any], shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The prefilter's trajectories (stored in the full-size frame's pixels) at ``shape``."""
    from PIL import Image

    pre = (record.get("prefilter") or {}).get("row") or {}
    row = (record.get("frames") or {}).get("row") or {}
    tracks = pre.get("tracks")
    if tracks is None or not len(tracks) or not row.get("frame0"):
        return np.zeros((0, 0, 2)), np.zeros((0, 0), bool)
    with Image.open(_frame_path(row["frame0"], Path(record["results"]))) as im:
        width, height = im.size
    points = np.array([[list(p) for p in t] for t in tracks], np.float64)
    points = (points + 0.5) * (shape[1] / width, shape[0] / height) - 0.5
    visible = np.array([list(v) for v in pre.get("track_visible")], bool)
    return points, visible


def flow_figure(record: dict[str, Any], path: str | Path) -> Path:
    """Draw first frame with the trajectories | last frame | motion colours | magnitude.

    The motion is the flow followed through the window's sampled frames, as the prefilter
    measured it (zero where a point was lost), magnitudes over the image diagonal, the
    unit of the prefilter's ``motion_*`` numbers. Raises ValueError when the pair has no
    frames to draw (skipped window, frames deleted).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    first, last, flow, samples = _window(record)
    row = record["frames"]["row"]
    points, visible = _tracks(record, first.shape)
    h, w = flow.shape[:2]
    magnitude = np.linalg.norm(flow, axis=-1) / float(np.hypot(h, w))
    # The 99th percentile, not the maximum, sets full brightness: one wild pixel of DIS at
    # an edge would otherwise leave the real motion dark.
    scale = max(float(np.percentile(magnitude, 99)), 1e-6) * float(np.hypot(h, w))

    title = _title(record)
    # Tall enough for one panel of the frames' aspect and the title, no taller: a fixed
    # height leaves a landscape pair floating in white space.
    height = 3.1 * min(max(h / w, 0.4), 2.0) + 0.2 * title.count("\n") + 0.9
    fig = Figure(figsize=(14.0, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 4)
    t0, t1 = row.get("t0"), row.get("t1")
    through = f"over {samples} frames" if samples > 2 else "first to last frame"
    panels = [
        (first, f"first frame (t0 = {_value(t0, 0)} s), {len(points)} trajectories"),
        (last, f"last frame (t1 = {_value(t1, 0)} s)"),
        (_flow_colours(flow, scale), f"motion {through}: hue = direction"),
    ]
    for ax, (image, label) in zip(axes, panels, strict=False):
        ax.imshow(image, interpolation="nearest")
        ax.set_title(label, fontsize=9, parse_math=False)
    # Each trajectory as drawn over the frames: a line through its visible positions from
    # a dot where it starts, and a ring where it ends on the last frame.
    colours = [f"C{i % 10}" for i in range(len(points))]
    for track, seen, colour in zip(points, visible, colours, strict=True):
        axes[0].plot(track[seen, 0], track[seen, 1], "-", color=colour, lw=1.2)
        axes[0].plot(*track[0], "o", color=colour, ms=4, mec="white", mew=0.6)
        if seen[-1]:
            axes[1].plot(*track[-1], "o", mfc="none", mec=colour, ms=6, mew=1.4)
    for ax in axes[:2]:
        ax.set_xlim(-0.5, w - 0.5)
        ax.set_ylim(h - 0.5, -0.5)
    key = axes[2].inset_axes((0.8, 0.8, 0.19, 0.19))
    key.imshow(_wheel(), interpolation="bilinear")
    key.set_axis_off()
    heat = axes[3].imshow(magnitude, cmap="inferno", vmin=0.0, interpolation="nearest")
    axes[3].set_title("motion magnitude / image diagonal", fontsize=9, parse_math=False)
    # A colour bar inside the panel's box follows the image whatever its aspect; one that
    # takes space from the grid cell ends up far from a tall frame.
    bar = fig.colorbar(heat, cax=axes[3].inset_axes((1.04, 0.0, 0.06, 1.0)))
    bar.ax.tick_params(labelsize=8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=10, parse_math=False)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fig.savefig(tmp, format="png", metadata={"Software": None})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


# ----------------------------------------------------------------------------- command


def main(argv: list[str] | None = None) -> int:
    """Exit status 0 with a report, 2 for an unknown pair or results folder, 1 when a
    figure asked for with ``--png`` could not be drawn."""
    parser = argparse.ArgumentParser(
        prog="python -m motionedit.inspect",
        description="Everything the results folder knows about one pair id: why it was "
        "kept or dropped at each stage, and a figure of its frames and optical flow.",
    )
    parser.add_argument("pair_id", help="e.g. clip_0022-e005ee665c_w000")
    parser.add_argument("--results", default="results", help="the results folder (results)")
    png = parser.add_mutually_exclusive_group()
    png.add_argument("--png", help="where to write the figure (RESULTS/inspect/PAIR_ID.png)")
    png.add_argument("--no-png", action="store_true", help="print the report only")
    args = parser.parse_args(argv)

    results = Path(args.results)
    if not results.is_dir():
        print(f"no results folder at {results.resolve()} (see --results)", file=sys.stderr)
        return 2
    try:
        record = find_pair(results, args.pair_id)
    except PairNotFound as exc:
        print(exc, file=sys.stderr)
        return 2
    # The figure is drawn before the report is printed, so that piping the report into
    # `head` or `less` (which may close the pipe early) still leaves the figure written.
    status, note = 0, ""
    if not args.no_png:
        target = Path(args.png) if args.png else results / "inspect" / f"{args.pair_id}.png"
        try:
            flow_figure(record, target)
            note = f"\nfigure: {target}\n"
        except (OSError, ValueError) as exc:
            print(f"figure not written: {exc}", file=sys.stderr)
            status = 1 if args.png else 0
    try:
        sys.stdout.write(describe(record) + note)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader stopped early; Python would otherwise complain again at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return status


if __name__ == "__main__":
    sys.exit(main())
