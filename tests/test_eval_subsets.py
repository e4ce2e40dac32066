"""The harness on part of a data set (how most users score their own model): ``cls`` on Kaggle
and XML ground truth, ``--subset``, DET sub-lists with their own indices, the DET blacklist's
own list, images without detections, unknown WNIDs, named JSON keys and ``--json -``.

Expected numbers are computed here from the files' text (csv, ElementTree, scipy), never from
the harness's own readers."""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import scipy.io

from evaluation import formats
from evaluation.__main__ import main

GT_TXT = "t12/ILSVRC2012_validation_ground_truth.txt"


def _solution(val_mini_dir) -> dict[str, list[str]]:
    """``{image: [WNID per box]}`` straight from LOC_val_solution.csv."""
    with (val_mini_dir / "LOC_val_solution.csv").open(newline="") as f:
        rows = list(csv.reader(f))[1:]
    return {image: tokens.split()[0::5] for image, tokens in rows}


def _mapping(val_mini_dir) -> list[str]:
    return [line.split()[0] for line in (val_mini_dir / "LOC_synset_mapping.txt").open()]


def _guesses(images, truth, wnids):
    """A fixed pattern of mistakes: image i (sorted order) with i % 4 == 0 has a wrong first guess
    and the right second; i % 4 == 1 has five wrong guesses; the rest are right at once."""
    out = {}
    for i, image in enumerate(images):
        right = truth[image]
        wrong = [w for w in wnids[: 6 + i % 900] if w != right][-5:]
        out[image] = [wrong[0], right] if i % 4 == 0 else wrong if i % 4 == 1 else [right]
    return out


def _write_kaggle(path, guesses, boxes=False):
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["ImageId", "PredictionString"])
        for image, wnids in guesses.items():
            groups = [f"{w} 0 0 9 9" if boxes else w for w in wnids]
            writer.writerow([image, " ".join(groups)])
    return path


def _errors(guesses, truth):
    """(top-1, top-5) error counted directly: right label first / anywhere in the guesses."""
    top1 = sum(g[0] != truth[n] for n, g in guesses.items())
    top5 = sum(truth[n] not in g[:5] for n, g in guesses.items())
    return top1, top5


def _run(args, capsys):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ----------------------------------------------------------------------------- 1. cls ground truth


def test_cls_reads_kaggle_solution_csv_and_xml_folder_like_loc(val_mini_dir, tmp_path, capsys):
    solution = _solution(val_mini_dir)
    truth = {image: wnids[0] for image, wnids in solution.items()}
    images = sorted(truth)
    wnids = _mapping(val_mini_dir)
    guesses = _guesses(images, truth, wnids)
    top1, top5 = _errors(guesses, truth)
    assert top1 == 650 and top5 == 325  # the pattern: half wrong at first, a quarter throughout
    pred = _write_kaggle(tmp_path / "mine.csv", guesses)
    # The same guesses as sorted indices 0..999, one line per image in name order (devkit layout).
    positional = tmp_path / "mine.txt"
    positional.write_text("".join(" ".join(str(wnids.index(w)) for w in guesses[n]) + "\n"
                                  for n in images))  # fmt: skip
    ground_truths = [val_mini_dir / "LOC_val_solution.csv",
                     val_mini_dir / "ILSVRC/Annotations/CLS-LOC/val"]  # fmt: skip
    for gt in ground_truths:
        for submission in (pred, positional):
            code, out, err = _run(["cls", "--gt", gt, "--pred", submission,
                                   "--json", tmp_path / "cls.json"], capsys)  # fmt: skip
            assert code == 0, err
            data = json.loads((tmp_path / "cls.json").read_text())
            assert data["top1_error"] == top1 / 1300 and data["top5_error"] == top5 / 1300
            assert data["num_images"] == 1300 and data["missing"] == 0
            assert "over 1,300 images" in out


# ----------------------------------------------------------------------------- 2. --subset


def _devkit_truth(devkit_dir) -> dict[str, str]:
    """``{ILSVRC2012_val_%08d: WNID}`` from the devkit's ground-truth txt and meta.mat."""
    synsets = scipy.io.loadmat(devkit_dir / "t12/meta.mat", squeeze_me=True)["synsets"]
    wnid = {int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in synsets}
    lines = (devkit_dir / GT_TXT).read_text().split()
    return {f"ILSVRC2012_val_{i:08d}": wnid[int(v)] for i, v in enumerate(lines, start=1)}


