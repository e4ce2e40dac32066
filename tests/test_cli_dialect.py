"""One dialect across every ``overfeat`` command: a flag several commands share has one name, one
set of choices, one help text and the default of the command's kind of work (decision
DEFAULTS_BY_WORK), wherever it appears; every ``--help`` shows the defaults; renamed flags keep
their old spelling, which works and says it is deprecated; ``--json -`` is standard output.

The commands are found by walking the parser ``overfeat`` builds, so a new command is held to
the same rules; which kind of work each command does is stated here, apart from the code.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
from pathlib import Path

import pytest
import torch

from evaluation.__main__ import build_parser as evaluation_parser
from evaluation.json_output import JSON_HELP
from overfeat import flags
from overfeat.cli import all_parsers, build_parser
from overfeat.flags import CLASSIFY, EVALUATION, GATE, SYNTHETIC, TRAINING, WORK_DEFAULTS

# The kind of work of every command that takes a shared flag (README, "One dialect").
KIND = {
    "overfeat train classifier": TRAINING,
    "overfeat train regressor": TRAINING,
    "overfeat train detector": TRAINING,
    "overfeat classify": CLASSIFY,
    "overfeat import-release": CLASSIFY,  # reads the released files, as classify does
    "overfeat localize": EVALUATION,
    "overfeat detect": EVALUATION,
    "overfeat reproduce table2": EVALUATION,
    "overfeat reproduce figure9": EVALUATION,
    "overfeat reproduce detection": EVALUATION,
    "overfeat reproduce all": EVALUATION,
    "overfeat regression": GATE,
    "overfeat make-synthetic": SYNTHETIC,
}
# The shared flags: their one spelling, the destination it fills, and the attribute of the kind's
# defaults that is its default (None: no default by kind).
SHARED = {
    "--data": ("data", None),
    "--meta": ("meta", None),
    "--device": ("device", "device"),
    "--amp": ("amp", "amp"),
    "--batch-size": ("batch_size", "batch_size"),
    "--workers": ("workers", "workers"),
    "--no-progress": ("progress", None),
}
# Spellings another tool might use for the same thing; none of them may appear.
OTHER_SPELLINGS = ("--gpu", "--gpus", "--cuda", "--num-workers", "--jobs", "--bs", "--batch",
                   "--precision", "--bf16", "--dataset", "--data-dir", "--meta-mat")  # fmt: skip

PARSER = build_parser()
LEAVES = {
    p.prog: p
    for p in all_parsers(PARSER)
    if not any(isinstance(a, argparse._SubParsersAction) for a in p._actions)
}


def _action(parser: argparse.ArgumentParser, option: str) -> argparse.Action | None:
    return next((a for a in parser._actions if option in a.option_strings), None)


def _having(option: str) -> list[str]:
    # The gate's --no-progress is its own: in a log it shows no progress at all, and its code
    # lies outside the commands' dialect (overfeat/gate keeps its own progress).
    return sorted(prog for prog, p in LEAVES.items() if _action(p, option) is not None
                  and (option, prog) != ("--no-progress", "overfeat regression"))  # fmt: skip


def _deprecated(action: argparse.Action) -> bool:
    return isinstance(action, flags._DeprecatedAlias)


# ------------------------------------------------------------------------------- one definition
def test_every_command_with_a_shared_flag_has_a_stated_kind_of_work():
    for option in SHARED:
        for prog in _having(option):
            assert prog in KIND, f"{prog} takes {option}: state its kind of work in KIND"


@pytest.mark.parametrize("option", SHARED)
def test_a_shared_flag_is_one_definition_in_every_command_that_has_it(option):
    dest, field = SHARED[option]
    having = _having(option)
    assert having, option
    first = _action(LEAVES[having[0]], option)
    for prog in having:
        action = _action(LEAVES[prog], option)
        assert action.option_strings == [option], (prog, action.option_strings)
        assert action.dest == dest, prog
        assert action.choices == first.choices, prog
        assert action.metavar == first.metavar, prog
        assert action.type == first.type, prog
        if field is not None:
            kind_default = getattr(WORK_DEFAULTS[KIND[prog]], field)
            assert action.default == kind_default, (prog, action.default, kind_default)
        # The help text comes from flags.py; where it names the command's own use (--data,
        # --meta) or a kind's meaning (--batch-size), the shared part comes first.
        source = {
            "--data": flags.DATA_HELP, "--meta": flags.META_HELP, "--device": flags.DEVICE_HELP,
            "--amp": flags.AMP_HELP, "--workers": flags.WORKERS_HELP,
            "--no-progress": flags.PROGRESS_HELP,
            "--batch-size": flags.BATCH_SIZE_HELP.get(KIND[prog]),
        }[option]  # fmt: skip
        assert action.help.startswith(source), (prog, action.help)


def test_no_command_fills_a_shared_destination_under_another_name():
    for prog, p in LEAVES.items():
        for action in p._actions:
            spelled = [o for o in action.option_strings if o in OTHER_SPELLINGS]
            assert not spelled, (prog, spelled)
            for option, (dest, _) in SHARED.items():
                if action.dest == dest and not _deprecated(action):
                    assert option in action.option_strings, (prog, action.option_strings)


def test_amp_has_one_set_of_choices_and_one_meaning():
    for prog in _having("--amp"):
        assert _action(LEAVES[prog], "--amp").choices == ("auto", "bf16", "none"), prog
    meaning = {("auto", "cuda"): "bf16", ("auto", "cuda:1"): "bf16", ("auto", "cpu"): "none",
               ("bf16", "cpu"): "bf16", ("bf16", "cuda"): "bf16", ("none", "cuda"): "none",
               ("none", "cpu"): "none"}  # fmt: skip
    for (amp, device), expected in meaning.items():
        assert flags.effective_amp(amp, device) == expected
        assert flags.effective_amp(amp, torch.device(device)) == expected
    # The trainer's autocast follows the same meaning.
    from overfeat.engine.config import TrainConfig
    from overfeat.engine.evaluate import autocast_for

    cpu = torch.device("cpu")
    assert not isinstance(autocast_for(TrainConfig(amp="auto"), cpu), torch.autocast)
    assert isinstance(autocast_for(TrainConfig(amp="bf16"), cpu), torch.autocast)


def test_the_kinds_defaults_are_the_defaults_of_the_code_that_runs_the_work():
    """A command's flag default and the settings object it fills agree, so that a run started
    from Python and one started from the command line do the same."""
    from overfeat.engine.config import TrainConfig
    from overfeat.engine.spatial import SpatialConfig
    from overfeat.gate.config import GateConfig
    from overfeat.reproduce.runner import RunOptions

    for config in (TrainConfig(), SpatialConfig()):
        assert (config.device, config.amp, config.workers) == (
            WORK_DEFAULTS[TRAINING].device, WORK_DEFAULTS[TRAINING].amp,
            WORK_DEFAULTS[TRAINING].workers)  # fmt: skip
    options, kind = RunOptions(), WORK_DEFAULTS[EVALUATION]
    assert (options.device, options.batch_size, options.workers, options.amp) == (
        kind.device, kind.batch_size, kind.workers, kind.amp)  # fmt: skip
    gate_fields = GateConfig.__dataclass_fields__
    assert gate_fields["device"].default == WORK_DEFAULTS[GATE].device
    assert gate_fields["workers"].default == WORK_DEFAULTS[GATE].workers


def test_a_training_batch_default_is_its_recipes_read_from_the_recipes():
    from overfeat.engine.config import RECIPES, TrainConfig
    from overfeat.engine.detector import DETECTOR_RECIPES
    from overfeat.engine.regressor import REGRESSOR_RECIPES

    for prog, recipes in (("overfeat train classifier", RECIPES),
                          ("overfeat train regressor", REGRESSOR_RECIPES),
                          ("overfeat train detector", DETECTOR_RECIPES)):  # fmt: skip
        action = _action(LEAVES[prog], "--batch-size")
        assert action.default is None  # not given: the recipe decides (and scales the rate)
        for name, recipe in recipes.items():
            batch = recipe.get("batch_size", TrainConfig.batch_size)
            assert f"{name} {batch}" in action.help, (prog, action.help)


# ------------------------------------------------------------------------------------ --device
def test_train_takes_a_gpu_index(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    from overfeat.engine.cli import build_config

    args = PARSER.parse_args(["train", "classifier", "--data", "D", "--device", "cuda:1"])
    assert args.device == "cuda:1"
    assert build_config(args).device == "cuda:1"
    argv = ["train", "regressor", "--classifier", "C", "--data", "D", "--device", "cuda:1"]
    assert PARSER.parse_args(argv).device == "cuda:1"


def test_a_gpu_index_under_torchrun_is_refused_with_the_fix(monkeypatch):
    from overfeat.engine.distributed import init_distributed

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="pass --device cuda .*CUDA_VISIBLE_DEVICES"):
        init_distributed("cuda:1")


@pytest.mark.parametrize("prog", _having("--device"))
def test_every_command_takes_auto_and_runs_it_on_the_cpu_without_cuda(prog, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    argv = {"overfeat train classifier": ["--data", "D"],
            "overfeat train regressor": ["--classifier", "C", "--data", "D"],
            "overfeat train detector": ["--classifier", "C", "--data", "D"],
            "overfeat classify": ["img.jpg", "--release-weights", "W"],
            "overfeat localize": ["--data", "D", "--out", "O"],
            "overfeat detect": ["--data", "D", "--out", "O"]}.get(prog, [])  # fmt: skip
    args = PARSER.parse_args([*prog.split()[1:], *argv, "--device", "auto"])
    assert args.device == "auto"  # parsing decides nothing (FLAGS_CHECKED_BEFORE_RUN)
    flags.check_flags(args)
    assert args.device == "cpu"


def test_auto_is_cuda_where_there_is_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    args = PARSER.parse_args(["reproduce", "table2", "--device", "auto"])
    flags.check_flags(args)
    assert args.device == "cuda"


# --------------------------------------------------------------------------- deprecated aliases
ALIASES = {
    # old spelling → (command line without it, new spelling, destination)
    "--top": (["classify", "img.jpg", "--release-weights", "W"], "--top-classes", "top_classes"),
    "--top-k": (["localize", "--data", "D", "--out", "O"], "--classes-per-scale",
                "classes_per_scale"),
}  # fmt: skip


@pytest.mark.parametrize("old", ALIASES)
def test_a_deprecated_spelling_still_works_and_says_so(old, capsys):
    argv, new, dest = ALIASES[old]
    args = PARSER.parse_args([*argv, old, "3"])
    assert getattr(args, dest) == 3
    err = capsys.readouterr().err
    assert f"{old} is deprecated" in err and f"use {new}" in err
    args = PARSER.parse_args([*argv, new, "3"])
    assert getattr(args, dest) == 3
    assert capsys.readouterr().err == ""
    default = PARSER.parse_args(argv)
    assert getattr(default, dest) == _action(LEAVES[f"overfeat {argv[0]}"], new).default


def test_classify_and_localize_no_longer_share_a_name_for_different_numbers():
    classify, localize = LEAVES["overfeat classify"], LEAVES["overfeat localize"]
    names = {o for a in classify._actions for o in a.option_strings if not _deprecated(a)}
    names &= {o for a in localize._actions for o in a.option_strings if not _deprecated(a)}
    assert not {n for n in names if "top" in n or "classes" in n}


# --------------------------------------------------------------------------------------- --help
def _help_of(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    return parser._get_formatter()._get_help_string(action) or ""


@pytest.mark.parametrize("prog", sorted(LEAVES))
def test_every_help_shows_the_default_of_every_flag_that_takes_a_value(prog):
    parser = LEAVES[prog]
    for action in parser._actions:
        if (not action.option_strings or action.nargs == 0 or action.required
                or action.help == argparse.SUPPRESS or _deprecated(action)):  # fmt: skip
            continue
        assert action.help, f"{prog} {action.option_strings[0]}: no help"
        text = _help_of(parser, action)
        assert "(default" in text, f"{prog} {action.option_strings[0]}: {text!r}"
    rendered = " ".join(parser.format_help().split())
    assert "(default: None)" not in rendered and "(default: )" not in rendered


def _option_help(prog: str, option: str) -> str:
    """The rendered help of ``option`` in ``prog --help`` (its block of lines), on one line."""
    blocks = re.split(r"\n(?=  -)", LEAVES[prog].format_help())
    block = next(b for b in blocks if b.split()[0] == option)
    return " ".join(block.split())


@pytest.mark.parametrize("artifact", ["table2", "figure9", "detection", "all"])
def test_reproduce_help_says_cpu_batch_8_and_folders_relative_to_the_current_one(artifact):
    prog = f"overfeat reproduce {artifact}"
    assert "(default: cpu)" in _option_help(prog, "--device")
    assert "(default: 8)" in _option_help(prog, "--batch-size")
    assert "(default: none)" in _option_help(prog, "--amp")
    reports, cache = _option_help(prog, "--reports"), _option_help(prog, "--cache")
    assert "relative to the current folder" in reports and "(default: reports)" in reports
    assert "relative to the current folder" in cache and "(default: runs/reproduce)" in cache


def test_train_help_shows_auto_device_and_the_recipes_values():
    assert "(default: auto)" in _option_help("overfeat train classifier", "--device")
    assert "paper 128, toy 32" in _option_help("overfeat train classifier", "--batch-size")
    assert "(default: 4)" in _option_help("overfeat train classifier", "--workers")


# --------------------------------------------------------------------------------------- --json
def _benchmark(name: str):
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _json_parsers():
    """Every parser with a --json flag: the harness's tasks and the benchmarks'."""
    for p in all_parsers(evaluation_parser()):
        yield p.prog, p
    for name in ("eval_speed", "train_throughput"):
        yield name, _benchmark(name).build_parser()


def test_every_json_flag_has_one_help_and_takes_a_dash_for_standard_output():
    found = 0
    for prog, parser in _json_parsers():
        action = _action(parser, "--json")
        if action is None:
            continue
        found += 1
        assert action.help == JSON_HELP, prog
    assert found >= 5  # cls, loc, det, and both benchmarks


@pytest.mark.filterwarnings("ignore:.*no ground-truth boxes:UserWarning")
def test_benchmark_json_dash_is_one_document_on_standard_output(capsys):
    bench = _benchmark("eval_speed")
    assert bench.main(["--scale", "0.002", "--skip-coco", "--json", "-"]) == 0
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert data["det_images"] == 40 and "harness_clsloc_s" in data
    assert "DET: 40 images" in err and "CLS-LOC:" in err


def test_train_throughput_json_dash_moves_its_lines_to_standard_error(capsys, monkeypatch):
    bench = _benchmark("train_throughput")

    def measure(args):
        print("load  fast     project loader per worker: 1.00 images/s")
        return {"train": [], "loader": {"fast": {}}}

    monkeypatch.setattr(bench, "measure", measure)
    assert bench.main(["--json", "-"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == {"train": [], "loader": {"fast": {}}}
    assert "project loader per worker" in err
