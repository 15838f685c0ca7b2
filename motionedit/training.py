"""What supervised fine-tuning (``motionedit.sft``) and MotionNFT (``motionedit.nft``) share.

Both train an editor on the train split and both must survive a kill: a resumed run ends
with the weights of one that never stopped. That rests on the same pieces in each: the
split read the same way (frames decoded on demand, a video's pairs kept in one part), the
same seeded draws of batches and noise levels, and the same checkpoint, matched to its
settings by a digest, written atomically and carrying every random generator's state.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image

from motionedit.images import image_from_cell
from motionedit.models import EditorAdapter, ModelError

STATE_FILE = "state.pt"


@dataclass(frozen=True)
class Pair:
    """One training triplet; the frames stay encoded (PNG bytes or a path) until used.

    A full-resolution train split decoded at once would not fit in memory; decoded frames
    are kept in a bounded cache instead, which holds the whole split of a small run.
    """

    id: str
    prompt: str
    input_cell: Any
    target_cell: Any
    root: Path

    @property
    def input(self) -> Image.Image:
        return _decoded(self, "input_cell")

    @property
    def target(self) -> Image.Image:
        return _decoded(self, "target_cell")

    def __hash__(self) -> int:
        return hash((self.root, self.id))


@functools.lru_cache(maxsize=2048)
def _decoded(pair: Pair, which: str) -> Image.Image:
    return image_from_cell(getattr(pair, which), pair.root)


def video_part(video_id: str, parts: int) -> int:
    """The part (1..parts) a video belongs to: a hash of its id alone, so a video keeps its
    part whatever else is mined."""
    return int(hashlib.sha1(f"part:{video_id}".encode()).hexdigest(), 16) % parts + 1


def load_pairs(table: str | Path, videos: dict[str, int] | None = None) -> list[Pair]:
    """The (input, instruction, target) triplets of a dataset split, in id order; with
    ``videos`` ({part, of}) only the pairs of the videos in that part."""
    df = pd.read_parquet(table).sort_values("id")
    if videos:
        part = df["video_id"].map(lambda v: video_part(str(v), videos["of"]))
        df = df[part == videos["part"]]
    root = Path(table).parent
    return [Pair(r.id, r.prompt, r.input_image, r.target_image, root) for r in df.itertuples()]


def no_pairs_error(section: str, name: str, run: dict[str, Any], table: str | Path) -> ModelError:
    """The error for a run left without pairs, naming the key to change: an empty part of
    the videos wants fewer parts, an empty split wants more mining."""
    if run.get("videos"):
        return ModelError(
            f"{section}.{name}.videos: part {run['videos']['part']} of {run['videos']['of']} "
            f"of {table} has no pairs; use fewer parts or mine more videos"
        )
    return ModelError(f"{section}.{name}: the train split {table} is empty; mine more videos")


def sample_sigmas(
    n: int, mode: str, generator: torch.Generator, one_fraction: float = 0.0
) -> torch.Tensor:
    """Training noise levels: logit-normal (mass mid-way, as SD3/FLUX train) or uniform.

    ``one_fraction`` of them are set to 1, the level a one-step sampler starts from: an
    editor meant to edit in very few steps is trained hardest where it will be used.
    """
    if mode == "uniform":
        sigma = torch.rand(n, generator=generator)
    else:
        sigma = torch.sigmoid(torch.randn(n, generator=generator))
    if one_fraction > 0:
        sigma = torch.where(torch.rand(n, generator=generator) < one_fraction, 1.0, sigma)
    return sigma


def settings_digest(run: dict[str, Any], editor: dict[str, Any], pairs: list[Pair]) -> str:
    """What a checkpoint must match to be resumed from: settings and the training ids."""
    payload = json.dumps(
        {"run": run, "editor": editor, "ids": [p.id for p in pairs]}, sort_keys=True, default=str
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


class BucketSampler:
    """Seeded batches that never mix image sizes (each bucket is one edit size).

    Its whole state is one ``numpy`` generator, saved in checkpoints, so a resumed run
    draws the same batches the uninterrupted run would have.
    """

    def __init__(self, buckets: dict[tuple[int, int], list[int]], batch_size: int, seed: int):
        self.buckets = {k: v for k, v in sorted(buckets.items())}
        self.keys = list(self.buckets)
        self.weights = np.array([len(v) for v in self.buckets.values()], dtype=float)
        self.weights /= self.weights.sum()
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)

    def next(self) -> tuple[tuple[int, int], list[int]]:
        key = self.keys[int(self.rng.choice(len(self.keys), p=self.weights))]
        members = self.buckets[key]
        take = self.rng.choice(
            len(members), size=self.batch_size, replace=len(members) < self.batch_size
        )
        return key, [members[int(i)] for i in take]


def batches_by_size(adapter: EditorAdapter, pairs: list[Pair]) -> dict[tuple[int, int], list[int]]:
    buckets: dict[tuple[int, int], list[int]] = {}
    for i, p in enumerate(pairs):
        buckets.setdefault(adapter.edit_size(p.input), []).append(i)
    return buckets


class Checkpoints:
    """The resumable state of one run, written atomically (a kill leaves the last one whole)."""

    def __init__(self, directory: Path, digest: str):
        self.dir = directory
        self.digest = digest

    def load(self) -> dict[str, Any] | None:
        path = self.dir / STATE_FILE
        if not path.is_file():
            return None
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state.get("digest") != self.digest:
            return None
        return state

    def save(self, state: dict[str, Any]) -> None:
        atomic_save({**state, "digest": self.digest}, self.dir / STATE_FILE)


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` through a temporary file beside ``path`` and one ``os.replace``.

    A kill mid-write must leave the previous file or none under ``path``, never a truncated
    one that a resume would load or choke on. The rename is atomic only within one file
    system, hence the temporary file in the same folder; its name is fixed per target, so a
    killed write's leftover is overwritten by the next save instead of piling up (each
    target has one writer). The fsync puts the bytes on disk before the name points at
    them, so a crash of the machine, not just of the process, cannot leave an empty file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def rng_state(streams: dict[str, Any]) -> dict[str, Any]:
    """The state of each named random generator: a ``torch.Generator`` (torch's global one
    is ``torch.default_generator``), a ``numpy`` ``Generator``, or Python's ``random``."""
    state: dict[str, Any] = {}
    for name, stream in streams.items():
        if isinstance(stream, torch.Generator):
            state[name] = stream.get_state()
        elif isinstance(stream, np.random.Generator):
            state[name] = stream.bit_generator.state
        else:
            state[name] = stream.getstate()
    return state


def set_rng_state(state: dict[str, Any], streams: dict[str, Any]) -> None:
    """Put each named generator back in the state :func:`rng_state` saved for it."""
    for name, stream in streams.items():
        if isinstance(stream, torch.Generator):
            stream.set_state(state[name])
        elif isinstance(stream, np.random.Generator):
            stream.bit_generator.state = state[name]
        else:
            stream.setstate(state[name])
