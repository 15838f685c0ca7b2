"""Tiny Qwen-Image-Edit pipelines with random weights, built in memory from configs.

Real components at toy sizes: a 2-layer Qwen2.5-VL text encoder (with its vision tower),
a small AutoencoderKLQwenImage, a 2-block QwenImageTransformer2DModel, the scheduler
configuration the released models ship, and a character-level tokenizer holding the
special tokens of the pipelines' prompt templates. Nothing is read from disk or the hub.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import tokenizers
import torch
from diffusers import (
    AutoencoderKLQwenImage,
    FlowMatchEulerDiscreteScheduler,
    QwenImageEditPipeline,
    QwenImageEditPlusPipeline,
    QwenImageTransformer2DModel,
)
from PIL import Image
from tokenizers import decoders, models, pre_tokenizers
from transformers import (
    PreTrainedTokenizerFast,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
)
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from motionedit.models.qwen_image_edit import ImageOnlyQwen2VLProcessor

SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
HIDDEN = 16  # text encoder width = the transformer's joint_attention_dim
Z_DIM = 4
VISION_PATCH = 8


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """One token per printable character, plus the chat-template specials."""
    chars = [chr(c) for c in range(32, 127)] + ["\n"]
    tok = tokenizers.Tokenizer(models.WordLevel({c: i for i, c in enumerate(chars)}, unk_token=" "))
    tok.pre_tokenizer = pre_tokenizers.Split(tokenizers.Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )


def tiny_processor(tokenizer: PreTrainedTokenizerFast) -> ImageOnlyQwen2VLProcessor:
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=16 * 16,
        max_pixels=64 * 64,
        patch_size=VISION_PATCH,
        temporal_patch_size=2,
        merge_size=2,
    )
    return ImageOnlyQwen2VLProcessor(image_processor=image_processor, tokenizer=tokenizer)


def tiny_text_encoder(tokenizer: PreTrainedTokenizerFast) -> Qwen2_5_VLForConditionalGeneration:
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    config = Qwen2_5_VLConfig(
        text_config={
            "hidden_size": HIDDEN,
            "intermediate_size": 16,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
            "vocab_size": len(tokenizer),
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "rope_parameters": {
                "mrope_section": [1, 1, 2],
                "rope_type": "default",
                "rope_theta": 1e6,
            },
        },
        vision_config={
            "depth": 2,
            "hidden_size": 16,
            "intermediate_size": 16,
            "num_heads": 2,
            "out_hidden_size": HIDDEN,
            "patch_size": VISION_PATCH,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 4 * VISION_PATCH,
            "fullatt_block_indexes": [1],
        },
        vocab_size=len(tokenizer),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    return Qwen2_5_VLForConditionalGeneration(config).eval()


def tiny_scheduler() -> FlowMatchEulerDiscreteScheduler:
    """The released Qwen-Image scheduler configuration (dynamic exponential shift)."""
    return FlowMatchEulerDiscreteScheduler(
        base_image_seq_len=256,
        base_shift=0.5,
        max_image_seq_len=8192,
        max_shift=0.9,
        shift=1.0,
        shift_terminal=0.02,
        time_shift_type="exponential",
        use_dynamic_shifting=True,
    )


def tiny_pipeline(plus: bool = False, seed: int = 0) -> Any:
    """A QwenImageEdit(Plus)Pipeline; the same seed gives the same weights."""
    torch.manual_seed(seed)
    tokenizer = tiny_tokenizer()
    text_encoder = tiny_text_encoder(tokenizer)
    vae = AutoencoderKLQwenImage(
        base_dim=Z_DIM * 6,
        z_dim=Z_DIM,
        dim_mult=[1, 2, 4],
        num_res_blocks=1,
        temperal_downsample=[False, True],
        latents_mean=[0.1 * i for i in range(Z_DIM)],
        latents_std=[1.0 + 0.5 * i for i in range(Z_DIM)],
    )
    transformer = QwenImageTransformer2DModel(
        patch_size=2,
        in_channels=Z_DIM * 4,
        out_channels=Z_DIM,
        num_layers=2,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=HIDDEN,
        axes_dims_rope=(8, 4, 4),
        # The 2511 release's timestep handling of the condition tokens, on the Plus one.
        zero_cond_t=plus,
    )
    pipeline_class = QwenImageEditPlusPipeline if plus else QwenImageEditPipeline
    pipe = pipeline_class(
        scheduler=tiny_scheduler(),
        vae=vae.eval(),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        processor=tiny_processor(tokenizer),
        transformer=transformer.eval(),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def sample_image(width: int = 64, height: int = 48, seed: int = 0) -> Image.Image:
    """A smooth random RGB image, so the VAE and VL encoder see structure, not noise."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(height // 8, width // 8, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize((width, height), Image.Resampling.BILINEAR)


def save_like_the_hub(pipe: Any, folder: Path, component: str = "processor") -> Path:
    """A saved tiny pipeline in the layout of the released repositories: its Qwen2-VL
    processor ``component`` recorded as transformers' class, the image processor's
    configuration in its own file."""
    pipe.save_pretrained(folder)
    index = json.loads((folder / "model_index.json").read_text())
    index[component] = ["transformers", "Qwen2VLProcessor"]
    (folder / "model_index.json").write_text(json.dumps(index))
    unified = folder / component / "processor_config.json"
    image_config = json.loads(unified.read_text())["image_processor"]
    image_config["processor_class"] = "Qwen2VLProcessor"
    (folder / component / "preprocessor_config.json").write_text(json.dumps(image_config))
    unified.unlink()
    return folder
