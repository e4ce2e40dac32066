"""Progress is a bar on a terminal and one line per 10% in a log, for every long pass: the
training engine's epochs, ``make-synthetic``'s files and ``classify``'s batches as well as the
reproductions' passes (decision PROGRESS_LOG_LINES), from one module that the data and
training packages import without importing the reproductions."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from overfeat.cli import main
from overfeat.data.synthetic import SyntheticConfig, write_synthetic
from overfeat.progress import LOG_EVERY_PERCENT, progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_a_line_per_ten_percent_with_the_latest_running_figures():
    log = io.StringIO()
    with progress(20, "epoch 0", unit="step", stream=log) as bar:
        for step in range(20):
            bar.set_postfix(loss=f"{2.0 - step / 10:.3f}")
            bar.update()
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert len(lines) == 100 // LOG_EVERY_PERCENT
    assert lines[0].startswith("epoch 0: 10% (2 of 20 step, ") and lines[0].endswith(
        "s left, loss 1.900)")  # fmt: skip
    assert lines[-1].startswith("epoch 0: 100% (20 of 20 step, ")
    assert lines[-1].endswith(", loss 0.100)") and "left" not in lines[-1]


def test_a_terminal_gets_a_bar_that_shows_the_running_figures():
    tty = _Terminal()
    with progress(4, "epoch 0", unit="step", stream=tty, leave=True) as bar:
        bar.set_postfix(loss="1.234")
        bar.update(4)
    assert "\r" in tty.getvalue() and "loss=1.234" in tty.getvalue()
    assert "4/4" in tty.getvalue()


def test_the_reproductions_old_import_path_is_the_same_helper():
    from overfeat.reproduce import progress as old

    assert old.progress is progress and old.LOG_EVERY_PERCENT == LOG_EVERY_PERCENT


def test_data_and_engine_import_progress_without_the_reproductions():
    code = (
        "import sys, overfeat.data.synthetic, overfeat.engine.train, overfeat.engine.spatial; "
        "print(sorted(m for m in sys.modules if m.startswith('overfeat.reproduce')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_make_synthetic_logs_lines_not_carriage_returns(tmp_path, capsys):
    config = SyntheticConfig(seed=0, classes=2, train_per_class=5, val_per_class=5, det_images=0)
    write_synthetic(tmp_path / "set", config, progress=True)
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("make-synthetic: ")]
    assert len(lines) == 100 // LOG_EVERY_PERCENT
    assert lines[-1].startswith("make-synthetic: 100% (20 of 20 img, ")


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("progress") / "set"
    config = SyntheticConfig(seed=2, classes=2, train_per_class=8, val_per_class=2,
                             det_images=0, corrupt=1)  # fmt: skip
    write_synthetic(root, config)
    return root


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_training_run_logged_to_a_file_has_epoch_lines_and_no_carriage_returns(
    tiny_set, tmp_path, capsys
):
    argv = ["train", "classifier", "--data", str(tiny_set), "--recipe", "toy", "--width",
            "0.03125", "--epochs", "2", "--batch-size", "4", "--workers", "0", "--log-every", "1",
            "--out", str(tmp_path / "run")]  # fmt: skip
    with pytest.warns(UserWarning) as caught:
        assert main(argv) == 0  # progress on; stderr is not a terminal here
    err = capsys.readouterr().err
    assert "\r" not in err
    for epoch in (0, 1):
        lines = [ln for ln in err.splitlines() if ln.startswith(f"epoch {epoch}: ")]
        assert lines[-1].startswith(f"epoch {epoch}: 100% (4 of 4 step, "), lines
        assert ", loss " in lines[-1] and ", lr " in lines[-1]
    # The damaged training file is named once with what was done with it.
    (skip,) = [str(w.message) for w in caught if "cannot decode" in str(w.message)]
    assert "skipped for this epoch and counted" in skip and "delete" not in skip

