"""The classification training loop (§3.1), one process or many under torchrun.

``train_classifier(config)`` trains an OverFeat network on an ILSVRC-layout folder with the
recipe in ``config`` (defaults: the paper's), writing into ``config.out``::

    config.json         the TrainConfig as plain values
    environment.json    device, process count, torch version, class count (for the report)
    command.txt         every command line that ran on this directory (written by the CLI)
    metrics.jsonl       one record per ``log_every`` steps and per epoch (rank 0)
    checkpoint-S.pt     every epoch and every ``checkpoint_every`` steps (the newest few kept)

Exactness. Every random draw of a run is a pure function of the seed and the position in the
run: the data order (``sampler.epoch_permutation``), the crops and flips (the data package keys
them on (seed, epoch, index)), and dropout, whose generator is re-seeded before every step from
(seed, rank, global step) (``step_seed``). A run stopped anywhere and resumed from a checkpoint
therefore retraces the uninterrupted run bit for bit on the same hardware and process count: on
the CPU always; on CUDA with ``deterministic=True`` (``--deterministic``, decision
DETERMINISTIC_CUDA), since cuDNN's benchmarked algorithms otherwise sum in run-dependent orders.
With W processes each step's global batch is split W ways (``ShardedTrainSampler``) and DDP
averages the gradients, so W processes follow the one-process run up to float rounding (and
dropout masks, which are drawn per process).
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset

from overfeat.data.sampler import ShardedTrainSampler, epoch_permutation
from overfeat.engine.checkpoint import (
    REQUIRED_KEYS,
    checkpoint_path,
    find_latest_valid,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint_atomic,
)
from overfeat.engine.config import TrainConfig, warmup_factor
from overfeat.engine.distributed import (
    DistEnv,
    all_reduce_sum,
    init_distributed,
    loader_workers,
    shutdown,
)
from overfeat.engine.evaluate import (
    ErrorMeters,
    autocast_for,
    class_scores,
    evaluate,
    summarize,
    to_device,
    use_channels_last,
)
from overfeat.engine.metrics_log import MetricsLog
from overfeat.models import ARCHS, OverFeat, build_model

__all__ = [
    "EXACT_RESUMABLE_CHANGES",
    "RESUMABLE_CHANGES",
    "TIMING_KEYS",
    "TrainingDiverged",
    "check_converging",
    "evaluate",
    "he_initialisation",
    "step_seed",
    "train_classifier",
]

# Settings that may differ between a checkpoint and the run resuming it. EXACT_RESUMABLE_CHANGES
# change where and how fast the run goes, never the numbers it computes (``epochs`` may be
# extended); with them a resumed run retraces the uninterrupted one bit for bit. The others
# are allowed because a run must be able to move (another GPU, torch.compile on, a faster
# loader), but they change the arithmetic: a resumed run then follows the uninterrupted one up to
# float rounding (``device``, ``compile``, ``deterministic``, ``allreduce``) or up to the resize
# filter's pixel values (``loader``), and the trajectories drift apart from there.
EXACT_RESUMABLE_CHANGES = frozenset(
    {
        "data", "out", "epochs", "workers", "eval_batch_size", "checkpoint_every",
        "keep_checkpoints", "log_every", "stop_after_steps", "progress",
    }
)  # fmt: skip
RESUMABLE_CHANGES = EXACT_RESUMABLE_CHANGES | {
    "compile", "device", "deterministic", "allreduce", "loader",
}

# Metrics-log fields that measure wall-clock time; everything else in the log is exact.
TIMING_KEYS = frozenset({"seconds", "images_per_second"})


def step_seed(seed: int, rank: int, global_step: int) -> int:
    """The seed of the random generator for one optimizer step of one process (dropout masks).

    Decision DROPOUT_SEED_PER_STEP: re-seeding from (seed, rank, step) makes a resumed run draw
    the same masks as the uninterrupted one without carrying every process's RNG state.
    """
    return (seed * 1_000_003 + rank * 7_919 + global_step * 104_729) % (2**63)


def he_initialisation(model: nn.Module, last_std: float = 1e-2) -> None:
    """Toy recipe (decision TOY_RECIPE): weights ~ N(0, 2 / fan_in) per layer, biases 0; the
    output layer keeps §3.1's N(0, 1e-2), so the first scores are near zero (loss ≈ ln C)
    instead of large random logits that the first steps must unlearn."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    for i, m in enumerate(convs):
        fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1] // m.groups
        std = last_std if i == len(convs) - 1 else math.sqrt(2.0 / fan_in)
        nn.init.normal_(m.weight, 0.0, std)
        nn.init.zeros_(m.bias)


