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

A URL list is input from outside, so fetching it must not become a way into the machine's
own network, nor a way to hold a job forever, nor a way to leak the list's secrets:

- :class:`AddressPolicy` refuses hosts that resolve to loopback, private, link-local (cloud
  metadata at 169.254.169.254), multicast, unspecified or reserved addresses, for the first
  URL and for every redirect, which is followed by hand for that reason.
- ``deadline_s`` bounds one file over all attempts; ``timeout_s`` alone cannot, since a
  server that sends one byte now and then never lets a single read time out.
- URLs are stored and logged only as :func:`redact_url` shows them: signed URLs and
  ``user:password@`` carry credentials that must not end up in manifests or logs.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import logging
import os
import re
import socket
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from motionedit.retry_after import retry_after_s

log = logging.getLogger(__name__)

#: Client errors that can go away on their own; every other 4xx is final.
RETRY_4XX = frozenset({408, 425, 429})
CHUNK = 1 << 16  # small: a dropped connection loses at most one unwritten chunk
SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")
#: What stands in for a query parameter's value in a stored URL.
REDACTED = "REDACTED"
MAX_REDIRECTS = 5

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class DownloadError(Exception):
    """A URL that could not be downloaded; the message is the reason for the error row."""

    def __init__(self, message: str, *, status: int | None = None, attempts: int = 0):
        super().__init__(message)
        self.status = status
        self.attempts = attempts


class AddressRefused(DownloadError):
    """The URL (or a redirect) leads to an address the :class:`AddressPolicy` refuses."""


class _DeadlinePassed(DownloadError):
    """The file's deadline passed; unlike other final errors its ``.part`` is kept, since
    the bytes are fine and a later run (or a longer deadline) can continue from them."""


class _Retry(Exception):
    """A failure worth another attempt; ``wait_s`` overrides the backoff (Retry-After)."""

    def __init__(self, message: str, wait_s: float | None = None):
        super().__init__(message)
        self.wait_s = wait_s


class _Restart(Exception):
    """The partial file cannot be continued; drop it and try again from byte 0."""


@dataclass
class DownloadResult:
    url: str  # as redact_url shows it: results get logged and stored
    path: Path
    bytes: int
    sha256: str
    attempts: int  # HTTP requests made, the successful one included
    resumed: bool  # whether any request continued a partial file with Range


# --- redaction -------------------------------------------------------------------------


def _redact_query(query: str) -> str:
    parts = []
    for part in query.split("&"):
        if part:
            name, sep, _ = part.partition("=")
            parts.append(f"{name}={REDACTED}" if sep else REDACTED)
    return "&".join(parts)


def redact_url(url: str) -> str:
    """``url`` as it may be stored or logged: no ``user:password@``, no query values.

    Signed URLs (S3, CDN tokens) carry their secret in query values, so every value becomes
    ``REDACTED`` while the parameter names stay, which still tells a reader what kind of
    URL it was. The fragment is dropped: it is never sent to the server, so it cannot be
    needed to tell files apart, and browsers' OAuth flows put tokens there. A URL with
    none of these is returned unchanged, so ids built from plain URLs stay as they were.
    Secrets inside the path itself cannot be told from a file name and stay.
    """
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket: cut everything that could be secret
        return re.sub(r"//[^/?#]*@", "//", url).split("?", 1)[0].split("#", 1)[0]
    if "@" not in parts.netloc and not parts.query and not parts.fragment and "?" not in url:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, _redact_query(parts.query), ""))


_URL_IN_TEXT = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>()]+")
_QUERY_IN_TEXT = re.compile(r"\?([^\s'\"<>()#]+)")


def redact_text(text: str, *urls: str) -> str:
    """``text`` (an exception message, a log line) with the secrets of URLs removed.

    Library messages quote URLs in several shapes: whole, or only ``/path?query`` (urllib3's
    "Max retries exceeded with url: ..."). Both shapes are found by pattern; the passwords
    and query values of the ``urls`` the caller knows are also replaced wherever they occur,
    in case a message quotes them some other way.
    """
    for url in urls:
        try:
            parts = urlsplit(url)
        except ValueError:
            continue
        secrets = [parts.password or "", unquote(parts.password or "")]
        secrets += [p.partition("=")[2] for p in parts.query.split("&")]
        for secret in sorted(set(secrets), key=len, reverse=True):
            if len(secret) >= 4:  # shorter values would mangle ordinary words
                text = text.replace(secret, REDACTED)
    text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group()), text)
    return _QUERY_IN_TEXT.sub(lambda m: "?" + _redact_query(m.group(1)), text)


