"""The ``url_list`` source: videos downloaded over HTTP(S) from a list of URLs.

Configuration::

    - name: web
      kind: url_list
      list: urls.txt          # or urls.csv / urls.tsv with columns url[,sha256]
      shards: 8               # default 1
      retries: 4              # extra attempts after the first, for 429/5xx/dropped links
      backoff_s: 1.0          # first retry delay, doubled each time (Retry-After wins)
      timeout_s: 60           # connect and per-read timeout
      max_bytes: 2000000000   # refuse anything larger
      deadline_s: 3600        # wall-clock limit per file, all retries included
      allow_private: false    # true: allow loopback/private/link-local hosts (intranet mirror)
      workers: 4              # parallel downloads inside one shard job
      download_dir: results/cache/downloads   # kept across runs, see below

The text format is one URL per line, optionally followed by whitespace and the file's
sha256; ``#`` starts a comment line. A URL's shard is ``shard_of(url)``, so adding lines
to the list never moves an existing URL to another shard (or its video to another split).

Files are downloaded into ``download_dir/<name>/`` and linked into the shard's output
folder. Snakemake empties a job's outputs before running it, so keeping the downloads
outside them is what lets a killed or forced fetch job resume a partial file (``.part``)
and skip finished ones instead of fetching the whole shard again.

The list is input from outside, so by default a URL (or a redirect) whose host resolves to a
non-public address is an error row, not a request: otherwise a list could make the job read
cloud metadata (169.254.169.254) or intranet services. Credentials in URLs (``user:pw@``,
signed query strings) are used for the download but never stored: ids, origins, error
messages and log lines carry :func:`~motionedit.download.redact_url`'s form.

``shard_count`` reads only the config (never the list), so the shards are known before the
list is read. ``shard_fingerprints`` does read it, once per DAG build however many shards: a
line added or changed reruns the fetch of its own shard only. Downloads run in a small
thread pool, but the returned rows keep list order so the manifest does not depend on
which server was faster.
"""

from __future__ import annotations

import csv
import hashlib
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

from motionedit.download import (
    AddressPolicy,
    DownloadError,
    download,
    is_valid_sha256,
    redact_text,
    redact_url,
)
from motionedit.sources.base import FetchedVideo, digest, safe_filename, shard_of
from motionedit.sources.local import place_file

log = logging.getLogger(__name__)

DEFAULTS = {
    "shards": 1,
    "retries": 4,
    "backoff_s": 1.0,
    "timeout_s": 60.0,
    "max_bytes": 2_000_000_000,
    "workers": 4,
    "deadline_s": 3600.0,
    "allow_private": False,
    "download_dir": "results/cache/downloads",
}


class ListEntry(NamedTuple):
    url: str
    sha256: str | None
    line: int


def _cfg(source: dict) -> dict:
    return {**DEFAULTS, **source}


def _key(source: dict, field: str) -> str:
    return f"sources[name={source.get('name')}].{field}"


def shard_count(source: dict) -> int:
    return int(source.get("shards", DEFAULTS["shards"]))


def _checked_sha(source: dict, value: str | None, line: int) -> str | None:
    if not value:
        return None
    if not is_valid_sha256(value):
        raise ValueError(
            f"{_key(source, 'list')}: line {line}: {value!r} is not a sha256 hex digest "
            "(64 hexadecimal characters)"
        )
    return value.lower()


def read_list(source: dict) -> list[ListEntry]:
    """Entries of the list file in file order, duplicates dropped (the first one kept).

    Malformed lines raise ValueError naming the line: the list is configuration, and a
    silently skipped line would be a video that quietly never appears.
    """
    rel = source.get("list")
    if not isinstance(rel, str) or not rel:
        raise ValueError(f"{_key(source, 'list')}: required, the path of a file of URLs")
    path = Path(rel)
    if not path.is_file():
        raise ValueError(
            f"{_key(source, 'list')}: file {rel!r} not found; the path is relative to the "
            f"working directory {Path.cwd()}"
        )
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() in (".csv", ".tsv"):
        entries = _read_table(source, text, "\t" if path.suffix.lower() == ".tsv" else ",")
    else:
        entries = _read_text(source, text)
    seen: set[str] = set()
    unique = []
    for entry in entries:
        if entry.url in seen:
            log.warning("%s: line %d repeats %s; ignored", rel, entry.line, redact_url(entry.url))
            continue
        seen.add(entry.url)
        unique.append(entry)
    return unique


def shard_fingerprints(source: dict) -> list[str]:
    """A digest of each shard's entries, for the fetch rule's parameters.

    A digest rather than the entries themselves: Snakemake stores parameters in its
    metadata, and a URL may carry credentials. All shards at once, because the list is
    read and sharded in one pass.
    """
    entries: list[list] = [[] for _ in range(shard_count(source))]
    for e in read_list(source):  # raises, naming the key, when the list is missing
        entries[shard_of(e.url, len(entries))].append((e.url, e.sha256))
    return [digest(x) for x in entries]