def test_cls_subset_scores_only_the_images_the_submission_names(
    devkit_dir, val_mini_dir, tmp_path, capsys
):
    truth = _devkit_truth(devkit_dir)
    images = sorted(_solution(val_mini_dir))
    guesses = _guesses(images, truth, _mapping(val_mini_dir))
    top1, top5 = _errors(guesses, truth)
    pred = _write_kaggle(tmp_path / "mine.csv", guesses)
    base = ["cls", "--gt", devkit_dir / GT_TXT, "--meta", devkit_dir / "t12/meta.mat",
            "--pred", pred, "--json", tmp_path / "cls.json"]  # fmt: skip

    code, out, err = _run([*base, "--subset"], capsys)
    assert code == 0, err
    data = json.loads((tmp_path / "cls.json").read_text())
    assert data["top1_error"] == top1 / 1300 and data["top5_error"] == top5 / 1300
    assert data["num_images"] == 1300 and data["num_ground_truth_images"] == 50000
    assert data["subset"] is True and "over 1,300 of 50,000 images" in out
    assert "no line" not in err

    # Without --subset: the devkit's rule, every image without a line is wrong; the warning says
    # what to pass instead.
    code, out, err = _run(base, capsys)
    assert code == 0, err
    data = json.loads((tmp_path / "cls.json").read_text())
    assert data["top1_error"] == (48700 + top1) / 50000
    assert data["top5_error"] == (48700 + top5) / 50000
    assert data["num_images"] == 50000 and data["missing"] == 48700
    assert "48,700 of 50,000 ground-truth images have no line" in err and "--subset" in err


def test_loc_subset_scores_only_the_named_images(val_mini_dir, tmp_path, capsys):
    solution = _solution(val_mini_dir)
    first = sorted(solution)[:100]
    # Every image's first solution box as its only guess: right label, exact box, so each of the
    # 100 images is localized; unnamed images would count as wrong without --subset.
    with (val_mini_dir / "LOC_val_solution.csv").open(newline="") as f:
        rows = {image: tokens.split()[:5] for image, tokens in list(csv.reader(f))[1:]}
    pred = tmp_path / "loc.csv"
    pred.write_text("ImageId,PredictionString\n"
                    + "".join(f"{n},{' '.join(rows[n])}\n" for n in first))  # fmt: skip
    args = ["loc", "--gt", val_mini_dir / "ILSVRC/Annotations/CLS-LOC/val", "--pred", pred,
            "--json", tmp_path / "loc.json"]  # fmt: skip
    code, out, err = _run([*args, "--subset"], capsys)
    assert code == 0, err
    data = json.loads((tmp_path / "loc.json").read_text())
    assert data["loc_error_by_guesses"] == [0.0] * 5 and data["num_images"] == 100
    assert data["num_ground_truth_images"] == 1300 and "over 100 of 1,300 images" in out
    code, out, err = _run(args, capsys)
    assert code == 0 and json.loads((tmp_path / "loc.json").read_text())["loc_error"] == 1200 / 1300
    assert "1,200 of 1,300 ground-truth images have no line" in err and "--subset" in err


def test_positional_submission_for_part_of_the_images_names_the_named_format(tmp_path, capsys):
    (tmp_path / "gt.txt").write_text("1\n2\n3\n")
    (tmp_path / "p.txt").write_text("1\n2\n")
    code, _, err = _run(["cls", "--gt", tmp_path / "gt.txt", "--pred", tmp_path / "p.txt",
                         "--subset"], capsys)  # fmt: skip
    assert code == 2
    assert "p.txt: 2 lines for 3 ground-truth images" in err and "Kaggle CSV" in err


# ----------------------------------------------------------------------------- 3. DET sub-lists


def _xml_boxes(path):
    """[(WNID, xmin, ymin, xmax, ymax)] of one DET XML, by tag (DET files order xmin, xmax, ...)."""
    out = []
    for obj in ET.parse(path).getroot().iter("object"):
        box = obj.find("bndbox")
        out.append((obj.findtext("name").strip(),
                    *(int(float(box.findtext(t))) for t in ("xmin", "ymin", "xmax", "ymax"))))  # fmt: skip
    return out


