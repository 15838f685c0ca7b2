"""FLUX.1 Kontext editors (the real one from the hub, and the tiny one trained here),
with the loaders the editor registry (motionedit/models/kinds.py) names for both kinds.

Kontext edits by in-context conditioning: the condition image's packed latents are
appended to the noisy latents as extra tokens whose position ids carry a 1 in the first
axis, and the transformer's output over those tokens is discarded. Everything below
mirrors ``FluxKontextPipeline.__call__`` step by step, so a velocity computed here is the
one the pipeline would compute, and the LoRA we train is the one users load.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import FluxKontextPipeline

from motionedit.images import resize, to_pil
from motionedit.models.base import (
    Conditioning,
    EditorAdapter,
    decode_packed,
    pixels_to_tensor,
    seeded_generator,
    shifted_sigmas,
)
from motionedit.models.loading import load_pipeline


class FluxKontextAdapter(EditorAdapter):
    kind = "flux-kontext"

    @property
    def _max_sequence_length(self) -> int:
        return int(self.settings.get("max_sequence_length", 512))

    def _latent_channels(self) -> int:
        return int(self.transformer.config.in_channels) // 4

    def _pack(self, latents: torch.Tensor) -> torch.Tensor:
        b, c, h, w = latents.shape
        return self.pipe._pack_latents(latents, b, c, h, w)

    def _vae_latents(self, pixels: torch.Tensor) -> torch.Tensor:
        vae = self.pipe.vae
        dist = vae.encode(pixels.to(self.device, vae.dtype)).latent_dist
        return (dist.mode() - vae.config.shift_factor) * vae.config.scaling_factor

    def condition(self, images: list[Any], prompts: list[str]) -> Conditioning:
        pils = [to_pil(im) for im in images]
        width, height = self.edit_size(pils[0])
        pixels = pixels_to_tensor([resize(im, (width, height)) for im in pils])
        prompt_embeds, pooled, text_ids = self.pipe.encode_prompt(
            prompt=list(prompts),
            prompt_2=None,
            device=self.device,
            max_sequence_length=self._max_sequence_length,
        )
        image_latents = self._pack(self._vae_latents(pixels))
        lat_h = 2 * (height // self.size_multiple)
        lat_w = 2 * (width // self.size_multiple)
        ids = self.pipe._prepare_latent_image_ids(
            1, lat_h // 2, lat_w // 2, self.device, prompt_embeds.dtype
        )
        image_ids = ids.clone()
        image_ids[..., 0] = 1
        return Conditioning(
            batched={
                "prompt_embeds": prompt_embeds,
                "pooled_prompt_embeds": pooled,
                "image_latents": image_latents.to(self.dtype),
            },
            shared={"text_ids": text_ids, "img_ids": torch.cat([ids, image_ids], dim=0)},
            height=height,
            width=width,
            prompts=list(prompts),
        )

    def encode_images(self, images: list[Any], cond: Conditioning) -> torch.Tensor:
        size = (cond.width, cond.height)
        pixels = pixels_to_tensor([resize(to_pil(im), size) for im in images])
        return self._pack(self._vae_latents(pixels)).to(self.dtype)

    def velocity(
        self, latents: torch.Tensor, sigma: torch.Tensor, cond: Conditioning
    ) -> torch.Tensor:
        hidden = torch.cat([latents, cond.batched["image_latents"]], dim=1)
        out = self.transformer(
            hidden_states=hidden,
            timestep=sigma.to(self.device, latents.dtype),
            guidance=self._guidance(latents.shape[0]),
            pooled_projections=cond.batched["pooled_prompt_embeds"],
            encoder_hidden_states=cond.batched["prompt_embeds"],
            txt_ids=cond.shared["text_ids"],
            img_ids=cond.shared["img_ids"],
            return_dict=False,
        )[0]
        return out[:, : latents.shape[1]]

    def noise(self, cond: Conditioning, generator: torch.Generator) -> torch.Tensor:
        lat_h = 2 * (cond.height // self.size_multiple)
        lat_w = 2 * (cond.width // self.size_multiple)
        shape = (len(cond), self._latent_channels(), lat_h, lat_w)
        noise = torch.randn(shape, generator=generator, dtype=torch.float32)
        return self._pack(noise).to(self.device, self.dtype)

    def sigmas(self, steps: int, cond: Conditioning) -> torch.Tensor:
        seq_len = (cond.height // self.size_multiple) * (cond.width // self.size_multiple)
        return shifted_sigmas(self.pipe.scheduler, steps, seq_len)

    def decode(self, latents: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        return decode_packed(self.pipe, latents, cond.height, cond.width)

    def edit(self, images: list[Any], prompts: list[str], seed: int) -> list[Any]:
        inf = self.settings["inference"]
        pils = [to_pil(im) for im in images]
        width, height = self.edit_size(pils[0])
        pils = [resize(im, (width, height)) for im in pils]
        kwargs: dict[str, Any] = {}
        if float(inf.get("true_cfg_scale", 1.0)) > 1.0:
            kwargs["negative_prompt"] = inf.get("negative_prompt") or " "
            kwargs["true_cfg_scale"] = float(inf["true_cfg_scale"])
        out = self.pipe(
            image=pils,
            prompt=list(prompts),
            height=height,
            width=width,
            num_inference_steps=int(inf["steps"]),
            guidance_scale=float(inf["guidance_scale"]),
            generator=[seeded_generator(seed) for _ in pils],
            max_area=height * width,
            _auto_resize=False,
            max_sequence_length=self._max_sequence_length,
            **kwargs,
        )
        return out.images


def load_flux_kontext(settings: dict[str, Any]) -> FluxKontextAdapter:
    """The adapter for a ``flux-kontext`` editor, its pipeline loaded and placed."""
    return FluxKontextAdapter(load_pipeline(FluxKontextPipeline, settings), settings)
