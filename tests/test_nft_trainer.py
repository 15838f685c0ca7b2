"""The MotionNFT trainer on a tiny FLUX.1 Kontext: it learns, logs, checkpoints, resumes exactly."""

from __future__ import annotations

import copy
import io
import logging
import os
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tiny_flux
import torch
import yaml
from conftest import kill_once_written
from safetensors.torch import load_file
from test_inference import make_bench

from motionedit.config import validate_config
from motionedit.models import ModelError, editor_settings, load_editor
from motionedit.models.base import LORA_WEIGHT_NAME
from motionedit.nft.trainer import (
    METRIC_COLUMNS,
    MotionNFT,
    loss_noise,
    loss_timesteps,
    rank_rng_file,
    run_motionnft,
)
from motionedit.rewards import Scores
from motionedit.training import STATE_FILE, Checkpoints, load_pairs

LOG = logging.getLogger("test-nft")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("nft")
    tiny_flux.build().save_pretrained(root / "pipe")
    train, _ = make_bench(root / "train", n=6)
    bench, _ = make_bench(root / "bench", n=2)
    config = validate_config(
        {
            "sources": [{"name": "s", "kind": "synthetic"}],
            "flow": {"backend": "dis", "max_side": 64},
            "editors": {"kontext": tiny_flux.editor(root / "pipe")},
            "train": {
                "nft": {
                    "editor": "kontext",
                    "steps": 6,
                    "groups": 2,
                    "group_size": 3,
                    "sampling_steps": 2,
                    "resolution": 32,
                    "lr": 1e-3,
                    "micro_batch": 4,
                    "checkpoint_every": 2,
                    "eval_every": 3,
                    "eval_pairs": 2,
                    "lora": {"rank": 4, "alpha": 4},
                    "rewards": {"motion": 0.5, "appearance": 0.5},
                    # The tiny editor's groups barely spread: train on all of them here.
                    "group_filter": {"enabled": False, "ban_prompts": False},
                }
            },
        }
    )
    return root, train, bench, config


def run(setup, out, state, **changes):
    _, train, bench, config = setup
    spec = copy.deepcopy(config["train"]["nft"]) | changes
    editor = editor_settings(config, "kontext")
    return run_motionnft("nft", spec, editor, config, train, bench, out, state, LOG)


def test_a_run_writes_a_loadable_lora_checkpoints_and_the_training_curve(setup, tmp_path):
    summary = run(setup, tmp_path / "out", tmp_path / "state")
    out = tmp_path / "out"
    assert summary["steps"] == 6 and summary["eval_pairs"] == 2
    metrics = pd.read_csv(out / "metrics.csv")
    assert list(metrics["step"]) == list(range(0, 7))  # step 0: the base model's MAS
    assert set(METRIC_COLUMNS) <= set(metrics.columns)
    assert {"reward_motion", "reward_appearance"} <= set(metrics.columns)
    assert metrics["eval_mas"].notna().tolist() == [True, False, False, True, False, False, True]
    metrics = metrics[metrics["step"] > 0]
    assert metrics["groups"].eq(2).all() and metrics["reward_mean"].between(0, 1).all()
    assert (metrics[["sampling_s", "reward_s", "optimisation_s"]] > 0).all().all()
    assert metrics["decay"].tolist() == pytest.approx([0.001 * s for s in range(1, 7)])
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "step-000002",
        "step-000004",
    ]
    adapter = load_editor(editor_settings(setup[3], "kontext"))
    adapter.load_lora(out)  # the diffusers LoRA format, read by the pipeline's own loader
    adapter.load_lora(out / "checkpoints" / "step-000004", adapter_name="step4")
    weights = load_file(out / LORA_WEIGHT_NAME)
    assert weights and all(torch.isfinite(v).all() for v in weights.values())