def _det_id(devkit_dir) -> dict[str, int]:
    synsets = scipy.io.loadmat(devkit_dir / "t14/meta_det.mat", squeeze_me=True)["synsets"]
    return {str(s["WNID"]): int(s["ILSVRC2013_DET_ID"]) for s in synsets
            if 1 <= int(s["ILSVRC2013_DET_ID"]) <= 200}  # fmt: skip


def _list(path):
    return [(name, int(index)) for name, index in (line.split() for line in path.open())]


def _write_det(path, rows):
    """rows: (image index, DET_ID, confidence, x1, y1, x2, y2)."""
    path.write_text("".join(f"{i} {c} {s!r} {x1} {y1} {x2} {y2}\n"
                            for i, c, s, x1, y1, x2, y2 in rows))  # fmt: skip
    return path


def test_det_sub_list_with_its_own_indices_is_scored(devkit_dir, tmp_path, capsys):
    mini = devkit_dir.parent / "ilsvrc-det-val-mini"
    if not mini.exists():
        pytest.skip(f"{mini} is absent (shared data is read in place, never committed)")
    listed = _list(mini / "ILSVRC/ImageSets/DET/val.txt")
    assert listed[0] == ("ILSVRC2012_val_00000347", 4996)  # the line that used to be refused
    det_id = _det_id(devkit_dir)
    xml = mini / "ILSVRC/Annotations/DET/val"
    boxes = {name: _xml_boxes(xml / f"{name}.xml") for name, _ in listed}
    rng = np.random.default_rng(0)
    rows = [(index, det_id[w], float(rng.random()), *b)
            for name, index in listed for w, *b in boxes[name]]  # fmt: skip
    args = ["det", "--gt", xml, "--images", mini / "ILSVRC/ImageSets/DET/val.txt",
            "--meta", devkit_dir / "t14/meta_det.mat", "--pred", _write_det(tmp_path / "d.txt", rows),
            "--json", tmp_path / "det.json"]  # fmt: skip
    code, out, err = _run(args, capsys)
    assert code == 0, err
    data = json.loads((tmp_path / "det.json").read_text())
    classes = {w for b in boxes.values() for w, *_ in b}
    assert data["mean_ap"] == data["mAP"] == 1.0 and len(classes) == 84
    assert sorted(k for k, v in data["ap"].items() if v is not None) == sorted(
        str(det_id[w]) for w in classes
    )
    empty = sum(not b for b in boxes.values())
    assert data["num_images"] == 180 and data["images_without_detections"] == empty == 1


def test_det_sub_list_scores_as_the_same_images_numbered_1_to_k(devkit_dir, tmp_path, capsys):
    # Every 9th val2 image with its val2 index, in shuffled line order, against the same images
    # renumbered 1..K in index order (the list the harness always accepted). Confidences on a
    # coarse grid tie across images, so the tie order (index order, as the devkit's
    # concatenation by index) is exercised too.
    val2 = _list(devkit_dir / "det_val2_list.txt")[::9]
    det_id = _det_id(devkit_dir)
    rng = np.random.default_rng(1)
    rows = []
    for name, index in val2:
        for w, x1, y1, x2, y2 in _xml_boxes(devkit_dir / "det_val2_xml" / f"{name}.xml"):
            d = rng.integers(-12, 13, size=4)
            rows.append((index, det_id[w], float(rng.integers(1, 5)) / 4,
                         x1 + d[0], y1 + d[1], x2 + d[2], y2 + d[3]))  # fmt: skip
    shuffled = [val2[i] for i in rng.permutation(len(val2))]
    (tmp_path / "sub.txt").write_text("".join(f"{n} {i}\n" for n, i in shuffled))
    renumber = {index: k for k, (_, index) in enumerate(val2, start=1)}
    (tmp_path / "renumbered.txt").write_text("".join(f"{n} {renumber[i]}\n" for n, i in val2))
    _write_det(tmp_path / "sub_det.txt", rows)
    _write_det(tmp_path / "renumbered_det.txt", [(renumber[r[0]], *r[1:]) for r in rows])
    aps = []
    for which in ("sub", "renumbered"):
        code, _, err = _run(["det", "--gt", devkit_dir / "det_val2_xml",
                             "--images", tmp_path / f"{which}.txt",
                             "--meta", devkit_dir / "t14/meta_det.mat",
                             "--pred", tmp_path / f"{which}_det.txt",
                             "--json", tmp_path / f"{which}.json"], capsys)  # fmt: skip
        assert code == 0, err
        aps.append(json.loads((tmp_path / f"{which}.json").read_text())["ap"])
    assert aps[0] == aps[1]
    assert 0.0 < np.nanmean([v for v in aps[0].values() if v is not None]) < 1.0


