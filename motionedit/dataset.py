"""The dataset stage: join the stage tables, split by source video, write train and bench.

The split is by video, never by pair: two windows of one video share subject, scene and
often the motion itself, so a video in both splits would let a model be tested on what it
was trained on. Videos are stratified by (source, dominant category) so the benchmark
covers each source and category about as the whole set does, and assignment is a
seeded hash of the video id, so adding videos does not reshuffle the ones already placed.

A video id is a name, not the footage: the same video saved under two names, reached
twice through a link, or re-encoded by whoever shared it has several ids. Such copies
are found first (equal file bytes, near-equal content signatures, or a frame image shared
by two videos) and each group of copies is split as one unit.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from motionedit import CATEGORIES
from motionedit.download import sha256_of
from motionedit.mllm import spending_summary
from motionedit.split_table import write_split_tables
from motionedit.tables import read_tables

SPLITS = ("train", "bench")
#: Prefilter numbers carried into the dataset rows and summarised in stats.json.
MOTION_COLUMNS = ("motion_mean", "motion_peak", "moving_frac", "camera_motion")
#: The prefilter's point trajectories, carried into the dataset rows.
TRACK_COLUMNS = ("tracks", "track_visible")
COLUMNS = [
    "id",
    "prompt",
    "category",
    "source",
    "video_id",
    "t0",
    "t1",
    *MOTION_COLUMNS,
    "width",
    "height",
    "frame0",
    "frame1",
    *TRACK_COLUMNS,
    "strip_times",
]


def _rank(seed: int, key: str) -> str:
    return hashlib.sha1(f"{seed}:{key}".encode()).hexdigest()


def split_videos(
    pairs: pd.DataFrame,
    bench_fraction: float,
    seed: int,
    groups: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Map every video id to "train" or "bench", copies of one video to the same split.

    ``groups`` maps a video id to its group's representative (see
    :func:`find_duplicates`); a video it does not name is a group of its own. Groups are
    the units of the split: a group's stratum is the source of its first video with pairs
    and the dominant category of all its pairs, and its place in the seeded order is a
    hash of the representative, so a video without copies is placed exactly as if no
    grouping existed, and adding unrelated videos moves no group. Each stratum gets its share of
    benchmark groups by the largest-remainder method so the total is
    round(bench_fraction * groups); with at least two groups and a fraction strictly
    between 0 and 1, both splits get at least one.
    """
    if pairs.empty:
        return {}
    groups = groups or {}
    unit_of = {vid: groups.get(vid, vid) for vid in pairs["video_id"].unique()}
    units = pairs.assign(_unit=pairs["video_id"].map(unit_of)).sort_values(
        "video_id", kind="stable"
    )
    dominant = (
        units.groupby("_unit")["category"]
        .agg(lambda s: sorted(Counter(s).items(), key=lambda kv: (-kv[1], str(kv[0])))[0][0])
        .to_dict()
    )
    source = units.groupby("_unit")["source"].first().to_dict()
    strata: dict[tuple[str, str], list[str]] = {}
    for unit in sorted(dominant):
        strata.setdefault((source[unit], str(dominant[unit])), []).append(unit)
    n = len(dominant)
    total = round(bench_fraction * n)
    if 0 < bench_fraction < 1 and n >= 2:
        total = min(max(total, 1), n - 1)
    quotas = {k: bench_fraction * len(v) for k, v in strata.items()}
    alloc = {k: math.floor(q) for k, q in quotas.items()}
    by_remainder = sorted(quotas, key=lambda k: (-(quotas[k] - alloc[k]), _rank(seed, str(k))))
    for k in by_remainder:
        if sum(alloc.values()) >= total:
            break
        if alloc[k] < len(strata[k]):
            alloc[k] += 1
    while sum(alloc.values()) > total:  # only when total was capped at n - 1
        k = max(alloc, key=lambda k: (alloc[k], _rank(seed, str(k))))
        alloc[k] -= 1
    placed = {}
    for k, members in strata.items():
        ordered = sorted(members, key=lambda u: _rank(seed, u))
        for i, unit in enumerate(ordered):
            placed[unit] = "bench" if i < alloc[k] else "train"
    return {vid: placed[unit] for vid, unit in sorted(unit_of.items())}


#: Two videos are copies when the hashes at every signature point are at most this many
#: bits apart (of 64). Re-encodes at another quality, size or frame rate land 0-6 bits
#: apart; unrelated frames of real footage differ in 20-40.
NEAR_BITS = 10
#: How many groups of copies stats.json lists by name.
LISTED_GROUPS = 50
#: Pairs compared at once in :func:`near_duplicate_pairs`: bounds the memory of a block
#: (about 10 bytes a pair).
_BLOCK_CELLS = 4_000_000