def test_the_policy_moves_and_a_step_without_groups_takes_a_zero_gradient_step(setup, tmp_path):
    run(setup, tmp_path / "a", tmp_path / "sa", steps=2, eval_every=0, ema_decay=0.0)
    moved = load_file(tmp_path / "a" / LORA_WEIGHT_NAME)
    # Every group filtered (no std is above 10, no mean below -1): the gradient is zero, so
    # the B matrices stay at their zero initialisation, and the optimiser still steps, as
    # the released trainer's does: weight decay shrinks the A matrices by (1 - lr wd) a step.
    filtered = {"enabled": True, "min_std": 10.0, "max_mean": -1.0, "ban_prompts": False}
    for name, decay in (("b", 0.0), ("c", 0.1)):
        run(setup, tmp_path / name, tmp_path / f"s{name}", steps=2, eval_every=0,
            ema_decay=0.0, weight_decay=decay, group_filter=filtered)  # fmt: skip
    still, shrunk = (load_file(tmp_path / n / LORA_WEIGHT_NAME) for n in ("b", "c"))
    b_keys = [k for k in still if "lora_B" in k]
    assert b_keys and all(torch.count_nonzero(still[k]) == 0 for k in b_keys)
    assert any(torch.count_nonzero(moved[k]) > 0 for k in b_keys)
    lr = setup[3]["train"]["nft"]["lr"]
    for key in (k for k in still if "lora_A" in k):
        assert torch.allclose(shrunk[key], still[key] * (1 - lr * 0.1) ** 2, atol=1e-7)
    log = pd.read_csv(tmp_path / "b" / "metrics.csv")
    assert log["filtered_fraction"].eq(1.0).all() and log["loss"].isna().all()


def test_each_rollout_trains_at_distinct_levels_of_the_sampler_schedule():
    run = {"sigma_sampling": "sampler", "sigma_one_fraction": 0.0, "group_size": 3,
           "sampling_steps": 6, "timestep_fraction": 0.99}  # fmt: skip
    schedule = torch.tensor([1.0, 0.9, 0.8, 0.6, 0.4, 0.2, 0.0])
    levels = loss_timesteps(6, schedule, run | {"group_noise": "independent"}, torch.Generator())
    assert levels.shape == (5, 6)  # int(6 x 0.99) = 5 levels for each of the 6 samples
    for column in levels.T:
        assert column.unique().numel() == 5 and set(column.tolist()) <= set(schedule[:-1].tolist())
    assert len({tuple(c.tolist()) for c in levels.T}) > 1  # each sample its own order
    shared = loss_timesteps(6, schedule, run | {"group_noise": "shared"}, torch.Generator())
    assert torch.equal(shared[:, 0], shared[:, 2]) and not torch.equal(shared[:, 0], shared[:, 3])
    uniform = {"sigma_sampling": "uniform", "timestep_fraction": 0.5, "group_noise": "independent"}
    drawn = loss_timesteps(4, schedule, run | uniform, torch.Generator())
    assert drawn.shape == (3, 4) and drawn.unique().numel() == 12


def test_shared_group_noise_is_one_draw_per_group():
    run = {"group_size": 3}
    shape = torch.Size([5, 4])
    noise = loss_noise(6, shape, run | {"group_noise": "shared"}, torch.Generator())
    assert noise.shape == (6, 5, 4)
    for group in (slice(0, 3), slice(3, 6)):
        assert (noise[group] == noise[group][:1]).all()
    assert not torch.equal(noise[0], noise[3])
    noise = loss_noise(6, shape, run | {"group_noise": "independent"}, torch.Generator())
    assert not torch.equal(noise[0], noise[1])


def test_shared_group_noise_trains_another_policy(setup, tmp_path):
    run(setup, tmp_path / "a", tmp_path / "sa", steps=2, eval_every=0)
    run(setup, tmp_path / "b", tmp_path / "sb", steps=2, eval_every=0, group_noise="shared")
    a = load_file(tmp_path / "a" / LORA_WEIGHT_NAME)
    b = load_file(tmp_path / "b" / LORA_WEIGHT_NAME)
    assert a.keys() == b.keys()
    assert any(not torch.equal(a[k], b[k]) for k in a if "lora_B" in k)
    assert all(torch.isfinite(v).all() for v in b.values())


def test_a_killed_run_resumes_and_ends_with_the_same_lora(setup, tmp_path):
    run(setup, tmp_path / "a", tmp_path / "state-a")
    full = load_file(tmp_path / "a" / LORA_WEIGHT_NAME)

    root, train, bench, config = setup
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(config))
    script = textwrap.dedent(
        f"""
        import logging, yaml
        from motionedit.models import editor_settings
        from motionedit.nft.trainer import run_motionnft
        cfg = yaml.safe_load(open({str(tmp_path / "cfg.yaml")!r}))
        run_motionnft("nft", cfg["train"]["nft"], editor_settings(cfg, "kontext"), cfg,
                      {str(train)!r}, {str(bench)!r}, {str(tmp_path / "k")!r},
                      {str(tmp_path / "state-k")!r}, logging.getLogger())
        """
    )
    state = tmp_path / "state-k" / STATE_FILE
    kill_once_written(script, state)
    assert torch.load(state, weights_only=True)["step"] in (2, 4)

    run(setup, tmp_path / "k", tmp_path / "state-k")
    resumed = load_file(tmp_path / "k" / LORA_WEIGHT_NAME)
    assert resumed.keys() == full.keys()
    assert all(torch.allclose(full[n], resumed[n], atol=1e-6) for n in full)
    a = pd.read_csv(tmp_path / "a" / "metrics.csv")
    k = pd.read_csv(tmp_path / "k" / "metrics.csv")
    assert a["loss"].fillna(-1).tolist() == pytest.approx(k["loss"].fillna(-1).tolist())
    assert a["eval_mas"].fillna(-1).tolist() == pytest.approx(k["eval_mas"].fillna(-1).tolist())


