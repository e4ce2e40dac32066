"""Label spaces (evaluation/labels.py) against the devkit's own files (ilsvrc-evaluation.md §2.4)."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation.labels import ClassLabels, DetLabels


@pytest.fixture(scope="module")
def labels(devkit_dir):
    return ClassLabels.from_devkit_meta(devkit_dir / "t12/meta.mat")


def test_devkit_ids_are_not_sorted_order(labels):
    # §2.4: ID 1 = n02119789 kit fox, 2 = n02100735, 1000 = n03255030; index 0 = n01440764 tench.
    assert labels.devkit_wnids[0] == "n02119789" and labels.devkit_wnids[1] == "n02100735"
    assert labels.devkit_wnids[999] == "n03255030" and labels.wnids[0] == "n01440764"
    assert labels.devkit_to_index[1] == labels.wnids.index("n02119789")


def test_first_validation_image_is_sea_snake(labels, devkit_dir):
    # Ground truth line 1 = 490 = n01751748 sea snake (devkit README).
    first = int((devkit_dir / "t12/ILSVRC2012_validation_ground_truth.txt").read_text().split()[0])
    assert first == 490 and labels.devkit_wnids[first - 1] == "n01751748"
    assert labels.wnid_to_devkit_id["n01751748"] == 490


def test_index_and_devkit_tables_are_inverse_permutations(labels):
    ids = np.arange(1, 1001)
    assert sorted(labels.index_to_devkit.tolist()) == ids.tolist()
    np.testing.assert_array_equal(labels.index_to_devkit[labels.devkit_ids_to_index(ids)], ids)
    np.testing.assert_array_equal(labels.devkit_ids_to_index(np.array([0, 1001, -3])), [-1, -1, -1])


def test_2014_meta_has_the_same_order(labels, devkit_dir):
    assert ClassLabels.from_devkit_meta(devkit_dir / "t14/meta_clsloc.mat").devkit_wnids == (
        labels.devkit_wnids
    )


def test_kaggle_synset_mapping_is_the_sorted_devkit_list(labels, val_mini_dir):
    kaggle = ClassLabels.from_synset_mapping(val_mini_dir / "LOC_synset_mapping.txt")
    assert kaggle.wnids == labels.wnids and kaggle.devkit_wnids is None
    with pytest.raises(ValueError, match="read the devkit meta.mat"):
        _ = kaggle.devkit_to_index


def test_det_ids_accordion_to_zebra(devkit_dir):
    det = DetLabels.from_devkit_meta(devkit_dir / "t14/meta_det.mat")
    assert len(det.wnids) == 200 and det.wnids[0] == "n02672831" and det.wnids[199] == "n02391049"
    assert det.wnid_to_det_id["n02391049"] == 200


def test_wrong_meta_file_is_named(devkit_dir):
    with pytest.raises(ValueError, match="meta_det.mat.*pass the CLS-LOC meta.mat"):
        ClassLabels.from_devkit_meta(devkit_dir / "t14/meta_det.mat")


def _renamed_meta(src, dst, id_field, new_id_field, keep):
    """The devkit meta ``src`` rewritten as the ILSVRC2015 devkit lays it out: the leaf synsets
    only, the id field renamed, ``words``/``gloss`` renamed ``name``/``description`` (2015 readme:
    "the same as in ILSVRC2012/13 devkits except the id field was renamed")."""
    import scipy.io

    mat = scipy.io.loadmat(str(src), squeeze_me=True, struct_as_record=False)
    leaves = [s for s in mat["synsets"] if 1 <= int(getattr(s, id_field)) <= keep]
    out = np.zeros((1, len(leaves)), dtype=[(new_id_field, "O"), ("WNID", "O"), ("name", "O"),
                                            ("description", "O")])  # fmt: skip
    for i, s in enumerate(leaves):
        name = s.words if hasattr(s, "words") else s.name
        out[0, i] = (float(getattr(s, id_field)), str(s.WNID), str(name), "")
    scipy.io.savemat(str(dst), {"synsets": out})
    return {int(getattr(s, id_field)): str(s.WNID) for s in leaves}


def test_2015_devkit_meta_with_renamed_fields_gives_the_same_ids(devkit_dir, tmp_path, labels):
    ids = _renamed_meta(devkit_dir / "t12/meta.mat", tmp_path / "meta_clsloc.mat",
                        "ILSVRC2012_ID", "ILSVRC2015_CLSLOC_ID", 1000)  # fmt: skip
    got = ClassLabels.from_devkit_meta(tmp_path / "meta_clsloc.mat")
    assert got.devkit_wnids == tuple(ids[i] for i in range(1, 1001))
    assert got.devkit_wnids[0] == "n02119789" and got.words == labels.words
    det_ids = _renamed_meta(devkit_dir / "t14/meta_det.mat", tmp_path / "meta_det.mat",
                            "ILSVRC2013_DET_ID", "ILSVRC2015_DET_ID", 200)  # fmt: skip
    det = DetLabels.from_devkit_meta(tmp_path / "meta_det.mat")
    assert det.wnids == tuple(det_ids[i] for i in range(1, 201)) and det.wnids[0] == "n02672831"
