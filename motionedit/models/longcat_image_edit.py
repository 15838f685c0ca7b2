"""LongCat-Image-Edit (Meituan) through diffusers' ``LongCatImageEditPipeline``, trainable by
SFT and MotionNFT.

A FLUX-style flow-matching transformer conditioned on a Qwen2.5-VL encoding of the
instruction with a half-size copy of the input, and on the input's VAE latents as extra
tokens (modality 2 in the position ids; the noisy latents are modality 1, both placed after
the prompt's tokens), whose output is discarded. Everything below mirrors
``LongCatImageEditPipeline.__call__`` step by step, so a velocity computed here is the one
the pipeline would compute.

The pipeline encodes one prompt per call, so a batch is edited one input at a time, each
with its own generator. It resizes every input to about 1024x1024 and takes no size
argument; the edit size here is the editor's ``max_area`` at the input's aspect ratio,
rounded up as the pipeline rounds (:mod:`motionedit.models.sizing`), so at the kind's
default 1024x1024 it is the pipeline's own. The kind's defaults are the model card's: 50
steps, classifier-free guidance 4.5 with an empty negative prompt.

The pipeline has no LoRA loader; its transformer has diffusers' own
(``load_lora_adapter``), and a LoRA is saved here in the file layout every diffusers
pipeline LoRA has (keys under ``transformer.``), so
``pipe.transformer.load_lora_adapter(folder, weight_name=..., prefix="transformer")``
reads it anywhere.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from diffusers import LongCatImageEditPipeline
from diffusers.pipelines.longcat_image.pipeline_longcat_image_edit import prepare_pos_ids
from PIL import Image

from motionedit.images import to_pil
from motionedit.models.base import (
    LORA_WEIGHT_NAME,
    Conditioning,
    EditorAdapter,
    ModelError,
    decode_packed,
    seeded_generator,
    shifted_sigmas,
)
from motionedit.models.loading import load_pipeline
from motionedit.models.qwen_image_edit import load_processor
from motionedit.models.sizing import PIPELINE_AREA, pipeline_sizes

#: Latent channels: the pipeline's ``__call__`` fixes them at 16.
LATENT_CHANNELS = 16


class LongCatImageEditAdapter(EditorAdapter):
    kind = "longcat-image-edit"

    def edit_size(self, image: Image.Image) -> tuple[int, int]:
        """``max_area`` at the image's aspect ratio, each side rounded *up* to the VAE
        factor times the packing: the pipeline's ``calculate_dimensions`` at its area (it
        rounds to 16, its VAE's multiple)."""
        m, ratio = self.size_multiple, image.width / image.height
        width = math.sqrt(self.max_area * ratio)
        return math.ceil(width / m) * m, math.ceil(width / ratio / m) * m

    def _latent_hw(self, height: int, width: int) -> tuple[int, int]:
        """The VAE latents' height and width for an edit of that size (before packing)."""
        return 2 * (height // self.size_multiple), 2 * (width // self.size_multiple)

    def _pixels(self, image: Any, width: int, height: int) -> tuple[torch.Tensor, Image.Image]:
        """The VAE's input ``[1, 3, H, W]`` and the VL encoder's half-size copy, as the
        pipeline's own image processor makes them."""
        proc = self.pipe.image_processor
        image = proc.resize(to_pil(image), height, width)
        return proc.preprocess(image, height, width), proc.resize(image, height // 2, width // 2)

    def _packed_latents(self, pixels: torch.Tensor) -> torch.Tensor:
        latents = self.pipe._encode_vae_image(pixels.to(self.device, self.pipe.vae.dtype), None)
        b, c, h, w = latents.shape
        return self.pipe._pack_latents(latents, b, c, h, w)

    @torch.no_grad()
    def condition(self, images: list[Any], prompts: list[str]) -> Conditioning:
        if len(images) != len(prompts):
            raise ValueError(f"{len(images)} images for {len(prompts)} prompts")
        width, height = self.edit_size(to_pil(images[0]))
        embeds, latents = [], []
        for image, prompt in zip(images, prompts, strict=True):
            pixels, vl_image = self._pixels(image, width, height)
            embeds.append(self.pipe.encode_prompt(prompt=[prompt], image=vl_image)[0])
            latents.append(self._packed_latents(pixels))
        prompt_embeds = torch.cat(embeds)
        tokens = prompt_embeds.shape[1]
        text_ids = prepare_pos_ids(modality_id=0, type="text", start=(0, 0), num_token=tokens)
        lat_h, lat_w = self._latent_hw(height, width)
        grid = {"type": "image", "start": (tokens, tokens), "height": lat_h // 2,
                "width": lat_w // 2}  # fmt: skip
        latent_ids = prepare_pos_ids(modality_id=1, **grid)
        image_ids = prepare_pos_ids(modality_id=2, **grid).to(torch.float64)
        return Conditioning(
            batched={"prompt_embeds": prompt_embeds, "image_latents": torch.cat(latents)},
            shared={
                "text_ids": text_ids.to(self.device),
                "img_ids": torch.cat([latent_ids, image_ids]).to(self.device),
            },
            height=height,
            width=width,
            prompts=list(prompts),
        )

    def encode_images(self, images: list[Any], cond: Conditioning) -> torch.Tensor:
        pixels = [self._pixels(im, cond.width, cond.height)[0] for im in images]
        return self._packed_latents(torch.cat(pixels)).to(self.dtype)

    def velocity(
        self, latents: torch.Tensor, sigma: torch.Tensor, cond: Conditioning
    ) -> torch.Tensor:
        hidden = torch.cat([latents, cond.batched["image_latents"].to(latents)], dim=1)
        out = self.transformer(
            hidden_states=hidden,
            timestep=sigma.to(self.device, latents.dtype),  # the pipeline's t / 1000
            guidance=None,
            encoder_hidden_states=cond.batched["prompt_embeds"],
            txt_ids=cond.shared["text_ids"],
            img_ids=cond.shared["img_ids"],
            return_dict=False,
        )[0]
        return out[:, : latents.shape[1]]

    def noise(self, cond: Conditioning, generator: torch.Generator) -> torch.Tensor:
        lat_h, lat_w = self._latent_hw(cond.height, cond.width)
        noise = torch.randn((len(cond), LATENT_CHANNELS, lat_h, lat_w), generator=generator)
        packed = self.pipe._pack_latents(noise, len(cond), LATENT_CHANNELS, lat_h, lat_w)
        return packed.to(self.device, self.dtype)

    def sigmas(self, steps: int, cond: Conditioning) -> torch.Tensor:
        lat_h, lat_w = self._latent_hw(cond.height, cond.width)
        return shifted_sigmas(self.pipe.scheduler, steps, (lat_h // 2) * (lat_w // 2))

    def decode(self, latents: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        return decode_packed(self.pipe, latents, cond.height, cond.width)

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

    # -- LoRA through the transformer's own loader ---------------------------------------
    def save_lora(self, directory: str | Path, adapter_name: str = "default") -> Path:
        """The adapter in the layout of a diffusers pipeline LoRA: weights and the peft
        configuration (in the file's metadata) under ``transformer.``."""
        from diffusers.loaders.lora_base import LORA_ADAPTER_METADATA_KEY
        from peft.utils import get_peft_model_state_dict
        from safetensors.torch import save_file

        state = get_peft_model_state_dict(self.transformer, adapter_name=adapter_name)
        state = {f"transformer.{k}": v.detach().cpu().contiguous() for k, v in state.items()}
        config = self.transformer.peft_config[adapter_name].to_dict()
        config["target_modules"] = sorted(config["target_modules"])
        config = {f"transformer.{k}": v for k, v in config.items()}  # as pipelines save it
        metadata = {"format": "pt", LORA_ADAPTER_METADATA_KEY: json.dumps(config, sort_keys=True)}
        path = Path(directory) / LORA_WEIGHT_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(state, str(path), metadata=metadata)
        return path

    def load_lora(self, directory: str | Path, adapter_name: str = "default") -> None:
        path = Path(directory)
        if path.is_dir():
            path = path / LORA_WEIGHT_NAME
        if not path.is_file():
            raise ModelError(
                f"no LoRA weights at {path.parent} (expected {LORA_WEIGHT_NAME} in it)"
            )
        # weight_name: without it diffusers reads the file as a pickle and misses its metadata
        self.transformer.load_lora_adapter(
            str(path.parent), weight_name=path.name, prefix="transformer", adapter_name=adapter_name
        )
        self.transformer.set_adapters([adapter_name])


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
