"""Images as the tables and editors hand them around: paths, PIL images, arrays, table cells.

Editors, rewards, evaluation and training all read images the same way; this module has no
torch in it, so the parts that only read and resize images do not pull in a model stack.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


def to_pil(image: Any) -> Image.Image:
    """An RGB PIL image from a path, PIL image or HxWx3 uint8 array."""
    if isinstance(image, (str, Path)):
        with Image.open(image) as im:
            return im.convert("RGB")
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, np.ndarray):
        return Image.fromarray(image.astype(np.uint8)).convert("RGB")
    raise TypeError(f"cannot read an image from {type(image).__name__}")


def image_from_cell(cell: Any, root: Path) -> Image.Image:
    """An image cell of a dataset table: embedded PNG bytes, else a path relative to ``root``."""
    if isinstance(cell, dict) and cell.get("bytes"):
        return Image.open(io.BytesIO(cell["bytes"])).convert("RGB")
    return to_pil(Path(root) / str(cell["path"] if isinstance(cell, dict) else cell))


def resize(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Bicubic resize to (width, height); a no-op at the right size."""
    return image if image.size == size else image.resize(size, Image.Resampling.BICUBIC)
