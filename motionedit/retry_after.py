"""The one parser of the HTTP ``Retry-After`` header, for every client in the project.

Downloads (motionedit/download.py) and the MLLM callers (motionedit/mllm/) both wait as long
as a busy server asks before they try again, and the header comes in two forms (RFC 9110):
delay-seconds (``120``) or an HTTP date (``Wed, 21 Oct 2015 07:28:00 GMT``). Servers and
proxies also send fractional seconds (``0.5``), which are taken as meant. The module imports
nothing beyond the standard library, so any job can use it.
"""

from __future__ import annotations

import email.utils
import math
import time
from datetime import UTC


def retry_after_s(value: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (0 for a date in the past); None when the
    header is missing or unreadable, so the caller falls back to its own backoff."""
    if value is None:
        return None
    value = str(value).strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)
