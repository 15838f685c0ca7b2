"""An HTTP server on 127.0.0.1 for the network-boundary test doubles (Gemini, vLLM).

Subclasses implement ``_post`` (and ``_get``) on the standard library's request handler and
answer with ``send_json``; the server runs in a background thread for the length of a
``with`` block, on a free port.
"""

from __future__ import annotations

import json
import threading
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
