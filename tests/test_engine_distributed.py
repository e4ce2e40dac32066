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
from overfeat.engine.train import he_initialisation, train_classifier
from overfeat.models import build_model


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(out: Path):
    # Dropout 0: masks are drawn per process, so with dropout the runs differ by design.
    return tiny_config(out, epochs=2, batch_size=8, dropout=0.0, lr=2e-2)


def _datasets():
    return TinyImages(40, corrupt=()), TinyImages(13, seed=1)


def _worker(rank: int, world_size: int, port: int, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size),
    )
    torch.set_num_threads(1)
    train, val = _datasets()
    train_classifier(_config(Path(out)), train_set=train, val_set=val, collate_fn=collate_skip_corrupt)


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
