"""Bad ``--meta``, ``--device`` and ``--devkit`` values stop every command that takes them with one
line naming the flag, what is wrong and the fix, and exit status 2: no traceback, nothing run.

Each case runs ``overfeat.cli.main`` in-process, as the ``overfeat`` command does.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA

from overfeat.cli import build_parser, main
from overfeat.flags import FlagError, check_device

# Every sub-command that takes the flag, with the other flags it needs to parse.
META_COMMANDS = {
    "reproduce table2": ["reproduce", "table2", "--data", "D", "--release-weights", "W"],
    "reproduce all": ["reproduce", "all", "--data", "D", "--release-weights", "W"],
    "localize": ["localize", "--data", "D", "--out", "O", "--release-weights", "W"],
    "classify": ["classify", "img.jpg", "--release-weights", "W"],
}
DEVICE_COMMANDS = {
    "reproduce table2": ["reproduce", "table2"],
    "reproduce figure9": ["reproduce", "figure9"],
    "reproduce detection": ["reproduce", "detection"],
    "reproduce all": ["reproduce", "all"],
    "train classifier": ["train", "classifier", "--data", "D"],
    "train regressor": ["train", "regressor", "--classifier", "C", "--data", "D"],
    "train detector": ["train", "detector", "--classifier", "C", "--data", "D"],
    "classify": ["classify", "img.jpg", "--release-weights", "W"],
    "localize": ["localize", "--data", "D", "--out", "O"],
    "detect": ["detect", "--data", "D", "--out", "O"],
    "regression": ["regression"],
}


def _refusal(capsys, argv, tmp_path) -> str:
    """Run the command in ``tmp_path``; it must exit 2 with exactly one line on stderr."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)
        code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert out == "" and err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == [], "the command did work before refusing"
    return err.strip()


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


@pytest.fixture(scope="module")
def meta_det(tmp_path_factory):
    """The devkit's meta_det.mat (../shared/data), else a DET meta of the same form written here."""
    real = SHARED_DATA / "ilsvrc-devkit" / "t14" / "meta_det.mat"
    if real.is_file():
        return real
    import scipy.io

    path = tmp_path_factory.mktemp("det") / "meta_det.mat"
    rows = [(i, f"n{i:08d}", f"class {i}") for i in range(1, 201)]
    synsets = np.array(rows, dtype=[("ILSVRC2013_DET_ID", "O"), ("WNID", "O"), ("name", "O")])
    scipy.io.savemat(str(path), {"synsets": synsets})
    return path


# --------------------------------------------------------------------------------------- --meta
@pytest.mark.parametrize("command", META_COMMANDS)
def test_meta_that_does_not_exist_names_the_flag_and_the_devkit_file(command, tmp_path, capsys):
    missing = tmp_path.parent / f"{tmp_path.name}-nowhere" / "meta.mat"
    err = _refusal(capsys, [*META_COMMANDS[command], "--meta", missing], tmp_path)
    assert err.startswith(f"overfeat {command}: --meta {missing}: no such file; pass ")
    assert "ILSVRC2012_devkit_t12/data/meta.mat" in err


@pytest.mark.parametrize("command", META_COMMANDS)
def test_meta_det_is_refused_as_the_det_meta(command, meta_det, tmp_path, capsys):
    err = _refusal(capsys, [*META_COMMANDS[command], "--meta", meta_det], tmp_path)
    assert f"--meta {meta_det}: the DET meta" in err
    assert "pass the CLS-LOC devkit's meta.mat" in err


@pytest.mark.parametrize("command", META_COMMANDS)
def test_text_file_as_meta_is_refused_as_not_a_mat_file(
    command, tmp_path_factory, tmp_path, capsys
):
    text = tmp_path_factory.mktemp("txt") / "ILSVRC2012_validation_ground_truth.txt"
    text.write_text("490\n361\n")
    err = _refusal(capsys, [*META_COMMANDS[command], "--meta", text], tmp_path)
    assert f"--meta {text}: not a MAT file (a .txt file); pass " in err
    assert "meta.mat" in err


# ------------------------------------------------------------------------------------- --device
@pytest.mark.parametrize("command", DEVICE_COMMANDS)
def test_cuda_without_a_cuda_device_says_so_and_to_run_on_the_cpu(
    command, no_cuda, tmp_path, capsys
):
    err = _refusal(capsys, [*DEVICE_COMMANDS[command], "--device", "cuda"], tmp_path)
    assert err.startswith(f"overfeat {command}: --device cuda: there is no CUDA device here")
    assert err.endswith("run with --device cpu")


@pytest.mark.parametrize("command", DEVICE_COMMANDS)
def test_unknown_device_name_lists_the_devices_the_command_takes(command, tmp_path, capsys):
    err = _refusal(capsys, [*DEVICE_COMMANDS[command], "--device", "gpu"], tmp_path)
    assert err.startswith(f"overfeat {command}: --device gpu: not a device this command runs on")
    assert "--device cpu" in err and "--device cuda" in err and "--device auto" in err


def test_device_index_beyond_the_machines_gpus_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    check_device("cuda:1")
    with pytest.raises(FlagError, match=r"--device cuda:2: this machine has 2 CUDA device\(s\), "
                       r"cuda:0 to cuda:1"):  # fmt: skip
        check_device("cuda:2")


def test_cuda_command_lines_still_parse_on_a_machine_without_cuda(no_cuda):
    """Checks run before a command runs, not while parsing: `reproduce all` re-parses its
    artifacts' command lines, and a command line may be written for another machine."""
    args = build_parser().parse_args(["reproduce", "table2", "--device", "cuda"])
    assert args.device == "cuda"


def test_trainer_flags_given_to_a_reproduction_are_checked_too():
    from overfeat.reproduce.networks import train_config

    with pytest.raises(FlagError, match="--device gpu: not a device"):
        train_config("D", "fast", 0, ["--device", "gpu"])


# ------------------------------------------------------------------------------------- --devkit
@pytest.mark.parametrize("command", ["table2", "figure9", "detection", "all"])
def test_devkit_without_the_ground_truth_says_where_it_looked(
    command, tmp_path_factory, tmp_path, capsys
):
    empty = tmp_path_factory.mktemp("kit")
    err = _refusal(capsys, ["reproduce", command, "--devkit", empty], tmp_path)
    assert f"--devkit {empty}: no ILSVRC2012_validation_ground_truth.txt in it, its data/" in err
    missing = tmp_path.parent / f"{tmp_path.name}-nowhere"
    err = _refusal(capsys, ["reproduce", command, "--devkit", missing], tmp_path)
    assert f"--devkit {missing}: no such folder; pass the unpacked ILSVRC2012_devkit_t12" in err
