"""The DALI training loader keeps the default loader's contract: the sampler's order and labels,
the crop geometry drawn from (seed, epoch, index), exact mid-epoch resume, and unreadable files
skipped and counted. Skips itself where DALI is not installed or cannot run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from overfeat.data import ClassificationDataset, collate_skip_corrupt, open_classification
from overfeat.data.dali import DaliTrainLoader, dali_unavailable
from overfeat.data.decode import DRAFT_SHORT_SIDE_FACTOR, CorruptImageWarning
from overfeat.data.synthetic import SyntheticConfig, write_synthetic
from overfeat.data.transforms import (
    FLIP_PROBABILITY,
    TrainTransform,
    sample_rng,
    shorter_side_size,
)
from overfeat.engine.sampler import ShardedTrainSampler

_REASON = dali_unavailable()
pytestmark = [
    pytest.mark.skipif(_REASON is not None, reason=_REASON or ""),
    pytest.mark.filterwarnings("ignore::overfeat.data.decode.CorruptImageWarning"),
]

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic") / "ilsvrc"
    write_synthetic(
        root, SyntheticConfig(seed=3, classes=3, train_per_class=4, val_per_class=1, det_images=0)
    )
    return root


def _unnormalised(images: torch.Tensor, transform: TrainTransform) -> torch.Tensor:
    """The default loader's float32 batch back on the 0-255 scale (exact up to float rounding)."""
    mean = torch.tensor(transform.normalization.mean).view(1, 3, 1, 1)
    std = torch.tensor(transform.normalization.std).view(1, 3, 1, 1)
    return (images * std + mean).round()


def _default_batches(dataset, sampler, epoch: int) -> list:
    sampler.set_epoch(epoch)
    dataset.set_epoch(epoch)
    loader = DataLoader(
        dataset, batch_size=sampler.local_batch, sampler=sampler, collate_fn=collate_skip_corrupt
    )
    return list(loader)


