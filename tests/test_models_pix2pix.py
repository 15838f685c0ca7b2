"""The instruct-pix2pix kind (InstructPix2Pix, MagicBrush, HQ-Edit) on a tiny real pipeline:
its edit is the pipeline's own call with the release's sampler and the kind's settings, a
diffusers LoRA made elsewhere loads onto its UNet, and what it cannot do is refused early."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import tiny_pix2pix
import torch
from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionInstructPix2PixPipeline
from matplotlib import cbook
from PIL import Image

from motionedit.inference import run_inference
from motionedit.models import ModelError, editor_settings, load_editor

PHOTO = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
PROMPT = tiny_pix2pix.PROMPTS[2]
INFERENCE = {"steps": 2, "seed": 0, "batch_size": 1}  # as the schema fills them in


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pix2pix") / "pipe"
    tiny_pix2pix.build().save_pretrained(folder)
    return folder


@pytest.fixture
def photo():
    with Image.open(PHOTO) as im:
        return im.convert("RGB").crop((60, 40, 380, 280))  # 4:3, a real photograph


def settings_for(source, **inference):
    config = {"editors": {"p2p": tiny_pix2pix.editor(source, inference={"steps": 3, **inference})}}
    return editor_settings(config, "p2p")


def test_the_edit_is_the_pipelines_own_call_with_the_release_sampler(source, photo):
    settings = settings_for(source, guidance_scale=5.0, image_guidance_scale=1.2)
    adapter = load_editor(settings)
    assert isinstance(adapter.pipe.scheduler, EulerAncestralDiscreteScheduler)
    ours = adapter.edit([photo], [PROMPT], seed=7)[0]

    pipe = StableDiffusionInstructPix2PixPipeline.from_pretrained(source)
    pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config)
    theirs = pipe(
        prompt=[PROMPT],
        image=[photo.resize((64, 48), Image.Resampling.BICUBIC)],
        num_inference_steps=3,
        guidance_scale=5.0,
        image_guidance_scale=1.2,
        generator=[torch.Generator().manual_seed(7)],
    ).images[0]
    assert ours.size == (64, 48)  # the photograph's 4:3 at the 48x64 budget
    assert np.array_equal(np.asarray(ours), np.asarray(theirs))
    other = load_editor(settings_for(source, guidance_scale=5.0, image_guidance_scale=3.0))
    assert not np.array_equal(np.asarray(other.edit([photo], [PROMPT], seed=7)[0]),
                              np.asarray(ours))  # fmt: skip


def test_the_kind_defaults_are_the_papers(source):
    settings = editor_settings({"editors": {"p2p": {"kind": "instruct-pix2pix",
                                                    "source": str(source)}}}, "p2p")  # fmt: skip
    assert settings["max_area"] == 512 * 512
    inf = settings["inference"]
    assert (inf["steps"], inf["guidance_scale"], inf["image_guidance_scale"]) == (28, 3.5, 1.5)


def test_a_diffusers_lora_made_elsewhere_loads_onto_the_unet(source, photo, tmp_path):
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    pipe = StableDiffusionInstructPix2PixPipeline.from_pretrained(source)
    targets = ["to_q", "to_k", "to_v", "to_out.0"]
    pipe.unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=targets))
    with torch.no_grad():
        for name, p in pipe.unet.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5, generator=torch.Generator().manual_seed(1))
    StableDiffusionInstructPix2PixPipeline.save_lora_weights(
        tmp_path / "lora", unet_lora_layers=get_peft_model_state_dict(pipe.unet)
    )
    bench = tmp_path / "bench.parquet"
    png = tmp_path / "in.png"
    photo.save(png)
    row = {"id": "a", "prompt": PROMPT, "input_image": {"bytes": png.read_bytes(), "path": None}}
    pd.DataFrame([row]).to_parquet(bench)
    config = {
        "editors": {"p2p": tiny_pix2pix.editor(source, inference=INFERENCE)},
        "models": {
            "base": {"kind": "editor", "editor": "p2p"},
            "tuned": {"kind": "editor", "editor": "p2p", "lora": str(tmp_path / "lora")},
        },
    }
    edits = {}
    for model in ("base", "tuned"):
        out = tmp_path / model / "outputs.parquet"
        df = run_inference(model, config, bench, out, logging.getLogger("test"))
        assert (df["error"] == "").all()
        edits[model] = np.asarray(Image.open(out.parent / "images" / "a.png"))
    assert not np.array_equal(edits["base"], edits["tuned"])


def test_a_missing_model_names_the_key(tmp_path):
    with pytest.raises(ModelError, match=r"editors\.p2p\.source: .*neither a folder here"):
        load_editor(settings_for(tmp_path / "absent"))


def test_its_training_interface_refuses(source):
    # The config check refuses a training run first (tests/test_registries.py).
    adapter = load_editor(settings_for(source))
    with pytest.raises(ModelError, match="inference only"):
        adapter.velocity(None, None, None)
