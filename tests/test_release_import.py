"""``overfeat import-release``: a released network written as a classifier run.

The weight files are toy-width networks in the release's exact format, written by the
independent writer of tests/test_release.py; the importer is told to expect the toy width, as
the other release tests tell it.
"""

from __future__ import annotations

import pytest
import torch
from test_release import SMALL, small_layouts, write_release_file

from overfeat.cli import main
from overfeat.data.class_order import ilsvrc2012_labels
from overfeat.engine.checkpoint import list_checkpoints, load_checkpoint
from overfeat.network_sources import checked_run
from overfeat.release import ReleaseNormalize, load_release, release_to_sorted
from overfeat.release import weights as weights_mod


@pytest.fixture
def toy_release(tmp_path, monkeypatch):
    monkeypatch.setattr(weights_mod, "release_layouts", small_layouts)
    folder = tmp_path / "weights"
    folder.mkdir()
    write_release_file(folder / "net_weight_0", "fast", SMALL, seed=3)
    return folder


def test_import_release_writes_a_classifier_run_with_the_release_activation(toy_release, tmp_path):
    run = tmp_path / "run"
    assert main(["import-release", str(toy_release), "--arch", "fast", "--out", str(run)]) == 0
    (path,) = list_checkpoints(run)
    state = load_checkpoint(path)
    assert state["model_config"] == {"arch": "fast", "num_classes": 1000, "width": SMALL,
                                     "activation": "release"}  # fmt: skip
    assert state["release"]["arch"] == "fast" and len(state["release"]["sha256"]) == 64
    # Loadable by everything that takes a classifier run, and finished.
    ref = checked_run(run, "fast", 1000, "--classifier")
    assert "unfinished" not in ref.label
    # A second import into the same run is refused, never overwritten.
    assert main(["import-release", str(toy_release), "--out", str(run)]) == 2


def test_imported_run_dense_scores_equal_the_release_net_in_sorted_wnid_order(toy_release, tmp_path):
    run = tmp_path / "run"
    assert main(["import-release", str(toy_release), "--out", str(run)]) == 0
    model = checked_run(run, "fast", 1000, "--classifier").load()
    net = load_release(toy_release)
    torch.manual_seed(0)
    images = torch.rand(2, 3, 263, 295) * 255  # a 2×3 output map: dense scores, not one window
    with torch.no_grad():
        got = model(ReleaseNormalize()(images))
    want = net.class_scores(images)[:, torch.from_numpy(release_to_sorted(ilsvrc2012_labels()))]
    assert got.shape == want.shape and got.shape[-2:] == (2, 3)
    # The same float32 weights (copied, rows permuted) and the same operations: any difference is
    # the summation order a convolution kernel may pick, a few ulps of the scores.
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_imported_run_is_what_train_regressor_starts_from(toy_release, tmp_path):
    from overfeat.engine.spatial import classifier_checkpoint

    run = tmp_path / "run"
    assert main(["import-release", str(toy_release), "--out", str(run)]) == 0
    folder, name, state = classifier_checkpoint(run)
    assert (folder, name) == (run.resolve(), "checkpoint-00000000.pt")
    assert state["model_config"]["activation"] == "release"
