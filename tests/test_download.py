"""Downloading against a local HTTP server the test controls: retries, resume, limits,
checksums, and the safety rules for URLs from outside (addresses, redirects, deadline,
credentials)."""

from __future__ import annotations

import email.utils
import hashlib
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from local_server import serve

from motionedit.download import (
    AddressPolicy,
    AddressRefused,
    DownloadError,
    classify_address,
    download,
    part_path,
    redact_text,
    redact_url,
)
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
    location: str | None = None  # answer 302 with this Location


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
        if route.location is not None:
            return self._bare(302, {"Location": route.location})
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


def _serve_stub(host: str):
    server = Server((host, 0), Handler)
    server.stub = Stub(base=f"http://{host}:{server.server_address[1]}")  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server.stub  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()


@pytest.fixture
def stub():
    yield from _serve_stub("127.0.0.1")


@pytest.fixture
def stub2():
    """A second host: 127.0.0.2 is loopback too, but a different address from 127.0.0.1."""
    try:
        yield from _serve_stub("127.0.0.2")
    except OSError as exc:  # only Linux routes all of 127/8 to the loopback interface
        pytest.skip(f"cannot listen on 127.0.0.2: {exc}")


@pytest.fixture
def no_proxy(monkeypatch):
    """Made-up host names must be connected to directly, not through a configured proxy."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                 "ALL_PROXY"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)


#: Treats the stub server's address as public, so that a second loopback address stays refused.
ALLOW_STUB = AddressPolicy(extra_allowed=frozenset({"127.0.0.1"}))


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


# --- which addresses may be fetched ------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped: judged as the IPv4 address
        ("::ffff:169.254.169.254", "link-local"),
        ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
        ("fe80::1", "link-local"),
        ("fd12:3456::1", "private"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "non-public"),
        ("93.184.216.34", None),
        ("2606:4700:4700::1111", None),
        ("::ffff:93.184.216.34", None),
        ("64:ff9b::5db8:d822", None),  # NAT64 of a public address stays public
    ],
)
def test_classify_address(address, kind):
    assert classify_address(address) == kind


def test_address_policy_exceptions():
    assert AddressPolicy().refusal("127.0.0.1") == "loopback"
    assert AddressPolicy(allow_private=True).refusal("169.254.169.254") is None
    policy = AddressPolicy(extra_allowed=frozenset({"127.0.0.1", "10.1.0.0/16"}))
    assert policy.refusal("127.0.0.1") is None and policy.refusal("10.1.2.3") is None
    assert policy.refusal("127.0.0.2") == "loopback" and policy.refusal("10.2.0.1") == "private"
    assert policy.refusal("::1") == "loopback"


def _fake_dns(monkeypatch, answers: dict[str, list[list[str]]]):
    """Answer ``getaddrinfo`` for made-up names: each lookup of a name takes the next list
    of addresses (the last one repeats); other names go to the real resolver."""
    real = socket.getaddrinfo
    calls: dict[str, int] = {}

    def fake(host, port, *args, **kwargs):
        if host not in answers:
            return real(host, port, *args, **kwargs)
        n = calls[host] = calls.get(host, 0) + 1
        ips = answers[host][min(n, len(answers[host])) - 1]
        return [
            (socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "",
             (ip, int(port)))
            for ip in ips
        ]  # fmt: skip

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return calls


def test_loopback_is_refused_by_the_default_policy(stub, tmp_path):
    stub.routes["/v.mp4"] = Route()
    part_path(tmp_path / "v.mp4").write_bytes(b"partial")
    with pytest.raises(AddressRefused) as info:
        download(stub.url("/v.mp4"), tmp_path / "v.mp4", policy=AddressPolicy(), retries=3)
    assert "refused: 127.0.0.1, a loopback address; set allow_private: true" in str(info.value)
    assert stub.seen == [] and info.value.attempts == 1  # no request, no retry
    assert _no_leftovers(tmp_path / "v.mp4")
    result = download(stub.url("/v.mp4"), tmp_path / "v.mp4", policy=AddressPolicy(True))
    assert result.sha256 == SHA


def test_every_resolved_address_is_checked(monkeypatch, no_proxy, tmp_path):
    calls = _fake_dns(monkeypatch, {"mixed.test": [["93.184.216.34", "10.0.0.1"]]})
    policy = AddressPolicy(setting="sources[name=web].allow_private")
    with pytest.raises(AddressRefused) as info:
        download("http://mixed.test/v.mp4", tmp_path / "v.mp4", policy=policy)
    assert str(info.value) == (
        "refused: mixed.test resolves to 10.0.0.1, a private address; "
        "set sources[name=web].allow_private: true to fetch from private networks"
    )
    assert calls == {"mixed.test": 1}  # refused before anything tried to connect


def test_dns_rebinding_is_caught_at_connect(stub, monkeypatch, no_proxy, tmp_path):
    """The name is public when checked, loopback when urllib3 resolves it to connect."""
    stub.routes["/v.mp4"] = Route()
    port = urlsplit(stub.base).port
    calls = _fake_dns(monkeypatch, {"rebind.test": [["93.184.216.34"], ["127.0.0.1"]]})
    with pytest.raises(AddressRefused) as info:
        download(f"http://rebind.test:{port}/v.mp4", tmp_path / "v.mp4", policy=AddressPolicy())
    assert "rebind.test passed the address check but connected to 127.0.0.1" in str(info.value)
    assert "loopback" in str(info.value)
    assert calls["rebind.test"] == 2 and stub.seen == []  # connected, but nothing was sent


def test_through_a_proxy_only_the_name_is_checked(stub, monkeypatch, no_proxy, tmp_path):
    """Through a proxy the socket's peer is the proxy, often on a private network (here the
    stub, which answers absolute-URI requests like a forward proxy): that is not a refusal."""
    stub.routes["/v.mp4"] = Route()
    _fake_dns(monkeypatch, {"public.test": [["93.184.216.34"]]})
    monkeypatch.setenv("http_proxy", stub.base)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    result = download("http://public.test/v.mp4", tmp_path / "v.mp4", policy=AddressPolicy())
    assert result.sha256 == SHA and len(stub.requests_to("/v.mp4")) == 1
    with pytest.raises(AddressRefused, match="10.0.0.1, a private address"):
        download("http://10.0.0.1/v.mp4", tmp_path / "p.mp4", policy=AddressPolicy())
    assert len(stub.seen) == 1


# --- redirects -----------------------------------------------------------------------------


def test_redirects_are_followed_and_each_hop_is_checked(stub, stub2, tmp_path):
    stub.routes["/v.mp4"] = Route()
    stub.routes["/hop"] = Route(location="/v.mp4")  # relative Location
    stub.routes["/meta"] = Route(location="http://169.254.169.254/latest/meta-data/")
    stub.routes["/other-host"] = Route(location=stub2.url("/v.mp4"))
    stub.routes["/ftp"] = Route(location="ftp://example.com/v.mp4")
    stub.routes["/loop"] = Route(location="/loop")
    stub2.routes["/v.mp4"] = Route()

    result = download(stub.url("/hop"), tmp_path / "hop.mp4", policy=ALLOW_STUB)
    assert result.sha256 == SHA and len(stub.requests_to("/v.mp4")) == 1

    with pytest.raises(AddressRefused, match=r"169\.254\.169\.254 \(redirected from "):
        download(stub.url("/meta"), tmp_path / "m.mp4", policy=ALLOW_STUB, retries=3)
    with pytest.raises(AddressRefused) as info:
        download(stub.url("/other-host"), tmp_path / "o.mp4", policy=ALLOW_STUB)
    assert "127.0.0.2" in str(info.value) and "loopback" in str(info.value)
    assert stub2.seen == []
    with pytest.raises(DownloadError, match="unsupported URL scheme 'ftp' \\(redirected from"):
        download(stub.url("/ftp"), tmp_path / "f.mp4", policy=ALLOW_STUB)
    with pytest.raises(DownloadError, match=r"too many redirects \(more than 5\)"):
        download(stub.url("/loop"), tmp_path / "l.mp4", policy=ALLOW_STUB, retries=3)
    assert len(stub.requests_to("/loop")) == 6  # not retried: a loop does not heal
    assert len(stub.requests_to("/meta")) == 1


def test_credentials_follow_redirects_on_the_same_host_only(stub, stub2, tmp_path):
    stub.routes["/v.mp4"] = Route()
    stub.routes["/same"] = Route(location="/v.mp4")
    stub.routes["/away"] = Route(location=stub2.url("/v.mp4"))
    stub2.routes["/v.mp4"] = Route()
    with_creds = stub.base.replace("http://", "http://alice:pw-1234@")
    download(with_creds + "/same", tmp_path / "s.mp4")
    download(with_creds + "/away", tmp_path / "a.mp4")
    assert stub.requests_to("/v.mp4")[0]["authorization"].startswith("Basic ")
    assert "authorization" in stub.requests_to("/away")[0]
    assert "authorization" not in stub2.requests_to("/v.mp4")[0]


# --- the deadline --------------------------------------------------------------------------


class FakeClock:
    """A clock that moves only when asked: ``step`` per reading, and by what ``sleep`` waits."""

    def __init__(self, step: float = 0.0):
        self.now, self.step, self.waits = 0.0, step, []

    def __call__(self) -> float:
        self.now += self.step
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def test_deadline_is_checked_while_the_body_arrives(stub, tmp_path):
    stub.routes["/v.mp4"] = Route()
    target = tmp_path / "v.mp4"
    clock = FakeClock(step=1.0)  # every reading of the clock is one second later
    with pytest.raises(DownloadError) as info:
        download(stub.url("/v.mp4"), target, deadline_s=5, clock=clock, sleep=clock.sleep)
    written = int(str(info.value).removeprefix("deadline of 5 s passed after ").split()[0])
    assert 0 < written < len(BODY) and clock.waits == []
    assert not target.exists() and part_path(target).stat().st_size == written  # resumable


def test_a_backoff_that_would_pass_the_deadline_ends_the_download(stub, tmp_path):
    stub.routes["/down.mp4"] = Route(fail_times=99, fail_status=503, retry_after=None)
    clock = FakeClock()
    with pytest.raises(DownloadError) as info:
        download(stub.url("/down.mp4"), tmp_path / "d.mp4", retries=9, backoff_s=1,
                 deadline_s=6, clock=clock, sleep=clock.sleep)  # fmt: skip
    assert clock.waits == [1.0, 2.0]  # a third wait of 4 s would end at 7 s
    assert str(info.value).startswith("deadline of 6 s would pass during the 4.0 s wait")
    assert "HTTP 503" in str(info.value) and len(stub.requests_to("/down.mp4")) == 3


class TrickleHandler(BaseHTTPRequestHandler):
    """One byte every ``server.interval`` seconds: never idle long enough for a read timeout.
    With ``server.in_headers`` the bytes are a header line that never ends."""

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        interval, in_headers = self.server.interval, self.server.in_headers  # type: ignore[attr-defined]
        try:
            if in_headers:
                self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            else:
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
            for _ in range(1000):
                self.wfile.write(b"x")
                time.sleep(interval)
        except OSError:
            pass  # the client gave up


@pytest.mark.parametrize("in_headers", [False, True], ids=["body", "headers"])
def test_a_trickling_server_ends_at_the_deadline(tmp_path, in_headers):
    with (
        serve(TrickleHandler, interval=0.1, in_headers=in_headers) as srv,
        pytest.raises(DownloadError, match="deadline of 1 s passed after") as info,
    ):
        download(f"{srv.base}/v.mp4", tmp_path / "v.mp4", timeout_s=5, deadline_s=1)
    assert in_headers == (" after 0 bytes" in str(info.value))


# --- credentials ---------------------------------------------------------------------------


def test_redact_url():
    url = "http://user:pass@host.test:8080/a/v.mp4?token=abc&sig=x&flag#frag"
    assert redact_url(url) == ("http://host.test:8080/a/v.mp4?token=REDACTED&sig=REDACTED&REDACTED")
    plain = "https://host.test/%C3%A9t%C3%A9/v.mp4"
    assert redact_url(plain) == plain  # nothing to hide: unchanged, so ids stay as they were
    assert redact_url("https://host.test/v.mp4#t=5") == "https://host.test/v.mp4"
    assert redact_url("http://[::1/v.mp4?token=abc") == "http://[::1/v.mp4"  # unparseable


def test_redact_text_finds_urls_in_library_messages():
    message = (
        "HTTPConnectionPool(host='h', port=1): Max retries exceeded with url: "
        "/v.mp4?token=SECRET-1 (Caused by NewConnectionError('http://u:pw@h/x?k=SECRET-2'))"
    )
    redacted = redact_text(message)
    assert "SECRET" not in redacted and "pw" not in redacted
    assert "url: /v.mp4?token=REDACTED" in redacted
    known = "http://u:longpassword@h/x?k=SECRET-3"
    assert redact_text("auth longpassword and SECRET-3 quoted oddly", known) == (
        "auth REDACTED and REDACTED quoted oddly"
    )


def test_credentials_are_sent_but_never_reported(stub, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)  # urllib3 logs request lines at DEBUG
    stub.routes["/v.mp4"] = Route()
    stub.routes["/busy.mp4"] = Route(fail_times=1, fail_status=503, retry_after="0")
    with_creds = stub.base.replace("http://", "http://alice:s3cr3t-pw@")
    result = download(f"{with_creds}/v.mp4?token=SECRET-TOKEN", tmp_path / "v.mp4")
    (seen,) = stub.seen
    assert seen[1]["authorization"] == "Basic YWxpY2U6czNjcjN0LXB3"  # alice:s3cr3t-pw
    download(f"{with_creds}/busy.mp4?token=SECRET-TOKEN", tmp_path / "b.mp4", backoff_s=0)
    with pytest.raises(DownloadError) as missing:
        download(f"{with_creds}/gone.mp4?token=SECRET-TOKEN", tmp_path / "g.mp4")
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError) as refused:
        download(f"http://alice:s3cr3t-pw@127.0.0.1:{port}/v.mp4?token=SECRET-TOKEN",
                 tmp_path / "r.mp4", retries=1, sleep=lambda s: None)  # fmt: skip
    assert "Max retries exceeded with url: /v.mp4?token=REDACTED" in str(refused.value)
    assert result.url == f"{stub.base}/v.mp4?token=REDACTED"
    reported = [result.url, str(missing.value), str(refused.value)]
    reported += [r.getMessage() for r in caplog.records]
    assert any("retry 1/4" in line for line in reported)  # the retry was logged...
    assert any("GET /v.mp4?token=REDACTED" in line for line in reported)  # ...and urllib3's line
    for secret in ("s3cr3t", "SECRET-TOKEN", "alice"):
        assert not [line for line in reported if secret in line]
