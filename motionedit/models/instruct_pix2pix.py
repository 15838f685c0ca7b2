"""InstructPix2Pix-family editors: InstructPix2Pix, MagicBrush and HQ-Edit, the Stable
Diffusion 1.5 editors of the paper's Table 1, through diffusers'
``StableDiffusionInstructPix2PixPipeline``.

They condition a noise-predicting UNet on the input image's latents (8 input channels:
the noisy latents and the image's) and guide twice, on the instruction
(``guidance_scale``) and on the image (``image_guidance_scale``). As the authors'
release runs them (inference/run_image_editing.py), every checkpoint samples with the
Euler ancestral scheduler. The image keeps its aspect ratio at the kind's pixel budget
(512 x 512, the resolution these models were trained at) and its sides are rounded to the
VAE's factor.

Inference only: SFT and MotionNFT here train flow-matching models (velocity, sigma in
0..1), and these UNets predict noise on a discrete DDPM schedule. A LoRA made elsewhere in
the diffusers format loads onto the UNet.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionInstructPix2PixPipeline

from motionedit.images import resize, to_pil
from motionedit.models.base import InferenceOnlyAdapter, seeded_generator
from motionedit.models.loading import load_pipeline


class InstructPix2PixAdapter(InferenceOnlyAdapter):
    kind = "instruct-pix2pix"

    @property
    def transformer(self) -> torch.nn.Module:
        """The denoiser LoRA attaches to: this family's UNet."""
        return self.pipe.unet

    @property
    def size_multiple(self) -> int:
        """The UNet takes any latent size; only the VAE's factor applies (no 2x2 packing)."""
        return int(self.pipe.vae_scale_factor)

    def edit(self, images: list[Any], prompts: list[str], seed: int) -> list[Any]:
        inf = self.settings["inference"]
        pils = [to_pil(im) for im in images]
        size = self.edit_size(pils[0])
        out = self.pipe(
            prompt=list(prompts),
            image=[resize(im, size) for im in pils],
            num_inference_steps=int(inf["steps"]),
            guidance_scale=float(inf["guidance_scale"]),
            image_guidance_scale=float(inf["image_guidance_scale"]),
            generator=[seeded_generator(seed) for _ in pils],
        )
        return out.images


def load_instruct_pix2pix(settings: dict[str, Any]) -> InstructPix2PixAdapter:
    """The adapter for an ``instruct-pix2pix`` editor, on the release's Euler ancestral sampler.

    Loaded without the safety checker, as the release loads these: a blacked-out image
    would be scored as the editor's edit.
    """

    def no_safety_checker(source: str, **hub: Any) -> dict[str, Any]:
        return {"safety_checker": None, "requires_safety_checker": False}

    pipe = load_pipeline(StableDiffusionInstructPix2PixPipeline, settings, no_safety_checker)
    pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config)
    return InstructPix2PixAdapter(pipe, settings)
