"""What is asked of an MLLM and what came back, independent of the service that answers.

A request is a sequence of text and image parts with generation settings, a prompt version
and an optional pydantic schema for the answer. Its key hashes all of that (images by the
sha256 of their bytes), so equal questions share one cached answer and any change to the
prompt, the settings or an image asks again. A reply is either a parsed answer or an error
string whose prefix says what went wrong ("blocked", "finish", "empty", "schema",
"timeout", "http", "connection", "batch"), so no failure can pass for a negative answer.

The module imports no image library or pydantic at import time (cv2, numpy and PIL are
imported where images are decoded, pydantic where an answer is validated), so the package
stays importable where only the workflow's bookkeeping runs, e.g. the Snakemake DAG build.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from motionedit.mllm.usage import Usage

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage
    from pydantic import BaseModel

#: Finish reasons that mean a usable answer (Gemini's, then OpenAI's); everything else is an
#: error row. A one-token answer always stops at its limit ("length"), so for a request with
#: ``max_output_tokens == 1`` that is a complete answer too (see :func:`interpret`).
GOOD_FINISH = {"STOP", "FINISH_REASON_UNSPECIFIED", "stop", None}


@dataclass(frozen=True)
class Image:
    data: bytes
    mime: str = "image/png"
    #: What the image is, for cache keys and logs: by default the sha256 of ``data``; for a
    #: downscaled frame, the sha256 of the file it came from and the size it was fitted to,
    #: so the key does not depend on the JPEG encoder's version.
    identity: str | None = None

    @classmethod
    def read(cls, path: str | Path, max_side: int | None = None) -> Image:
        """An image file, downscaled to ``max_side`` (and sent as JPEG) when larger.

        Video frames of 720p and up cost upload time and, in batch mode, inline space for
        no gain: the service resamples them to the configured media resolution anyway.
        """
        path = Path(path)
        raw = path.read_bytes()
        mime = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}.get(
            path.suffix.lower(), "image/png"
        )
        if max_side is None:
            return cls(raw, mime)
        import cv2
        import numpy as np

        try:
            pixels = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
        except cv2.error:  # an empty file
            pixels = None
        if pixels is None:
            raise OSError(f"{path}: not a readable image")
        h, w = pixels.shape[:2]
        if max(h, w) <= max_side:
            return cls(raw, mime)
        scale = max_side / max(h, w)
        small = cv2.resize(
            pixels,
            (max(1, round(w * scale)), max(1, round(h * scale))),
            interpolation=cv2.INTER_AREA,
        )
        ok, jpeg = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 92])
        if not ok:
            raise OSError(f"{path}: could not be re-encoded")
        identity = f"{hashlib.sha256(raw).hexdigest()}@{max_side}:area:jpeg92"
        return cls(jpeg.tobytes(), "image/jpeg", identity)

    @classmethod
    def from_pil(cls, image: PILImage, max_side: int | None = None) -> Image:
        """A PNG of a PIL image, downscaled (LANCZOS, aspect kept) so that its longest side is
        at most ``max_side``; images of other modes than RGB and L are converted to RGB."""
        import io

        import PIL.Image

        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        width, height = image.size
        if max_side is not None and max(width, height) > max_side:
            scale = max_side / max(width, height)
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            image = image.resize(size, PIL.Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return cls(buffer.getvalue(), "image/png")

    @cached_property
    def sha256(self) -> str:
        return self.identity or hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class CallSettings:
    """Generation settings of one stage (``judge.gemini``, ``rewrite.gemini``, ...)."""

    model: str
    temperature: float = 0.0
    max_output_tokens: int = 1024
    media_resolution: str | None = None  # low | medium | high
    thinking_budget: int | None = None
    max_image_side: int | None = None  # larger images are downscaled before they are sent
    #: Ask for the log-probabilities of this many alternatives of each answer token (OpenAI
    #: ``top_logprobs``); None asks for none. Part of the cache key only when set, so adding
    #: it left the keys, and so the cached answers, of every earlier request as they were.
    top_logprobs: int | None = None

    @classmethod
    def from_config(cls, section: dict[str, Any]) -> CallSettings:
        values = {k: section[k] for k in cls.__dataclass_fields__ if k in section}
        if "temperature" in values:  # YAML's 0 and 0.0 must give the same cache key
            values["temperature"] = float(values["temperature"])
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        values = {k: getattr(self, k) for k in self.__dataclass_fields__}
        for name in _KEYED_WHEN_SET:
            if values[name] is None:
                del values[name]
        return values


#: Settings added after answers were cached: left out of ``as_dict`` (and so of the cache
#: key) while unset, so that existing keys stay valid.
_KEYED_WHEN_SET = ("top_logprobs",)


@dataclass(frozen=True)
class Request:
    parts: tuple[str | Image, ...]
    settings: CallSettings
    prompt_version: str
    schema: type[BaseModel] | None = None
    tag: str = ""  # what the request is about (a pair id); logs only, not part of the key

    @property
    def images(self) -> list[Image]:
        return [p for p in self.parts if isinstance(p, Image)]

    @property
    def prompt(self) -> str:
        """The text parts, with a marker where each image goes (for logs)."""
        return "\n".join(
            p if isinstance(p, str) else f"<image {p.sha256[:12]}>" for p in self.parts
        )

    @cached_property
    def key(self) -> str:
        described = {
            "settings": self.settings.as_dict(),
            "prompt_version": self.prompt_version,
            "parts": [
                p if isinstance(p, str) else {"image": p.sha256, "mime": p.mime} for p in self.parts
            ],
            "schema": self.schema.model_json_schema() if self.schema else None,
        }
        return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()

    def estimated_tokens(self) -> int:
        """Input tokens before the server counts them: ~4 characters each, images by resolution."""
        per_image = {"low": 70, "medium": 260, "high": 1100}.get(
            self.settings.media_resolution or "medium", 260
        )
        text = sum(len(p) for p in self.parts if isinstance(p, str))
        return text // 4 + per_image * len(self.images)


@dataclass
class Reply:
    key: str
    text: str | None = None
    parsed: dict[str, Any] | None = None
    error: str | None = None
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    model_version: str | None = None
    latency_s: float = 0.0
    attempts: int = 0
    cached: bool = False
    batch: bool = False
    response: dict[str, Any] | None = None  # what the service said, as cached

    @property
    def top_logprobs(self) -> list[dict[str, Any]] | None:
        """The first answer token's alternatives, ``[{"token": ..., "logprob": ...}, ...]``,
        when the request asked for them and the service sent them (also from the cache)."""
        return (self.response or {}).get("top_logprobs")

    @property
    def answered(self) -> bool:
        """The service gave an answer (possibly a refusal): worth caching, not worth retrying."""
        return not (self.error or "").startswith(("timeout", "http", "connection", "batch"))


def json_text(text: str) -> str:
    """The JSON object of an answer: the answer itself, or what lies between its first
    ``{`` and its last ``}``. Open models served without a response format often wrap
    their JSON in a sentence or a code fence; the object inside is still checked against
    the schema, so nothing but the wrapping is forgiven."""
    text = text.strip()
    start, end = text.find("{"), text.rfind("}")
    return text[start : end + 1] if 0 <= start < end else text


def interpret(request: Request, entry: dict[str, Any], *, cached: bool) -> Reply:
    """A reply from a cache entry: classify refusals and check the answer against the schema."""
    response = entry["response"]
    reply = Reply(
        key=request.key,
        text=response.get("text"),
        finish_reason=response.get("finish_reason"),
        usage=Usage.from_metadata(response.get("usage")),
        model_version=response.get("model_version"),
        latency_s=entry.get("latency_s", 0.0),
        attempts=entry.get("attempts", 1),
        cached=cached,
        batch=bool(entry.get("batch")),
        response=response,
    )
    if response.get("block_reason"):
        reply.error = f"blocked: the prompt was blocked ({response['block_reason']})"
    elif not response.get("has_candidates", True):
        reply.error = "empty: the reply had no candidates"
    elif reply.finish_reason not in GOOD_FINISH and not (
        reply.finish_reason == "length" and request.settings.max_output_tokens == 1
    ):
        reply.error = f"finish: generation stopped with {reply.finish_reason}"
    elif not reply.text and not reply.top_logprobs:
        reply.error = "empty: the reply had no text"
    elif request.schema is not None:
        from pydantic import ValidationError

        try:
            reply.parsed = request.schema.model_validate_json(json_text(reply.text)).model_dump()
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "answer"
            reply.error = f"schema: {where}: {first['msg']}"
    return reply


def call_record(request: Request, reply: Reply) -> dict[str, Any]:
    """One line of a stage's raw log: what was asked and answered; images by hash only."""
    return {
        "key": request.key,
        "tag": request.tag,
        "model": request.settings.model,
        "model_version": reply.model_version,
        "prompt_version": request.prompt_version,
        "images": [image.sha256 for image in request.images],
        "prompt": request.prompt,
        "answer": reply.text,
        "finish_reason": reply.finish_reason,
        "input_tokens": reply.usage.input_tokens,
        "output_tokens": reply.usage.output_tokens,
        "latency_s": reply.latency_s,
        "attempts": reply.attempts,
        "cached": reply.cached,
        "batch": reply.batch,
        "error": reply.error,
    }
