"""Editors: adapters over diffusers pipelines, and the models the benchmark runs.

An *editor* (``editors.<name>`` in config) is a base pipeline: its kind, where its weights
are, and how to run it. A *model* (``models.<name>``) is what inference and evaluation
see: an editor plus an optional LoRA, a folder of predictions made elsewhere, or the
do-nothing baseline that returns the input.

What lives here:

- ``kinds.py``: the registry of editor kinds (defaults and loader of each), with
  :func:`editor_settings`, :func:`load_editor` and :class:`ModelError`; torch-free;
- ``loading.py``: :func:`load_pipeline` and :func:`place`, shared by every loader;
- ``base.py``: :class:`EditorAdapter`, the interface every stage is written against;
- ``flux_kontext.py``, ``qwen_image_edit.py``: the adapters and loaders of each family;
- ``tiny.py``: the tiny FLUX-Kontext-architecture editor trained here from scratch.

Importing the package imports only the registry: the Snakemake DAG build reads editor
settings through it where torch and diffusers may not be importable. The torch-backed
names below are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from motionedit.models.kinds import (
    EDITOR_KINDS,
    INFERENCE_DEFAULTS,
    EditorKind,
    ModelError,
    editor_settings,
    load_editor,
)

if TYPE_CHECKING:
    from motionedit.models.base import Conditioning, EditorAdapter
    from motionedit.models.loading import load_pipeline, place

__all__ = [
    "EDITOR_KINDS",
    "INFERENCE_DEFAULTS",
    "Conditioning",
    "EditorAdapter",
    "EditorKind",
    "ModelError",
    "editor_settings",
    "load_editor",
    "load_pipeline",
    "place",
]

#: Names importable from the package whose modules need torch: imported when first asked for.
_LAZY = {
    "Conditioning": "motionedit.models.base",
    "EditorAdapter": "motionedit.models.base",
    "load_pipeline": "motionedit.models.loading",
    "place": "motionedit.models.loading",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
