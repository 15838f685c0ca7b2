"""Extracting the videos out of a downloaded tar or zip without trusting the archive.

Dataset archives come from strangers. A member named ``../../.bashrc`` or ``/etc/cron.d/x``,
a symlink that a later member writes through, a device node, or a 40 GB zip bomb must not
touch anything outside the output folder or fill the disk. So nothing is extracted with the
library's ``extractall``: every member is checked, only regular files matching the allow
patterns are copied, each under a flat name from :func:`safe_filename` (the archive's own
folder layout never reaches the filesystem), with per-member and total byte limits enforced
while copying, not just trusted from the header.

A refused member is a result row with the reason, not an exception, so a single hostile
member does not hide the good videos of the same archive from the manifest.
"""

from __future__ import annotations

import fnmatch
import os
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, NamedTuple

from motionedit.sources.base import VIDEO_SUFFIXES, safe_filename

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tbz", ".tar.xz", ".txz")
ZIP_SUFFIXES = (".zip",)
#: Member name used for a result about the archive's tail (truncated or corrupt after a point).
ARCHIVE_TAIL = "(rest of archive)"
NOT_ALLOWED = "not matched by allow_patterns"
CHUNK = 1 << 20
#: What reading a damaged archive raises, across tarfile, gzip/bz2/lzma and zipfile.
READ_ERRORS = (OSError, EOFError, tarfile.TarError, zipfile.BadZipFile, zlib.error)


class ArchiveError(Exception):
    """The archive as a whole cannot be read; the message is the reason."""


class MemberResult(NamedTuple):
    member: str
    path: str | None
    error: str | None


class _Member(NamedTuple):
    """What the checks need to know about a tar or zip member, whatever the format."""

    name: str
    size: int
    kind: str  # "file", "dir", "symlink", "hardlink", "device", "other"
    encrypted: bool
    handle: object  # the TarInfo / ZipInfo, to open the member's bytes


def archive_kind(path: str | Path) -> str | None:
    """``"tar"``, ``"zip"`` or None; by suffix first because content sniffing can misfire.

    ``zipfile.is_zipfile`` looks for an end-of-central-directory signature anywhere in the
    last 64 KiB, which a large video can contain by chance, so a video suffix wins over
    sniffing, and sniffing is only the fallback for names that say nothing.
    """
    name = Path(path).name.lower()
    if name.endswith(TAR_SUFFIXES):
        return "tar"
    if name.endswith(ZIP_SUFFIXES):
        return "zip"
    if name.endswith(VIDEO_SUFFIXES):
        return None
    try:
        if zipfile.is_zipfile(path):
            return "zip"
        if tarfile.is_tarfile(path):
            return "tar"
    except OSError:
        return None
    return None


def matches(name: str, patterns: Iterable[str]) -> bool:
    """Case-insensitive fnmatch: ``*.mp4`` must also take ``CLIP.MP4`` from a camera roll."""
    low = name.lower()
    return any(fnmatch.fnmatchcase(low, p.lower()) for p in patterns)


def unsafe_name_reason(name: str) -> str | None:
    """Why a member name could escape the output folder, or None when it cannot."""
    if not name or name in (".", "./"):
        return "empty member name"
    if "\x00" in name:
        return "NUL byte in member name"
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":" and name[0].isalpha()):
        return "absolute path"
    parts = name.replace("\\", "/").split("/")
    if ".." in parts:
        return "path traversal ('..' component)"
    return None


def extract_archive(
    archive: str | Path,
    out_dir: str | Path,
    *,
    allow_patterns: Iterable[str] = ("*.mp4",),
    max_member_bytes: int | None = 500_000_000,
    max_total_bytes: int | None = 20_000_000_000,
    report_unmatched: bool = True,
) -> list[MemberResult]:
    """Extract the allowed regular-file members of a tar/zip flat into ``out_dir``.

    Returns one result per non-directory member, in archive order; unmatched members are
    left out when ``report_unmatched`` is false (webdataset tars carry a ``.json`` and
    ``.txt`` per video, which are not failures). Raises :class:`ArchiveError` only when the
    archive cannot be opened at all.
    """
    archive = Path(archive)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    patterns = list(allow_patterns)
    kind = archive_kind(archive)
    if kind is None:
        raise ArchiveError(f"not a tar or zip archive: {archive.name}")
    results: list[MemberResult] = []
    seen: set[str] = set()
    seen_dest: set[str] = set()
    total = 0
    opener = _tar_members if kind == "tar" else _zip_members
    try:
        for member, open_member in opener(archive):
            if member.kind == "dir":
                continue
            reason = _refusal(member, patterns, max_member_bytes)
            dest = out_dir / safe_filename(member.name)
            if reason is None and member.name in seen:
                reason = "duplicate member name (first one kept)"
            if reason is None and dest.name in seen_dest:
                reason = f"output name {dest.name!r} already taken by another member"
            if (
                reason is None
                and max_total_bytes is not None
                and total + member.size > max_total_bytes
            ):
                reason = f"total size limit reached (max_total_bytes={max_total_bytes})"
            if reason is not None:
                if reason != NOT_ALLOWED or report_unmatched:
                    results.append(MemberResult(member.name, None, reason))
                continue
            seen.add(member.name)
            seen_dest.add(dest.name)
            try:
                n = _copy_member(open_member, member, dest, max_member_bytes)
            except _MemberFailed as exc:
                results.append(MemberResult(member.name, None, str(exc)))
                continue
            total += n
            results.append(MemberResult(member.name, str(dest), None))
    except _Unreadable as exc:
        raise ArchiveError(str(exc)) from None
    except READ_ERRORS as exc:
        results.append(MemberResult(ARCHIVE_TAIL, None, f"archive truncated or corrupt: {exc}"))
    return results


