"""The README's release recipe (``reproduce table2 --release-weights``) on ImageNet as users lay it
out: a classic folder with ``val/`` flat and the devkit unpacked elsewhere, ``val/<wnid>/``
folders, and real validation photos labelled by the ground truth beside ``--meta``.

The weight files are toy-width networks written here in the release's exact format (the writer of
tests/test_release.py, shapes from the paper's tables): every weight 0 and the last bias +10 for
one ILSVRC2012_ID, -10 for the others, so every image is classified as that class, and the top-1
error is the share of images of another class, counted here from the labels the test wrote (or
from the val-mini's own LOC_val_solution.csv). It comes out right only if the images' labels and
the networks' outputs are both put in the same 1000-class order.
"""

from __future__ import annotations

import math
import os
import re
import shlex

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT
from PIL import Image
from test_release import SMALL, release_file_shapes

from overfeat.cli import main
from overfeat.release import release_layout
from overfeat.release import weights as weights_mod

# overfeat-release.md §1.4 spot checks: ILSVRC2012_ID → WNID, and the sorted-WNID index of tench.
TENCH, KIT_FOX, DUMBBELL = 449, 1, 1000
WNID = {TENCH: "n01440764", KIT_FOX: "n02119789", DUMBBELL: "n03255030"}
TENCH_SORTED_INDEX = 0


@pytest.fixture
def toy_release(tmp_path, monkeypatch):
    """``write(target_id)`` → a folder with a toy fast ``net_weight_0`` that classifies every
    image as ``target_id``; the importer is told to expect the toy width."""
    monkeypatch.setattr(weights_mod, "release_layouts",
                        lambda: {a: release_layout(a, SMALL) for a in ("fast", "accurate")})  # fmt: skip

    def write(target_id: int):
        shapes = release_file_shapes("fast", SMALL)
        total = sum(math.prod(shape) for _, shape in shapes)
        last_bias = total - math.prod(shapes[-1][1])
        folder = tmp_path / "overfeat-weights"
        folder.mkdir()
        bias = np.full(1000, -10.0, dtype="<f4")
        bias[target_id - 1] = 10.0
        with open(folder / "net_weight_0", "wb") as f:
            f.truncate(4 * total)  # every float 0
            f.seek(4 * last_bias)
            f.write(bias.tobytes())
        return folder

    return write


def _jpeg(path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 48), (value, 90, 30)).save(path, format="JPEG")


def _readme_release_recipe() -> list[str]:
    """The README's one-command release recipe: the ``nox -s reproduce_table2`` line (with its
    continuation) that passes ``--release-weights`` and ``--devkit``; its flags after ``--``."""
    text = (ROOT / "README.md").read_text(encoding="utf-8").replace("\\\n", " ")
    for line in text.splitlines():
        if line.startswith("nox -s reproduce_table2 --") and "--release-weights" in line \
                and "--devkit" in line:  # fmt: skip
            args = shlex.split(line.split("#")[0])
            return args[args.index("--") + 1 :]
    raise AssertionError("README.md: no release recipe with --release-weights and --devkit")


def _run_table2(args: list[str], tmp_path) -> pd.DataFrame:
    reports = tmp_path / "reports"
    code = main(["reproduce", "table2", *map(str, args), "--rows", "T2-2", "--name", "run",
                 "--cache", str(tmp_path / "cache"), "--reports", str(reports), "--no-progress"])  # fmt: skip
    assert code == 0
    return pd.read_csv(reports / "table2" / "run.csv").set_index("row")


def _predicted_first_guesses(tmp_path) -> list[int]:
    pred = tmp_path / "cache" / "table2" / "run" / "predictions" / "T2-2.txt"
    return [int(line.split()[0]) for line in pred.read_text().splitlines()]


