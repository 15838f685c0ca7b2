"""Requests as an OpenAI Batch API input file, and answers read back from its output file.

vLLM's offline runner (``python -m vllm.entrypoints.openai.run_batch -i IN -o OUT --model M``)
reads and writes the same JSON Lines as OpenAI's Batch API, so a lab can judge a large shard
on a GPU node without keeping a server up. With ``mllm.mode: batch``, a stage on the
``openai`` backend writes its uncached questions to
``<cache_dir>/batches/openai-<hash>.jsonl`` and stops, naming the command; once the output
file lies next to it (``openai-<hash>.output.jsonl``), running the stage again reads the
answers, caches them like online ones and goes on. The hash covers the questions, so a rerun
that asks the same writes the same file and finds the same output.

Input line: ``{"custom_id": <request key>, "method": "POST", "url": "/v1/chat/completions",
"body": <the chat-completions body an online call sends>}``. Output line: ``{"custom_id",
"response": {"status_code", "body": <chat.completion>}, "error"}``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from motionedit.mllm.openai_compatible import chat_body, response_entry
from motionedit.mllm.request import Request

URL = "/v1/chat/completions"


def batch_paths(requests: list[Request], folder: str | Path) -> tuple[Path, Path]:
    """The input and output files of these questions (named by a hash of their keys)."""
    digest = hashlib.sha256("\n".join(sorted(r.key for r in requests)).encode()).hexdigest()
    stem = Path(folder) / f"openai-{digest[:16]}"
    return stem.with_suffix(".jsonl"), stem.with_suffix(".output.jsonl")


def write_batch(path: str | Path, requests: list[Request], json_schema: bool = True) -> Path:
    """One input line per request, custom_id its cache key; written whole, then renamed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps(
            {"custom_id": r.key, "method": "POST", "url": URL, "body": chat_body(r, json_schema)},
            sort_keys=True,
        )  # fmt: skip
        for r in requests
    ]
    partial = path.with_suffix(".partial")
    partial.write_text("\n".join(lines) + "\n")
    partial.replace(path)
    return path


def read_output(path: str | Path) -> dict[str, dict[str, Any]]:
    """Per custom_id, the cache entry's ``response`` of its answer, or ``{"error": why}``
    for a line the batch could not answer."""
    answers: dict[str, dict[str, Any]] = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            custom_id = record["custom_id"]
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"{path}:{number}: not a batch output line") from None
        response = record.get("response") or {}
        status = response.get("status_code")
        if record.get("error") or status != 200:
            why = record.get("error") or (response.get("body") or {}).get("error") or ""
            message = why.get("message", why) if isinstance(why, dict) else why
            answers[custom_id] = {"error": f"batch: http {status}: {message}".strip()}
        else:
            answers[custom_id] = response_entry(response.get("body"))
    return answers
