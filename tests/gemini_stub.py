"""A local HTTP server that speaks the Gemini API's wire format, for the real google-genai SDK.

Only the network boundary is replaced: the SDK builds real requests, parses real replies and
raises its real errors. The server answers ``POST /{version}/models/{model}:generateContent``,
``POST /{version}/models/{model}:batchGenerateContent``, ``GET /{version}/batches/{id}``,
the Vertex AI form of generateContent (``.../publishers/google/models/{model}:...``) and an
OAuth2 ``POST /token`` endpoint for service-account credentials.

Each generateContent call first takes the next scripted behaviour, if any is queued:
``{"status": 429, "retry_delay": "0.2s"}``, ``{"status": 500}``, ``{"hang": 2.0}``,
``{"text": "not json"}``, ``{"finish": "SAFETY"}``, ``{"finish": "MAX_TOKENS", "text": ...}``,
``{"blocked": "SAFETY"}`` or ``{"empty": True}``. Otherwise ``answer(body)`` gives the reply
text. ``latency_s`` delays every answer and ``requests_per_minute`` enforces a quota with 429s.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from local_server import LocalJSONServer


def request_text(body: dict[str, Any]) -> str:
    """All text parts of a generateContent request body."""
    return "\n".join(
        part["text"] for c in body.get("contents", []) for part in c["parts"] if "text" in part
    )


def schema_fields(body: dict[str, Any]) -> set[str]:
    config = body.get("generationConfig") or {}
    return set((config.get("responseSchema") or {}).get("properties", {}))


class GeminiStub(LocalJSONServer):
    def __init__(
        self,
        answer: Callable[[dict[str, Any]], str] | None = None,
        latency_s: float = 0.0,
        requests_per_minute: float | None = None,
        batch_pending_polls: int = 1,
    ):
        self.answer = answer or (lambda body: "{}")
        self.latency_s = latency_s
        self.rate = None if not requests_per_minute else requests_per_minute / 60.0
        self.batch_pending_polls = batch_pending_polls
        self.script: deque[dict[str, Any]] = deque()
        self.lock = threading.Lock()
        self.calls: list[dict[str, Any]] = []  # every generateContent body received
        self.rejected = 0  # 429s sent for exceeding the quota
        self.api_keys: set[str] = set()
        self.authorizations: set[str] = set()  # bearer tokens (Vertex AI)
        self.paths: list[str] = []
        self.batches: dict[str, dict[str, Any]] = {}
        self.batch_submissions = 0
        self.poll_failures = 0  # the next this many batch polls answer 503
        self._bucket = max(1.0, 2 * (self.rate or 0))
        self._stamp = time.monotonic()

    @property
    def url(self) -> str:
        return self.origin

    @property
    def count(self) -> int:
        return len(self.calls)

    # -------------------------------------------------------------- replies
    _send = staticmethod(LocalJSONServer.send_json)

    @staticmethod
    def error(status: int, message: str, retry_delay: str | None = None) -> dict[str, Any]:
        names = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}  # fmt: skip
        err: dict[str, Any] = {"code": status, "message": message, "status": names.get(status)}
        if retry_delay:
            err["details"] = [
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay}
            ]
        return {"error": err}

    @staticmethod
    def reply(text: str | None, finish: str = "STOP", model: str = "stub") -> dict[str, Any]:
        candidate: dict[str, Any] = {"finishReason": finish, "index": 0}
        if text is not None:
            candidate["content"] = {"parts": [{"text": text}], "role": "model"}
        return {
            "candidates": [candidate],
            "usageMetadata": {
                "promptTokenCount": 300,
                "candidatesTokenCount": 40,
                "thoughtsTokenCount": 10,
                "totalTokenCount": 350,
            },
            "modelVersion": f"{model}-stub-001",
        }

    def _within_quota(self) -> bool:
        if self.rate is None:
            return True
        with self.lock:
            now = time.monotonic()
            cap = max(1.0, 2 * self.rate)
            self._bucket = min(cap, self._bucket + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._bucket >= 1.0:
                self._bucket -= 1.0
                return True
            self.rejected += 1
            return False

    def _generate(self, body: dict[str, Any], model: str) -> tuple[int, dict[str, Any]]:
        with self.lock:
            step = self.script.popleft() if self.script else {}
        if "hang" in step:
            time.sleep(step["hang"])
        if "status" in step:
            return step["status"], self.error(
                step["status"], step.get("message", "scripted failure"), step.get("retry_delay")
            )
        if step.get("blocked"):
            return 200, {
                "promptFeedback": {"blockReason": step["blocked"]},
                "usageMetadata": {"promptTokenCount": 300, "totalTokenCount": 300},
            }
        if step.get("empty"):
            return 200, {"candidates": [], "usageMetadata": {"promptTokenCount": 300}}
        if "finish" in step:
            return 200, self.reply(step.get("text"), step["finish"], model)
        text = step["text"] if "text" in step else self.answer(body)
        return 200, self.reply(text, "STOP", model)

    def _post(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        data = handler.rfile.read(length)
        path = handler.path.split("?")[0]
        if path == "/token":  # OAuth2 token endpoint of a service account (Vertex AI)
            token = {
                "access_token": "stub-access-token",
                "expires_in": 3600,
                "token_type": "Bearer",
            }
            return self._send(handler, 200, token)
        body = json.loads(data or b"{}")
        with self.lock:
            if handler.headers.get("x-goog-api-key"):
                self.api_keys.add(handler.headers["x-goog-api-key"])
            if handler.headers.get("Authorization"):
                self.authorizations.add(handler.headers["Authorization"])
            self.paths.append(path)
        model = path.rsplit("/models/", 1)[-1].split(":")[0]
        if path.endswith(":generateContent"):
            with self.lock:
                self.calls.append(body)
            if not self._within_quota():
                return self._send(handler, 429, self.error(429, "quota exceeded", "1s"))
            if self.latency_s:
                time.sleep(self.latency_s)
            status, reply = self._generate(body, model)
            return self._send(handler, status, reply)
        if path.endswith(":batchGenerateContent"):
            batch = body["batch"]
            with self.lock:
                self.batch_submissions += 1
                name = f"batches/job{self.batch_submissions}"
                self.batches[name] = {
                    "requests": batch["inputConfig"]["requests"]["requests"],
                    "polls": 0,
                    "model": model,
                    "display_name": batch.get("displayName"),
                }
            return self._send(handler, 200, self._batch_view(name, "BATCH_STATE_PENDING"))
        self._send(handler, 404, self.error(404, f"no route {path}"))

    def _batch_view(self, name: str, state: str, output: dict | None = None) -> dict[str, Any]:
        job = self.batches[name]
        meta: dict[str, Any] = {
            "@type": "type.googleapis.com/google.ai.generativelanguage.v1.GenerateContentBatch",
            "displayName": job["display_name"],
            "model": f"models/{job['model']}",
            "state": state,
        }
        if output is not None:
            meta["output"] = output
        return {"name": name, "metadata": meta}

    def _get(self, handler: BaseHTTPRequestHandler) -> None:
        name = handler.path.split("?")[0].split("/", 2)[-1]
        if name not in self.batches:
            return self._send(handler, 404, self.error(404, f"no batch {name}"))
        if self.poll_failures:
            self.poll_failures -= 1
            return self._send(handler, 503, self.error(503, "try again later"))
        job = self.batches[name]
        job["polls"] += 1
        if job["polls"] <= self.batch_pending_polls:
            return self._send(handler, 200, self._batch_view(name, "BATCH_STATE_RUNNING"))
        responses = []
        for item in job["requests"]:
            status, reply = self._generate(item["request"], job["model"])
            entry: dict[str, Any] = {"metadata": item.get("metadata")}
            if status == 200:
                entry["response"] = reply
            else:
                entry["error"] = reply["error"]
            responses.append(entry)
        output = {"inlinedResponses": {"inlinedResponses": responses}}
        self._send(handler, 200, self._batch_view(name, "BATCH_STATE_SUCCEEDED", output))


CATEGORY_CYCLE = ("pose", "locomotion", "deformation", "orientation", "subject_object",
                  "subject_subject")  # fmt: skip


def motion_answers(body: dict[str, Any]) -> str:
    """Plausible answers for the judge, the rewriter and the generative scorer, fixed by the
    request's content.

    The judge keeps every pair and picks a category from a hash of the first image; the
    rewriter turns the "After:" line of its prompt into an instruction; the generative scorer
    rates 0-5 from a hash of the edited image, so different edits get different scores, and
    answers EditScore's two questions (two scores, 0-25) from it the same way.
    """
    fields = schema_fields(body)
    images = [part["inlineData"]["data"] for c in body["contents"] for part in c["parts"]
              if "inlineData" in part]  # fmt: skip
    if fields == {"reasoning", "score"}:
        return json.dumps(editscore_answer(images))
    if "instruction" in fields:
        after = next(
            (line.split(":", 1)[1].strip() for line in request_text(body).splitlines()
             if line.startswith("After:")), "moved",
        )  # fmt: skip
        return json.dumps({"instruction": f"Make the subject end up {after}."})
    if "setting_consistent" in fields:
        image = next(
            part["inlineData"]["data"]
            for c in body["contents"]
            for part in c["parts"]
            if "inlineData" in part
        )
        digest = sum(image.encode())
        category = CATEGORY_CYCLE[digest % len(CATEGORY_CYCLE)]
        answer = {
            "setting_consistent": True,
            "setting_note": "unchanged",
            "significant_motion": True,
            "before": f"at rest (pose {digest % 10007})",
            "after": f"in a new {category} state",
            "category": category,
            "subject_intact": True,
            "quality_ok": True,
            "subject_note": "none",
        }
        return json.dumps(answer)
    if "fidelity" in fields:  # generative scoring: scores fixed by the edited (second) image
        return json.dumps(generative_answer(sum(images[1].encode())))
    return "{}"


def editscore_answer(images: list[str]) -> dict[str, Any]:
    """An answer to either EditScore question, fixed by the edited image: the last one sent
    (the consistency question shows the input first, the quality question the edit alone).
    The two questions get different scores from the same edit."""
    digest = sum(images[-1].encode()) + 7 * len(images)
    question = "consistency" if len(images) == 2 else "quality"
    return {"reasoning": f"{question} of edit {digest % 10007}",
            "score": [digest % 26, digest // 26 % 26]}  # fmt: skip


def generative_answer(digest: int) -> dict[str, Any]:
    """Scores and reasons fixed by a number made from the edited image."""
    scores = {"fidelity": digest % 6, "preservation": digest // 6 % 6,
              "coherence": digest // 36 % 6}  # fmt: skip
    answer: dict[str, Any] = {}
    for dim, score in scores.items():
        answer[f"{dim}_reason"] = f"{dim} {score} (edit {digest % 10007})"
        answer[dim] = score
    return answer
