"""A local HTTP server that speaks the OpenAI chat-completions wire format as vLLM returns it.

Only the network boundary is replaced: the reward builds real requests with ``requests``,
and the replies carry ``logprobs.content[0].top_logprobs`` exactly as ``vllm serve`` sends
them (token, logprob, bytes). The server answers ``POST /v1/chat/completions``.

Each call first takes the next scripted behaviour, if any is queued:
``{"status": 500}``, ``{"status": 429, "retry_after": "0.1"}``, ``{"hang": 2.0}`` (answers
late; a client with a shorter timeout has gone by then), ``{"content": "3", "logprobs": None}``
(no log-probabilities, as servers that ignore the option reply) or
``{"content": "...", "top_logprobs": [("4", -0.1), ...]}``, with an optional ``"finish"``
(the finish reason; "length" by default, as a one-token answer ends). Otherwise
``answer(body)`` gives the behaviour, by default a "4" with p(4)=0.6, p(5)=0.3, p(3)=0.1
and a little mass on " ".
With ``api_key`` set, a request without that bearer token gets vLLM's 401.
"""

from __future__ import annotations

import base64
import io
import json
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from gemini_stub import editscore_answer, generative_answer
from local_server import LocalJSONServer
from PIL import Image

DEFAULT_TOP = [("4", math.log(0.6)), ("5", math.log(0.3)), ("3", math.log(0.1)), (" ", -9.0)]


def default_answer(body: dict[str, Any]) -> dict[str, Any]:
    return {"content": "4", "top_logprobs": DEFAULT_TOP}


def request_texts(body: dict[str, Any]) -> list[str]:
    """The text parts of a chat-completions request, in order."""
    return [
        part["text"]
        for message in body.get("messages", [])
        for part in message.get("content", [])
        if isinstance(part, dict) and part.get("type") == "text"
    ]


def request_image_urls(body: dict[str, Any]) -> list[str]:
    return [
        part["image_url"]["url"]
        for message in body.get("messages", [])
        for part in message.get("content", [])
        if isinstance(part, dict) and part.get("type") == "image_url"
    ]


def decode_data_uri(url: str) -> Image.Image:
    header, data = url.split(",", 1)
    assert header == "data:image/png;base64", header
    image = Image.open(io.BytesIO(base64.b64decode(data)))
    image.load()
    return image


def _token_entry(token: str, logprob: float) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode())}


def completion(
    content: str,
    top: list[tuple[str, float]] | list[dict[str, Any]] | None,
    model: str,
    request_id: int,
    finish: str = "length",
) -> dict[str, Any]:
    """A chat.completion object; ``top=None`` leaves out the log-probabilities."""
    choice: dict[str, Any] = {
        "index": 0,
        "message": {"role": "assistant", "content": content, "tool_calls": []},
        "logprobs": None,
        "finish_reason": finish,
        "stop_reason": None,
    }
    if top is not None:
        entries = [e if isinstance(e, dict) else _token_entry(*e) for e in top]
        chosen = next((e for e in entries if e["token"] == content), None)
        if chosen is None:
            chosen = entries[0] if entries else _token_entry(content, 0.0)
        choice["logprobs"] = {
            "content": [
                {
                    "token": content,
                    "logprob": chosen["logprob"],
                    "bytes": list(content.encode()),
                    "top_logprobs": entries,
                }
            ]
        }
    return {
        "id": f"chatcmpl-stub{request_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": {"prompt_tokens": 900, "total_tokens": 901, "completion_tokens": 1},
        "prompt_logprobs": None,
    }


def error_body(status: int, message: str) -> dict[str, Any]:
    kinds = {400: "BadRequestError", 404: "NotFoundError", 429: "RateLimitError"}
    kind = kinds.get(status, "InternalServerError" if status >= 500 else "Error")
    return {"error": {"message": message, "type": kind, "param": None, "code": status}}


