"""What every source kind hands to the fetch stage."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")


@dataclass
class FetchedVideo:
    """One video a source produced for a shard, or the reason it could not.

    ``video_id`` is unique across the whole run (``{source name}/{name inside the source}``)
    because the train/bench split groups pairs by it: two videos sharing an id would be
    forced into one split, two ids for one video would leak it across splits.
    """

    video_id: str
    path: str | None
    origin: str
    error: str | None = None


def shard_of(key: str, n_shards: int) -> int:
    """Stable shard index of a key: independent of Python's hash seed and of list order."""
    digest = hashlib.sha1(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % n_shards


def digest(value: object) -> str:
    """A short digest of a JSON-serialisable value, for a shard's fingerprint."""
    return hashlib.sha256(json.dumps(value).encode("utf-8")).hexdigest()[:16]


def safe_filename(name: str, max_len: int = 80) -> str:
    """A file name that keeps the original readable but is safe on any filesystem.

    Non-ASCII letters are kept (they are legal on POSIX filesystems and users recognise
    them); path separators and control characters are not. A short hash of the original
    keeps two names that sanitise to the same string apart.
    """
    stem = Path(name).name
    suffix = Path(stem).suffix.lower()
    stem = stem[: -len(suffix)] if suffix else stem
    stem = unicodedata.normalize("NFC", stem)
    stem = re.sub(r"[\x00-\x1f/\\:*?\"<>|]+", "_", stem).strip(" .") or "video"
    tag = hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]
    return f"{stem[:max_len]}-{tag}{suffix}"
