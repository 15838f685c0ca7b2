"""Qwen-Image-Edit editors: the original release and the 2509+ "Plus" pipeline, with the
loader of each kind that the editor registry (motionedit/models/kinds.py) names.

Qwen-Image-Edit conditions twice on the input image: the Qwen2.5-VL text encoder reads it
next to the instruction (its hidden states become the prompt embeddings), and its VAE
latents are appended to the noisy latents as extra tokens that the transformer's RoPE
places as a second frame (``img_shapes``); the output over those tokens is discarded.
Everything below mirrors the pipelines' ``__call__`` step by step, so a velocity computed
here is the one the pipeline would compute, and the LoRA we train is the one users load.

Sizes: both pipelines resize the input to about 1024x1024 whatever is asked (the Plus one
also feeds the VL encoder a 384x384-area copy). Here the output size comes from
``max_area``, rounded as the pipelines round (:meth:`QwenImageEditAdapter.edit_size`), and
the VL copy of the Plus
pipeline keeps its share of that area, so at ``max_area = 1024**2`` everything matches the
pipelines and at the tiny scale of tests an edit takes milliseconds, not seconds.
"""

from __future__ import annotations

import math
import sys
from contextlib import AbstractContextManager
from typing import Any

import torch
from diffusers import QwenImageEditPipeline, QwenImageEditPlusPipeline
from PIL import Image
from transformers import Qwen2VLProcessor

from motionedit.images import to_pil
from motionedit.models.base import (
    Conditioning,
    EditorAdapter,
    seeded_generator,
    shifted_sigmas,
)
from motionedit.models.loading import load_pipeline
from motionedit.models.sizing import PIPELINE_AREA, pipeline_sizes

#: The area of the Plus pipeline's copy of the input for the VL encoder.
PLUS_VL_AREA = 384 * 384


class ImageOnlyQwen2VLProcessor(Qwen2VLProcessor):
    """Qwen2-VL's processor without its video half.

    transformers cannot build ``Qwen2VLProcessor`` when torchvision is missing (its video
    processor class only exists with torchvision, and the constructor checks it even when
    given None). The edit pipelines only ever pass text and images, so dropping the video
    processor loses nothing, and with the PIL image processor the VL input is the same on
    every machine whether or not torchvision is installed.
    """

    def __init__(
        self,
        image_processor: Any = None,
        tokenizer: Any = None,
        chat_template: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)


def _round32(x: float) -> int:
    # The pipelines' own rounding for their resize targets, kept above zero at tiny areas.
    return max(32, round(x / 32) * 32)


