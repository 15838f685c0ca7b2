"""The MLLM call layer: the real google-genai SDK against a local Gemini wire-format server."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from conftest import ROOT
from gemini_stub import GeminiStub
from pydantic import BaseModel

from motionedit.config import validate_config
from motionedit.mllm import CallSettings, GeminiCaller, Image, MLLMError, Request, Usage
from motionedit.mllm.limits import RateLimiter
from motionedit.mllm.usage import cost_usd, price_of

LOG = logging.getLogger("test-mllm")
SENTINEL = "sentinel-key-7f3a9c"


class Answer(BaseModel):
    ok: bool
    note: str


def transport(tmp_path, url: str, **over) -> dict:
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["mllm"] = {
        "base_url": url,
        "cache_dir": str(tmp_path / "cache"),
        "timeout_s": 5,
        "max_attempts": 3,
        "backoff_s": 0.05,
        "max_backoff_s": 0.2,
        "requests_per_minute": None,
        "batch": {"poll_s": 0.05},
    } | over
    return validate_config(config)["mllm"]


def requests(n: int, schema=Answer, version: str = "t-v1") -> list[Request]:
    settings = CallSettings(
        model="gemini-2.5-flash", max_output_tokens=64, media_resolution="medium"
    )
    return [
        Request(
            parts=("Look:", Image(bytes([i]) * 50), f"question {i}"),
            settings=settings,
            prompt_version=version,
            schema=schema,
            tag=f"item{i}",
        )
        for i in range(n)
    ]


GOOD_PARSED = {"ok": True, "note": "fine"}
GOOD = json.dumps(GOOD_PARSED)


class VirtualClock:
    """A clock that only waits move, for a caller's retries and rate limiter.

    ``install`` makes a caller wait with it: every wait asked for is recorded in ``sleeps``
    and moves ``now`` on at once, so a test checks the waits themselves (deterministic and
    instant) instead of timing the wall clock on a machine busy with other work.
    """

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if seconds > 0:  # at least one tick, as a real clock: rounding can ask for 1e-17 s
            self.now = max(self.now + seconds, math.nextafter(self.now, math.inf))
        await asyncio.sleep(0)  # the other calls still take their turn

    def install(self, caller):
        caller.clock, caller.sleep = self, self.sleep
        return caller


class Held:
    """An answer the server holds until ``release`` is set (or ``limit_s`` passes).

    A client that gives up at its timeout returns while its calls are still held, so
    ``answered`` is 0 then; a client that waited for the server would only return after an
    answer went out. That tells the two apart without timing anything.
    """

    def __init__(self, answer: Callable[[dict], Any], limit_s: float = 10.0) -> None:
        self.answer, self.limit_s = answer, limit_s
        self.release = threading.Event()
        self.answered = 0
        self.lock = threading.Lock()

    def __call__(self, body: dict) -> Any:
        self.release.wait(self.limit_s)
        with self.lock:
            self.answered += 1
        return self.answer(body)


class Gate:
    """Counts the answers being worked on at once (``peak``). The first ``width`` calls are
    held until that many are in (or ``limit_s`` passes), so a caller that sends fewer at a
    time shows as a lower peak, not as a slower run, and one that sends more as a higher
    peak."""

    def __init__(self, answer: Callable[[dict], Any], width: int, limit_s: float = 2.0) -> None:
        self.answer, self.width, self.limit_s = answer, width, limit_s
        self.now = self.peak = self.arrived = 0
        self.cond = threading.Condition()

    def __call__(self, body: dict) -> Any:
        with self.cond:
            self.now += 1
            self.arrived += 1
            self.peak = max(self.peak, self.now)
            self.cond.notify_all()
            if self.arrived <= self.width:
                self.cond.wait_for(lambda: self.peak >= self.width, timeout=self.limit_s)
        try:
            return self.answer(body)
        finally:
            with self.cond:
                self.now -= 1


@pytest.fixture
def key(monkeypatch):
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.setenv("GEMINI_API_KEY", SENTINEL)


def test_success_is_parsed_cached_and_never_asked_twice(tmp_path, key):
    with GeminiStub(answer=lambda body: GOOD) as stub:
        cfg = transport(tmp_path, stub.url)
        replies = GeminiCaller(cfg, LOG).run(requests(5), "t")
        assert stub.count == 5 and stub.api_keys == {SENTINEL}
        assert [r.parsed for r in replies] == [{"ok": True, "note": "fine"}] * 5
        assert all(r.error is None and not r.cached for r in replies)
        assert replies[0].usage == Usage(300, 50)  # thinking tokens are billed as output
        assert replies[0].model_version == "gemini-2.5-flash-stub-001"
        # The request on the wire: images inline, the schema and settings in generationConfig.
        body = stub.calls[0]
        assert body["generationConfig"]["responseMimeType"] == "application/json"
        assert body["generationConfig"]["mediaResolution"] == "MEDIA_RESOLUTION_MEDIUM"
        assert set(body["generationConfig"]["responseSchema"]["properties"]) == {"ok", "note"}
        # A second caller (a rerun) answers from the cache: no call, no key needed.
        again = GeminiCaller(cfg, LOG)
        replies2 = again.run(requests(5), "t")
        assert stub.count == 5 and again.calls_made == 0
        assert [r.parsed for r in replies2] == [r.parsed for r in replies]
        assert all(r.cached for r in replies2)
        # Equal questions in one run are asked once.
        twice = requests(7)[5:] * 2
        assert [r.parsed for r in GeminiCaller(cfg, LOG).run(twice, "t")] == [GOOD_PARSED] * 4
        assert stub.count == 7
        # A new prompt version is a new question.
        GeminiCaller(cfg, LOG).run(requests(1, version="t-v2"), "t")
        assert stub.count == 8
    cached = "".join(p.read_text() for p in (tmp_path / "cache").rglob("*.json"))
    assert SENTINEL not in cached and "question 0" not in cached  # answers, not prompts


def test_429_waits_for_the_servers_retry_delay_then_succeeds(tmp_path, key):
    with GeminiStub(answer=lambda body: GOOD) as stub:
        stub.script.append({"status": 429, "retry_delay": "0.6s"})
        clock = VirtualClock()
        caller = clock.install(GeminiCaller(transport(tmp_path, stub.url), LOG))
        [reply] = caller.run(requests(1), "t")
        assert clock.now == pytest.approx(0.6)  # the server's delay, not the 0.05 s backoff
        assert reply.error is None and reply.attempts == 2 and stub.count == 2


def test_500_is_retried_and_a_lasting_500_is_an_error_row_not_cached(tmp_path, key):
    with GeminiStub(answer=lambda body: GOOD) as stub:
        stub.script.extend([{"status": 500}] * 4)  # 3 attempts for item 0, then 1 for item 1
        cfg = transport(tmp_path, stub.url, concurrency=1)
        first, second = GeminiCaller(cfg, LOG).run(requests(2), "t")
        assert first.error.startswith("http 500: INTERNAL") and "after 3 attempts" in first.error
        assert not first.answered and first.parsed is None
        assert second.error is None and second.attempts == 2
        # The failure was not cached: a rerun asks for it again (and only for it).
        again = GeminiCaller(cfg, LOG).run(requests(2), "t")
        assert again[0].error is None and stub.count == 6


def test_a_hang_past_the_timeout_is_a_timeout_row(tmp_path, key):
    held = Held(lambda body: GOOD)
    with GeminiStub(answer=held) as stub:
        try:
            cfg = transport(tmp_path, stub.url, timeout_s=0.4, max_attempts=2)
            [reply] = GeminiCaller(cfg, LOG).run(requests(1), "t")
            assert held.answered == 0  # both tries given up while the server still held them
        finally:
            held.release.set()
        assert reply.error.startswith("timeout: no answer within 0.4 s") and reply.attempts == 2


@pytest.mark.parametrize(
    ("step", "error"),
    [
        ({"text": "this is not json"}, "schema: "),
        ({"text": json.dumps({"ok": "maybe"})}, "schema: ok: "),
        ({"finish": "SAFETY"}, "finish: generation stopped with SAFETY"),
        (
            {"finish": "MAX_TOKENS", "text": '{"ok": tr'},
            "finish: generation stopped with MAX_TOKENS",
        ),
        ({"blocked": "PROHIBITED_CONTENT"}, "blocked: the prompt was blocked (PROHIBITED_CONTENT)"),
        ({"empty": True}, "empty: the reply had no candidates"),
    ],
)
def test_refusals_and_bad_answers_are_error_rows_that_stay_answered(tmp_path, key, step, error):
    with GeminiStub(answer=lambda body: GOOD) as stub:
        stub.script.append(step)
        cfg = transport(tmp_path, stub.url)
        [reply] = GeminiCaller(cfg, LOG).run(requests(1), "t")
        assert reply.error.startswith(error) and reply.parsed is None
        assert stub.count == 1  # not retried: the service answered
        # The answer was paid for: a rerun reads it (and the same error) from the cache.
        [again] = GeminiCaller(cfg, LOG).run(requests(1), "t")
        assert again.cached and again.error == reply.error and stub.count == 1


def test_rejected_credentials_and_unknown_models_stop_the_run(tmp_path, key):
    with GeminiStub() as stub:
        stub.script.append({"status": 403, "message": "permission denied"})
        with pytest.raises(MLLMError, match="refused the credentials.*GEMINI_API_KEY"):
            GeminiCaller(transport(tmp_path, stub.url), LOG).run(requests(3), "t")
    with GeminiStub() as stub:  # a new server: calls cancelled above may still be arriving
        stub.script.append({"status": 404, "message": "no such model"})
        with pytest.raises(MLLMError, match="'gemini-2.5-flash' was not found.*judge.gemini"):
            GeminiCaller(transport(tmp_path / "b", stub.url), LOG).run(requests(1), "t")


def test_settings_the_service_rejects_for_every_request_stop_the_run(tmp_path, key):
    with GeminiStub(answer=lambda body: GOOD) as stub:
        stub.script.extend([{"status": 400, "message": "thinking cannot be turned off"}] * 3)
        cfg = transport(tmp_path, stub.url, concurrency=1)
        with pytest.raises(MLLMError, match="rejects every request.*thinking cannot be turned"):
            GeminiCaller(cfg, LOG).run(requests(6), "t")
        assert stub.count == 3


def test_without_a_key_the_error_names_the_variables(tmp_path, monkeypatch):
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_GENAI_USE_VERTEXAI", raising=False)
    with pytest.raises(MLLMError, match="export GEMINI_API_KEY"):
        GeminiCaller(transport(tmp_path, "http://127.0.0.1:9"), LOG).run(requests(1), "t")


def test_batch_mode_submits_once_polls_and_collects(tmp_path, key):
    with GeminiStub(answer=lambda body: GOOD, batch_pending_polls=2) as stub:
        stub.script.extend([{}, {"finish": "SAFETY"}])
        cfg = transport(tmp_path, stub.url, mode="batch")
        caller = GeminiCaller(cfg, LOG)
        replies = caller.run(requests(3), "t")
        assert stub.batch_submissions == 1 and stub.count == 0
        assert [r.error for r in replies] == [None, replies[1].error, None]
        assert replies[1].error.startswith("finish: generation stopped with SAFETY")
        assert all(r.batch for r in replies) and replies[0].parsed == {"ok": True, "note": "fine"}
        assert not list((tmp_path / "cache" / "batches").glob("*.json"))  # collected, forgotten
        assert stub.batches["batches/job1"]["display_name"].startswith("motionedit-t-")
        GeminiCaller(cfg, LOG).run(requests(3), "t")
        assert stub.batch_submissions == 1  # all cached


def test_a_killed_batch_wait_resumes_polling_the_same_job(tmp_path, key):
    with GeminiStub(answer=lambda body: GOOD, batch_pending_polls=10**6) as stub:
        cfg = transport(
            tmp_path, stub.url, mode="batch", batch={"poll_s": 0.05, "max_wait_h": 1e-4}
        )
        with pytest.raises(MLLMError, match="still JOB_STATE_RUNNING.*run the stage again"):
            GeminiCaller(cfg, LOG).run(requests(2), "t")
        [job_file] = (tmp_path / "cache" / "batches").glob("*.json")
        assert json.loads(job_file.read_text())["name"] == "batches/job1"
        stub.batch_pending_polls = 0
        stub.poll_failures = 2  # a flaky poll is tried again, not a reason to stop
        replies = GeminiCaller(cfg, LOG).run(requests(2), "t")
        assert stub.batch_submissions == 1 and all(r.error is None for r in replies)


def test_concurrent_calls_keep_order_and_stay_within_the_quota(tmp_path, key):
    def answer(body):
        n = body["contents"][0]["parts"][-1]["text"].split()[-1]
        return json.dumps({"ok": True, "note": n})

    gate = Gate(answer, width=8)
    with GeminiStub(answer=gate, requests_per_minute=1200) as stub:
        cfg = transport(tmp_path, stub.url, concurrency=8, requests_per_minute=1200)
        clock = VirtualClock()
        replies = clock.install(GeminiCaller(cfg, LOG)).run(requests(30), "t")
        assert [r.parsed["note"] for r in replies] == [str(i) for i in range(30)]
        assert stub.rejected == 0 and stub.count == 30
        assert gate.peak == 8  # as many at once as configured, never more
        # A burst of one second's worth (20), then 20 a second: the 10 past the burst were
        # held back 1/20 s each.
        assert sum(clock.sleeps) == pytest.approx((30 - 20) / 20)
        assert clock.now == pytest.approx((30 - 20) / 20)


def test_the_limiter_spaces_requests_and_holds_on_a_pause():
    clock = VirtualClock()
    limiter = RateLimiter(60, None, burst_seconds=1.0, clock=clock, sleep=clock.sleep)

    def take(n: int) -> list[float]:
        async def acquire() -> None:
            for _ in range(n):
                await limiter.acquire(10)

        clock.sleeps.clear()
        asyncio.run(acquire())
        return list(clock.sleeps)

    assert take(1) == []  # the burst allowance
    assert take(2) == pytest.approx([1.0, 1.0])  # then one a second
    limiter.pause(5.0)
    assert sum(take(1)) == pytest.approx(5.0)


def test_cache_writes_from_many_threads_leave_whole_entries(tmp_path):
    from motionedit.mllm.cache import AnswerCache

    cache = AnswerCache(tmp_path)
    big = {"response": {"text": "x" * 200_000}}

    def write():
        for _ in range(20):
            cache.put("ab" * 32, big)

    threads = [threading.Thread(target=write) for _ in range(4)]
    for t in threads:
        t.start()
    for _ in range(50):
        entry = cache.get("ab" * 32)
        assert entry is None or entry == big
    for t in threads:
        t.join()
    assert cache.get("ab" * 32) == big
    assert [p.name for p in (tmp_path / "ab").iterdir()] == ["ab" * 32 + ".json"]


def test_costs_follow_the_price_table_and_the_batch_discount():
    prices = {"gemini-2.5-flash": {"input": 0.30, "output": 2.50}}
    usage = Usage(1_000_000, 100_000)
    assert cost_usd(usage, price_of(prices, "gemini-2.5-flash-001"), False, 0.5) == 0.55
    assert cost_usd(usage, price_of(prices, "gemini-2.5-flash"), True, 0.5) == 0.275
    assert cost_usd(usage, price_of(prices, "gemini-3-ultra"), False, 0.5) is None


def test_large_frames_are_downscaled_with_a_key_from_the_original_file(tmp_path):
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    big, small = tmp_path / "big.png", tmp_path / "small.png"
    cv2.imwrite(str(big), rng.integers(0, 255, (900, 1600, 3), dtype=np.uint8))
    cv2.imwrite(str(small), rng.integers(0, 255, (90, 160, 3), dtype=np.uint8))
    image = Image.read(big, max_side=1024)
    decoded = cv2.imdecode(np.frombuffer(image.data, np.uint8), cv2.IMREAD_COLOR)
    assert image.mime == "image/jpeg" and decoded.shape == (576, 1024, 3)
    assert "@1024" in image.sha256 and len(image.data) < big.stat().st_size
    assert Image.read(big, max_side=1024).sha256 == image.sha256
    assert Image.read(big, max_side=512).sha256 != image.sha256
    as_is = Image.read(small, max_side=1024)  # small enough: the file's own bytes
    assert as_is.data == small.read_bytes() and as_is.mime == "image/png"
    for content in (b"nope", b""):
        (tmp_path / "bad.png").write_bytes(content)
        with pytest.raises(OSError, match="not a readable image"):
            Image.read(tmp_path / "bad.png", max_side=1024)


def test_the_token_quota_holds_calls_back_and_counts_what_the_server_reports():
    clock = VirtualClock()  # 10 tokens/s below
    limiter = RateLimiter(None, 600, burst_seconds=1.0, clock=clock, sleep=clock.sleep)

    def take(tokens: float) -> float:
        start = clock.now
        asyncio.run(limiter.acquire(tokens))
        return clock.now - start

    assert take(10) == 0  # the one-second burst
    assert take(5) == pytest.approx(0.5)
    limiter.settle(estimated=5, actual=25)  # the server counted 20 more: they are owed
    assert take(5) == pytest.approx(2.5)
    assert take(50) == pytest.approx(1.0)  # larger than the bucket: waits for a full one


CRASHING_RUN = """
import logging, sys, yaml
sys.path[:0] = {paths!r}
from test_mllm_gemini import requests
from motionedit.mllm import GeminiCaller
cfg = yaml.safe_load(open({cfg!r}))
GeminiCaller(cfg, logging.getLogger("x")).run(requests(40), "t")
"""


def test_a_run_killed_mid_way_asks_only_the_unanswered_on_restart(tmp_path, key):
    import signal
    import subprocess
    import sys

    from motionedit.mllm.cache import AnswerCache

    def question(body: dict) -> str:
        return body["contents"][0]["parts"][-1]["text"]

    twelve = threading.Event()

    def answer(body):
        if stub.count >= 12:
            twelve.set()
        return GOOD

    with GeminiStub(answer=answer, latency_s=0.05) as stub:
        cfg = transport(tmp_path, stub.url, concurrency=2)
        (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
        script = CRASHING_RUN.format(
            paths=[str(ROOT), str(ROOT / "tests")], cfg=str(tmp_path / "cfg.yaml")
        )
        proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.DEVNULL)
        assert twelve.wait(60), "the run asked fewer than 12 questions"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    cache = AnswerCache(tmp_path / "cache")
    asked = requests(40)
    unanswered = {f"question {i}" for i, r in enumerate(asked) if cache.get(r.key) is None}
    assert 0 < len(unanswered) < 40
    # The restart talks to a new server, so a call of the killed run still on its way to
    # the old one cannot be mistaken for a question asked again.
    with GeminiStub(answer=lambda body: GOOD) as stub:
        replies = GeminiCaller(transport(tmp_path, stub.url, concurrency=2), LOG).run(asked, "t")
        assert all(r.error is None for r in replies)
        again = [question(body) for body in stub.calls]
    assert sorted(again) == sorted(unanswered)  # nothing answered before the kill, once each


def test_batch_jobs_are_all_recorded_before_waiting_and_only_failures_are_resubmitted(
    tmp_path, key
):
    with GeminiStub(answer=lambda body: GOOD, batch_pending_polls=10**6) as stub:
        small = {"poll_s": 0.02, "max_wait_h": 1e-4, "max_inline_mb": 1e-4}  # one request a job
        cfg = transport(tmp_path, stub.url, mode="batch", batch=small)
        with pytest.raises(MLLMError, match="still JOB_STATE_RUNNING"):
            GeminiCaller(cfg, LOG).run(requests(3), "t")
        assert stub.batch_submissions == 3
        assert len(list((tmp_path / "cache" / "batches").glob("*.json"))) == 3
        # The rerun collects the three recorded jobs; one of its items failed on the server.
        stub.batch_pending_polls = 0
        stub.script.extend([{}, {"status": 500}, {}])
        replies = GeminiCaller(cfg, LOG).run(requests(3), "t")
        assert stub.batch_submissions == 3
        [failed] = [r for r in replies if r.error]  # jobs are collected in file order
        assert failed.error.startswith("batch: item failed: 500")
        # Only the failed question is submitted again.
        replies = GeminiCaller(cfg, LOG).run(requests(3), "t")
        assert stub.batch_submissions == 4 and all(r.error is None for r in replies)


@pytest.fixture
def service_account(tmp_path, monkeypatch):
    """Application default credentials of a made-up service account: the SDK signs a real JWT
    and trades it for a token at ``token_uri``, which the test points at the local server."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    def install(token_uri: str) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        info = {"type": "service_account", "project_id": "proj", "private_key_id": "k1",
                "private_key": pem, "client_email": "runner@proj.iam.gserviceaccount.com",
                "client_id": "1", "token_uri": token_uri}  # fmt: skip
        path = tmp_path / "adc.json"
        path.write_text(json.dumps(info))
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))

    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI"):
        monkeypatch.delenv(name, raising=False)
    return install


@pytest.mark.parametrize("switch", ["config", "environment"])
def test_vertex_ai_mode_uses_the_project_endpoint_and_oauth(
    tmp_path, monkeypatch, service_account, switch
):
    with GeminiStub(answer=lambda body: GOOD) as stub:
        service_account(f"{stub.url}/token")
        if switch == "config":
            cfg = transport(
                tmp_path, stub.url, vertexai=True, project="proj", location="europe-west4"
            )
        else:
            monkeypatch.setenv("GOOGLE_GENAI_USE_VERTEXAI", "true")
            monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "proj")
            monkeypatch.setenv("GOOGLE_CLOUD_LOCATION", "europe-west4")
            cfg = transport(tmp_path, stub.url)
        [reply] = GeminiCaller(cfg, LOG).run(requests(1), "t")
        assert reply.parsed == GOOD_PARSED
        assert stub.paths[0].endswith(
            "/projects/proj/locations/europe-west4/publishers/google/models/gemini-2.5-flash"
            ":generateContent"
        )
        assert stub.authorizations == {"Bearer stub-access-token"} and not stub.api_keys
