"""A tiny FLUX.1-Kontext-architecture image editor that can be trained from scratch on a CPU.

Every component is the stock diffusers / transformers class (``FluxKontextPipeline`` made of
``FluxTransformer2DModel``, ``AutoencoderKL``, ``CLIPTextModel``, ``T5EncoderModel`` and
``FlowMatchEulerDiscreteScheduler``); only the sizes are shrunk so that the autoencoder and the
transformer both train within a few minutes on two CPU cores.  The tokenizers are built in memory
from the training prompts, because no pretrained tokenizer files may be downloaded.

Design choices (why):

* The VAE downsamples by only 2 and keeps 12 latent channels (12 numbers for a 2x2x3 patch), so
  reconstruction is close to lossless: the edits are small motions, so the do-nothing baseline
  is already close to the target and any blur introduced by the autoencoder is lost PSNR.
* The transformer sees ``(H/4) * (W/4)`` noisy tokens plus as many condition tokens; at the
  default editing area of 32*32 pixels this is 64 + 64 tokens, so a training step takes about
  0.12 s on two cores (at 64*64 a step costs four times as much and the budget buys too few).
* The transformer starts as the *copy editor* (``init_copy_editor``): its one-step output is the
  condition image. Motion edits change a small part of the frame, so learning the change from
  there beats learning to reproduce the whole frame from random weights (measured on the
  synthetic benchmark: +0.86 dB PSNR over the do-nothing baseline instead of +0.64 dB).
* Text is short (at most ``max_sequence_length`` tokens) because the instructions are short and
  every text token is also a token of the joint attention.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import (
    AutoencoderKL,
    FlowMatchEulerDiscreteScheduler,
    FluxKontextPipeline,
    FluxTransformer2DModel,
)
from PIL import Image
from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordLevel
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    PreTrainedTokenizerFast,
    T5Config,
    T5EncoderModel,
)

from motionedit.images import resize
from motionedit.models.flux_kontext import FluxKontextAdapter
from motionedit.models.loading import load_pipeline, place

PAD_TOKEN = "[PAD]"
EOS_TOKEN = "[EOS]"
UNK_TOKEN = "[UNK]"
BOS_TOKEN = "[BOS]"
SPECIAL_TOKENS = (PAD_TOKEN, EOS_TOKEN, UNK_TOKEN, BOS_TOKEN)
PAD_ID, EOS_ID, UNK_ID, BOS_ID = range(len(SPECIAL_TOKENS))

# Both text encoders see at most this many tokens (instructions are ~10 words).  Pass it as
# ``max_sequence_length`` to the pipeline: its default of 512 would add 512 text tokens.
MAX_TEXT_TOKENS = 16

TINY_ARCHITECTURE: dict[str, Any] = {
    "transformer": {
        "patch_size": 1,
        "in_channels": 48,  # 12 latent channels x (2 x 2) packed patch
        "out_channels": None,
        "num_layers": 2,
        "num_single_layers": 2,
        "attention_head_dim": 32,
        "num_attention_heads": 4,
        "joint_attention_dim": 64,
        "pooled_projection_dim": 64,
        "guidance_embeds": False,
        "axes_dims_rope": (8, 12, 12),
    },
    "vae": {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ("DownEncoderBlock2D", "DownEncoderBlock2D"),
        "up_block_types": ("UpDecoderBlock2D", "UpDecoderBlock2D"),
        "block_out_channels": (16, 32),
        "layers_per_block": 1,
        "latent_channels": 12,
        "norm_num_groups": 8,
        "sample_size": 64,
        "mid_block_add_attention": False,
        "force_upcast": False,
        "scaling_factor": 1.0,
        "shift_factor": 0.0,
    },
    "clip": {
        "hidden_size": 64,
        "intermediate_size": 128,
        "projection_dim": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "max_position_embeddings": MAX_TEXT_TOKENS,
        "hidden_act": "quick_gelu",
    },
    "t5": {
        "d_model": 64,
        "d_kv": 32,
        "d_ff": 128,
        "num_layers": 1,
        "num_heads": 2,
        "relative_attention_num_buckets": 8,
        "relative_attention_max_distance": 16,
        "feed_forward_proj": "relu",
        "dropout_rate": 0.0,
    },
    "scheduler": {
        "num_train_timesteps": 1000,
        "shift": 1.0,
        "use_dynamic_shifting": False,
    },
    "max_sequence_length": MAX_TEXT_TOKENS,
    # The transformer starts as the copy editor (see init_copy_editor); 0 leaves it random.
    "copy_init": {"anchor": 100.0, "sharpness": 6.0},
}


def prompt_words(prompt: str) -> list[str]:
    """Split a prompt the same way the tokenizers' normalizer + pre-tokenizer do."""
    return re.findall(r"\w+|[^\w\s]+", prompt.lower())


