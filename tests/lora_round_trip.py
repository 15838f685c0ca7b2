"""The LoRA round trip every trainable editor kind passes, whatever its pipeline.

A LoRA is attached (only its weights train), moved off its zero start, saved, and loaded
into a fresh adapter, which must then give the same velocity and the same edit. The caller
checks the last link itself: that plain diffusers, loading the saved file its own way,
makes the same edit.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def trained_lora_round_trip(
    load: Callable[[], Any], images: list, prompts: list[str], folder: Path, seed: int = 5
) -> Any:
    """The first image's edit with the saved LoRA (a PIL image)."""
    adapter = load()
    cond = adapter.condition(images, prompts)
    x0 = adapter.encode_images(images, cond)
    sigma = torch.linspace(0.4, 0.8, len(images))
    v_base = adapter.velocity(x0, sigma, cond)
    adapter.add_lora(rank=4, alpha=8)
    trainable = [n for n, p in adapter.transformer.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in adapter.transformer.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.5)
    v_lora = adapter.velocity(x0, sigma, cond)
    assert (v_lora - v_base).abs().max() > 1e-3
    edited = adapter.edit(images[:1], prompts[:1], seed=seed)[0]
    adapter.save_lora(folder)

    fresh = load()
    fresh.load_lora(folder)
    assert torch.equal(fresh.velocity(x0, sigma, fresh.condition(images, prompts)), v_lora)
    assert fresh.edit(images[:1], prompts[:1], seed=seed)[0].tobytes() == edited.tobytes()
    return edited
