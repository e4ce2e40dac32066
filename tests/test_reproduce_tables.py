"""Tables 4 and 5 regenerated from the layer arithmetic, against the paper's printed values."""

from __future__ import annotations

from overfeat.reproduce.tables import table4_frame, table5_frame


def test_table5_matches_the_printed_table_except_row_5s_typo():
    accurate = table5_frame().query("model == 'accurate'").set_index("scale")
    assert [accurate.at[s, "matches_paper"] for s in (1, 2, 3, 4, 6)] == ["yes"] * 5
    # FACTS §3: row 5 prints 32x35 / (10x11) / (6x7); 425x497 gives 32x38 / (10x12) / (6x8)
    assert accurate.at[5, "matches_paper"] == (
        "no: layer5_pre_pool, layer5_post_pool, classifier_map_pre_reshape"
    )
    assert accurate.at[5, "layer5_pre_pool"] == "32x38"
    assert accurate.at[5, "classifier_map"] == "18x24xC"
    # 9 + 54 + 135 + 315 + 432 + 630 = 1575 outputs per image and flip (FACTS §3)
    assert accurate["outputs_per_flip"].sum() == 1575


def test_table4_parameters_are_the_release_files_counts():
    t = table4_frame().set_index("model")
    assert t.at["fast", "parameters"] == 145_920_872  # 583,683,488 bytes / 4
    assert t.at["accurate", "parameters"] == 144_656_488  # 578,625,952 bytes / 4
    assert t.at["fast", "paper_connections_millions"] == 2810
    assert abs(t.at["accurate", "delta_connections_percent"]) < 0.5


def test_geometry_command_prints_table5_and_its_1575_outputs(capsys):
    from overfeat.cli import main

    assert main(["geometry", "--arch", "accurate"]) == 0
    out = capsys.readouterr().out
    assert "outputs per image per flip over 6 scales: 1575" in out  # FACTS §3
    assert "5 | 425x497 | 32x38 | (10x12)x(3x3)" in out
