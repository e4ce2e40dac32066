"""Figure 9's reproduction: its bars against the paper's table, its directions and controls on
hand-worked tables, and the whole command on a tiny synthetic set."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from evaluation.diff import FIGURE9_DIRECTIONS, FIGURE9_METRICS, directions
from evaluation.paper import read_reported
from evaluation.render import figure9_controls, figure9_markdown
from overfeat.reproduce.figure9 import FIGURE9_ROWS, FIGURE9_SCALES, scales_for
from overfeat.scales import FOUR_SCALES


def test_the_six_bars_are_figure9s_as_reported():
    """Each F9 row runs what paper/reported.csv says its bar is: the regression type and the
    number of scales (or the centred crop)."""
    reported = {r["row_id"]: r for r in read_reported() if r["artifact"] == "Figure 9"}
    ours = {r.row: r for r in FIGURE9_ROWS if r.row.startswith("F9-")}
    assert set(ours) == set(reported) and len(reported) == 6
    for row_id, paper in reported.items():
        row = ours[row_id]
        assert row.regression.upper() == paper["regression"]
        if "centered crop" in paper["scales"]:
            assert row.view == "centre"
        else:
            assert row.view == "dense" and row.num_scales == int(paper["scales"])
            assert len(row.protocol().scales) == int(paper["scales"])


def test_n_scales_are_nested_and_four_scales_are_table2s():
    assert scales_for(4) == tuple(FOUR_SCALES)
    for n in (1, 2, 3):
        assert scales_for(n) == scales_for(n + 1)[:n]
    assert len(FIGURE9_SCALES) == 4
    with pytest.raises(ValueError):
        scales_for(5)


def test_every_number_of_scales_has_both_regressors_and_both_baselines():
    dense = {(r.regression, r.box_source, r.num_scales) for r in FIGURE9_ROWS if r.view == "dense"}
    for n in (1, 2, 3, 4):
        for key in (("scr", "regressor"), ("pcr", "regressor"), ("none", "window"),
                    ("none", "image")):  # fmt: skip
            assert (*key, n) in dense


def _table(errors: dict[str, float]) -> pd.DataFrame:
    paper = {"F9-1": 30.0, "F9-2": 31.3, "F9-3": 31.5, "F9-4": 36.0, "F9-5": 40.0, "F9-6": 44.1}
    rows = []
    for r in FIGURE9_ROWS:
        rows.append({
            "row": r.row, "bar": r.bar, "regression": r.regression.upper(),
            "box_source": r.box_source, "view": r.view, "num_scales": r.num_scales,
            "scales": "", "regressor": "", "paper_top5_loc_error": paper.get(r.row, math.nan),
            "top5_loc_error": errors.get(r.row, math.nan), "delta_top5": math.nan,
            "top1_loc_error": math.nan, "top5_cls_error": math.nan, "comparable": "",
            "note": "",
        })  # fmt: skip
    return pd.DataFrame(rows)


def test_directions_hand_worked():
    """Paper: 2 vs 1 scale 31.5 − 36.0 = −4.5; PCR vs SCR 44.1 − 31.3 = +12.8. Reproduced:
    2 scales 50, 1 scale 60 (−10, agrees); PCR 3 scales 40, SCR 3 scales 45 (−5, disagrees)."""
    table = _table({"F9-3": 50.0, "F9-4": 60.0, "F9-6": 40.0, "F9-2": 45.0})
    d = directions(table, FIGURE9_DIRECTIONS, FIGURE9_METRICS).set_index("comparison")
    two = d.loc["2 scales vs 1 scale (SCR)"]
    assert (two.paper_delta, two.reproduced_delta, two.agrees) == (-4.5, -10.0, "yes")
    pcr = d.loc["PCR vs SCR (3 scales)"]
    assert (pcr.paper_delta, pcr.reproduced_delta, pcr.agrees) == (12.8, -5.0, "no")
    assert d.loc["4 scales vs 1 scale (SCR)"].agrees == "n/a"  # F9-1 did not run


def test_controls_table_puts_each_row_in_its_cell():
    errors = {"F9-4": 61.0, "F9-1": 64.0, "PCR-1": 71.0, "WINDOW-2": 82.0, "IMAGE-4": 93.0}
    controls = figure9_controls(_table(errors))
    assert list(controls.columns) == ["SCR", "PCR", "window box", "whole image"]
    assert controls.at[1, "SCR"] == 61.0 and controls.at[4, "SCR"] == 64.0
    assert controls.at[1, "PCR"] == 71.0
    assert controls.at[2, "window box"] == 82.0
    assert controls.at[4, "whole image"] == 93.0
    assert math.isnan(controls.at[3, "whole image"])
    md = figure9_markdown(_table(errors), {"run": "t"})
    assert "| F9-4 | SCR, 1 scale |" in md and "61.00" in md


# ----------------------------------------------------------------------------- end to end

WIDTH = 0.0625


def _toy(classes: int):
    import torch

    from overfeat.models import build_model

    torch.manual_seed(0)
    model = build_model("fast", num_classes=classes, width=WIDTH).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):  # He, so probabilities differ between windows
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    return model


def _progress() -> dict:
    return {"epoch": 1, "step_in_epoch": 0, "global_step": 1}


def _runs(root, classes: int):
    """A classifier run and untrained SCR and PCR regressor runs on it (the engine's formats)."""
    from overfeat.engine.checkpoint import checkpoint_path, save_checkpoint_atomic
    from overfeat.regression import BoxRegressor

    model = _toy(classes)
    save_checkpoint_atomic(
        {"model": model.state_dict(), "model_config": model.config, "train_config": {"epochs": 1},
         "optimizer": {}, "scheduler": {}, "progress": _progress()},
        checkpoint_path(root / "cls", 1),
    )  # fmt: skip
    for kind in ("scr", "pcr"):
        reg = BoxRegressor(model.spec, kind, num_classes=classes, width=WIDTH)
        save_checkpoint_atomic(
            {"regressor": reg.state_dict(),
             "regressor_config": {"kind": kind, "num_classes": classes, "width": WIDTH},
             "classifier_run": str(root / "cls"), "classifier_config": model.config,
             "classifier_checkpoint": "checkpoint-00000001.pt", "train_config": {"epochs": 1},
             "optimizer": {}, "scheduler": {}, "progress": _progress()},
            checkpoint_path(root / kind, 1),
        )  # fmt: skip
    return root / "cls", root / "scr", root / "pcr"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from overfeat.data.synthetic import SyntheticConfig, write_synthetic

    root = tmp_path_factory.mktemp("f9")
    write_synthetic(root / "data", SyntheticConfig(classes=3, train_per_class=1, val_per_class=2,
                                                   det_images=0, class_colours=True))  # fmt: skip
    return root, _runs(root, 3)


def _figure9(root, cls, scr, pcr, *extra):
    from overfeat.cli import main

    return main(["reproduce", "figure9", "--data", str(root / "data"), "--checkpoints",
                 f"classifier={cls}", f"scr={scr}", f"pcr={pcr}", "--rows",
                 "F9-4,PCR-1,WINDOW-1,IMAGE-1", "--reports", str(root / "reports"), "--cache",
                 str(root / "cache"), "--workers", "0", "--no-progress", "--name", "tiny",
                 *extra])  # fmt: skip


def test_figure9_end_to_end_scores_what_the_harness_scores_and_reuses_rows(tiny, monkeypatch):
    import json
    import shlex

    from evaluation.__main__ import main as evaluation_main
    from evaluation.render import read_run

    root, (cls, scr, pcr) = tiny
    assert _figure9(root, cls, scr, pcr) == 0
    table, meta = read_run(root / "reports" / "figure9" / "tiny.csv")
    by_row = table.set_index("row")
    assert list(table["row"]) == ["F9-4", "PCR-1", "WINDOW-1", "IMAGE-1"]
    assert set(by_row["images"]) == {6}
    # An untrained regressor outputs 0 at every window: each window's own box
    # (BOX_PARAMETERISATION), so SCR and PCR score exactly what the window baseline scores.
    assert by_row.at["F9-4", "top5_loc_error"] == by_row.at["WINDOW-1", "top5_loc_error"]
    assert by_row.at["PCR-1", "top5_loc_error"] == by_row.at["WINDOW-1", "top5_loc_error"]
    # The CSV holds what the harness prints for the written files.
    for row in ("F9-4", "IMAGE-1"):
        command = meta["rows"][row]["harness"]["score_command"]
        out = root / f"{row}.json"
        assert evaluation_main([*shlex.split(command)[3:], "--json", str(out)]) == 0
        loc = json.loads(out.read_text())["loc_error_by_guesses"][4]
        assert by_row.at[row, "top5_loc_error"] == pytest.approx(100 * loc)
    # The per-image outcomes beside the report count what the harness counts, row by row.
    from evaluation.outcomes import read_outcomes

    outcomes = read_outcomes(root / "reports" / "figure9" / "tiny.outcomes.csv.gz")
    assert len(outcomes) == 6
    for row in table["row"]:
        for metric in ("top1_loc", "top5_loc"):
            errors = outcomes[f"{row}:{metric}_wrong"].sum()
            assert 100 * errors / 6 == pytest.approx(by_row.at[row, f"{metric}_error"])
        assert outcomes[f"{row}:iou"].between(0, 1).all()
    # A second run recomputes nothing.
    import overfeat.localize

    def boom(*a, **k):
        raise AssertionError("a finished row was recomputed")

    monkeypatch.setattr(overfeat.localize, "localize_dataset", boom)
    assert _figure9(root, cls, scr, pcr) == 0


def test_figure9_refuses_a_regressor_listed_as_the_other_kind(tiny, capsys):
    root, (cls, scr, pcr) = tiny
    assert _figure9(root, cls, pcr, scr) == 2
    assert "holds a PCR regressor; list it as pcr=" in capsys.readouterr().err


def test_figure9_refuses_checkpoints_without_data_and_unknown_rows(capsys):
    from overfeat.cli import main

    assert main(["reproduce", "figure9", "--checkpoints", "classifier=x"]) == 2
    assert "--checkpoints needs --data" in capsys.readouterr().err
    assert main(["reproduce", "figure9", "--rows", "F9-9"]) == 2
    assert "--rows F9-9: unknown" in capsys.readouterr().err
