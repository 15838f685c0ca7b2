"""Logging for stage jobs: one log file per job, progress bars on the terminal."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def setup_logging(log_path: str | Path | None, name: str = "motionedit") -> logging.Logger:
    """Send the job's log lines to its log file and to stderr."""
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    logger.handlers.clear()
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(log_path, mode="w", encoding="utf-8")
        fh.setFormatter(fmt)
        logger.addHandler(fh)
    sh = logging.StreamHandler(sys.stderr)
    sh.setFormatter(fmt)
    logger.addHandler(sh)
    logger.propagate = False
    return logger


#: Progress bars go to stderr and stay out of logs when stderr is not a terminal.
_BAR = {"unit": "it", "dynamic_ncols": True, "disable": None, "mininterval": 1.0}


def progress(items: Iterable[T], desc: str, total: int | None = None) -> Iterator[T]:
    """A progress bar over ``items``."""
    return iter(tqdm(items, desc=desc, total=total, file=sys.stderr, **_BAR))


def job_logger(snakemake_log: list[str], name: str = "motionedit") -> logging.Logger:
    """The logger of a workflow job; uncaught errors also land in its log file."""
    log = setup_logging(snakemake_log[0] if snakemake_log else None, name)
    previous = sys.excepthook

    def hook(kind, value, tb):
        log.error("job failed", exc_info=(kind, value, tb))
        previous(kind, value, tb)

    sys.excepthook = hook
    return log


def progress_bar(total: int, desc: str) -> tqdm:
    """A bar advanced by hand, for work that finishes out of order (concurrent calls)."""
    return tqdm(total=total, desc=desc, file=sys.stderr, **_BAR)
