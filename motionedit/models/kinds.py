"""Editor kinds: the one place an editor kind is declared.

A kind (``editors.<name>.kind`` in config) has the paper's inference settings, the pixel
budget its family was trained at, and a loader that builds its adapter. The loader is a
``"module:function"`` reference, imported only when an editor is loaded: the Snakemake
DAG build reads editor settings (steps, batch size, device) for every model, and must not
pay for, or depend on, torch and diffusers to do so. This module therefore imports nothing
beyond the standard library; :class:`ModelError` lives here for the same reason.

A new editor kind is an adapter module with a loader function, ``loader(settings) ->
EditorAdapter``, plus one entry in :data:`EDITOR_KINDS` and the kind's name in the
schema's ``editors.kind`` enum (tests/test_registries.py checks the two agree).
"""

from __future__ import annotations

import copy
import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from motionedit.models.base import EditorAdapter


class ModelError(RuntimeError):
    """An editor could not be loaded or run; the message names the config key and the fix."""


@dataclass(frozen=True)
class EditorKind:
    """One editor kind: its loader and the defaults under an editor's own settings."""

    name: str
    #: ``"module:function"``; the function takes the editor's settings, returns its adapter.
    loader: str
    #: Inference settings (steps, guidance_scale, true_cfg_scale) unless the editor sets them.
    inference: dict[str, Any]
    #: Pixel budget of an edit.
    max_area: int
    #: T5 prompt tokens, for the kinds that have a T5 encoder.
    max_sequence_length: int | None = None
    #: Whether SFT and MotionNFT can train it (flow-matching kinds) or it only edits.
    trainable: bool = True

    def defaults(self) -> dict[str, Any]:
        """The settings an editor of this kind gets where its config block is silent."""
        out: dict[str, Any] = {"max_area": self.max_area}
        if self.max_sequence_length is not None:
            out["max_sequence_length"] = self.max_sequence_length
        return out | {"inference": dict(self.inference)}


#: Every editor kind by name. The paper's inference settings: 28 steps; Kontext guidance
#: 2.5; Qwen true CFG 4.0 with guidance 1.0; each at the pixel budget its family was
#: trained at.
EDITOR_KINDS: dict[str, EditorKind] = {
    kind.name: kind
    for kind in (
        EditorKind(
            "flux-kontext",
            "motionedit.models.flux_kontext:load_flux_kontext",
            {"steps": 28, "guidance_scale": 2.5, "true_cfg_scale": 1.0},
            max_area=1024 * 1024,
            max_sequence_length=512,
        ),
        EditorKind(
            "qwen-image-edit",
            "motionedit.models.qwen_image_edit:load_qwen_image_edit",
            {"steps": 28, "guidance_scale": 1.0, "true_cfg_scale": 4.0},
            max_area=1024 * 1024,
        ),
        EditorKind(
            "qwen-image-edit-plus",
            "motionedit.models.qwen_image_edit:load_qwen_image_edit_plus",
            {"steps": 28, "guidance_scale": 1.0, "true_cfg_scale": 4.0},
            max_area=1024 * 1024,
        ),
        # InstructPix2Pix, MagicBrush, HQ-Edit: SD 1.5 at 512x512. The paper's "all other
        # models" settings (28 steps, guidance 3.5), the diffusers image guidance 1.5.
        EditorKind(
            "instruct-pix2pix",
            "motionedit.models.instruct_pix2pix:load_instruct_pix2pix",
            {
                "steps": 28,
                "guidance_scale": 3.5,
                "true_cfg_scale": 1.0,
                "image_guidance_scale": 1.5,
            },  # fmt: skip
            max_area=512 * 512,
            trainable=False,
        ),
        # FLUX.2 [klein] 4B, step-distilled: 4 steps, no guidance (Base: 50 steps, 4.0).
        EditorKind(
            "flux2-klein",
            "motionedit.models.flux2_klein:load_flux2_klein",
            {"steps": 4, "guidance_scale": 1.0, "true_cfg_scale": 1.0},
            max_area=1024 * 1024,
            max_sequence_length=512,
        ),
        # LongCat-Image-Edit: the model card's 50 steps, classifier-free guidance 4.5.
        EditorKind(
            "longcat-image-edit",
            "motionedit.models.longcat_image_edit:load_longcat_image_edit",
            {"steps": 50, "guidance_scale": 4.5, "true_cfg_scale": 1.0},
            max_area=1024 * 1024,
        ),
        # ChronoEdit-14B: its pipeline's documented example, 50 steps, guidance 5.0, 720p.
        EditorKind(
            "chronoedit",
            "motionedit.models.chronoedit:load_chronoedit",
            {"steps": 50, "guidance_scale": 5.0, "true_cfg_scale": 1.0},
            max_area=720 * 1280,
            max_sequence_length=512,
            trainable=False,
        ),
        # Trained here at 32x32 (see motionedit/models/tiny.py). One step suits an editor
        # trained with sigma_one_fraction 0.5; config.yaml's flow-trained editor sets 2.
        EditorKind(
            "tiny",
            "motionedit.models.tiny:load_tiny",
            {"steps": 1, "guidance_scale": 1.0, "true_cfg_scale": 1.0},
            max_area=32 * 32,
            max_sequence_length=16,
        ),
    )
}

#: The defaults of every kind, as :func:`editor_settings` lays them under an editor's own.
INFERENCE_DEFAULTS: dict[str, dict[str, Any]] = {
    name: kind.defaults() for name, kind in EDITOR_KINDS.items()
}


def editor_kind(kind: str, name: str = "?") -> EditorKind:
    """The registered kind, or a :class:`ModelError` naming the key and the known kinds."""
    if kind not in EDITOR_KINDS:
        raise ModelError(
            f"editors.{name}.kind: unknown kind {kind!r}; known: {', '.join(EDITOR_KINDS)}"
        )
    return EDITOR_KINDS[kind]


def editor_settings(config: dict[str, Any], name: str) -> dict[str, Any]:
    """The editor's config block with the kind's paper defaults under what the user set."""
    if name not in config.get("editors", {}):
        known = ", ".join(sorted(config.get("editors", {}))) or "none"
        raise ModelError(f"editors.{name}: no such editor (configured: {known})")
    user = copy.deepcopy(config["editors"][name])
    defaults = editor_kind(user.get("kind"), name).defaults()
    inference = {**defaults.pop("inference"), **user.get("inference", {})}
    return {**defaults, **user, "inference": inference, "name": name}


def load_editor(settings: dict[str, Any]) -> EditorAdapter:
    """The adapter for an editor's settings (see :func:`editor_settings`), via its kind's loader.

    The loader gets a copy of ``settings``; placing the pipeline records the device there.
    """
    kind = editor_kind(settings["kind"], settings.get("name", "?"))
    module, _, function = kind.loader.partition(":")
    return getattr(importlib.import_module(module), function)(dict(settings))
