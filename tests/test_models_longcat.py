"""The longcat-image-edit kind on a tiny real LongCatImageEditPipeline: at the kind's
default budget an edit is the pipeline's own, unchanged call; at any other budget the edit
has the configured size and does not depend on its batch; the training interface is the
pipeline's own denoising loop; a LoRA trained here is one the transformer's own diffusers
loader reads; a missing model is refused with the key to change."""

from __future__ import annotations

import numpy as np
import pytest
import tiny_longcat
import torch
from diffusers import LongCatImageEditPipeline
from diffusers.pipelines.longcat_image.pipeline_longcat_image_edit import calculate_dimensions
from lora_round_trip import trained_lora_round_trip
from matplotlib import cbook
from PIL import Image
from tiny_qwen import save_like_the_hub

from motionedit.models import ModelError, editor_settings, load_editor
from motionedit.models.base import LORA_WEIGHT_NAME, seeded_generator
from motionedit.models.qwen_image_edit import load_processor
from motionedit.models.sizing import PIPELINE_AREA, pipeline_sizes

PHOTO = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
PROMPTS = ["Make her turn her head to the left.", "Have her raise her chin."]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    # The released repository's layout: text_processor/ as transformers' Qwen2VLProcessor.
    return save_like_the_hub(
        tiny_longcat.build(), tmp_path_factory.mktemp("longcat") / "pipe", "text_processor"
    )


def settings_for(source, **extra):
    editor = tiny_longcat.editor(source, inference={"steps": 2}, **extra)
    return editor_settings({"editors": {"longcat": editor}}, "longcat")


def photos():
    with Image.open(PHOTO) as im:
        photo = im.convert("RGB")
    return [photo.crop((60, 40, 380, 280)), photo.crop((100, 60, 420, 300))]


def test_at_the_default_budget_an_edit_is_the_pipelines_own_call(source):
    settings = settings_for(source, max_area=1024 * 1024)
    adapter = load_editor(settings)
    ours = adapter.edit(photos()[:1], PROMPTS[:1], seed=5)[0]
    theirs = adapter.pipe(  # nothing patched: the pipeline sizes the input itself
        image=photos()[0],
        prompt=PROMPTS[0],
        negative_prompt="",
        num_inference_steps=2,
        guidance_scale=4.5,
        generator=torch.Generator().manual_seed(5),
    ).images[0]
    assert ours.size == theirs.size == (1184, 896)
    assert np.array_equal(np.asarray(ours), np.asarray(theirs))


@pytest.mark.parametrize("ratio", [4 / 3, 3 / 4, 16 / 9, 1.0, 0.37, 2.9])
def test_the_edit_size_rounds_as_the_pipeline_does(source, ratio):
    adapter = load_editor(settings_for(source, max_area=1024 * 1024))
    image = Image.new("RGB", (round(1000 * ratio), 1000))
    assert adapter.edit_size(image) == calculate_dimensions(1024 * 1024, image.width / image.height)


def test_at_a_small_budget_the_edit_has_its_size_and_no_batch_dependence(source):
    adapter = load_editor(settings_for(source))
    edits = adapter.edit(photos(), PROMPTS, seed=5)
    assert [e.size for e in edits] == [(256, 192)] * 2
    alone = adapter.edit(photos()[1:], PROMPTS[1:], seed=5)[0]
    assert np.array_equal(np.asarray(alone), np.asarray(edits[1]))
    assert not np.array_equal(np.asarray(edits[0]), np.asarray(edits[1]))


def test_the_kind_defaults_are_the_model_cards(source):
    settings = editor_settings(
        {"editors": {"l": {"kind": "longcat-image-edit", "source": str(source)}}}, "l"
    )
    assert (settings["inference"]["steps"], settings["inference"]["guidance_scale"]) == (50, 4.5)
    assert settings["max_area"] == 1024 * 1024


def test_the_sampler_is_the_pipelines_denoising_loop(source):
    adapter = load_editor(settings_for(source))
    photo = photos()[0]
    cond = adapter.condition([photo], PROMPTS[:1])
    ours = adapter.sample(cond, 2, seeded_generator(4))
    with pipeline_sizes(adapter.pipe, {PIPELINE_AREA: (256, 192)}):
        theirs = adapter.pipe(
            image=photo,
            prompt=PROMPTS[0],
            num_inference_steps=2,
            guidance_scale=1.0,  # no classifier-free guidance, as rollouts sample
            generator=seeded_generator(4),
            output_type="latent",
        ).images
    assert torch.allclose(ours, theirs, atol=1e-5)
    x0 = adapter.encode_images([photo], cond)
    assert torch.allclose(x0, cond.batched["image_latents"])  # the input, encoded the same way
    decoded = adapter.decode(x0, cond)
    assert decoded.shape == (1, 3, 192, 256) and decoded.min() >= 0 and decoded.max() <= 1
    sig = adapter.sigmas(4, cond)
    assert sig[0] == 1 and sig[-1] == 0 and len(sig) == 5 and (sig[:-1] > sig[1:]).all()


def test_each_items_velocity_is_its_own(source):
    adapter = load_editor(settings_for(source))
    cond = adapter.condition(photos(), PROMPTS)
    x0 = adapter.encode_images(photos()[::-1], cond)
    both = adapter.velocity(x0, torch.tensor([0.3, 0.7]), cond)
    one = adapter.velocity(x0[1:], torch.tensor([0.7]), cond.select([1]))
    assert torch.allclose(one, both[1:], atol=1e-5)


def test_a_lora_trained_here_is_read_by_the_transformers_own_loader(source, tmp_path):
    edited = trained_lora_round_trip(
        lambda: load_editor(settings_for(source)), photos(), PROMPTS, tmp_path
    )
    # Plain diffusers reads it: the transformer's own loader, the pipeline LoRA key layout.
    processor = load_processor(str(source), subfolder="text_processor")
    pipe = LongCatImageEditPipeline.from_pretrained(source, text_processor=processor)
    pipe.transformer.load_lora_adapter(
        str(tmp_path), weight_name=LORA_WEIGHT_NAME, prefix="transformer"
    )
    with pipeline_sizes(pipe, {PIPELINE_AREA: (256, 192)}):
        theirs = pipe(
            image=photos()[0],
            prompt=PROMPTS[0],
            num_inference_steps=2,
            guidance_scale=4.5,
            generator=seeded_generator(5),
        ).images[0]
    assert theirs.tobytes() == edited.tobytes()


def test_a_missing_model_names_the_key(tmp_path):
    with pytest.raises(ModelError, match=r"editors\.longcat\.source: .*neither a folder here"):
        load_editor(settings_for(tmp_path / "absent"))