def _signature_arrays(signatures: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """(hashes as uint64, flat mask) of equally long signatures; "" is a flat frame."""
    hashes = np.array([[int(h, 16) if h else 0 for h in sig] for sig in signatures], np.uint64)
    flat = np.array([[not h for h in sig] for sig in signatures], bool)
    return hashes, flat


def near_duplicate_pairs(
    ids: list[str], signatures: list[list[str]], max_bits: int = NEAR_BITS
) -> list[tuple[str, str]]:
    """Pairs of ids whose signatures match at every point, sorted.

    A point matches when both frames have hashes at most ``max_bits`` apart, or both are
    flat (black, a fade); at least one point must have two real hashes, since two videos
    that are flat everywhere say nothing about each other. Signatures of other lengths
    are never compared. Every pair is compared on the middle point, vectorised in blocks
    (about 1 s for 20,000 videos, 25 s for 100,000, once per dataset build), and the
    few pairs that match there on all points.
    """
    out: list[tuple[str, str]] = []
    by_length: dict[int, list[int]] = {}
    for i, sig in enumerate(signatures):
        by_length.setdefault(len(sig), []).append(i)
    for length, members in sorted(by_length.items()):
        if length == 0 or len(members) < 2:
            continue
        hashes, flat = _signature_arrays([signatures[i] for i in members])
        pivot = length // 2
        h, f = hashes[:, pivot], flat[:, pivot]
        n = len(members)
        block = max(1, _BLOCK_CELLS // n)
        for start in range(0, n - 1, block):
            stop = min(start + block, n - 1)
            rest = slice(start + 1, n)
            close = np.bitwise_count(h[start:stop, None] ^ h[None, rest]) <= max_bits
            close &= f[start:stop, None] == f[None, rest]  # flat only matches flat
            rows, cols = np.nonzero(close)
            i, j = rows + start, cols + start + 1
            keep = j > i
            i, j = i[keep], j[keep]
            both = ~flat[i] & ~flat[j]
            near = np.bitwise_count(hashes[i] ^ hashes[j]) <= max_bits
            ok = np.where(both, near, flat[i] & flat[j]).all(axis=1) & both.any(axis=1)
            for a, b in zip(i[ok], j[ok], strict=True):
                out.append(tuple(sorted((ids[members[a]], ids[members[b]]))))
    return sorted(out)


def _signature(value: Any) -> list[str] | None:
    if isinstance(value, (list, tuple, np.ndarray)) and len(value):
        return [str(h) if h is not None else "" for h in value]
    return None


#: How copies are recognised, in the order they are looked for.
DUPLICATE_RULES = ("exact", "near", "frames")


@dataclass
class Duplicates:
    """Groups of video ids that hold the same footage, and how they were found."""

    #: Every video id seen -> the smallest id of its group.
    representative: dict[str, str] = field(default_factory=dict)
    #: Videos joined to a group, by the first rule that joined them: "exact" (equal
    #: sha256), "near" (signatures), "frames" (an input or target image shared).
    found: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DUPLICATE_RULES, 0))
    #: Representative -> rules that merged something into its group.
    rules: dict[str, set[str]] = field(default_factory=dict)
    #: The signature distance that was allowed (see :data:`NEAR_BITS`).
    max_bits: int = NEAR_BITS

    def groups(self) -> dict[str, list[str]]:
        """Representative -> sorted members, for groups of more than one video."""
        members: dict[str, list[str]] = {}
        for vid, rep in sorted(self.representative.items()):
            members.setdefault(rep, []).append(vid)
        return {rep: vids for rep, vids in members.items() if len(vids) > 1}

    def summary(self, assignment: Mapping[str, str], cap: int = LISTED_GROUPS) -> dict[str, Any]:
        """The ``duplicates`` section of stats.json: what was merged, and the groups by name
        (the first ``cap`` by representative) with the split each went to."""
        groups = self.groups()
        listed = []
        for rep, vids in list(groups.items())[:cap]:
            splits = sorted({assignment[v] for v in vids if v in assignment})
            listed.append(
                {
                    "videos": vids,
                    "found_by": [r for r in DUPLICATE_RULES if r in self.rules.get(rep, ())],
                    "split": splits[0] if len(splits) == 1 else (splits or None),
                }
            )
        return {
            "duplicate_videos": dict(self.found),
            "groups": len(groups),
            "videos_in_groups": sum(len(v) for v in groups.values()),
            "near_max_bits": self.max_bits,
            "listed": listed,
            "unlisted_groups": max(0, len(groups) - cap),
        }


