"""The flux2-klein kind on a tiny real Flux2KleinPipeline: each input is edited by its own
call of the pipeline (a list of images would be one edit's references), with the kind's
settings; a missing model and a training run are refused with the key to change."""

from __future__ import annotations

import numpy as np
import pytest
import tiny_flux2
import torch
from diffusers import Flux2KleinPipeline
from matplotlib import cbook
from PIL import Image

from motionedit.models import ModelError, editor_settings, load_editor

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


def test_it_is_not_trained_here(source):
    from conftest import ROOT

    from motionedit.config import ConfigError, load_config, validate_config

    config = load_config(ROOT / "config.yaml")
    config["editors"]["klein"] = {"kind": "flux2-klein", "source": str(source)}
    config["train"]["tiny-nft"]["editor"] = "klein"
    with pytest.raises(ConfigError, match=r"train\.tiny-nft\.editor: .*`flux2-klein` editor"):
        validate_config(config)
