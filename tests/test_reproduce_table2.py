"""``overfeat reproduce table2`` end to end: sources, resume, errors, reports.

Networks are toy-width OverFeat networks saved as training checkpoints (the format
``overfeat train classifier`` writes), or full-size files in the release's exact layout; images
are a tiny synthetic ILSVRC set, or the real ILSVRC2012 validation images of ../shared/data.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import ROOT
from scipy.stats import binomtest

from evaluation.render import read_run, readme_blocks, table2_markdown
from overfeat import build_model
from overfeat.cli import main
from overfeat.data.synthetic import SyntheticConfig, write_synthetic
from overfeat.engine.checkpoint import CHECKPOINT_FORMAT, checkpoint_path, save_checkpoint_atomic
from overfeat.engine.config import TrainConfig
from overfeat.reproduce import runner
from overfeat.reproduce.runner import RunOptions
from overfeat.reproduce.table2 import Table2Request, reproduce_table2

QUIET = RunOptions(batch_size=4, workers=0, progress=False)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "tiny"
    write_synthetic(root, SyntheticConfig(seed=3, classes=3, train_per_class=1, val_per_class=1,
                                          det_images=0))  # fmt: skip
    return root


def make_run(folder, arch: str, num_classes: int, seed: int = 0, epochs: int = 1):
    """A run folder as ``overfeat train classifier`` leaves it, holding a toy network."""
    torch.manual_seed(seed)
    model = build_model(arch, num_classes=num_classes, width=1 / 16)
    state = {
        "format": CHECKPOINT_FORMAT,
        "model": model.state_dict(),
        "model_config": model.config,
        "train_config": TrainConfig(arch=arch, width=1 / 16, epochs=epochs).to_dict(),
        "optimizer": {},
        "scheduler": {},
        "progress": {"epoch": epochs, "step_in_epoch": 0, "global_step": 1},
    }
    save_checkpoint_atomic(state, checkpoint_path(folder, 1))
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    return {
        "fast": [make_run(base / f"fast{i}", "fast", 3, seed=i) for i in range(2)],
        "accurate": [make_run(base / "acc0", "accurate", 3, seed=5)],
    }


def _request(tiny_data, runs, tmp_path, rows, **kw) -> Table2Request:
    checkpoints = [f"{a}={','.join(str(r) for r in rs)}" for a, rs in runs.items()]
    return Table2Request(data=str(tiny_data), rows=tuple(rows), checkpoints=tuple(checkpoints),
                         cache=str(tmp_path / "cache"), reports=str(tmp_path / "reports"),
                         options=QUIET, **kw)  # fmt: skip


class Interrupt(Exception):
    pass


def test_an_interrupted_run_resumes_without_recomputing_finished_rows(
    tiny_data, runs, tmp_path, monkeypatch
):
    real = runner._member_vectors
    calls: list[str] = []

    def crash_on_t2_3(members, protocol, samples, options, desc, partial):
        calls.append(desc.split()[0])
        if desc.startswith("T2-3") and calls.count("T2-3") == 1:
            raise Interrupt  # the process dies in the middle of row T2-3
        return real(members, protocol, samples, options, desc, partial)

    monkeypatch.setattr(runner, "_member_vectors", crash_on_t2_3)
    request = _request(tiny_data, runs, tmp_path, ["T2-2", "T2-3"])
    with pytest.raises(Interrupt):
        reproduce_table2(request)
    assert calls == ["T2-2", "T2-3"]
    first = reproduce_table2(request)  # the same command again
    assert calls == ["T2-2", "T2-3", "T2-3"]  # T2-2 was finished: not recomputed
    table_a = pd.read_csv(first)
    reproduce_table2(request)
    assert calls == ["T2-2", "T2-3", "T2-3"]  # everything finished: nothing recomputed
    pd.testing.assert_frame_equal(table_a, pd.read_csv(first))


def test_an_ensemble_row_reuses_its_first_members_single_network_vectors(
    tiny_data, runs, tmp_path, monkeypatch
):
    real = runner._member_vectors
    seen: list[list[str]] = []

    def spy(members, protocol, samples, options, desc, partial):
        seen.append([m.key for m in members])
        return real(members, protocol, samples, options, desc, partial)

    monkeypatch.setattr(runner, "_member_vectors", spy)
    csv = reproduce_table2(_request(tiny_data, runs, tmp_path, ["T2-4", "T2-8"]))
    fast0, fast1 = (f"{r.resolve()}:checkpoint-00000001.pt" for r in runs["fast"])
    assert seen == [[fast0], [fast1]]  # row 8 computed only the second member
    table = pd.read_csv(csv).set_index("row")
    assert table.at["T2-8", "members"] == 2
    assert "ensemble of 2 networks (paper: 7)" in table.at["T2-8", "note"]


def test_every_row_of_the_table_appears_with_the_papers_numbers(tiny_data, runs, tmp_path):
    csv = reproduce_table2(_request(tiny_data, runs, tmp_path, []))
    table = pd.read_csv(csv, keep_default_na=False, na_values=[""]).set_index("row")
    assert list(table.index) == [f"T2-{i}" for i in range(1, 10)]
    assert table.at["T2-5", "paper_top1_error"] == 38.12
    assert np.isnan(table.at["T2-1", "top1_error"])  # AlexNet: quoted, not run
    # one accurate run only: row 9 cannot be an ensemble
    assert table.at["T2-9", "note"].startswith("not available")
    for row in ("T2-2", "T2-5", "T2-6", "T2-7", "T2-8"):
        assert 0 <= table.at[row, "top1_error"] <= table.at[row, "top5_error"] * 0 + 100
        assert table.at[row, "images"] == 3
        assert table.at[row, "comparable"].startswith("not comparable: tiny (3 classes")

    # The Markdown renders the CSV's numbers, row by row
    frame, meta = read_run(csv)
    md = table2_markdown(frame, meta)
    md_rows = {
        cells[0]: cells
        for line in md.splitlines()
        if (cells := [c.strip() for c in line.strip("|").split("|")]) and re.match(r"T2-\d$", cells[0])
    }
    for row in ("T2-2", "T2-7"):
        assert float(md_rows[row][5]) == pytest.approx(table.at[row, "top1_error"], abs=0.005)
        assert float(md_rows[row][9]) == pytest.approx(table.at[row, "top5_error"], abs=0.005)
        # The row's 95% interval, beside it: the exact binomial interval of its 3 images.
        k = round(3 * table.at[row, "top1_error"] / 100)
        ci = binomtest(k, 3).proportion_ci(method="exact")
        assert md_rows[row][6] == f"[{100 * ci.low:.1f}, {100 * ci.high:.1f}]"
        assert float(md_rows[row][4]) == table.at[row, "paper_top1_error"]


def test_scores_are_the_harness_on_the_written_devkit_files(tiny_data, runs, tmp_path):
    """The row's error equals a count made here from the prediction and ground-truth files."""
    csv = reproduce_table2(_request(tiny_data, runs, tmp_path, ["T2-3"]))
    work = tmp_path / "cache" / "table2" / csv.stem
    gt = np.loadtxt(work / "ground_truth.txt", dtype=int)
    pred = np.loadtxt(work / "predictions" / "T2-3.txt", dtype=int)
    top1 = 100 * float(np.mean(pred[:, 0] != gt))
    top5 = 100 * float(np.mean([g not in p for g, p in zip(gt, pred)]))
    row = pd.read_csv(csv).set_index("row").loc["T2-3"]
    assert (row.top1_error, row.top5_error) == (pytest.approx(top1), pytest.approx(top5))


