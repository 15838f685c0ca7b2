"""HTTP servers on the loopback interface for the network-boundary test doubles.

:class:`LocalJSONServer` (Gemini, vLLM): subclasses implement ``_post`` (and ``_get``) on
the standard library's request handler and answer with ``send_json``; the server runs in a
background thread for the length of a ``with`` block, on a free port. :func:`serve` runs any
request handler the same way, on any loopback address (the download tests need two hosts).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class LocalJSONServer:
    _server: ThreadingHTTPServer | None = None

    def __enter__(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                server._post(self)

            def do_GET(self) -> None:
                server._get(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    @property
    def origin(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_port}"

    def _post(self, handler: BaseHTTPRequestHandler) -> None:
        self.send_json(handler, 404, {"error": {"code": 404, "message": "no such route"}})

    def _get(self, handler: BaseHTTPRequestHandler) -> None:
        self.send_json(handler, 404, {"error": {"code": 404, "message": "no such route"}})

    @staticmethod
    def send_json(
        handler: BaseHTTPRequestHandler,
        status: int,
        body: Any,
        headers: dict[str, str] | None = None,
    ) -> None:
        data = json.dumps(body).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)


class QuietServer(ThreadingHTTPServer):
    """Handler threads are daemons, so a handler still trickling bytes to a client that gave
    up does not hold the test at shutdown; clients hanging up are expected, not printed."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


@contextmanager
def serve(
    handler: type[BaseHTTPRequestHandler], host: str = "127.0.0.1", **attrs: Any
) -> Iterator[QuietServer]:
    """``handler`` served on ``host`` at a free port; ``attrs`` are set on the server (the
    handler reads them as ``self.server.<name>``), and ``base`` is its ``http://`` origin."""
    srv = QuietServer((host, 0), handler)
    for name, value in attrs.items():
        setattr(srv, name, value)
    srv.base = f"http://{host}:{srv.server_address[1]}"  # type: ignore[attr-defined]
    threading.Thread(target=srv.serve_forever, args=(0.02,), daemon=True).start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
