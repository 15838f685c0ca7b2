"""A FLUX.2 [klein] pipeline with random weights, built from configs (no downloads).

Real components at toy sizes: a Qwen3 text encoder deep enough for the three hidden layers
the pipeline reads (9, 18, 27), the FLUX.2 VAE and transformer, and a character-level
tokenizer with a chat template, as the pipeline formats its prompt through one.
"""

from __future__ import annotations

import torch
from diffusers import (
    AutoencoderKLFlux2,
    FlowMatchEulerDiscreteScheduler,
    Flux2KleinPipeline,
    Flux2Transformer2DModel,
)
from tiny_flux import TINY_VAE
from tiny_qwen import tiny_tokenizer
from transformers import Qwen3Config, Qwen3ForCausalLM

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build(seed: int = 0) -> Flux2KleinPipeline:
    torch.manual_seed(seed)
    tokenizer = tiny_tokenizer()
    tokenizer.chat_template = CHAT_TEMPLATE
    text_encoder = Qwen3ForCausalLM(
        Qwen3Config(
            vocab_size=len(tokenizer),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=28,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=8,
            max_position_embeddings=256,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            tie_word_embeddings=True,
        )
    )
    vae = AutoencoderKLFlux2(**TINY_VAE, sample_size=32)
    transformer = Flux2Transformer2DModel(
        patch_size=1,
        in_channels=16,  # 4 latent channels x the 2x2 patch
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=48,  # three hidden layers of 16
        timestep_guidance_channels=32,
        axes_dims_rope=(4, 4, 4, 4),
        guidance_embeds=False,
    )
    return Flux2KleinPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True),
        vae=vae,
        text_encoder=text_encoder.eval(),
        tokenizer=tokenizer,
        transformer=transformer,
        is_distilled=True,
    )


def editor(source, **extra) -> dict:
    """`editors.<name>` of the tiny pipeline at ``source``: 96x72 edits at 4:3, 32 prompt tokens
    (the pipeline refuses images under 64 pixels a side)."""
    return {"kind": "flux2-klein", "source": str(source), "max_area": 96 * 72,
            "max_sequence_length": 32, "device": "cpu", **extra}  # fmt: skip
