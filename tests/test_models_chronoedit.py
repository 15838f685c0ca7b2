"""The chronoedit kind on a tiny real ChronoEditPipeline: an edit is the last frame of the
pipeline's own documented call; a folder in the released layout loads; a LoRA made
elsewhere changes the edit as diffusers' own loader does; a missing model is refused with
the key to change."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tiny_chronoedit
import torch
from diffusers import ChronoEditPipeline
from matplotlib import cbook
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict
from PIL import Image

from motionedit.models import ModelError, editor_settings, load_editor

PHOTO = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
PROMPTS = ["Make her turn her head to the left.", "Have her raise her chin."]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    folder = tmp_path_factory.mktemp("chronoedit") / "pipe"
    tiny_chronoedit.build().save_pretrained(folder)
    # The released repository names transformers' CLIPImageProcessor, which loads without
    # torchvision through its PIL twin.
    index = json.loads((folder / "model_index.json").read_text())
    index["image_processor"] = ["transformers", "CLIPImageProcessor"]
    (folder / "model_index.json").write_text(json.dumps(index))
    return folder


def settings_for(source, **inference):
    editor = tiny_chronoedit.editor(source, inference={"steps": 2, **inference})
    return editor_settings({"editors": {"chrono": editor}}, "chrono")


def photos():
    with Image.open(PHOTO) as im:
        photo = im.convert("RGB")
    return [photo.crop((60, 40, 380, 280)), photo.crop((100, 60, 420, 300))]


def documented_call(pipe, image, prompt, seed):
    """The pipeline's documented example, at the tiny budget: 64x48 for a 4:3 input."""
    aspect = image.height / image.width
    height = round(np.sqrt(64 * 48 * aspect)) // 16 * 16
    width = round(np.sqrt(64 * 48 / aspect)) // 16 * 16
    frames = pipe(
        image=image.resize((width, height)),
        prompt=prompt,
        height=height,
        width=width,
        num_frames=5,
        num_inference_steps=2,
        guidance_scale=5.0,
        generator=torch.Generator().manual_seed(seed),
        max_sequence_length=32,
        output_type="np",
    ).frames[0]
    return (frames[-1] * 255).round().clip(0, 255).astype(np.uint8)


def test_each_edit_is_the_last_frame_of_the_documented_call(source):
    adapter = load_editor(settings_for(source))
    edits = adapter.edit(photos(), PROMPTS, seed=5)
    pipe = ChronoEditPipeline.from_pretrained(source)
    for photo, prompt, ours in zip(photos(), PROMPTS, edits, strict=True):
        theirs = documented_call(pipe, photo, prompt, seed=5)
        assert ours.size == (64, 48)
        assert np.array_equal(np.asarray(ours), theirs)
    alone = adapter.edit(photos()[1:], PROMPTS[1:], seed=5)[0]
    assert np.array_equal(np.asarray(alone), np.asarray(edits[1]))


def test_a_lora_made_elsewhere_changes_the_edit_as_diffusers_loads_it(source, tmp_path):
    pipe = ChronoEditPipeline.from_pretrained(source)
    torch.manual_seed(0)
    pipe.transformer.add_adapter(
        LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_v"], init_lora_weights=False)
    )
    ChronoEditPipeline.save_lora_weights(
        tmp_path, transformer_lora_layers=get_peft_model_state_dict(pipe.transformer)
    )
    adapter = load_editor(settings_for(source))
    before = np.asarray(adapter.edit(photos()[:1], PROMPTS[:1], seed=5)[0])
    adapter.load_lora(tmp_path)
    after = np.asarray(adapter.edit(photos()[:1], PROMPTS[:1], seed=5)[0])
    direct = ChronoEditPipeline.from_pretrained(source)
    direct.load_lora_weights(str(tmp_path))
    assert not np.array_equal(before, after)
    assert np.array_equal(after, documented_call(direct, photos()[0], PROMPTS[0], seed=5))


def test_bfloat16_keeps_the_vae_and_image_encoder_in_float32(source):
    """As the documented example loads the model; the pipeline casts between them."""
    adapter = load_editor({**settings_for(source), "dtype": "bfloat16"})
    pipe = adapter.pipe
    assert pipe.transformer.dtype == torch.bfloat16 and pipe.text_encoder.dtype == torch.bfloat16
    assert pipe.vae.dtype == pipe.image_encoder.dtype == torch.float32
    edit = adapter.edit(photos()[:1], PROMPTS[:1], seed=5)[0]
    assert edit.size == (64, 48) and np.asarray(edit).std() > 0


def test_the_kind_defaults_are_the_documented_example(source):
    config = {"editors": {"c": {"kind": "chronoedit", "source": str(source)}}}
    settings = editor_settings(config, "c")
    assert (settings["inference"]["steps"], settings["inference"]["guidance_scale"]) == (50, 5.0)
    assert (settings["max_area"], settings["max_sequence_length"]) == (720 * 1280, 512)


def test_a_missing_model_names_the_key(tmp_path):
    with pytest.raises(ModelError, match=r"editors\.chrono\.source: .*neither a folder here"):
        load_editor(settings_for(tmp_path / "absent"))
