"""The content-addressed store of MLLM answers shared by every stage that asks an MLLM.

An answer is filed under the hash of everything that determines it (model, generation
settings, prompt version, prompt text, the bytes of every image, the answer schema), so a
rerun, a restart after a crash, or another stage asking the same question reads the answer
instead of paying for it again. Entries are written to a temporary file and renamed into
place, so concurrent writers (parallel Snakemake jobs) never leave a torn file: a reader
sees a whole entry or none.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


class AnswerCache:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.path(key).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (json.JSONDecodeError, UnicodeDecodeError):
            # Only possible if the file was edited by hand: ask again rather than fail.
            return None

    def put(self, key: str, entry: dict[str, Any]) -> None:
        write_json_atomic(self.path(key), entry)

    def __contains__(self, key: str) -> bool:
        return self.path(key).is_file()


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write to a temporary file beside ``path`` and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem[:8]}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
