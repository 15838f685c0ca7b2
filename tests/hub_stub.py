"""A local double of the Hugging Face Hub's HTTP API, for the real huggingface_hub client.

It answers what ``hf_hub_download`` and ``snapshot_download`` ask of a dataset repository
(and ``hf_hub_download`` of a model repository, at ``/{repo}/resolve/...``):

* ``HEAD``/``GET /datasets/{repo}/resolve/{revision}/{file}`` as the Hub answers for an
  LFS file: ``X-Repo-Commit`` (the commit the revision resolved to), ``ETag`` and
  ``X-Linked-Etag`` (the sha256 of the content), ``X-Linked-Size``/``Content-Length``; a
  missing file is a 404 with ``X-Error-Code: EntryNotFound``;
* ``GET /api/datasets/{repo}/revision/{revision}``: the repository's info (``sha``,
  ``siblings``);
* ``GET /api/datasets/{repo}/tree/{revision}``: the file listing (``recursive`` or not
  makes no difference here: every file is listed).

Revisions are the repository's commit and ``main``. ``hub.seen`` records every request.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from local_server import serve

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class _HubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def _answer(self, send_body: bool) -> None:
        hub: Any = self.server
        path = unquote(urlsplit(self.path).path)
        hub.seen.append((self.command, path))
        for repo, files in hub.models.items():
            if path.startswith(f"/{repo}/resolve/"):
                revision, _, filename = path[len(f"/{repo}/resolve/") :].partition("/")
                body = files.get(filename) if revision in (COMMIT, "main") else None
                return self._file(body, send_body)
        for repo in hub.repos:
            resolve = f"/datasets/{repo}/resolve/"
            api = f"/api/datasets/{repo}/"
            if path.startswith(resolve):
                revision, _, filename = path[len(resolve) :].partition("/")
                body = hub.repos[repo].get(filename) if revision in (COMMIT, "main") else None
                return self._file(body, send_body)
            if path.startswith(api + "revision/"):
                if path[len(api + "revision/") :] not in (COMMIT, "main"):
                    return self._not_found("RevisionNotFound")
                siblings = [{"rfilename": f} for f in sorted(hub.repos[repo])]
                return self._json({"id": repo, "sha": COMMIT, "siblings": siblings}, send_body)
            if path.startswith(api + "tree/"):
                revision = path[len(api + "tree/") :].split("/")[0]
                if revision not in (COMMIT, "main"):
                    return self._not_found("RevisionNotFound")
                return self._json([_tree_entry(f, b) for f, b in sorted(hub.repos[repo].items())],
                                  send_body)  # fmt: skip
        self._not_found("RepoNotFound")

    def _file(self, body: bytes | None, send_body: bool) -> None:
        if body is None:
            return self._not_found("EntryNotFound")
        sha = hashlib.sha256(body).hexdigest()
        self.send_response(200)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{sha}"')
        self.send_header("X-Linked-Etag", f'"{sha}"')
        self.send_header("X-Linked-Size", str(len(body)))
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def _json(self, payload: Any, send_body: bool) -> None:
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def _not_found(self, code: str) -> None:
        self.send_response(404)
        self.send_header("X-Error-Code", code)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("Content-Length", "0")
        self.end_headers()


def _tree_entry(path: str, body: bytes) -> dict[str, Any]:
    sha = hashlib.sha256(body).hexdigest()
    blob = hashlib.sha1(b"blob %d\0" % len(body) + body).hexdigest()
    return {
        "type": "file",
        "path": path,
        "size": len(body),
        "oid": blob,
        "lfs": {"oid": sha, "size": len(body), "pointerSize": 134},
    }


@contextmanager
def serve_hub(
    repos: dict[str, dict[str, bytes]], models: dict[str, dict[str, bytes]] | None = None
) -> Iterator[Any]:
    """The double on a free loopback port (``.base`` is its endpoint), serving dataset
    repositories ``{repo_id: {path: bytes}}`` and, for file downloads only, model ones."""
    with serve(_HubHandler, repos=repos, models=models or {}, seen=[]) as srv:
        yield srv


def hub_env(endpoint: str, hf_home: Path) -> dict[str, str]:
    """The environment that points a fresh process's huggingface_hub at the double."""
    return {
        "HF_ENDPOINT": endpoint,
        "HF_HOME": str(hf_home),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_XET": "1",
    }


def point_client_at(monkeypatch: pytest.MonkeyPatch, endpoint: str, hf_home: Path) -> None:
    """Point this process's (already imported) huggingface_hub at the double."""
    import huggingface_hub.constants as constants

    for name, value in hub_env(endpoint, hf_home).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    # huggingface_hub reads these at import time, so the environment alone is not enough.
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(
        constants,
        "HUGGINGFACE_CO_URL_TEMPLATE",
        endpoint + "/{repo_id}/resolve/{revision}/{filename}",
    )
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(hf_home / "token"))