@pytest.mark.parametrize(
    "listing, line, words",
    [
        ("a 7\nb 3\na 9\n", 3, "image a already listed on line 1"),
        ("a 7\nb 3\nc 7\n", 3, "image index 7 already used on line 1"),
        ("a 7\nzz 3\n", 2, "image zz has no annotation"),
    ],
)
def test_det_list_refuses_repeats_and_unknown_images_with_line(
    devkit_dir, tmp_path, capsys, listing, line, words
):
    from evaluation.annotations import Annotation, write_xml

    for name in "abc":
        write_xml(tmp_path / f"{name}.xml",
                  Annotation(name, 100, 100, np.array([[0, 0, 49, 49]]), ("n02672831",)))  # fmt: skip
    (tmp_path / "list.txt").write_text(listing)
    _write_det(tmp_path / "d.txt", [(7, 1, 0.5, 0, 0, 49, 49)])
    code, _, err = _run(["det", "--gt", tmp_path, "--images", tmp_path / "list.txt",
                         "--meta", devkit_dir / "t14/meta_det.mat", "--pred", tmp_path / "d.txt"],
                        capsys)  # fmt: skip
    assert code == 2 and f"list.txt:{line}: {words}" in err


def test_det_detection_for_an_index_the_sub_list_lacks_names_its_line(devkit_dir, tmp_path, capsys):
    from evaluation.annotations import Annotation, write_xml

    for name in "ab":
        write_xml(tmp_path / f"{name}.xml",
                  Annotation(name, 100, 100, np.array([[0, 0, 49, 49]]), ("n02672831",)))  # fmt: skip
    (tmp_path / "list.txt").write_text("a 7\nb 3\n")
    # Index 1 would be in range 1..2 of a list numbered by position; here it names no image.
    _write_det(tmp_path / "d.txt", [(7, 1, 0.5, 0, 0, 49, 49), (1, 1, 0.5, 0, 0, 49, 49)])
    code, _, err = _run(["det", "--gt", tmp_path, "--images", tmp_path / "list.txt",
                         "--meta", devkit_dir / "t14/meta_det.mat", "--pred", tmp_path / "d.txt"],
                        capsys)  # fmt: skip
    assert code == 2 and "d.txt:2: image index 1 is not in the image list" in err


# ----------------------------------------------------------------------------- 4. DET blacklist


def test_det_blacklist_on_val2_names_the_list_its_indices_refer_to(
    devkit_dir, tmp_path, capsys, monkeypatch
):
    blacklist = devkit_dir / "t14/ILSVRC2014_det_validation_blacklist.txt"
    # The first blacklist line whose index is beyond val2's 9,917 images, found in the file.
    line, index = next((k, int(text.split()[0]))
                       for k, text in enumerate(blacklist.read_text().splitlines(), start=1)
                       if int(text.split()[0]) > 9917)  # fmt: skip
    assert (line, index) == (83, 10037)
    _write_det(tmp_path / "d.txt", [(1, 1, 0.5, 0, 0, 9, 9)])
    monkeypatch.chdir(devkit_dir)  # relative paths, as the user typed them
    code, _, err = _run(["det", "--gt", "det_val2_xml", "--images", "det_val2_list.txt",
                         "--meta", "t14/meta_det.mat", "--pred", tmp_path / "d.txt",
                         "--blacklist", "t14/ILSVRC2014_det_validation_blacklist.txt"],
                        capsys)  # fmt: skip
    assert code == 2
    assert (f"t14/ILSVRC2014_det_validation_blacklist.txt:{line}: image index {index} is not in "
            "det_val2_list.txt") in err  # fmt: skip
    assert "--blacklist-images t14/det_val_list.txt" in err


# ----------------------------------------------------------------------------- 5. no detection


