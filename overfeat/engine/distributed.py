"""Process-group set-up under torchrun, and the few collectives the engine needs.

Launch one process per device with torchrun, on one node or many::

    torchrun --standalone --nproc_per_node 8 -m overfeat train classifier ...   # one node
    torchrun --nnodes 4 --nproc_per_node 8 --rdzv_backend c10d \\
             --rdzv_endpoint HOST:29500 -m overfeat train classifier ...        # four nodes

The run directory (``--out``) must be on a filesystem every node sees: rank 0 writes the
checkpoints and chooses the one to resume from, and every rank reads it.

torchrun sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; the
group starts from them (``init_method="env://"``). A plain ``python -m overfeat train ...`` has no
``WORLD_SIZE`` and runs as a single process without a process group.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistEnv", "all_reduce_sum", "barrier", "init_distributed", "shutdown"]


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits: ``rank`` of ``world_size``, ``local_rank`` on its node, its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def init_distributed(device: str = "auto") -> DistEnv:
    """Join the process group torchrun describes (NCCL on CUDA, gloo on CPU), or run alone.

    ``device``: ``"auto"`` takes ``cuda:LOCAL_RANK`` when CUDA exists, else the CPU; ``"cuda"``
    takes ``cuda:LOCAL_RANK``; ``"cuda:N"`` takes GPU N (one process only: under torchrun each
    process takes its local rank's GPU); ``"cpu"`` forces the CPU (and gloo) even on a GPU
    machine.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    index = re.fullmatch(r"cuda:(\d+)", device)
    if not (device in ("auto", "cuda", "cpu") or index):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"--device {device} asked for, but torch sees no CUDA device")
    if index and world_size > 1:
        raise ValueError(
            f"--device {device}: under torchrun every process takes the GPU of its local rank; "
            "pass --device cuda (and choose the GPUs with CUDA_VISIBLE_DEVICES)"
        )
    use_cuda = torch.cuda.is_available() and device != "cpu"
    if use_cuda:
        gpu = int(index[1]) if index else local_rank
        torch.cuda.set_device(gpu)
        dev = torch.device("cuda", gpu)
    else:
        dev = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        for var in ("MASTER_ADDR", "MASTER_PORT"):
            if var not in os.environ:
                raise RuntimeError(
                    f"WORLD_SIZE={world_size} but {var} is unset: launch with torchrun "
                    f"(it sets RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT)"
                )
        kwargs = {"device_id": dev} if use_cuda else {}
        dist.init_process_group(
            backend="nccl" if use_cuda else "gloo",
            init_method="env://",
            rank=rank,
            world_size=world_size,
            **kwargs,
        )
    return DistEnv(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def all_reduce_sum(values: list[float], env: DistEnv) -> list[float]:
    """Sum plain numbers over all processes (float64, so counts stay exact)."""
    if not env.distributed:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=env.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def loader_workers(requested: int) -> int:
    """Data-loading processes for this rank: ``requested``, capped by this node's CPUs shared
    among its ranks (decision LOADER_WORKERS_CAPPED: more workers than CPUs only thrash, and the
    batches do not depend on the worker count, so capping changes speed, never results)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    per_rank = max(1, cpus // max(1, _env_int("LOCAL_WORLD_SIZE", 1)))
    return max(0, min(requested, per_rank))


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()


def shutdown(env: DistEnv, wait: bool = True) -> None:
    """Leave the process group; with ``wait`` (a normal end) after a barrier, so no process
    tears down its connections while a peer still uses them (a gloo process could then abort
    at exit: "terminate called without an active exception", SIGABRT)."""
    if env.distributed and dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()
