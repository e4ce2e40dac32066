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


# ------------------------------------------------------------------ import → regressor → localize
def _ilsvrc2012_toy_set(root, det_images: int = 0):
    """A synthetic CLS-LOC set whose two classes carry real ILSVRC2012 WNIDs (tench, kit fox) and
    whose class list is the 1000 ILSVRC2012 classes, the classes the released networks know."""
    import os

    from overfeat.data.synthetic import SyntheticConfig, write_synthetic

    write_synthetic(root, SyntheticConfig(seed=5, classes=2, train_per_class=3, val_per_class=1,
                                          det_images=det_images, class_colours=True))  # fmt: skip
    fake = sorted(line.split()[0] for line in (root / "LOC_synset_mapping.txt").read_text().splitlines())
    real = ["n01440764", "n02119789"]  # sorted, as the fake ones are
    for path in sorted(root.rglob("*"), key=lambda p: -len(p.parts)):
        if path.is_file() and path.suffix in (".csv", ".txt", ".xml", ".json"):
            text = path.read_text()
            for f, r in zip(fake, real):
                text = text.replace(f, r)
            path.write_text(text)
        name = path.name
        for f, r in zip(fake, real):
            name = name.replace(f, r)
        if name != path.name:
            os.rename(path, path.with_name(name))
    labels = ilsvrc2012_labels()
    (root / "LOC_synset_mapping.txt").write_text(
        "".join(f"{w} {words}\n" for w, words in zip(labels.wnids, labels.words))
    )
    return root


def test_import_then_regressor_then_localize_on_the_released_network(toy_release, tmp_path, capsys):
    from train_spatial_support import save_toy_classifier

    data = _ilsvrc2012_toy_set(tmp_path / "ilsvrc")
    run, scr = tmp_path / "release-fast", tmp_path / "scr"
    assert main(["import-release", str(toy_release), "--arch", "fast", "--out", str(run)]) == 0
    assert main(["train", "regressor", "--classifier", str(run), "--data", str(data), "--out",
                 str(scr), "--type", "scr", "--recipe", "toy", "--batch-size", "2", "--workers",
                 "0", "--epochs", "1", "--scales", "1", "--no-progress", "--device", "cpu"]) == 0  # fmt: skip
    out = tmp_path / "loc.txt"
    localize = ["localize", "--release-weights", str(toy_release), "--arch", "fast", "--data",
                str(data), "--scales", "1", "--workers", "0", "--no-progress"]  # fmt: skip
    assert main([*localize, "--regressor", str(scr), "--out", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 2  # one line per validation image
    capsys.readouterr()

    # A regressor trained on other layers 1–5 (a fresh network of the same shape) is refused by
    # localize with the released network, naming the regressor run, the classifier and the fix.
    other, other_scr = tmp_path / "other", tmp_path / "other-scr"
    save_toy_classifier(other, num_classes=1000, width=SMALL)
    assert main(["train", "regressor", "--classifier", str(other), "--data", str(data), "--out",
                 str(other_scr), "--type", "scr", "--recipe", "toy", "--batch-size", "2",
                 "--workers", "0", "--epochs", "1", "--scales", "1", "--max-train-samples", "2",
                 "--no-progress", "--device", "cpu"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main([*localize, "--regressor", str(other_scr), "--out", str(tmp_path / "x.txt")]) != 0
    err = capsys.readouterr().err
    assert f"regressor run {other_scr} was trained on the layers 1–5 of {other.resolve()}" in err
    assert "released fast network" in err and "overfeat import-release" in err
    assert not (tmp_path / "x.txt").exists()


def test_figure9_from_release_weights_imports_once_and_trains_the_regressors_on_it(
    toy_release, tmp_path
):
    import pandas as pd

    data = _ilsvrc2012_toy_set(tmp_path / "ilsvrc")
    argv = ["reproduce", "figure9", "--data", str(data), "--release-weights", str(toy_release),
            "--regressor-args", "--recipe toy --epochs 1 --scales 1 --batch-size 2 --workers 0 "
            "--device cpu --no-progress", "--rows", "F9-4,WINDOW-1", "--name", "run",
            "--cache", str(tmp_path / "cache"), "--reports", str(tmp_path / "reports"),
            "--workers", "0", "--device", "cpu", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    table = pd.read_csv(tmp_path / "reports" / "figure9" / "run.csv").set_index("row")
    assert table.at["F9-4", "images"] == 2 and not pd.isna(table.at["F9-4", "top5_loc_error"])
    (imported,) = (tmp_path / "cache" / "release").iterdir()
    state = load_checkpoint(list_checkpoints(imported)[0])
    for kind in ("scr", "pcr"):
        (reg,) = (tmp_path / "cache" / "train" / "ilsvrc").glob(f"regressor-{kind}-*")
        (ckpt,) = list_checkpoints(reg)[-1:]
        assert torch.load(ckpt, weights_only=True)["classifier_run"] == str(imported.resolve())
    assert state["release"]["arch"] == "fast"
    # A second run imports nothing again: the run is keyed by the weight file's content.
    stamp = list_checkpoints(imported)[0].stat().st_mtime_ns
    assert main(argv) == 0
    assert list_checkpoints(imported)[0].stat().st_mtime_ns == stamp


# 998 of the 1000 classes have no DET box here: their AP is undefined, as the harness warns.
@pytest.mark.filterwarnings("ignore:.*have no ground-truth boxes")
def test_detection_from_release_weights_fine_tunes_the_detector_from_the_imported_run(
    toy_release, tmp_path
):
    import pandas as pd

    data = _ilsvrc2012_toy_set(tmp_path / "ilsvrc", det_images=3)
    small = "--recipe toy --epochs 1 --batch-size 2 --workers 0 --device cpu --no-progress"
    argv = ["reproduce", "detection", "--data", str(data), "--release-weights", str(toy_release),
            "--detector-args", small + " --scales 1", "--regressor-args", small + " --scales 1",
            "--name", "run", "--cache", str(tmp_path / "cache"), "--reports",
            str(tmp_path / "reports"), "--workers", "0", "--device", "cpu", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert (tmp_path / "reports" / "detection" / "run.csv").is_file()
    (imported,) = (tmp_path / "cache" / "release").iterdir()
    (det,) = (tmp_path / "cache" / "train" / "ilsvrc").glob("detector-*")
    state = load_checkpoint(list_checkpoints(det)[-1])
    assert state["detector"]["classifier_run"] == str(imported.resolve())
    assert state["model_config"]["num_classes"] == 1001  # the 1000 classes and the background
    assert pd.read_csv(tmp_path / "reports" / "detection" / "run.csv").shape[0] > 0
