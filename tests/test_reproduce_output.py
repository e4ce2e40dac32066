"""What a reproduction prints and writes for the people and the logs that watch it.

- the console gets a short summary (each row's numbers, where the report is), not the report;
- progress is a bar on a terminal and a line per 10% in a log, never carriage returns there
  (decision PROGRESS_LOG_LINES);
- an undecodable image is named with what was done with it (skipped, scored as wrong);
- a run writes its own report files only; the index is rebuilt by ``reproduce report``;
- detection's per-class AP shows the class names beside the WNIDs where the data has them;
- "every 3rd image", not "every 3-th".
"""

from __future__ import annotations

import io
import shutil

import pandas as pd
import pytest
from conftest import ROOT
from test_reproduce_table2 import make_run

from evaluation.render import detection_markdown, ordinal
from overfeat.cli import main
from overfeat.data.synthetic import SyntheticConfig, write_synthetic
from overfeat.reproduce.detection import class_names
from overfeat.reproduce.progress import LOG_EVERY_PERCENT, progress


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "tiny"
    write_synthetic(root, SyntheticConfig(seed=3, classes=3, train_per_class=1, val_per_class=2,
                                          det_images=0))  # fmt: skip
    return root


@pytest.fixture(scope="module")
def fast_run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("runs") / "fast", "fast", 3, seed=0)


def _table2(tiny_data, fast_run, tmp_path, *extra):
    return main(["reproduce", "table2", "--data", str(tiny_data), "--checkpoints",
                 f"fast={fast_run}", "--rows", "T2-2", "--workers", "0", "--batch-size", "2",
                 "--cache", str(tmp_path / "cache"), "--reports", str(tmp_path / "reports"),
                 *extra])  # fmt: skip


# ----------------------------------------------------------------------------- console


def test_a_run_prints_each_rows_numbers_and_where_the_report_is_not_the_report(
    tiny_data, fast_run, tmp_path, capsys
):
    assert _table2(tiny_data, fast_run, tmp_path, "--no-progress") == 0
    out = capsys.readouterr().out
    csv = next((tmp_path / "reports" / "table2").glob("*.csv"))
    row = pd.read_csv(csv).set_index("row").loc["T2-2"]
    assert "| row |" not in out and "n/a" not in out and "direction" not in out
    summary = [ln for ln in out.splitlines() if ln.startswith("  T2-2: ")]
    assert summary == [f"  T2-2: top-1 {row.top1_error:.2f}%, top-5 {row.top5_error:.2f}% "
                       f"(paper {row.paper_top1_error:.2f} / {row.paper_top5_error:.2f})"]  # fmt: skip
    assert f"report: {csv.with_suffix('.md')}" in out
    assert len(out.splitlines()) <= 6


# ----------------------------------------------------------------------------- progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_in_a_log_is_one_line_per_ten_percent_without_carriage_returns():
    log = io.StringIO()
    with progress(200, "T2-5 (fast, scales 1-6)", stream=log) as bar:
        for _ in range(200):
            bar.update(1)
    text = log.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) == 100 // LOG_EVERY_PERCENT
    assert [int(ln.split(": ")[1].split("%")[0]) for ln in lines] == list(range(10, 101, 10))
    assert lines[4].startswith("T2-5 (fast, scales 1-6): 50% (100 of 200 img, ")


def test_progress_on_a_terminal_is_a_bar_and_off_is_silent():
    tty = _Terminal()
    with progress(50, "T2-2", stream=tty) as bar:
        bar.update(50)
    assert "\r" in tty.getvalue()  # redrawn in place
    quiet = io.StringIO()
    with progress(50, "T2-2", enabled=False, stream=quiet) as bar:
        bar.update(50)
    assert quiet.getvalue() == ""


def test_a_resumed_pass_says_where_it_continues():
    log = io.StringIO()
    with progress(100, "T2-2", initial=40, stream=log) as bar:
        bar.update(10)
    assert log.getvalue().splitlines() == [
        "T2-2: continuing at 40 of 100 img (40%)",
        log.getvalue().splitlines()[1],
    ]
    assert log.getvalue().splitlines()[1].startswith("T2-2: 50% (50 of 100 img, ")


def test_a_run_logged_to_a_file_has_progress_lines_and_no_carriage_returns(
    tiny_data, fast_run, tmp_path, capsys
):
    assert _table2(tiny_data, fast_run, tmp_path) == 0  # progress on; stderr is not a terminal
    err = capsys.readouterr().err
    assert "\r" not in err
    assert "T2-2 (fast, scale 1, coarse, flips): 100% (6 of 6 img, " in err


# ----------------------------------------------------------------------------- corrupt images


def test_an_undecodable_image_is_named_with_what_was_done_with_it(
    tiny_data, fast_run, tmp_path, capsys, recwarn
):
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    val = sorted((data / "ILSVRC" / "Data" / "CLS-LOC" / "val").glob("*.JPEG"))
    val[1].write_bytes(b"not a jpeg")
    code = main(["reproduce", "table2", "--data", str(data), "--checkpoints", f"fast={fast_run}",
                 "--rows", "T2-2", "--workers", "0", "--no-progress", "--cache",
                 str(tmp_path / "cache"), "--reports", str(tmp_path / "reports")])  # fmt: skip
    assert code == 0
    err = capsys.readouterr().err
    (line,) = [ln for ln in err.splitlines() if str(val[1]) in ln]
    assert line.startswith(f"warning: {val[1]}: cannot decode (")
    assert "skipped" in line and "scored as wrong" in line
    assert "delete" not in err and "fetch.py" not in err
    assert not [w for w in recwarn if "cannot decode" in str(w.message)]
    row = pd.read_csv(next((tmp_path / "reports" / "table2").glob("*.csv"))).set_index("row")
    assert row.at["T2-2", "skipped"] == 1
    assert "1 undecodable images counted as errors" in row.at["T2-2", "note"]


