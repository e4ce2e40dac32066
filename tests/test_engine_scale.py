"""Training at ImageNet scale: uint8 batches normalised on the device, the learning-rate warm-up,
``--deterministic``, the sample index listed once per run, and the bf16 gradient all-reduce.

Each fact is checked against an independent computation: the float transforms the uint8 path
replaces, Goyal et al.'s warm-up worked by hand, the flags torch reports, a counting lister.
"""

from __future__ import annotations

import io
import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from PIL import Image
from test_engine_support import TinyImages, tiny_config

import overfeat.data.readers
import overfeat.engine.config
from overfeat.data import ClassificationDataset, collate_skip_corrupt, decode_rgb, train_transform
from overfeat.data.decode import decode_uint8
from overfeat.data.synthetic import SyntheticConfig, write_synthetic
from overfeat.data.transforms import NORMALIZATIONS, eval_transform, normalize_uint8
from overfeat.engine.checkpoint import list_checkpoints
from overfeat.engine.config import TrainConfig, recipe, warmup_factor
from overfeat.engine.distributed import DistEnv
from overfeat.engine.index import index_path, sample_index
from overfeat.engine.train import determinism, train_classifier

GREY_LEVEL = 1 / NORMALIZATIONS["release"].std[0]  # one 0-255 step after normalisation


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("scale") / "ilsvrc"
    write_synthetic(root, SyntheticConfig(seed=5, classes=3, train_per_class=6, val_per_class=2,
                                          det_images=0))  # fmt: skip
    return root


def _records(out: Path, kind: str) -> list[dict]:
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["kind"] == kind]


# ----------------------------------------------------------------------------- uint8 batches


def test_uint8_crops_normalised_on_the_device_equal_the_float_transform(synthetic_root):
    samples, classes, _ = overfeat.data.readers.classification_samples(synthetic_root, "train")
    as_float = ClassificationDataset(samples, classes, train_transform("fast"), seed=4)
    as_uint8 = ClassificationDataset(samples, classes, train_transform("fast", output="uint8"),
                                     seed=4)  # fmt: skip
    norm = NORMALIZATIONS["release"]
    for i in range(len(samples)):
        (a, la), (b, lb) = as_float[(2, i)], as_uint8[(2, i)]
        assert la == lb and b.dtype == torch.uint8 and b.shape == a.shape == (3, 231, 231)
        diff = (normalize_uint8(b, norm) - a).abs()
        # The same crop and flip (the same draws); the resize filters differ by at most one grey
        # level on a few pixels (torch's uint8 antialias kernel against PIL's).
        assert diff.max() <= GREY_LEVEL * 1.0001, samples[i][0]
        assert diff.mean() <= GREY_LEVEL * 0.05
    # A quarter of the bytes cross from the workers: 160 KB instead of 640 KB per image.
    assert b.numel() * b.element_size() * 4 == a.numel() * a.element_size() == 3 * 231 * 231 * 4


def test_uint8_path_is_the_float_path_exactly_when_no_resize_is_needed(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (256, 300, 3), dtype=np.uint8)
    path = tmp_path / "n00000001_1.png"  # lossless: both decoders return these pixels
    Image.fromarray(pixels).save(path)
    image = torch.from_numpy(pixels).permute(2, 0, 1)
    assert torch.equal(decode_uint8(path), image)
    norm = NORMALIZATIONS["release"]
    want = eval_transform("fast")(decode_rgb(path))
    got = normalize_uint8(eval_transform("fast", output="uint8")(decode_uint8(path)), norm)
    assert torch.equal(got, want)  # the same arithmetic: the same bits on the CPU


def test_fast_jpeg_decode_gives_the_pixels_pil_gives_and_leaves_the_rest_to_pil(tmp_path):
    rng = np.random.default_rng(1)
    photo = Image.fromarray(rng.integers(0, 256, (300, 420, 3), dtype=np.uint8))
    plain, grey, cmyk = tmp_path / "a.JPEG", tmp_path / "g.JPEG", tmp_path / "c.JPEG"
    photo.save(plain, quality=90)
    photo.convert("L").save(grey, quality=90)
    photo.convert("CMYK").save(cmyk, quality=90)
    for path in (plain, grey, cmyk):
        want = torch.from_numpy(np.asarray(decode_rgb(path)).copy()).permute(2, 0, 1)
        assert torch.equal(decode_uint8(path), want), path.name
    truncated = tmp_path / "t.JPEG"
    truncated.write_bytes(plain.read_bytes()[:2000])
    with pytest.raises(Exception, match="truncated"):  # PIL's verdict, as before: CorruptImage
        decode_uint8(truncated)
    buf = io.BytesIO()
    photo.save(buf, "JPEG")
    empty = tmp_path / "e.JPEG"
    empty.write_bytes(b"")
    with pytest.raises(Exception, match="empty file"):
        decode_uint8(empty)


# ----------------------------------------------------------------------------- warm-up


