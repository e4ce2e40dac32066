"""The engine contract: train-transform randomness is a function of (seed, epoch, index) only, so
loaders with any number of workers, and a resumed run, give bit-identical batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from overfeat.data import collate_skip_corrupt, open_classification
from overfeat.data.synthetic import SyntheticConfig, write_synthetic
from overfeat.data.transforms import TrainTransform

# The synthetic set below holds damaged files on purpose; their warnings are tested elsewhere.
pytestmark = pytest.mark.filterwarnings("ignore::overfeat.data.decode.CorruptImageWarning")


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic") / "ilsvrc"
    config = SyntheticConfig(
        seed=11, classes=3, train_per_class=4, val_per_class=2, det_images=0, corrupt=2
    )
    write_synthetic(root, config)
    return root


def _epoch_batches(dataset, epoch: int, workers: int) -> list:
    dataset.set_epoch(epoch)
    loader = DataLoader(dataset, batch_size=5, num_workers=workers, collate_fn=collate_skip_corrupt)
    return list(loader)


def _same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) and x[2] == y[2] for x, y in zip(a, b)
    )


def test_batches_are_identical_for_0_and_2_workers_and_after_a_resume(synthetic_root):
    small = TrainTransform(crop=48, resize=64)  # the §3.1 transform at toy size
    ds = open_classification(synthetic_root, "train", transform=small, seed=3)
    torch.manual_seed(0)
    np.random.seed(0)
    serial = _epoch_batches(ds, epoch=1, workers=0)
    torch.manual_seed(12345)  # global RNG state must not matter
    np.random.seed(54321)
    parallel = _epoch_batches(ds, epoch=1, workers=2)
    assert _same(serial, parallel)
    # A fresh dataset (a resumed run) that never saw epoch 0 gives the same epoch-1 batches.
    resumed = open_classification(synthetic_root, "train", transform=small, seed=3)
    assert _same(serial, _epoch_batches(resumed, epoch=1, workers=0))
    # The two damaged-beyond-decoding files (corrupt=2: truncated, garbage) are skipped and counted.
    assert sum(b[2] for b in serial) == 2


def test_epoch_and_seed_change_the_random_crops(synthetic_root):
    small = TrainTransform(crop=48, resize=64)
    ds = open_classification(synthetic_root, "train", transform=small, seed=3)
    epoch1 = _epoch_batches(ds, epoch=1, workers=0)
    assert not _same(epoch1, _epoch_batches(ds, epoch=2, workers=0))
    other = open_classification(synthetic_root, "train", transform=small, seed=4)
    assert not _same(epoch1, _epoch_batches(other, epoch=1, workers=0))
    # (epoch, index) keys give what set_epoch + index gives: the persistent-workers route.
    ds.set_epoch(1)
    good = next(i for i in range(len(ds)) if ds[i] is not None)
    at_epoch1 = ds[good][0]
    ds.set_epoch(7)
    assert torch.equal(ds[(1, good)][0], at_epoch1)
    assert not torch.equal(ds[good][0], at_epoch1)


def test_foreign_transform_is_seeded_per_sample_and_leaves_global_rng_alone(synthetic_root):
    from torchvision import transforms as T

    foreign = T.Compose([T.RandomResizedCrop(40), T.PILToTensor()])
    ds = open_classification(synthetic_root, "train", transform=foreign, seed=5)
    i = next(i for i in range(len(ds)) if ds[i] is not None)
    torch.manual_seed(1)
    first = ds[i][0]
    after = torch.rand(3)
    torch.manual_seed(1)
    assert torch.equal(torch.rand(3), after)  # ds[i] consumed nothing from the global RNG
    torch.manual_seed(2)
    assert torch.equal(ds[i][0], first)


def test_default_transforms_give_fast_sized_crops_and_val_labels(synthetic_root):
    train = open_classification(synthetic_root, "train")
    val = open_classification(synthetic_root, "val")
    item = next(x for x in (train[i] for i in range(len(train))) if x is not None)
    assert item[0].shape == (3, 231, 231) and item[0].dtype == torch.float32
    assert val[0][0].shape == (3, 231, 231)
    assert train.classes == val.classes and len(train.classes) == 3
    assert sorted({label for _, label in val.samples}) == [0, 1, 2]


def test_loading_reads_compact_arrays_not_the_python_sample_list(synthetic_root):
    """Workers must not touch 1.28 M Python objects (copy-on-write would copy them per worker)."""
    ds = open_classification(synthetic_root, "val", seed=0)
    expected = [(label, ds[i][0]) for i, (_, label) in enumerate(ds.samples)]

    class Untouchable(list):
        def __getitem__(self, i):
            raise AssertionError("the sample list was read while loading")

    ds._samples = Untouchable(ds._samples)
    for i, (label, image) in enumerate(expected):
        got = ds[i]
        assert got[1] == label and torch.equal(got[0], image)
    ds.samples = list(ds._samples)[:2]  # assigning a new list is seen
    assert len(ds) == 2