def test_det_counts_warns_and_returns_images_without_detections(devkit_dir, tmp_path, capsys):
    # The 180 val2 images of ilsvrc-det-val-mini, each with its boxes from det_val2_xml and one
    # extra low-confidence box (so all 180 have a detection); the other 9,737 have none.
    names = {n for n, _ in _list(devkit_dir / "det_val2_list.txt")}
    mini = devkit_dir.parent / "ilsvrc-det-val-mini/ILSVRC/ImageSets/DET/val.txt"
    if not mini.exists():
        pytest.skip(f"{mini} is absent (shared data is read in place, never committed)")
    ours = _list(mini)
    assert len(ours) == 180 and all(n in names for n, _ in ours)
    det_id = _det_id(devkit_dir)
    rows = []
    for name, index in ours:
        rows.append((index, 1, 0.01, 0, 0, 4, 4))
        for w, *b in _xml_boxes(devkit_dir / "det_val2_xml" / f"{name}.xml"):
            rows.append((index, det_id[w], 0.9, *b))
    code, out, err = _run(["det", "--gt", devkit_dir / "det_val2_xml",
                           "--images", devkit_dir / "det_val2_list.txt",
                           "--meta", devkit_dir / "t14/meta_det.mat",
                           "--pred", _write_det(tmp_path / "d.txt", rows),
                           "--json", tmp_path / "det.json"], capsys)  # fmt: skip
    assert code == 0, err
    data = json.loads((tmp_path / "det.json").read_text())
    assert data["images_without_detections"] == len(names) - 180 == 9737
    assert data["num_images"] == 9917
    # The warning counts the images that hold objects (read from their XMLs here) and lost them.
    ours_names = {n for n, _ in ours}
    lost = [n for n in names - ours_names
            if _xml_boxes(devkit_dir / "det_val2_xml" / f"{n}.xml")]  # fmt: skip
    assert 0 < len(lost) < 9737
    objects = sum(len(_xml_boxes(devkit_dir / "det_val2_xml" / f"{n}.xml")) for n in lost)
    assert f"{len(lost):,} of 9,917 images listed in" in err
    assert f"their {objects:,} objects count as misses" in err
    assert "9,917 listed, 180 with detections, 9,737 without" in out


# ----------------------------------------------------------------------------- 6. unknown WNIDs


def test_unknown_wnid_in_kaggle_submission_is_refused_with_line(devkit_dir, tmp_path, capsys):
    pred = tmp_path / "p.csv"
    pred.write_text("ImageId,PredictionString\n"
                    "ILSVRC2012_val_00000001,n01751748 0 0 9 9\n"
                    "ILSVRC2012_val_00000002,n01440764 0 0 9 9 n99999999 0 0 9 9\n")  # fmt: skip
    code, _, err = _run(["cls", "--gt", devkit_dir / GT_TXT, "--meta", devkit_dir / "t12/meta.mat",
                         "--pred", pred, "--subset"], capsys)  # fmt: skip
    assert code == 2
    assert "p.csv:3: WNID n99999999 is not one of the 1,000 classes of" in err
    assert "correct the label" in err
    # loc, against Kaggle ground truth with the class list beside it.
    gt = tmp_path / "LOC_val_solution.csv"
    gt.write_text("ImageId,PredictionString\nILSVRC2012_val_00000001,n01751748 0 0 9 9\n"
                  "ILSVRC2012_val_00000002,n01440764 0 0 9 9\n")  # fmt: skip
    (tmp_path / "LOC_synset_mapping.txt").write_text("n01440764 tench\nn01751748 sea snake\n")
    code, _, err = _run(["loc", "--gt", gt, "--pred", pred], capsys)
    assert code == 2 and "p.csv:3: WNID n99999999 is not one of the 2 classes of" in err


def test_unknown_wnid_without_any_class_list_is_warned_about_with_line(tmp_path, capsys):
    (tmp_path / "gt").mkdir()
    gt = tmp_path / "gt/solution.csv"
    gt.write_text("ImageId,PredictionString\nA,n01751748 0 0 9 9\n")
    pred = tmp_path / "p.csv"
    pred.write_text("ImageId,PredictionString\nA,n99999999 0 0 9 9 n01751748 0 0 9 9\n")
    code, out, err = _run(["loc", "--gt", gt, "--pred", pred, "--json", tmp_path / "l.json"],
                          capsys)  # fmt: skip
    assert code == 0 and "p.csv:2: WNID n99999999 is in no ground-truth box" in err
    assert "--synsets" in err
    assert json.loads((tmp_path / "l.json").read_text())["loc_error_by_guesses"][:2] == [1.0, 0.0]


# ----------------------------------------------------------------------------- 7. JSON keys