# ----------------------------------------------------------------------------- report files


def test_a_run_writes_its_own_report_files_and_leaves_the_index_to_report(
    tiny_data, fast_run, tmp_path
):
    """Another run's report and the index stay as they were after a run; ``reproduce report``
    rebuilds the index with both runs."""
    reports = tmp_path / "reports"
    (reports / "table2").mkdir(parents=True)
    for suffix in (".csv", ".json"):
        shutil.copy(ROOT / "reports" / "table2" / f"embedded-default{suffix}", reports / "table2")
    other_md = reports / "table2" / "embedded-default.md"
    other_md.write_text("another run's report, rendered before\n")
    assert _table2(tiny_data, fast_run, tmp_path, "--no-progress") == 0
    ours = next(p for p in (reports / "table2").glob("*.csv") if p.stem != "embedded-default")
    assert ours.with_suffix(".md").is_file() and ours.with_suffix(".png").is_file()
    assert other_md.read_text() == "another run's report, rendered before\n"
    assert not (reports / "README.md").exists()

    assert main(["reproduce", "report", "--reports", str(reports)]) == 0
    index = (reports / "README.md").read_text()
    assert f"[{ours.stem}](table2/{ours.stem}.md)" in index
    assert "[embedded-default](table2/embedded-default.md)" in index
    assert other_md.read_text().startswith("# Table 2 reproduced: embedded-default")


# ----------------------------------------------------------------------------- class names


def test_detection_ap_per_class_shows_names_beside_wnids():
    table = pd.DataFrame([{"row": "DET-REG", "system": "detector", "scales": "1,2", "mAP": 50.0,
                           "paper_mAP": float("nan"), "detections": 4, "comparable": "no",
                           "note": ""}])  # fmt: skip
    meta = {"classes": ["n01440764", "n02102040"], "class_names": ["tench, Tinca tinca", ""],
            "rows": {"DET-REG": {"ap": [0.5, 0.25], "mAP": 0.375}}}  # fmt: skip
    md = detection_markdown(table, meta)
    assert "| class | name | DET-REG |" in md
    assert "| n01440764 | tench, Tinca tinca | 50.00 |" in md
    assert "| n02102040 | — | 25.00 |" in md
    no_names = detection_markdown(table, {**meta, "class_names": []})
    assert "| class | DET-REG |" in no_names


def test_class_names_come_from_the_data_sets_synset_mapping(tiny_data, tmp_path):
    mapping = dict(
        line.split(" ", 1) for line in (tiny_data / "LOC_synset_mapping.txt").read_text().splitlines()
    )
    classes = sorted(mapping)
    assert class_names(tiny_data, classes) == [mapping[c] for c in classes]
    assert all(class_names(tiny_data, classes))
    bare = tmp_path / "bare"
    shutil.copytree(tiny_data, bare)
    (bare / "LOC_synset_mapping.txt").unlink()
    assert class_names(bare, classes) == [""] * len(classes)


# ----------------------------------------------------------------------------- wording


@pytest.mark.parametrize(("n", "text"), [(1, "1st"), (2, "2nd"), (3, "3rd"), (4, "4th"),
                                         (11, "11th"), (12, "12th"), (13, "13th"), (21, "21st"),
                                         (22, "22nd"), (23, "23rd"), (101, "101st"),
                                         (111, "111th"), (112, "112th")])  # fmt: skip
def test_ordinals(n, text):
    assert ordinal(n) == text


def test_a_sampled_run_says_every_third_image(tiny_data, fast_run, tmp_path):
    assert _table2(tiny_data, fast_run, tmp_path, "--no-progress", "--every", "3") == 0
    md = next((tmp_path / "reports" / "table2").glob("*.md")).read_text()
    assert "(every 3rd image in file-name order)" in md and "-th" not in md


@pytest.mark.parametrize("progress", [True, False])
def test_no_progress_reaches_the_training_a_reproduction_starts(tiny_data, tmp_path, monkeypatch,
                                                                progress):  # fmt: skip
    """``--no-progress`` on a reproduction silences the networks it trains as well (their
    progress is not part of the cache key, so the same run folder is used either way)."""
    import overfeat.engine.train as engine_train
    from overfeat.reproduce.networks import train_missing

    seen = []

    class Stop(Exception):
        pass

    def record(config, resume):
        seen.append((config.progress, config.out))
        raise Stop

    monkeypatch.setattr(engine_train, "train_classifier", record)
    with pytest.raises(Stop):
        train_missing(tiny_data, tmp_path, {"fast": 1}, ("--recipe", "toy", "--epochs", "1"), 3,
                      progress=progress)  # fmt: skip
    with pytest.raises(Stop):
        train_missing(tiny_data, tmp_path, {"fast": 1}, ("--recipe", "toy", "--epochs", "1"), 3)
    assert seen[0][0] is progress and seen[1][0] is True
    assert seen[0][1] == seen[1][1]