class TrainingDiverged(FloatingPointError):
    """The training loss of an epoch was not finite: the weights are lost, and every later step
    would only compute NaN (the message names the run, the epoch and the fix)."""


def check_converging(loss: float, out, epoch: int, lr: float) -> None:
    """Stop a run whose epoch ``loss`` is NaN or infinite, after its epoch record is logged and
    before its end-of-epoch checkpoint is written, so ``--resume auto`` finds the last good one.

    Decision DIVERGENCE_STOPS_THE_RUN: checked once per epoch on the reduced loss every process
    already holds (all stop together, no extra synchronisation per step); a run that diverged
    mid-epoch wastes at most the rest of that epoch, where carrying on would waste every epoch
    left and write checkpoints of NaN weights.
    """
    if not math.isfinite(loss):
        raise TrainingDiverged(
            f"{out}: training diverged: the loss of epoch {epoch + 1} is {loss} at lr {lr:g}; "
            "the checkpoints written before this epoch are intact. Train again with a lower "
            "--lr (a third of it is a start), in a new --out folder or with --resume auto "
            "after deleting the checkpoints of this epoch"
        )


def _images_per_process(local_images: int, env: DistEnv, like: torch.Tensor) -> torch.Tensor:
    """``(images decoded in the whole global batch) / W``: a process's local loss sum divided
    by it makes the gradient DDP averages over W processes the mean over every decoded image.

    Skipped (corrupt) images make the local batches uneven; dividing each by its own size would
    weight an image of a short batch more than one of a full batch, and W processes would no
    longer follow the one-process run. The count is all-reduced on the device (no host sync);
    it is at least 1, so a step with no decoded image gives a zero loss, not NaN.
    """
    n = torch.full((), float(local_images), dtype=like.dtype, device=like.device)  # no copy
    if env.distributed:
        torch.distributed.all_reduce(n, op=torch.distributed.ReduceOp.SUM)
    return n.clamp(min=1.0) / env.world_size


def _set_dropout(model: nn.Module, p: float) -> None:
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = p


class _Subset(Dataset):
    """A fixed seeded subset of a dataset that still forwards ``set_epoch`` (smoke runs)."""

    def __init__(self, dataset, size: int, seed: int):
        self.dataset = dataset
        self.indices = epoch_permutation(len(dataset), seed, -1)[:size].sort().values.tolist()
        self.classes = dataset.classes
        self.transform = getattr(dataset, "transform", None)
        self.epoch_keys = getattr(dataset, "epoch_keys", False)

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i):
        if isinstance(i, tuple):  # (epoch, index): see _EpochKeys
            return self.dataset[(i[0], self.indices[i[1]])]
        return self.dataset[self.indices[i]]


# Decision UINT8_BATCHES: the training and validation loaders' workers return uint8 crops, and
# normalisation (and the float conversion) happens on the device (evaluate.to_device): a quarter
# of the bytes through shared memory and the pinned copy (160 KB per 231x231 image instead of
# 640 KB; about 10 GB less shared memory on an 8-rank node with the default prefetch), and the
# float arithmetic where it is cheapest. The normalisation is the float transforms' arithmetic,
# the same bits on the CPU; the resize is torch's (decision RESIZE_UINT8 in overfeat.data.transforms).
def _open_datasets(config: TrainConfig, env: DistEnv):
    """The §3.1 training views (random crop + flip) and the centre-crop validation views, as uint8
    crops (decision UINT8_BATCHES), over the run's sample index (SAMPLE_INDEX_PER_RUN)."""
    from overfeat.data import ClassificationDataset, eval_transform, train_transform
    from overfeat.engine.index import sample_index

    root = Path(config.data)
    if not root.is_dir():
        raise FileNotFoundError(f"--data {root}: no such directory; pass an ILSVRC-layout root")
    samples, classes = sample_index(root, "train", config.out, env)
    train = ClassificationDataset(samples, classes, train_transform(config.arch, output="uint8"),
                                  seed=config.seed)  # fmt: skip
    samples, val_classes = sample_index(root, "val", config.out, env)
    val = ClassificationDataset(samples, val_classes, eval_transform(config.arch, output="uint8"))
    return train, val


