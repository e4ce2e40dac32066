"""The galleries of the localization and detection reports (§4, Figures 6 and 7): which images
they show (GALLERY_RULE, worked out by hand from the synthetic set's annotations), the saved
boxes' file, and the picture drawn from it with no network."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
from PIL import Image

from overfeat.reproduce.gallery import (
    GALLERY_COLUMNS,
    GALLERY_DPI,
    GALLERY_WINDOWS,
    LEGEND_INCHES,
    PANEL_INCHES,
    gallery_picks,
    read_gallery,
    render_gallery,
    write_gallery,
)


def test_gallery_rule_takes_each_class_first_image_not_yet_taken():
    # Class 0 first appears in image 1, class 1 in image 3, class 2 in image 0.
    assert gallery_picks([[2], [0], [0], [1], [2]], n=4) == [1, 3, 0]
    assert gallery_picks([[2], [0], [0], [1], [2]], n=2) == [1, 3]
    # Image 1 already shows class 0, so class 1's picture is the next image with one: image 0.
    assert gallery_picks([[1, 2], [0, 1], [0]], n=3) == [1, 0]
    # A class no image shows is passed over; images without objects are never picked.
    assert gallery_picks([[], [5], [3, 5]], n=4) == [2, 1]


def _gallery() -> dict:
    return {
        "artifact": "figure9", "run": "t", "row": "F9-4", "system": "SCR, 1 scale",
        "protocol": {"scales": [1, 2]}, "rule": "GALLERY_RULE", "data_root": "nowhere",
        "scales": [1, 2], "names": {"n01": "tench, Tinca tinca", "n02": ""},
        "images": [
            {"image": "val/a.JPEG", "name": "a", "size": [60, 80], "decoded": True,
             "truth": [["n01", 10, 5, 40, 30]], "windows_class": "n01", "windows_total": 3,
             "windows": [[0, 0, 20, 20, 1], [5, 5, 30, 25, 1], [8, 4, 79, 59, 2]],
             "guesses": [["n01", 6, 3, 45, 33, 1.25], ["n02", 0, 0, 79, 59, 0.5]]},
            {"image": "val/b.JPEG", "name": "b", "size": [50, 50], "decoded": False,
             "truth": [], "windows_class": None, "windows_total": 0, "windows": [],
             "guesses": []},
        ],
    }  # fmt: skip


def test_saved_boxes_round_trip_and_the_same_boxes_give_the_same_bytes(tmp_path):
    a = write_gallery(tmp_path / "a.gallery.json.gz", _gallery())
    b = write_gallery(tmp_path / "b.gallery.json.gz", _gallery())
    assert read_gallery(a) == _gallery()
    assert a.read_bytes() == b.read_bytes()
    # No time stamp in the gzip header (bytes 4..7), so a rerun changes no committed byte.
    assert a.read_bytes()[4:8] == b"\0\0\0\0"
    with gzip.open(a, "rt") as f:
        assert json.load(f)["images"][0]["windows"][2] == [8, 4, 79, 59, 2]


def _expected_size(n: int) -> tuple[int, int]:
    cols = min(n, GALLERY_COLUMNS)
    rows = -(-n // cols)
    return (round(PANEL_INCHES * cols * GALLERY_DPI),
            round((PANEL_INCHES * rows + LEGEND_INCHES) * GALLERY_DPI))  # fmt: skip


def test_an_absent_image_is_drawn_as_a_blank_canvas_and_said(tmp_path):
    png, notes = render_gallery(_gallery(), tmp_path / "g.png", data_root=tmp_path)
    with Image.open(png) as im:
        assert im.size == _expected_size(2)
    assert len(notes) == 2 and all("blank canvas" in n for n in notes)
    assert "a.JPEG not found" in notes[0]
    # With the image there, it is drawn and nothing is said.
    (tmp_path / "val").mkdir()
    Image.fromarray(np.full((60, 80, 3), 200, np.uint8)).save(tmp_path / "val" / "a.JPEG", "JPEG")
    _, notes = render_gallery(_gallery(), tmp_path / "g.png", data_root=tmp_path)
    assert len(notes) == 1 and notes[0].startswith("b:")


@pytest.mark.parametrize("artifact", ["figure9", "detection"])
def test_a_report_links_its_gallery_picture_only_where_it_is_beside_it(tmp_path, artifact):
    """The committed embedded-default report (its CSV and JSON) re-rendered in a bare folder:
    no gallery picture, no gallery section; with ``<run>.gallery.png`` there, one image link to
    it, relative to the Markdown, and the line saying what it shows."""
    import re
    import shutil
    from pathlib import Path

    from evaluation.render import render_run

    committed = Path(__file__).resolve().parents[1] / "reports" / artifact
    folder = tmp_path / "reports" / artifact
    folder.mkdir(parents=True)
    for suffix in (".csv", ".json"):
        shutil.copy(committed / f"embedded-default{suffix}", folder)
    csv = folder / "embedded-default.csv"
    md = render_run(csv).read_text()
    assert "gallery" not in md.lower()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "embedded-default.gallery.png")
    md = render_run(csv).read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]*gallery[^)]*)\)", md)
    assert links == ["embedded-default.gallery.png"]
    assert (csv.parent / links[0]).is_file()
    section = md[md.index("## Gallery"):]
    for shown in ("ground truth", "before the merge", "coloured by scale", "merged guesses"):
        assert shown in section
    # The report's own plot is still linked beside it.
    assert "](embedded-default.png)" in md


# ----------------------------------------------------------------------------- end to end

WIDTH = 0.0625


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The synthetic set of test_reproduce_figure9 (3 classes, 2 validation images each, 4 DET
    images), its classifier, untrained regressors and a toy detector."""
    from test_detect import _detector_run
    from test_reproduce_figure9 import _runs

    from overfeat.data.synthetic import SyntheticConfig, write_synthetic

    root = tmp_path_factory.mktemp("gallery")
    write_synthetic(root / "data", SyntheticConfig(classes=3, train_per_class=1, val_per_class=2,
                                                   det_images=4, class_colours=True))  # fmt: skip
    _detector_run(root / "det", 3)
    return root, _runs(root, 3)