class QwenImageEditAdapter(EditorAdapter):
    """Qwen-Image-Edit (``QwenImageEditPipeline``): one condition image per prompt."""

    kind = "qwen-image-edit"
    pipeline_class: type = QwenImageEditPipeline
    #: Both streams of the joint attention: image (to_*) and text (add_*, to_add_out).
    default_lora_targets = (
        "to_q",
        "to_k",
        "to_v",
        "to_out.0",
        "add_q_proj",
        "add_k_proj",
        "add_v_proj",
        "to_add_out",
    )

    # -- geometry -----------------------------------------------------------------------
    def edit_size(self, image: Image.Image) -> tuple[int, int]:
        """The pipelines' own rule at ``max_area``: each side rounded to the *nearest*
        multiple of twice the VAE factor times the packing (32 for the released VAE), so at
        the kind's default 1024x1024 the size is the pipeline's own."""
        m, ratio = 2 * self.size_multiple, image.width / image.height
        width = math.sqrt(self.max_area * ratio)
        return max(m, round(width / m) * m), max(m, round(width / ratio / m) * m)

    def vl_size(self, image: Image.Image) -> tuple[int, int]:
        """(width, height) of the copy of the input the VL encoder reads.

        The original pipeline gives the VL encoder the very image the VAE encodes.
        """
        return self.edit_size(image)

    def _latent_hw(self, cond: Conditioning) -> tuple[int, int]:
        return cond.height // self.pipe.vae_scale_factor, cond.width // self.pipe.vae_scale_factor

    # -- conditioning ---------------------------------------------------------------------
    def _vl_input(self, image: Image.Image) -> Any:
        return image  # as the pipeline passes a single image

    def _prompt_embeds(self, prompt: str, vl_image: Image.Image) -> torch.Tensor:
        """``[L, D]`` for one prompt.

        One prompt at a time: the Plus pipeline reads a list of images as several pictures
        for one prompt, and an item's embeddings then do not depend on its batch.
        """
        image = self._vl_input(vl_image)
        embeds, _ = self.pipe.encode_prompt(prompt=[prompt], image=image, device=self.device)
        return embeds[0]

    @torch.no_grad()
    def condition(self, images: list[Any], prompts: list[str]) -> Conditioning:
        """Prompt embeddings (zero-padded, with their mask) and condition-image latents.

        Images are resized by the pipeline's own image processor, not ``base.resize``, so
        training sees the pixels ``edit()`` hands the pipeline.
        """
        if len(images) != len(prompts):
            raise ValueError(f"{len(images)} images for {len(prompts)} prompts")
        proc = self.pipe.image_processor
        pils = [to_pil(im) for im in images]
        width, height = self.edit_size(pils[0])
        vl_w, vl_h = self.vl_size(pils[0])
        embeds = [
            self._prompt_embeds(p, proc.resize(im, vl_h, vl_w))
            for p, im in zip(prompts, pils, strict=True)
        ]
        longest = max(e.shape[0] for e in embeds)
        prompt_embeds = torch.stack(
            [torch.nn.functional.pad(e, (0, 0, 0, longest - len(e))) for e in embeds]
        )
        mask = torch.zeros(len(embeds), longest, dtype=torch.long, device=prompt_embeds.device)
        for i, e in enumerate(embeds):
            mask[i, : e.shape[0]] = 1
        pixels = proc.preprocess([proc.resize(im, height, width) for im in pils], height, width)
        image_latents = self._vae_latents(pixels)
        lat_h, lat_w = height // self.pipe.vae_scale_factor, width // self.pipe.vae_scale_factor
        shape = (1, lat_h // 2, lat_w // 2)  # packed tokens per frame: (frames, rows, cols)
        return Conditioning(
            batched={
                "prompt_embeds": prompt_embeds,
                "prompt_embeds_mask": mask,
                "image_latents": image_latents,
            },
            # Per item: the noisy latents' frame, then the condition image's frame.
            shared={"img_shapes": [shape, shape], "vl_size": (vl_w, vl_h)},
            height=height,
            width=width,
            prompts=list(prompts),
        )

    def _vae_latents(self, pixels: torch.Tensor) -> torch.Tensor:
        """Packed, normalised VAE latents, through the pipeline's own encoder helper."""
        vae = self.pipe.vae
        pixels = pixels.unsqueeze(2).to(self.device, vae.dtype)  # [B, 3, 1, H, W]: one frame
        latents = self.pipe._encode_vae_image(pixels, generator=None)
        b, c, _, h, w = latents.shape
        return self.pipe._pack_latents(latents, b, c, h, w)

    @torch.no_grad()
    def encode_images(self, images: list[Any], cond: Conditioning) -> torch.Tensor:
        proc = self.pipe.image_processor
        pils = [proc.resize(to_pil(im), cond.height, cond.width) for im in images]
        return self._vae_latents(proc.preprocess(pils, cond.height, cond.width))

    # -- the transformer ------------------------------------------------------------------
    def velocity(
        self, latents: torch.Tensor, sigma: torch.Tensor, cond: Conditioning
    ) -> torch.Tensor:
        image_latents = cond.batched["image_latents"].to(latents.dtype)
        mask = cond.batched["prompt_embeds_mask"]
        # The pipeline's timestep is sigma * 1000 in the latents' dtype, divided back.
        timestep = (sigma.to(self.device, torch.float32) * 1000).to(latents.dtype) / 1000
        with self.transformer.cache_context("cond"):
            out = self.transformer(
                hidden_states=torch.cat([latents, image_latents], dim=1),
                timestep=timestep,
                guidance=self._guidance(latents.shape[0]),
                # encode_prompt drops an all-ones mask; so does this, for the same numbers.
                encoder_hidden_states_mask=None if bool(mask.all()) else mask,
                encoder_hidden_states=cond.batched["prompt_embeds"],
                img_shapes=[cond.shared["img_shapes"]] * latents.shape[0],
                attention_kwargs={},
                return_dict=False,
            )[0]
        return out[:, : latents.shape[1]]

    def noise(self, cond: Conditioning, generator: torch.Generator) -> torch.Tensor:
        lat_h, lat_w = self._latent_hw(cond)
        channels = int(self.transformer.config.in_channels) // 4
        dtype = cond.batched["prompt_embeds"].dtype
        # prepare_latents' draw: one frame, on the generator's device, then moved.
        shape = (len(cond), 1, channels, lat_h, lat_w)
        noise = torch.randn(shape, generator=generator, device=generator.device, dtype=dtype)
        return self.pipe._pack_latents(noise.to(self.device), len(cond), channels, lat_h, lat_w)

    def sigmas(self, steps: int, cond: Conditioning) -> torch.Tensor:
        lat_h, lat_w = self._latent_hw(cond)
        return shifted_sigmas(self.pipe.scheduler, steps, (lat_h // 2) * (lat_w // 2))

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        """Images in 0..1; without gradients, as decoded images only feed rewards and metrics."""
        vae = self.pipe.vae
        z = self.pipe._unpack_latents(latents, cond.height, cond.width, self.pipe.vae_scale_factor)
        z = z.to(vae.dtype)
        shape = (1, vae.config.z_dim, 1, 1, 1)
        mean = torch.tensor(vae.config.latents_mean).view(shape).to(z.device, z.dtype)
        inv_std = 1.0 / torch.tensor(vae.config.latents_std).view(shape).to(z.device, z.dtype)
        images = vae.decode(z / inv_std + mean, return_dict=False)[0][:, :, 0]
        return (images / 2 + 0.5).clamp(0, 1).float()

    # -- inference ------------------------------------------------------------------------
    def _sizes(
        self, size: tuple[int, int], vl_size: tuple[int, int]
    ) -> AbstractContextManager[None]:
        """Our output size and VL-copy size for one pipeline call (:mod:`.sizing`); the
        Plus pipeline names its two areas, the original one resizes to 1024x1024."""
        module = sys.modules[type(self.pipe).__call__.__module__]
        sizes = {getattr(module, "VAE_IMAGE_SIZE", PIPELINE_AREA): size}
        if hasattr(module, "CONDITION_IMAGE_SIZE"):
            sizes[module.CONDITION_IMAGE_SIZE] = vl_size
        return pipeline_sizes(self.pipe, sizes)

    def _call_kwargs(self, n: int, seed: int) -> dict[str, Any]:
        inf = self.settings["inference"]
        true_cfg = float(inf.get("true_cfg_scale", 1.0))
        negative = inf.get("negative_prompt")
        guidance = inf.get("guidance_scale")
        return {
            "true_cfg_scale": true_cfg,
            # True CFG needs a negative prompt; " " is the pipelines' documented empty one.
            "negative_prompt": [" " if negative is None else negative] * n
            if true_cfg > 1
            else None,
            "guidance_scale": (
                float(guidance)
                if self.transformer.config.guidance_embeds and guidance is not None
                else None
            ),
            "num_inference_steps": int(inf["steps"]),
            # Every item its own generator with the same seed: an image does not depend on
            # which batch it was in, and matches noise(cond, seeded_generator(seed)).
            "generator": [seeded_generator(seed) for _ in range(n)],
        }

    def _run(
        self,
        images: list[Image.Image],
        prompts: list[str],
        seed: int,
        size: tuple[int, int],
        vl_size: tuple[int, int],
    ) -> list[Image.Image]:
        with self._sizes(size, vl_size):
            out = self.pipe(
                image=images,
                prompt=list(prompts),
                width=size[0],
                height=size[1],
                output_type="pil",
                **self._call_kwargs(len(prompts), seed),
            )
        return list(out.images)

    def edit(self, images: list[Any], prompts: list[str], seed: int) -> list[Image.Image]:
        if len(images) != len(prompts):
            raise ValueError(f"{len(images)} images for {len(prompts)} prompts")
        pils = [to_pil(im) for im in images]
        # Every image at the first one's sizes, as condition() makes them.
        return self._run(pils, list(prompts), seed, self.edit_size(pils[0]), self.vl_size(pils[0]))


class QwenImageEditPlusAdapter(QwenImageEditAdapter):
    """Qwen-Image-Edit-2509 and later (``QwenImageEditPlusPipeline``).

    The prompt names the input as "Picture 1" and the VL encoder reads a smaller copy of
    it; the pipeline edits one prompt per call.
    """

    kind = "qwen-image-edit-plus"
    pipeline_class = QwenImageEditPlusPipeline

    def vl_size(self, image: Image.Image) -> tuple[int, int]:
        """The pipeline's 384x384-area copy, scaled with ``max_area`` like the output.

        At ``max_area = 1024**2`` this is exactly the pipeline's size; below, the VL input
        keeps the same share of the output's area instead of costing more than it.
        """
        area = PLUS_VL_AREA * self.max_area / PIPELINE_AREA
        ratio = image.width / image.height
        width = math.sqrt(area * ratio)
        return _round32(width), _round32(width / ratio)

    def _vl_input(self, image: Image.Image) -> Any:
        return [image]  # a list, as the pipeline passes it: "Picture 1" in the prompt

    def _run(
        self,
        images: list[Image.Image],
        prompts: list[str],
        seed: int,
        size: tuple[int, int],
        vl_size: tuple[int, int],
    ) -> list[Image.Image]:
        run = super()._run
        return [
            edited
            for im, prompt in zip(images, prompts, strict=True)
            for edited in run([im], [prompt], seed, size, vl_size)
        ]


def load_processor(
    source: str, subfolder: str = "processor", **hub: Any
) -> ImageOnlyQwen2VLProcessor:
    """A pipeline's Qwen2-VL processor component (``subfolder``), built so that
    torchvision is not needed."""
    from transformers import AutoTokenizer
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    image_processor = Qwen2VLImageProcessorPil.from_pretrained(source, subfolder=subfolder, **hub)
    tokenizer = AutoTokenizer.from_pretrained(source, subfolder=subfolder, **hub)
    return ImageOnlyQwen2VLProcessor(image_processor=image_processor, tokenizer=tokenizer)


def _load(adapter_class: type[QwenImageEditAdapter], settings: dict[str, Any]) -> Any:
    """The adapter with its pipeline loaded and placed; errors name the config key to change.

    The processor is loaded here (see :class:`ImageOnlyQwen2VLProcessor`) and handed to
    ``from_pretrained``.
    """
    pipe = load_pipeline(
        adapter_class.pipeline_class,
        settings,
        lambda source, **hub: {"processor": load_processor(source, **hub)},
    )
    return adapter_class(pipe, settings)


def load_qwen_image_edit(settings: dict[str, Any]) -> QwenImageEditAdapter:
    """The adapter for a ``qwen-image-edit`` editor."""
    return _load(QwenImageEditAdapter, settings)


def load_qwen_image_edit_plus(settings: dict[str, Any]) -> QwenImageEditPlusAdapter:
    """The adapter for a ``qwen-image-edit-plus`` editor (the 2509 release and later)."""
    return _load(QwenImageEditPlusAdapter, settings)
