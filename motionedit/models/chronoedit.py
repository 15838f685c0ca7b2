"""ChronoEdit (NVIDIA) through diffusers' ``ChronoEditPipeline``.

ChronoEdit is an image editor built on a video model (Wan 2.1 image-to-video, 14B): it
generates a short clip that starts at the input frame, and the clip's last frame is the
edit. A motion benchmark probes exactly the temporal prior such a model brings. The
pipeline encodes the instruction with UMT5 and the input with CLIP's vision tower, and
edits one prompt per call here, each with its own generator.

The settings are those of the pipeline's documented example: the input resized (PIL
bicubic) to ``max_area`` (720 x 1280) at its aspect ratio, sides rounded to the VAE factor
times the transformer's patch, 5 frames (the pipeline's own count without temporal
reasoning, which is left off), 50 steps, classifier-free guidance 5.0.

Inference only here (the video transformer is not trained by SFT or MotionNFT); a
diffusers-format LoRA made elsewhere loads onto it (the pipeline has Wan's LoRA loader),
e.g. the released distillation LoRA with ``steps: 8, guidance_scale: 1.0``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from diffusers import ChronoEditPipeline
from PIL import Image

from motionedit.images import to_pil
from motionedit.models.base import InferenceOnlyAdapter, seeded_generator
from motionedit.models.loading import load_pipeline

#: Frames of the generated clip: the pipeline's fixed count without temporal reasoning.
CLIP_FRAMES = 5


class ChronoEditAdapter(InferenceOnlyAdapter):
    kind = "chronoedit"

    @property
    def size_multiple(self) -> int:
        return int(self.pipe.vae_scale_factor_spatial) * int(
            self.pipe.transformer.config.patch_size[1]
        )

    def edit_size(self, image: Image.Image) -> tuple[int, int]:
        """The documented example's rule: round the ideal side, then down to the multiple."""
        m, aspect = self.size_multiple, image.height / image.width
        height = round(math.sqrt(self.max_area * aspect)) // m * m
        width = round(math.sqrt(self.max_area / aspect)) // m * m
        return max(width, m), max(height, m)

    def edit(self, images: list[Any], prompts: list[str], seed: int) -> list[Any]:
        inf = self.settings["inference"]
        pils = [to_pil(im) for im in images]
        width, height = self.edit_size(pils[0])  # every image at the first one's size
        edits = []
        for image, prompt in zip(pils, prompts, strict=True):
            clip = self.pipe(
                image=image.resize((width, height), Image.Resampling.BICUBIC),
                prompt=prompt,
                negative_prompt=inf.get("negative_prompt"),
                height=height,
                width=width,
                num_frames=CLIP_FRAMES,
                num_inference_steps=int(inf["steps"]),
                guidance_scale=float(inf["guidance_scale"]),
                generator=seeded_generator(seed),
                max_sequence_length=int(self.settings["max_sequence_length"]),
                output_type="pil",
            ).frames[0]
            edits.append(clip[-1])
        return edits


def load_chronoedit(settings: dict[str, Any]) -> ChronoEditAdapter:
    """The adapter for a ``chronoedit`` editor, its pipeline loaded and placed.

    As the documented example loads it: the VAE and the CLIP vision encoder in float32
    whatever ``dtype`` the editor asks for (the pipeline casts between them and the
    transformer itself), so a bfloat16 transformer does not degrade the input's encoding.
    """
    from diffusers import AutoencoderKLWan
    from transformers import CLIPVisionModel

    def full_precision_parts(source: str, **hub: Any) -> dict[str, Any]:
        return {
            "vae": AutoencoderKLWan.from_pretrained(
                source, subfolder="vae", dtype=torch.float32, **hub
            ),
            "image_encoder": CLIPVisionModel.from_pretrained(
                source, subfolder="image_encoder", dtype=torch.float32, **hub
            ),
        }

    pipe = load_pipeline(ChronoEditPipeline, settings, full_precision_parts)
    return ChronoEditAdapter(pipe, settings)
