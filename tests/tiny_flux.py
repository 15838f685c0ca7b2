"""A FLUX.1 Kontext pipeline a few hundred kilobytes big, built from configs (no downloads).

It has the real model's structure (guidance embedding, CLIP + T5 text encoders, a VAE
with shift and scaling factors), so the adapter code under test takes the
same branches it takes for FLUX.1 Kontext [dev].
"""

from __future__ import annotations

import torch
from diffusers import (
    AutoencoderKL,
    FlowMatchEulerDiscreteScheduler,
    FluxKontextPipeline,
    FluxTransformer2DModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

from motionedit.models.tiny import build_tokenizers

#: A two-level VAE with 4 latent channels, the base of every tiny test pipeline's VAE.
TINY_VAE = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ("DownEncoderBlock2D", "DownEncoderBlock2D"),
    "up_block_types": ("UpDecoderBlock2D", "UpDecoderBlock2D"),
    "block_out_channels": (8, 16),
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 4,
}
PROMPTS = ["make the red subject move left", "raise the arm", "turn the blue object right"]


def build(seed: int = 0, guidance: bool = True) -> FluxKontextPipeline:
    torch.manual_seed(seed)
    clip_tokenizer, t5_tokenizer = build_tokenizers(PROMPTS)
    vocab = len(clip_tokenizer.get_vocab())
    ids = {"pad_token_id": clip_tokenizer.pad_token_id, "eos_token_id": clip_tokenizer.eos_token_id}
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=16,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=32,
        guidance_embeds=guidance,
        axes_dims_rope=(4, 6, 6),
    )
    vae = AutoencoderKL(
        **TINY_VAE,
        use_quant_conv=False,
        use_post_quant_conv=False,
        shift_factor=0.06,
        scaling_factor=0.9,
    )
    clip = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=vocab,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=16,
            projection_dim=32,
            bos_token_id=clip_tokenizer.bos_token_id,
            **ids,
        )
    )
    t5 = T5EncoderModel(
        T5Config(
            vocab_size=vocab,
            d_model=32,
            d_kv=8,
            d_ff=64,
            num_layers=2,
            num_heads=4,
            **ids,
        )
    )
    return FluxKontextPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True),
        vae=vae,
        text_encoder=clip.eval(),
        tokenizer=clip_tokenizer,
        text_encoder_2=t5.eval(),
        tokenizer_2=t5_tokenizer,
        transformer=transformer,
    )


def editor(source, **extra) -> dict:
    """The `editors.<name>` settings of the tiny Kontext pipeline saved at ``source``: edits
    at 48x64 (the pipeline would otherwise resize to about 1024x1024) with 16 T5 tokens."""
    return {
        "kind": "flux-kontext",
        "source": str(source),
        "max_area": 48 * 64,
        "max_sequence_length": 16,
        "device": "cpu",
        **extra,
    }