def _word_level_tokenizer(
    vocab: dict[str, int], template: str, max_length: int
) -> PreTrainedTokenizerFast:
    """Wrap a lowercase word-level ``tokenizers.Tokenizer`` with a special-token template."""
    core = Tokenizer(WordLevel(vocab, unk_token=UNK_TOKEN))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(
        single=template,
        special_tokens=[(BOS_TOKEN, BOS_ID), (EOS_TOKEN, EOS_ID)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token=UNK_TOKEN,
        pad_token=PAD_TOKEN,
        eos_token=EOS_TOKEN,
        bos_token=BOS_TOKEN,
        model_max_length=max_length,
        padding_side="right",
        truncation_side="right",
    )


def build_tokenizers(
    prompts: Sequence[str], max_length: int = MAX_TEXT_TOKENS
) -> tuple[PreTrainedTokenizerFast, PreTrainedTokenizerFast]:
    """Build the CLIP-like and T5-like tokenizers from the training prompts, without any files.

    The vocabulary is sorted so that the same prompts always give the same ids (the text
    encoders' embeddings are indexed by them).  The CLIP tokenizer wraps a prompt in
    ``[BOS] ... [EOS]`` because ``CLIPTextModel`` pools the hidden state at the first EOS; the T5
    tokenizer only appends ``[EOS]`` like the real T5 tokenizer.  ``model_max_length`` is what
    ``FluxKontextPipeline`` uses as the CLIP sequence length.
    """
    words = sorted({word for prompt in prompts for word in prompt_words(prompt)})
    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS)}
    for word in words:
        vocab.setdefault(word, len(vocab))
    clip_tokenizer = _word_level_tokenizer(vocab, f"{BOS_TOKEN} $A {EOS_TOKEN}", max_length)
    t5_tokenizer = _word_level_tokenizer(vocab, f"$A {EOS_TOKEN}", max_length)
    return clip_tokenizer, t5_tokenizer


def build_tiny_pipeline(
    arch: dict[str, Any], prompts: Sequence[str], seed: int
) -> FluxKontextPipeline:
    """Build a randomly initialised tiny ``FluxKontextPipeline`` (same seed, same weights).

    Each component is created right after re-seeding with its own offset of ``seed``, so that
    changing one component's size does not change the initialisation of the others.
    """
    clip_tokenizer, t5_tokenizer = build_tokenizers(
        prompts, arch.get("max_sequence_length", MAX_TEXT_TOKENS)
    )
    vocab_size = len(clip_tokenizer.get_vocab())

    torch.manual_seed(seed)
    vae = AutoencoderKL(**arch["vae"])
    # Zero the second convolution of every ResNet block so that each block starts as the
    # identity: the autoencoder then starts as a shallow, almost linear map and reaches a good
    # reconstruction in far fewer steps (measured: +0.5 dB after 150 steps).
    for name, module in vae.named_modules():
        if name.endswith("conv2") and isinstance(module, torch.nn.Conv2d):
            torch.nn.init.zeros_(module.weight)
            torch.nn.init.zeros_(module.bias)
    torch.manual_seed(seed + 1)
    transformer = FluxTransformer2DModel(**arch["transformer"])
    torch.manual_seed(seed + 2)
    clip_config = CLIPTextConfig(
        vocab_size=vocab_size,
        pad_token_id=PAD_ID,
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
        **arch["clip"],
    )
    text_encoder = CLIPTextModel(clip_config)
    torch.manual_seed(seed + 3)
    t5_config = T5Config(
        vocab_size=vocab_size,
        pad_token_id=PAD_ID,
        eos_token_id=EOS_ID,
        decoder_start_token_id=PAD_ID,
        **arch["t5"],
    )
    text_encoder_2 = T5EncoderModel(t5_config)
    scheduler = FlowMatchEulerDiscreteScheduler(**arch["scheduler"])
    pipe = FluxKontextPipeline(
        scheduler=scheduler,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=clip_tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=t5_tokenizer,
        transformer=transformer,
    )
    if arch.get("copy_init"):
        init_copy_editor(transformer, **arch["copy_init"])
    pipe.set_progress_bar_config(disable=True)
    return pipe


