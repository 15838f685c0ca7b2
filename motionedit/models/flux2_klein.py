"""FLUX.2 [klein] editors through diffusers' ``Flux2KleinPipeline``.

FLUX.2 [klein] (4B and 9B; step-distilled or Base) edits from reference images with a
Qwen3 text encoder. One call takes a prompt and its reference images, so a batch is edited
one input at a time, each with its own generator. The edit size is ours (the input's aspect
ratio at ``max_area``, sides rounded to 16); the kind's defaults are the distilled 4B's
four steps without guidance; a Base model wants ``steps: 50, guidance_scale: 4.0``.

Inference only here for now: the adapter does not yet expose the transformer's velocity and
noise schedule that SFT and MotionNFT need, though the architecture is a flow-matching
model like FLUX.1 Kontext's.
"""

from __future__ import annotations

from typing import Any

from diffusers import Flux2KleinPipeline

from motionedit.images import resize, to_pil
from motionedit.models.base import InferenceOnlyAdapter, seeded_generator
from motionedit.models.loading import load_pipeline


class Flux2KleinAdapter(InferenceOnlyAdapter):
    kind = "flux2-klein"

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
                max_sequence_length=int(self.settings["max_sequence_length"]),
            ).images[0]
            for im, prompt in zip(pils, prompts, strict=True)
        ]


def load_flux2_klein(settings: dict[str, Any]) -> Flux2KleinAdapter:
    """The adapter for a ``flux2-klein`` editor, its pipeline loaded and placed."""
    return Flux2KleinAdapter(load_pipeline(Flux2KleinPipeline, settings), settings)
