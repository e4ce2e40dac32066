"""The spatial training engine: one loop for the regressor (§4.2) and detection training (§5).

Both train on whole images at the test scales, every window of the dense output map at once
("Detection training is similar to classification training but in a spatial manner. Multiple
location of an image may be trained simultaneously", §5). What differs between them is a
*task* (:class:`SpatialTask`): which module learns, the per-window targets the data loader
computes, and the loss. Everything else is here, written once: the run folder (``config.json``,
``environment.json``, ``command.txt``, ``metrics.jsonl``, ``checkpoint-S.pt``), exact (on the CPU)
``--resume auto``, progress bars, and DDP under torchrun.

A step. The sampler (:class:`ScaleSampler`) draws the step's scale and its images; the task's
collate function resizes nothing more, it groups the images by the shape they got (a portrait
image's rectangle is the landscape one turned) and computes each group's window targets::

    batch = [group (n, 3, h, w) + targets (n, H', W', ...)] × (1 or 2 orientations)

Decision ORIENTATION_GROUPS: each group is one forward and one backward, the gradients
accumulate (DDP's ``no_sync`` for all but the last), and the loss is the sum over every group's
windows divided by the number of loss windows in the whole global batch, so the step is the
mean over the global batch's windows whatever the grouping and the process count. Squaring or
padding the images instead would change what the windows see.

Exactness: the scale of a step is a function of (seed, global step) (:func:`step_scale`), the
images and mirrors of (seed, epoch, index) (``overfeat.data.boxed``), dropout of (seed, rank,
step) (``train.step_seed``), so a run stopped anywhere and resumed equals the uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from overfeat.data.sampler import ShardedTrainSampler
from overfeat.engine.checkpoint import (
    checkpoint_path,
    find_latest_valid,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint_atomic,
)
from overfeat.engine.config import linear_scaled_lr
from overfeat.engine.distributed import (
    DistEnv,
    all_reduce_sum,
    init_distributed,
    loader_workers,
    shutdown,
)
from overfeat.engine.evaluate import autocast_for
from overfeat.engine.metrics_log import MetricsLog
from overfeat.engine.train import (
    _images_per_process,
    _progress_bar,
    _resolve_resume,
    check_converging,
    step_seed,
)

__all__ = [
    "SPATIAL_RESUMABLE_CHANGES",
    "ScaleSampler",
    "SpatialBatch",
    "SpatialConfig",
    "SpatialTask",
    "classifier_checkpoint",
    "group_by_shape",
    "parse_scales",
    "spatial_recipe",
    "step_scale",
    "train_spatial",
]

# Settings that may differ between a checkpoint and the run resuming it (where and how fast the
# run goes, never what it computes; ``epochs`` may be extended).
SPATIAL_RESUMABLE_CHANGES = frozenset(
    {"data", "out", "epochs", "workers", "checkpoint_every", "keep_checkpoints", "log_every",
     "stop_after_steps", "device", "progress"}
)  # fmt: skip


@dataclass(frozen=True)
class SpatialConfig:
    """The settings a spatial run shares (the regressor's and the detector's add their own).

    ``classifier``: the classifier run folder (or one checkpoint file in it) whose network the
    run starts from. ``scales``: 1-based indices into the network's six test scales
    (:func:`overfeat.scales.scale_sizes`). ``batch_size``: images per optimizer step, over all
    processes. The optimiser is SGD with momentum and ℓ2 weight decay, the learning rate
    multiplied by ``lr_gamma`` after each epoch of ``lr_milestones`` (§3.1's form).
    """

    classifier: str = ""
    data: str = ""
    out: str = ""
    recipe: str = "paper"
    scales: tuple[int, ...] = (1, 2, 3, 4, 5, 6)
    offsets: str = "fine"
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-2
    momentum: float = 0.9
    weight_decay: float = 1e-5
    lr_milestones: tuple[int, ...] = ()
    lr_gamma: float = 0.5
    seed: int = 0
    workers: int = 4
    checkpoint_every: int = 0
    keep_checkpoints: int = 3
    log_every: int = 10
    stop_after_steps: int = 0
    max_train_samples: int = 0
    amp: str = "auto"
    device: str = "auto"
    progress: bool = True

    def __post_init__(self):
        checks = {
            "scales": bool(self.scales) and all(1 <= s <= 6 for s in self.scales)
            and len(set(self.scales)) == len(self.scales),
            "offsets": self.offsets in ("fine", "coarse"),
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "lr": self.lr > 0,
            "momentum": 0.0 <= self.momentum < 1.0,
            "weight_decay": self.weight_decay >= 0,
            "lr_milestones": list(self.lr_milestones) == sorted(self.lr_milestones),
            "amp": self.amp in ("auto", "bf16", "none"),
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            values = ", ".join(f"{n}={getattr(self, n)!r}" for n in bad)
            raise ValueError(f"invalid training setting(s): {values}")

    def to_dict(self) -> dict:
        """Plain values only (checkpoints are read with ``torch.load(weights_only=True)``)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict):
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown training setting(s) {unknown}; known: {sorted(known)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def spatial_recipe(cls: type, recipes: dict[str, dict], name: str, **overrides):
    """``cls`` (a :class:`SpatialConfig`) for recipe ``name`` of ``recipes`` with ``overrides``
    (``None`` values ignored). A changed ``batch_size`` without ``lr`` scales the recipe's
    learning rate linearly (decision LINEAR_LR_SCALING, as the classifier's)."""
    if name not in recipes:
        raise ValueError(f"recipe must be one of {sorted(recipes)}, got {name!r}")
    base = cls(recipe=name, **recipes[name])
    given = {k: v for k, v in overrides.items() if v is not None}
    if "batch_size" in given and "lr" not in given:
        given["lr"] = linear_scaled_lr(base.lr, base.batch_size, given["batch_size"])
    return replace(base, **given)


def classifier_checkpoint(run: str | os.PathLike) -> tuple[Path, str, dict]:
    """The checkpoint a spatial run starts from: ``(run folder, file name, state)``.

    ``run``: a classifier-format run folder (``overfeat train classifier`` or ``train
    detector``), whose newest readable checkpoint is taken, or one checkpoint file. A
    ``ValueError`` names the folder and the fix when there is none.
    """
    path = Path(run).resolve()
    if path.is_file():
        return path.parent, path.name, load_checkpoint(path)
    if not path.is_dir():
        raise ValueError(
            f"--classifier {run}: no such folder; pass the run folder of "
            "'overfeat train classifier' (it holds checkpoint-*.pt)"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the message below says what is missing
        found = find_latest_valid(path)
    if found is None:
        raise ValueError(
            f"--classifier {run}: no readable classifier checkpoint (checkpoint-*.pt with a "
            "network); train one first with 'overfeat train classifier --out "
            f"{run}', or pass the folder such a run wrote"
        )
    return path, found[0].name, found[1]


def parse_scales(text: str) -> tuple[int, ...]:
    """``"1,2,4"`` → ``(1, 2, 4)``: the ``--scales`` flag (1-based Table 5 scales)."""
    try:
        scales = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        scales = ()
    if not scales or not all(1 <= s <= 6 for s in scales) or len(set(scales)) != len(scales):
        raise ValueError(
            f"--scales {text!r}: give distinct scale numbers 1..6 (Table 5), e.g. --scales 1,2,4"
        )
    return scales


def step_scale(seed: int, global_step: int, num_scales: int) -> int:
    """Which of ``num_scales`` scales optimizer step ``global_step`` trains at (0-based).

    Decision SCALE_PER_STEP: every step draws one scale uniformly, keyed on (seed, step) only,
    so a step's images share one size (one batched forward) and every scale is trained about
    equally often (§4.2: "the same set of scales as described in Section 3").
    """
    return int(np.random.default_rng([seed, global_step, 0x5CA1E]).integers(num_scales))


class ScaleSampler(ShardedTrainSampler):
    """:class:`ShardedTrainSampler`'s shards (the same images per step for any process count,
    exact mid-epoch starts), each index yielded as the key ``(epoch, index, scale)`` of
    :class:`overfeat.data.boxed.BoxedImages` with the step's scale (:func:`step_scale`)."""

    def __init__(self, num_samples, batch_size, world_size=1, rank=0, seed=0, num_scales=1):
        super().__init__(num_samples, batch_size, world_size, rank, seed)
        self.num_scales = num_scales

    def scale_of(self, global_step: int) -> int:
        return step_scale(self.seed, global_step, self.num_scales)

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        first = self.epoch * self.steps_per_epoch + self.start_step
        for j, index in enumerate(super().__iter__()):
            yield self.epoch, index, self.scale_of(first + j // self.local_batch)


@dataclass
class SpatialBatch:
    """One local batch: ``groups`` (dicts of tensors, one per image shape, ``"images"`` first),
    ``images`` decoded and ``skipped`` undecodable."""

    groups: list[dict]
    images: int
    skipped: int

    def pin_memory(self) -> SpatialBatch:
        pinned = [{k: v.pin_memory() for k, v in g.items()} for g in self.groups]
        return SpatialBatch(pinned, self.images, self.skipped)


class SpatialTask:
    """What one kind of spatial training adds to the loop. Built by the loop as
    ``Task(config, env, state)`` (``state``: the checkpoint resumed from, or ``None``).

    Attributes: ``dataset`` (a ``BoxedImages``), ``module`` (the network whose parameters learn,
    bare), ``ddp_module`` (what DDP wraps: its forward is the trainable computation), ``collate``
    (picklable: samples → :class:`SpatialBatch`), ``stat_names`` (extra per-step sums).
    ``REQUIRED_KEYS``: the keys of this task's checkpoints.
    """

    REQUIRED_KEYS: tuple[str, ...] = ()
    stat_names: tuple[str, ...] = ()
    dataset = None
    module: nn.Module
    ddp_module: nn.Module
    collate: Callable

    def windows(self, group: dict) -> int:
        """The number of windows the group's loss sums over (known before the forward)."""
        raise NotImplementedError

    def loss(self, net: nn.Module, group: dict) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``(loss summed over the group's loss windows, [one float per stat_names])``."""
        raise NotImplementedError

    def empty_loss(self, net: nn.Module) -> torch.Tensor:
        """A zero loss through ``net`` for a step whose every local image was undecodable, so
        DDP's all-reduce still happens on this process (decision EMPTY_BATCH_STEPS)."""
        raise NotImplementedError

    def checkpoint_state(self) -> dict:
        """The task's own checkpoint entries (its module's state_dict among them)."""
        raise NotImplementedError

    def summarize(self, sums: dict) -> dict:
        """Derived epoch fields from the reduced sums (``train_*``)."""
        return {}

    def environment(self) -> dict:
        return {}


def _check_resumable(saved: dict, config: SpatialConfig, path: str) -> None:
    current = config.to_dict()
    diff = [
        f"{k}: checkpoint {saved.get(k)!r} vs now {current[k]!r}"
        for k in current
        if k not in SPATIAL_RESUMABLE_CHANGES and saved.get(k) != current[k]
    ]
    if diff:
        raise ValueError(
            f"{path}: cannot resume, the run's settings changed ({'; '.join(diff)}); "
            f"use the original settings or a new --out directory"
        )


def train_spatial(
    task_cls: type[SpatialTask],
    config: SpatialConfig,
    resume: str | None = None,
    env: DistEnv | None = None,
    command: str | None = None,
) -> dict:
    """Train (or resume) one spatial run of ``task_cls``; returns the last epoch's record and
    the run status (``"finished"`` or ``"stopped"``).

    ``resume``: ``None`` starts fresh (an existing run in ``config.out`` is an error),
    ``"auto"`` continues from the newest readable checkpoint (fresh when there is none), or a
    checkpoint path. ``command``: appended to ``command.txt`` once the set-up has succeeded.
    """
    own_env = env is None
    env = env or init_distributed(config.device)
    try:
        result = _train(task_cls, config, resume, env, command)
    except BaseException:
        if own_env:
            shutdown(env, wait=False)
        raise
    if own_env:
        shutdown(env)
    return result


def _train(task_cls, config: SpatialConfig, resume, env: DistEnv, command) -> dict:
    out = Path(config.out)
    state = _resolve_resume(resume, out, env, task_cls.REQUIRED_KEYS)
    if state is None and resume is None and (out / "metrics.jsonl").exists():
        raise FileExistsError(
            f"{out} already holds a run (metrics.jsonl); pass --resume auto to continue it "
            f"or choose another --out"
        )
    if state is not None:
        _check_resumable(state["train_config"], config, state["_path"])
    task = task_cls(config, env, state)
    dataset = task.dataset
    module = task.module.to(env.device)
    trainable = [p for p in module.parameters() if p.requires_grad]
    # Decision WEIGHT_DECAY_ALL_PARAMETERS, as the classifier's: every trained parameter decays.
    optimizer = torch.optim.SGD(
        trainable, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=list(config.lr_milestones), gamma=config.lr_gamma
    )
    names = ("loss_sum", "windows", "images", "skipped", *task.stat_names)
    progress = {"epoch": 0, "step_in_epoch": 0, "global_step": 0}
    sums = torch.zeros(len(names), dtype=torch.float64, device=env.device)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        progress = {k: int(state["progress"][k]) for k in progress}
        if env.is_main:  # rank 0 carries the global sums, the others restart at zero
            sums = torch.tensor([state["meters"][k] for k in names], dtype=torch.float64,
                                device=env.device)  # fmt: skip

    net: nn.Module = task.ddp_module
    if env.distributed:
        net = DistributedDataParallel(
            net, device_ids=[env.device.index] if env.device.type == "cuda" else None
        )
    sampler = ScaleSampler(len(dataset), config.batch_size, env.world_size, env.rank,
                           config.seed, len(config.scales))  # fmt: skip
    log = MetricsLog(out / "metrics.jsonl", enabled=env.is_main)
    if env.is_main:
        out.mkdir(parents=True, exist_ok=True)
        log.rewind(progress["global_step"], unfinished_epoch=progress["epoch"])
        (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
        environment = _environment(env, dataset) | task.environment()
        (out / "environment.json").write_text(json.dumps(environment, indent=2) + "\n")
        if command:
            with open(out / "command.txt", "a") as f:
                f.write(command + "\n")

    def reduced() -> dict:
        return dict(zip(names, all_reduce_sum(sums.tolist(), env)))

    def save(epoch: int, step_in_epoch: int, global_step: int) -> None:
        meters = reduced()  # every process joins the reduction
        if not env.is_main:
            return
        save_checkpoint_atomic(
            task.checkpoint_state()
            | {
                "train_config": config.to_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "progress": {"epoch": epoch, "step_in_epoch": step_in_epoch,
                             "global_step": global_step},  # fmt: skip
                "meters": meters,
                "rng": {"seed": config.seed, "global_step": global_step},
                "world_size": env.world_size,
            },
            checkpoint_path(out, global_step),
        )
        prune_checkpoints(out, config.keep_checkpoints)

    global_step = progress["global_step"]
    result: dict = {"status": "finished", "global_step": global_step}
    for epoch in range(progress["epoch"], config.epochs):
        start = progress["step_in_epoch"] if epoch == progress["epoch"] else 0
        if start == 0:
            sums.zero_()
        sampler.set_epoch(epoch, start)
        loader = DataLoader(
            dataset,
            batch_size=sampler.local_batch,
            sampler=sampler,
            num_workers=loader_workers(config.workers),
            collate_fn=task.collate,
            pin_memory=env.device.type == "cuda",
        )
        module.train()
        t0, seen = time.perf_counter(), 0
        bar = _progress_bar(config, env, total=sampler.steps_per_epoch, initial=start,
                            desc=f"{task_cls.__name__.removesuffix('Task').lower()} epoch {epoch}")  # fmt: skip
        for step, batch in enumerate(loader, start=start):
            torch.manual_seed(step_seed(config.seed, env.rank, global_step))
            step_sums = _step(task, net, optimizer, batch, config, env, len(names))
            sums += step_sums
            global_step += 1
            seen += batch.images
            if bar is not None:
                bar.update(1)
            if config.log_every and global_step % config.log_every == 0:
                now = dict(zip(names, all_reduce_sum(step_sums.tolist(), env)))
                record = {
                    "kind": "train",
                    "epoch": epoch,
                    "global_step": global_step,
                    "step_in_epoch": step + 1,
                    "lr": optimizer.param_groups[0]["lr"],
                    "scale": config.scales[sampler.scale_of(global_step - 1)],
                    "loss": now["loss_sum"] / now["windows"] if now["windows"] else float("nan"),
                    "windows": int(now["windows"]),
                    **{k: now[k] for k in task.stat_names},
                    "images_per_second": seen * env.world_size / (time.perf_counter() - t0),
                }
                log.write(record)
                if bar is not None:
                    bar.set_postfix(loss=f"{record['loss']:.4f}")
            if config.checkpoint_every and global_step % config.checkpoint_every == 0:
                save(epoch, step + 1, global_step)
            if config.stop_after_steps and global_step >= config.stop_after_steps:
                if bar is not None:
                    bar.close()
                return {"status": "stopped", "global_step": global_step, "epoch": epoch}
        if bar is not None:
            bar.close()
        totals = reduced()
        lr = optimizer.param_groups[0]["lr"]
        with warnings.catch_warnings():
            # Resumed at this epoch's last step, this process took no optimizer step before
            # this one: torch's call-order warning is spurious (the state came from the file).
            warnings.filterwarnings("ignore", r"Detected call of `lr_scheduler\.step\(\)`")
            scheduler.step()
        n = totals["windows"]
        record = {
            "kind": "epoch",
            "epoch": epoch,
            "global_step": global_step,
            "lr": lr,
            "train_loss": totals["loss_sum"] / n if n else float("nan"),
            "train_windows": int(n),
            "train_images": int(totals["images"]),
            "train_skipped": int(totals["skipped"]),
            **task.summarize(totals),
            "seconds": time.perf_counter() - t0,
        }
        log.write(record)
        check_converging(record["train_loss"], out, epoch, lr)
        sums.zero_()
        save(epoch + 1, 0, global_step)
        result = {"status": "finished", **record}
    return result


def _step(task, net, optimizer, batch: SpatialBatch, config, env: DistEnv, width: int):
    """One optimizer step over the local batch's groups (ORIENTATION_GROUPS) → the step's sums
    ``(width,)`` float64: loss sum, loss windows, images, skipped, the task's stats."""
    device = env.device
    counts = [task.windows(g) for g in batch.groups]  # on the host, before the copy
    groups = [{k: v.to(device, non_blocking=True) for k, v in g.items()} for g in batch.groups]
    like = torch.zeros((), device=device)
    # The global batch's loss windows / W: dividing each process's loss sum by it makes DDP's
    # gradient average the mean over every loss window of the step.
    per_process = _images_per_process(sum(counts), env, like)
    sums = torch.zeros(width, dtype=torch.float64, device=device)
    sums[2], sums[3] = batch.images, batch.skipped
    optimizer.zero_grad(set_to_none=True)
    if not groups:
        with autocast_for(config, device):
            task.empty_loss(net).backward()
    for i, (group, count) in enumerate(zip(groups, counts)):
        last = i == len(groups) - 1
        sync = contextlib.nullcontext() if last or not env.distributed else net.no_sync()
        with sync:
            with autocast_for(config, device):
                loss_sum, stats = task.loss(net, group)
            (loss_sum / per_process).backward()
        sums[0] += loss_sum.detach().double()
        sums[1] += count
        for j, s in enumerate(stats):
            sums[4 + j] += s.detach().double() if isinstance(s, torch.Tensor) else s
    optimizer.step()
    return sums


def group_by_shape(samples: Sequence) -> list[tuple[tuple[int, int], list]]:
    """Samples with an ``image (3, h, w)`` → ``[((h, w), samples of that shape)]``, the shapes in
    sorted order (a fixed order keeps the float sums of a step reproducible)."""
    groups: dict[tuple[int, int], list] = {}
    for s in samples:
        groups.setdefault(tuple(s.image.shape[-2:]), []).append(s)
    return sorted(groups.items())


def _environment(env: DistEnv, dataset) -> dict:
    """Where the run ran and on what images (for the report, not used by the computation)."""
    dev = env.device
    return {
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor()
        or platform.machine(),
        "cpu_count": os.cpu_count(),
        "world_size": env.world_size,
        "torch": torch.__version__,
        "num_classes": len(dataset.classes),
        "train_images_source": dataset.kind,
        "train_samples": len(dataset),
        "left_out": dataset.left_out,
    }