@torch.no_grad()
def init_copy_editor(
    transformer: FluxTransformer2DModel, anchor: float = 100.0, sharpness: float = 6.0
) -> None:
    """Set weights so the transformer predicts ``v = x_t - c`` (one Euler step returns ``c``).

    ``c`` is the condition token at the same (row, column), which Kontext marks with a 1 in
    the first position-id axis. The construction, on the residual stream of width D:

    * ``x_embedder`` writes a token's latent into channels ``[0, C)`` and two constant anchor
      channels ``+anchor`` and ``-anchor``. The anchors dominate every LayerNorm's variance,
      so the norms act as a fixed linear scaling of ``D / sqrt(2 anchor^2)``.
    * In the first double block, the first heads have constant queries and keys (zero
      weights, a bias) whose rotary pairs line up exactly at offset (1, 0, 0): the condition
      token at the same position. ``sharpness`` scales them through the shared RMSNorm
      weight so the softmax puts all its weight there. Their values read the latent (the
      LayerNorm's mean removal undone) and ``to_out`` writes it to channels ``[C, 2C)``.
    * Every other block starts switched off (adaLN-zero gates), ``norm_out`` is a plain
      LayerNorm, and ``proj_out`` returns channels ``[0, C)`` minus ``[C, 2C)``.

    Training starts from an editor that returns its input, and every block, text and
    timestep pathway can grow from zero gates, as in adaLN-zero initialisation.
    """
    t = transformer
    width = t.inner_dim
    channels = t.config.in_channels
    head_dim = t.config.attention_head_dim
    axes = list(t.config.axes_dims_rope)
    copy_heads = math.ceil(channels / head_dim)
    per_head = math.ceil(channels / copy_heads)
    if 2 * channels + 2 > width or copy_heads > t.config.num_attention_heads:
        raise ValueError("init_copy_editor: the transformer is too narrow to hold a copy path")
    scale = anchor / math.sqrt(width / 2)  # undoes the anchors' LayerNorm scaling

    t.x_embedder.weight.zero_()
    t.x_embedder.bias.zero_()
    t.x_embedder.weight[:channels, :channels] = torch.eye(channels)
    t.x_embedder.bias[2 * channels] = anchor
    t.x_embedder.bias[2 * channels + 1] = -anchor

    block = t.transformer_blocks[0]
    block.norm1.linear.weight.zero_()
    block.norm1.linear.bias.zero_()
    block.norm1.linear.bias[2 * width : 3 * width] = 1.0  # gate of the attention branch
    query = torch.zeros(head_dim)
    key = torch.zeros(head_dim)
    # Axis 0: highest-frequency pair (1 rad per step), key turned back by one step so the
    # scores peak where the key's id is one more than the query's: noisy -> condition.
    query[0] = 1.0
    key[0], key[1] = math.cos(-1.0), math.sin(-1.0)
    # Row and column axes: the two highest-frequency pairs aligned, so the scores peak at
    # zero offset and the lower frequency breaks the aliasing of the higher one.
    offset = axes[0]
    for axis in (1, 2):
        query[offset] = key[offset] = 1.0
        query[offset + 2] = key[offset + 2] = 1.0
        offset += axes[axis]
    attn = block.attn
    unmix = scale * (torch.eye(channels) + torch.ones(channels, channels) / (width - channels))
    attn.to_out[0].weight.zero_()
    attn.to_out[0].bias.zero_()
    for h in range(copy_heads):
        rows = slice(h * head_dim, (h + 1) * head_dim)
        for proj, bias in ((attn.to_q, query), (attn.to_k, key), (attn.to_v, None)):
            proj.weight[rows] = 0.0
            proj.bias[rows] = 0.0 if bias is None else bias
        lo, hi = h * per_head, min(channels, (h + 1) * per_head)
        attn.to_v.weight[h * head_dim : h * head_dim + hi - lo, :channels] = unmix[lo:hi]
        for j in range(hi - lo):
            attn.to_out[0].weight[channels + lo + j, h * head_dim + j] = 1.0
    attn.norm_q.weight.fill_(sharpness)
    attn.norm_k.weight.fill_(sharpness)

    for later in t.transformer_blocks[1:]:
        later.norm1.linear.weight.zero_()
        later.norm1.linear.bias.zero_()
    for single in t.single_transformer_blocks:
        single.norm.linear.weight.zero_()
        single.norm.linear.bias.zero_()
    t.norm_out.linear.weight.zero_()
    t.norm_out.linear.bias.zero_()
    t.proj_out.weight.zero_()
    t.proj_out.bias.zero_()
    t.proj_out.weight[:, :channels] = scale * torch.eye(channels)
    t.proj_out.weight[:, channels : 2 * channels] = -scale * torch.eye(channels)