def test_warmup_factor_on_hand_worked_cases():
    # Batch 1024 is k = 8 times §3.1's 128: step 0 runs at 1/8 of the scaled rate (the rate of
    # batch 128), and the factor climbs linearly to 1 at the end of the warm-up.
    assert warmup_factor(0, 100, 1024) == 1 / 8
    assert warmup_factor(50, 100, 1024) == pytest.approx(1 / 8 + 7 / 8 * 50 / 100)
    assert warmup_factor(99, 100, 1024) == pytest.approx(1 / 8 + 7 / 8 * 99 / 100)
    assert warmup_factor(100, 100, 1024) == 1.0
    assert warmup_factor(5, 100, 128) == 1.0  # the paper's batch needs none
    assert warmup_factor(5, 0, 1024) == 1.0


def test_warmup_defaults_to_five_epochs_above_batch_128_only():
    big = recipe("paper", batch_size=1024)
    assert big.lr == pytest.approx(0.4) and big.warmup == 5.0  # Goyal et al.'s 5 epochs
    assert recipe("paper").warmup == 0.0 and recipe("toy").warmup == 0.0
    assert recipe("paper", batch_size=1024, warmup_epochs=2).warmup == 2.0
    assert recipe("paper", batch_size=1024, warmup_epochs=0).warmup == 0.0
    with pytest.raises(ValueError, match="warmup_epochs"):
        TrainConfig(warmup_epochs=-1)


@pytest.mark.slow
def test_training_runs_the_warmed_up_rate_at_every_step_and_resumes_exactly(tmp_path, monkeypatch):
    # With the reference batch set to 2, the tiny batch of 8 is k = 4: the mechanism of batch
    # 512 against 128 at a size this machine trains in seconds.
    monkeypatch.setattr(overfeat.engine.config, "WARMUP_REFERENCE_BATCH", 2)
    config = tiny_config(tmp_path / "run", lr=0.1, warmup_epochs=1, epochs=2)
    train, val = TinyImages(40), TinyImages(8, seed=1)
    train_classifier(config, train_set=train, val_set=val, collate_fn=collate_skip_corrupt)
    steps = _records(tmp_path / "run", "train")
    # 40 images, batch 8: 5 steps per epoch, so 5 warm-up steps; step s (0-based) logs the rate
    # it ran at, 0.1 × (1/4 + 3/4 · s/5), then 0.1.
    want = [0.1 * (0.25 + 0.75 * s / 5) if s < 5 else 0.1 for s in range(10)]
    assert [r["lr"] for r in steps] == pytest.approx(want)
    assert [r["lr"] for r in _records(tmp_path / "run", "epoch")] == pytest.approx([0.1, 0.1])
    # Stopped inside the warm-up and resumed, the run retraces the uninterrupted one.
    resumed = tmp_path / "resumed"
    stop = tiny_config(resumed, lr=0.1, warmup_epochs=1, epochs=2, stop_after_steps=3,
                       checkpoint_every=3)  # fmt: skip
    train_classifier(stop, train_set=train, val_set=val, collate_fn=collate_skip_corrupt)
    train_classifier(tiny_config(resumed, lr=0.1, warmup_epochs=1, epochs=2), resume="auto",
                     train_set=train, val_set=val, collate_fn=collate_skip_corrupt)  # fmt: skip
    a = torch.load(list_checkpoints(tmp_path / "run")[-1], weights_only=True)["model"]
    b = torch.load(list_checkpoints(resumed)[-1], weights_only=True)["model"]
    for name, w in a.items():
        assert torch.equal(b[name], w), name


# ----------------------------------------------------------------------------- determinism


def test_deterministic_sets_what_it_claims_and_restores_it():
    cudnn = torch.backends.cudnn
    before = (cudnn.deterministic, cudnn.benchmark, torch.are_deterministic_algorithms_enabled(),
              os.environ.get("CUBLAS_WORKSPACE_CONFIG"))  # fmt: skip
    with determinism(True, torch.device("cpu")):
        assert cudnn.deterministic and not cudnn.benchmark
        assert torch.are_deterministic_algorithms_enabled()
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"  # cuBLAS's reproducible mode
    after = (cudnn.deterministic, cudnn.benchmark, torch.are_deterministic_algorithms_enabled(),
             os.environ.get("CUBLAS_WORKSPACE_CONFIG"))  # fmt: skip
    assert after == before
    with determinism(False, torch.device("cuda")):  # only flags: no CUDA call is made
        assert cudnn.benchmark and not torch.are_deterministic_algorithms_enabled()
    assert cudnn.benchmark == before[1]


def test_deterministic_flag_reaches_the_config_from_the_command_line():
    from overfeat.engine.cli import build_config

    parser_args = ["train", "classifier", "--data", "D", "--deterministic", "--warmup-epochs", "2",
                   "--allreduce", "bf16", "--loader", "dali"]  # fmt: skip
    from overfeat.cli import build_parser

    config = build_config(build_parser().parse_args(parser_args))
    assert (config.deterministic, config.warmup_epochs, config.allreduce, config.loader) == (
        True, 2.0, "bf16", "dali")  # fmt: skip


# ----------------------------------------------------------------------------- sample index