class OpenAIStub(LocalJSONServer):
    def __init__(
        self,
        answer: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        api_key: str | None = None,
    ):
        self.answer = answer or default_answer
        self.api_key = api_key
        self.script: deque[dict[str, Any]] = deque()
        self.lock = threading.Lock()
        self.calls: list[dict[str, Any]] = []  # every request body received
        self.authorizations: list[str | None] = []  # the Authorization header of each call
        self.arrivals: list[float] = []  # time.monotonic() at each call
        self.finished: list[int] = []  # call numbers in the order their replies were sent
        self.paths: list[str] = []

    @property
    def url(self) -> str:
        return f"{self.origin}/v1"

    @property
    def count(self) -> int:
        return len(self.calls)

    def queue(self, *steps: dict[str, Any]) -> None:
        with self.lock:
            self.script.extend(steps)

    _send = staticmethod(LocalJSONServer.send_json)

    def _post(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length)
        path = handler.path.split("?")[0]
        authorization = handler.headers.get("Authorization")
        with self.lock:
            self.paths.append(path)
        if path != "/v1/chat/completions":
            return self._send(handler, 404, error_body(404, f"no route {path}"))
        if self.api_key is not None and authorization != f"Bearer {self.api_key}":
            return self._send(handler, 401, {"error": "Unauthorized"})
        try:
            body = json.loads(raw)
        except ValueError:
            return self._send(handler, 400, error_body(400, "the body is not JSON"))
        with self.lock:
            number = len(self.calls)
            self.calls.append(body)
            self.authorizations.append(authorization)
            self.arrivals.append(time.monotonic())
            step = self.script.popleft() if self.script else None
        if step is None:
            step = self.answer(body)
        if "hang" in step:
            time.sleep(step["hang"])
        if "status" in step:
            headers = {"Retry-After": step["retry_after"]} if "retry_after" in step else None
            reply = error_body(step["status"], step.get("message", "scripted failure"))
            status = step["status"]
        else:
            top = step.get("top_logprobs", DEFAULT_TOP)
            if "logprobs" in step and step["logprobs"] is None:
                top = None
            content, model = step.get("content", "4"), body.get("model", "?")
            reply = completion(content, top, model, number, step.get("finish", "length"))
            status, headers = 200, None
        with self.lock:
            self.finished.append(number)
        self._send(handler, status, reply, headers)


def open_model_answers(body: dict[str, Any]) -> dict[str, Any]:
    """Answers an open model might give the judge, the rewriter and the generative scorer,
    fixed by the request's content: the JSON wrapped in a sentence and a code fence, a
    category capitalised and hyphenated, the notes left out. Which question it is comes
    from the keys the prompt spells out."""
    prompt = "\n".join(request_texts(body))
    images = request_image_urls(body)
    if '"instruction"' in prompt:
        after = next(
            (line.split(":", 1)[1].strip() for line in prompt.splitlines()
             if line.startswith("After:")), "moved",
        )  # fmt: skip
        text = json.dumps({"instruction": f"Make the subject end up {after}."})
    elif '"setting_consistent"' in prompt:
        digest = sum(images[0].encode())
        category = ("pose", "locomotion", "deformation", "orientation", "subject_object",
                    "subject_subject")[digest % 6]  # fmt: skip
        answer = {
            "setting_consistent": True,
            "significant_motion": True,
            "before": f"at rest (pose {digest % 10007})",
            "after": f"in a new {category} state",
            "category": category.replace("_", "-").title(),
            "subject_intact": True,
            "quality_ok": True,
        }
        text = f"Here is my answer.\n```json\n{json.dumps(answer)}\n```"
    elif '"score": [' in prompt:  # EditScore's format: floats, in a code fence
        answer = editscore_answer(images)
        answer["score"] = [float(s) for s in answer["score"]]
        text = f"```json\n{json.dumps(answer)}\n```"
    elif '"fidelity"' in prompt:  # scores fixed by the edited (second) image
        text = json.dumps(generative_answer(sum(images[1].encode())))
    else:
        text = "{}"
    return {"content": text, "logprobs": None, "finish": "stop"}
