"""A ChronoEdit pipeline with random weights, built from configs (no downloads).

Real components at toy sizes: a one-layer UMT5 text encoder, a CLIP vision encoder, the
Wan video VAE (spatial factor 8, temporal 4), a one-block ChronoEdit transformer, and the
character-level tokenizer of the Qwen tests standing in for UMT5's.
"""

from __future__ import annotations

import torch
from diffusers import (
    AutoencoderKLWan,
    ChronoEditPipeline,
    ChronoEditTransformer3DModel,
    FlowMatchEulerDiscreteScheduler,
)
from tiny_qwen import tiny_tokenizer
from transformers import (
    CLIPImageProcessor,
    CLIPVisionConfig,
    CLIPVisionModel,
    UMT5Config,
    UMT5EncoderModel,
)

Z_DIM = 4
TEXT_DIM = 16
IMAGE_DIM = 8


def build(seed: int = 0) -> ChronoEditPipeline:
    torch.manual_seed(seed)
    tokenizer = tiny_tokenizer()
    text_encoder = UMT5EncoderModel(
        UMT5Config(
            vocab_size=len(tokenizer),
            d_model=TEXT_DIM,
            d_kv=8,
            d_ff=32,
            num_layers=1,
            num_heads=2,
            relative_attention_num_buckets=8,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    image_encoder = CLIPVisionModel(
        CLIPVisionConfig(
            hidden_size=IMAGE_DIM,
            intermediate_size=16,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
            projection_dim=IMAGE_DIM,
        )
    )
    image_processor = CLIPImageProcessor(crop_size=32, size={"shortest_edge": 32})
    vae = AutoencoderKLWan(
        base_dim=4,
        z_dim=Z_DIM,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
        latents_mean=[0.1 * i for i in range(Z_DIM)],
        latents_std=[1.0 + 0.5 * i for i in range(Z_DIM)],
    )
    transformer = ChronoEditTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=Z_DIM * 2 + 4,  # noisy latents, the input's latents, the 4 mask channels
        out_channels=Z_DIM,
        text_dim=TEXT_DIM,
        freq_dim=32,
        ffn_dim=32,
        num_layers=1,
        image_dim=IMAGE_DIM,
        rope_max_seq_len=32,
    )
    pipe = ChronoEditPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder.eval(),
        image_encoder=image_encoder.eval(),
        image_processor=image_processor,
        transformer=transformer.eval(),
        vae=vae.eval(),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=5.0),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def editor(source, **extra) -> dict:
    """`editors.<name>` of the tiny pipeline at ``source``: 64x48 edits at 4:3, 32 prompt
    tokens."""
    return {"kind": "chronoedit", "source": str(source), "max_area": 64 * 48,
            "max_sequence_length": 32, "device": "cpu", **extra}  # fmt: skip
