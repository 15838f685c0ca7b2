"""The MotionNFT training loop over the editor adapter interface (tiny, FLUX.1 Kontext, Qwen).

One step (an "epoch" of DiffusionNFT):

1. sampling: G training prompts of one edit size *over all processes* (each process makes
   the edits of its G / N), K edits each from the *old* policy with the deterministic
   few-step sampler (``solver``), at the training resolution and guidance;
2. reward: the configured mix (motion reward, MLLM or appearance) per edit; the rewards of
   every process are gathered, turned into optimality rewards with the std of all of them,
   and the group filter picks the groups to train on (and, with ``ban_prompts``, the
   solved prompts never to sample again);
3. optimisation: each kept sample at T of the sampler's noise levels (5 of 6 by default),
   fresh noise at each, the NFT loss between the current policy (the trainable LoRA
   "default"), the old policy (LoRA "old", no gradient) and, for the KL term, the base
   model (adapters disabled), averaged over the kept samples of all processes and their
   levels; one optimiser step (a zero-gradient one when every group was filtered);
4. the old policy moves toward the new one by the decay schedule, and an EMA copy of the
   policy (what is evaluated and saved) moves too, after a warm-up.

Every ``checkpoint_every`` steps the whole state (policy, old, EMA, optimiser, every random
generator, the log) goes to ``state_dir`` and the step's LoRA to ``state_dir/step-{k}``; a
killed run resumes there and ends with the same weights as one that never stopped. Every
``eval_every`` steps the EMA policy edits a fixed held-out slice of the benchmark and its
MAS is logged: the training curve of the paper's Figures 9 and 10.

Several processes (``accelerate launch``) share the step: every process draws the same
prompt groups and noise (one seed) and makes and trains on its own slice of them, so N
processes take the step one process would take with all G groups (up to rounding). The
main process writes the state; every other
process writes only its own random generators (``rng-{rank}-step-{k}.pt``), before a barrier
after which the main process writes ``state.pt`` last, so a ``state.pt`` at step k means
every process's step-k file is on disk.
"""

from __future__ import annotations

import csv
import json
import logging
import random
import resource
import shutil
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from motionedit.metrics import score_edits
from motionedit.models import EditorAdapter, ModelError, load_editor
from motionedit.models.base import tensor_to_pil
from motionedit.nft.objective import (
    blend_,
    ema_decay_at,
    group_banned,
    group_keep,
    nft_loss,
    old_policy_decay,
    optimality_rewards,
)
from motionedit.rewards import RewardMix, make_rewards
from motionedit.runlog import progress
from motionedit.training import (
    STATE_FILE,
    BucketSampler,
    Checkpoints,
    Pair,
    atomic_save,
    batches_by_size,
    load_pairs,
    no_pairs_error,
    rng_state,
    sample_sigmas,
    set_rng_state,
    settings_digest,
)

POLICY, OLD = "default", "old"
METRIC_COLUMNS = [
    "step", "loss", "policy_loss", "positive", "negative", "kl", "reward_mean", "reward_std",
    "groups", "groups_kept", "filtered_fraction", "prompts_banned", "decay", "lr",
    "sampling_s", "reward_s", "optimisation_s", "peak_memory_mb", "eval_mas", "eval_reward",
]  # fmt: skip


def _params(adapter: EditorAdapter, name: str) -> list[torch.nn.Parameter]:
    """The LoRA parameters of one adapter, in a fixed order."""
    tag = f".{name}."
    return [
        p for n, p in sorted(adapter.transformer.named_parameters()) if "lora_" in n and tag in n
    ]


def _use(adapter: EditorAdapter, name: str | None) -> None:
    """Make one LoRA the active one, or none (the base model, for the KL term).

    peft makes the active adapter's parameters trainable and the others not, which is just
    what the policy ("default") needs after the old policy's or the base model's turn.
    """
    t = adapter.transformer
    if name is None:
        t.disable_adapters()
        return
    t.enable_adapters()
    t.set_adapter(name)


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def groups_error(name: str, groups: int, processes: int) -> str:
    """The refusal of a run whose prompt groups cannot be shared evenly by its processes."""
    return (
        f"train.{name}.groups: {groups} prompt groups per step (over all processes) cannot "
        f"be split evenly over {processes} processes; use a multiple of {processes}"
    )


