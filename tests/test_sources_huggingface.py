"""The huggingface kind against the local Hub double (tests/hub_stub.py, real hf_hub_download)."""

from __future__ import annotations

import io
import logging
import tarfile
from pathlib import Path

import pytest
from conftest import make_video
from hub_stub import COMMIT, point_client_at, serve_hub

from motionedit.sources import shard_names
from motionedit.sources.huggingface import fetch_shard, shard_count
from motionedit.video import probe

REPO = "someone/veo-like"
SHARD_TAR = "generated_videos_tar/videos_1.tar"
DIRECT_MP4 = "loose/clip.mp4"


def _tar_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def hub(tmp_path, monkeypatch):
    a = make_video(tmp_path / "src" / "a.mp4", size="64x48", seconds=1, fps=10, gop=10)
    b = make_video(tmp_path / "src" / "b.mp4", size="48x64", seconds=1, fps=10, gop=10)
    files = {
        SHARD_TAR: _tar_bytes(
            {
                "0001-uuid-a.mp4": a.read_bytes(),
                "0001-uuid-a.json": b'{"prompt": "a"}',
                "nested/0002-uuid-b.mp4": b.read_bytes(),
                "../../evil.mp4": b"escape attempt",
            }
        ),
        DIRECT_MP4: a.read_bytes(),
    }
    with serve_hub({REPO: files}) as srv:
        point_client_at(monkeypatch, srv.base, tmp_path / "hf_home")
        yield srv


def _source(**extra) -> dict:
    base = {
        "name": "veo",
        "kind": "huggingface",
        "repo_id": REPO,
        "revision": COMMIT,
        "files": [SHARD_TAR, DIRECT_MP4, "missing/videos_9.tar"],
    }
    return base | extra


def test_tar_shard_extracts_good_members_and_reports_evil_one(hub, tmp_path):
    out = tmp_path / "work" / "out"
    fetched = fetch_shard(_source(), 0, out)
    by_id = {v.video_id: v for v in fetched}
    assert list(by_id) == [
        f"veo/{SHARD_TAR}/0001-uuid-a.mp4",
        f"veo/{SHARD_TAR}/nested/0002-uuid-b.mp4",
        f"veo/{SHARD_TAR}/../../evil.mp4",
    ]  # archive order; the .json sidecar is not a video and not an error
    a, b, evil = fetched
    assert a.error is None and b.error is None
    assert probe(a.path).width == 64 and probe(b.path).width == 48
    assert Path(a.path).parent == out and Path(b.path).parent == out
    assert a.origin == f"hf://datasets/{REPO}@{COMMIT}/{SHARD_TAR}#0001-uuid-a.mp4"
    assert evil.path is None and "path traversal" in evil.error
    assert not list(tmp_path.rglob("evil*"))
    assert ("HEAD", f"/datasets/{REPO}/resolve/{COMMIT}/{SHARD_TAR}") in hub.seen
    assert ("GET", f"/datasets/{REPO}/resolve/{COMMIT}/{SHARD_TAR}") in hub.seen


def test_direct_video_file_is_used_as_is(hub, tmp_path):
    fetched = fetch_shard(_source(), 1, tmp_path / "out")
    assert [(v.video_id, v.error) for v in fetched] == [(f"veo/{DIRECT_MP4}", None)]
    assert Path(fetched[0].path).read_bytes() == hub.repos[REPO][DIRECT_MP4]


def test_missing_file_is_one_error_row(hub, tmp_path):
    fetched = fetch_shard(_source(), 2, tmp_path / "out")
    assert len(fetched) == 1
    row = fetched[0]
    assert row.video_id == "veo/missing/videos_9.tar" and row.path is None
    assert "download failed" in row.error and "not found" in row.error


def test_offline_mode_uses_the_cache_or_reports(hub, tmp_path, monkeypatch):
    import huggingface_hub.constants as constants

    first = fetch_shard(_source(), 0, tmp_path / "online")
    n_requests = len(hub.seen)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    again = fetch_shard(_source(), 0, tmp_path / "offline")  # pinned commit, already cached
    assert [v.video_id for v in again] == [v.video_id for v in first]
    assert len(hub.seen) == n_requests
    (row,) = fetch_shard(_source(), 1, tmp_path / "offline")  # never downloaded
    assert row.path is None and "HF_HUB_OFFLINE" in row.error


def test_unpinned_revision_warns(hub, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="motionedit.sources.huggingface"):
        fetched = fetch_shard(_source(revision="main"), 1, tmp_path / "out")
    assert fetched[0].error is None
    assert "not pinned" in caplog.text


def test_shard_count_and_config_mistakes():
    assert shard_count(_source()) == 3
    assert shard_names(_source()) == ["0000", "0001", "0002"]
    with pytest.raises(ValueError, match=r"sources\[name=veo\]\.repo_id: 'not a repo'"):
        shard_count(_source(repo_id="not a repo"))
    with pytest.raises(ValueError, match=r"sources\[name=veo\]\.files"):
        shard_count(_source(files=[]))
    with pytest.raises(ValueError, match=r"\.repo_type"):
        shard_count(_source(repo_type="space"))
