"""Two gloo processes on 127.0.0.1 train the same network as one process with the same global batch."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from test_engine_support import TINY_WIDTH, TinyImages, tiny_config

from overfeat.data import collate_skip_corrupt
from overfeat.engine.checkpoint import list_checkpoints
from overfeat.engine.sampler import ShardedTrainSampler
from overfeat.engine.train import he_initialisation, train_classifier
from overfeat.models import build_model


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(out: Path, epochs: int = 2):
    # Dropout 0: masks are drawn per process, so with dropout the runs differ by design.
    return tiny_config(out, epochs=epochs, batch_size=8, dropout=0.0, lr=2e-2)


def _datasets(corrupt=()):
    return TinyImages(40, corrupt=corrupt), TinyImages(13, seed=1)


def _worker(rank: int, world_size: int, port: int, out: str, corrupt=(), epochs: int = 2) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size),
    )
    torch.set_num_threads(1)
    train, val = _datasets(corrupt)
    train_classifier(
        _config(Path(out), epochs), train_set=train, val_set=val, collate_fn=collate_skip_corrupt
    )


def _records(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_two_gloo_processes_equal_one_process_with_the_same_global_batch(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    torch.set_num_threads(1)
    train, val = _datasets()
    train_classifier(_config(one), train_set=train, val_set=val, collate_fn=collate_skip_corrupt)
    mp.spawn(_worker, args=(2, _free_port(), str(two)), nprocs=2, join=True)

    a = torch.load(list_checkpoints(one)[-1], weights_only=True)
    b = torch.load(list_checkpoints(two)[-1], weights_only=True)
    assert b["world_size"] == 2 and a["world_size"] == 1
    assert a["progress"] == b["progress"]
    for name, w in a["model"].items():
        torch.testing.assert_close(b["model"][name], w, rtol=1e-4, atol=1e-6, msg=name)
    # The runs did train: the weights left their (seeded, shared) initial values.
    torch.manual_seed(0)
    init = build_model("fast", num_classes=4, width=TINY_WIDTH)
    he_initialisation(init)
    w0 = init.state_dict()["features.conv1.weight"]
    assert not torch.allclose(w0, a["model"]["features.conv1.weight"])

    ra, rb = _records(one), _records(two)
    assert [r["global_step"] for r in ra] == [r["global_step"] for r in rb]
    for x, y in zip(ra, rb):
        for key in ("loss", "train_loss", "val_loss"):
            if key in x:
                assert y[key] == pytest.approx(x[key], rel=1e-4), (key, x["global_step"])
        # Each validation image is counted once whatever the process count (13 = 7 + 6).
        if "val_images" in x:
            assert x["val_images"] == y["val_images"] == 13


# Step 0 of epoch 0 (seed 0, 40 images, global batch 8) gives rank 0 images 4, 16, 21, 5 and
# rank 1 images 11, 14, 39, 29: skipping 4 and 16 leaves rank 0 two images and rank 1 four.
UNEVEN = (4, 16)


@pytest.mark.slow
@pytest.mark.filterwarnings(r"ignore:epoch \d+. skipped:UserWarning")
def test_two_processes_with_uneven_local_batches_average_over_every_decoded_image(tmp_path):
    """The step's gradient is the mean over its decoded images, however they split over the
    processes: one process and two (with 2 + 4 decoded images at step 0) reach the same weights."""
    shares = [ShardedTrainSampler(40, 8, 2, r, seed=0) for r in range(2)]
    first = [list(s)[:4] for s in shares]
    kept = [sum(i not in UNEVEN for i in f) for f in first]
    assert kept == [2, 4], first  # the premise: the two processes see 2 and 4 decoded images
    one, two = tmp_path / "one", tmp_path / "two"
    torch.set_num_threads(1)
    train, val = _datasets(UNEVEN)
    train_classifier(_config(one, 1), train_set=train, val_set=val, collate_fn=collate_skip_corrupt)
    mp.spawn(_worker, args=(2, _free_port(), str(two), UNEVEN, 1), nprocs=2, join=True)
    a = torch.load(list_checkpoints(one)[-1], weights_only=True)
    b = torch.load(list_checkpoints(two)[-1], weights_only=True)
    for name, w in a["model"].items():
        torch.testing.assert_close(b["model"][name], w, rtol=1e-4, atol=1e-6, msg=name)
