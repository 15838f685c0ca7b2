"""Downloading against a local HTTP server the test controls: retries, resume, limits, checksums."""

from __future__ import annotations

import email.utils
import hashlib
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from motionedit.download import DownloadError, download, part_path
from motionedit.retry_after import retry_after_s

BODY = os.urandom(300_000)
SHA = hashlib.sha256(BODY).hexdigest()


@dataclass
class Route:
    body: bytes = BODY
    fail_times: int = 0
    fail_status: int = 503
    retry_after: str | None = "0"
    status: int | None = None  # answer every request with this bare status
    cut_first_at: int | None = None  # first full response stops after this many bytes
    honour_range: bool = True
    send_length: bool = True


@dataclass
class Stub:
    base: str = ""
    routes: dict[str, Route] = field(default_factory=dict)
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.base + path

    def requests_to(self, path: str) -> list[dict[str, str]]:
        return [h for p, h in self.seen if p == path]


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        stub: Stub = self.server.stub  # type: ignore[attr-defined]
        path = urlsplit(self.path).path
        stub.seen.append((path, {k.lower(): v for k, v in self.headers.items()}))
        route = stub.routes.get(path)
        if route is None:
            return self._bare(404)
        if route.fail_times > 0:
            route.fail_times -= 1
            extra = {"Retry-After": route.retry_after} if route.retry_after is not None else {}
            return self._bare(route.fail_status, extra)
        if route.status is not None:
            return self._bare(route.status)
        body, start = route.body, 0
        rng = self.headers.get("Range")
        if rng and route.honour_range:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(body):
                return self._bare(416, {"Content-Range": f"bytes */{len(body)}"})
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        chunk = body[start:]
        if route.send_length:
            self.send_header("Content-Length", str(len(chunk)))
        self.end_headers()
        if route.cut_first_at is not None and not start:
            self.wfile.write(chunk[: route.cut_first_at])
            self.wfile.flush()
            route.cut_first_at = None
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(chunk)

    def _bare(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()


class Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        pass  # clients hanging up mid-body (size limit tests) are expected here


@pytest.fixture
def stub():
    server = Server(("127.0.0.1", 0), Handler)
    server.stub = Stub(base=f"http://127.0.0.1:{server.server_address[1]}")  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server.stub  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()


def _no_leftovers(target: Path) -> bool:
    return not target.exists() and not part_path(target).exists()


def test_plain_download(stub, tmp_path):
    stub.routes["/v.mp4"] = Route()
    target = tmp_path / "v.mp4"
    result = download(stub.url("/v.mp4"), target, sha256=SHA)
    assert target.read_bytes() == BODY
    assert (result.sha256, result.bytes, result.attempts, result.resumed) == (
        SHA,
        len(BODY),
        1,
        False,
    )
    assert not part_path(target).exists()
    assert "range" not in stub.requests_to("/v.mp4")[0]


def test_retries_503_and_honours_retry_after(stub, tmp_path):
    stub.routes["/flaky.mp4"] = Route(fail_times=2, retry_after="0")
    waits: list[float] = []
    result = download(
        stub.url("/flaky.mp4"), tmp_path / "f.mp4", retries=4, backoff_s=30, sleep=waits.append
    )
    assert result.attempts == 3 and len(stub.requests_to("/flaky.mp4")) == 3
    assert waits == [0.0, 0.0]  # Retry-After: 0 wins over the 30 s backoff
    assert result.sha256 == SHA


def test_exponential_backoff_then_give_up(stub, tmp_path):
    stub.routes["/down.mp4"] = Route(fail_times=99, fail_status=500, retry_after=None)
    waits: list[float] = []
    with pytest.raises(DownloadError) as info:
        download(
            stub.url("/down.mp4"), tmp_path / "d.mp4", retries=3, backoff_s=0.5, sleep=waits.append
        )
    assert waits == [0.5, 1.0, 2.0]
    assert len(stub.requests_to("/down.mp4")) == 4
    assert "HTTP 500" in str(info.value) and "gave up after 4 attempts" in str(info.value)
    assert _no_leftovers(tmp_path / "d.mp4")


def test_429_retry_after_http_date(stub, tmp_path):
    stub.routes["/busy.mp4"] = Route(
        fail_times=1, fail_status=429, retry_after="Thu, 01 Jan 1970 00:00:00 GMT"
    )
    waits: list[float] = []
    result = download(stub.url("/busy.mp4"), tmp_path / "b.mp4", backoff_s=9, sleep=waits.append)
    assert waits == [0.0] and result.attempts == 2
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= retry_after_s(future) <= 31
    assert retry_after_s("7") == 7.0 and retry_after_s("soon") is None


def test_404_is_not_retried(stub, tmp_path):
    part_path(tmp_path / "n.mp4").write_bytes(b"left by an earlier run")
    waits: list[float] = []
    with pytest.raises(DownloadError) as info:
        download(stub.url("/nope.mp4"), tmp_path / "n.mp4", retries=5, sleep=waits.append)
    assert info.value.status == 404 and "HTTP 404" in str(info.value)
    assert len(stub.requests_to("/nope.mp4")) == 1 and waits == []
    assert _no_leftovers(tmp_path / "n.mp4")


def test_checksum_mismatch_deletes_file(stub, tmp_path):
    stub.routes["/wrong.mp4"] = Route(body=b"not the video you wanted" * 100)
    target = tmp_path / "w.mp4"
    with pytest.raises(DownloadError, match="sha256 mismatch") as info:
        download(stub.url("/wrong.mp4"), target, sha256=SHA, retries=3)
    assert SHA in str(info.value)
    assert _no_leftovers(target)
    assert len(stub.requests_to("/wrong.mp4")) == 1


def test_cut_connection_resumes_with_range(stub, tmp_path):
    stub.routes["/cut.mp4"] = Route(cut_first_at=100_000)
    target = tmp_path / "c.mp4"
    result = download(stub.url("/cut.mp4"), target, sha256=SHA, backoff_s=0, sleep=lambda s: None)
    reqs = stub.requests_to("/cut.mp4")
    assert len(reqs) == 2 and "range" not in reqs[0]
    offset = int(reqs[1]["range"].removeprefix("bytes=").rstrip("-"))
    assert 0 < offset <= 100_000  # continued from what had arrived, not from zero
    assert result.resumed and result.attempts == 2
    assert target.read_bytes() == BODY and result.sha256 == SHA
    assert not part_path(target).exists()


def test_server_ignoring_range_restarts_cleanly(stub, tmp_path):
    stub.routes["/norange.mp4"] = Route(honour_range=False)
    target = tmp_path / "r.mp4"
    part_path(target).write_bytes(b"stale bytes from some other file" * 50)
    result = download(stub.url("/norange.mp4"), target, sha256=SHA)
    assert stub.requests_to("/norange.mp4")[0]["range"] == f"bytes={32 * 50}-"
    assert target.read_bytes() == BODY and not result.resumed


def test_stale_prefix_is_caught_by_checksum_and_refetched(stub, tmp_path):
    stub.routes["/changed.mp4"] = Route()
    target = tmp_path / "changed.mp4"
    part_path(target).write_bytes(b"x" * 1000)  # prefix of an older version of the file
    result = download(stub.url("/changed.mp4"), target, sha256=SHA)
    reqs = stub.requests_to("/changed.mp4")
    assert [r.get("range") for r in reqs] == ["bytes=1000-", None]
    assert target.read_bytes() == BODY and result.attempts == 2


def test_complete_part_file_is_finished_without_body(stub, tmp_path):
    stub.routes["/done.mp4"] = Route()
    target = tmp_path / "done.mp4"
    part_path(target).write_bytes(BODY)
    result = download(stub.url("/done.mp4"), target, sha256=SHA)
    assert target.read_bytes() == BODY and result.attempts == 1


def test_size_limit_from_content_length(stub, tmp_path):
    stub.routes["/big.mp4"] = Route(body=os.urandom(2_000_000))
    with pytest.raises(DownloadError, match="too large: 2000000 bytes"):
        download(stub.url("/big.mp4"), tmp_path / "big.mp4", max_bytes=500_000, retries=3)
    assert len(stub.requests_to("/big.mp4")) == 1
    assert _no_leftovers(tmp_path / "big.mp4")


def test_size_limit_while_streaming(stub, tmp_path):
    stub.routes["/stream.mp4"] = Route(body=os.urandom(2_000_000), send_length=False)
    with pytest.raises(DownloadError, match="too large"):
        download(stub.url("/stream.mp4"), tmp_path / "s.mp4", max_bytes=500_000)
    assert _no_leftovers(tmp_path / "s.mp4")


def test_non_http_and_unreachable(tmp_path):
    with pytest.raises(DownloadError, match="scheme 'ftp'"):
        download("ftp://example.com/a.mp4", tmp_path / "a.mp4")
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError, match="connection failed.*gave up after 2 attempts"):
        download(
            f"http://127.0.0.1:{port}/a.mp4", tmp_path / "a.mp4", retries=1, sleep=lambda s: None
        )