def test_loc_json_names_errors_by_number_of_guesses(tmp_path, capsys):
    gt = tmp_path / "gt.csv"
    gt.write_text("ImageId,PredictionString\nA,n01440764 0 0 49 49\nB,n01443537 10 10 59 59\n")
    (tmp_path / "syn.txt").write_text("n01440764 tench\nn01443537 goldfish\n")
    # A: wrong label first, then the right label and box. B: right label with a box of IoU 0
    # first, then the right box. 1 guess: A and B wrong for loc, A wrong for cls; 2: both right.
    pred = tmp_path / "p.csv"
    pred.write_text("ImageId,PredictionString\n"
                    "A,n01443537 0 0 49 49 n01440764 0 0 49 49\n"
                    "B,n01443537 100 100 120 120 n01443537 10 10 59 59\n")  # fmt: skip
    code, _, err = _run(["loc", "--gt", gt, "--pred", pred, "--synsets", tmp_path / "syn.txt",
                         "--json", tmp_path / "loc.json"], capsys)  # fmt: skip
    assert code == 0, err
    data = json.loads((tmp_path / "loc.json").read_text())
    assert (data["loc_error_1"], data["loc_error_5"]) == (1.0, 0.0)
    assert (data["cls_error_1"], data["cls_error_5"]) == (0.5, 0.0)
    # The earlier names stay: 5-guess values and the full rows.
    assert data["loc_error"] == 0.0 and data["cls_error"] == 0.0
    assert data["loc_error_by_guesses"] == [1.0, 0.0, 0.0, 0.0, 0.0]


# ----------------------------------------------------------------------------- 8. --json -


def test_json_dash_is_standard_output_and_the_table_goes_to_standard_error(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gt.txt").write_text("490\n1\n")
    (tmp_path / "p.txt").write_text("490 2\n3 1\n")
    code, out, err = _run(["cls", "--gt", "gt.txt", "--pred", "p.txt", "--json", "-"], capsys)
    assert code == 0
    data = json.loads(out)  # the whole of standard output is one JSON document
    assert data["top1_error"] == 0.5 and data["top5_error"] == 0.0
    assert "guesses" in err and "error" in err
    assert not (tmp_path / "-").exists()
    # loc too; a written file still works as before.
    (tmp_path / "gt.csv").write_text("ImageId,PredictionString\nA,n01440764 0 0 9 9\n")
    (tmp_path / "s.txt").write_text("n01440764 tench\n")
    (tmp_path / "p.csv").write_text("ImageId,PredictionString\nA,n01440764 0 0 9 9\n")
    code, out, err = _run(["loc", "--gt", "gt.csv", "--pred", "p.csv", "--synsets", "s.txt",
                           "--json", "-"], capsys)  # fmt: skip
    assert code == 0 and json.loads(out)["loc_error_5"] == 0.0 and "loc " in err
    assert not (tmp_path / "-").exists()


def test_sub_list_reader_keeps_indices_and_strict_reader_still_refuses(tmp_path):
    # formats.read_image_list keeps its contract (position = index - 1) for callers that pair by
    # position; read_image_index is what the det command reads.
    path = tmp_path / "l.txt"
    path.write_text("b 4996\na 145\n")
    listed = formats.read_image_index(path)
    assert listed.names == ("b", "a") and listed.indices.tolist() == [4996, 145]
    assert listed.lines == (1, 2)
    with pytest.raises(ValueError, match=r"l\.txt:1: image index 4996, expected 1"):
        formats.read_image_list(path)


def test_det_evaluator_returns_images_without_detections():
    from evaluation.evaluator import DetEvaluator
    from evaluation.tasks import DetGroundTruth

    truth = DetGroundTruth(("a", "b", "c"), np.array([0, 1, 2]), np.array([0, 0, 0]),
                           np.array([[0, 0, 9, 9]] * 3))  # fmt: skip
    det = DetEvaluator(truth, 1)
    # a: found; b: processed with no detection; c: never processed. Two of three are without.
    det.process(["a", "b"], [np.array([0]), np.array([], np.int64)], [np.array([0.9]), np.zeros(0)],
                [np.array([[0, 0, 9, 9]]), np.zeros((0, 4))])  # fmt: skip
    with pytest.warns(UserWarning, match="2 of 3 images have no detection"):
        out = det.evaluate()
    assert out["images_without_detections"] == 2 and out["num_images"] == 3
    assert out["mean_ap"] == out["mAP"] == pytest.approx(1 / 3)
