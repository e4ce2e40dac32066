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


def test_reproduce_all_runs_every_artifact_and_names_those_the_data_cannot_serve(tmp_path, capsys):
    """``reproduce all`` on a folder that does not exist: the two tables of layer arithmetic
    are written, Table 2, Figure 9 and detection are listed as not run, each with its own
    command's message naming --data, and the command exits 1 after trying every artifact."""
    from overfeat.cli import main
    from overfeat.reproduce.cli import ALL_ARTIFACTS

    missing = tmp_path / "no-such-imagenet"
    reports = tmp_path / "reports"
    code = main(["reproduce", "all", "--data", str(missing), "--reports", str(reports),
                 "--cache", str(tmp_path / "cache"), "--no-progress"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1
    for artifact in ALL_ARTIFACTS:
        assert f"=== overfeat reproduce {artifact} " in out
    rows = {line.split(" | ")[0].strip("| "): line for line in out.splitlines() if line.startswith("| ")}
    assert "written" in rows["table4"] and "written" in rows["table5"]
    for artifact in ("table2", "figure9", "detection"):
        assert f"not run: reproduce {artifact}: --data {missing}: no such folder" in rows[artifact]
    assert (reports / "table4" / "reproduced.csv").is_file()
    assert (reports / "README.md").is_file()


def test_reproduce_all_hands_each_artifact_the_flags_it_takes():
    from overfeat.cli import build_parser
    from overfeat.reproduce.cli import _all_argv

    args = build_parser().parse_args(
        ["reproduce", "all", "--data", "D", "--limit", "7", "--release-weights", "W",
         "--device", "cuda", "--no-progress", "--train", "--recipe", "toy"]  # fmt: skip
    )
    assert _all_argv(args, "table4") == ["table4", "--reports", "reports"]
    table2 = _all_argv(args, "table2")
    assert table2[-3:] == ["--train", "--recipe", "toy"]  # REMAINDER: last
    assert {"--data", "D", "--limit", "7", "--release-weights", "W", "--no-progress"} <= set(table2)
    assert table2[table2.index("--device") + 1] == "cuda"
    figure9 = _all_argv(args, "figure9")
    assert "--release-weights" not in figure9 and figure9[-3:] == ["--train", "--recipe", "toy"]
    # Each command line parses as that artifact's own command would.
    for artifact in ("table2", "figure9", "detection"):
        sub = args.parser.parse_args(_all_argv(args, artifact))
        assert sub.artifact == artifact and sub.data == "D" and sub.limit == 7