def _read_text(source: dict, text: str) -> list[ListEntry]:
    entries = []
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) > 2:
            raise ValueError(
                f"{_key(source, 'list')}: line {n}: expected 'URL [sha256]', got {len(fields)} "
                "fields (URLs with spaces must be percent-encoded as %20)"
            )
        sha = _checked_sha(source, fields[1] if len(fields) == 2 else None, n)
        entries.append(ListEntry(fields[0], sha, n))
    return entries


def _read_table(source: dict, text: str, delimiter: str) -> list[ListEntry]:
    rows = list(csv.reader(text.splitlines(), delimiter=delimiter))
    if not rows:
        return []
    header = [h.strip().lower() for h in rows[0]]
    if "url" not in header:
        raise ValueError(
            f"{_key(source, 'list')}: the first row must name the columns, with 'url' "
            f"(and optionally 'sha256'); got {rows[0]}"
        )
    iu = header.index("url")
    isha = header.index("sha256") if "sha256" in header else None
    entries = []
    for n, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        url = row[iu].strip() if iu < len(row) else ""
        if not url or url.startswith("#"):
            continue
        sha_cell = row[isha].strip() if isha is not None and isha < len(row) else None
        entries.append(ListEntry(url, _checked_sha(source, sha_cell, n), n))
    return entries


def file_name(url: str) -> str:
    """A readable, collision-free local name: the URL's last path segment plus a URL hash.

    Two URLs often end in the same segment (``.../a/video.mp4``, ``.../b/video.mp4``), so
    the hash that :func:`safe_filename` appends is taken over the whole URL.
    """
    segment = unquote(urlsplit(url).path.rsplit("/", 1)[-1]) or "video.mp4"
    tag = hashlib.sha1(url.encode("utf-8")).hexdigest()[:16]
    return safe_filename(f"{tag}/{segment}")


def video_key(url: str) -> str:
    """The part of a video id that names ``url``: the URL itself, or its redacted form.

    Ids are stored, so they must not carry the URL's credentials; but two URLs that differ
    only in a secret (``?token=a``, ``?token=b``) redact to the same string, and ids must
    stay unique. A redacted URL therefore gets ``#`` and the first 8 hex digits of the full
    URL's sha1. The suffix depends on the URL alone, not on which other lines the list has,
    so adding a line never renames an existing video (which would move it between splits).
    URLs with nothing to redact keep their plain form. The hash is no more revealing than
    the one in :func:`file_name`; it only helps an attacker who can already guess the
    whole secret.
    """
    shown = redact_url(url)
    if shown == url:
        return url
    return f"{shown}#{hashlib.sha1(url.encode('utf-8')).hexdigest()[:8]}"


def fetch_shard(source: dict, shard: int, out_dir: Path) -> list[FetchedVideo]:
    """Download this shard's URLs into ``out_dir``; one row per URL, in list order."""
    cfg = _cfg(source)
    name = cfg["name"]
    n_shards = shard_count(source)
    if not 0 <= shard < n_shards:
        raise ValueError(f"{_key(source, 'shards')}: shard {shard} out of range 0..{n_shards - 1}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    mine = [e for e in read_list(source) if shard_of(e.url, n_shards) == shard]
    cache = Path(cfg["download_dir"]) / name
    policy = None
    if cfg["allow_private"] is not True:
        policy = AddressPolicy(setting=_key(source, "allow_private"))

    def one(entry: ListEntry) -> FetchedVideo:
        video_id = f"{name}/{video_key(entry.url)}"
        origin = redact_url(entry.url)
        try:
            result = download(
                entry.url,
                cache / file_name(entry.url),
                retries=int(cfg["retries"]),
                backoff_s=float(cfg["backoff_s"]),
                timeout_s=float(cfg["timeout_s"]),
                max_bytes=int(cfg["max_bytes"]),
                sha256=entry.sha256,
                deadline_s=float(cfg["deadline_s"]),
                policy=policy,
            )
            dest = out_dir / file_name(entry.url)
            place_file(result.path, dest)
        except DownloadError as exc:
            return FetchedVideo(video_id, None, origin, f"download failed: {exc}")
        except Exception as exc:  # a full disk or a library bug must not sink the shard
            reason = redact_text(f"download failed: {type(exc).__name__}: {exc}", entry.url)
            return FetchedVideo(video_id, None, origin, reason)
        return FetchedVideo(video_id, str(dest), origin)

    workers = max(1, int(cfg["workers"]))
    if workers == 1 or len(mine) <= 1:
        fetched = [one(e) for e in mine]
    else:
        with ThreadPoolExecutor(max_workers=min(workers, len(mine))) as pool:
            fetched = list(pool.map(one, mine))  # map keeps input order
    failed = sum(v.error is not None for v in fetched)
    log.info("source %s shard %d: %d URLs, %d failed", name, shard, len(fetched), failed)
    return fetched