class _UnionFind:
    """Groups whose root is always the smallest id, whatever the order of the unions."""

    def __init__(self, ids: Iterable[str]) -> None:
        self.parent = {i: i for i in ids}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: str, b: str) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        lo, hi = sorted((ra, rb))
        self.parent[hi] = lo
        return True


def _linked_sets(pairs: pd.DataFrame) -> list[list[str]]:
    """Sets of video ids that share an input or target image's bytes, sorted.

    Copies that the signature misses (a duplicated clip inside a longer video, a
    shared title frame) still give byte-identical frames; this is the check that no
    image of one split can reappear in the other.
    """
    digests: dict[str, str] = {}
    videos: dict[str, set[str]] = {}
    for r in pairs.itertuples(index=False):
        for path in (r.frame0, r.frame1):
            if not isinstance(path, str):
                continue
            if path not in digests:
                digests[path] = sha256_of(Path(path))
            videos.setdefault(digests[path], set()).add(r.video_id)
    return sorted(sorted(v) for v in videos.values() if len(v) > 1)


def find_duplicates(
    videos: pd.DataFrame, pairs: pd.DataFrame, max_bits: int = NEAR_BITS
) -> Duplicates:
    """Group the videos of the manifests and pairs that hold the same footage.

    ``videos`` is the manifest table (``video_id``, and ``sha256`` and ``signature``
    where the fetch stage wrote them); ``pairs`` has ``video_id``, ``frame0`` and
    ``frame1``. Rules are applied in the order exact, near, frames, and each video
    joined to a group is counted under the first rule that joined it.
    """
    ids = set(pairs["video_id"]) if len(pairs) else set()
    if "video_id" in videos:
        ids |= set(videos["video_id"])
    uf = _UnionFind(sorted(ids))
    dup = Duplicates(max_bits=max_bits)
    merges: list[tuple[str, str, str]] = []

    def join(members: list[str], rule: str) -> None:
        for other in members[1:]:
            if uf.union(members[0], other):
                dup.found[rule] += 1
                merges.append((members[0], other, rule))

    known = videos.drop_duplicates("video_id").sort_values("video_id") if len(videos) else videos
    if "sha256" in known:
        by_digest: dict[str, list[str]] = {}
        for vid, digest in zip(known["video_id"], known["sha256"], strict=True):
            if isinstance(digest, str) and digest:
                by_digest.setdefault(digest, []).append(vid)
        for members in sorted(m for m in by_digest.values() if len(m) > 1):
            join(members, "exact")
    if "signature" in known:
        sigs = {
            v: _signature(s) for v, s in zip(known["video_id"], known["signature"], strict=True)
        }
        sigs = {v: s for v, s in sigs.items() if s}
        for a, b in near_duplicate_pairs(list(sigs), list(sigs.values()), max_bits):
            join([a, b], "near")
    if len(pairs) and {"frame0", "frame1"} <= set(pairs.columns):
        for members in _linked_sets(pairs):
            join(members, "frames")
    dup.representative = {vid: uf.find(vid) for vid in sorted(ids)}
    for a, _, rule in merges:
        dup.rules.setdefault(uf.find(a), set()).add(rule)
    return dup


def collect_pairs(frames: list[str], prefilter: list[str], instructions: list[str]) -> pd.DataFrame:
    """One row per pair that has an instruction, with everything the dataset needs."""
    ins = read_tables(instructions)
    ins = ins[ins["error"].isna() & ins["instruction"].notna()]
    fr = read_tables(frames)[
        ["pair_id", "t0", "t1", "frame0", "frame1", "width", "height", "strip_times"]
    ]
    pre = read_tables(prefilter)[["pair_id", *MOTION_COLUMNS, *TRACK_COLUMNS]]
    df = ins.merge(fr, on="pair_id", how="left").merge(pre, on="pair_id", how="left")
    df = df.rename(columns={"pair_id": "id", "instruction": "prompt"})
    return df[COLUMNS].sort_values("id", kind="stable").reset_index(drop=True)


def _copy_image(src: str, dst: Path, image_format: str) -> None:
    if image_format == "png" and src.endswith(".png"):
        shutil.copyfile(src, dst)
        return
    img = cv2.imdecode(np.fromfile(src, np.uint8), cv2.IMREAD_COLOR)
    cv2.imwrite(str(dst), img, [cv2.IMWRITE_JPEG_QUALITY, 95])