def _default_collate():
    from overfeat.data import collate_skip_corrupt

    return collate_skip_corrupt


class _EpochKeys(torch.utils.data.Sampler):
    """A :class:`ShardedTrainSampler`'s indices as ``(epoch, index)`` keys, so loader workers
    that live across epochs (persistent workers) draw each epoch's crops without being told the
    epoch (the datasets key their random draws on (seed, epoch, index))."""

    def __init__(self, sampler: ShardedTrainSampler):
        self.sampler = sampler

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        epoch = self.sampler.epoch
        return ((epoch, i) for i in self.sampler)


# Decision LOADER_WORKERS_PERSIST: the training loader is built once per run with persistent
# workers, pinned memory on CUDA and PREFETCH_BATCHES batches in flight per worker; the epoch
# reaches the workers in each sample's key (_EpochKeys). Rebuilding it every epoch restarted
# every worker (and re-forked the dataset) 90 times per run.
PREFETCH_BATCHES = 4


def _make_loader(train_set, sampler, config: TrainConfig, env: DistEnv, collate_fn):
    """The training loader ``config.loader`` names: the project's (:func:`_train_loader`), or
    DALI's (:class:`overfeat.data.dali.DaliTrainLoader`) when it can run here; otherwise a
    warning says why and the project's runs."""
    if config.loader == "dali":
        from overfeat.data import ClassificationDataset
        from overfeat.data.dali import DaliTrainLoader, dali_unavailable

        why = dali_unavailable()
        transform = getattr(train_set, "transform", None)
        if why is None and not (isinstance(train_set, ClassificationDataset)
                                and getattr(transform, "output", None) == "uint8"):  # fmt: skip
            why = ("it reads the project's own data sets (--data, without --max-train-samples), "
                   "not a dataset passed in")  # fmt: skip
        if why is None:
            threads = max(1, config.workers)
            return DaliTrainLoader(train_set, transform, sampler, env.device, threads=threads)
        if env.is_main:
            warnings.warn(f"--loader dali: {why}; the default loader runs", stacklevel=3)
    return _train_loader(train_set, sampler, config, env, collate_fn)


def _train_loader(train_set, sampler, config: TrainConfig, env: DistEnv, collate_fn):
    workers = loader_workers(config.workers)
    keyed = getattr(train_set, "epoch_keys", False)
    return DataLoader(
        train_set,
        batch_size=sampler.local_batch,
        sampler=_EpochKeys(sampler) if keyed else sampler,
        num_workers=workers,
        collate_fn=collate_fn,
        pin_memory=env.device.type == "cuda",
        persistent_workers=keyed and workers > 0,
        prefetch_factor=PREFETCH_BATCHES if workers > 0 else None,
    )


class determinism:
    """Decision DETERMINISTIC_CUDA: ``deterministic=True`` makes CUDA training reproducible run
    to run (cuDNN's deterministic algorithms, ``torch.use_deterministic_algorithms``, cuBLAS's
    fixed workspace); otherwise cuDNN benchmarks its algorithms for the run's fixed shapes
    (``cudnn.benchmark``), faster and not reproducible bit for bit. The CPU computes the same
    bits either way. Settings are restored on exit (tests run many trainings in one process)."""

    def __init__(self, deterministic: bool, device: torch.device):
        self.deterministic = deterministic
        self.cuda = device.type == "cuda"

    def __enter__(self):
        cudnn = torch.backends.cudnn
        self.saved = (cudnn.deterministic, cudnn.benchmark,
                      torch.are_deterministic_algorithms_enabled(),
                      os.environ.get("CUBLAS_WORKSPACE_CONFIG"))  # fmt: skip
        if self.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            cudnn.deterministic, cudnn.benchmark = True, False
            torch.use_deterministic_algorithms(True)
        elif self.cuda:
            cudnn.benchmark = True
        return self

    def __exit__(self, *exc):
        cudnn = torch.backends.cudnn
        cudnn.deterministic, cudnn.benchmark, algorithms, workspace = self.saved
        torch.use_deterministic_algorithms(algorithms)
        if workspace is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
        return False


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def _bf16_allreduce(net: nn.Module, config: TrainConfig, env: DistEnv) -> None:
    """Decision ALLREDUCE_BF16 (``--allreduce bf16``, off by default): DDP's bf16 compression hook
    rounds each gradient bucket to bf16 before the all-reduce and back after it, halving the
    bytes on the wire (584 MB → 292 MB per step for the full-width accurate network). The
    average of W rounded gradients differs from the fp32 average by bf16's relative precision
    (2^-8) of each gradient, on every step: a numerical change to the recipe, worth it only
    where the network, not the GPU, is the bottleneck (multi-node)."""
    if config.allreduce != "bf16":
        return
    if not env.distributed:
        warnings.warn("--allreduce bf16 has no effect in a one-process run", stacklevel=3)
        return
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

    net.register_comm_hook(None, default_hooks.bf16_compress_hook)


