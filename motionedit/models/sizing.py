"""Edit sizes for pipelines that resize their input to a fixed pixel area.

Qwen-Image-Edit and LongCat-Image-Edit resize every input to about 1024x1024 with their
module's ``calculate_dimensions(target_area, ratio)`` and take no argument to change it.
The benchmark edits at the editor's ``max_area`` (the same 1024x1024 for the released
models, a few hundred pixels for the tiny test pipelines), so for one call the module's
function is answered with our sizes. Only the areas the caller names are answered; any
other area means the pipeline changed, and it fails loudly rather than editing at a size
nobody chose.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from motionedit.models.kinds import ModelError

#: The pixel area these pipelines resize their input to, whatever the requested size.
PIPELINE_AREA = 1024 * 1024

# The override patches a module global for the duration of one pipeline call.
_LOCK = threading.Lock()


@contextmanager
def pipeline_sizes(pipe: Any, sizes: dict[float, tuple[int, int]]) -> Iterator[None]:
    """Within the block, ``pipe``'s module answers ``calculate_dimensions(area, ratio)``
    with ``sizes[area]`` ((width, height); what else the function returns is kept).

    Raises :class:`ModelError` if the pipeline asks for an area not in ``sizes``, or
    never asks at all (it no longer sizes its input this way).
    """
    module = sys.modules[type(pipe).__call__.__module__]
    original = module.calculate_dimensions
    asked: list[float] = []

    def sized(target_area: float, ratio: float) -> tuple:
        asked.append(target_area)
        if target_area not in sizes:
            raise ModelError(f"{module.__name__} asked for an unknown resize area {target_area}")
        return (*sizes[target_area], *original(target_area, ratio)[2:])

    with _LOCK:
        module.calculate_dimensions = sized
        try:
            yield
        finally:
            module.calculate_dimensions = original
    if not asked:
        raise ModelError(
            f"{type(pipe).__name__} no longer sizes its input with calculate_dimensions; "
            f"the adapter of {module.__name__} must follow it"
        )
