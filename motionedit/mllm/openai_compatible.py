"""An OpenAI-compatible chat-completions server (``vllm serve``, a proxy, OpenAI itself).

The cache, the in-run dedupe, the concurrency, quota and retry policy are the shared
:class:`~motionedit.mllm.caller.Caller`'s; this module adds the wire format:

- a request is one user message whose content is the request's text parts and its images
  as data URIs (``image_url`` parts), in order, with ``model``, ``temperature``,
  ``max_tokens`` and, when the settings ask for them, ``logprobs: true`` and
  ``top_logprobs``; a request with a schema asks for ``response_format: json_schema``;
- the answer kept (and cached) is the message text, the finish reason, the usage report
  (``prompt_tokens``, ``completion_tokens``), the model that answered and, when asked for,
  the first answer token's ``top_logprobs``, so a score computed from the distribution can
  be computed from a cached answer too;
- calls go out with ``requests`` on a thread pool of ``concurrency`` workers, one
  ``requests.Session`` per worker; every connection is closed at the end of ``run``, so a
  server restarted between two runs (training steps) is simply picked up by the next one;
- the API key, if the server wants one, is read from the environment variable named by
  ``api_key_env`` when a run starts, and sent as a bearer token only: it is never logged
  or stored. A 401 or 403 raises :class:`~motionedit.mllm.caller.MLLMError` naming that
  variable, since every call would be refused alike.

``transport`` holds ``base_url`` (ending in ``/v1``), ``api_key_env``, ``response_format``
(``json_schema``, or ``none`` for a server that refuses it), ``timeout_s``,
``max_attempts``, ``backoff_s``, ``concurrency`` and optionally ``max_backoff_s``,
``max_retry_after_s``, ``requests_per_minute``, ``tokens_per_minute`` and ``cache_dir``
(none: nothing is cached). ``section`` names the config section those came from, for
error messages a user can act on.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from motionedit.mllm.caller import Caller, Failure, MLLMError
from motionedit.mllm.request import Image, Reply, Request, interpret
from motionedit.retry_after import retry_after_s


def check_base_url(base_url: Any, section: str) -> str:
    """The server's URL without a trailing slash; a ValueError naming ``<section>.base_url``
    when it is missing or not http(s)."""
    if not base_url:
        raise ValueError(
            f"{section}.base_url is not set: give the chat-completions server's URL, "
            "e.g. http://127.0.0.1:8000/v1"
        )
    url = str(base_url).rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"{section}.base_url must be an http(s) URL, got {url!r}")
    return url


def chat_body(request: Request, json_schema: bool = True) -> dict[str, Any]:
    """The chat-completions request body of ``request``; ``json_schema=False`` leaves
    ``response_format`` out for servers that refuse it (the answer is still parsed and
    checked against the schema)."""
    content: list[dict[str, Any]] = []
    for part in request.parts:
        if isinstance(part, Image):
            url = f"data:{part.mime};base64," + base64.b64encode(part.data).decode("ascii")
            content.append({"type": "image_url", "image_url": {"url": url}})
        else:
            content.append({"type": "text", "text": part})
    s = request.settings
    body: dict[str, Any] = {
        "model": s.model,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": s.max_output_tokens,
        "temperature": s.temperature,
    }
    if s.top_logprobs is not None:
        body["logprobs"] = True
        body["top_logprobs"] = s.top_logprobs
    if request.schema is not None and json_schema:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {
                "name": request.schema.__name__,
                "schema": request.schema.model_json_schema(),
            },
        }
    return body


def response_entry(body: Any) -> dict[str, Any]:
    """The part of a chat completion worth keeping (what ``interpret`` reads)."""
    choices = body.get("choices") if isinstance(body, dict) else None
    choice = choices[0] if choices and isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    tokens = (choice.get("logprobs") or {}).get("content") or []
    first = tokens[0] if tokens and isinstance(tokens[0], dict) else {}
    top = first.get("top_logprobs")
    return {
        "text": message.get("content"),
        "finish_reason": choice.get("finish_reason"),
        "has_candidates": bool(choice),
        "top_logprobs": None
        if top is None
        else [
            {"token": e.get("token"), "logprob": e.get("logprob")}
            for e in top
            if isinstance(e, dict)
        ],
        "usage": body.get("usage") if isinstance(body, dict) else None,
        "model_version": body.get("model") if isinstance(body, dict) else None,
    }


def _short_body(response: requests.Response) -> str:
    """The server's own error message when it sends one (vLLM and OpenAI nest it)."""
    text = response.text or ""
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            text = str(error["message"])
        elif isinstance(error, str):
            text = error
        elif body.get("message"):
            text = str(body["message"])
    return " ".join(text.split())[:200]