def test_the_curve_scores_the_edits_the_benchmark_would_make(setup, tmp_path):
    """The last held-out MAS is that of the saved LoRA editing through the pipeline's own call."""
    from motionedit.config import evaluation_flow
    from motionedit.flow import make_flow
    from motionedit.metrics import score_edits
    from motionedit.training import load_pairs

    _, _, bench, config = setup
    run(setup, tmp_path / "out", tmp_path / "state", steps=3, eval_every=3)
    logged = pd.read_csv(tmp_path / "out" / "metrics.csv")["eval_mas"].iloc[-1]
    editor = editor_settings(config, "kontext")
    adapter = load_editor(editor)
    adapter.load_lora(tmp_path / "out")
    pairs = load_pairs(bench)
    seed = editor["inference"]["seed"]
    edited = [adapter.edit([p.input], [p.prompt], seed)[0] for p in pairs]
    metrics = config["metrics"]
    rows = score_edits([p.input for p in pairs], edited, [p.target for p in pairs],
                       make_flow(evaluation_flow(config)), metrics["motion_reward"],
                       metrics["mas"])  # fmt: skip
    assert logged == pytest.approx(sum(r["mas"] for r in rows) / len(rows), abs=1e-4)


def test_the_memory_savers_change_nothing_learned(setup, tmp_path, monkeypatch):
    """Text encoders kept on the CPU and gradient checkpointing: the same LoRA as without."""
    from motionedit.nft import trainer as nft

    seen = []
    ready = nft.MotionNFT.text_encoders_ready

    def watched(self):
        devices = [next(m.parameters()).device.type for m in self.adapter.text_encoders]
        seen.append((devices, self.adapter.transformer.is_gradient_checkpointing))
        return ready(self)

    monkeypatch.setattr(nft.MotionNFT, "text_encoders_ready", watched)
    run(setup, tmp_path / "lean", tmp_path / "s-lean", steps=2, eval_every=2,
        offload_text_encoders=True, gradient_checkpointing=True)  # fmt: skip
    lean = load_file(tmp_path / "lean" / LORA_WEIGHT_NAME)
    # Encoding happened once per step and once per held-out evaluation (steps 0 and 2).
    assert seen == [(["cpu", "cpu"], True)] * 4
    run(setup, tmp_path / "plain", tmp_path / "s-plain", steps=2, eval_every=2)
    plain = load_file(tmp_path / "plain" / LORA_WEIGHT_NAME)
    assert lean.keys() == plain.keys()
    assert all(torch.allclose(lean[k], plain[k], atol=1e-6) for k in lean)