def _nested(value: Any) -> list:
    """Nested lists from what parquet gives back (numpy arrays of arrays)."""
    if isinstance(value, np.ndarray | list | tuple):
        return [_nested(v) for v in value]
    return value.item() if isinstance(value, np.generic) else value


def track_summary(dataset: pd.DataFrame) -> dict[str, Any]:
    """How many trajectories the pairs carry, how much of them is visible, how far they go.

    Length is each track's start-to-end distance over the input image's diagonal, the
    unit of every motion number here.
    """
    counts, lengths, visible = [], [], []
    for r in dataset.itertuples(index=False):
        pts = np.asarray(_nested(r.tracks), np.float64).reshape(-1, len(r.strip_times), 2)
        vis = np.asarray(_nested(r.track_visible), bool).reshape(pts.shape[:2])
        counts.append(len(pts))
        visible.extend(vis.mean(1).tolist())
        diag = float(np.hypot(r.width, r.height))
        lengths.extend((np.linalg.norm(pts[:, -1] - pts[:, 0], axis=1) / diag).tolist())

    return {
        "pairs": len(counts),
        "pairs_with_tracks": int(sum(c > 0 for c in counts)),
        "tracks": int(sum(counts)),
        "per_pair": quantiles(counts),
        "length": quantiles(lengths),
        "visible_fraction": quantiles(visible),
    }


def quantiles(values: Iterable[float]) -> dict[str, float]:
    """p10, p50, p90 and mean, rounded for stats.json; empty for no values."""
    v = np.asarray(list(values), np.float64)
    if not v.size:
        return {}
    qs = {
        k: round(float(np.quantile(v, p)), 6) for k, p in (("p10", 0.1), ("p50", 0.5), ("p90", 0.9))
    }
    return qs | {"mean": round(float(v.mean()), 6)}


def write_split(rows: pd.DataFrame, split_dir: Path, image_format: str) -> None:
    """The split's images, then its tables (motionedit/split_table.py)."""
    images = split_dir / "images"
    if images.exists():
        shutil.rmtree(images)
    images.mkdir(parents=True)
    ext = "png" if image_format == "png" else "jpg"
    records = []
    for r in rows.itertuples(index=False):
        rel = [f"images/{r.id}_input.{ext}", f"images/{r.id}_target.{ext}"]
        _copy_image(r.frame0, split_dir / rel[0], image_format)
        _copy_image(r.frame1, split_dir / rel[1], image_format)
        records.append(
            {
                "id": r.id,
                "prompt": r.prompt,
                "image": rel,
                "category": r.category,
                "source": r.source,
                "video_id": r.video_id,
                "t0": float(r.t0),
                "t1": float(r.t1),
                "motion_mean": round(float(r.motion_mean), 6),
                "motion_peak": round(float(r.motion_peak), 6),
                "tracks": _nested(r.tracks),
                "track_visible": _nested(r.track_visible),
                "track_times": [round(float(t) - float(r.t0), 6) for t in r.strip_times],
            }
        )
    write_split_tables(records, split_dir)


def _reason_key(text: Any) -> str:
    """Group error messages that differ only in numbers or names of files."""
    text = str(text)
    text = re.sub(r"\d+(\.\d+)?", "#", text)
    return text[:80]


# Histogram edges in image diagonals, doubling: pair motions span two orders of magnitude,
# from a hand that turns to a person who walks across the frame. The last bin is open.
MAGNITUDE_EDGES = (0.0, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32)


def motion_magnitude(dataset: pd.DataFrame) -> dict[str, Any]:
    """Mean input -> target motion and its histogram: the paper's dataset-difficulty number.

    Each pair's value is its mean flow magnitude in image diagonals (the prefilter's
    ``motion_mean``, from the configured flow backend). MotionEdit reports 0.19 against about
    0.03-0.07 for older editing datasets; the paper does not spell out its definition, so the
    number is comparable in trend, not digit for digit.
    """
    values = dataset["motion_mean"].astype(float).to_numpy()
    upper = (*MAGNITUDE_EDGES[1:], None)
    bins = np.searchsorted(MAGNITUDE_EDGES, values, side="right") - 1
    return {
        "mean": round(float(values.mean()), 6),
        "by_split": {
            s: round(float(dataset.loc[dataset["split"] == s, "motion_mean"].mean()), 6)
            for s in SPLITS
            if (dataset["split"] == s).any()
        },
        "histogram": [
            {"from": lo, "to": hi, "pairs": int((bins == i).sum())}
            for i, (lo, hi) in enumerate(zip(MAGNITUDE_EDGES, upper, strict=True))
        ],
    }


