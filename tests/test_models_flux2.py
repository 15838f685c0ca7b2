"""The flux2-klein kind on a tiny real Flux2KleinPipeline: each input is edited by its own
call of the pipeline (a list of images would be one edit's references), with the kind's
settings; the training interface (condition, velocity, noise, sigmas, decode) is the
pipeline's own denoising loop; a LoRA trained here is one diffusers loads; a missing model
is refused with the key to change."""

from __future__ import annotations

import numpy as np
import pytest
import tiny_flux2
import torch
from diffusers import Flux2KleinPipeline
from lora_round_trip import trained_lora_round_trip
from matplotlib import cbook
from PIL import Image

from motionedit.models import ModelError, editor_settings, load_editor
from motionedit.models.base import seeded_generator, tensor_to_pil

PHOTO = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
PROMPTS = ["Make her turn her head to the left.", "Have her raise her chin."]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    folder = tmp_path_factory.mktemp("flux2") / "pipe"
    tiny_flux2.build().save_pretrained(folder)
    return folder


def settings_for(source, **inference):
    config = {"editors": {"klein": tiny_flux2.editor(source, inference={"steps": 2, **inference})}}
    return editor_settings(config, "klein")


def photos():
    with Image.open(PHOTO) as im:
        photo = im.convert("RGB")
    return [photo.crop((60, 40, 380, 280)), photo.crop((100, 60, 420, 300))]


def test_each_edit_is_the_pipelines_own_call(source):
    adapter = load_editor(settings_for(source))
    edits = adapter.edit(photos(), PROMPTS, seed=5)
    pipe = Flux2KleinPipeline.from_pretrained(source)
    for photo, prompt, ours in zip(photos(), PROMPTS, edits, strict=True):
        theirs = pipe(
            image=photo.resize((96, 72), Image.Resampling.BICUBIC),
            prompt=prompt,
            height=72,
            width=96,
            num_inference_steps=2,
            guidance_scale=1.0,
            generator=torch.Generator().manual_seed(5),
            max_sequence_length=32,
        ).images[0]
        assert ours.size == (96, 72)  # the photographs' 4:3 at the budget
        assert np.array_equal(np.asarray(ours), np.asarray(theirs))
    # One input edited alone is edited as in the batch: no image depends on its batch.
    alone = adapter.edit(photos()[1:], PROMPTS[1:], seed=5)[0]
    assert np.array_equal(np.asarray(alone), np.asarray(edits[1]))


def test_the_kind_defaults_are_the_distilled_4b_ones(source):
    config = {"editors": {"k": {"kind": "flux2-klein", "source": str(source)}}}
    settings = editor_settings(config, "k")
    assert (settings["inference"]["steps"], settings["inference"]["guidance_scale"]) == (4, 1.0)
    assert settings["max_area"] == 1024 * 1024


def test_a_missing_model_names_the_key(tmp_path):
    with pytest.raises(ModelError, match=r"editors\.klein\.source: .*neither a folder here"):
        load_editor(settings_for(tmp_path / "absent"))


def test_the_sampler_is_the_pipelines_denoising_loop(source):
    """Our rollout from noise(cond, generator) and the pipeline's own call from the same
    seed give the same latents; decode gives the pipeline's image."""
    adapter = load_editor(settings_for(source))
    photo = photos()[0]
    cond = adapter.condition([photo], PROMPTS[:1])
    assert (cond.height, cond.width) == (72, 96)
    ours = adapter.sample(cond, 2, seeded_generator(4))
    theirs = adapter.pipe(
        image=photo.resize((96, 72), Image.Resampling.BICUBIC),
        prompt=PROMPTS[0],
        height=72,
        width=96,
        num_inference_steps=2,
        guidance_scale=1.0,
        generator=seeded_generator(4),
        max_sequence_length=32,
        output_type="latent",
    ).images
    # The pipeline returns the VAE's own latents: un-normalised, un-patched.
    rows, cols = 72 // adapter.size_multiple, 96 // adapter.size_multiple
    grid = ours.permute(0, 2, 1).reshape(1, -1, rows, cols)
    mean, std = adapter._bn()
    assert torch.allclose(adapter.pipe._unpatchify_latents(grid * std + mean), theirs, atol=1e-5)
    image = tensor_to_pil(adapter.decode(ours, cond))[0]
    edit = adapter.edit([photo], PROMPTS[:1], seed=4)[0]
    assert np.abs(np.asarray(image, int) - np.asarray(edit, int)).max() <= 1


def test_encode_velocity_sigmas(source):
    adapter = load_editor(settings_for(source))
    cond = adapter.condition(photos(), PROMPTS)
    x0 = adapter.encode_images(photos(), cond)
    assert (
        x0.shape == cond.batched["image_latents"].shape == (2, 18 * 24, 16)
    )  # a 4-pixel multiple: VAE factor 2, 2x2 patches
    v = adapter.velocity(x0, torch.tensor([0.3, 0.7]), cond)
    assert v.shape == x0.shape and torch.isfinite(v).all()
    # Encoding then decoding is the VAE's round trip at the edit size.
    decoded = adapter.decode(x0, cond)
    assert decoded.shape == (2, 3, 72, 96) and decoded.min() >= 0 and decoded.max() <= 1
    sig = adapter.sigmas(4, cond)
    assert sig[0] == 1 and sig[-1] == 0 and len(sig) == 5 and (sig[:-1] > sig[1:]).all()
    # Each item's velocity is its own: the same with a micro-batch of one.
    one = adapter.velocity(x0[1:], torch.tensor([0.7]), cond.select([1]))
    assert torch.allclose(one, v[1:], atol=1e-5)


def test_lora_trained_here_is_one_diffusers_loads(source, tmp_path):
    edited = trained_lora_round_trip(
        lambda: load_editor(settings_for(source)), photos(), PROMPTS, tmp_path
    )
    pipe = Flux2KleinPipeline.from_pretrained(source)
    pipe.load_lora_weights(tmp_path)
    theirs = pipe(
        image=photos()[0].resize((96, 72), Image.Resampling.BICUBIC),
        prompt=PROMPTS[0],
        height=72,
        width=96,
        num_inference_steps=2,
        guidance_scale=1.0,
        generator=seeded_generator(5),
        max_sequence_length=32,
    ).images[0]
    assert theirs.tobytes() == edited.tobytes()


def test_sft_trains_a_lora_on_it(source, tmp_path):
    """A few SFT steps on the klein editor, through the trainer every kind shares."""
    import logging

    from test_inference import make_bench

    from motionedit.config import validate_config
    from motionedit.sft import run_sft

    train, _ = make_bench(tmp_path / "train", n=4, sizes=((72, 96),))
    config = validate_config(
        {
            "sources": [{"name": "s", "kind": "synthetic"}],
            "editors": {"klein": tiny_flux2.editor(source)},
            "sft": {"k": {"editor": "klein", "steps": 3, "batch_size": 2,
                          "lora": {"rank": 4, "alpha": 4}}},
        }
    )  # fmt: skip
    summary = run_sft("k", config["sft"]["k"], editor_settings(config, "klein"), train,
                      tmp_path / "out", tmp_path / "ckpt", logging.getLogger("test"))  # fmt: skip
    assert summary["pairs"] == 4 and np.isfinite(summary["final_loss"])
    fresh = load_editor(settings_for(source))
    fresh.load_lora(tmp_path / "out")
    assert fresh.lora_parameters()
