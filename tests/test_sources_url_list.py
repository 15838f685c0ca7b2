"""The url_list kind against a local server: one row per URL, reasons for failures, list order."""

from __future__ import annotations

import hashlib
import logging
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from conftest import make_video

from motionedit.sources import shard_fingerprints, shard_names
from motionedit.sources.base import shard_of
from motionedit.sources.url_list import (
    fetch_shard,
    file_name,
    read_list,
    shard_count,
    video_key,
)
from motionedit.video import probe


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        files: dict[str, bytes] = self.server.files  # type: ignore[attr-defined]
        path = unquote(urlsplit(self.path).path)
        self.server.hits.append(path)  # type: ignore[attr-defined]
        self.server.seen.append((self.path, dict(self.headers)))  # type: ignore[attr-defined]
        if path.startswith("/slow/"):
            time.sleep(0.3)  # finishes last although listed first
        body = files.get(path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")


@pytest.fixture
def server(tmp_path):
    clip = make_video(tmp_path / "src" / "clip.mp4", size="64x48", seconds=1, fps=10, gop=10)
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.files = {  # type: ignore[attr-defined]
        "/videos/clip.mp4": clip.read_bytes(),
        "/slow/clip.mp4": clip.read_bytes(),
        "/other/clip.mp4": b"a different file with the same last segment",
        "/été/vidéo 1.mp4": b"unicode path",
        "/wrong.mp4": b"tampered bytes",
    }
    srv.hits, srv.seen = [], []  # type: ignore[attr-defined]
    srv.base = f"http://127.0.0.1:{srv.server_address[1]}"  # type: ignore[attr-defined]
    threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _source(list_path: Path, **extra) -> dict:
    """A url_list source; the test servers are on 127.0.0.1, so private addresses are on."""
    base = {"name": "web", "kind": "url_list", "list": str(list_path), "backoff_s": 0.0,
            "download_dir": str(list_path.parent / "downloads"), "allow_private": True}  # fmt: skip
    return base | extra


def test_one_row_per_url_in_list_order(server, tmp_path):
    b = server.base
    clip = server.files["/videos/clip.mp4"]
    lines = [
        "# corpus for the test",
        f"{b}/slow/clip.mp4",
        f"{b}/videos/clip.mp4   {_sha(clip).upper()}",
        "",
        f"{b}/missing.mp4",
        f"{b}/wrong.mp4 {_sha(clip)}",
        "ftp://example.com/video.mp4",
        f"{b}/other/clip.mp4",
        f"{b}/%C3%A9t%C3%A9/vid%C3%A9o%201.mp4",
        f"{b}/videos/clip.mp4",  # repeated: dropped, ids stay unique
    ]
    (tmp_path / "urls.txt").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    fetched = fetch_shard(_source(tmp_path / "urls.txt", workers=4), 0, out)

    urls = [
        f"{b}/slow/clip.mp4",
        f"{b}/videos/clip.mp4",
        f"{b}/missing.mp4",
        f"{b}/wrong.mp4",
        "ftp://example.com/video.mp4",
        f"{b}/other/clip.mp4",
        f"{b}/%C3%A9t%C3%A9/vid%C3%A9o%201.mp4",
    ]
    assert [v.video_id for v in fetched] == [f"web/{u}" for u in urls]
    assert [v.origin for v in fetched] == urls
    slow, good, missing, wrong, ftp, other, uni = fetched

    for v in (slow, good, other, uni):
        assert v.error is None and Path(v.path).parent == out
    assert probe(good.path).n_frames == 10
    assert Path(other.path).read_bytes() == server.files["/other/clip.mp4"]
    assert len({slow.path, good.path, other.path}) == 3  # same last segment, different files
    assert Path(uni.path).name.startswith("vidéo 1-")

    assert missing.path is None and "HTTP 404" in missing.error
    assert server.hits.count("/missing.mp4") == 1  # a 404 is final
    assert wrong.path is None and "sha256 mismatch" in wrong.error
    assert not any(p.name.startswith("wrong") for p in out.iterdir())
    assert ftp.path is None and "scheme 'ftp'" in ftp.error


def test_csv_list_and_sharding(server, tmp_path):
    b = server.base
    clip = server.files["/videos/clip.mp4"]
    rows = [
        "url,sha256",
        f"{b}/videos/clip.mp4,{_sha(clip)}",
        f"{b}/slow/clip.mp4,",
        f"{b}/other/clip.mp4,",
        f"{b}/%C3%A9t%C3%A9/vid%C3%A9o%201.mp4,",
    ]
    (tmp_path / "urls.csv").write_text("\n".join(rows) + "\n")
    source = _source(tmp_path / "urls.csv", shards=3, workers=2)
    entries = read_list(source)
    assert [e.sha256 for e in entries] == [_sha(clip), None, None, None]
    seen = []
    for shard in shard_names(source):
        part = fetch_shard(source, int(shard), tmp_path / f"out{shard}")
        assert all(shard_of(v.origin, 3) == int(shard) for v in part)
        seen += [v.origin for v in part if v.error is None]
    assert sorted(seen) == sorted(e.url for e in entries)


def test_shard_count_does_not_read_the_list(tmp_path):
    source = _source(tmp_path / "not-written-yet.txt", shards=5)
    assert shard_count(source) == 5 and len(shard_names(source)) == 5
    assert shard_count({"name": "web", "kind": "url_list", "list": "x"}) == 1


def test_config_mistakes_raise_naming_the_key(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"sources\[name=web\]\.list: file 'urls.txt' not found"):
        fetch_shard(_source(Path("urls.txt")), 0, tmp_path / "out")
    (tmp_path / "bad.txt").write_text("http://a/b.mp4 nothex\n")
    with pytest.raises(ValueError, match=r"\.list: line 1: 'nothex' is not a sha256"):
        read_list(_source(Path("bad.txt")))
    (tmp_path / "bad.csv").write_text("link\nhttp://a/b.mp4\n")
    with pytest.raises(ValueError, match="'url'"):
        read_list(_source(Path("bad.csv")))


def test_file_names_are_readable_and_distinct():
    a = file_name("https://x.org/a/video.mp4?sig=1")
    b = file_name("https://x.org/b/video.mp4")
    assert a != b and a.startswith("video-") and a.endswith(".mp4")
    assert file_name("https://x.org/").startswith("video-")


def test_a_rerun_reuses_finished_downloads(server, tmp_path):
    listing = tmp_path / "urls.txt"
    listing.write_text(f"{server.base}/videos/clip.mp4\n")
    first = fetch_shard(_source(listing), 0, tmp_path / "out")
    assert first[0].error is None and len(server.hits) == 1
    shutil.rmtree(tmp_path / "out")  # what Snakemake does to a job's outputs before a rerun
    again = fetch_shard(_source(listing), 0, tmp_path / "out")
    assert (
        again[0].error is None
        and Path(again[0].path).read_bytes() == server.files["/videos/clip.mp4"]
    )
    assert len(server.hits) == 1  # nothing fetched twice


def test_private_addresses_are_refused_by_default(server, tmp_path):
    listing = tmp_path / "urls.txt"
    listing.write_text(f"{server.base}/videos/clip.mp4\nhttp://169.254.169.254/latest/v.mp4\n")
    source = _source(listing)
    del source["allow_private"]  # the default
    local, metadata = fetch_shard(source, 0, tmp_path / "out")
    assert local.path is None and metadata.path is None and server.hits == []
    assert local.error == (
        "download failed: refused: 127.0.0.1, a loopback address; "
        "set sources[name=web].allow_private: true to fetch from private networks"
    )
    assert "169.254.169.254, a link-local address" in metadata.error
    assert fetch_shard(_source(listing, allow_private=False), 0, tmp_path / "o2")[0].error
    assert fetch_shard(_source(listing), 0, tmp_path / "out")[0].error is None


def test_video_keys_hide_secrets_and_stay_unique():
    plain = "https://x.org/a/v.mp4"
    assert video_key(plain) == plain
    one = video_key("https://u:pw@x.org/a/v.mp4?token=one")
    two = video_key("https://x.org/a/v.mp4?token=two")
    assert one.startswith("https://x.org/a/v.mp4?token=REDACTED#") and len(one.split("#")[1]) == 8
    assert one != two and two.startswith("https://x.org/a/v.mp4?token=REDACTED#")
    assert video_key("https://x.org/a/v.mp4?token=two") == two  # stable


def test_credentials_are_used_but_never_stored(server, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    b = server.base.replace("http://", "http://alice:s3cr3t-pw@")
    good = f"{b}/videos/clip.mp4?token=SECRET-ONE&sig=SIG-VALUE"
    same_file = f"{b}/videos/clip.mp4?token=SECRET-TWO"
    missing = f"{b}/missing.mp4?token=SECRET-ONE"
    (tmp_path / "urls.txt").write_text(f"{good}\n{same_file}\n{missing}\n{good}\n")
    fetched = fetch_shard(_source(tmp_path / "urls.txt", retries=0), 0, tmp_path / "out")

    assert [v.error is None for v in fetched] == [True, True, False]
    assert "HTTP 404" in fetched[2].error
    headers = dict(server.seen)["/videos/clip.mp4?token=SECRET-ONE&sig=SIG-VALUE"]
    assert headers["Authorization"] == "Basic YWxpY2U6czNjcjN0LXB3"  # alice:s3cr3t-pw
    clean = f"{server.base}/videos/clip.mp4?token=REDACTED"
    assert fetched[0].origin == clean + "&sig=REDACTED" and fetched[1].origin == clean
    assert len({v.video_id for v in fetched}) == 3
    assert fetched[0].video_id.startswith(f"web/{clean}&sig=REDACTED#")

    stored = [str(field) for v in fetched for field in vars(v).values()]
    logged = [r.getMessage() for r in caplog.records]
    assert any("repeats" in line for line in logged)
    for secret in ("s3cr3t", "SECRET", "SIG-VALUE", "alice"):
        assert not [text for text in stored + logged if secret in text], secret


def test_a_new_line_changes_only_its_shards_fingerprint(tmp_path):
    """The fetch rule takes the fingerprint as a parameter, so this is what reruns a shard."""
    urls = [f"https://videos.example/clip-{i}.mp4" for i in range(12)]
    listing = tmp_path / "urls.txt"
    listing.write_text("".join(u + "\n" for u in urls))
    source = _source(listing, shards=4)
    before = shard_fingerprints(source)
    assert len(set(before)) == 4

    new = "https://videos.example/new.mp4"
    listing.write_text("".join(u + "\n" for u in [*urls, new]))
    after = shard_fingerprints(source)
    changed = [s for s in range(4) if after[s] != before[s]]
    assert changed == [shard_of(new, 4)]


def test_a_missing_list_is_named_when_the_dag_is_built(tmp_path):
    with pytest.raises(ValueError, match=r"sources\[name=web\]\.list: file .* not found"):
        shard_fingerprints(_source(tmp_path / "nope.txt"))
