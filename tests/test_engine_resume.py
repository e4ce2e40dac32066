"""Exact resume: a run stopped anywhere and resumed equals the uninterrupted run bit for bit."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import pytest
import torch
from test_engine_support import TinyImages, tiny_config

from overfeat.data import collate_skip_corrupt
from overfeat.engine.checkpoint import list_checkpoints
from overfeat.engine.train import TIMING_KEYS, train_classifier
from overfeat.models import build_model

# The engine's end-of-epoch notice about skipped files is expected here, every epoch.
pytestmark = pytest.mark.filterwarnings(r"ignore:epoch \d+. skipped:UserWarning")

CORRUPT = (3, 17)  # two undecodable training files, skipped and counted every epoch


def _run(out: Path, resume=None, **kw) -> dict:
    config = tiny_config(out, epochs=2, checkpoint_every=3, keep_checkpoints=3, **kw)
    return train_classifier(
        config,
        resume=resume,
        train_set=TinyImages(40, corrupt=CORRUPT),
        val_set=TinyImages(13, seed=1, corrupt=(5,)),
        collate_fn=collate_skip_corrupt,
    )


def _final_state(out: Path) -> dict:
    return torch.load(list_checkpoints(out)[-1], weights_only=True)


def _metrics(out: Path) -> list[dict]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if k not in TIMING_KEYS} for x in lines]


def _assert_same_tensors(a, b, where=""):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_same_tensors(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same_tensors(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), f"{where} differs"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("uninterrupted")
    _run(out)
    return out


# 10 steps in all (5 per epoch), checkpoints at steps 3, 5 (epoch end), 6, 9, 10.
@pytest.mark.parametrize(
    "stop",
    [4, 5, 7],
    ids=["stop-mid-epoch-0", "stop-at-epoch-end", "stop-mid-epoch-1"],
)
def test_stopped_and_resumed_run_equals_uninterrupted_bit_for_bit(tmp_path, uninterrupted, stop):
    out = tmp_path / "run"
    stopped = _run(out, stop_after_steps=stop)
    assert stopped["status"] == "stopped" and stopped["global_step"] == stop
    _run(out, resume="auto")
    a, b = _final_state(uninterrupted), _final_state(out)
    _assert_same_tensors(a["model"], b["model"], "model")
    _assert_same_tensors(a["optimizer"], b["optimizer"], "optimizer")
    _assert_same_tensors(a["scheduler"], b["scheduler"], "scheduler")
    assert a["progress"] == b["progress"] == {"epoch": 2, "step_in_epoch": 0, "global_step": 10}
    # The log rewinds to the checkpoint and is rewritten, so it matches line for line.
    assert _metrics(uninterrupted) == _metrics(out)


def test_resumed_run_with_loader_workers_equals_the_single_process_loader_run(
    tmp_path, uninterrupted
):
    # Two DataLoader worker processes before and after the stop; the reference used none.
    out = tmp_path / "run"
    _run(out, stop_after_steps=7, workers=2)
    _run(out, resume="auto", workers=2)
    _assert_same_tensors(_final_state(uninterrupted)["model"], _final_state(out)["model"])
    assert _metrics(uninterrupted) == _metrics(out)


def test_resume_auto_skips_a_truncated_newest_checkpoint_and_still_matches(tmp_path, uninterrupted):
    out = tmp_path / "run"
    _run(out, stop_after_steps=7)  # checkpoints 3, 5, 6
    newest = list_checkpoints(out)[-1]
    assert newest.name == "checkpoint-00000006.pt"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    with pytest.warns(UserWarning, match="checkpoint-00000006.pt"):
        _run(out, resume="auto")
    _assert_same_tensors(_final_state(uninterrupted)["model"], _final_state(out)["model"])
    assert _metrics(uninterrupted) == _metrics(out)


def test_corrupt_images_are_skipped_and_counted_per_epoch(uninterrupted):
    epochs = [r for r in _metrics(uninterrupted) if r["kind"] == "epoch"]
    assert [r["train_skipped"] for r in epochs] == [len(CORRUPT)] * 2
    assert [r["train_images"] for r in epochs] == [40 - len(CORRUPT)] * 2
    assert [(r["val_images"], r["val_skipped"]) for r in epochs] == [(12, 1)] * 2


def test_every_checkpoint_loads_with_weights_only_and_rebuilds_the_network(uninterrupted):
    state = torch.load(list_checkpoints(uninterrupted)[-1], weights_only=True)
    model = build_model(**state["model_config"])
    model.load_state_dict(state["model"])
    model.eval()
    x = TinyImages(2, seed=9)[0][0][None]
    # An independent forward: the checkpoint's weights applied layer by layer with F.conv2d.
    h = x
    f = torch.nn.functional
    for name in ("conv1", "conv2", "conv3", "conv4", "conv5"):
        conv = getattr(model.features, name)
        h = f.relu(f.conv2d(h, state["model"][f"features.{name}.weight"],
                            state["model"][f"features.{name}.bias"],
                            stride=conv.stride, padding=conv.padding))  # fmt: skip
        if name in ("conv1", "conv2", "conv5"):
            h = f.max_pool2d(h, 2)
    for name in ("fc6", "fc7", "fc8"):
        h = f.conv2d(h, state["model"][f"classifier.{name}.weight"],
                     state["model"][f"classifier.{name}.bias"])  # fmt: skip
        if name != "fc8":
            h = f.relu(h)
    with torch.no_grad():
        torch.testing.assert_close(model(x), h)
    assert state["train_config"]["lr_milestones"] == [30, 50, 60, 70, 80]


def test_fresh_run_refuses_an_existing_run_directory(uninterrupted):
    with pytest.raises(FileExistsError, match="--resume auto"):
        _run(uninterrupted)


def test_resume_refuses_a_changed_recipe(tmp_path):
    out = tmp_path / "run"
    _run(out, stop_after_steps=3)
    with pytest.raises(ValueError, match=r"lr: checkpoint 0\.01 vs now 0\.02"):
        _run(out, resume="auto", lr=0.02)


def test_resume_auto_in_an_empty_directory_starts_fresh(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = _run(tmp_path / "new", resume="auto", stop_after_steps=2)
    assert result == {"status": "stopped", "global_step": 2, "epoch": 0}


def test_run_killed_while_saving_the_epoch_end_checkpoint_resumes_with_one_epoch_record(
    tmp_path, monkeypatch
):
    """5 steps per epoch and a checkpoint every 5 steps: step 5's mid-epoch checkpoint is on
    disk before epoch 0's validation and its epoch record; a kill while the epoch-end checkpoint
    is written (its bytes never reach the file) resumes from that mid-epoch checkpoint, which
    redoes the validation: the log must hold epoch 0's record once, as the uninterrupted run's."""
    import overfeat.engine.train as train_module

    config = dict(epochs=2, checkpoint_every=5, keep_checkpoints=3)
    reference, out = tmp_path / "reference", tmp_path / "run"

    def run(where, resume=None):
        return train_classifier(
            tiny_config(where, **config),
            resume=resume,
            train_set=TinyImages(40, corrupt=CORRUPT),
            val_set=TinyImages(13, seed=1, corrupt=(5,)),
            collate_fn=collate_skip_corrupt,
        )

    run(reference)
    real_save = train_module.save_checkpoint_atomic

    def killed_at_epoch_end(state, path):
        if state["progress"] == {"epoch": 1, "step_in_epoch": 0, "global_step": 5}:
            raise KeyboardInterrupt("killed while writing the epoch-end checkpoint")
        return real_save(state, path)

    monkeypatch.setattr(train_module, "save_checkpoint_atomic", killed_at_epoch_end)
    with pytest.raises(KeyboardInterrupt):
        run(out)
    monkeypatch.setattr(train_module, "save_checkpoint_atomic", real_save)
    resumed_from = torch.load(list_checkpoints(out)[-1], weights_only=True)["progress"]
    assert resumed_from == {"epoch": 0, "step_in_epoch": 5, "global_step": 5}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(out, resume="auto")
    # No step runs before the epoch's end here; the schedule is the checkpoint's, nothing skipped.
    assert not [w for w in caught if "lr_scheduler" in str(w.message)]
    epochs = [r["epoch"] for r in _metrics(out) if r["kind"] == "epoch"]
    assert epochs == [0, 1]
    assert _metrics(reference) == _metrics(out)
    _assert_same_tensors(_final_state(reference)["model"], _final_state(out)["model"])


def test_a_diverged_run_stops_at_the_epoch_end_and_keeps_its_last_good_checkpoint(tmp_path):
    """A learning rate far too large sends the loss to NaN: the run stops with an error naming
    the run, the epoch and the fix, after logging the epoch and before checkpointing it."""
    from overfeat.engine.train import TrainingDiverged

    out = tmp_path / "run"
    config = tiny_config(out, epochs=3, lr=1e6, momentum=0.9, checkpoint_every=2)
    diverged = r"run: training diverged: the loss of epoch 1 is nan.*lower --lr"
    with pytest.raises(TrainingDiverged, match=diverged):
        train_classifier(config, train_set=TinyImages(40), val_set=None,
                         collate_fn=collate_skip_corrupt)  # fmt: skip
    from overfeat.engine.metrics_log import read_metrics

    epochs = [r for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "epoch"]
    assert len(epochs) == 1 and math.isnan(epochs[0]["train_loss"])
    # 5 steps per epoch: the mid-epoch checkpoints at steps 2 and 4 exist, the epoch end's not.
    assert [p.name for p in list_checkpoints(out)] == ["checkpoint-00000002.pt",
                                                       "checkpoint-00000004.pt"]  # fmt: skip