def test_readme_release_recipe_runs_on_a_classic_layout_with_the_devkit_elsewhere(
    toy_release, tmp_path
):
    ids = [TENCH, KIT_FOX, TENCH, DUMBBELL, KIT_FOX]  # line n: image ILSVRC2012_val_0000000n
    data = tmp_path / "imagenet"
    for n in range(1, len(ids) + 1):
        _jpeg(data / "val" / f"ILSVRC2012_val_{n:08d}.JPEG", 40 * n)
    devkit = tmp_path / "downloads" / "ILSVRC2012_devkit_t12"
    (devkit / "data").mkdir(parents=True)
    (devkit / "data" / "ILSVRC2012_validation_ground_truth.txt").write_text(
        "".join(f"{i}\n" for i in [*ids, KIT_FOX])  # the real file runs past the images here
    )
    weights = toy_release(TENCH)

    recipe = _readme_release_recipe()
    assert "--meta" not in recipe  # the release's class order ships with the package
    given = {"--data": data, "--devkit": devkit, "--release-weights": weights,
             "--device": "cpu", "--workers": "0"}  # fmt: skip
    args = [str(given.get(prev, arg)) for prev, arg in zip(["", *recipe], recipe)]
    table = _run_table2([*args, "--limit", "4"], tmp_path)

    first4 = ids[:4]
    assert table.at["T2-2", "images"] == 4
    expected = 100 * sum(i != TENCH for i in first4) / len(first4)
    assert table.at["T2-2", "top1_error"] == pytest.approx(expected, abs=1e-4)
    assert _predicted_first_guesses(tmp_path) == [TENCH_SORTED_INDEX + 1] * 4


def test_release_on_val_in_wnid_folders_needs_no_devkit(toy_release, tmp_path):
    from overfeat.data.class_order import ilsvrc2012_wnids

    data = tmp_path / "imagenet"
    for wnid in ilsvrc2012_wnids():
        (data / "val" / wnid).mkdir(parents=True)
    images = [WNID[KIT_FOX], WNID[TENCH], WNID[TENCH]]
    for k, wnid in enumerate(images):
        _jpeg(data / "val" / wnid / f"ILSVRC2012_val_{k + 1:08d}.JPEG", 60 * k)
    table = _run_table2(["--data", data, "--release-weights", toy_release(TENCH),
                         "--workers", "0", "--limit", "3"], tmp_path)  # fmt: skip
    assert table.at["T2-2", "top1_error"] == pytest.approx(100 / 3, abs=1e-4)  # CSV: 4 decimals
    assert _predicted_first_guesses(tmp_path) == [TENCH_SORTED_INDEX + 1] * 3


def test_release_on_real_val_photos_labelled_by_the_ground_truth_beside_meta(
    toy_release, val_mini_dir, devkit_dir, tmp_path
):
    """Real photos flat in val/ (linked, never copied), the real devkit's meta.mat given as
    --meta: its folder's ILSVRC2012_validation_ground_truth.txt labels them."""
    solution = pd.read_csv(val_mini_dir / "LOC_val_solution.csv").sort_values("ImageId").head(5)
    truth = [p.split()[0] for p in solution.PredictionString]
    data = tmp_path / "imagenet"
    (data / "val").mkdir(parents=True)
    for stem in solution.ImageId:
        os.symlink(val_mini_dir / "ILSVRC" / "Data" / "CLS-LOC" / "val" / f"{stem}.JPEG",
                   data / "val" / f"{stem}.JPEG")  # fmt: skip
    meta = devkit_dir / "t12" / "meta.mat"
    target = next(i for i, w in enumerate(_devkit_order(meta), start=1) if w == truth[0])
    table = _run_table2(["--data", data, "--release-weights", toy_release(target),
                         "--meta", meta, "--workers", "0"], tmp_path)  # fmt: skip
    expected = 100 * sum(w != truth[0] for w in truth) / len(truth)
    assert table.at["T2-2", "images"] == len(truth)
    assert table.at["T2-2", "top1_error"] == pytest.approx(expected, abs=1e-4)


def _devkit_order(meta) -> list[str]:
    """WNIDs by ILSVRC2012_ID, read from the meta.mat here with scipy."""
    import scipy.io

    synsets = scipy.io.loadmat(str(meta), squeeze_me=True)["synsets"]
    by_id = {int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in synsets
             if 1 <= int(s["ILSVRC2012_ID"]) <= 1000}  # fmt: skip
    return [by_id[i] for i in range(1, 1001)]


def test_classic_layout_without_labels_names_devkit_in_one_line(tmp_path, capsys):
    _jpeg(tmp_path / "imagenet" / "val" / "ILSVRC2012_val_00000001.JPEG", 10)
    (tmp_path / "w").mkdir()
    code = main(["reproduce", "table2", "--data", str(tmp_path / "imagenet"), "--release-weights",
                 str(tmp_path / "w"), "--cache", str(tmp_path / "cache"), "--no-progress"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert re.search(r"validation images but no labels\. Looked for LOC_val_solution\.csv", err)
    assert "Pass --devkit DIR" in err
