"""The ``local`` source: videos already on disk, selected with a recursive glob.

Configuration::

    - name: mine
      kind: local
      path_glob: data/videos/**/*.mp4   # relative to the working directory, or absolute
      shards: 4                         # default 1
      link: true                        # default true: hardlink/symlink instead of copying

Ids and shards come from the path *relative to the glob's fixed prefix* (``data/videos``
above), not from the absolute path, so moving the corpus folder or running from another
checkout keeps every video id and shard assignment, and with them the train/bench split.
The relative path is NFC-normalised first because macOS hands out decomposed (NFD) names
for the same file that Linux lists composed, and an id must not depend on the filesystem.

Files are linked rather than copied by default because a local corpus can be large and the
fetch stage only needs a stable path inside its output folder; a hardlink survives the
source being renamed, a symlink works across filesystems, and a copy is the last resort.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import unicodedata
from pathlib import Path

from motionedit.sources.base import FetchedVideo, safe_filename, shard_of

log = logging.getLogger(__name__)

GLOB_CHARS = set("*?[")


def _key(source: dict, field: str) -> str:
    return f"sources[name={source.get('name')}].{field}"


def shard_count(source: dict) -> int:
    return int(source.get("shards", 1))


def glob_base(pattern: str) -> Path:
    """The leading path components of a glob that contain no wildcard."""
    parts = Path(pattern).parts
    fixed: list[str] = []
    for part in parts[:-1]:
        if GLOB_CHARS & set(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def list_files(source: dict) -> list[tuple[str, Path]]:
    """(relative key, path) of every file the glob matches, sorted by key.

    Raises ValueError naming ``path_glob`` when it is missing or matches nothing, since an
    empty local source is always a configuration mistake (a typo, the wrong working folder).
    """
    pattern = source.get("path_glob")
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"{_key(source, 'path_glob')}: required, e.g. 'data/videos/**/*.mp4'")
    base = glob_base(pattern)
    found: dict[str, Path] = {}
    for hit in glob.glob(pattern, recursive=True):
        path = Path(hit)
        if not path.is_file():
            continue
        try:
            rel = path.relative_to(base).as_posix()
        except ValueError:
            rel = path.as_posix()
        rel = unicodedata.normalize("NFC", rel)
        found.setdefault(rel, path)
    if not found:
        raise ValueError(
            f"{_key(source, 'path_glob')}: no files match {pattern!r} "
            f"(relative paths are taken from the working directory {os.getcwd()}); "
            "check the pattern, and use '**' to search subfolders"
        )
    return sorted(found.items())


def place_file(src: Path, dest: Path, link: bool = True) -> str:
    """Put ``src`` at ``dest`` by hardlink, symlink or copy; return which one was used.

    A stale ``dest`` from an earlier run is replaced. The copy goes through a ``.part``
    name so an interrupted copy never looks like a complete video.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    src = src.resolve()
    if dest.is_symlink() or dest.exists():
        dest.unlink()
    if link:
        try:
            os.link(src, dest)
            return "hardlink"
        except OSError:
            pass
        try:
            dest.symlink_to(src)
            return "symlink"
        except OSError:
            pass
    part = dest.with_name(dest.name + ".part")
    try:
        shutil.copyfile(src, part)
        os.replace(part, dest)
    finally:
        part.unlink(missing_ok=True)
    return "copy"


def fetch_shard(source: dict, shard: int, out_dir: Path) -> list[FetchedVideo]:
    """Link (or copy) this shard's files into ``out_dir``, one row per file, in sorted order."""
    name = source["name"]
    n_shards = shard_count(source)
    if not 0 <= shard < n_shards:
        raise ValueError(f"{_key(source, 'shards')}: shard {shard} out of range 0..{n_shards - 1}")
    link = bool(source.get("link", True))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fetched = []
    for rel, path in list_files(source):
        if shard_of(rel, n_shards) != shard:
            continue
        video_id = f"{name}/{rel}"
        dest = out_dir / safe_filename(rel)
        try:
            place_file(path, dest, link=link)
        except OSError as exc:
            why = f"cannot read or place file: {exc.strerror or exc}"
            fetched.append(FetchedVideo(video_id, None, str(path), why))
            continue
        fetched.append(FetchedVideo(video_id, str(dest), str(path)))
    log.info("source %s shard %d: %d files", name, shard, len(fetched))
    return fetched