def _check_resumable(saved: dict, config: TrainConfig, path: Path) -> None:
    current = config.to_dict()
    # A checkpoint written before a setting existed ran at its default.
    saved = TrainConfig.from_dict(saved).to_dict()
    diff = [
        f"{k}: checkpoint {saved.get(k)!r} vs now {current[k]!r}"
        for k in current
        if k not in RESUMABLE_CHANGES and saved.get(k) != current[k]
    ]
    if diff:
        raise ValueError(
            f"{path}: cannot resume, the run's recipe changed ({'; '.join(diff)}); "
            f"use the original settings or a new --out directory"
        )


def _broadcast_path(path: str | None, env: DistEnv) -> str | None:
    if not env.distributed:
        return path
    box = [path]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def _resolve_resume(
    resume: str | None, out: Path, env: DistEnv, required: tuple[str, ...] = REQUIRED_KEYS
) -> dict | None:
    """``None``: fresh run; ``"auto"``: newest valid checkpoint in ``out`` if any; else a path.
    ``required``: the keys a checkpoint of this kind of run holds (the engine's spatial runs
    share this function)."""
    if not resume:
        return None
    path, state = None, None
    if env.is_main:
        if resume == "auto":
            found = find_latest_valid(out, required=required)
            if found:
                # Keep what validating the checkpoint already read (about 1.2 GB at full width).
                path, state = str(found[0]), found[1]
        else:
            path = resume
    path = _broadcast_path(path, env)
    if path is None:
        return None
    if state is None:
        state = load_checkpoint(path, map_location="cpu", required=required, mmap=True)
    return state | {"_path": path}


def train_classifier(
    config: TrainConfig,
    resume: str | None = None,
    train_set=None,
    val_set=None,
    collate_fn: Callable | None = None,
    env: DistEnv | None = None,
) -> dict:
    """Train (or resume) one classifier; returns the last epoch's metrics and the run status.

    ``resume``: ``None`` starts fresh (an existing run in ``config.out`` is an error), ``"auto"``
    continues from the newest readable checkpoint in ``config.out`` (fresh when there is none),
    or a checkpoint path. ``train_set`` / ``val_set`` default to ``overfeat.data`` readers of
    ``config.data``; ``collate_fn`` to ``overfeat.data.collate_skip_corrupt``.
    """
    own_env = env is None
    env = env or init_distributed(config.device)
    try:
        with determinism(config.deterministic, env.device):
            result = _train(config, resume, train_set, val_set, collate_fn, env)
    except BaseException:
        if own_env:
            # No barrier: the peers may never reach one; exiting lets torchrun stop them.
            shutdown(env, wait=False)
        raise
    if own_env:
        shutdown(env)
    return result