def test_an_initial_lora_is_the_trainable_policy_with_kl_to_the_bare_base(setup, tmp_path):
    """``init_lora`` as the released ``lora_path``: the policy starts as that LoRA (its own
    rank, not the run's), the old policy as a copy, the KL reference is the model without
    any adapter, and the saved LoRA alone reproduces the trained policy."""
    from motionedit.nft.trainer import OLD, POLICY, _use

    root, train, _, config = setup
    editor = editor_settings(config, "kontext")
    sft = load_editor(editor)
    sft.add_lora(2, 2, adapter_name="default")
    with torch.no_grad():
        for p in sft.lora_parameters():
            p.normal_(0, 0.3, generator=torch.Generator().manual_seed(p.numel()))
    sft.save_lora(tmp_path / "sft")
    init = load_file(tmp_path / "sft" / LORA_WEIGHT_NAME)

    spec = copy.deepcopy(config["train"]["nft"]) | {"init_lora": str(tmp_path / "sft"),
                                                     "ema_decay": 0.0}  # fmt: skip
    pairs = load_pairs(train)
    trainer = MotionNFT("nft", spec, editor, config, pairs, [], LOG)
    t = trainer.adapter.transformer
    assert t.peft_config[POLICY].r == t.peft_config[OLD].r == 2  # not the run's rank 4
    from peft.utils import get_peft_model_state_dict

    start = get_peft_model_state_dict(t, adapter_name=POLICY)
    assert len(start) == len(init) and len(trainer.policy) == len(init)
    for key, value in start.items():
        assert torch.equal(value, init[f"transformer.{key}"]), key
    assert all(torch.equal(o, p) for o, p in zip(trainer.old, trainer.policy, strict=True))

    cond = trainer.adapter.condition([pairs[0].input], [pairs[0].prompt])
    x = trainer.adapter.noise(cond, torch.Generator().manual_seed(3))
    sigma = torch.tensor([0.7])
    bare = load_editor(editor)
    with torch.no_grad():
        _use(trainer.adapter, None)
        reference = trainer.adapter.velocity(x, sigma, cond)
        _use(trainer.adapter, POLICY)
        policy = trainer.adapter.velocity(x, sigma, cond)
        assert torch.allclose(reference, bare.velocity(x, sigma, cond), atol=1e-6)
        assert torch.allclose(policy, sft.velocity(x, sigma, cond), atol=1e-6)
        assert not torch.allclose(policy, reference, atol=1e-3)

    run(setup, tmp_path / "out", tmp_path / "state", steps=1, eval_every=0, ema_decay=0.0,
        init_lora=str(tmp_path / "sft"))  # fmt: skip
    trained = load_file(tmp_path / "out" / LORA_WEIGHT_NAME)
    assert trained.keys() == init.keys()
    assert any(not torch.equal(trained[k], init[k]) for k in init)  # it trained
    alone = load_editor(editor)
    alone.load_lora(tmp_path / "out")  # the whole policy, without the SFT LoRA under it
    trainer_after = MotionNFT("nft", spec | {"init_lora": str(tmp_path / "out")}, editor,
                              config, pairs, [], LOG)  # fmt: skip
    with torch.no_grad():
        _use(trainer_after.adapter, POLICY)
        expected = trainer_after.adapter.velocity(x, sigma, cond)
        assert torch.allclose(alone.velocity(x, sigma, cond), expected, atol=1e-6)


