"""FLUX.2 [klein] editors through diffusers' ``Flux2KleinPipeline``, trainable by SFT and
MotionNFT.

FLUX.2 [klein] (4B and 9B; step-distilled or Base) edits from reference images with a
Qwen3 text encoder (three of its hidden layers, stacked). The reference image's latents
are appended to the noisy latents as extra tokens whose position ids carry a time offset
of 10, and the transformer's output over them is discarded. Latents are the VAE's 2x2
patches normalised by its batch-norm statistics, and the noise is drawn in that patch
space. Everything below mirrors ``Flux2KleinPipeline.__call__`` step by step, so a
velocity computed here is the one the pipeline would compute, and the LoRA trained here is
one diffusers loads.

One pipeline call takes a prompt and its reference images, so a batch is edited one input
at a time, each with its own generator. The edit size is ours (the input's aspect ratio at
``max_area``, sides rounded to 16); the kind's defaults are the distilled 4B's four steps
without guidance; a Base model wants ``steps: 50, guidance_scale: 4.0``. Training samples
without guidance, as MotionNFT's rollouts do for every kind.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from diffusers import Flux2KleinPipeline
from diffusers.pipelines.flux2.pipeline_flux2_klein import compute_empirical_mu

from motionedit.images import resize, to_pil
from motionedit.models.base import Conditioning, EditorAdapter, seeded_generator
from motionedit.models.loading import load_pipeline

#: The pipeline shrinks a reference image above this many pixels before encoding it.
REFERENCE_AREA = 1024 * 1024


class Flux2KleinAdapter(EditorAdapter):
    kind = "flux2-klein"

    @property
    def _max_sequence_length(self) -> int:
        return int(self.settings.get("max_sequence_length", 512))

    def _latent_hw(self, cond: Conditioning) -> tuple[int, int]:
        """Rows and columns of latent tokens (each a 2x2 patch of the VAE's latents)."""
        return cond.height // self.size_multiple, cond.width // self.size_multiple

    def _bn(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The VAE's batch-norm mean and std over patch channels, as the pipeline forms them."""
        vae = self.pipe.vae
        mean = vae.bn.running_mean.view(1, -1, 1, 1)
        std = torch.sqrt(vae.bn.running_var.view(1, -1, 1, 1) + vae.config.batch_norm_eps)
        return mean, std

    def _pixels(self, images: list[Any], width: int, height: int) -> torch.Tensor:
        """``[B, 3, H, W]`` in -1..1 through the pipeline's own image processor."""
        proc = self.pipe.image_processor
        sized = [resize(to_pil(im), (width, height)) for im in images]
        return torch.cat([proc.preprocess(im, height, width, resize_mode="crop") for im in sized])

    def _packed_latents(self, pixels: torch.Tensor) -> torch.Tensor:
        vae = self.pipe.vae
        latents = self.pipe._encode_vae_image(pixels.to(self.device, vae.dtype), generator=None)
        return self.pipe._pack_latents(latents)

    def condition(self, images: list[Any], prompts: list[str]) -> Conditioning:
        if len(images) != len(prompts):
            raise ValueError(f"{len(images)} images for {len(prompts)} prompts")
        width, height = self.edit_size(to_pil(images[0]))
        if width * height > REFERENCE_AREA:
            raise ValueError(
                f"editors.{self.settings.get('name', '?')}.max_area: FLUX.2 [klein] shrinks a "
                f"reference image above {REFERENCE_AREA} pixels, so training needs max_area <= it"
            )
        prompt_embeds, text_ids = self.pipe.encode_prompt(
            prompt=list(prompts), device=self.device, max_sequence_length=self._max_sequence_length
        )
        pixels = self._pixels(images, width, height)
        image_latents = self._packed_latents(pixels)
        rows, cols = height // self.size_multiple, width // self.size_multiple
        grid = torch.zeros(1, 1, rows, cols)
        latent_ids = self.pipe._prepare_latent_ids(grid)
        image_ids = self.pipe._prepare_image_ids([grid])
        return Conditioning(
            batched={"prompt_embeds": prompt_embeds, "image_latents": image_latents.to(self.dtype)},
            shared={
                "text_ids": text_ids[:1].to(self.device),
                "img_ids": torch.cat([latent_ids, image_ids], dim=1).to(self.device),
            },
            height=height,
            width=width,
            prompts=list(prompts),
        )

    def encode_images(self, images: list[Any], cond: Conditioning) -> torch.Tensor:
        pixels = self._pixels(images, cond.width, cond.height)
        return self._packed_latents(pixels).to(self.dtype)

    def velocity(
        self, latents: torch.Tensor, sigma: torch.Tensor, cond: Conditioning
    ) -> torch.Tensor:
        hidden = torch.cat([latents, cond.batched["image_latents"]], dim=1)
        out = self.transformer(
            hidden_states=hidden.to(self.transformer.dtype),
            timestep=sigma.to(self.device, latents.dtype),
            guidance=None,  # as the pipeline calls it: [klein] has no distilled guidance
            encoder_hidden_states=cond.batched["prompt_embeds"],
            txt_ids=cond.shared["text_ids"],
            img_ids=cond.shared["img_ids"],
            return_dict=False,
        )[0]
        return out[:, : latents.shape[1]]

    def noise(self, cond: Conditioning, generator: torch.Generator) -> torch.Tensor:
        rows, cols = self._latent_hw(cond)
        channels = int(self.transformer.config.in_channels)  # 4 x the VAE's, per 2x2 patch
        noise = torch.randn((len(cond), channels, rows, cols), generator=generator)
        return self.pipe._pack_latents(noise).to(self.device, self.dtype)

    def sigmas(self, steps: int, cond: Conditioning) -> torch.Tensor:
        rows, cols = self._latent_hw(cond)
        scheduler = self.pipe.scheduler
        scheduler.set_timesteps(
            sigmas=np.linspace(1.0, 1 / steps, steps),
            mu=compute_empirical_mu(image_seq_len=rows * cols, num_steps=steps),
            device="cpu",
        )
        return scheduler.sigmas.detach().clone().float()

    def decode(self, latents: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        rows, cols = self._latent_hw(cond)
        vae = self.pipe.vae
        grid = latents.permute(0, 2, 1).reshape(latents.shape[0], -1, rows, cols)
        mean, std = self._bn()
        grid = grid * std.to(grid) + mean.to(grid)
        images = vae.decode(self.pipe._unpatchify_latents(grid).to(vae.dtype), return_dict=False)[0]
        return (images.float() / 2 + 0.5).clamp(0, 1)

    def edit(self, images: list[Any], prompts: list[str], seed: int) -> list[Any]:
        inf = self.settings["inference"]
        pils = [to_pil(im) for im in images]
        width, height = self.edit_size(pils[0])
        return [
            self.pipe(
                image=resize(im, (width, height)),
                prompt=prompt,
                height=height,
                width=width,
                num_inference_steps=int(inf["steps"]),
                guidance_scale=float(inf["guidance_scale"]),
                generator=seeded_generator(seed),
                max_sequence_length=self._max_sequence_length,
            ).images[0]
            for im, prompt in zip(pils, prompts, strict=True)
        ]


def load_flux2_klein(settings: dict[str, Any]) -> Flux2KleinAdapter:
    """The adapter for a ``flux2-klein`` editor, its pipeline loaded and placed."""
    return Flux2KleinAdapter(load_pipeline(Flux2KleinPipeline, settings), settings)