def _train(config, resume, train_set, val_set, collate_fn, env: DistEnv) -> dict:
    out = Path(config.out)
    input_size = ARCHS[config.arch].input_size
    if train_set is None:
        train_set, val_set = _open_datasets(config, env)
    collate_fn = collate_fn or _default_collate()
    if config.max_train_samples and config.max_train_samples < len(train_set):
        train_set = _Subset(train_set, config.max_train_samples, config.seed)
    if val_set is not None and config.max_val_samples and config.max_val_samples < len(val_set):
        val_set = _Subset(val_set, config.max_val_samples, config.seed)

    state = _resolve_resume(resume, out, env)
    if state is None and resume is None and (out / "metrics.jsonl").exists():
        raise FileExistsError(
            f"{out} already holds a run (metrics.jsonl); pass --resume auto to continue it "
            f"or choose another --out"
        )
    if state is not None:
        _check_resumable(state["train_config"], config, Path(state["_path"]))

    torch.manual_seed(config.seed)  # identical initial weights in every process
    model: OverFeat = build_model(config.arch, num_classes=len(train_set.classes), width=config.width)
    _set_dropout(model, config.dropout)
    if config.init == "he":
        he_initialisation(model)
    else:
        model.reset_parameters(config.init_std)
    if state is not None:
        model.load_state_dict(state["model"])
    cl = use_channels_last(config, env.device)
    model.to(env.device, memory_format=torch.channels_last if cl else torch.contiguous_format)

    # Decision WEIGHT_DECAY_ALL_PARAMETERS: §3.1's ℓ2 weight decay applies to every parameter,
    # biases included (the paper does not exempt any; Torch7's SGD of the time did not).
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=list(config.lr_milestones), gamma=config.lr_gamma
    )
    progress = {"epoch": 0, "step_in_epoch": 0, "global_step": 0}
    meters = ErrorMeters(env.device)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        progress = {k: int(state["progress"][k]) for k in progress}
        meters.load(state["meters"], env)
    state = None  # the checkpoint (1.2 GB at full width) is in the network and optimizer now

    net: nn.Module = model
    if env.distributed:
        net = DistributedDataParallel(
            model, device_ids=[env.device.index] if env.device.type == "cuda" else None
        )
    _bf16_allreduce(net, config, env)
    eval_net: nn.Module = model
    if config.compile:
        net = torch.compile(net)
        # Validation runs the compiled network too, outside DDP: each process's shard has its
        # own length (ExactEvalSampler), so no collective may run per forward.
        eval_net = torch.compile(model)

    sampler = ShardedTrainSampler(
        len(train_set), config.batch_size, env.world_size, env.rank, config.seed
    )
    log = MetricsLog(out / "metrics.jsonl", enabled=env.is_main)
    if env.is_main:
        out.mkdir(parents=True, exist_ok=True)
        log.rewind(progress["global_step"], unfinished_epoch=progress["epoch"])
        (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
        (out / "environment.json").write_text(json.dumps(_environment(env, train_set), indent=2))

    def save(epoch: int, step_in_epoch: int, global_step: int) -> None:
        if not env.is_main:
            meters.reduced(env)  # matching collective for rank 0's reduction below
            return
        save_checkpoint_atomic(
            {
                "model": model.state_dict(),
                "model_config": model.config,
                "train_config": config.to_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "progress": {
                    "epoch": epoch,
                    "step_in_epoch": step_in_epoch,
                    "global_step": global_step,
                },
                "meters": meters.reduced(env),
                "rng": {
                    "seed": config.seed,
                    "global_step": global_step,
                    "torch_cpu": torch.get_rng_state(),
                },
                "world_size": env.world_size,
            },
            checkpoint_path(out, global_step),
        )
        prune_checkpoints(out, config.keep_checkpoints)

    eval_batch = config.eval_batch_size or sampler.local_batch
    loader = _make_loader(train_set, sampler, config, env, collate_fn)
    norm = getattr(getattr(train_set, "transform", None), "normalization", None)
    warmup_steps = round(config.warmup * sampler.steps_per_epoch)
    global_step = progress["global_step"]
    result: dict = {"status": "finished", "global_step": global_step}  # already complete
    for epoch in range(progress["epoch"], config.epochs):
        start = progress["step_in_epoch"] if epoch == progress["epoch"] else 0
        if start == 0:
            meters = ErrorMeters(env.device)
        sampler.set_epoch(epoch, start)
        if hasattr(train_set, "set_epoch"):
            train_set.set_epoch(epoch)  # for datasets without epoch keys (non-persistent workers)
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch, start)
        net.train()
        t0 = time.perf_counter()
        seen = 0
        bar = _progress_bar(
            config, env, total=sampler.steps_per_epoch, initial=start, desc=f"epoch {epoch}"
        )
        for step, (images, labels, skipped) in enumerate(loader, start=start):
            torch.manual_seed(step_seed(config.seed, env.rank, global_step))
            if labels.numel() == 0:
                # Decision EMPTY_BATCH_STEPS: when every image of a local batch is corrupt, a
                # zero-image batch still runs forward and backward (zero gradient), so DDP's
                # all-reduce matches on every process and the step count stays the schedule's.
                images = images.new_zeros(0, 3, input_size, input_size)
            images, labels = to_device(images, labels, env.device, cl, norm)
            if warmup_steps:
                # Decision WARMUP: a pure function of the step, so a resume is exact.
                factor = warmup_factor(global_step, warmup_steps, config.batch_size)
                _set_lr(optimizer, scheduler.get_last_lr()[0] * factor)
            with autocast_for(config, env.device):
                logits = class_scores(net, images).float()
            # The mean cross-entropy over the images of the whole global batch that decoded, and
            # 0 (not NaN) for a batch whose every image was corrupt, so every process still joins
            # the all-reduce.
            loss_sum = F.cross_entropy(logits, labels, reduction="sum")
            loss = loss_sum / _images_per_process(labels.numel(), env, loss_sum)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            meters.add(logits.detach(), labels, loss_sum, skipped)
            global_step += 1
            seen += labels.numel()
            if bar is not None:
                bar.update(1)
            if config.log_every and global_step % config.log_every == 0:
                now = all_reduce_sum([loss_sum.item(), labels.numel()], env)
                record = {
                    "kind": "train",
                    "epoch": epoch,
                    "global_step": global_step,
                    "step_in_epoch": step + 1,
                    "lr": optimizer.param_groups[0]["lr"],
                    "loss": now[0] / now[1] if now[1] else float("nan"),
                    **summarize(meters.reduced(env), "epoch"),
                    "images_per_second": seen * env.world_size / (time.perf_counter() - t0),
                }
                log.write(record)
                if bar is not None:
                    bar.set_postfix(loss=f"{record['loss']:.3f}", lr=f"{record['lr']:.2g}")
            if config.checkpoint_every and global_step % config.checkpoint_every == 0:
                save(epoch, step + 1, global_step)
            if config.stop_after_steps and global_step >= config.stop_after_steps:
                if bar is not None:
                    bar.close()
                return {"status": "stopped", "global_step": global_step, "epoch": epoch}
        if bar is not None:
            bar.close()
        train_sums = meters.reduced(env)
        if warmup_steps:
            # The milestone schedule multiplies the group's rate: hand it back the unwarmed one.
            _set_lr(optimizer, scheduler.get_last_lr()[0])
        lr = optimizer.param_groups[0]["lr"]
        with warnings.catch_warnings():
            # Resumed from a checkpoint at this epoch's last step, this process took no optimizer
            # step before this one; torch's call-order warning is then spurious (the scheduler's
            # state came from the checkpoint, nothing is skipped).
            warnings.filterwarnings("ignore", r"Detected call of `lr_scheduler\.step\(\)`")
            scheduler.step()
        record = {"kind": "epoch", "epoch": epoch, "global_step": global_step, "lr": lr}
        record |= summarize(train_sums, "train")
        if val_set is not None:
            record |= evaluate(eval_net, val_set, config, env, eval_batch, collate_fn)
        record["seconds"] = time.perf_counter() - t0
        log.write(record)
        if env.is_main and (record["train_skipped"] or record.get("val_skipped")):
            warnings.warn(
                f"epoch {epoch}: skipped {record['train_skipped']} training and "
                f"{record.get('val_skipped', 0)} validation images that could not be decoded",
                stacklevel=2,
            )
        check_converging(record["train_loss"], out, epoch, lr)
        meters = ErrorMeters(env.device)
        save(epoch + 1, 0, global_step)
        result = {"status": "finished", **record}
    return result


def _environment(env: DistEnv, train_set) -> dict:
    """Where the run ran, for the report (not used by the computation)."""
    dev = env.device
    return {
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor()
        or platform.machine(),
        "cpu_count": os.cpu_count(),
        "world_size": env.world_size,
        "torch": torch.__version__,
        "num_classes": len(train_set.classes),
        "train_samples": len(train_set),
    }


def _progress_bar(config: TrainConfig, env: DistEnv, total: int, initial: int, desc: str):
    """An epoch's progress on process 0: a bar on a terminal, a line per 10% in a log
    (decision PROGRESS_LOG_LINES)."""
    if not (config.progress and env.is_main):
        return None
    from overfeat.progress import progress

    return progress(total, desc, unit="step", initial=initial, leave=True)