@pytest.mark.slow
def test_the_sample_index_is_listed_once_per_run_resume_included(synthetic_root, tmp_path,
                                                                 monkeypatch):  # fmt: skip
    calls: list[str] = []
    original = overfeat.data.readers.classification_samples

    def counting(root, split):
        calls.append(split)
        return original(root, split)

    monkeypatch.setattr(overfeat.data.readers, "classification_samples", counting)
    out = tmp_path / "run"
    kw = dict(data=str(synthetic_root), workers=0, batch_size=6, epochs=2, log_every=0)
    train_classifier(tiny_config(out, stop_after_steps=2, checkpoint_every=2, **kw))
    train_classifier(tiny_config(out, **kw), resume="auto")
    assert sorted(calls) == ["train", "val"]  # one listing of each split for the whole run
    samples, classes = sample_index(synthetic_root, "train", out, DistEnv(0, 1, 0, torch.device("cpu")))
    want, want_classes, _ = original(synthetic_root, "train")
    assert samples == want and classes == want_classes
    # Paths are stored relative to --data, so a moved data set resumes.
    assert all(not os.path.isabs(os.fsdecode(p)) for p in np.load(index_path(out, "train"))["paths"])


def test_processes_other_than_the_first_read_the_index_and_never_list(tmp_path):
    env0, env1 = DistEnv(0, 1, 0, torch.device("cpu")), DistEnv(1, 1, 1, torch.device("cpu"))
    root = tmp_path / "data"
    listed = []

    def lister(r, split):
        listed.append(split)
        return [(str(root / "a" / "x.JPEG"), 1), (str(root / "b" / "y.JPEG"), 0)], ["n1", "n2"], None

    with pytest.raises(FileNotFoundError, match="wrote no sample index"):
        sample_index(root, "train", tmp_path / "run", env1, lister)  # nothing written yet
    assert sample_index(root, "train", tmp_path / "run", env0, lister)[1] == ["n1", "n2"]
    samples, _ = sample_index(tmp_path / "moved", "train", tmp_path / "run", env1, lister)
    assert listed == ["train"]
    assert samples == [(str(tmp_path / "moved" / "a" / "x.JPEG"), 1),
                       (str(tmp_path / "moved" / "b" / "y.JPEG"), 0)]  # fmt: skip


# ----------------------------------------------------------------------------- bf16 all-reduce


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, out: str, allreduce: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE="2")  # fmt: skip
    torch.set_num_threads(1)
    config = tiny_config(Path(out), epochs=1, dropout=0.0, lr=2e-2, allreduce=allreduce)
    train_classifier(config, train_set=TinyImages(40), val_set=TinyImages(8, seed=1),
                     collate_fn=collate_skip_corrupt)  # fmt: skip


@pytest.mark.slow
def test_bf16_allreduce_rounds_the_gradients_and_still_trains(tmp_path):
    runs = {}
    for mode in ("fp32", "bf16"):
        mp.spawn(_worker, args=(_free_port(), str(tmp_path / mode), mode), nprocs=2, join=True)
        runs[mode] = torch.load(list_checkpoints(tmp_path / mode)[-1], weights_only=True)["model"]
    name = "features.conv1.weight"
    a, b = runs["fp32"][name], runs["bf16"][name]
    assert not torch.equal(a, b)  # the hook ran: averaged gradients were rounded to bf16
    # ... by bf16's precision (2^-8 relative) per step, five steps: the weights stay close.
    torch.testing.assert_close(b, a, rtol=0, atol=1e-2 * float(a.abs().max()))


def test_bf16_allreduce_in_one_process_says_it_does_nothing(tmp_path):
    config = tiny_config(tmp_path / "run", epochs=1, allreduce="bf16")
    with pytest.warns(UserWarning, match="no effect in a one-process run"):
        train_classifier(config, train_set=TinyImages(16), val_set=None,
                         collate_fn=collate_skip_corrupt)  # fmt: skip


# ----------------------------------------------------------------------------- --loader dali


@pytest.mark.slow
def test_loader_dali_trains_the_same_steps_or_says_why_it_cannot(synthetic_root, tmp_path,
                                                                 monkeypatch):  # fmt: skip
    import overfeat.data.dali as dali

    kw = dict(data=str(synthetic_root), workers=1, batch_size=6, epochs=1, log_every=1)
    pil = train_classifier(tiny_config(tmp_path / "pil", **kw))
    if dali.dali_unavailable() is None:
        with_dali = train_classifier(tiny_config(tmp_path / "dali", loader="dali", **kw))
        # The same images in the same steps (labels and sampler are shared); the pixels differ
        # by DALI's resize filter, so the losses agree only roughly.
        assert with_dali["train_images"] == pil["train_images"]
        assert with_dali["train_loss"] == pytest.approx(pil["train_loss"], rel=0.05)
    monkeypatch.setattr(dali, "dali_unavailable", lambda: "nvidia.dali is not installed")
    with pytest.warns(UserWarning, match="--loader dali: nvidia.dali is not installed; the "
                                         "default loader runs"):  # fmt: skip
        fallback = train_classifier(tiny_config(tmp_path / "fallback", loader="dali", **kw))
    assert fallback["train_loss"] == pil["train_loss"]  # exactly the default loader's run
