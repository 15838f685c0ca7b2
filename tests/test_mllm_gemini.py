"""The MLLM call layer: the real google-genai SDK against a local Gemini wire-format server."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time

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
        start = time.monotonic()
        [reply] = GeminiCaller(transport(tmp_path, stub.url), LOG).run(requests(1), "t")
        assert time.monotonic() - start >= 0.6  # not the 0.05 s backoff
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
    with GeminiStub(answer=lambda body: GOOD) as stub:
        stub.script.extend([{"hang": 2.0}, {"hang": 2.0}])
        cfg = transport(tmp_path, stub.url, timeout_s=0.4, max_attempts=2)
        start = time.monotonic()
        [reply] = GeminiCaller(cfg, LOG).run(requests(1), "t")
        assert reply.error.startswith("timeout: no answer within 0.4 s")
        assert time.monotonic() - start < 3.0  # the server would hold both tries for 4 s


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

    with GeminiStub(answer=answer, latency_s=0.05, requests_per_minute=1200) as stub:
        cfg = transport(tmp_path, stub.url, concurrency=8, requests_per_minute=1200)
        start = time.monotonic()
        replies = GeminiCaller(cfg, LOG).run(requests(30), "t")
        took = time.monotonic() - start
        assert [r.parsed["note"] for r in replies] == [str(i) for i in range(30)]
        assert stub.rejected == 0
        assert took >= (30 - 20) / 20  # 20 requests a second after a burst of one second's worth


def test_the_limiter_spaces_requests_and_holds_on_a_pause():
    clock = [0.0]
    limiter = RateLimiter(60, None, burst_seconds=1.0, clock=lambda: clock[0])

    async def take(n):
        sleeps = []
        real_sleep = asyncio.sleep

        async def fake_sleep(s):
            sleeps.append(s)
            clock[0] += s
            await real_sleep(0)

        asyncio.sleep, saved = fake_sleep, asyncio.sleep
        try:
            for _ in range(n):
                await limiter.acquire(10)
        finally:
            asyncio.sleep = saved
        return sleeps

    assert asyncio.run(take(1)) == []  # the burst allowance
    assert asyncio.run(take(2)) == pytest.approx([1.0, 1.0])  # then one a second
    limiter.pause(5.0)
    assert sum(asyncio.run(take(1))) == pytest.approx(5.0)


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
    clock = [0.0]
    limiter = RateLimiter(None, 600, burst_seconds=1.0, clock=lambda: clock[0])  # 10 tokens/s

    async def take(tokens):
        async def fake_sleep(s):
            clock[0] += s

        saved, asyncio.sleep = asyncio.sleep, fake_sleep
        try:
            start = clock[0]
            await limiter.acquire(tokens)
            return clock[0] - start
        finally:
            asyncio.sleep = saved

    assert asyncio.run(take(10)) == 0  # the one-second burst
    assert asyncio.run(take(5)) == pytest.approx(0.5)
    limiter.settle(estimated=5, actual=25)  # the server counted 20 more: they are owed
    assert asyncio.run(take(5)) == pytest.approx(2.5)
    assert asyncio.run(take(50)) == pytest.approx(
        1.0
    )  # larger than the bucket: waits for a full one


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

    with GeminiStub(answer=lambda body: GOOD, latency_s=0.05) as stub:
        cfg = transport(tmp_path, stub.url, concurrency=2)
        (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
        script = CRASHING_RUN.format(
            paths=[str(ROOT), str(ROOT / "tests")], cfg=str(tmp_path / "cfg.yaml")
        )
        proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while stub.count < 12 and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        time.sleep(0.5)  # requests already on the wire reach the server's count
        first = stub.count
        stored = len(list((tmp_path / "cache").glob("*/*.json")))
        assert 0 < stored < 40 and first >= stored
        replies = GeminiCaller(cfg, LOG).run(requests(40), "t")
        assert all(r.error is None for r in replies)
        assert stub.count - first == 40 - stored  # nothing answered before the kill is asked again


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
