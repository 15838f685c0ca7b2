"""Gemini through the google-genai SDK: cached, rate-limited, retried, online or batch.

Every stage that asks Gemini (judge, rewrite, evaluation, the Gemini reward) hands a list
of requests to one ``GeminiCaller`` and gets one reply per request back, in order. The
cache, the in-run dedupe, the online concurrency, quota and retry policy are the shared
:class:`~motionedit.mllm.caller.Caller`'s; this module adds what is Gemini's own:

- the SDK client, its request parts and generation config, and its errors: the retry delay
  comes from google.rpc.RetryInfo in the error body, else from the Retry-After header;
- batch mode sends the requests to the Batch API (half price) and records the job name
  under ``<cache_dir>/batches/`` before it waits, so a killed run polls the same job again
  instead of paying for a second one;
- a refusal, a cut-off answer or an answer that fails the schema comes back as an error
  reply, and so does a call that failed after its last retry; only credentials or a model
  that the service rejects outright stop the job, since every call would fail the same way.

The API key is read from GEMINI_API_KEY or GOOGLE_API_KEY when the first call is needed
(a run answered entirely from the cache needs no key) and is never logged or stored.
Vertex AI is used when ``mllm.vertexai`` is true or GOOGLE_GENAI_USE_VERTEXAI is set, with
the project and location from the config or the SDK's environment variables.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

from motionedit.mllm.cache import write_json_atomic
from motionedit.mllm.caller import RETRY_STATUS, Caller, Failure, MLLMError
from motionedit.mllm.request import Image, Reply, Request, interpret
from motionedit.retry_after import retry_after_s
from motionedit.runlog import progress_bar


def _http_library_errors() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """Timeout and other transport errors of the HTTP libraries the SDK may use (it ships with
    httpx2 and can be switched to httpx)."""
    timeouts, errors = [], []
    for name in ("httpx2", "httpx"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        timeouts.append(module.TimeoutException)
        errors.append(module.HTTPError)
    return tuple(timeouts), tuple(errors)


_TIMEOUTS, _HTTP_ERRORS = _http_library_errors()

API_KEY_VARIABLES = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
BATCH_DONE = {
    "JOB_STATE_SUCCEEDED",
    "JOB_STATE_PARTIALLY_SUCCEEDED",
    "JOB_STATE_FAILED",
    "JOB_STATE_CANCELLED",
    "JOB_STATE_EXPIRED",
}


def _enum(value: Any) -> str | None:
    return None if value is None else str(getattr(value, "value", value))


def response_entry(response: Any) -> dict[str, Any]:
    """The part of an SDK response worth keeping: text, why it stopped, tokens, model version."""
    candidates = response.candidates or []
    feedback = response.prompt_feedback
    text = None
    if candidates and candidates[0].content and candidates[0].content.parts:
        text = "".join(p.text for p in candidates[0].content.parts if p.text and not p.thought)
    usage = response.usage_metadata
    return {
        "text": text,
        "finish_reason": _enum(candidates[0].finish_reason) if candidates else None,
        "block_reason": _enum(feedback.block_reason) if feedback else None,
        "has_candidates": bool(candidates),
        "usage": usage.model_dump(mode="json", exclude_none=True) if usage else None,
        "model_version": response.model_version,
    }


def retry_delay(exc: Exception) -> float | None:
    """The server's requested wait: google.rpc.RetryInfo in the error body, or Retry-After."""
    body = getattr(exc, "details", None)
    if isinstance(body, dict):
        for item in (body.get("error") or {}).get("details") or []:
            match = re.fullmatch(r"([\d.]+)s", str(item.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    return retry_after_s(headers.get("retry-after"))


class GeminiCaller(Caller):
    """``transport`` is the validated ``mllm`` section of the config."""

    stop_after_rejections = 3

    def __init__(self, transport: dict[str, Any], log: logging.Logger):
        super().__init__(transport, log)
        self._secret: str | None = None

    @property
    def mode(self) -> str:
        return self.cfg["mode"]

    # ----------------------------------------------------------------- the client
    def _client(self) -> Any:
        """A new SDK client: its async transport belongs to the event loop of one run."""
        from google import genai
        from google.genai import types

        http: dict[str, Any] = {"timeout": int(self.cfg["timeout_s"] * 1000)}
        if self.cfg.get("base_url"):
            http["base_url"] = self.cfg["base_url"]
        if self.cfg.get("api_version"):
            http["api_version"] = self.cfg["api_version"]
        options = types.HttpOptions(**http)
        vertex_env = os.environ.get("GOOGLE_GENAI_USE_VERTEXAI", "").lower() in ("1", "true")
        if self.cfg.get("vertexai") or vertex_env:
            # Passed explicitly: with a base_url the SDK would ignore the environment's.
            return genai.Client(
                vertexai=True,
                project=self.cfg.get("project") or os.environ.get("GOOGLE_CLOUD_PROJECT"),
                location=self.cfg.get("location") or os.environ.get("GOOGLE_CLOUD_LOCATION"),
                http_options=options,
            )
        key = next((os.environ[v] for v in API_KEY_VARIABLES if os.environ.get(v)), None)
        if not key:
            raise MLLMError(
                "no Gemini API key: export GEMINI_API_KEY (or GOOGLE_API_KEY) before running, "
                "set mllm.vertexai: true for Vertex AI, or use the offline backend; keys are "
                "read from the environment only, never from the config"
            )
        self._secret = key
        return genai.Client(vertexai=False, api_key=key, http_options=options)

    def _scrub(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    @staticmethod
    def _contents(request: Request) -> list[Any]:
        from google.genai import types

        return [
            types.Part.from_bytes(data=p.data, mime_type=p.mime)
            if isinstance(p, Image)
            else types.Part.from_text(text=p)
            for p in request.parts
        ]

    @staticmethod
    def _config(request: Request) -> Any:
        from google.genai import types

        s = request.settings
        config: dict[str, Any] = {
            "temperature": s.temperature,
            "max_output_tokens": s.max_output_tokens,
        }
        if request.schema is not None:
            config["response_mime_type"] = "application/json"
            config["response_schema"] = request.schema
        if s.media_resolution:
            config["media_resolution"] = f"MEDIA_RESOLUTION_{s.media_resolution.upper()}"
        if s.thinking_budget is not None:
            config["thinking_config"] = types.ThinkingConfig(thinking_budget=s.thinking_budget)
        return types.GenerateContentConfig(**config)

    def _fatal(self, exc: Exception, request: Request) -> MLLMError | None:
        code = getattr(exc, "code", None)
        text = self._scrub(f"{getattr(exc, 'status', '')}: {getattr(exc, 'message', exc)}")
        if code in (401, 403) or "API_KEY_INVALID" in str(getattr(exc, "details", "")):
            return MLLMError(
                f"the service refused the credentials (HTTP {code} {text}); check "
                "GEMINI_API_KEY / GOOGLE_API_KEY, or the Vertex AI project and permissions"
            )
        if code == 404:
            return MLLMError(
                f"model {request.settings.model!r} was not found (HTTP 404 {text}); fix the "
                "'model' setting of this stage (e.g. judge.gemini.model)"
            )
        return None

    def _rejection_error(self, reply: Reply) -> MLLMError:
        return MLLMError(
            f"the service rejects every request of this stage ({reply.error}); "
            "fix the stage's settings (model, thinking_budget, media_resolution)"
        )

    # ----------------------------------------------------------------- online
    def _ask_all(self, requests: list[Request], desc: str) -> list[Reply]:
        if self.mode == "batch":
            return self._run_batch(requests, desc)
        return super()._ask_all(requests, desc)

    def _open(self) -> Any:
        return self._client()

    async def _close(self, client: Any) -> None:
        await client.aio.aclose()

    def _prepare(self, request: Request) -> tuple[list[Any], Any]:
        return self._contents(request), self._config(request)

    async def _send(
        self, client: Any, prepared: tuple[list[Any], Any], request: Request
    ) -> dict[str, Any]:
        from google.genai.errors import APIError, UnknownApiResponseError

        contents, config = prepared
        try:
            response = await client.aio.models.generate_content(
                model=request.settings.model, contents=contents, config=config
            )
        except _TIMEOUTS:
            raise TimeoutError from None
        except (*_HTTP_ERRORS, UnknownApiResponseError) as exc:
            raise Failure(f"connection: {self._scrub(str(exc)) or type(exc).__name__}") from None
        except APIError as exc:
            fatal = self._fatal(exc, request)
            if fatal is not None:
                raise fatal from None
            error = self._scrub(f"http {exc.code}: {exc.status}: {exc.message}")
            raise Failure(error, exc.code, retry_delay(exc)) from None
        return response_entry(response)

    # ----------------------------------------------------------------- batch
    def _chunks(self, requests: list[Request]) -> list[list[Request]]:
        """Inline batch requests are limited in size: split by the base64 size of their parts."""
        limit = self.cfg["batch"]["max_inline_mb"] * 1e6
        chunks: list[list[Request]] = [[]]
        size = 0.0
        for r in requests:
            n = sum(len(p.data) * 4 / 3 if isinstance(p, Image) else len(p) for p in r.parts)
            if chunks[-1] and size + n > limit:
                chunks.append([])
                size = 0.0
            chunks[-1].append(r)
            size += n
        return chunks

    def _run_batch(self, requests: list[Request], desc: str) -> list[Reply]:
        """First collect the jobs an interrupted run left for any of these questions, then
        submit the rest (every chunk before waiting on any) and collect those."""
        client = self._client()
        wanted = {r.key: r for r in requests}
        replies: dict[str, Reply] = {}
        try:
            for job_file in sorted((Path(self.cfg["cache_dir"]) / "batches").glob("*.json")):
                job = json.loads(job_file.read_text())
                if wanted.keys() & set(job["keys"]):
                    self.log.info("%s: resuming batch job %s (%s)", desc, job["name"], job_file)
                    replies.update(self._collect(client, job_file, job, wanted))
            rest = [r for r in requests if r.key not in replies]
            jobs = [self._submit(client, chunk, desc) for chunk in self._chunks(rest) if chunk]
            for job_file, job in jobs:
                replies.update(self._collect(client, job_file, job, wanted))
        finally:
            client.close()
        return [replies[r.key] for r in requests]

    def _submit(self, client: Any, chunk: list[Request], desc: str) -> tuple[Path, dict]:
        """Create one batch job and record it before anything waits on it."""
        from google.genai import types
        from google.genai.errors import APIError

        keys = [r.key for r in chunk]
        digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()
        job_file = Path(self.cfg["cache_dir"]) / "batches" / f"{digest}.json"
        self.calls_made += 1
        try:
            created = client.batches.create(
                model=chunk[0].settings.model,
                src=[
                    types.InlinedRequest(
                        contents=self._contents(r), config=self._config(r), metadata={"key": r.key}
                    )
                    for r in chunk
                ],
                config=types.CreateBatchJobConfig(display_name=f"motionedit-{desc}-{digest[:12]}"),
            )
        except (APIError, *_HTTP_ERRORS) as exc:
            fatal = self._fatal(exc, chunk[0]) if isinstance(exc, APIError) else None
            why = self._scrub(str(exc))
            raise (
                fatal or MLLMError(f"submitting the batch failed ({why}); run it again")
            ) from None
        job = {
            "name": created.name,
            "model": chunk[0].settings.model,
            "keys": keys,
            "submitted": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        write_json_atomic(job_file, job)
        self.log.info("%s: submitted batch job %s with %d requests", desc, created.name, len(keys))
        return job_file, job

    def _collect(
        self, client: Any, job_file: Path, job: dict, wanted: dict[str, Request]
    ) -> dict[str, Reply]:
        """Wait for a job, cache every answer it holds, and reply for the wanted keys."""
        name = job["name"]
        finished = self._wait(client, name, job_file)
        state = _enum(finished.state)
        replies: dict[str, Reply] = {}
        for item in (finished.dest.inlined_responses if finished.dest else None) or []:
            key = (item.metadata or {}).get("key")
            if item.error is not None:
                why = self._scrub(f"batch: item failed: {item.error.code}: {item.error.message}")
                if key in wanted:
                    replies[key] = Reply(key=key, batch=True, error=why)
            elif item.response is not None and key:
                entry = {"response": response_entry(item.response), "latency_s": 0.0,
                         "attempts": 1, "batch": True, "model": job["model"]}  # fmt: skip
                self.cache.put(key, entry)  # also answers a question this run did not ask
                if key in wanted:
                    replies[key] = interpret(wanted[key], entry, cached=False)
        missing = f"batch: job {name} ended in {state} without an answer for this request"
        for key in job["keys"]:
            if key in wanted:
                replies.setdefault(key, Reply(key=key, batch=True, error=missing))
        job_file.unlink(missing_ok=True)
        return replies

    def _fatal_poll(self, exc: Exception, name: str, job_file: Path) -> MLLMError:
        return MLLMError(
            f"the batch job {name} cannot be read ({self._scrub(str(exc))}); if it is gone, "
            f"delete {job_file} and run the stage again to submit a new one"
        )

    def _wait(self, client: Any, name: str, job_file: Path) -> Any:
        from google.genai.errors import APIError

        poll = self.cfg["batch"]["poll_s"]
        deadline = time.monotonic() + self.cfg["batch"]["max_wait_h"] * 3600
        bar = progress_bar(0, f"batch {name}")
        try:
            while True:
                try:
                    job = client.batches.get(name=name)
                    state = _enum(job.state)
                except (APIError, *_HTTP_ERRORS) as exc:
                    if isinstance(exc, APIError) and exc.code not in RETRY_STATUS:
                        raise self._fatal_poll(exc, name, job_file) from None
                    state = f"unknown ({self._scrub(str(exc))})"
                    self.log.info("polling %s failed: %s; trying again", name, state)
                bar.set_postfix_str(str(state))
                if state in BATCH_DONE:
                    return job
                if time.monotonic() > deadline:
                    raise MLLMError(
                        f"batch job {name} is still {state} after "
                        f"{self.cfg['batch']['max_wait_h']} h; run the stage again to keep "
                        f"waiting for it (its name is kept in {job_file})"
                    )
                time.sleep(poll)
        finally:
            bar.close()
