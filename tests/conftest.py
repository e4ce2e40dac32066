"""Shared fixtures: where ../shared/data is, and the ``gpu`` marker's self-skip."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("OVERFEAT_SHARED_DATA", ROOT.parent / "shared" / "data"))


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs CUDA; none on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def _shared(sub: str) -> Path:
    path = SHARED_DATA / sub
    if not path.exists():
        pytest.skip(f"{path} is absent (shared data is read in place, never committed)")
    return path


@pytest.fixture(scope="session")
def devkit_dir() -> Path:
    """../shared/data/ilsvrc-devkit: the official devkits' ground truth, meta and blacklists."""
    return _shared("ilsvrc-devkit")


@pytest.fixture(scope="session")
def det_val_mini() -> Path:
    """../shared/data/ilsvrc-det-val-mini: 180 real DET val2 photos with their annotations."""
    return _shared("ilsvrc-det-val-mini")


@pytest.fixture(scope="session")
def val_mini_dir() -> Path:
    """../shared/data/ilsvrc2012-val-mini: 1,300 real validation images in the Kaggle layout."""
    return _shared("ilsvrc2012-val-mini")
