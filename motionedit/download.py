"""Downloading one URL to one file, robustly enough for corpora of thousands of videos.

A corpus list is fetched once per shard job and a single flaky server must not sink the job,
so transient failures (connection drops, 429, 5xx) are retried with exponential backoff and
an interrupted transfer resumes from its ``.part`` file with an HTTP ``Range`` request rather
than starting over. Permanent failures (404, wrong checksum, a file over the size limit) are
not retried: they raise :class:`DownloadError` at once, with a message a user can act on,
which the caller stores in the video's error row.

The target only ever appears complete: bytes go to ``<target>.part`` and are renamed into
place after the size and optional sha256 checks pass, so a killed job never leaves a
truncated file under the final name (and its ``.part`` lets the next run resume).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import requests

from motionedit.retry_after import retry_after_s

log = logging.getLogger(__name__)

#: Client errors that can go away on their own; every other 4xx is final.
RETRY_4XX = frozenset({408, 425, 429})
CHUNK = 1 << 16  # small: a dropped connection loses at most one unwritten chunk
SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")


class DownloadError(Exception):
    """A URL that could not be downloaded; the message is the reason for the error row."""

    def __init__(self, message: str, *, status: int | None = None, attempts: int = 0):
        super().__init__(message)
        self.status = status
        self.attempts = attempts


class _Retry(Exception):
    """A failure worth another attempt; ``wait_s`` overrides the backoff (Retry-After)."""

    def __init__(self, message: str, wait_s: float | None = None):
        super().__init__(message)
        self.wait_s = wait_s


class _Restart(Exception):
    """The partial file cannot be continued; drop it and try again from byte 0."""


@dataclass
class DownloadResult:
    url: str
    path: Path
    bytes: int
    sha256: str
    attempts: int  # HTTP requests made, the successful one included
    resumed: bool  # whether any request continued a partial file with Range


def part_path(target: Path) -> Path:
    return target.with_name(target.name + ".part")


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _content_range(value: str | None) -> tuple[int, int | None] | None:
    """(first byte, total size or None) of a ``Content-Range: bytes a-b/total`` header."""
    if not value:
        return None
    m = re.match(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", value)
    if not m:
        return None
    total = None if m.group(3) == "*" else int(m.group(3))
    return int(m.group(1)), total


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)


def _too_large(size: int, max_bytes: int) -> DownloadError:
    return DownloadError(f"file too large: {size} bytes, limit is max_bytes={max_bytes}")


def download(
    url: str,
    target: str | Path,
    *,
    retries: int = 4,
    backoff_s: float = 1.0,
    timeout_s: float = 60.0,
    max_bytes: int | None = None,
    sha256: str | None = None,
    max_wait_s: float = 600.0,
    session: requests.Session | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> DownloadResult:
    """Download ``url`` to ``target``; raise :class:`DownloadError` with the reason on failure.

    ``retries`` is the number of extra attempts after the first; attempt ``k`` waits
    ``backoff_s * 2**k`` before retrying unless the server sent ``Retry-After`` (honoured,
    capped at ``max_wait_s`` so a hostile header cannot park the job). ``timeout_s`` bounds
    connecting and each read, not the whole transfer, so large files on slow links still work.
    """
    target = Path(target)
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise DownloadError(f"unsupported URL scheme {scheme or '(none)'!r}: only http and https")
    if sha256 is not None and not SHA256_RE.match(sha256):
        raise DownloadError(f"expected checksum is not a sha256 hex digest: {sha256!r}")
    expected = sha256.lower() if sha256 else None
    if target.is_file():
        # A target only ever appears complete (renamed from its .part), so an earlier
        # run's file is reused; with a checksum it must also still match.
        digest = sha256_of(target)
        if expected is None or digest == expected:
            return DownloadResult(url, target, target.stat().st_size, digest, 0, False)

    target.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(target)
    own_session = session is None
    sess = session or requests.Session()
    attempts = 0
    resumed = False
    clean_retry_used = False
    last_reason = "no attempt made"
    try:
        while True:
            attempts += 1
            offset = part.stat().st_size if part.exists() else 0
            try:
                used_range = _fetch_once(sess, url, part, offset, timeout_s, max_bytes)
            except _Restart as exc:
                log.info("%s: %s; restarting from byte 0", url, exc)
                _unlink(part)
                last_reason = str(exc)
                if attempts > retries:
                    break
                continue
            except _Retry as exc:
                last_reason = str(exc)
                if attempts > retries:
                    break
                wait = exc.wait_s if exc.wait_s is not None else backoff_s * 2 ** (attempts - 1)
                wait = min(max(wait, 0.0), max_wait_s)
                log.info("%s: %s; retry %d/%d in %.1fs", url, exc, attempts, retries, wait)
                sleep(wait)
                continue
            except DownloadError as exc:
                _unlink(part)  # final: nothing worth resuming later
                exc.attempts = attempts
                raise
            resumed = resumed or used_range
            digest = sha256_of(part)
            if expected and digest != expected:
                if used_range and not clean_retry_used:
                    # The kept prefix may be from an older version of the file: one clean try.
                    clean_retry_used = True
                    _unlink(part)
                    last_reason = "sha256 mismatch after resuming"
                    continue
                _unlink(part)
                raise DownloadError(
                    f"sha256 mismatch: expected {expected}, got {digest} (file deleted)",
                    attempts=attempts,
                )
            size = part.stat().st_size
            os.replace(part, target)
            return DownloadResult(url, target, size, digest, attempts, resumed)
    finally:
        if own_session:
            sess.close()
    raise DownloadError(f"{last_reason} (gave up after {attempts} attempts)", attempts=attempts)


def _fetch_once(
    sess: requests.Session,
    url: str,
    part: Path,
    offset: int,
    timeout_s: float,
    max_bytes: int | None,
) -> bool:
    """One request: append to (or rewrite) ``part``; return whether a Range resume was used.

    Returns only when the body arrived complete; otherwise raises ``_Retry`` (keep the
    partial bytes), ``_Restart`` (drop them) or ``DownloadError`` (give up).
    """
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        resp = sess.get(url, headers=headers, stream=True, timeout=(timeout_s, timeout_s))
    except requests.exceptions.InvalidURL as exc:
        raise DownloadError(f"invalid URL: {exc}") from None
    except requests.exceptions.RequestException as exc:
        raise _Retry(f"connection failed: {_short(exc)}") from None
    with resp:
        status = resp.status_code
        reason = f"HTTP {status} {resp.reason or ''}".rstrip()
        if status == 416 and offset:
            # Either the part is already whole, or it is longer than the file now is.
            cr = resp.headers.get("Content-Range", "")
            m = re.match(r"\s*bytes\s+\*/(\d+)", cr)
            if m and int(m.group(1)) == offset:
                return True
            raise _Restart("server refused to resume (416)")
        if status in RETRY_4XX or status >= 500:
            wait = retry_after_s(resp.headers.get("Retry-After"))
            raise _Retry(reason, wait_s=wait)
        if status >= 400:
            raise DownloadError(reason, status=status)
        if status not in (200, 206):
            raise DownloadError(f"unexpected {reason}", status=status)

        length = resp.headers.get("Content-Length")
        length_n = int(length) if length and length.isdigit() else None
        encoded = resp.headers.get("Content-Encoding", "identity").lower() not in ("identity", "")
        if status == 206:
            cr = _content_range(resp.headers.get("Content-Range"))
            if not offset or cr is None or cr[0] != offset:
                raise _Restart("server answered with a different byte range than asked")
            start, total = offset, cr[1]
            if total is None and length_n is not None:
                total = offset + length_n
            mode = "ab"
        else:  # 200: a whole body, even if we asked for a range (server ignores Range)
            if offset:
                log.info("%s: server ignored Range; downloading from the start", url)
            start, total, mode = 0, (None if encoded else length_n), "wb"
        if max_bytes is not None and total is not None and total > max_bytes:
            _unlink(part)
            raise _too_large(total, max_bytes)

        written = start
        try:
            with open(part, mode) as fh:
                for chunk in resp.iter_content(CHUNK):
                    if not chunk:
                        continue
                    written += len(chunk)
                    if max_bytes is not None and written > max_bytes:
                        fh.close()
                        _unlink(part)
                        raise _too_large(written, max_bytes)
                    fh.write(chunk)
        except requests.exceptions.RequestException as exc:
            raise _Retry(f"connection lost after {written} bytes: {_short(exc)}") from None
        if total is not None and written < total:
            raise _Retry(f"transfer ended early at {written} of {total} bytes")
        if total is not None and written > total:
            raise _Restart(f"received {written} bytes, more than the announced {total}")
        return status == 206


def _short(exc: BaseException) -> str:
    """The innermost useful line of a requests/urllib3 exception (they nest deeply)."""
    text = str(exc) or type(exc).__name__
    text = text.splitlines()[0]
    return text if len(text) <= 200 else text[:197] + "..."


def is_valid_sha256(value: str) -> bool:
    return bool(SHA256_RE.match(value))


__all__ = [
    "DownloadError",
    "DownloadResult",
    "download",
    "is_valid_sha256",
    "part_path",
    "sha256_of",
]