def funnel(
    manifests: list[str],
    frames: list[str],
    prefilter: list[str],
    judge: list[str],
    instructions: list[str],
    dataset: pd.DataFrame,
) -> dict[str, Any]:
    """Counts per stage and per reason: where the videos and pairs went."""
    man, fr = read_tables(manifests), read_tables(frames)
    pre, jd, ins = read_tables(prefilter), read_tables(judge), read_tables(instructions)
    fr_pairs = fr[fr["pair_id"].notna()]

    def counts(series: pd.Series) -> dict[str, int]:
        return dict(sorted(Counter(series.map(_reason_key)).items()))

    def hist(df: pd.DataFrame) -> dict[str, int]:
        c = Counter(df["category"])
        return {k: int(c.get(k, 0)) for k in CATEGORIES}

    stats = {
        "videos": {
            "total": len(man),
            "usable": int(man["error"].isna().sum()),
            "errors": counts(man.loc[man["error"].notna(), "error"]),
            "by_source": {k: int(v) for k, v in sorted(Counter(man["source"]).items())},
        },
        "windows": {
            "videos_failed": counts(fr.loc[fr["pair_id"].isna(), "error"]),
            "total": len(fr_pairs),
            "extracted": int((fr_pairs["skip"].isna() & fr_pairs["error"].isna()).sum()),
            "skipped": counts(fr_pairs.loc[fr_pairs["skip"].notna(), "skip"]),
            "failed": counts(fr_pairs.loc[fr_pairs["error"].notna(), "error"]),
        },
        "prefilter": {
            "candidates": len(pre),
            "kept": int(pre["keep"].sum()) if len(pre) else 0,
            "reasons": dict(sorted(Counter(pre["reason"]).items())) if len(pre) else {},
        },
        "judge": {
            "judged": len(jd),
            "kept": int(jd["keep"].fillna(False).astype(bool).sum()) if len(jd) else 0,
            "reasons": dict(sorted(Counter(jd["reason"]).items())) if len(jd) else {},
        },
        "rewrite": {
            "instructions": int(ins["instruction"].notna().sum()) if len(ins) else 0,
            "errors": counts(ins.loc[ins["error"].notna(), "error"]) if len(ins) else {},
        },
        "mllm_spending": {"judge": spending_summary(jd), "rewrite": spending_summary(ins)},
        "dataset": {
            s: {
                "pairs": int((dataset["split"] == s).sum()),
                "videos": int(dataset.loc[dataset["split"] == s, "video_id"].nunique()),
            }
            for s in SPLITS
        },
        "categories": {s: hist(dataset[dataset["split"] == s]) for s in SPLITS}
        | {"all": hist(dataset)},
    }
    if len(dataset):
        # Motion magnitudes (normalised by the image diagonal) of the pairs in the dataset,
        # overall and per category: how large the edits are that models are asked to make.
        stats["motion_magnitude"] = motion_magnitude(dataset)
        stats["motion"] = {c: quantiles(dataset[c].astype(float)) for c in MOTION_COLUMNS}
        stats["motion_peak_by_category"] = {
            cat: quantiles(g["motion_peak"].astype(float))
            for cat, g in sorted(dataset.groupby("category"))
        }
        stats["trajectories"] = track_summary(dataset)
    return stats


def build_dataset(
    manifests: list[str],
    frames: list[str],
    prefilter: list[str],
    judge: list[str],
    instructions: list[str],
    out_dir: str | Path,
    cfg: dict[str, Any],
    seed: int,
    flow_backend: str | None = None,
) -> dict[str, Any]:
    out_dir = Path(out_dir)
    pairs = collect_pairs(frames, prefilter, instructions)
    duplicates = find_duplicates(read_tables(manifests), pairs)
    assignment = split_videos(pairs, cfg["bench_fraction"], seed, duplicates.representative)
    pairs["split"] = pairs["video_id"].map(assignment)
    for split in SPLITS:
        write_split(pairs[pairs["split"] == split], out_dir / split, cfg["image_format"])
    stats = funnel(manifests, frames, prefilter, judge, instructions, pairs)
    stats["duplicates"] = duplicates.summary(assignment)
    if flow_backend and "motion_magnitude" in stats:
        stats["motion_magnitude"]["flow"] = flow_backend
    (out_dir / "stats.json").write_text(json.dumps(stats, indent=2, sort_keys=False) + "\n")
    return stats
