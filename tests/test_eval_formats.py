"""Submission and ground-truth formats: round trips, and one defined behaviour for each kind of
bad input (ilsvrc-evaluation.md §2.1-2.4, §4, §7 item 10)."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation import formats
from evaluation.annotations import Annotation, write_loc_solution_csv
from evaluation.clsloc import NO_GUESS
from evaluation.tasks import evaluate_classification_files, evaluate_localization_files


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_devkit_guesses_round_trip_and_short_lines_padded(tmp_path):
    labels = np.array([[5, 4, 3, 2, 1], [7, NO_GUESS, NO_GUESS, NO_GUESS, NO_GUESS]])
    formats.write_devkit_guesses(tmp_path / "p.txt", labels)
    assert (tmp_path / "p.txt").read_text() == "5 4 3 2 1\n7\n"
    np.testing.assert_array_equal(formats.read_devkit_guesses(tmp_path / "p.txt"), labels)


def test_devkit_loc_round_trip_with_real_coordinates(tmp_path):
    labels = np.array([[3, 1, NO_GUESS, NO_GUESS, NO_GUESS]])
    boxes = np.full((1, 5, 4), np.nan)
    boxes[0, 0], boxes[0, 1] = [0, 1, 2, 3], [0.5, 1.25, 10, 20]
    formats.write_devkit_loc(tmp_path / "l.txt", labels, boxes)
    assert (tmp_path / "l.txt").read_text() == "3 0 1 2 3 1 0.5 1.25 10 20\n"
    lab, box = formats.read_devkit_loc(tmp_path / "l.txt")
    np.testing.assert_array_equal(lab, labels)
    np.testing.assert_array_equal(box, boxes)


def test_det_submission_round_trip_keeps_confidence_exactly(tmp_path):
    sub = formats.DetSubmission(np.array([1, 2]), np.array([200, 1]), np.array([0.1, 1 / 3]),
                                np.array([[0, 0, 9, 9], [1.5, 2, 3, 4]]))  # fmt: skip
    formats.write_det_submission(tmp_path / "d.txt", sub)
    back = formats.read_det_submission(tmp_path / "d.txt", num_images=2)
    for name in ("image_index", "det_id", "confidence", "boxes"):
        np.testing.assert_array_equal(getattr(back, name), getattr(sub, name))


def test_kaggle_submission_round_trip(tmp_path):
    guesses = {"ILSVRC2012_val_00000002": formats.KaggleGuesses(
        ("n01440764", "n01443537"), np.array([[0, 0, 10, 10], [1, 2, 3, 4.5]]))}  # fmt: skip
    formats.write_kaggle_submission(tmp_path / "k.csv", guesses)
    text = (tmp_path / "k.csv").read_text()
    assert text == ("ImageId,PredictionString\n"
                    "ILSVRC2012_val_00000002,n01440764 0 0 10 10 n01443537 1 2 3 4.5\n")  # fmt: skip
    back = formats.read_kaggle_submission(tmp_path / "k.csv")
    assert back.keys() == guesses.keys()
    np.testing.assert_array_equal(back["ILSVRC2012_val_00000002"].boxes, guesses[
        "ILSVRC2012_val_00000002"].boxes)  # fmt: skip


def test_det_lists_and_blacklists_read(devkit_dir):
    names = formats.read_image_list(devkit_dir / "t14/det_val_list.txt")
    assert len(names) == 20121 and names[0] == "ILSVRC2012_val_00000001"
    bl = formats.read_det_blacklist(devkit_dir / "t14/ILSVRC2014_det_validation_blacklist.txt")
    assert len(bl) == 409 and bl[0] == (46, "n00007846")


@pytest.mark.parametrize(
    "reader, text, line, words",
    [
        (formats.read_devkit_guesses, "1 2 3\n4 x 6\n", 2, "integer label"),
        (formats.read_devkit_guesses, "1 2 3\n\n4 5 6\n", 2, "blank line"),
        (formats.read_devkit_guesses, "1 2.5\n", 1, "integer"),
        (formats.read_devkit_guesses, "1 -2\n", 1, "negative"),
        (formats.read_devkit_loc, "1 0 0 9 9\n2 0 0 9\n", 2, "groups of 5"),
        (formats.read_devkit_loc, "1 0 0 9 nan\n", 1, "NaN and inf"),
        (formats.read_devkit_loc, "1 0 0 9 inf\n", 1, "NaN and inf"),
        (formats.read_ground_truth_txt, "490\n1001\n", 2, "outside 1..1000"),
        (formats.read_image_list, "a 1\nb 3\n", 2, "expected 2"),
        (formats.read_image_list, "a 1\nb 2\na 3\n", 3, "already listed on line 1"),
        (formats.read_clsloc_blacklist, "36\nx\n", 2, "image index"),
        (formats.read_det_blacklist, "46 n00007846\n85\n", 2, "<image_index> <WNID>"),
    ],
)
def test_malformed_line_error_names_file_and_line(tmp_path, reader, text, line, words):
    path = write(tmp_path / "in.txt", text)
    with pytest.raises(ValueError, match=rf"in\.txt:{line}: .*{words}"):
        reader(path)


@pytest.mark.parametrize(
    "text, line, words",
    [
        ("1 1 0.5 0 0 9 9\n1 1 0.5 0 0 9\n", 2, "6 fields"),
        ("1 1 0.5 0 0 9 9\n2 1 nan 0 0 9 9\n", 2, "NaN and inf"),
        ("1 1 0.5 0 0 9 9\n3 1 0.5 0 0 9 9\n", 2, "not in the image list"),
        ("1 201 0.5 0 0 9 9\n", 1, "DET_ID 201 outside 1..200"),
        ("1 0 0.5 0 0 9 9\n", 1, "DET_ID 0 outside"),
        ("1 1.5 0.5 0 0 9 9\n", 1, "integer DET_ID"),
    ],
)
def test_bad_det_line_names_file_and_line(tmp_path, text, line, words):
    path = write(tmp_path / "det.txt", text)
    with pytest.raises(ValueError, match=rf"det\.txt:{line}: .*{words}"):
        formats.read_det_submission(path, num_images=2)


def test_positional_submission_with_wrong_line_count_is_refused(tmp_path):
    gt = write(tmp_path / "gt.txt", "1\n2\n3\n")
    pred = write(tmp_path / "pred.txt", "1\n2\n")
    with pytest.raises(ValueError, match="2 lines for 3 ground-truth images"):
        evaluate_classification_files(gt, pred)


def _clsloc_gt(tmp_path):
    anns = [
        Annotation("ILSVRC2012_val_00000001", 0, 0, np.array([[0, 0, 9, 9]]), ("n01440764",)),
        Annotation("ILSVRC2012_val_00000002", 0, 0, np.array([[0, 0, 9, 9]]), ("n01443537",)),
    ]
    write_loc_solution_csv(tmp_path / "gt.csv", anns)
    write(tmp_path / "syn.txt", "n01440764 tench\nn01443537 goldfish\n")
    return tmp_path / "gt.csv", tmp_path / "syn.txt"


def test_kaggle_submission_unknown_image_refused(tmp_path):
    gt, syn = _clsloc_gt(tmp_path)
    pred = write(
        tmp_path / "p.csv", "ImageId,PredictionString\nILSVRC2012_val_00000009,n01440764 0 0 9 9\n"
    )
    with pytest.raises(ValueError, match="ILSVRC2012_val_00000009 is not in the ground truth"):
        evaluate_localization_files(gt, pred, synsets=syn)


def test_kaggle_submission_repeated_image_refused_with_line(tmp_path):
    pred = write(
        tmp_path / "p.csv", "ImageId,PredictionString\nA,n01440764 0 0 9 9\nA,n01440764 0 0 9 9\n"
    )
    with pytest.raises(ValueError, match=r"p\.csv:3: image A appears twice"):
        formats.read_kaggle_submission(pred)


def test_kaggle_submission_missing_image_counts_wrong_with_warning(tmp_path):
    gt, syn = _clsloc_gt(tmp_path)
    pred = write(
        tmp_path / "p.csv", "ImageId,PredictionString\nILSVRC2012_val_00000001,n01440764 0 0 9 9\n"
    )
    with pytest.warns(UserWarning, match="1 of 2 ground-truth images have no line"):
        res, extra = evaluate_localization_files(gt, pred, synsets=syn)
    assert res.loc_error == 0.5 and res.cls_error == 0.5 and extra["missing"] == 1


def test_devkit_loc_labels_in_index_space_need_a_class_list(tmp_path):
    anns = [Annotation("x_1", 0, 0, np.array([[0, 0, 9, 9]]), ("n01440764",))]
    write_loc_solution_csv(tmp_path / "gt.csv", anns)
    pred = write(tmp_path / "p.txt", "0 0 0 9 9\n")
    with pytest.raises(ValueError, match="pass --meta META_MAT"):
        evaluate_localization_files(tmp_path / "gt.csv", pred)
    # With the sorted list, label 0 is tench (index space), and the box matches exactly.
    write(tmp_path / "LOC_synset_mapping.txt", "n01440764 tench\n")
    res, _ = evaluate_localization_files(tmp_path / "gt.csv", pred)
    assert res.loc_error == 0.0


def test_devkit_id_out_of_range_refused_with_line(tmp_path, devkit_dir):
    gt, _ = _clsloc_gt(tmp_path)
    pred = write(tmp_path / "p.txt", "1 0 0 9 9\n1001 0 0 9 9\n")
    with pytest.raises(ValueError, match=r"p\.txt:2: label 1001 outside ILSVRC2012_ID 1..1000"):
        evaluate_localization_files(gt, pred, meta=devkit_dir / "t12/meta.mat")


def test_empty_det_submission_warns_and_scores_zero(tmp_path):
    from evaluation.detection import evaluate_detection

    with pytest.warns(UserWarning, match="no detections"):
        sub = formats.read_det_submission(write(tmp_path / "d.txt", ""), num_images=1)
    res = evaluate_detection(sub.image_index - 1, sub.det_id - 1, sub.confidence, sub.boxes,
                             np.array([0]), np.array([0]), np.array([[0, 0, 9, 9]]), 1)  # fmt: skip
    assert len(sub) == 0 and res.ap.tolist() == [0.0]


def test_classification_label_out_of_range_refused_with_line(tmp_path):
    # README "bad submissions": an out-of-range label is refused (as the loc command does), not
    # scored as a guess that never matches; here the right label 490 comes first, so a silent
    # acceptance would report error 0.
    gt = write(tmp_path / "gt.txt", "490\n1\n")
    pred = write(tmp_path / "p.txt", "490 1\n1 2 1860\n")
    with pytest.raises(ValueError, match=r"p\.txt:2: label 1860 outside ILSVRC2012_ID 1..1000"):
        evaluate_classification_files(gt, pred)


def test_files_saved_with_a_byte_order_mark_are_read(tmp_path):
    # Spreadsheet programs and pandas' "utf-8-sig" start a CSV with U+FEFF; it is still the
    # Kaggle format (header ImageId,PredictionString), for submissions and ground truth alike.
    gt, syn = _clsloc_gt(tmp_path)
    gt.write_text("\ufeff" + gt.read_text(encoding="utf-8"), encoding="utf-8")
    pred = write(tmp_path / "p.csv", "\ufeffImageId,PredictionString\n"
                 "ILSVRC2012_val_00000001,n01440764 0 0 9 9\n"
                 "ILSVRC2012_val_00000002,n01440764 0 0 9 9 n01443537 0 0 9 9\n")  # fmt: skip
    res, extra = evaluate_localization_files(gt, pred, synsets=syn)
    assert res.loc_error_by_guesses == (0.5, 0.0, 0.0, 0.0, 0.0) and extra["missing"] == 0
    # The same mark before a DET submission's first line.
    det = tmp_path / "det.txt"
    det.write_text("\ufeff1 1 0.5 0 0 9 9\n1 1 0.25 0 0 9 9\n", encoding="utf-8")
    sub = formats.read_det_submission(det, num_images=1)
    assert sub.confidence.tolist() == [0.5, 0.25] and sub.image_index.tolist() == [1, 1]


def test_index_space_label_1000_error_names_the_meta_fix(tmp_path):
    # Without --meta the synset mapping beside the ground truth makes integer labels sorted
    # indices; a devkit submission then holds ILSVRC2012_ID 1000, and the error says what to pass.
    gt, syn = _clsloc_gt(tmp_path)
    pred = write(tmp_path / "p.txt", "1 0 0 9 9\n1000 0 0 9 9\n")
    with pytest.raises(ValueError, match=r"p\.txt:2: label 1000 outside sorted index 0..999 "
                                         r"\(if the labels are ILSVRC2012_IDs, pass --meta"):  # fmt: skip
        evaluate_localization_files(gt, pred, synsets=syn)
