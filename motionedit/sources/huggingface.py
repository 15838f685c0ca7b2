"""The ``huggingface`` source: video archives (or videos) stored in a Hub repository.

Configuration::

    - name: shareveo3
      kind: huggingface
      repo_id: WenhaoWang/ShareVeo3
      repo_type: dataset               # default
      revision: <commit sha>           # pin it; "main" works but the corpus can change
      files:                           # one shard per file
        - generated_videos_veo3_tar/veo3_videos_1.tar
        - generated_videos_veo3_tar/veo3_videos_2.tar
      allow_patterns: ["*.mp4"]        # default; members to extract (case-insensitive)
      max_member_bytes: 500000000      # default; larger members become error rows
      max_total_bytes: 20000000000     # default; members past it become error rows
      cache_dir: null                  # default: the huggingface_hub cache (HF_HOME)

The two corpora the MotionEdit paper mines, as their public dataset pages describe them:

* ``WenhaoWang/ShareVeo3`` ("Veo 3 Gallery"): 6,763 Veo 3 videos, each generated from a
  VidProM prompt and named by that prompt's UUID, stored as 50 webdataset-style tar shards
  ``generated_videos_veo3_tar/veo3_videos_{1..50}.tar`` (the card downloads them with
  ``hf_hub_download`` in a loop over 1..50). Members are ``.mp4`` files, with per-sample
  sidecars that ``allow_patterns`` leaves out without error rows.
* ``nyuuzyou/klingai``: 12,782 Kling AI generations, images and videos mixed (text-to-image,
  text-to-video, image-to-video), with per-item metadata (prompt, user id, generation
  settings). The media files are packed in ``resource_*.zip`` archives alongside metadata
  and cover-image files; only the media zips belong in ``files``, and ``*.mp4`` keeps the
  videos and skips the images. The exact archive names are not fixed here: list them from
  the repository at the pinned revision.

One file is one shard, so the shard count is known from the config alone, without network,
and a failed download costs one shard job, not the run. The token and offline mode are left
to huggingface_hub (``HF_TOKEN`` / ``hf auth login``, ``HF_HUB_OFFLINE``, ``HF_ENDPOINT``):
credentials never belong in a workflow config that gets committed and shared.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from motionedit.sources.archive import ArchiveError, archive_kind, extract_archive
from motionedit.sources.base import VIDEO_SUFFIXES, FetchedVideo, safe_filename
from motionedit.sources.local import place_file

log = logging.getLogger(__name__)

DEFAULTS = {
    "repo_type": "dataset",
    "revision": "main",
    "allow_patterns": ["*.mp4"],
    "max_member_bytes": 500_000_000,
    "max_total_bytes": 20_000_000_000,
    "cache_dir": None,
}
REPO_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
REPO_TYPES = ("dataset", "model")


def _key(source: dict, field: str) -> str:
    return f"sources[name={source.get('name')}].{field}"


def _cfg(source: dict) -> dict:
    """The source with defaults filled in, after checking the keys a typo would break."""
    cfg = {**DEFAULTS, **{k: v for k, v in source.items() if v is not None}}
    repo_id = cfg.get("repo_id")
    if not isinstance(repo_id, str) or not REPO_ID_RE.match(repo_id) or ".." in repo_id:
        raise ValueError(
            f"{_key(source, 'repo_id')}: {repo_id!r} is not a Hub repository id; "
            "expected 'owner/name', e.g. 'WenhaoWang/ShareVeo3'"
        )
    if cfg["repo_type"] not in REPO_TYPES:
        raise ValueError(
            f"{_key(source, 'repo_type')}: {cfg['repo_type']!r}; use one of {REPO_TYPES}"
        )
    files = cfg.get("files")
    if (
        not isinstance(files, list)
        or not files
        or not all(isinstance(f, str) and f.strip() for f in files)
    ):
        raise ValueError(
            f"{_key(source, 'files')}: a non-empty list of file paths in the repository, "
            "e.g. ['generated_videos_veo3_tar/veo3_videos_1.tar']"
        )
    if len(set(files)) != len(files):
        raise ValueError(f"{_key(source, 'files')}: the same file is listed twice")
    patterns = cfg["allow_patterns"]
    if not isinstance(patterns, list) or not all(isinstance(p, str) and p for p in patterns):
        raise ValueError(f"{_key(source, 'allow_patterns')}: a list of patterns, e.g. ['*.mp4']")
    if not isinstance(cfg["revision"], str) or not cfg["revision"]:
        raise ValueError(f"{_key(source, 'revision')}: a commit sha, tag or branch name")
    return cfg


def shard_count(source: dict) -> int:
    return len(_cfg(source)["files"])


def _origin(cfg: dict, file: str, member: str | None = None, commit: str | None = None) -> str:
    """Where a video came from, at the commit it was actually fetched from when known."""
    base = f"hf://{cfg['repo_type']}s/{cfg['repo_id']}@{commit or cfg['revision']}/{file}"
    return f"{base}#{member}" if member else base


def _warn_unpinned(cfg: dict) -> None:
    rev = cfg["revision"]
    if not COMMIT_RE.match(rev):
        log.warning(
            "source %s: revision %r is not a commit sha, so the corpus is not pinned: a new "
            "upload changes what this run fetches. Pin the commit shown on the repository's "
            "'Files and versions' page.",
            cfg.get("name"),
            rev,
        )


def _snapshot_commit(path: str) -> str | None:
    """The commit a cached file came from (``.../snapshots/<sha>/<file>``), for the log."""
    parts = Path(path).parts
    if "snapshots" in parts:
        i = parts.index("snapshots")
        if i + 1 < len(parts) and COMMIT_RE.match(parts[i + 1]):
            return parts[i + 1]
    return None


def _hub_error(exc: Exception) -> str:
    """A one-line reason, with the fix for the cases users hit most."""
    name = type(exc).__name__
    first = (str(exc).strip().splitlines() or [""])[0]
    first = first if len(first) <= 160 else first[:157] + "..."
    hints = {
        "LocalEntryNotFoundError": "not in the local cache and the Hub cannot be reached "
        "(HF_HUB_OFFLINE set, or no network)",
        "OfflineModeIsEnabled": "HF_HUB_OFFLINE is set and the file is not in the local cache",
        "RepositoryNotFoundError": "repository not found, or private/gated without a token "
        "(log in with 'hf auth login' or set HF_TOKEN)",
        "GatedRepoError": "gated repository: accept its terms on the Hub and set HF_TOKEN",
        "RevisionNotFoundError": "revision not found in the repository",
        "RemoteEntryNotFoundError": "file not found in the repository at this revision",
        "EntryNotFoundError": "file not found in the repository at this revision",
    }
    hint = hints.get(name)
    return f"{hint} ({name}: {first})" if hint else f"{name}: {first}"


def fetch_shard(source: dict, shard: int, out_dir: Path) -> list[FetchedVideo]:
    """Download this shard's file and hand back its videos (extracted if it is an archive)."""
    cfg = _cfg(source)
    name = cfg["name"]
    files = cfg["files"]
    if not 0 <= shard < len(files):
        raise ValueError(f"{_key(source, 'files')}: shard {shard} out of range 0..{len(files) - 1}")
    file = files[shard]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _warn_unpinned(cfg)
    file_id = f"{name}/{file}"

    # Imported here: the DAG build imports this module for shard_count and must stay fast.
    from huggingface_hub import hf_hub_download

    try:
        local = hf_hub_download(
            repo_id=cfg["repo_id"],
            filename=file,
            repo_type=cfg["repo_type"],
            revision=cfg["revision"],
            cache_dir=cfg["cache_dir"],
        )
    except Exception as exc:  # every Hub/network failure is this shard's error row
        reason = f"download failed: {_hub_error(exc)}"
        log.warning("%s: %s", file_id, reason)
        return [FetchedVideo(file_id, None, _origin(cfg, file), reason)]
    local = str(local)
    commit = _snapshot_commit(local)
    if commit and commit != cfg["revision"]:
        log.info("source %s: %s resolved to commit %s", name, file, commit)

    kind = archive_kind(local)
    if kind is None:
        if not file.lower().endswith(VIDEO_SUFFIXES):
            why = f"neither a tar/zip archive nor a video ({', '.join(VIDEO_SUFFIXES)})"
            return [FetchedVideo(file_id, None, _origin(cfg, file, commit=commit), why)]
        dest = out_dir / safe_filename(file)
        try:
            place_file(Path(local), dest, link=True)
        except OSError as exc:
            why = f"cannot place downloaded file: {exc.strerror or exc}"
            return [FetchedVideo(file_id, None, _origin(cfg, file, commit=commit), why)]
        return [FetchedVideo(file_id, str(dest), _origin(cfg, file, commit=commit))]

    try:
        members = extract_archive(
            local,
            out_dir,
            allow_patterns=cfg["allow_patterns"],
            max_member_bytes=int(cfg["max_member_bytes"]),
            max_total_bytes=int(cfg["max_total_bytes"]),
            report_unmatched=False,
        )
    except ArchiveError as exc:
        return [FetchedVideo(file_id, None, _origin(cfg, file, commit=commit), str(exc))]
    fetched = [
        FetchedVideo(f"{file_id}/{m.member}", m.path, _origin(cfg, file, m.member, commit), m.error)
        for m in members
    ]
    if not fetched:
        # A row keeps the shard visible in the manifest; an empty one looks like a lost job.
        why = f"archive has no member matching allow_patterns {cfg['allow_patterns']}"
        fetched = [FetchedVideo(file_id, None, _origin(cfg, file, commit=commit), why)]
    return fetched
