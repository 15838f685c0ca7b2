"""LongCat-Image-Edit (Meituan) through diffusers' ``LongCatImageEditPipeline``.

A FLUX-style flow-matching transformer conditioned on a Qwen2.5-VL encoding of the
instruction with a half-size copy of the input, and on the input's VAE latents as extra
tokens. The pipeline encodes one prompt per call, so a batch is edited one input at a
time, each with its own generator. It resizes every input to about 1024x1024 and takes no
size argument; the edit size here is the editor's ``max_area`` at the input's aspect ratio,
rounded up as the pipeline rounds (:mod:`motionedit.models.sizing`), so at the kind's
default 1024x1024 it is the pipeline's own. The kind's defaults are the model card's: 50
steps, classifier-free guidance 4.5 with an empty negative prompt.

Inference only here: the pipeline has no LoRA loader, so a LoRA trained here would load
into no LongCat pipeline but ours; the adapter does not expose the transformer's velocity
and noise schedule that SFT and MotionNFT need.
"""

from __future__ import annotations

import math
from typing import Any

from diffusers import LongCatImageEditPipeline
from PIL import Image

from motionedit.images import to_pil
from motionedit.models.base import InferenceOnlyAdapter, ModelError, seeded_generator
from motionedit.models.loading import load_pipeline
from motionedit.models.qwen_image_edit import load_processor
from motionedit.models.sizing import PIPELINE_AREA, pipeline_sizes


class LongCatImageEditAdapter(InferenceOnlyAdapter):
    kind = "longcat-image-edit"

    def edit_size(self, image: Image.Image) -> tuple[int, int]:
        """``max_area`` at the image's aspect ratio, each side rounded *up* to the VAE
        factor times the packing: the pipeline's ``calculate_dimensions`` at its area (it
        rounds to 16, its VAE's multiple)."""
        m, ratio = self.size_multiple, image.width / image.height
        width = math.sqrt(self.max_area * ratio)
        return math.ceil(width / m) * m, math.ceil(width / ratio / m) * m

    def edit(self, images: list[Any], prompts: list[str], seed: int) -> list[Any]:
        inf = self.settings["inference"]
        pils = [to_pil(im) for im in images]
        size = self.edit_size(pils[0])  # every image at the first one's size
        edits = []
        for image, prompt in zip(pils, prompts, strict=True):
            with pipeline_sizes(self.pipe, {PIPELINE_AREA: size}):
                out = self.pipe(
                    image=image,
                    prompt=prompt,
                    negative_prompt=inf.get("negative_prompt"),  # None: the pipeline's ""
                    num_inference_steps=int(inf["steps"]),
                    guidance_scale=float(inf["guidance_scale"]),
                    generator=seeded_generator(seed),
                )
            edits.append(out.images[0])
        return edits

    def load_lora(self, directory: Any, adapter_name: str = "default") -> None:
        raise ModelError(
            f"editors.{self.settings.get('name', '?')}: diffusers' LongCatImageEditPipeline "
            "has no LoRA loader; fuse the LoRA into the transformer and point `source` at it"
        )


def load_longcat_image_edit(settings: dict[str, Any]) -> LongCatImageEditAdapter:
    """The adapter for a ``longcat-image-edit`` editor, its pipeline loaded and placed.

    The ``text_processor`` component is built without torchvision, as Qwen-Image-Edit's
    processor is (:class:`motionedit.models.qwen_image_edit.ImageOnlyQwen2VLProcessor`).
    """
    pipe = load_pipeline(
        LongCatImageEditPipeline,
        settings,
        lambda source, **hub: {
            "text_processor": load_processor(source, subfolder="text_processor", **hub)
        },
    )
    return LongCatImageEditAdapter(pipe, settings)
