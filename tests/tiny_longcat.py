"""A LongCat-Image-Edit pipeline with random weights, built from configs (no downloads).

Real components at toy sizes: the tiny Qwen2.5-VL text encoder, tokenizer and processor of
the Qwen-Image-Edit tests (the same encoder family), a four-block VAE with the 16 latent
channels the pipeline assumes, and a one-block LongCat transformer.
"""

from __future__ import annotations

import torch
from diffusers import (
    AutoencoderKL,
    FlowMatchEulerDiscreteScheduler,
    LongCatImageEditPipeline,
    LongCatImageTransformer2DModel,
)
from tiny_flux import TINY_VAE
from tiny_qwen import HIDDEN, tiny_processor, tiny_text_encoder, tiny_tokenizer

LATENT_CHANNELS = 16  # LongCatImageEditPipeline.__call__ hard-codes num_channels_latents
# Four blocks, the released VAE's factor of 8: the pipeline rounds sizes to 16 pixels, so
# any other factor would change its sizes. Narrow, so that a test can run the pipeline
# unchanged at its own 1024x1024 in a few seconds.
VAE = {
    **TINY_VAE,
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "block_out_channels": (4, 4, 8, 8),
    "latent_channels": LATENT_CHANNELS,
}


def build(seed: int = 0) -> LongCatImageEditPipeline:
    torch.manual_seed(seed)
    tokenizer = tiny_tokenizer()
    vae = AutoencoderKL(**VAE, shift_factor=0.05, scaling_factor=0.8)
    transformer = LongCatImageTransformer2DModel(
        patch_size=1,
        in_channels=LATENT_CHANNELS * 4,  # the 2x2 packing
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=HIDDEN,
        pooled_projection_dim=HIDDEN,
        axes_dims_rope=[4, 6, 6],
    )
    pipe = LongCatImageEditPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True),
        vae=vae.eval(),
        text_encoder=tiny_text_encoder(tokenizer),
        tokenizer=tokenizer,
        text_processor=tiny_processor(tokenizer),
        transformer=transformer.eval(),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def editor(source, **extra) -> dict:
    """`editors.<name>` of the tiny pipeline at ``source``: 256x192 edits at 4:3."""
    return {"kind": "longcat-image-edit", "source": str(source), "max_area": 256 * 192,
            "device": "cpu", **extra}  # fmt: skip