def test_rollouts_use_the_training_size_and_guidance_and_the_curve_does_not(setup, monkeypatch):
    """Rollouts and loss at the square training resolution with the training guidance; the
    held-out edits at the editor's own size and inference guidance."""
    _, train, bench, config = setup
    editor = editor_settings(config, "kontext")
    spec = copy.deepcopy(config["train"]["nft"]) | {"guidance": 1.0, "eval_pairs": 1}
    trainer = MotionNFT("nft", spec, editor, config, load_pairs(train), load_pairs(bench)[:1],
                        LOG)  # fmt: skip
    seen = []

    def record(module, args, kwargs):  # every transformer call: noisy tokens and guidance
        tokens = kwargs["hidden_states"].shape[1] - kwargs["img_ids"].shape[0] // 2
        seen.append((tokens, float(kwargs["guidance"][0])))

    trainer.adapter.transformer.register_forward_pre_hook(record, with_kwargs=True)
    trainer.train_step()
    assert seen and set(seen) == {((32 // 4) * (32 // 4), 1.0)}  # 2x2-packed latents at 1/2
    seen.clear()
    trainer.evaluate()
    width, height = trainer.adapter.edit_size(load_pairs(bench)[0].input)
    assert seen and set(seen) == {((width // 4) * (height // 4), 2.5)} and width != 32


def test_training_refuses_an_editor_with_diffusers_offload(setup):
    from motionedit.config import ConfigError

    config = copy.deepcopy(setup[3])
    config["editors"]["kontext"]["offload"] = "model"
    with pytest.raises(ConfigError, match=r"editors\.kontext\.offload: train\.nft trains"):
        validate_config(config)


class FirstPairSolved:
    """Rewards under which the first pair drawn is solved (its edits all get 0.95) and every
    other group spreads; records, call by call, which edits were of that pair."""

    components: dict = {}

    def __init__(self) -> None:
        self.solved: np.ndarray | None = None
        self.calls: list[list[bool]] = []

    def __call__(self, inputs, edited, prompts, targets) -> Scores:
        if self.solved is None:
            self.solved = np.asarray(inputs[0])
        hits = [np.array_equal(np.asarray(i), self.solved) for i in inputs]
        self.calls.append(hits)
        total = torch.tensor([0.95 if hit else (0.2, 0.5, 0.8)[i % 3]
                              for i, hit in enumerate(hits)], dtype=torch.float64)  # fmt: skip
        return Scores(total=total, parts={"stub": total}, errors=[None] * len(inputs))


def test_a_solved_prompt_is_not_drawn_again_even_after_a_resume(setup, tmp_path, monkeypatch):
    from motionedit.nft import trainer as nft
    from motionedit.training import load_pairs

    spec = {"steps": 6, "eval_every": 0, "checkpoint_every": 2,
            "group_filter": {"enabled": True, "min_std": 0.05, "max_mean": 0.9,
                             "ban_prompts": True}}  # fmt: skip
    rewards = FirstPairSolved()
    monkeypatch.setattr(nft, "make_rewards", lambda *args, **kwargs: rewards)
    run(setup, tmp_path / "a", tmp_path / "state-a", **spec)
    full = load_file(tmp_path / "a" / LORA_WEIGHT_NAME)
    assert any(rewards.calls[0]) and not any(any(c) for c in rewards.calls[1:])
    log = pd.read_csv(tmp_path / "a" / "metrics.csv")
    assert log["prompts_banned"].tolist() == [1] * 6
    solved_id = next(p.id for p in load_pairs(setup[1])
                     if np.array_equal(np.asarray(p.input), rewards.solved))  # fmt: skip
    assert torch.load(tmp_path / "state-a" / STATE_FILE, weights_only=True)["banned"] == [solved_id]

    # Without the ban the same seed draws that pair again.
    control = FirstPairSolved()
    monkeypatch.setattr(nft, "make_rewards", lambda *args, **kwargs: control)
    no_ban = spec | {"group_filter": spec["group_filter"] | {"ban_prompts": False}}
    run(setup, tmp_path / "c", tmp_path / "state-c", **no_ban)
    assert any(any(c) for c in control.calls[1:])

    # Killed before the step-4 state: resumed at step 2, the ban comes back with the state.
    save = Checkpoints.save

    def killed_at_step_4(self, payload):
        if payload["step"] == 4:
            raise KeyboardInterrupt("killed")
        save(self, payload)

    killed = FirstPairSolved()
    monkeypatch.setattr(nft, "make_rewards", lambda *args, **kwargs: killed)
    with monkeypatch.context() as m:
        m.setattr(Checkpoints, "save", killed_at_step_4)
        with pytest.raises(KeyboardInterrupt):
            run(setup, tmp_path / "k", tmp_path / "state-k", **spec)
    resumed = FirstPairSolved()
    resumed.solved = killed.solved
    monkeypatch.setattr(nft, "make_rewards", lambda *args, **kwargs: resumed)
    run(setup, tmp_path / "k", tmp_path / "state-k", **spec)
    assert len(resumed.calls) == 4 and not any(any(c) for c in resumed.calls)
    again = load_file(tmp_path / "k" / LORA_WEIGHT_NAME)
    assert all(torch.allclose(full[k], again[k], atol=1e-6) for k in full)


def launch_settings(setup, tmp_path, **changes) -> dict:
    _, train, bench, config = setup
    return {
        "name": "nft",
        "run": copy.deepcopy(config["train"]["nft"]) | changes,
        "editor": editor_settings(config, "kontext"),
        "config": config,
        "train_table": str(train),
        "bench_table": str(bench),
        "out_dir": str(tmp_path / "out"),
        "state_dir": str(tmp_path / "state"),
        "log": str(tmp_path / "train.log"),
    }


#: Filter thresholds at which the tiny editor's first step keeps some groups, drops others
#: and bans some pairs (its groups' stds are 0.0002-0.05, their means 0.43-0.50).
MIXED_FILTER = {"enabled": True, "min_std": 0.003, "max_mean": 0.497, "ban_prompts": True}


def test_two_processes_take_the_steps_one_process_takes(setup, tmp_path):
    """The multi-GPU path (one process per device), run on the CPU: ``groups`` counts the
    groups of a step over all processes, so 2 processes with 12 of the 24 groups each make
    the LoRA 1 process makes with all 24; and a relaunch resumes both at the checkpoint."""
    from motionedit.nft.launch import launch

    spec = {"steps": 3, "eval_every": 0, "groups": 24, "group_filter": MIXED_FILTER}
    settings = launch_settings(setup, tmp_path, **spec)
    summary = launch(settings, processes=2, logger=LOG, cpu=True)
    assert summary["steps"] == 3
    # The checkpoint at step 2: process 1's generators, tagged with their step, then state.pt.
    state = tmp_path / "state"
    rng = torch.load(state / "rng-1-step-000002.pt", weights_only=True)
    assert rng["step"] == 2 == torch.load(state / STATE_FILE, weights_only=True)["step"]
    assert (tmp_path / "train.log.rank1").is_file() and (tmp_path / "train.log.rank0").is_file()
    two = load_file(tmp_path / "out" / LORA_WEIGHT_NAME)
    two_log = pd.read_csv(tmp_path / "out" / "metrics.csv")

    single = run(setup, tmp_path / "one", tmp_path / "state-one", **spec)
    assert single["steps"] == 3
    one = load_file(tmp_path / "one" / LORA_WEIGHT_NAME)
    one_log = pd.read_csv(tmp_path / "one" / "metrics.csv")
    assert two.keys() == one.keys()
    assert all(torch.allclose(two[k], one[k], atol=1e-6, rtol=0) for k in two)
    assert any(torch.count_nonzero(two[k]) for k in two if "lora_B" in k)
    columns = ["loss", "reward_mean", "groups", "groups_kept", "prompts_banned"]
    assert two_log[columns].to_numpy() == pytest.approx(one_log[columns].to_numpy(), abs=1e-6)
    assert two_log["groups"].eq(24).all()
    assert 0 < two_log["groups_kept"].iloc[0] < 24 and two_log["prompts_banned"].max() > 0

    # Launched again, both processes resume at step 2 (process 1 from its own file) and
    # redo step 3 exactly, with the pairs banned so far.
    assert launch(settings, processes=2, logger=LOG, cpu=True)["steps"] == 3
    assert "resumed at step 2" in (tmp_path / "train.log.rank1").read_text()
    again = load_file(tmp_path / "out" / LORA_WEIGHT_NAME)
    assert all(torch.allclose(two[k], again[k], atol=1e-6) for k in two)


#: Loaded into each process of a launch (``sitecustomize``): process 1's edits all get
#: reward 0.95 (groups with no spread, which the filter drops), process 0's spread; and
#: a forward pass on zero samples raises instead of whatever the model would do.
ONE_PROCESS_FILTERED = """
import os
if "RANK" in os.environ:
    import torch
    from motionedit.models.flux_kontext import FluxKontextAdapter
    from motionedit.nft import trainer
    from motionedit.rewards import Scores

    RANK = int(os.environ["RANK"])

    class Rewards:
        components = {}

        def __call__(self, inputs, edited, prompts, targets):
            n = len(edited)
            if RANK == 1:
                total = torch.full((n,), 0.95, dtype=torch.float64)
            else:
                total = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
            return Scores(total=total, parts={"stub": total}, errors=[None] * n)

    trainer.make_rewards = lambda *args, **kwargs: Rewards()
    velocity = FluxKontextAdapter.velocity

    def checked(self, latents, sigma, cond):
        if len(latents) == 0:
            raise RuntimeError("a forward pass on zero samples")
        return velocity(self, latents, sigma, cond)

    FluxKontextAdapter.velocity = checked
"""


def test_a_process_whose_groups_are_all_filtered_still_takes_part(setup, tmp_path, monkeypatch):
    """Process 1's every group is dropped: it runs no forward pass, contributes zeros to the
    gradient sum, and both processes step together to the end."""
    from motionedit.nft.launch import launch

    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(ONE_PROCESS_FILTERED)
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(hooks), os.environ.get("PYTHONPATH", "")])
    )
    filter_on = {"enabled": True, "min_std": 0.05, "max_mean": 0.9, "ban_prompts": False}
    settings = launch_settings(setup, tmp_path, steps=2, eval_every=0, checkpoint_every=5,
                               groups=2, group_filter=filter_on)  # fmt: skip
    assert launch(settings, processes=2, logger=LOG, cpu=True)["steps"] == 2
    log = pd.read_csv(tmp_path / "out" / "metrics.csv")
    assert log["groups_kept"].tolist() == [1, 1] and log["loss"].notna().all()
    assert "reward_stub" in log.columns
    lora = load_file(tmp_path / "out" / LORA_WEIGHT_NAME)
    assert any(torch.count_nonzero(lora[k]) for k in lora if "lora_B" in k)


def test_the_groups_must_split_evenly_over_the_processes(setup, tmp_path, monkeypatch):
    import accelerate

    from motionedit.nft.launch import launch

    settings = launch_settings(setup, tmp_path, groups=3)
    with pytest.raises(ModelError, match=r"train\.nft\.groups: 3 prompt groups .* 2 processes"):
        launch(settings, processes=2, logger=LOG, cpu=True)
    assert not (tmp_path / "state").exists()  # refused before anything started

    class TwoProcesses(accelerate.Accelerator):
        num_processes = 2

    monkeypatch.setattr(accelerate, "Accelerator", TwoProcesses)
    with pytest.raises(ModelError, match=r"train\.nft\.groups: 3 .* multiple of 2"):
        run(setup, tmp_path / "out", tmp_path / "state", groups=3)


def as_process(monkeypatch, rank: int, at_barrier: Callable[[], None] | None = None) -> None:
    """Train as process ``rank`` of a launch without launching: accelerate's own Accelerator
    with its rank overridden. There is one process, so no collective operation waits;
    ``at_barrier`` runs at each ``wait_for_everyone``."""
    import accelerate

    class Process(accelerate.Accelerator):
        process_index = rank
        is_main_process = rank == 0

        def wait_for_everyone(self):
            if at_barrier is not None:
                at_barrier()
            super().wait_for_everyone()

    monkeypatch.setattr(accelerate, "Accelerator", Process)


def spy_rng(monkeypatch) -> tuple[list, list]:
    """The generator states each trainer saved (with its step) and was set to, in order."""
    saved, restored = [], []
    rng_state, set_rng_state = MotionNFT.rng_state, MotionNFT.set_rng_state

    def saving(self):
        state = rng_state(self)
        saved.append((self.step, state))
        return state

    def restoring(self, rng):
        restored.append(rng)
        set_rng_state(self, rng)

    monkeypatch.setattr(MotionNFT, "rng_state", saving)
    monkeypatch.setattr(MotionNFT, "set_rng_state", restoring)
    return saved, restored


def same_rng(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        torch.equal(a[k], b[k]) if isinstance(a[k], torch.Tensor) else a[k] == b[k] for k in a
    )


def test_a_kill_between_a_processs_generators_and_the_state_resumes_the_states_step(
    setup, tmp_path, monkeypatch
):
    """Process 1 checkpoints steps 2 and 4; the main process is killed before its step-4
    state.pt. Process 1 must resume with its step-2 generators, not the step-4 ones."""
    state = tmp_path / "state"
    spec = {"steps": 5, "eval_every": 0}
    saved, restored = spy_rng(monkeypatch)
    with monkeypatch.context() as m:
        as_process(m, 1)
        assert run(setup, tmp_path / "out1", state, **spec) == {}  # only the main one reports
    rank1_step2 = next(rng for step, rng in saved if step == 2)
    assert not same_rng(rank1_step2, next(rng for step, rng in saved if step == 4))

    save = Checkpoints.save

    def killed_at_step_4(self, payload):
        if payload["step"] == 4:
            raise KeyboardInterrupt("killed")
        save(self, payload)

    with monkeypatch.context() as m:
        m.setattr(Checkpoints, "save", killed_at_step_4)
        with pytest.raises(KeyboardInterrupt):
            run(setup, tmp_path / "out0", state, **spec)
    assert torch.load(state / STATE_FILE, weights_only=True)["step"] == 2

    restored.clear()
    with monkeypatch.context() as m:
        as_process(m, 1)
        run(setup, tmp_path / "out1", state, **spec)
    # First the main process's generators from state.pt, then process 1's own.
    assert len(restored) == 2 and same_rng(restored[1], rank1_step2)


@pytest.mark.parametrize("stale", [0, 4, None], ids=["earlier", "later", "missing"])
def test_a_process_refuses_generators_that_are_not_of_the_states_step(
    setup, tmp_path, monkeypatch, stale
):
    """Fresh seeds would quietly train another run than the one resumed: refused instead."""
    state = tmp_path / "state"
    run(setup, tmp_path / "out0", state, steps=3, eval_every=0)  # state.pt at step 2
    if stale is not None:
        # e.g. copied in from another run, or the older single-file layout renamed
        torch.save({"step": stale, "rng": {}}, rank_rng_file(state, 1, 2))
    as_process(monkeypatch, 1)
    with pytest.raises(ModelError) as refusal:
        run(setup, tmp_path / "out1", state, steps=3, eval_every=0)
    message = str(refusal.value)
    assert f"{state}/rng-1-" in message and f"delete the checkpoint folder {state}" in message
    assert ("missing" if stale is None else f"step {stale}, but") in message


def torn_torch_save(monkeypatch) -> None:
    """``torch.save`` that dies halfway through its bytes, as a kill or a full disk would."""
    real = torch.save

    def torn(obj, f, *args, **kwargs):
        buffer = io.BytesIO()
        real(obj, buffer, *args, **kwargs)
        half = buffer.getvalue()[: len(buffer.getvalue()) // 2]
        if isinstance(f, str | os.PathLike):
            Path(f).write_bytes(half)
        else:
            f.write(half)
            f.flush()
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", torn)


def torn_save_lora(monkeypatch) -> None:
    from motionedit.models.base import EditorAdapter

    real = EditorAdapter.save_lora

    def torn(self, directory, adapter_name="default"):
        path = real(self, directory, adapter_name)
        path.write_bytes(path.read_bytes()[:100])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(EditorAdapter, "save_lora", torn)


@pytest.mark.parametrize(
    ("rank", "tear"),
    [(1, torn_torch_save), (0, torn_save_lora), (0, torn_torch_save)],
    ids=["process-generators", "main-lora", "main-state"],
)
def test_an_interrupted_checkpoint_write_leaves_no_file_under_its_name(
    setup, tmp_path, monkeypatch, rank, tear
):
    state = tmp_path / "state"
    as_process(monkeypatch, rank)
    tear(monkeypatch)
    with pytest.raises(OSError, match="No space left"):
        run(setup, tmp_path / "out", state, steps=3, eval_every=0)
    names = sorted(p.name for p in state.iterdir() if not p.name.startswith("."))
    if tear is torn_save_lora:
        assert "step-000002" not in names
    elif rank == 0:
        assert "step-000002" in names  # written whole before the state
    assert STATE_FILE not in names and not [n for n in names if n.startswith("rng-")]


@pytest.mark.parametrize("rank", [0, 1])
def test_the_state_is_written_after_every_processs_generators(setup, tmp_path, monkeypatch, rank):
    """``state.pt`` marks a step as whole: the main process writes it only past a barrier
    that the other processes reach with their generators already on disk."""
    state = tmp_path / "state"
    seen = []

    def look():
        seen.append(
            (state.joinpath(STATE_FILE).is_file(), sorted(p.name for p in state.glob("rng-*")))
        )

    as_process(monkeypatch, rank, look)
    run(setup, tmp_path / "out", state, steps=3, eval_every=0)  # a checkpoint at step 2
    if rank == 0:
        assert seen == [(False, [])] and (state / STATE_FILE).is_file()
    else:
        assert seen == [(False, ["rng-1-step-000002.pt"])]
        payload = torch.load(state / "rng-1-step-000002.pt", weights_only=True)
        assert payload["step"] == 2 and {"sampler", "noise", "train"} <= payload["rng"].keys()


def qwen_editor(tmp_path, plus: bool) -> dict:
    from test_models_qwen import MAX_AREA
    from tiny_qwen import save_like_the_hub, tiny_pipeline

    source = save_like_the_hub(tiny_pipeline(plus), tmp_path / "qwen")
    kind = "qwen-image-edit-plus" if plus else "qwen-image-edit"
    return {"kind": kind, "source": str(source), "max_area": MAX_AREA, "device": "cpu"}


def klein_editor(tmp_path) -> dict:
    import tiny_flux2

    tiny_flux2.build().save_pretrained(tmp_path / "klein")
    return tiny_flux2.editor(tmp_path / "klein")


def longcat_editor(tmp_path) -> dict:
    import tiny_longcat
    from tiny_qwen import save_like_the_hub

    source = save_like_the_hub(tiny_longcat.build(), tmp_path / "longcat", "text_processor")
    return tiny_longcat.editor(source)


@pytest.mark.parametrize(
    ("editor", "resolution"),
    [
        (lambda tmp: qwen_editor(tmp, plus=False), 32),
        (lambda tmp: qwen_editor(tmp, plus=True), 32),
        (klein_editor, 64),  # the klein pipeline refuses sides under 64 pixels
        (longcat_editor, 64),
    ],
    ids=["qwen-image-edit", "qwen-image-edit-plus", "flux2-klein", "longcat-image-edit"],
)
def test_the_same_trainer_runs_the_other_trainable_kinds(tmp_path, editor, resolution):
    train, _ = make_bench(tmp_path / "train", n=3, sizes=((48, 64),))
    config = validate_config(
        {
            "sources": [{"name": "s", "kind": "synthetic"}],
            "flow": {"backend": "dis", "max_side": 64},
            "editors": {"e": editor(tmp_path)},
            "train": {"e": {"editor": "e", "steps": 2, "groups": 1, "group_size": 2,
                            "sampling_steps": 2, "resolution": resolution, "eval_every": 2,
                            "eval_pairs": 1, "lora": {"rank": 2, "alpha": 2},
                            "rewards": {"motion": 0.5, "appearance": 0.5}}},
        }
    )  # fmt: skip
    summary = run_motionnft("e", config["train"]["e"], editor_settings(config, "e"), config,
                            train, train, tmp_path / "out", tmp_path / "state", LOG)  # fmt: skip
    assert summary["steps"] == 2
    metrics = pd.read_csv(tmp_path / "out" / "metrics.csv")
    assert metrics["eval_mas"].notna().sum() == 2 and metrics["reward_mean"].iloc[1:].notna().all()
    adapter = load_editor(editor_settings(config, "e"))
    adapter.load_lora(tmp_path / "out")
    assert adapter.lora_parameters()
