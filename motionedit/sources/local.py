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

The tree is walked here rather than by ``glob.glob``, which follows a symlink loop such as
``sub/loop -> ..`` until the kernel refuses (40 levels: every file listed 41 times, and two
loops never finish) and lists a file reached through two links twice. The walk visits each
real folder once and gives each real file one id: that of the path through the fewest
symlinks, then the first in sorted order, so adding a link to a corpus renames nothing.
Every path the pattern selects gets an entry; one that cannot be fetched (a folder named
like a video, a broken link, a link out of the source's root folder, a pipe or device)
carries the reason, and becomes an error row of the manifest instead of vanishing.

Files are linked rather than copied by default because a local corpus can be large and the
fetch stage only needs a stable path inside its output folder; a hardlink survives the
source being renamed, a symlink works across filesystems, and a copy is the last resort.
Only files whose real path lies inside the glob's root folder are linked: a link to
``/etc`` or a home folder must not carry a private file into the results.
"""

from __future__ import annotations

import errno
import fnmatch
import heapq
import itertools
import logging
import os
import shutil
import stat
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from motionedit.sources.base import (
    VIDEO_SUFFIXES,
    FetchedVideo,
    digest,
    safe_filename,
    shard_of,
)

log = logging.getLogger(__name__)

GLOB_CHARS = set("*?[")


def _key(source: dict, field: str) -> str:
    return f"sources[name={source.get('name')}].{field}"


def shard_count(source: dict) -> int:
    return int(source.get("shards", 1))


def _fixed_parts(pattern: str) -> tuple[list[str], list[str]]:
    """(leading components without a wildcard, the rest) of a glob pattern."""
    parts = list(Path(pattern).parts)
    n = 0
    while n < len(parts) - 1 and not GLOB_CHARS & set(parts[n]):
        n += 1
    return parts[:n], parts[n:]


def glob_base(pattern: str) -> Path:
    """The leading path components of a glob that contain no wildcard."""
    fixed, _ = _fixed_parts(pattern)
    return Path(*fixed) if fixed else Path(".")


@dataclass(frozen=True)
class LocalEntry:
    """One path the glob selects: a file to fetch, or why it cannot be fetched.

    ``key`` (NFC, relative to the glob's base) is the id inside the source and decides
    the shard; ``path`` is the path as matched (the row's origin); ``real`` is the
    resolved file that is linked, None when ``error`` says why there is none.
    """

    key: str
    path: Path
    real: Path | None
    error: str | None = None


def _component_matches(name: str, part: str) -> bool:
    """``glob`` semantics for one component: wildcards do not match hidden names."""
    if not GLOB_CHARS & set(part):
        return name == part
    if name.startswith(".") and not part.startswith("."):
        return False
    return fnmatch.fnmatchcase(name, part)


def _closure(parts: list[str], states: set[int]) -> frozenset[int]:
    """States reachable without consuming a name: ``**`` also matches no folder at all."""
    out: set[int] = set()
    todo = list(states)
    while todo:
        i = todo.pop()
        if i not in out:
            out.add(i)
            if i < len(parts) and parts[i] == "**":
                todo.append(i + 1)
    return frozenset(out)


def _step(parts: list[str], states: frozenset[int], name: str) -> frozenset[int]:
    """Pattern positions after matching one more path component ``name``."""
    nxt: set[int] = set()
    for i in states:
        if i >= len(parts):
            continue
        if parts[i] == "**":
            if not name.startswith("."):  # as glob.glob: ** does not enter hidden folders
                nxt.add(i)
        elif _component_matches(name, parts[i]):
            nxt.add(i + 1)
    return _closure(parts, nxt)


def _inside(real: str, root: str) -> bool:
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def _not_regular(mode: int) -> str | None:
    kinds = (
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    )
    for test, kind in kinds:
        if test(mode):
            return f"not a regular file ({kind})"
    return None if stat.S_ISREG(mode) else "not a regular file"


def _walk(base: Path, parts: list[str]):
    """Yield (symlinks crossed, components, path, real path or None, error) per match.

    Folders are expanded in order of (symlinks crossed, components), and each real
    folder once, so a loop ends at its first repetition and a folder reachable by
    several paths is listed under the best of them.
    """
    root = os.path.realpath(base)
    if not os.path.isdir(root):
        return
    tie = itertools.count()
    heap = [(0, (), next(tie), base, root, _closure(parts, {0}))]
    expanded: set[str] = set()
    while heap:
        links, comps, _, folder, real_folder, states = heapq.heappop(heap)
        if real_folder in expanded:
            continue
        expanded.add(real_folder)
        try:
            with os.scandir(folder) as it:
                children = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            log.warning("cannot list %s: %s", folder, exc.strerror or exc)
            continue
        for entry in children:
            nstates = _step(parts, states, entry.name)
            if not nstates:
                continue
            full = len(parts) in nstates
            deeper = any(i < len(parts) for i in nstates)
            path = folder / entry.name
            here = (links + entry.is_symlink(), (*comps, entry.name), path)
            if entry.is_symlink():
                try:
                    mode = os.stat(path).st_mode
                except OSError as exc:
                    if full:
                        loop = " (a loop of symlinks)" if exc.errno == errno.ELOOP else ""
                        yield *here, None, f"broken symlink to {os.readlink(path)}{loop}"
                    continue
                real = os.path.realpath(path)
            else:
                try:  # the folder listing's file types; a stat call only for the odd ones
                    if entry.is_dir(follow_symlinks=False):
                        mode = stat.S_IFDIR
                    elif entry.is_file(follow_symlinks=False):
                        mode = stat.S_IFREG
                    else:
                        mode = entry.stat(follow_symlinks=False).st_mode
                except OSError as exc:
                    if full:
                        yield *here, None, f"cannot read the file: {exc.strerror or exc}"
                    continue
                real = os.path.join(real_folder, entry.name)
            if stat.S_ISDIR(mode):
                if full and entry.name.lower().endswith(VIDEO_SUFFIXES):
                    yield *here, None, "a folder, not a video file"
                if deeper:
                    heapq.heappush(heap, (here[0], here[1], next(tie), path, real, nstates))
                continue
            if not full:
                continue
            if not _inside(real, root):
                why = f"resolves outside the source root {root} (to {real}); not linked"
                yield *here, None, why
            elif why := _not_regular(mode):
                yield *here, None, why
            else:
                yield *here, real, None


def list_entries(source: dict) -> list[LocalEntry]:
    """Every path the source's glob selects, one entry per real file, sorted by key.

    A file reached by several paths (links, a loop under ``**``) is listed once, under
    the path through the fewest symlinks, then the first in sorted order. Raises
    ValueError naming ``path_glob`` when it is missing or selects nothing, since an empty
    local source is always a configuration mistake (a typo, the wrong working folder).
    """
    pattern = source.get("path_glob")
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"{_key(source, 'path_glob')}: required, e.g. 'data/videos/**/*.mp4'")
    fixed, rest = _fixed_parts(pattern)
    base = Path(*fixed) if fixed else Path(".")
    best: dict[str, tuple] = {}  # real path (or the path, for an error) -> best match
    for links, comps, path, real, error in _walk(base, rest):
        ident = real if real is not None else f"error:{path}"
        found = (links, comps, path, real, error)
        if ident not in best or found[:2] < best[ident][:2]:
            best[ident] = found
    entries: dict[str, LocalEntry] = {}
    for _links, comps, path, real, error in sorted(best.values(), key=lambda f: f[:2]):
        key = unicodedata.normalize("NFC", "/".join(comps))
        if key in entries:
            log.warning("%s: same id as %s after NFC normalisation; skipped", path, key)
            continue
        entries[key] = LocalEntry(key, path, Path(real) if real else None, error)
    if not entries:
        raise ValueError(
            f"{_key(source, 'path_glob')}: no files match {pattern!r} "
            f"(relative paths are taken from the working directory {os.getcwd()}); "
            "check the pattern, and use '**' to search subfolders"
        )
    return [entries[k] for k in sorted(entries)]


def list_files(source: dict) -> list[tuple[str, Path]]:
    """(relative key, path) of every file the source can fetch, sorted by key.

    Raises ValueError like :func:`list_entries` when the glob selects nothing.
    """
    return [(e.key, e.path) for e in list_entries(source) if e.error is None]


def shard_fingerprints(source: dict) -> list[str]:
    """A digest per shard of its entries' keys, sizes and modification times.

    Size and mtime (not content) because the listing runs at every DAG build and a corpus
    can be terabytes; a file replaced in place gets a new mtime, which is what ``make``
    and Snakemake itself rely on too.
    """
    listed: list[list] = [[] for _ in range(shard_count(source))]
    for entry in list_entries(source):
        try:
            found = entry.real.stat() if entry.real else None
        except OSError:
            found = None
        facts = (found.st_size, found.st_mtime_ns) if found else (None, None)
        listed[shard_of(entry.key, len(listed))].append((entry.key, entry.error, *facts))
    return [digest(x) for x in listed]


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
    """Link (or copy) this shard's files into ``out_dir``, one row per entry, in sorted order.

    An entry that cannot be fetched is a row with its reason and no path.
    """
    name = source["name"]
    n_shards = shard_count(source)
    if not 0 <= shard < n_shards:
        raise ValueError(f"{_key(source, 'shards')}: shard {shard} out of range 0..{n_shards - 1}")
    link = bool(source.get("link", True))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fetched = []
    for entry in list_entries(source):
        if shard_of(entry.key, n_shards) != shard:
            continue
        video_id = f"{name}/{entry.key}"
        if entry.error or entry.real is None:
            fetched.append(FetchedVideo(video_id, None, str(entry.path), entry.error))
            continue
        dest = out_dir / safe_filename(entry.key)
        try:
            place_file(entry.real, dest, link=link)
        except OSError as exc:
            why = f"cannot read or place file: {exc.strerror or exc}"
            fetched.append(FetchedVideo(video_id, None, str(entry.path), why))
            continue
        fetched.append(FetchedVideo(video_id, str(dest), str(entry.path)))
    log.info("source %s shard %d: %d files", name, shard, len(fetched))
    return fetched
