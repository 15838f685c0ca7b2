"""The MLLM reward of MotionNFT: a vision-language model grades each edit from 0 to 5.

The model (``vllm serve Qwen/Qwen2.5-VL-32B-Instruct`` or any other OpenAI-compatible
chat-completions server) sees the input image, the edited image and, when the dataset has
one, the ground-truth target, and is asked for a single digit. Taking the digit it writes
would give a reward with six levels that barely moves between policy samples; the expected
score under its next-token distribution, ``sum(p(d) * d) / sum(p(d)) / 5`` over the digit
tokens among ``top_logprobs``, is continuous and tells a confident 4 from a hesitant one.
Servers that leave out log-probabilities still work: the written digit is the fallback.

Failures are per item: a reply without a digit, a timeout, or an HTTP error that outlived
its retries gives ``None`` (the trainer skips those samples) with the reason in
``last_errors``. Only a missing ``base_url`` or a server that refuses the API key raises,
because then every item would fail the same way and training on no reward is pointless.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import math
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from PIL import Image

log = logging.getLogger(__name__)

DEFAULT_MODEL = "Qwen/Qwen2.5-VL-32B-Instruct"
DEFAULT_PROMPT_VERSION = "mllm-reward-v1"

#: Prompt texts by version. A new wording gets a new key, so rewards logged under one
#: version are never compared with rewards from another without noticing.
PROMPTS: dict[str, dict[str, str]] = {
    "mllm-reward-v1": {
        "task": (
            "You are grading an image edit. The editor was given the input image and the "
            "instruction below, which asks for a change of motion: the subject's pose, "
            "position, orientation or interaction should change as described, while "
            "everything else stays as it was.\n\nInstruction: {instruction}"
        ),
        "input": "Input image (before the edit):",
        "edited": "Edited image (the result to grade):",
        "target": (
            "Reference image: one correct result of the instruction. The edited image does "
            "not have to match it exactly; use it to judge what the instructed motion looks "
            "like."
        ),
        "rubric": (
            "Rate from 0 to 5 how well the edited image carries out the instruction. A high "
            "score needs all of: the instructed motion has actually happened; the subject "
            "keeps its identity and appearance; the background and the camera viewpoint are "
            "unchanged; the image is free of artifacts such as distorted limbs, smeared "
            "regions or duplicated parts. 0 means the motion did not happen or the image is "
            "ruined; 5 means the motion is exactly as instructed and everything else is "
            "preserved.\nAnswer with a single digit (0, 1, 2, 3, 4 or 5) and nothing else."
        ),
    },
}

DIGITS = ("0", "1", "2", "3", "4", "5")
_FIRST_DIGIT = re.compile(r"[0-5]")
_RETRY_STATUSES = frozenset({429}) | frozenset(range(500, 600))
#: Longest wait honoured from a Retry-After header; a server asking for minutes is better
#: treated as failing this item than as stalling the training step.
_MAX_RETRY_AFTER_S = 60.0


class RewardServerError(RuntimeError):
    """A problem that would fail every item alike (configuration, credentials)."""


def encode_image(image: Image.Image, max_side: int) -> str:
    """A PNG data URI, downscaled so the longest side is at most ``max_side``.

    The grader does not need full resolution to judge a pose, and each full-size image costs
    the server hundreds of vision tokens per item in every training step.
    """
    if image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    width, height = image.size
    if max(width, height) > max_side:
        scale = max_side / max(width, height)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def expected_score(top_logprobs: list[dict[str, Any]] | None) -> float | None:
    """The mean digit under the model's distribution, renormalised over the digits present.

    Renormalising keeps the reward on the 0-5 scale when some mass goes to tokens like a
    space or "The"; those say nothing about the grade. ``None`` when no digit is listed.
    """
    mass = dict.fromkeys(range(6), 0.0)
    for entry in top_logprobs or []:
        token = str(entry.get("token", "")).strip()
        logprob = entry.get("logprob")
        if token in DIGITS and isinstance(logprob, int | float) and not math.isnan(logprob):
            mass[int(token)] += math.exp(logprob)
    total = sum(mass.values())
    if total <= 0.0:
        return None
    return sum(p * d for d, p in mass.items()) / total


def parse_reply(reply: dict[str, Any]) -> tuple[float | None, str | None]:
    """The reward in [0, 1] from a chat-completions reply, or ``None`` and the reason."""
    try:
        choice = reply["choices"][0]
    except (KeyError, IndexError, TypeError):
        return None, f"bad reply: no choices in {json.dumps(reply)[:80]}"
    logprobs = choice.get("logprobs") or {}
    tokens = logprobs.get("content") or []
    if tokens and isinstance(tokens[0], dict):
        score = expected_score(tokens[0].get("top_logprobs"))
        if score is not None:
            return score / 5.0, None
    content = (choice.get("message") or {}).get("content") or ""
    match = _FIRST_DIGIT.search(content)
    if match:
        return int(match.group()) / 5.0, None
    return None, f"no digit in the reply: {content[:80]}"


def _retry_after(response: requests.Response) -> float | None:
    header = response.headers.get("Retry-After")
    if not header:
        return None
    try:
        wait = float(header)
    except ValueError:
        try:
            wait = parsedate_to_datetime(header).timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return min(max(wait, 0.0), _MAX_RETRY_AFTER_S)


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


class MLLMReward:
    """Grades edits through an OpenAI-compatible chat-completions server.

    Connections live for one ``score`` call only, so a grader server restarted between
    training steps is simply picked up at the next one.
    """

    name = "mllm"

    def __init__(self, cfg: dict[str, Any]) -> None:
        base_url = cfg.get("base_url")
        if not base_url:
            raise ValueError(
                "rewards.mllm.base_url is not set: give the chat-completions server's URL, "
                "e.g. http://127.0.0.1:8000/v1"
            )
        self.base_url = str(base_url).rstrip("/")
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"rewards.mllm.base_url must be an http(s) URL, got {self.base_url!r}")
        self.url = f"{self.base_url}/chat/completions"
        self.model = str(cfg.get("model", DEFAULT_MODEL))
        self.api_key_env = str(cfg.get("api_key_env", "OPENAI_API_KEY"))
        self.timeout_s = float(cfg.get("timeout_s", 60))
        self.max_attempts = max(1, int(cfg.get("max_attempts", 3)))
        self.backoff_s = float(cfg.get("backoff_s", 1.0))
        self.concurrency = max(1, int(cfg.get("concurrency", 8)))
        self.top_logprobs = int(cfg.get("top_logprobs", 20))
        self.max_image_side = int(cfg.get("max_image_side", 512))
        self.prompt_version = str(cfg.get("prompt_version", DEFAULT_PROMPT_VERSION))
        if self.prompt_version not in PROMPTS:
            raise ValueError(
                f"rewards.mllm.prompt_version {self.prompt_version!r} is unknown; "
                f"known: {sorted(PROMPTS)}"
            )
        self.prompt = PROMPTS[self.prompt_version]
        self.last_errors: list[str | None] = []

    # ------------------------------------------------------------------ requests
    def build_request(
        self, source: Image.Image, edited: Image.Image, prompt: str, target: Image.Image | None
    ) -> dict[str, Any]:
        """One request per item: images of different pairs never share a context, so one
        item's grade cannot lean on another's."""
        texts = self.prompt
        content: list[dict[str, Any]] = [
            {"type": "text", "text": texts["task"].format(instruction=prompt)}
        ]
        shown = [("input", source), ("edited", edited)]
        if target is not None:
            shown.append(("target", target))
        for label, image in shown:
            content.append({"type": "text", "text": texts[label]})
            url = encode_image(image, self.max_image_side)
            content.append({"type": "image_url", "image_url": {"url": url}})
        content.append({"type": "text", "text": texts["rubric"]})
        return {
            "model": self.model,
            "messages": [{"role": "user", "content": content}],
            "max_tokens": 1,
            "temperature": 0,
            "logprobs": True,
            "top_logprobs": self.top_logprobs,
        }

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _refused(self, status: int) -> RewardServerError:
        if os.environ.get(self.api_key_env):
            why = f"the server refused the key held in ${self.api_key_env}"
        else:
            why = f"the server wants a key and ${self.api_key_env} is not set"
        return RewardServerError(
            f"{self.url} answered http {status}: {why}; set it to the key the server was "
            f"started with (vllm serve --api-key) or name another variable in "
            f"rewards.mllm.api_key_env"
        )

    def _ask(
        self, payload: dict[str, Any], headers: dict[str, str], session: requests.Session
    ) -> tuple[float | None, str | None]:
        """Retries what a second try can fix (dropped connections, timeouts, 429, 5xx), waiting
        longer each time so a server under load from the whole batch can catch up."""
        error = "no attempt made"
        for attempt in range(1, self.max_attempts + 1):
            wait: float | None = None
            try:
                response = session.post(
                    self.url, json=payload, headers=headers, timeout=self.timeout_s
                )
            except requests.Timeout:
                error = f"timeout after {self.timeout_s:g} s"
            except requests.ConnectionError as exc:
                error = f"connection: {type(exc).__name__}"
            except requests.RequestException as exc:
                return None, f"request: {type(exc).__name__}"
            else:
                status = response.status_code
                if status in (401, 403):
                    raise self._refused(status)
                if status == 200:
                    try:
                        reply = response.json()
                    except ValueError:
                        return None, f"bad reply: not JSON: {response.text[:80]}"
                    return parse_reply(reply)
                error = f"http {status}: {_short_body(response)}"
                if status not in _RETRY_STATUSES:
                    return None, error
                wait = _retry_after(response)
            if attempt < self.max_attempts:
                if wait is None:
                    wait = self.backoff_s * 2 ** (attempt - 1)
                log.debug("%s; attempt %d of %d, retry in %.2f s", error, attempt,
                          self.max_attempts, wait)  # fmt: skip
                time.sleep(wait)
        return None, error

    # ------------------------------------------------------------------ scoring
    def score(
        self,
        inputs: list[Image.Image],
        edited: list[Image.Image],
        prompts: list[str],
        targets: list[Image.Image] | None = None,
    ) -> list[float | None]:
        """Rewards in [0, 1] in input order; ``None`` where an item could not be graded.

        Items are sent concurrently because vLLM batches requests that arrive together, so a
        group of samples costs little more than one; the order of the results never depends
        on which answer came first.
        """
        n = len(inputs)
        if len(edited) != n or len(prompts) != n or (targets is not None and len(targets) != n):
            raise ValueError(
                f"score() needs lists of one length: {n} inputs, {len(edited)} edited, "
                f"{len(prompts)} prompts, {'no' if targets is None else len(targets)} targets"
            )
        rewards: list[float | None] = [None] * n
        errors: list[str | None] = [None] * n
        self.last_errors = errors
        if n == 0:
            return rewards
        headers = self._headers()
        local = threading.local()
        sessions: list[requests.Session] = []
        sessions_lock = threading.Lock()

        def grade(i: int) -> tuple[float | None, str | None]:
            target = targets[i] if targets is not None else None
            try:
                payload = self.build_request(inputs[i], edited[i], prompts[i], target)
            except (OSError, ValueError) as exc:
                return None, f"bad image: {exc}"
            session = getattr(local, "session", None)
            if session is None:
                session = local.session = requests.Session()
                with sessions_lock:
                    sessions.append(session)
            return self._ask(payload, headers, session)

        pool = ThreadPoolExecutor(max_workers=min(self.concurrency, n))
        try:
            futures = [pool.submit(grade, i) for i in range(n)]
            for i, future in enumerate(futures):
                rewards[i], errors[i] = future.result()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        else:
            pool.shutdown(wait=True)
        finally:
            with sessions_lock:
                for session in sessions:
                    session.close()
        failed = [e for e in errors if e is not None]
        if failed:
            log.warning("mllm reward: %d of %d items without a reward (first: %s)",
                        len(failed), n, failed[0])  # fmt: skip
        return rewards
