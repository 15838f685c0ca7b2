"""An InstructPix2Pix pipeline of a few hundred kilobytes, built from configs (no downloads).

It has the real model's structure: a UNet with cross-attention taking 8 input channels
(the noisy latents and the input image's), a CLIP text encoder and a KL VAE, so the
adapter takes the branches it takes for InstructPix2Pix, MagicBrush or HQ-Edit.
"""

from __future__ import annotations

import torch
from diffusers import (
    AutoencoderKL,
    DDPMScheduler,
    StableDiffusionInstructPix2PixPipeline,
    UNet2DConditionModel,
)
from tiny_flux import TINY_VAE
from transformers import CLIPTextConfig, CLIPTextModel

from motionedit.models.tiny import build_tokenizers

PROMPTS = ["make the red subject move left", "raise the arm", "turn her head to the left"]


def build(seed: int = 0) -> StableDiffusionInstructPix2PixPipeline:
    torch.manual_seed(seed)
    tokenizer, _ = build_tokenizers(PROMPTS)
    unet = UNet2DConditionModel(
        sample_size=16,
        in_channels=8,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(16, 32),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(**TINY_VAE)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer.get_vocab()),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=16,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    return StableDiffusionInstructPix2PixPipeline(
        vae=vae,
        text_encoder=text_encoder.eval(),
        tokenizer=tokenizer,
        unet=unet,
        scheduler=DDPMScheduler(beta_schedule="scaled_linear"),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def editor(source, **extra) -> dict:
    """The `editors.<name>` settings of the tiny pipeline at ``source``: 48x64 edits."""
    return {"kind": "instruct-pix2pix", "source": str(source), "max_area": 48 * 64,
            "device": "cpu", **extra}  # fmt: skip