class _RedactRecords(logging.Filter):
    """urllib3 logs request lines, query string included, at DEBUG level."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


for _name in ("urllib3.connectionpool", "urllib3.poolmanager", "urllib3.util.retry"):
    logging.getLogger(_name).addFilter(_RedactRecords())


# --- which addresses may be fetched ------------------------------------------------------

_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def classify_address(address: str | IPAddress) -> str | None:
    """The kind of non-public address ``address`` is ("loopback", "private", ...), or None.

    IPv6 forms that carry an IPv4 address (``::ffff:127.0.0.1``, NAT64 ``64:ff9b::/96``,
    6to4) are judged by that IPv4 address: the mapped form is what a dual-stack socket
    reports for an IPv4 peer, and on an IPv6-only network with DNS64 every IPv4 host
    resolves to NAT64, so the wrapped address decides where the connection ends up.
    """
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip in _NAT64:
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        elif ip.sixtofour is not None:
            ip = ip.sixtofour
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_reserved:
        return "reserved"
    if ip.is_private:
        return "private"
    if not ip.is_global:  # e.g. 100.64.0.0/10, carrier-grade NAT
        return "non-public"
    return None


@dataclass(frozen=True)
class AddressPolicy:
    """Which addresses a download may connect to: public ones only, unless told otherwise.

    ``extra_allowed`` lets named addresses or networks through while keeping the rule for
    the rest, e.g. one intranet mirror (and tests, whose servers live on 127.0.0.1, can
    treat one loopback address as allowed and still see another refused). ``setting`` is
    the configuration key a refusal tells the user to change.
    """

    allow_private: bool = False
    extra_allowed: frozenset[str] = frozenset()
    setting: str = "allow_private"
    _networks: tuple[IPNetwork, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        nets = tuple(ipaddress.ip_network(a, strict=False) for a in self.extra_allowed)
        object.__setattr__(self, "_networks", nets)

    def refusal(self, address: str | IPAddress) -> str | None:
        """The kind of address that is refused (for the message), or None if allowed."""
        if self.allow_private:
            return None
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
        if any(ip.version == net.version and ip in net for net in self._networks):
            return None
        return classify_address(ip)

    def refused(self, subject: str, kind: str) -> AddressRefused:
        """The error for a refused address; ``subject`` names it together with how the
        download got there (host name, redirect), which is what the user looks for."""
        article = "an" if kind[0] in "aeiou" else "a"
        return AddressRefused(
            f"refused: {subject}, {article} {kind} address; set {self.setting}: true "
            "to fetch from private networks"
        )


def _check_host(url: str, policy: AddressPolicy | None, via: str = "") -> None:
    """Resolve ``url``'s host and refuse it if any of its addresses is refused.

    Every address counts, not only the first: the connection may go to any of them, and a
    hostile name can list a public address first and the metadata service second.
    """
    parts = urlsplit(url)
    try:
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise DownloadError(f"invalid URL {redact_url(url)}: {exc}") from None
    if not host:
        raise DownloadError(f"invalid URL {redact_url(url)}: no host")
    if policy is None or policy.allow_private:
        return
    port = port or (443 if parts.scheme.lower() == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise _Retry(f"connection failed: cannot resolve {host}: {exc}") from None
    for *_, sockaddr in infos:
        ip = str(sockaddr[0])
        kind = policy.refusal(ip)
        if kind:
            named = "" if host.strip("[]") == ip else f" resolves to {ip}"
            raise policy.refused(f"{host}{via}{named}", kind)


# --- the deadline ------------------------------------------------------------------------


class _Deadline:
    """The wall-clock limit of one file, checked by the caller and enforced by a watchdog.

    Checks against ``clock`` (injectable, so tests need not wait) run before each attempt,
    before each backoff sleep and after every read of the body. Those cannot see a server
    that trickles the status line and headers, which ``requests`` reads in one call, so a
    timer thread also shuts down the sockets this file opened once the limit passes; the
    blocked read then fails and the caller reports the deadline. The one phase it cannot
    reach is a TLS handshake (the socket is being wrapped), bounded by ``timeout_s`` per read.
    """

    def __init__(self, limit_s: float | None, clock: Callable[[], float]):
        self.limit_s = limit_s
        self._clock = clock
        self._start = clock()
        self._fired = False
        self._lock = threading.Lock()
        self._conns: weakref.WeakSet[HTTPConnection] = weakref.WeakSet()
        self._timer: threading.Timer | None = None
        if limit_s is not None:
            self._timer = threading.Timer(limit_s, self._fire)
            self._timer.daemon = True
            self._timer.start()

    def remaining(self) -> float | None:
        if self.limit_s is None:
            return None
        return self.limit_s - (self._clock() - self._start)

    def passed(self) -> bool:
        remaining = self.remaining()
        return self._fired or (remaining is not None and remaining <= 0)

    def check(self, nbytes: int, reason: str | None = None) -> None:
        if self.passed():
            last = f" (last failure: {reason})" if reason else ""
            raise _DeadlinePassed(
                f"deadline of {self.limit_s:g} s passed after {nbytes} bytes{last}"
            )

    def check_wait(self, wait_s: float, nbytes: int, reason: str) -> None:
        remaining = self.remaining()
        if remaining is not None and wait_s >= remaining:
            raise _DeadlinePassed(
                f"deadline of {self.limit_s:g} s would pass during the {wait_s:.1f} s wait "
                f"before the next retry, after {nbytes} bytes (last failure: {reason})"
            )

    def timeout(self, timeout_s: float) -> float:
        """The per-read timeout, shortened so that a stall cannot outlive the deadline."""
        remaining = self.remaining()
        return timeout_s if remaining is None else max(min(timeout_s, remaining), 0.01)

    def watch(self, conn: HTTPConnection) -> None:
        with self._lock:
            self._conns.add(conn)

    def _fire(self) -> None:
        with self._lock:
            self._fired = True
            conns = list(self._conns)
        for conn in conns:
            sock = conn.sock
            if sock is not None and not isinstance(sock, socket.socket):
                sock = getattr(sock, "socket", None)  # TLS inside a TLS proxy tunnel
            if isinstance(sock, socket.socket):
                # The plain socket's shutdown: SSLSocket.shutdown would unwrap TLS first.
                with contextlib.suppress(OSError):  # already closed
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


# --- a session that checks the address it connected to -----------------------------------


class _GuardedConnection:
    """Checks the connected socket's peer address before a single byte is sent.

    This is the defence against DNS rebinding: :func:`_check_host` resolved the name a
    moment earlier, but urllib3 resolves it again to connect, and a hostile DNS server can
    answer with a public address the first time and 127.0.0.1 the second. Whatever address
    the socket really reached is checked here, before the request and before a TLS
    handshake. Through an HTTP proxy the peer is the proxy, so the check is skipped there
    and only the name check applies (the proxy resolves the name itself).
    """

    _policy: AddressPolicy | None = None
    _deadline: _Deadline | None = None
    host: str

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()  # type: ignore[misc]
        if self._deadline is not None:
            self._deadline.watch(self)  # type: ignore[arg-type]
        policy = self._policy
        # getattr: urllib3 1.x connections lack the attributes that mark a proxy.
        to_proxy = getattr(self, "proxy", None) or getattr(self, "_tunnel_host", None)
        if policy is not None and not policy.allow_private and not to_proxy:
            peer = str(sock.getpeername()[0])
            kind = policy.refusal(peer)
            if kind:
                sock.close()
                subject = f"{self.host} passed the address check but connected to {peer}"
                raise policy.refused(subject, kind)
        return sock


class _GuardedAdapter(HTTPAdapter):
    """Installs the guarded connection classes in every pool, proxied ones included."""

    def __init__(self, pools: dict[str, type[HTTPConnectionPool]]):
        self._pools = pools
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pools

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):  # SOCKS has connection classes of its own
            manager.pool_classes_by_scheme = self._pools
        return manager


def _guarded_session(policy: AddressPolicy | None, deadline: _Deadline) -> requests.Session:
    attrs = {"_policy": policy, "_deadline": deadline}
    http = type("_GuardedHTTPConnection", (_GuardedConnection, HTTPConnection), attrs)
    https = type("_GuardedHTTPSConnection", (_GuardedConnection, HTTPSConnection), attrs)
    pools = {
        "http": type("_GuardedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http}),
        "https": type("_GuardedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https}),
    }
    sess = requests.Session()
    adapter = _GuardedAdapter(pools)
    sess.mount("http://", adapter)
    sess.mount("https://", adapter)
    return sess


# --- downloading -------------------------------------------------------------------------


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


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _too_large(size: int, max_bytes: int) -> DownloadError:
    return DownloadError(f"file too large: {size} bytes, limit is max_bytes={max_bytes}")


def _check_scheme(url: str, via: str = "") -> None:
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise DownloadError(
            f"unsupported URL scheme {scheme or '(none)'!r}{via}: only http and https"
        )


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
    deadline_s: float | None = None,
    policy: AddressPolicy | None = None,
    max_redirects: int = MAX_REDIRECTS,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> DownloadResult:
    """Download ``url`` to ``target``; raise :class:`DownloadError` with the reason on failure.

    ``retries`` is the number of extra attempts after the first; attempt ``k`` waits
    ``backoff_s * 2**k`` before retrying unless the server sent ``Retry-After`` (honoured,
    capped at ``max_wait_s`` so a hostile header cannot park the job). ``timeout_s`` bounds
    connecting and each read, not the whole transfer, so large files on slow links still work;
    ``deadline_s`` (None: no limit) bounds the whole file, all attempts and waits included.

    ``policy`` None applies no address rule: URLs written into the code (the UniMatch
    checkpoint) are trusted, and may well resolve to private addresses behind a VPC endpoint
    or split-horizon DNS. Callers fetching URLs from user input pass an :class:`AddressPolicy`.
    Credentials in the URL (``user:password@``, query tokens) are sent, never logged or
    returned: messages and :attr:`DownloadResult.url` use :func:`redact_url`.
    """
    target = Path(target)
    shown = redact_url(url)
    _check_scheme(url)
    if sha256 is not None and not SHA256_RE.match(sha256):
        raise DownloadError(f"expected checksum is not a sha256 hex digest: {sha256!r}")
    expected = sha256.lower() if sha256 else None
    if target.is_file():
        # A target only ever appears complete (renamed from its .part), so an earlier
        # run's file is reused; with a checksum it must also still match.
        digest = sha256_of(target)
        if expected is None or digest == expected:
            return DownloadResult(shown, target, target.stat().st_size, digest, 0, False)

    target.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(target)
    deadline = _Deadline(deadline_s, clock)
    sess = _guarded_session(policy, deadline)
    fetch = _Fetch(sess, url, part, timeout_s, max_bytes, policy, deadline, max_redirects)
    attempts = 0
    resumed = False
    clean_retry_used = False
    last_reason = "no attempt made"
    try:
        while True:
            attempts += 1
            offset = _size(part)
            try:
                deadline.check(offset, None if attempts == 1 else last_reason)
                used_range = fetch.once(offset)
            except _Restart as exc:
                log.info("%s: %s; restarting from byte 0", shown, exc)
                _unlink(part)
                last_reason = str(exc)
                if attempts > retries:
                    break
                continue
            except _Retry as exc:
                last_reason = str(exc)
                deadline.check(_size(part), last_reason)  # the watchdog may have cut it
                if attempts > retries:
                    break
                wait = exc.wait_s if exc.wait_s is not None else backoff_s * 2 ** (attempts - 1)
                wait = min(max(wait, 0.0), max_wait_s)
                deadline.check_wait(wait, _size(part), last_reason)
                log.info("%s: %s; retry %d/%d in %.1fs", shown, exc, attempts, retries, wait)
                sleep(wait)
                continue
            except _DeadlinePassed as exc:
                exc.attempts = attempts  # the .part stays: resumable by a later run
                raise
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
            return DownloadResult(shown, target, size, digest, attempts, resumed)
    finally:
        sess.close()
        deadline.close()
    raise DownloadError(f"{last_reason} (gave up after {attempts} attempts)", attempts=attempts)


@dataclass
class _Fetch:
    """What stays the same across the attempts at one file."""

    sess: requests.Session
    url: str
    part: Path
    timeout_s: float
    max_bytes: int | None
    policy: AddressPolicy | None
    deadline: _Deadline
    max_redirects: int

    def open(self, headers: dict[str, str]) -> requests.Response:
        """GET the URL, following redirects by hand.

        ``requests`` would follow them itself, to any host and (for 30x to ``http:`` from
        ``https:``) without re-checking anything; here every hop is checked like the first
        URL: http(s) only, address allowed. Credentials from the URL go along only while the
        redirects stay on its host, which is the rule ``requests`` applies to its own.
        """
        auth = requests.utils.get_auth_from_url(self.url)
        current, via = self.url, ""
        for hop in range(self.max_redirects + 1):
            _check_host(current, self.policy, via)
            timeout = self.deadline.timeout(self.timeout_s)
            hop_auth = None
            if hop and any(auth) and not self.sess.should_strip_auth(self.url, current):
                hop_auth = auth
            try:
                resp = self.sess.get(
                    current,
                    headers=headers,
                    stream=True,
                    timeout=(timeout, timeout),
                    allow_redirects=False,
                    auth=hop_auth,
                )
            except requests.exceptions.InvalidURL as exc:
                raise DownloadError(f"invalid URL: {_short(exc, self.url)}") from None
            except requests.exceptions.RequestException as exc:
                raise _Retry(f"connection failed: {_short(exc, self.url, current)}") from None
            location = self.sess.get_redirect_target(resp)
            if location is None:
                return resp
            resp.close()
            previous, current = current, urljoin(current, location)
            via = f" (redirected from {redact_url(previous)})"
            _check_scheme(current, via)
            log.debug("%s redirects to %s", redact_url(previous), redact_url(current))
        raise DownloadError(f"too many redirects (more than {self.max_redirects})")

    def once(self, offset: int) -> bool:
        """One request: append to (or rewrite) ``part``; return whether a Range resume was used.

        Returns only when the body arrived complete; otherwise raises ``_Retry`` (keep the
        partial bytes), ``_Restart`` (drop them) or ``DownloadError`` (give up).
        """
        part, max_bytes, shown = self.part, self.max_bytes, redact_url(self.url)
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        resp = self.open(headers)
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
            encoding = resp.headers.get("Content-Encoding", "identity").lower()
            encoded = encoding not in ("identity", "")
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
                    log.info("%s: server ignored Range; downloading from the start", shown)
                start, total, mode = 0, (None if encoded else length_n), "wb"
            if max_bytes is not None and total is not None and total > max_bytes:
                _unlink(part)
                raise _too_large(total, max_bytes)

            # read1 returns whatever one socket read brought, so the deadline is checked
            # as often as bytes arrive; read(CHUNK) would wait for a whole chunk, which a
            # trickling server never completes. urllib3 1.x lacks read1.
            raw = resp.raw
            read = raw.read1 if hasattr(raw, "read1") else raw.read
            written = start
            with open(part, mode) as fh:
                while True:
                    try:
                        chunk = read(CHUNK, decode_content=True)
                    except (urllib3.exceptions.HTTPError, OSError) as exc:
                        self.deadline.check(written)
                        raise _Retry(
                            f"connection lost after {written} bytes: {_short(exc, self.url)}"
                        ) from None
                    if not chunk:
                        break
                    written += len(chunk)
                    if max_bytes is not None and written > max_bytes:
                        fh.close()
                        _unlink(part)
                        raise _too_large(written, max_bytes)
                    fh.write(chunk)
                    self.deadline.check(written)
            # A watchdog shutdown can end a body without a length like a clean close.
            self.deadline.check(written)
            if total is not None and written < total:
                raise _Retry(f"transfer ended early at {written} of {total} bytes")
            if total is not None and written > total:
                raise _Restart(f"received {written} bytes, more than the announced {total}")
            return status == 206


def _short(exc: BaseException, *urls: str) -> str:
    """The innermost useful line of a requests/urllib3 exception (they nest deeply), with
    the URL's secrets removed: urllib3 quotes the request's path and query string."""
    text = str(exc) or type(exc).__name__
    text = redact_text(text.splitlines()[0], *urls)
    return text if len(text) <= 200 else text[:197] + "..."


def is_valid_sha256(value: str) -> bool:
    return bool(SHA256_RE.match(value))


__all__ = [
    "AddressPolicy",
    "AddressRefused",
    "DownloadError",
    "DownloadResult",
    "classify_address",
    "download",
    "is_valid_sha256",
    "part_path",
    "redact_text",
    "redact_url",
    "sha256_of",
]