# ----------------------------------------------------------------------------- bad input


def _cli(capsys, *argv) -> tuple[int, str]:
    code = main(["reproduce", "table2", "--no-progress", "--workers", "0", *map(str, argv)])
    return code, capsys.readouterr().err


def test_missing_data_folder_names_the_flag(tmp_path, capsys):
    code, err = _cli(capsys, "--data", tmp_path / "nope", "--train", "--recipe", "toy")
    assert code == 2 and "--data" in err and "no such folder" in err


def test_checkpoint_of_the_wrong_architecture_is_refused_before_any_image(
    tiny_data, runs, tmp_path, capsys
):
    code, err = _cli(capsys, "--data", tiny_data, "--cache", tmp_path,
                     "--checkpoints", f"accurate={runs['fast'][0]}")  # fmt: skip
    assert code == 2
    assert "--checkpoints" in err and f"list it as fast={runs['fast'][0]}" in err


def test_checkpoint_with_another_class_count_is_refused(tiny_data, tmp_path, capsys):
    run = make_run(tmp_path / "r4", "fast", num_classes=4)
    code, err = _cli(capsys, "--data", tiny_data, "--cache", tmp_path, "--checkpoints", f"fast={run}")
    assert code == 2 and "trained on 4 classes, the data set has 3" in err