def _first_of_each_class(rows: list[tuple[str, list[str]]]) -> list[str]:
    """GALLERY_RULE worked by hand: for each WNID in sorted order, the first image (in the given
    order) naming it that was not taken."""
    taken: list[str] = []
    for wnid in sorted({w for _, ws in rows for w in ws}):
        taken += [next(n for n, ws in rows if wnid in ws and n not in taken)]
    return taken


def _main(*argv) -> int:
    from overfeat.cli import main

    return main([str(a) for a in argv])


def test_figure9_saves_the_rule_images_boxes_and_report_draws_them_without_a_network(
    tiny, monkeypatch, capsys
):
    import csv

    root, (cls, scr, pcr) = tiny
    reports = root / "reports"
    assert _main("reproduce", "figure9", "--data", root / "data", "--checkpoints",
                 f"classifier={cls}", f"scr={scr}", f"pcr={pcr}", "--rows", "F9-4,WINDOW-2",
                 "--reports", reports, "--cache", root / "cache", "--workers", 0,
                 "--no-progress", "--name", "tiny") == 0  # fmt: skip
    saved = reports / "figure9" / "tiny.gallery.json.gz"
    assert saved.stat().st_size < 40_000
    gallery = read_gallery(saved)
    # Hand: LOC_val_solution.csv in file-name order; n01472173 first boxes image 3,
    # n01521301 image 2, n01548432 image 1.
    with open(root / "data" / "LOC_val_solution.csv") as f:
        truth = sorted((r["ImageId"], r["PredictionString"].split()[0::5]) for r in csv.DictReader(f))
    expected = _first_of_each_class(truth)
    assert expected == [f"ILSVRC2012_val_0000000{i}" for i in (3, 2, 1)]
    assert [e["name"] for e in gallery["images"]] == expected
    # GALLERY_ROW: regressor boxes are preferred to window boxes, even at fewer scales.
    assert gallery["row"] == "F9-4" and gallery["scales"] == [1]
    for e in gallery["images"]:
        assert (root / "data" / e["image"]).is_file()
        with Image.open(root / "data" / e["image"]) as im:
            assert e["size"] == [im.height, im.width]
        # 3 classes: at most 3 distinct labels, one merged box each at this one scale.
        assert 0 < len(e["windows"]) <= GALLERY_WINDOWS and 1 <= len(e["guesses"]) <= 5
        assert e["windows_class"] == e["guesses"][0][0]
        assert all(s == 1 for *_, s in e["windows"])
        assert [g[-1] for g in e["guesses"]] == sorted((g[-1] for g in e["guesses"]), reverse=True)
    # The guesses drawn are the ones the bar scored: its devkit submission's line of each image.
    meta = json.loads((reports / "figure9" / "tiny.json").read_text())
    command = meta["rows"]["F9-4"]["harness"]["score_command"].split()
    lines = open(command[command.index("--pred") + 1]).read().splitlines()
    classes = sorted({w for _, ws in truth for w in ws})
    for e in gallery["images"]:
        line = [int(v) for v in lines[[n for n, _ in truth].index(e["name"])].split()]
        submitted = [line[i : i + 5] for i in range(0, len(line), 5)]
        assert [[classes.index(g[0]), *g[1:5]] for g in e["guesses"]] == submitted[: len(e["guesses"])]

    # Rendering reads the saved file only: no network is built or run.
    import overfeat.localize
    import overfeat.models

    def boom(*a, **k):
        raise AssertionError("the report ran a network")

    for module, name in ((overfeat.models, "build_model"), (overfeat.localize, "candidate_boxes"),
                         (overfeat.localize, "scale_passes")):  # fmt: skip
        monkeypatch.setattr(module, name, boom)
    png = reports / "figure9" / "tiny.gallery.png"
    png.unlink()
    (reports / "figure9" / "other.csv").write_bytes((reports / "figure9" / "tiny.csv").read_bytes())
    (reports / "figure9" / "other.json").write_bytes((reports / "figure9" / "tiny.json").read_bytes())
    capsys.readouterr()
    assert _main("reproduce", "report", "--reports", reports) == 0
    out = capsys.readouterr().out
    assert f"wrote {png}" in out
    assert "gallery skipped for" in out and "other.csv: no saved boxes" in out
    assert not (reports / "figure9" / "other.gallery.png").exists()
    with Image.open(png) as im:
        assert im.size == _expected_size(3)
    # The picture is drawn before the reports are rendered, so the report with one links it.
    assert "](tiny.gallery.png)" in (reports / "figure9" / "tiny.md").read_text()
    assert "gallery.png" not in (reports / "figure9" / "other.md").read_text()


