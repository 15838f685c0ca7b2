"""The editor adapter: one interface over every diffusers editing pipeline.

SFT, MotionNFT and inference all need the same handful of operations on an editor
(encode the condition image and the instruction, encode a target image to latents, ask
the transformer for its velocity at (x_t, sigma), step a deterministic sampler, decode,
and attach / save / load LoRA weights). Each base model family implements them once over
its real diffusers pipeline, and every stage is written against this class only, so a
new editor means one adapter, not one copy of every training script.

Conventions shared by every adapter (the rectified-flow convention of FLUX and
Qwen-Image): latents are *packed* token sequences ``[B, N, C]``; ``sigma`` runs from 1
(pure noise) to 0 (clean); ``x_sigma = (1 - sigma) * x0 + sigma * noise``; the
transformer predicts ``v = noise - x0``, so an Euler step is
``x <- x + (sigma_next - sigma) * v``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

# Defined with the registry so that it can be caught without torch; re-exported here.
from motionedit.models.kinds import ModelError as ModelError

#: LoRA weights file written by ``save_lora_weights`` and read by ``load_lora_weights``.
LORA_WEIGHT_NAME = "pytorch_lora_weights.safetensors"


@dataclass
class Conditioning:
    """Everything the transformer needs besides (x_t, sigma), for one batch of edits.

    ``batched`` holds tensors whose first dimension is the batch (prompt embeddings,
    condition-image latents); ``shared`` holds what is the same for every item (position
    ids, shapes). ``height``/``width`` are the output size in pixels.
    """

    batched: dict[str, torch.Tensor]
    shared: dict[str, Any]
    height: int
    width: int
    prompts: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.prompts)

    def repeat(self, k: int) -> Conditioning:
        """Each item ``k`` times in a row: the group of K samples per prompt of MotionNFT."""
        return replace(
            self,
            batched={n: t.repeat_interleave(k, dim=0) for n, t in self.batched.items()},
            prompts=[p for p in self.prompts for _ in range(k)],
        )

    def select(self, index: list[int] | torch.Tensor) -> Conditioning:
        """A sub-batch, for micro-batching a large group through the optimiser."""
        idx = torch.as_tensor(index, dtype=torch.long)
        return replace(
            self,
            batched={n: t[idx.to(t.device)] for n, t in self.batched.items()},
            prompts=[self.prompts[int(i)] for i in idx],
        )


def edit_size(width: int, height: int, max_area: int, multiple: int) -> tuple[int, int]:
    """Output size with the input's aspect ratio and about ``max_area`` pixels.

    Both sides are rounded down to ``multiple`` (VAE factor times the 2x2 packing). This
    replaces the pipelines' own resize rules, which jump to about 1024x1024 whatever
    the model (see docs/architecture.md, Editors).
    """
    aspect = width / height
    w = int(math.sqrt(max_area * aspect)) // multiple * multiple
    h = int(math.sqrt(max_area / aspect)) // multiple * multiple
    return max(w, multiple), max(h, multiple)


def pixels_to_tensor(images: list[Image.Image]) -> torch.Tensor:
    """``[B, 3, H, W]`` in -1..1, the range every diffusers VAE expects."""
    arr = np.stack([np.asarray(im, dtype=np.float32) for im in images])
    return torch.from_numpy(arr).permute(0, 3, 1, 2) / 127.5 - 1.0


def tensor_to_pil(images: torch.Tensor) -> list[Image.Image]:
    """PIL images from ``[B, 3, H, W]`` in 0..1, rounded the way diffusers' processor does."""
    arr = (images.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
    return [Image.fromarray(a) for a in arr.permute(0, 2, 3, 1).cpu().numpy()]


class EditorAdapter(ABC):
    """An instruction-based editor over a real diffusers pipeline.

    ``settings`` is the editor's validated config block (``editors.<name>``): source,
    dtype, device, offload, max_area and the inference settings.
    """

    kind: str = ""
    #: Module names LoRA attaches to when the config does not say.
    default_lora_targets: tuple[str, ...] = ("to_q", "to_k", "to_v", "to_out.0")

    def __init__(self, pipe: Any, settings: dict[str, Any]) -> None:
        self.pipe = pipe
        self.settings = settings
        self.device = torch.device(settings.get("device_resolved", "cpu"))
        self.dtype = getattr(torch, settings.get("dtype", "float32"))
        # What a MotionNFT run trains at, while :meth:`training_settings` holds them; None
        # is the editor's own setting (what inference uses).
        self.training_area: int | None = None
        self.training_guidance: float | None = None

    @contextmanager
    def training_settings(self, max_area: int | None, guidance: float | None) -> Iterator[None]:
        """Edit sizes from ``max_area`` pixels and the transformer called with distilled
        guidance ``guidance``, within the block; None keeps the editor's setting.

        The released MotionNFT trains at 512x512 with the sampling guidance, while the
        benchmark edits at the editor's own size and guidance: the trainer enters this
        block for its rollouts and its loss and leaves it for its held-out edits.
        """
        saved = self.training_area, self.training_guidance
        self.training_area, self.training_guidance = max_area, guidance
        try:
            yield
        finally:
            self.training_area, self.training_guidance = saved

    # -- geometry -----------------------------------------------------------------------
    @property
    def max_area(self) -> int:
        """The pixel budget of an edit now: the training one inside ``training_settings``."""
        return int(self.training_area or self.settings["max_area"])

    @property
    def size_multiple(self) -> int:
        """Pixel sides must be multiples of this: the VAE factor times the 2x2 packing."""
        return int(self.pipe.vae_scale_factor) * 2

    def edit_size(self, image: Image.Image) -> tuple[int, int]:
        return edit_size(*image.size, self.max_area, self.size_multiple)

    # -- what training needs -------------------------------------------------------------
    @abstractmethod
    def condition(self, images: list[Any], prompts: list[str]) -> Conditioning:
        """Encode condition images and instructions; all images go to the first one's size."""

    @abstractmethod
    def encode_images(self, images: list[Any], cond: Conditioning) -> torch.Tensor:
        """Packed clean latents ``x0`` of target images at ``cond``'s size."""

    @abstractmethod
    def velocity(
        self, latents: torch.Tensor, sigma: torch.Tensor, cond: Conditioning
    ) -> torch.Tensor:
        """The transformer's ``v = noise - x0`` at ``(latents, sigma)``, ``sigma`` of shape [B]."""

    @abstractmethod
    def decode(self, latents: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        """Images ``[B, 3, H, W]`` in 0..1 from packed latents."""

    @abstractmethod
    def noise(self, cond: Conditioning, generator: torch.Generator) -> torch.Tensor:
        """Packed Gaussian noise of the latent shape, drawn the way the pipeline draws it."""

    @abstractmethod
    def sigmas(self, steps: int, cond: Conditioning) -> torch.Tensor:
        """The pipeline's noise levels for ``steps`` steps, shift included, ending with 0."""

    @abstractmethod
    def edit(self, images: list[Any], prompts: list[str], seed: int) -> list[Image.Image]:
        """Inference through the pipeline's own ``__call__`` with the configured settings.

        Every image gets its own generator seeded with ``seed``, so an image does not
        depend on which batch it was made in.
        """

    def sample(
        self,
        cond: Conditioning,
        steps: int,
        generator: torch.Generator | None = None,
        latents: torch.Tensor | None = None,
        solver: str = "euler",
    ) -> torch.Tensor:
        """Deterministic sampling without classifier-free guidance, as MotionNFT's rollouts use.

        ``euler`` steps along the velocity. ``dpm2`` is the multistep second-order
        DPM-Solver++ on the data prediction x0 = x - sigma v, the released trainer's
        rollout solver (``solver="dpm2"``, deterministic): its first and last steps are
        first order (both equal an Euler step), each step between combines this step's x0
        prediction with the previous one's. At two steps the two solvers agree.
        """
        if solver not in ("euler", "dpm2"):
            raise ValueError(f"unknown solver {solver!r} (euler or dpm2)")
        if latents is None:
            latents = self.noise(cond, generator or torch.Generator().manual_seed(0))
        sig = self.sigmas(steps, cond).to(self.device)
        previous_x0: torch.Tensor | None = None
        for i in range(len(sig) - 1):
            v = self.velocity(latents, sig[i].expand(latents.shape[0]), cond)
            x0 = latents.double() - sig[i].double() * v.double() if solver == "dpm2" else None
            if previous_x0 is not None and i < len(sig) - 2:
                s = sig.double()
                x = dpm_solver_2m_step(latents.double(), x0, previous_x0, s[i - 1], s[i], s[i + 1])
            else:
                x = latents.float() + (sig[i + 1] - sig[i]) * v  # the pipeline's Euler step
            previous_x0 = x0
            latents = x.to(latents.dtype)
        return latents

    def _guidance(self, batch: int) -> torch.Tensor | None:
        """The distilled-guidance input of transformers that have one (FLUX.1 [dev]), else None."""
        if not self.transformer.config.guidance_embeds:
            return None
        scale = self.training_guidance
        if scale is None:
            scale = float(self.settings["inference"]["guidance_scale"])
        return torch.full((batch,), scale, device=self.device, dtype=torch.float32)

    # -- LoRA ------------------------------------------------------------------------------
    @property
    def transformer(self) -> torch.nn.Module:
        return self.pipe.transformer

    @property
    def text_encoders(self) -> list[torch.nn.Module]:
        """The pipeline's prompt encoders (CLIP and T5 for Kontext, Qwen2.5-VL for Qwen)."""
        names = ("text_encoder", "text_encoder_2", "text_encoder_3")
        return [m for m in (getattr(self.pipe, n, None) for n in names) if m is not None]

    def add_lora(
        self,
        rank: int,
        alpha: float,
        targets: list[str] | None = None,
        adapter_name: str = "default",
        dropout: float = 0.0,
    ) -> None:
        """Attach a trainable LoRA (peft) to the transformer's attention projections.

        The transformer's own weights are frozen first, so only the adapter trains.
        """
        from peft import LoraConfig

        self.transformer.requires_grad_(False)
        config = LoraConfig(
            r=rank,
            lora_alpha=alpha,
            lora_dropout=dropout,
            init_lora_weights="gaussian",
            target_modules=list(targets or self.default_lora_targets),
        )
        self.transformer.add_adapter(config, adapter_name=adapter_name)

    def lora_parameters(self) -> list[torch.nn.Parameter]:
        return [p for n, p in self.transformer.named_parameters() if "lora_" in n]

    def save_lora(self, directory: str | Path, adapter_name: str = "default") -> Path:
        """Write the adapter in the diffusers LoRA format (``pipe.load_lora_weights`` reads it)."""
        from peft.utils import get_peft_model_state_dict

        state = get_peft_model_state_dict(self.transformer, adapter_name=adapter_name)
        state = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
        peft_config = self.transformer.peft_config[adapter_name]
        metadata = peft_config.to_dict()
        metadata["target_modules"] = sorted(metadata["target_modules"])
        type(self.pipe).save_lora_weights(
            str(directory),
            transformer_lora_layers=state,
            weight_name=LORA_WEIGHT_NAME,
            transformer_lora_adapter_metadata=metadata,
        )
        return Path(directory) / LORA_WEIGHT_NAME

    def load_lora(self, directory: str | Path, adapter_name: str = "default") -> None:
        """Load a diffusers-format LoRA, ours or anyone's, and make it the active adapter."""
        path = Path(directory)
        if not (path / LORA_WEIGHT_NAME).is_file() and not path.is_file():
            raise ModelError(f"no LoRA weights at {path} (expected {LORA_WEIGHT_NAME} in it)")
        self.pipe.load_lora_weights(str(path), adapter_name=adapter_name)
        self.pipe.set_adapters([adapter_name])


class InferenceOnlyAdapter(EditorAdapter):
    """An editor that edits (and takes a LoRA made elsewhere) but is not trained here.

    SFT and MotionNFT train flow-matching velocity models; a kind whose denoiser predicts
    something else (noise, on a discrete schedule) has none of what they need. The config
    check refuses an `sft` or `train` run on such an editor before any job starts
    (``EditorKind.trainable``); these methods say the same if called anyway.
    """

    def _not_trainable(self, *args: Any, **kwargs: Any) -> Any:
        raise ModelError(
            f"editors.{self.settings.get('name', '?')}: a `{self.kind}` editor is inference "
            "only here (SFT and MotionNFT train flow-matching editors); evaluate it as a model"
        )

    condition = encode_images = velocity = decode = noise = sigmas = _not_trainable


def dpm_solver_2m_step(
    x: torch.Tensor,
    x0: torch.Tensor,
    previous_x0: torch.Tensor,
    sigma_previous: torch.Tensor,
    sigma: torch.Tensor,
    sigma_next: torch.Tensor,
) -> torch.Tensor:
    """One second-order multistep DPM-Solver++ step from ``sigma`` to ``sigma_next``.

    In the flow convention alpha = 1 - sigma and the log signal-to-noise ratio is
    lambda = log(alpha / sigma). The step is the exact solution of the ODE with the data
    prediction taken linear in lambda through this step's and the previous step's x0
    predictions. A previous level of 1 (pure noise, lambda = -inf) leaves no slope to take,
    and the step is first order.
    """

    def log_snr(s: torch.Tensor) -> torch.Tensor:
        return torch.log(1 - s) - torch.log(s)

    h = log_snr(sigma_next) - log_snr(sigma)
    decay = (1 - sigma_next) * torch.expm1(-h)  # alpha_next (e^-h - 1), negative
    x_next = (sigma_next / sigma) * x - decay * x0
    if sigma_previous < 1:
        ratio = (log_snr(sigma) - log_snr(sigma_previous)) / h
        x_next = x_next - 0.5 * decay * (x0 - previous_x0) / ratio
    return x_next


def shifted_sigmas(scheduler: Any, steps: int, image_seq_len: int) -> torch.Tensor:
    """The noise levels FLUX-family pipelines (Kontext, Qwen-Image, LongCat) sample with.

    ``linspace(1, 1/steps, steps)`` shifted by ``mu``, linear in the number of image tokens
    (the pipelines' ``calculate_shift`` with the scheduler's own constants), ending with 0.
    Set on a copy of ``scheduler``, so the pipeline's own keeps no state from training.
    """
    from diffusers.pipelines.flux.pipeline_flux_kontext import calculate_shift

    scheduler = type(scheduler).from_config(scheduler.config)
    mu = calculate_shift(
        image_seq_len,
        scheduler.config.get("base_image_seq_len", 256),
        scheduler.config.get("max_image_seq_len", 4096),
        scheduler.config.get("base_shift", 0.5),
        scheduler.config.get("max_shift", 1.15),
    )
    scheduler.set_timesteps(sigmas=np.linspace(1.0, 1 / steps, steps), mu=mu, device="cpu")
    sigmas = scheduler.sigmas.detach().float().clone()
    if float(sigmas[-1]) != 0.0:  # a shift_terminal schedule (Qwen-Image) stops short of it
        sigmas = torch.cat([sigmas, sigmas.new_zeros(1)])
    return sigmas


def decode_packed(pipe: Any, latents: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Images ``[B, 3, H, W]`` in 0..1 from packed latents of a FLUX-layout pipeline (its
    ``_unpack_latents`` and a VAE with ``scaling_factor``/``shift_factor``: Kontext, LongCat)."""
    vae = pipe.vae
    lat = pipe._unpack_latents(latents, height, width, pipe.vae_scale_factor)
    lat = lat / vae.config.scaling_factor + vae.config.shift_factor
    images = vae.decode(lat.to(vae.dtype), return_dict=False)[0]
    return (images.float() / 2 + 0.5).clamp(0, 1)


def seeded_generator(seed: int) -> torch.Generator:
    """A generator on the CPU: the same seed then gives the same noise on any device."""
    return torch.Generator("cpu").manual_seed(int(seed))