def test_release_weights_of_the_wrong_size_are_refused(val_mini_dir, devkit_dir, tmp_path, capsys):
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "net_weight_0").write_bytes(b"\0" * 4000)
    code, err = _cli(capsys, "--data", val_mini_dir, "--cache", tmp_path,
                     "--release-weights", tmp_path / "w", "--meta", devkit_dir / "t12" / "meta.mat")  # fmt: skip
    assert code == 2 and "--release-weights" in err and "4,000 bytes" in err


# ----------------------------------------------------------------------------- released weights

# overfeat-release.md §1.2 (the documented offsets): the fast file holds 145,920,872 floats and
# its last bias (fc8.b, 1000 floats in ILSVRC2012_ID order) starts at float 145,919,872.
FAST_FLOATS, FAST_LAST_BIAS = 145_920_872, 145_919_872


def test_release_weights_end_to_end_on_real_validation_images(val_mini_dir, devkit_dir, tmp_path):
    """A release-layout fast file whose every weight is 0 and whose last bias singles out one
    ILSVRC2012_ID: every image is classified as that class, so the top-1 error is the share of
    images of another class, counted here from the ground truth; it holds only if the 1000-class
    order is right."""
    import scipy.io

    meta = devkit_dir / "t12" / "meta.mat"
    synsets = scipy.io.loadmat(meta, squeeze_me=True)["synsets"]
    devkit_wnid = {int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in synsets if int(s["ILSVRC2012_ID"]) <= 1000}
    solution = pd.read_csv(val_mini_dir / "LOC_val_solution.csv").sort_values("ImageId")
    first = solution.head(6)
    wnids = [p.split()[0] for p in first.PredictionString]
    target = wnids[0]
    target_id = next(i for i, w in devkit_wnid.items() if w == target)

    weights = tmp_path / "weights"
    weights.mkdir()
    with open(weights / "net_weight_0", "wb") as f:
        f.truncate(4 * FAST_FLOATS)  # all zeros
        bias = np.full(1000, -10.0, dtype="<f4")
        bias[target_id - 1] = 10.0
        f.seek(4 * FAST_LAST_BIAS)
        f.write(bias.tobytes())
    code = main(["reproduce", "table2", "--data", str(val_mini_dir), "--limit", "6",
                 "--rows", "T2-2,T2-8", "--release-weights", str(weights), "--meta", str(meta),
                 "--cache", str(tmp_path / "cache"), "--reports", str(tmp_path / "reports"),
                 "--no-progress", "--workers", "0"])  # fmt: skip
    assert code == 0
    table = pd.read_csv(tmp_path / "reports" / "table2" / "ilsvrc2012-val-mini-release-first6.csv")
    table = table.set_index("row")
    expected = 100 * sum(w != target for w in wnids) / len(wnids)
    assert table.at["T2-2", "top1_error"] == pytest.approx(expected)
    assert table.at["T2-8", "note"].startswith("not available")
    assert "release holds one" in table.at["T2-8", "note"]
    pred = (tmp_path / "cache" / "table2" / "ilsvrc2012-val-mini-release-first6" / "predictions"
            / "T2-2.txt").read_text().split()  # fmt: skip
    assert int(pred[0]) - 1 == sorted(devkit_wnid.values()).index(target)


# ----------------------------------------------------------------------------- committed reports


@pytest.mark.parametrize("block, marker", [("table2", "| T2-9 |"), ("figure9", "| F9-6 |"),
                                           ("detection", "| DET-RANDOM |")])  # fmt: skip
def test_the_readme_shows_the_committed_reports(block, marker):
    """The README's Table 2, Figure 9 and detection blocks are the renders of the committed
    reports (the gate's block follows its last run and is not checked here)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    begin, end = f"<!-- reproduce:{block} begin -->", f"<!-- reproduce:{block} end -->"
    assert begin in text and end in text
    body = text.split(begin + "\n")[1].split(end)[0]
    assert marker in body
    assert body == readme_blocks(ROOT / "reports")[block] + "\n", (
        f"README.md's {block} block differs from reports/{block}/: run `nox -s report`"
    )