def test_detection_saves_the_rule_images_from_the_det_annotations(tiny):
    import xml.etree.ElementTree as ET

    root, _ = tiny
    reports = root / "reports"
    assert _main("reproduce", "detection", "--data", root / "data", "--checkpoints",
                 f"detector={root / 'det'}", "--reports", reports, "--cache", root / "cache",
                 "--workers", 0, "--no-progress", "--name", "tiny") == 0  # fmt: skip
    gallery = read_gallery(reports / "detection" / "tiny.gallery.json.gz")
    # Hand: the DET list is images 1..4; n01472173 first appears in image 3, n01521301 in
    # image 1, n01548432 in image 1 (taken) and then image 2; image 4 has no object.
    det = root / "data" / "ILSVRC"
    listed = (det / "ImageSets" / "DET" / "val.txt").read_text().split()[0::2]
    rows = []
    for name in listed:
        xml = ET.parse(det / "Annotations" / "DET" / "val" / f"{name}.xml")
        rows.append((name, [o.findtext("name") for o in xml.iter("object")]))
    expected = _first_of_each_class(rows)
    assert expected == [f"ILSVRC2013_val_0000000{i}" for i in (3, 1, 2)]
    assert [e["name"] for e in gallery["images"]] == expected
    assert gallery["row"] == "DET-WIN"  # no regressor was given
    for e in gallery["images"]:
        assert sorted(t[0] for t in e["truth"]) == sorted(dict(rows)[e["name"]])
        assert len(e["guesses"]) <= 5
    assert (reports / "detection" / "tiny.gallery.png").is_file()
    # The run draws its picture before it renders its report, so the report links it.
    assert "](tiny.gallery.png)" in (reports / "detection" / "tiny.md").read_text()
