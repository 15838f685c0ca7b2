"""``python -m motionedit.nft settings.json``: one process of a (multi-process) MotionNFT run."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

from motionedit.nft.trainer import run_motionnft
from motionedit.runlog import setup_logging


def main() -> None:
    settings = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    rank = int(os.environ.get("RANK", "0"))
    log_path = settings.pop("log", None)
    # Each process logs to its own file beside the job's log (which the launcher keeps).
    logger = (
        setup_logging(f"{log_path}.rank{rank}", f"motionedit.nft.{rank}")
        if log_path
        else logging.getLogger(f"motionedit.nft.{rank}")
    )
    run_motionnft(**settings, logger=logger)


if __name__ == "__main__":
    main()