def _refusal(member: _Member, patterns: list[str], max_member_bytes: int | None) -> str | None:
    """Safety first, then the pattern: a hostile member is reported even if unmatched."""
    reason = unsafe_name_reason(member.name)
    if reason:
        return reason
    if member.kind == "symlink":
        return "symlink member"
    if member.kind == "hardlink":
        return "hardlink member"
    if member.kind == "device":
        return "device or special file member"
    if member.kind != "file":
        return "not a regular file"
    if not matches(member.name, patterns):
        return NOT_ALLOWED
    if member.encrypted:
        return "encrypted member"
    if max_member_bytes is not None and member.size > max_member_bytes:
        return f"member too large: {member.size} bytes > max_member_bytes={max_member_bytes}"
    return None


class _Unreadable(Exception):
    pass


class _MemberFailed(Exception):
    """One member could not be extracted; the message is its error row's reason."""


def _copy_member(
    open_member: Callable[[_Member], IO[bytes] | None],
    member: _Member,
    dest: Path,
    limit: int | None,
) -> int:
    """Copy through a ``.part`` name and rename, counting bytes against the limit.

    Headers can lie about sizes; the count while copying is what actually protects the disk.
    Read errors (a damaged member) and write errors (a full disk) get different reasons
    because the user fixes them differently.
    """
    part = dest.with_name(dest.name + ".part")
    n = 0
    try:
        try:
            src = open_member(member)
        except READ_ERRORS as exc:
            raise _MemberFailed(f"corrupt member: {exc}") from None
        if src is None:
            raise _MemberFailed("member has no data")
        with src, open(part, "wb") as fh:
            while True:
                try:
                    block = src.read(CHUNK)
                except READ_ERRORS as exc:
                    raise _MemberFailed(f"corrupt member: {exc}") from None
                if not block:
                    break
                n += len(block)
                if limit is not None and n > limit:
                    raise _MemberFailed(f"member too large: more than max_member_bytes={limit}")
                fh.write(block)
        os.replace(part, dest)
    except OSError as exc:
        raise _MemberFailed(f"could not write {dest.name}: {exc}") from None
    finally:
        part.unlink(missing_ok=True)
    return n


def _tar_members(path: Path) -> Iterator[tuple[_Member, Callable[[_Member], IO[bytes] | None]]]:
    opened = False
    try:
        with tarfile.open(path, "r:*") as tf:
            opened = True
            for info in tf:
                if info.isdir():
                    kind = "dir"
                elif info.issym():
                    kind = "symlink"
                elif info.islnk():
                    kind = "hardlink"
                elif info.isdev():
                    kind = "device"
                elif info.isreg():
                    kind = "file"
                else:
                    kind = "other"
                member = _Member(info.name, info.size, kind, False, info)
                yield member, lambda m, tf=tf: tf.extractfile(m.handle)
    except READ_ERRORS as exc:
        if opened:
            raise
        raise _Unreadable(f"cannot open tar archive {path.name}: {exc}") from None


def _zip_members(path: Path) -> Iterator[tuple[_Member, Callable[[_Member], IO[bytes] | None]]]:
    opened = False
    try:
        with zipfile.ZipFile(path) as zf:
            opened = True
            for info in zf.infolist():
                mode = info.external_attr >> 16
                unix = info.create_system == 3 and stat.S_IFMT(mode) != 0
                if info.is_dir():
                    kind = "dir"
                elif unix and stat.S_ISLNK(mode):
                    kind = "symlink"
                elif unix and (stat.S_ISCHR(mode) or stat.S_ISBLK(mode)):
                    kind = "device"
                elif unix and not stat.S_ISREG(mode):
                    kind = "other"
                else:
                    kind = "file"
                encrypted = bool(info.flag_bits & 1)
                member = _Member(info.filename, info.file_size, kind, encrypted, info)
                yield member, lambda m, zf=zf: zf.open(m.handle)
    except READ_ERRORS as exc:
        if opened:
            raise
        raise _Unreadable(f"cannot open zip archive {path.name}: {exc}") from None


__all__ = [
    "ARCHIVE_TAIL",
    "ArchiveError",
    "MemberResult",
    "NOT_ALLOWED",
    "archive_kind",
    "extract_archive",
    "matches",
    "unsafe_name_reason",
]