def timesteps_per_rollout(run: dict[str, Any]) -> int:
    """Noise levels at which each kept rollout enters the loss of a step: the released
    ``int(sampling_steps * timestep_fraction)`` (5 of 6), at least one."""
    return max(1, int(run["sampling_steps"] * run["timestep_fraction"]))


def loss_timesteps(
    count: int, schedule: torch.Tensor, run: dict[str, Any], generator: torch.Generator
) -> torch.Tensor:
    """Noise levels ``[T, count]`` at which ``count`` kept samples (whole groups of the
    run's ``group_size``) enter the loss, T = :func:`timesteps_per_rollout`.

    With ``sigma_sampling: sampler`` each sample takes T distinct levels of the rollout
    sampler's own schedule (``schedule`` without its final 0), in a random order: the
    released trainer shuffles every sample's timesteps and trains on the first T. With
    ``uniform`` or ``logit_normal`` the T levels are drawn from that distribution.

    With ``group_noise: shared`` a group's samples share their draws. The NFT gradient of a
    group is the reward-weighted sum of each sample's velocity error; the part of that error
    that comes from the noise is then the same for every sample and cancels between the
    better and the worse ones, leaving what separates the samples themselves. With
    independent draws it stays as noise on the gradient, large next to the samples'
    differences at mid noise levels.
    """
    shared, group_size = run["group_noise"] == "shared", run["group_size"]
    draws, per_rollout = (count // group_size if shared else count), timesteps_per_rollout(run)
    if run["sigma_sampling"] == "sampler":
        levels = schedule[:-1].float()
        picks = [torch.randperm(len(levels), generator=generator)[:per_rollout]
                 for _ in range(draws)]  # fmt: skip
        sigma = levels[torch.stack(picks).T] if draws else torch.zeros(per_rollout, 0)
    else:
        sigma = sample_sigmas(draws * per_rollout, run["sigma_sampling"], generator,
                              run["sigma_one_fraction"]).view(draws, per_rollout).T  # fmt: skip
    return sigma.repeat_interleave(group_size, dim=1) if shared else sigma


def loss_noise(
    count: int, shape: torch.Size, run: dict[str, Any], generator: torch.Generator
) -> torch.Tensor:
    """Fresh noise ``[count, *shape]`` for one noise level of ``count`` kept samples, shared
    within a group as the levels are (:func:`loss_timesteps`)."""
    shared, group_size = run["group_noise"] == "shared", run["group_size"]
    noise = torch.randn((count // group_size if shared else count, *shape), generator=generator)
    return noise.repeat_interleave(group_size, dim=0) if shared else noise


class GroupSampler(BucketSampler):
    """The prompt groups of a step, all of one edit size, leaving out banned pairs.

    With nothing banned it draws what :class:`BucketSampler` draws. A banned pair (see
    ``group_filter.ban_prompts``) is no longer drawn; an edit size whose pairs are all
    banned is no longer chosen. The released trainer raises an error once too few prompts
    are left; here, once every pair is banned, :meth:`draw` returns None and the trainer
    draws from all of them again (with a warning) so that a long run still ends.
    """

    def draw(self, banned: set[int]) -> list[int] | None:
        if not banned:
            return self.next()[1]
        buckets = {k: [i for i in v if i not in banned] for k, v in self.buckets.items()}
        keys = [k for k in self.keys if buckets[k]]
        if not keys:
            return None
        weights = np.array([len(buckets[k]) for k in keys], dtype=float)
        key = keys[int(self.rng.choice(len(keys), p=weights / weights.sum()))]
        members = buckets[key]
        take = self.rng.choice(
            len(members), size=self.batch_size, replace=len(members) < self.batch_size
        )
        return [members[int(i)] for i in take]


class MotionNFT:
    def __init__(
        self,
        name: str,
        run: dict[str, Any],
        editor: dict[str, Any],
        config: dict[str, Any],
        train_pairs: list[Pair],
        eval_pairs: list[Pair],
        logger: logging.Logger,
        rewards: RewardMix | None = None,
        accelerator: Any = None,
    ) -> None:
        from accelerate import Accelerator

        self.name, self.run, self.config, self.log = name, run, config, logger
        self.pairs, self.eval_pairs = train_pairs, eval_pairs
        self.acc = accelerator or Accelerator(cpu=editor.get("device") == "cpu")
        processes = self.acc.num_processes
        if run["groups"] % processes:
            raise ModelError(groups_error(name, run["groups"], processes))
        # ``groups`` counts the step's prompt groups over every process (the paper's 24 x 8
        # per step); this process makes and trains on the slice [first, first + local).
        # A lone process owns every group, whatever index it is given.
        self.local_groups = run["groups"] // processes
        self.first_group = (self.acc.process_index if processes > 1 else 0) * self.local_groups
        editor = dict(editor)
        if self.acc.num_processes > 1:
            editor["device"] = str(self.acc.device)
        self.adapter = adapter = load_editor(editor)
        for module in (adapter.pipe.vae, *adapter.text_encoders):
            module.requires_grad_(False)
        self.offload_text = bool(run["offload_text_encoders"])
        if self.offload_text:
            for module in adapter.text_encoders:
                module.to("cpu")
        lora = run["lora"]
        torch.manual_seed(run["seed"])
        if run.get("init_lora"):
            # The released trainer's ``lora_path``: the given LoRA *is* the trainable policy
            # (its own rank and targets), the old policy is a copy of it, and the KL term
            # measures the distance to the bare base model.
            adapter.load_lora(run["init_lora"], adapter_name=POLICY)
            loaded = adapter.transformer.peft_config[POLICY]
            lora = {"rank": loaded.r, "alpha": loaded.lora_alpha,
                    "targets": sorted(loaded.target_modules)}  # fmt: skip
        with warnings.catch_warnings():  # a second adapter is the point: the policy beside it
            warnings.filterwarnings("ignore", message="Already found a `peft_config`")
            adapter.add_lora(lora["rank"], lora["alpha"], lora["targets"], adapter_name=OLD)
            if not run.get("init_lora"):
                adapter.add_lora(lora["rank"], lora["alpha"], lora["targets"], adapter_name=POLICY)
        self.policy, self.old = _params(adapter, POLICY), _params(adapter, OLD)
        blend_(self.old, self.policy, keep=0.0)  # the old policy starts as the policy
        _use(adapter, POLICY)
        if run.get("gradient_checkpointing") and hasattr(
            adapter.transformer, "enable_gradient_checkpointing"
        ):
            adapter.transformer.enable_gradient_checkpointing()
        self.ema = [p.detach().clone() for p in self.policy] if run["ema_decay"] > 0 else None
        self.optimiser = torch.optim.AdamW(
            self.policy, lr=run["lr"], weight_decay=run["weight_decay"]
        )
        self.rewards = rewards or make_rewards(
            run["rewards"], config, motion_bins=run["motion_reward_bins"]
        )
        # Rollouts and the loss at ``resolution`` x ``resolution`` (every pair one size) and
        # with the training guidance; the held-out edits leave both (see evaluate).
        side = run["resolution"]
        self.training_area = side * side if side else None
        buckets = {(side, side): list(range(len(train_pairs)))} if side else None
        # One seed for every process: each draws the whole step's prompts and noise and
        # keeps its own slice, so the step does not depend on how many processes share it.
        self.sampler = GroupSampler(
            buckets or batches_by_size(adapter, train_pairs), run["groups"], run["seed"]
        )
        self.noise_gen = torch.Generator().manual_seed(run["seed"] + 1)
        self.train_gen = torch.Generator().manual_seed(run["seed"] + 2)
        # Pairs (indices into train_pairs) that a step found solved: never drawn again.
        self.banned: set[int] = set()
        self.rows: list[dict[str, Any]] = []
        self.step = 0

    # ------------------------------------------------------------------ state
    def _rng_streams(self) -> dict[str, Any]:
        """This process's random generators by the names its checkpoints give them."""
        return {
            "sampler": self.sampler.rng,
            "noise": self.noise_gen,
            "train": self.train_gen,
            "python": random,
            "torch": torch.default_generator,
        }

    def rng_state(self) -> dict[str, Any]:
        return rng_state(self._rng_streams())

    def set_rng_state(self, rng: dict[str, Any]) -> None:
        set_rng_state(rng, self._rng_streams())

    def state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "policy": [p.detach().clone() for p in self.policy],
            "old": [p.detach().clone() for p in self.old],
            "ema": self.ema,
            "optimiser": self.optimiser.state_dict(),
            "rng": self.rng_state(),
            "log": list(self.rows),
            "banned": sorted(self.pairs[i].id for i in self.banned),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            for p, v in zip(self.policy, state["policy"], strict=True):
                p.copy_(v)
            for p, v in zip(self.old, state["old"], strict=True):
                p.copy_(v)
        self.ema = state["ema"]
        self.optimiser.load_state_dict(state["optimiser"])
        self.set_rng_state(state["rng"])
        self.rows = list(state["log"])
        self.step = int(state["step"])
        index = {p.id: i for i, p in enumerate(self.pairs)}
        self.banned = {index[pair_id] for pair_id in state.get("banned", [])}

    @contextmanager
    def text_encoders_ready(self) -> Iterator[None]:
        """The text encoders on the training device while prompts are encoded.

        With ``offload_text_encoders`` they live in CPU memory and visit the device only
        for the conditioning of a step (and the held-out edits), so the optimisation phase,
        where activations peak, has their memory free (T5-XXL or Qwen2.5-VL: 9-16 GB).
        Each of several processes does this with its own copy.
        """
        if not self.offload_text:
            yield
            return
        modules = self.adapter.text_encoders
        for module in modules:
            module.to(self.adapter.device)
        try:
            yield
        finally:
            for module in modules:
                module.to("cpu")
            if self.adapter.device.type == "cuda":
                torch.cuda.empty_cache()

    # ------------------------------------------------------------------ one step
    def _mine(self, per_group: int = 1) -> slice:
        """This process's rows of a step-wide tensor with ``per_group`` rows per group."""
        start = self.first_group * per_group
        return slice(start, start + self.local_groups * per_group)

    def _gather(self, local: torch.Tensor) -> torch.Tensor:
        """Every process's ``local`` rows, in process order (the step's group order)."""
        if self.acc.num_processes == 1:
            return local
        return self.acc.gather(local.to(self.acc.device)).cpu()

    def training_input(self, pair: Pair) -> Any:
        """The input frame as the rollouts see it: squeezed to the square training size
        (the released trainer resizes every image to ``resolution`` x ``resolution`` with
        Lanczos), or as it is when the run trains at the editor's own size."""
        side = self.run["resolution"]
        image = pair.input
        return image.resize((side, side), Image.Resampling.LANCZOS) if side else image

    @torch.no_grad()
    def _rollouts(self, batch: list[Pair]) -> tuple[Any, torch.Tensor, torch.Tensor]:
        """K edits per prompt from the old policy: (conditioning, latents, images 0..1).

        The starting noise is drawn for every group of the step, in step order, and this
        process keeps its own groups' draws: a group's edits do not depend on how many
        processes share the step.
        """
        adapter, run = self.adapter, self.run
        k = run["group_size"]
        with self.text_encoders_ready():
            cond = adapter.condition([self.training_input(p) for p in batch],
                                     [p.prompt for p in batch])  # fmt: skip
        cond = cond.repeat(k)
        one_group = cond.select(list(range(k)))
        draws = [adapter.noise(one_group, self.noise_gen) for _ in range(run["groups"])]
        noise = torch.cat(draws[self._mine()])
        _use(adapter, OLD)
        latents, images = [], []
        for idx in torch.arange(len(cond)).split(run["micro_batch"]):
            sub = cond.select(idx)
            x0 = adapter.sample(sub, run["sampling_steps"], latents=noise[idx.to(noise.device)],
                                solver=run["solver"])  # fmt: skip
            latents.append(x0)
            images.append(adapter.decode(x0, sub).float().cpu())
        _use(adapter, POLICY)
        return cond, torch.cat(latents), torch.cat(images)

    def _optimise(
        self, cond: Any, x0: torch.Tensor, r: torch.Tensor, keep_groups: torch.Tensor
    ) -> dict[str, float]:
        """One optimiser step on the kept samples of the whole step; the mean loss terms.

        ``r`` ``[G, K]`` and ``keep_groups`` ``[G]`` cover every process's groups. The loss
        is the mean over every kept sample of the step: this process adds its own kept
        samples' share and the gradients are summed over the processes. A process none of
        whose groups was kept runs no forward pass (a model given zero samples may fail) and
        contributes zeros to that sum, so the collective calls stay in step.
        """
        adapter, run = self.adapter, self.run
        k = run["group_size"]
        kept = torch.nonzero(keep_groups[:, None].expand(-1, k).reshape(-1)).flatten()
        rows = self._mine(k)
        own = torch.nonzero((kept >= rows.start) & (kept < rows.stop)).flatten()
        index = kept[own] - rows.start  # this process's kept samples, as rows of x0
        r_own = r.reshape(-1)[kept[own]]
        # Drawn for every kept sample of the step, in step order; this process uses its own.
        schedule = adapter.sigmas(run["sampling_steps"], cond)
        levels = loss_timesteps(len(kept), schedule, run, self.train_gen)
        n = max(1, len(kept) * len(levels))
        scale = run["adv_clip"] / run["beta"]
        names = ("loss", "policy_loss", "positive", "negative", "kl")
        sums = torch.zeros(len(names), dtype=torch.float64)
        self.optimiser.zero_grad(set_to_none=True)
        for sigma_all in levels:
            noise_all = loss_noise(len(kept), x0.shape[1:], run, self.train_gen)
            if len(index) == 0:
                continue
            sigma_own, noise_own = sigma_all[own], noise_all[own]
            micro = []  # per micro-batch: rows of `part`, conditioning, x0, noise, sigma, x_t
            for part in torch.arange(len(index)).split(run["micro_batch"]):
                idx = index[part]
                clean = x0[idx.to(x0.device)]
                eps = noise_own[part].to(clean.device, clean.dtype)
                sigma = sigma_own[part].to(clean.device)
                s = sigma.to(clean.dtype).view(-1, 1, 1)
                micro.append((part, cond.select(idx), clean, eps, sigma, (1 - s) * clean + s * eps))
            # The old policy's and the base model's velocities of every micro-batch first:
            # switching LoRA adapters walks the whole transformer, so it happens three times
            # per level rather than three times per micro-batch (bit-identical either way).
            with torch.no_grad():
                _use(adapter, OLD)
                v_old = [adapter.velocity(m[5], m[4], m[1]) for m in micro]
                v_ref = [None] * len(micro)
                if run["kl_weight"] > 0:
                    _use(adapter, None)
                    v_ref = [adapter.velocity(m[5], m[4], m[1]) for m in micro]
            _use(adapter, POLICY)
            for i, (part, sub, clean, eps, sigma, x_t) in enumerate(micro):
                v_theta = adapter.velocity(x_t, sigma, sub)
                terms = nft_loss(
                    v_theta, v_old[i], eps - clean, r_own[part].to(clean.device), run["beta"],
                    sigma, run["weighting"] == "adaptive", v_ref[i], run["kl_weight"], scale,
                )  # fmt: skip
                share = len(part) / n
                (terms.loss * share).backward()
                values = (terms.loss.detach(), terms.policy, terms.positive, terms.negative,
                          terms.kl)  # fmt: skip
                sums += share * torch.stack([v.double().cpu() for v in values])
        for p in self.policy:  # AdamW skips a parameter without a gradient
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        if self.acc.num_processes > 1:
            for p in self.policy:
                p.grad = self.acc.reduce(p.grad, reduction="sum")
            sums = self.acc.reduce(sums.to(self.acc.device), reduction="sum").cpu()
        if run["grad_clip"] > 0:
            torch.nn.utils.clip_grad_norm_(self.policy, run["grad_clip"])
        self.optimiser.step()
        return {name: float(v) for name, v in zip(names, sums, strict=True)}

    def _draw(self) -> list[int]:
        """The pairs of the step's G groups (the same on every process)."""
        idx = self.sampler.draw(self.banned)
        if idx is None:
            self.log.warning("step %d: every training pair is banned (group_filter.ban_prompts); "
                             "drawing from all of them again", self.step + 1)  # fmt: skip
            idx = self.sampler.next()[1]
        return idx

    def train_step(self) -> dict[str, Any]:
        run, k = self.run, self.run["group_size"]
        t0 = time.perf_counter()
        idx = self._draw()
        batch = [self.pairs[i] for i in idx[self._mine()]]
        with self.adapter.training_settings(self.training_area, run["guidance"]):
            cond, x0, images = self._rollouts(batch)
        t1 = time.perf_counter()
        scores = self.rewards(
            [p.input for p in batch for _ in range(k)],
            tensor_to_pil(images),  # scored as the 8-bit images an edit is saved as
            [p.prompt for p in batch for _ in range(k)],
            [p.target for p in batch for _ in range(k)],
        )
        local = torch.stack([scores.total, *scores.parts.values()], dim=-1).float()
        every = self._gather(local.view(len(batch), k, -1))  # [G, K, 1 + parts]
        raw = every[..., 0]
        # Z_c comes from every reward of the step, before the filter (released: gathered,
        # then np.std of all of them + 1e-4).
        r = optimality_rewards(raw, run["adv_clip"])
        spec = run["group_filter"]
        if spec["enabled"]:
            keep_groups = group_keep(raw, spec["min_std"], spec["max_mean"])
        else:
            keep_groups = ~torch.isnan(raw).any(dim=1)
        if spec["ban_prompts"]:
            solved = group_banned(raw, spec["min_std"], spec["max_mean"])
            self.banned.update(idx[int(g)] for g in torch.nonzero(solved).flatten())
        t2 = time.perf_counter()
        row: dict[str, Any] = {c: None for c in METRIC_COLUMNS}
        row |= {
            "step": self.step + 1,
            "reward_mean": float(torch.nanmean(raw)),
            "reward_std": float(raw[~torch.isnan(raw)].std(unbiased=False)),
            "groups": len(idx),
            "groups_kept": int(keep_groups.sum()),
            "filtered_fraction": 1.0 - float(keep_groups.float().mean()),
            "prompts_banned": len(self.banned),
            "lr": run["lr"],
        }
        for j, name in enumerate(scores.parts, start=1):
            row[f"reward_{name}"] = float(torch.nanmean(every[..., j]))
        # A step whose groups were all filtered still steps the optimiser, with a zero
        # gradient, as the released trainer does (its masked loss is then 0 x the sum):
        # AdamW's momentum and weight decay move the policy, and the decays advance.
        if not keep_groups.any():
            self.log.info("step %d: every group was filtered; a zero-gradient step",
                          self.step + 1)  # fmt: skip
        with self.adapter.training_settings(self.training_area, run["guidance"]):
            terms = self._optimise(cond, x0, r, keep_groups)
        if keep_groups.any():  # a step with no sample logs no loss
            row |= terms
        self.step += 1
        decay = old_policy_decay(self.step, run["old_decay"]["rate"], run["old_decay"]["max"])
        blend_(self.old, self.policy, keep=decay)
        if self.ema is not None:
            blend_(self.ema, self.policy,
                   keep=ema_decay_at(self.step, run["ema_decay"], run["ema_warmup"]))  # fmt: skip
        row |= {
            "decay": decay,
            "sampling_s": round(t1 - t0, 3),
            "reward_s": round(t2 - t1, 3),
            "optimisation_s": round(time.perf_counter() - t2, 3),
            "peak_memory_mb": round(_peak_memory_mb(self.adapter.device), 1),
        }
        if scores.errors and any(scores.errors):
            first = next(e for e in scores.errors if e)
            self.log.warning("step %d: %d rewards missing (%s)", self.step,
                             sum(e is not None for e in scores.errors), first)  # fmt: skip
        return row

    # ------------------------------------------------------------------ evaluation
    def swap_in_ema(self) -> list[torch.Tensor]:
        """Swap the EMA weights into the policy; returns the policy's own to swap back."""
        saved = [p.detach().clone() for p in self.policy]
        if self.ema is not None:
            with torch.no_grad():
                for p, v in zip(self.policy, self.ema, strict=True):
                    p.copy_(v)
        return saved

    def restore_policy(self, saved: list[torch.Tensor]) -> None:
        with torch.no_grad():
            for p, v in zip(self.policy, saved, strict=True):
                p.copy_(v)

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """MAS and motion reward of the EMA policy on the held-out slice.

        The edits are made the way the benchmark makes them (the pipeline's own call with
        the editor's inference settings and seed), not with the rollout sampler, so the
        curve measures what the benchmark will measure of this LoRA.
        """
        if not self.eval_pairs:
            return {}
        saved = self.swap_in_ema()
        adapter = self.adapter
        seed = int(adapter.settings["inference"].get("seed", 0))
        _use(adapter, POLICY)
        with self.text_encoders_ready():
            edited = [adapter.edit([p.input], [p.prompt], seed)[0] for p in self.eval_pairs]
        inputs = [p.input for p in self.eval_pairs]
        targets = [p.target for p in self.eval_pairs]
        self.restore_policy(saved)
        motion = self.rewards.components.get("motion")
        if motion is None:
            from motionedit.flow import make_flow

            flow = make_flow(self.config["flow"])
        else:
            flow = motion.flow
        metrics = self.config["metrics"]
        rows = score_edits(inputs, edited, targets, flow, metrics["motion_reward"], metrics["mas"])
        return {
            "eval_mas": float(np.mean([r["mas"] for r in rows])),
            "eval_reward": float(np.mean([r["reward"] for r in rows])),
        }


def rank_rng_file(state_dir: Path, rank: int, step: int) -> Path:
    """Where process ``rank`` keeps its random generators for the checkpoint at ``step``.

    One file per step, not one per process: a process writes step k's file before the main
    process writes step k's ``state.pt``, so a kill between the two must leave step k-1's
    file for the ``state.pt`` still on disk (which is step k-1's) to resume from.
    """
    return state_dir / f"rng-{rank}-step-{step:06d}.pt"


def save_rank_rng(state_dir: Path, rank: int, step: int, rng: dict[str, Any]) -> Path:
    """Write process ``rank``'s generators tagged with their step (see :func:`load_rank_rng`)."""
    path = rank_rng_file(state_dir, rank, step)
    atomic_save({"step": step, "rng": rng}, path)
    return path


def load_rank_rng(state_dir: Path, rank: int, step: int) -> dict[str, Any]:
    """Process ``rank``'s generators for the ``state.pt`` at ``step``, or a refusal.

    A missing file or one from another step is refused rather than replaced by fresh seeds:
    a resume that silently drew other prompts and noise than the uninterrupted run would
    break the promise that both end with the same weights, and nothing downstream would
    show it. With the per-step files and the barrier of :func:`save_checkpoint` an ordinary
    kill cannot cause either, so the refusal only meets a folder that was tampered with,
    copied between runs, or written by the older single-file layout.
    """
    path = rank_rng_file(state_dir, rank, step)
    fix = (
        f"delete the checkpoint folder {state_dir} to train from the start, or put back "
        f"the files of step {step}"
    )
    if not path.is_file():
        raise ModelError(
            f"{path}: missing; {state_dir / STATE_FILE} is at step {step} and process {rank} "
            f"cannot resume its random generators without it; {fix}"
        )
    saved = torch.load(path, map_location="cpu", weights_only=True)
    saved_step = saved.get("step") if isinstance(saved, dict) else None
    if saved_step != step or "rng" not in saved:
        raise ModelError(
            f"{path}: holds the random generators of step {saved_step}, but "
            f"{state_dir / STATE_FILE} is at step {step}; {fix}"
        )
    return saved["rng"]


def _save_lora_atomically(adapter: EditorAdapter, step_dir: Path) -> None:
    """The step's LoRA into a hidden folder renamed into place: a kill leaves no half a LoRA
    under ``step-*`` for the end of the run to copy into the outputs."""
    tmp = step_dir.with_name(f".{step_dir.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    adapter.save_lora(tmp, adapter_name=POLICY)
    if step_dir.exists():  # a run killed after this rename but before its state.pt
        shutil.rmtree(step_dir)
    tmp.rename(step_dir)


def save_checkpoint(trainer: MotionNFT, checkpoints: Checkpoints, state_dir: Path) -> None:
    """Every process's part of the checkpoint at ``trainer.step``; ``state.pt`` comes last.

    ``state.pt`` is what a resume starts from, so it is the mark that the step is whole: the
    main process writes it only after the barrier that every other process reaches once its
    generators are on disk, and after the step's LoRA. Older generator files are removed
    only then, when nothing can resume from them.
    """
    acc, step = trainer.acc, trainer.step
    if not acc.is_main_process:
        save_rank_rng(state_dir, acc.process_index, step, trainer.rng_state())
    acc.wait_for_everyone()
    if not acc.is_main_process:
        return
    saved = trainer.swap_in_ema()
    _save_lora_atomically(trainer.adapter, state_dir / f"step-{step:06d}")
    trainer.restore_policy(saved)
    checkpoints.save(trainer.state())
    for old in state_dir.glob("rng-*-step-*.pt"):
        if int(old.stem.rsplit("-", 1)[1]) < step:
            old.unlink(missing_ok=True)


def _write_metrics(rows: list[dict[str, Any]], path: Path) -> None:
    columns = list(dict.fromkeys([*METRIC_COLUMNS, *(k for r in rows for k in r)]))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})


def run_motionnft(
    name: str,
    run: dict[str, Any],
    editor: dict[str, Any],
    config: dict[str, Any],
    train_table: str | Path,
    bench_table: str | Path,
    out_dir: str | Path,
    state_dir: str | Path,
    logger: logging.Logger,
) -> dict[str, Any]:
    """Train one ``train.<name>`` run; write its LoRA, checkpoints and metrics to ``out_dir``."""
    random.seed(run["seed"])
    train_pairs = load_pairs(train_table, run.get("videos"))
    if not train_pairs:
        raise no_pairs_error("train", name, run, train_table)
    eval_pairs = load_pairs(bench_table)[: run["eval_pairs"]] if run["eval_pairs"] else []
    trainer = MotionNFT(name, run, editor, config, train_pairs, eval_pairs, logger)
    state_dir, out_dir = Path(state_dir), Path(out_dir)
    checkpoints = Checkpoints(state_dir, settings_digest(run, editor, train_pairs))
    rank = trainer.acc.process_index
    main = trainer.acc.is_main_process
    state = checkpoints.load()
    if state is not None:
        trainer.load_state(state)
        if not main:  # the other processes' own random streams
            trainer.set_rng_state(load_rank_rng(state_dir, rank, trainer.step))
        logger.info("resumed at step %d of %d", trainer.step, run["steps"])
    started = time.perf_counter()
    writer = _tensorboard(state_dir / "tensorboard") if main else None
    if run["eval_every"] and trainer.step == 0:  # the curve starts at the base model
        trainer.rows.append({"step": 0} | trainer.evaluate())
        logger.info("step 0 (the base model): eval MAS %.2f", trainer.rows[-1].get("eval_mas", 0))
    for _ in progress(range(trainer.step, run["steps"]), "motionnft", run["steps"] - trainer.step):
        row = trainer.train_step()
        if run["eval_every"] and (
            trainer.step % run["eval_every"] == 0 or trainer.step == run["steps"]
        ):
            row |= trainer.evaluate()
            logger.info("step %d: reward %.3f, eval MAS %.2f", trainer.step,
                        row["reward_mean"], row.get("eval_mas", float("nan")))  # fmt: skip
        trainer.rows.append(row)
        if writer is not None:
            for key, value in row.items():
                if isinstance(value, int | float) and key != "step":
                    writer.add_scalar(key, value, trainer.step)
        if trainer.step % run["checkpoint_every"] == 0 and trainer.step < run["steps"]:
            save_checkpoint(trainer, checkpoints, state_dir)
    if not main:
        return {}
    trainer.swap_in_ema()  # the EMA policy is what is saved and evaluated
    if out_dir.exists():
        shutil.rmtree(out_dir)
    (out_dir / "checkpoints").mkdir(parents=True)
    trainer.adapter.save_lora(out_dir, adapter_name=POLICY)
    for step_dir in sorted(state_dir.glob("step-*")):
        shutil.copytree(step_dir, out_dir / "checkpoints" / step_dir.name)
    _write_metrics(trainer.rows, out_dir / "metrics.csv")
    last = trainer.rows[-1] if trainer.rows else {}
    summary = {
        "run": name,
        "editor": editor["name"],
        "steps": trainer.step,
        "train_pairs": len(train_pairs),
        "eval_pairs": len(eval_pairs),
        "final_eval_mas": last.get("eval_mas"),
        "seconds_this_session": round(time.perf_counter() - started, 1),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if writer is not None:
        writer.close()
    return summary


def _tensorboard(path: Path) -> Any:
    """A TensorBoard writer when tensorboard is installed; the CSV is always written."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(path))
