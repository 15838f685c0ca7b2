"""Video sources: each kind turns one static shard of its configuration into local files.

Shards are known when the DAG is built (no checkpoints), so ``--until`` and ``--forcerun``
reach every later rule. A kind module provides::

    shard_count(source: dict) -> int
    fetch_shard(source: dict, shard: int, out_dir: Path) -> list[FetchedVideo]

and, when a shard reads more than its config (a folder, a list file)::

    shard_fingerprints(source: dict) -> list[str]

a digest per shard of what it would fetch, passed to the fetch rule as a parameter: Snakemake
reruns a job whose parameters changed, so a video added to a folder or a line added to a
list reruns only its own shard and what follows, not the whole corpus.

``fetch_shard`` never raises for one bad video: it returns a ``FetchedVideo`` with ``error``
set, so the manifest keeps a row for it and the run goes on.

A new kind is its module plus one line in :data:`KINDS` and its name in the schema's
``source.kind`` enum. Its ``shard_count`` reads the config only and the module that holds it
imports no imaging stack (see :data:`SHARD_COUNTERS`), because it runs at every DAG build.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from motionedit.sources.base import FetchedVideo

KINDS = {
    "synthetic": "motionedit.sources.synthetic",
    "local": "motionedit.sources.local",
    "url_list": "motionedit.sources.url_list",
    "huggingface": "motionedit.sources.huggingface",
}
#: Where a kind counts its shards, when not in its own module. Counting runs at every DAG
#: build, which may happen where the imaging stack is missing, so the module must import
#: none of it; the synthetic renderer does (OpenCV), its specifications do not.
SHARD_COUNTERS = {"synthetic": "motionedit.sources.synthetic_specs"}


def _known(source: dict) -> str:
    kind = source["kind"]
    if kind not in KINDS:
        raise ValueError(
            f"sources[{source.get('name')!r}].kind: unknown kind {kind!r}; "
            f"use one of {sorted(KINDS)}"
        )
    return kind


def kind_module(source: dict) -> ModuleType:
    return importlib.import_module(KINDS[_known(source)])


def shard_names(source: dict) -> list[str]:
    """Shard wildcards of a source, fixed at DAG-build time."""
    kind = _known(source)
    n = importlib.import_module(SHARD_COUNTERS.get(kind, KINDS[kind])).shard_count(source)
    return [f"{i:04d}" for i in range(n)]


def shard_fingerprints(source: dict) -> list[str]:
    """What each shard's fetch reads besides its config, as a digest ("" when nothing).

    All shards in one call: listing a folder or reading a list once per shard would cost
    shards x files at every DAG build.
    """
    kind = _known(source)
    module = kind_module(source) if kind not in SHARD_COUNTERS else None
    fingerprints = getattr(module, "shard_fingerprints", None)
    return fingerprints(source) if fingerprints else [""] * len(shard_names(source))


def fetch_shard(source: dict, shard: str, out_dir: Path) -> list[FetchedVideo]:
    return kind_module(source).fetch_shard(source, int(shard), Path(out_dir))


__all__ = [
    "FetchedVideo",
    "KINDS",
    "SHARD_COUNTERS",
    "fetch_shard",
    "kind_module",
    "shard_fingerprints",
    "shard_names",
]