def _to_tensor(images: Sequence[np.ndarray]) -> list[torch.Tensor]:
    """uint8 HxWx3 arrays -> float CHW tensors in [-1, 1], the range the pipeline feeds the VAE."""
    return [
        torch.from_numpy(np.array(im, dtype=np.uint8)).permute(2, 0, 1).float() / 127.5 - 1.0
        for im in images
    ]


def _stack_batch(
    tensors: list[torch.Tensor], indices: np.ndarray, crop: int | None, rng: np.random.Generator
) -> torch.Tensor:
    """Stack a batch; images of different sizes are randomly cropped to a common size."""
    chosen = [tensors[i] for i in indices]
    if crop is None:
        crop_h = min(t.shape[1] for t in chosen)
        crop_w = min(t.shape[2] for t in chosen)
    else:
        crop_h = crop_w = crop
    crop_h -= crop_h % 2
    crop_w -= crop_w % 2
    out = []
    for t in chosen:
        top = int(rng.integers(0, t.shape[1] - crop_h + 1))
        left = int(rng.integers(0, t.shape[2] - crop_w + 1))
        out.append(t[:, top : top + crop_h, left : left + crop_w])
    return torch.stack(out)


def _flip_and_turn(batch: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """A random one of the eight flips and quarter turns of a batch (turns only when square).

    An autoencoder must reconstruct textures it was not trained on (the benchmark's); the
    train split alone is a few hundred images, and these symmetries multiply it for free.
    """
    if rng.random() < 0.5:
        batch = batch.flip(-1)
    if rng.random() < 0.5:
        batch = batch.flip(-2)
    if batch.shape[-1] == batch.shape[-2] and rng.random() < 0.5:
        batch = batch.transpose(-1, -2)
    return batch


@torch.no_grad()
def _latent_statistics(vae: AutoencoderKL, tensors: list[torch.Tensor]) -> tuple[float, float]:
    """Mean and standard deviation of the encoder means over all images."""
    total, total_sq, count = 0.0, 0.0, 0
    for t in tensors:
        z = vae.encode(t[None]).latent_dist.mean
        total += float(z.sum())
        total_sq += float((z.double() ** 2).sum())
        count += z.numel()
    mean = total / count
    std = math.sqrt(max(total_sq / count - mean**2, 1e-12))
    return mean, std


def train_autoencoder(
    vae: AutoencoderKL,
    images: Sequence[np.ndarray],
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    progress: Callable[[int, float], None] | None = None,
    crop: int | None = None,
    kl_weight: float = 1e-6,
    augment: bool = True,
) -> dict[str, float]:
    """Train the VAE as a (nearly deterministic) autoencoder and set its scaling/shift factors.

    The pipeline encodes with the posterior mode (``sample_mode="argmax"``), so the decoder is
    trained on the encoder mean: a sampled latent would only add noise the editor never sees.  A
    tiny KL term keeps the latent scale bounded.  Loss is L1 + MSE (L1 for sharp texture, MSE
    because the benchmark is PSNR).  Afterwards ``shift_factor``/``scaling_factor`` are set so that
    the transformer sees latents with zero mean and unit standard deviation, matching the unit
    Gaussian noise of flow matching.

    ``images`` are uint8 HxWx3 arrays at the editing resolution; batches are random crops of a
    common size (the smallest image in the batch, or ``crop``).  Returns training metrics.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    tensors = _to_tensor(images)
    vae.train()
    # foreach: the same update bit for bit, in fewer calls (CPU defaults to one per tensor)
    optimizer = torch.optim.AdamW(
        vae.parameters(), lr=lr, weight_decay=0.0, betas=(0.9, 0.99), foreach=True
    )
    warmup = max(1, steps // 20)

    def lr_lambda(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
    start = time.perf_counter()
    loss_value = float("nan")
    for step in range(steps):
        indices = rng.choice(len(tensors), size=min(batch_size, len(tensors)), replace=False)
        batch = _stack_batch(tensors, indices, crop, rng)
        if augment:
            batch = _flip_and_turn(batch, rng)
        posterior = vae.encode(batch).latent_dist
        recon = vae.decode(posterior.mean).sample
        loss = F.l1_loss(recon, batch) + F.mse_loss(recon, batch)
        if kl_weight > 0:
            loss = loss + kl_weight * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        loss_value = float(loss.detach())
        if progress is not None:
            progress(step, loss_value)
    vae.eval()
    mean, std = _latent_statistics(vae, tensors)
    vae.register_to_config(shift_factor=mean, scaling_factor=1.0 / std)
    with torch.no_grad():
        psnrs = []
        for t in tensors:
            recon = vae.decode(vae.encode(t[None]).latent_dist.mean).sample.clamp(-1, 1)
            mse = float(((recon - t[None]) / 2).pow(2).mean())
            psnrs.append(10 * math.log10(1.0 / max(mse, 1e-10)))
    return {
        "final_loss": loss_value,
        "recon_psnr": float(np.mean(psnrs)),
        "latent_mean": mean,
        "latent_std": std,
        "seconds": time.perf_counter() - start,
    }


class TinyKontextAdapter(FluxKontextAdapter):
    """The tiny editor: the Kontext adapter over a pipeline built by this module."""

    kind = "tiny"


def load_tiny(settings: dict[str, Any]) -> TinyKontextAdapter:
    """The adapter for a ``tiny`` editor: a Kontext pipeline folder the ``sft`` rule wrote."""
    return TinyKontextAdapter(load_pipeline(FluxKontextPipeline, settings), settings)


def build_tiny_editor(
    settings: dict[str, Any], prompts: Iterable[str], seed: int
) -> TinyKontextAdapter:
    """A randomly initialised tiny editor for ``prompts``, placed as ``settings`` say.

    The tokenizers' vocabulary is the prompts' words; any other word reads as unknown.
    """
    pipe = build_tiny_pipeline(TINY_ARCHITECTURE, sorted(set(prompts)), seed)
    place(pipe, settings)
    return TinyKontextAdapter(pipe, settings)


def train_editor_autoencoder(
    adapter: TinyKontextAdapter,
    frames: Iterable[Image.Image],
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    progress: Callable[[int, float], None] | None = None,
) -> dict[str, float]:
    """Train the editor's VAE (:func:`train_autoencoder`) on ``frames`` at its edit size."""
    images = [np.asarray(resize(im, adapter.edit_size(im))) for im in frames]
    return train_autoencoder(
        adapter.pipe.vae, images, steps, batch_size, lr, seed, progress=progress
    )


def vae_state(vae: AutoencoderKL) -> dict[str, Any]:
    """A trained VAE as checkpoint entries: its weights and the latent scaling it learned."""
    return {
        "vae": {k: v.detach().clone() for k, v in vae.state_dict().items()},
        "vae_config": {
            "scaling_factor": float(vae.config.scaling_factor),
            "shift_factor": float(vae.config.shift_factor),
        },
    }


def load_vae_state(vae: AutoencoderKL, state: dict[str, Any]) -> None:
    """Restore a VAE from the entries :func:`vae_state` made."""
    vae.load_state_dict(state["vae"])
    vae.register_to_config(**state["vae_config"])
