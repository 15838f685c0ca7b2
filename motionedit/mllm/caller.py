"""What every MLLM caller does the same way, whatever service answers.

A caller takes a list of requests and gives one reply per request back, in order. The
service-specific part (building the wire request, sending it, reading the answer, telling a
transient failure from a fatal one) is a subclass's: :class:`~motionedit.mllm.gemini.GeminiCaller`
(google-genai SDK, online or batch) and
:class:`~motionedit.mllm.openai_compatible.OpenAICaller` (chat completions, e.g. vLLM). The
rest lives here once, so both behave alike and a fix to the policy reaches both:

- answers already in the answer cache are read, not asked again (a caller without a cache
  directory caches nothing);
- equal questions in one run are asked once;
- online calls run up to ``concurrency`` at once under the rate limiter (requests and tokens
  per minute), behind one progress bar;
- 408, 429, 500, 502, 503 and 504, timeouts and dropped connections are retried with
  exponential backoff (capped at ``max_backoff_s``, with a jitter seeded by the request so
  reruns wait alike), never shorter than the retry delay the server asks for (Retry-After
  or its equivalent, itself capped at ``max_retry_after_s``: a server asking for more is
  broken, not busy); a 429 also holds every other call back for that delay;
- other HTTP errors are the item's error reply at once, and so is a call that failed after
  its last attempt (``"<error> (after N attempts)"``); only a problem that would fail every
  call alike (credentials, an unknown model) raises :class:`MLLMError` and stops the run.

The transport settings (``concurrency``, ``timeout_s``, ``max_attempts``, ``backoff_s``,
``max_backoff_s``, ``requests_per_minute``, ``tokens_per_minute``, ``cache_dir``) come as a
dict, the ``mllm`` section of the config for Gemini.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from motionedit.mllm.cache import AnswerCache
from motionedit.mllm.limits import RateLimiter
from motionedit.mllm.request import Reply, Request, interpret
from motionedit.runlog import progress_bar

#: Statuses a later attempt can get past: timeout, quota, and the server's transient errors.
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
#: Longest server-requested wait honoured by default (Retry-After, google.rpc.RetryInfo).
MAX_RETRY_AFTER_S = 600.0


class MLLMError(RuntimeError):
    """A problem no retry can fix (credentials, model name, configuration); stops the job."""


class Failure(Exception):
    """One failed attempt, as a caller's ``_send`` reports it to the shared retry policy.

    ``status`` is the HTTP status, or None when no answer came (a dropped connection), which
    is worth another attempt; ``retry_after`` is the wait the server asked for, in seconds.
    """

    def __init__(self, error: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(error)
        self.error = error
        self.status = status
        self.retry_after = retry_after


class Caller:
    """The shared part of the MLLM callers; subclasses implement the ``_`` hooks below."""

    #: Stop the run after this many HTTP 400s without one accepted answer (settings the
    #: service rejects for every request); None never stops on 400s.
    stop_after_rejections: int | None = None

    def __init__(self, transport: dict[str, Any], log: logging.Logger):
        self.cfg = transport
        self.log = log
        cache_dir = transport.get("cache_dir")
        self.cache = AnswerCache(cache_dir) if cache_dir else None
        self.calls_made = 0  # HTTP attempts (and batch submissions) this run
        # What the retry waits and the rate limiter wait with: a test swaps in a virtual
        # clock and checks the waits asked for, where timing the wall would be slow and flaky.
        self.clock: Callable[[], float] = time.monotonic
        self.sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep

    # ----------------------------------------------------------------- hooks
    @property
    def mode(self) -> str:
        return "online"

    def _open(self) -> Any:
        """A client for one run (raises MLLMError without credentials)."""
        raise NotImplementedError

    async def _close(self, client: Any) -> None:
        """Release what ``_open`` took."""

    def _prepare(self, request: Request) -> Any:
        """The request in the service's terms, built once for all attempts."""
        return request

    async def _send(self, client: Any, prepared: Any, request: Request) -> dict[str, Any]:
        """One attempt: the service's answer as a cache entry's ``response`` (what
        :func:`~motionedit.mllm.request.interpret` reads). Raises TimeoutError, Failure, or
        MLLMError for what no retry can fix."""
        raise NotImplementedError

    def _rejection_error(self, reply: Reply) -> MLLMError:
        return MLLMError(f"the service rejects every request of this stage ({reply.error})")

    def _ask_all(self, requests: list[Request], desc: str) -> list[Reply]:
        """Replies for distinct, uncached requests (Gemini's batch mode overrides this)."""
        return asyncio.run(self._run_online(requests, desc))

    # ----------------------------------------------------------------- public entry
    def run(self, requests: list[Request], desc: str) -> list[Reply]:
        """One reply per request, in order; cached answers are reused, the rest asked."""
        replies: list[Reply | None] = []
        for r in requests:
            entry = None if self.cache is None else self.cache.get(r.key)
            replies.append(None if entry is None else interpret(r, entry, cached=True))
        # Equal questions in one run (two pairs whose summaries read the same) are asked once.
        first: dict[str, int] = {}
        for i, rep in enumerate(replies):
            if rep is None:
                first.setdefault(requests[i].key, i)
        todo = sorted(first.values())
        self.log.info(
            "%s: %d requests, %d answered from the cache, %d distinct to ask (%s mode)",
            desc,
            len(requests),
            len(requests) - len(todo),
            len(todo),
            self.mode,
        )
        if todo:
            fresh = self._ask_all([requests[i] for i in todo], desc)
            by_key = {requests[i].key: reply for i, reply in zip(todo, fresh, strict=True)}
            for i, rep in enumerate(replies):
                if rep is None:
                    replies[i] = by_key[requests[i].key]
        done = [r for r in replies if r is not None]
        kinds = Counter(r.error.split(":", 1)[0] for r in done if r.error)
        if kinds:
            self.log.warning("%s: %d replies are errors: %s", desc, kinds.total(), dict(kinds))
        return done

    # ----------------------------------------------------------------- online
    async def _run_online(self, requests: list[Request], desc: str) -> list[Reply]:
        limiter = RateLimiter(
            self.cfg.get("requests_per_minute"),
            self.cfg.get("tokens_per_minute"),
            clock=self.clock,
            sleep=self.sleep,
        )
        client = self._open()
        slots = asyncio.Semaphore(self.cfg["concurrency"])
        replies: list[Reply | None] = [None] * len(requests)
        bar = progress_bar(len(requests), desc)

        accepted, rejected, stopping = 0, 0, False

        async def one(i: int) -> None:
            nonlocal accepted, rejected, stopping
            async with slots:
                if stopping:  # woken by the slot a failing call gave up: ask nothing more
                    return
                try:
                    reply = await self._ask(client, requests[i], limiter)
                except MLLMError:
                    stopping = True
                    raise
            if reply.answered:
                if self.cache is not None:
                    self.cache.put(requests[i].key, self.entry(requests[i], reply))
                accepted += 1
            elif reply.error.startswith("http 400"):
                rejected += 1
                # Settings the model does not take (a thinking budget it cannot turn off, a
                # resolution it lacks) fail every request alike: stop instead of filling a
                # shard with error rows that a rerun would not retry.
                limit = self.stop_after_rejections
                if limit is not None and rejected >= limit and not accepted:
                    stopping = True
                    raise self._rejection_error(reply)
            replies[i] = reply
            bar.update()

        try:
            async with asyncio.TaskGroup() as group:
                for i in range(len(requests)):
                    group.create_task(one(i))
        except* MLLMError as errors:
            raise errors.exceptions[0] from None
        finally:
            bar.close()
            await self._close(client)
        return [r for r in replies if r is not None]

    async def _ask(self, client: Any, request: Request, limiter: RateLimiter) -> Reply:
        """One request through the retry policy of the module docstring."""
        prepared = self._prepare(request)
        estimate = request.estimated_tokens()
        timeout = self.cfg["timeout_s"]
        attempts = self.cfg["max_attempts"]
        jitter = random.Random(request.key)
        error = ""
        for attempt in range(1, attempts + 1):
            await limiter.acquire(estimate)
            self.calls_made += 1
            start = time.monotonic()
            delay = None
            try:
                response = await asyncio.wait_for(self._send(client, prepared, request), timeout)
            except TimeoutError:
                error = f"timeout: no answer within {timeout:g} s"
            except Failure as failure:
                error = failure.error
                if failure.status is not None and failure.status not in RETRY_STATUS:
                    return Reply(key=request.key, error=error, attempts=attempt)
                if failure.retry_after is not None:
                    cap = self.cfg.get("max_retry_after_s", MAX_RETRY_AFTER_S)
                    delay = min(failure.retry_after, cap)
                if failure.status == 429:
                    limiter.pause(delay if delay is not None else self.cfg["backoff_s"])
            else:
                entry = {
                    "response": response,
                    "latency_s": round(time.monotonic() - start, 3),
                    "attempts": attempt,
                    "batch": False,
                }
                reply = interpret(request, entry, cached=False)
                limiter.settle(estimate, reply.usage.input_tokens or None)
                return reply
            if attempt < attempts:
                backoff = self.cfg["backoff_s"] * 2 ** (attempt - 1)
                backoff = min(self.cfg.get("max_backoff_s", backoff), backoff)
                wait = max(delay or 0.0, backoff * (0.5 + 0.5 * jitter.random()))
                self.log.info("%s: %s; retry %d in %.1f s", request.tag, error, attempt, wait)
                await self.sleep(wait)
        return Reply(key=request.key, error=f"{error} (after {attempt} attempts)", attempts=attempt)

    @staticmethod
    def entry(request: Request, reply: Reply) -> dict[str, Any]:
        """The cache entry of an answered call: what ``interpret`` reads, plus labels."""
        return {
            "response": reply.response,
            "latency_s": reply.latency_s,
            "attempts": reply.attempts,
            "batch": reply.batch,
            "model": request.settings.model,
            "prompt_version": request.prompt_version,
        }