class _Client:
    """One run's worker threads and their sessions."""

    def __init__(self, workers: int):
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mllm")
        self.local = threading.local()
        self.sessions: list[requests.Session] = []
        self.lock = threading.Lock()

    def session(self) -> requests.Session:
        session = getattr(self.local, "session", None)
        if session is None:
            session = self.local.session = requests.Session()
            with self.lock:
                self.sessions.append(session)
        return session

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        with self.lock:
            for session in self.sessions:
                session.close()


class OpenAICaller(Caller):
    def __init__(
        self, transport: dict[str, Any], log: logging.Logger, section: str = "rewards.mllm"
    ):
        super().__init__(transport, log)
        self.section = section
        self.base_url = check_base_url(transport.get("base_url"), section)
        self.url = f"{self.base_url}/chat/completions"
        self.api_key_env = str(transport.get("api_key_env", "OPENAI_API_KEY"))
        self.json_schema = transport.get("response_format", "json_schema") == "json_schema"
        self._headers: dict[str, str] = {}

    @property
    def mode(self) -> str:
        return self.cfg.get("mode", "online")

    def _ask_all(self, requests: list[Request], desc: str) -> list[Reply]:
        if self.mode == "batch":
            return self._from_batch_file(requests)
        return super()._ask_all(requests, desc)

    def _from_batch_file(self, requests: list[Request]) -> list[Reply]:
        """Answers from the batch output file of these questions, or the input file written
        and the run stopped with the command that answers it (see ``openai_batch``)."""
        from motionedit.mllm.openai_batch import batch_paths, read_output, write_batch

        if self.cache is None:
            raise MLLMError("mllm.mode: batch keeps its files under mllm.cache_dir; set one")
        source, output = batch_paths(requests, Path(self.cfg["cache_dir"]) / "batches")
        if not output.exists():
            if not source.exists():
                write_batch(source, requests, self.json_schema)
            model = requests[0].settings.model
            raise MLLMError(
                f"{len(requests)} questions are in the batch file {source}; answer them, e.g. "
                f"`python -m vllm.entrypoints.openai.run_batch -i {source} -o {output} "
                f"--model {model}` (or through a Batch API, its output saved as {output}), "
                "then run again: the answers are read from that file"
            )
        answers = read_output(output)
        replies = []
        for request in requests:
            response = answers.get(request.key)
            if response is None or "error" in response:
                why = (
                    "batch: no answer in the output file" if response is None else response["error"]
                )
                replies.append(Reply(key=request.key, error=why))
                continue
            reply = interpret(request, {"response": response, "batch": True}, cached=False)
            if reply.answered:
                self.cache.put(request.key, self.entry(request, reply))
            replies.append(reply)
        self.log.info("%d answers read from %s", sum(r.answered for r in replies), output)
        return replies

    def _open(self) -> _Client:
        self._headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            self._headers["Authorization"] = f"Bearer {key}"
        return _Client(self.cfg["concurrency"])

    async def _close(self, client: _Client) -> None:
        client.close()

    def _prepare(self, request: Request) -> bytes:
        return json.dumps(chat_body(request, self.json_schema)).encode()

    async def _send(self, client: _Client, prepared: bytes, request: Request) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(client.pool, self._post, client, prepared)

    def _post(self, client: _Client, body: bytes) -> dict[str, Any]:
        """One POST, on a worker thread."""
        timeout = self.cfg["timeout_s"]
        try:
            response = client.session().post(
                self.url, data=body, headers=self._headers, timeout=timeout
            )
        except requests.Timeout:
            raise TimeoutError from None
        except requests.ConnectionError as exc:
            raise Failure(f"connection: {type(exc).__name__}") from None
        except requests.RequestException as exc:
            raise Failure(f"request: {type(exc).__name__}") from None
        status = response.status_code
        if status in (401, 403):
            raise self._refused(status)
        if status != 200:
            wait = retry_after_s(response.headers.get("Retry-After"))
            raise Failure(f"http {status}: {_short_body(response)}", status, wait)
        try:
            return response_entry(response.json())
        except ValueError:
            raise Failure(f"http 200: not JSON: {response.text[:80]}", status) from None

    def _refused(self, status: int) -> MLLMError:
        if os.environ.get(self.api_key_env):
            why = f"the server refused the key held in ${self.api_key_env}"
        else:
            why = f"the server wants a key and ${self.api_key_env} is not set"
        return MLLMError(
            f"{self.url} answered http {status}: {why}; set it to the key the server was "
            f"started with (vllm serve --api-key) or name another variable in "
            f"{self.section}.api_key_env"
        )