@pytest.mark.parametrize(("world", "rank"), [(1, 0), (2, 1)])
def test_same_batches_as_the_default_loader(synthetic_root, world, rank):
    """Labels in the sampler's order, and pixels within a fraction of a grey level of PIL's."""
    transform = TrainTransform(crop=48, resize=64)
    dataset = open_classification(synthetic_root, "train", transform=transform, seed=3)
    sampler = ShardedTrainSampler(len(dataset), batch_size=4, world_size=world, rank=rank, seed=3)
    loader = DaliTrainLoader(dataset, transform, sampler, CPU)
    loader.set_epoch(1)
    assert len(loader) == sampler.steps_per_epoch == 3
    ours = list(loader)
    default = _default_batches(dataset, sampler, epoch=1)
    assert len(ours) == len(default) == 3
    diffs = []
    for (images, labels, skipped), (ref, ref_labels, ref_skipped) in zip(ours, default):
        assert images.dtype == torch.uint8 and images.device == CPU
        assert images.shape == (4 // world, 3, 48, 48)
        assert labels.dtype == torch.int64 and torch.equal(labels, ref_labels)
        assert skipped == ref_skipped == 0
        diffs.append((images.float() - _unnormalised(ref, transform)).abs().mean(dim=(1, 2, 3)))
    diffs = torch.cat(diffs)
    # Most of these images are drafted by PIL (decoded at 1/2 scale) and not by DALI, so the
    # two resizes start from different pixels; measured: mean 0.54, worst image 1.91.
    assert diffs.mean() < 1.0 and diffs.max() < 3.0


def test_pixels_match_pil_where_pil_does_not_draft(synthetic_root):
    """At the paper's 256/221 no synthetic image is drafted (short sides < 4 x 256): both loaders
    resize the same decoded pixels, and differ only by the two resize filters' rounding."""
    transform = TrainTransform(crop=221, resize=256)
    dataset = open_classification(synthetic_root, "train", transform=transform, seed=3)
    sampler = ShardedTrainSampler(len(dataset), batch_size=4, seed=3)
    loader = DaliTrainLoader(dataset, transform, sampler, CPU)
    ours = torch.cat([b[0] for b in loader]).float()
    default = torch.cat([b[0] for b in _default_batches(dataset, sampler, epoch=0)])
    diff = (ours - _unnormalised(default, transform)).abs()
    # Measured: mean 0.16, and never more than 1 grey level.
    assert diff.max() <= 1 and diff.mean() < 0.3


# ------------------------------------------------------------------ geometry, read back

CROP, RESIZE, RAMP_LOW, RAMP_HIGH = 24, 32, 20.0, 220.0
# (width, height, format): landscape and portrait, not drafted, drafted at 1/2 (short side >=
# 4 x RESIZE) and at 1/4 (>= 8 x RESIZE), and a PNG (decoded by PIL, handed to DALI as a PPM).
RAMP_IMAGES = [
    (100, 60, "JPEG"),
    (60, 110, "JPEG"),
    (201, 150, "JPEG"),
    (130, 257, "JPEG"),
    (300, 263, "JPEG"),
    (77, 64, "JPEG"),
    (90, 70, "PNG"),
    (64, 95, "PNG"),
    (140, 131, "JPEG"),
]
BROKEN = {"garbage.JPEG": b"not an image at all" * 10, "empty.JPEG": b""}  # + a truncated JPEG


def _ramp(width: int, height: int) -> np.ndarray:
    """``(height, width, 3)`` uint8: R a horizontal ramp, G a vertical one, from RAMP_LOW at the
    first pixel to RAMP_HIGH at the last, so a pixel's value says where in the image it came from."""
    x = np.linspace(RAMP_LOW, RAMP_HIGH, width)
    y = np.linspace(RAMP_LOW, RAMP_HIGH, height)
    rgb = np.empty((height, width, 3))
    rgb[..., 0] = x[None, :]
    rgb[..., 1] = y[:, None]
    rgb[..., 2] = 128
    return np.rint(rgb).astype(np.uint8)


@pytest.fixture(scope="module")
def ramp_dataset(tmp_path_factory):
    folder: Path = tmp_path_factory.mktemp("ramps")
    samples = []
    for k, (w, h, fmt) in enumerate(RAMP_IMAGES):
        path = folder / f"ramp{k}.{fmt.lower()}"
        options = {"quality": 95, "subsampling": 0} if fmt == "JPEG" else {}
        Image.fromarray(_ramp(w, h)).save(path, format=fmt, **options)
        samples.append((str(path), k % 3))
    for name, data in BROKEN.items():
        (folder / name).write_bytes(data)
        samples.append((str(folder / name), 0))
    whole = (folder / "ramp0.jpeg").read_bytes()
    (folder / "truncated.JPEG").write_bytes(whole[: len(whole) // 2])  # PIL opens it, cannot load
    samples.append((str(folder / "truncated.JPEG"), 1))
    transform = TrainTransform(crop=CROP, resize=RESIZE)
    return ClassificationDataset(samples, ["a", "b", "c"], transform, seed=7)


def _drafted_size(width: int, height: int, fmt: str) -> tuple[int, int]:
    """(H, W) as the default loader decodes: JPEGs at 1/2, 1/4, 1/8 while the short side stays
    >= DRAFT_SHORT_SIDE_FACTOR x RESIZE (PIL's draft, computed here independently)."""
    if fmt != "JPEG":
        return height, width
    want, scale = DRAFT_SHORT_SIDE_FACTOR * RESIZE, 1
    while scale < 8 and min(-(-width // (2 * scale)), -(-height // (2 * scale))) >= want:
        scale *= 2
    return -(-height // scale), -(-width // scale)


def _read_back(channel: np.ndarray, full: int, resized: int) -> tuple[float, float, bool]:
    """From one ``(CROP, CROP)`` channel whose ramp runs along axis 1: ``(offset, scale, flip)``,
    the crop's first resized coordinate, resized pixels per output pixel, and whether it runs
    backwards. Each column's mean value gives the full-image coordinate it was resampled at."""
    values = channel.astype(np.float64).mean(axis=0)
    u = (values - RAMP_LOW) / (RAMP_HIGH - RAMP_LOW) * (full - 1)  # full-image pixel coordinate
    x = (u + 0.5) * resized / full - 0.5  # the same point in the resized image
    c = np.arange(CROP)
    # The antialiasing filter is clamped at the image's edges; keep columns clear of them.
    inner = (x > 2) & (x < resized - 3)
    slope, intercept = np.polyfit(c[inner], x[inner], 1)
    flip = slope < 0
    offset = intercept + slope * (CROP - 1) if flip else intercept
    return float(offset), float(abs(slope)), bool(flip)


def test_crop_position_and_flip_match_the_draws(ramp_dataset):
    """Each output's crop window and flip, read back from its pixels, are the ones drawn from
    sample_rng(seed, epoch, index) in the size the default loader decodes at."""
    sampler = ShardedTrainSampler(len(ramp_dataset), batch_size=4, seed=5)
    loader = DaliTrainLoader(ramp_dataset, ramp_dataset.transform, sampler, CPU, threads=1)
    flips, drafted_differs = set(), False
    for epoch in range(3):
        loader.set_epoch(epoch)
        order = [i for i in sampler]
        images = torch.cat([b[0] for b in loader]).numpy()
        readable = [i for i in order if i < len(RAMP_IMAGES)]
        assert len(images) == len(readable)
        for out, index in zip(images, readable):
            width, height, fmt = RAMP_IMAGES[index]
            H, W = _drafted_size(width, height, fmt)
            h, w = shorter_side_size(H, W, RESIZE)
            drafted_differs |= (h, w) != shorter_side_size(height, width, RESIZE)
            rng = sample_rng(ramp_dataset.seed, epoch, index)
            y0 = int(rng.integers(0, h - CROP + 1))
            x0 = int(rng.integers(0, w - CROP + 1))
            flip = bool(rng.random() < FLIP_PROBABILITY)
            got_x0, x_scale, got_flip = _read_back(out[0], width, w)
            got_y0, y_scale, y_flip = _read_back(out[1].T, height, h)
            where = f"epoch {epoch} image {index} {width}x{height}: drawn ({y0}, {x0}, {flip})"
            assert got_flip == flip and not y_flip, where
            assert abs(got_x0 - x0) < 0.3 and abs(got_y0 - y0) < 0.3, (where, got_y0, got_x0)
            assert abs(x_scale - 1) < 0.01 and abs(y_scale - 1) < 0.01, (where, x_scale, y_scale)
            flips.add(flip)
    assert flips == {False, True}
    assert drafted_differs  # the draft-sized (h, w) is not the full-size one somewhere: tested


def test_unreadable_files_are_skipped_and_counted(ramp_dataset):
    """Garbage, empty (PIL cannot open them) and truncated (PIL opens, cannot decode) files are
    dropped from their batches and counted, as by the default loader."""
    sampler = ShardedTrainSampler(len(ramp_dataset), batch_size=4, seed=5)
    loader = DaliTrainLoader(ramp_dataset, ramp_dataset.transform, sampler, CPU, threads=1)
    loader.set_epoch(0)
    with pytest.warns(CorruptImageWarning):
        ours = list(loader)
    default = _default_batches(ramp_dataset, sampler, epoch=0)
    assert [b[2] for b in ours] == [b[2] for b in default]
    assert sum(b[2] for b in ours) == loader.num_skipped == 3
    for (images, labels, skipped), (_, ref_labels, _) in zip(ours, default):
        assert torch.equal(labels, ref_labels)
        assert images.shape == (4 - skipped, 3, CROP, CROP)


def test_an_all_unreadable_batch_is_empty(tmp_path):
    samples = [(str(tmp_path / f"bad{k}.JPEG"), k % 2) for k in range(4)]
    for path, _ in samples:
        Path(path).write_bytes(b"")
    transform = TrainTransform(crop=CROP, resize=RESIZE)
    dataset = ClassificationDataset(samples, ["a", "b"], transform, seed=0)
    sampler = ShardedTrainSampler(4, batch_size=4)
    ((images, labels, skipped),) = list(DaliTrainLoader(dataset, transform, sampler, CPU))
    assert images.shape == (0, 3, CROP, CROP) and labels.shape == (0,) and skipped == 4


def test_a_batch_dali_rejects_is_decoded_by_pil(synthetic_root, monkeypatch):
    """A DALI error (a file PIL decodes but DALI does not) costs a warning, not the batch: its
    files are decoded by PIL and the batch comes out with the same crops."""
    transform = TrainTransform(crop=48, resize=64)
    dataset = open_classification(synthetic_root, "train", transform=transform, seed=3)
    sampler = ShardedTrainSampler(len(dataset), batch_size=4, seed=3)
    loader = DaliTrainLoader(dataset, transform, sampler, CPU)
    expected = list(loader)
    failing = loader._pipe
    real_run = failing.run

    def run_once_failing(**inputs):
        monkeypatch.setattr(failing, "run", real_run)
        raise RuntimeError("Critical error in pipeline: decoder failed")

    monkeypatch.setattr(failing, "run", run_once_failing)
    with pytest.warns(RuntimeWarning, match="decoding its 4 files with PIL"):
        got = list(loader)
    assert loader._pipe is not failing  # rebuilt after the error
    for (a, la, ka), (b, lb, kb) in zip(got, expected):
        assert torch.equal(la, lb) and ka == kb == 0
        # PIL's draft (1/2 scale) against DALI's full-size decode, as in the first test.
        assert (a.float() - b.float()).abs().mean() < 3.0
    assert not torch.equal(got[0][0], expected[0][0])  # the first batch did go through PIL
    assert all(torch.equal(a[0], b[0]) for a, b in zip(got[1:], expected[1:]))


def test_set_epoch_with_start_step_resumes_mid_epoch(synthetic_root):
    transform = TrainTransform(crop=48, resize=64)
    dataset = open_classification(synthetic_root, "train", transform=transform, seed=3)
    sampler = ShardedTrainSampler(len(dataset), batch_size=2, seed=3)
    loader = DaliTrainLoader(dataset, transform, sampler, CPU, prefetch=1)
    loader.set_epoch(2)
    whole = list(loader)
    assert len(whole) == 6
    # A new loader and sampler, as after a restart, started at step 4 of epoch 2.
    sampler = ShardedTrainSampler(len(dataset), batch_size=2, seed=3)
    resumed_loader = DaliTrainLoader(dataset, transform, sampler, CPU)
    resumed_loader.set_epoch(2, start_step=4)
    assert len(resumed_loader) == 2
    resumed = list(resumed_loader)
    assert len(resumed) == 2
    for (a, la, ka), (b, lb, kb) in zip(resumed, whole[4:]):
        assert torch.equal(a, b) and torch.equal(la, lb) and ka == kb
    # Another epoch draws other crops.
    resumed_loader.set_epoch(3, start_step=4)
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(resumed_loader, whole[4:]))


@pytest.mark.gpu
def test_gpu_decode_matches_the_cpu_one(synthetic_root):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    transform = TrainTransform(crop=48, resize=64)
    dataset = open_classification(synthetic_root, "train", transform=transform, seed=3)
    sampler = ShardedTrainSampler(len(dataset), batch_size=4, seed=3)
    cpu = list(DaliTrainLoader(dataset, transform, sampler, CPU))
    gpu = list(DaliTrainLoader(dataset, transform, sampler, torch.device("cuda")))
    for (a, la, ka), (b, lb, kb) in zip(cpu, gpu):
        assert b.is_cuda and b.dtype == torch.uint8 and b.shape == a.shape
        assert torch.equal(la, lb) and ka == kb
        # nvJPEG's IDCT is not libjpeg-turbo's: a grey level or so, not a different crop.
        assert (b.cpu().float() - a.float()).abs().mean() < 2.0
