"""The ILSVRC2012_ID → WNID order shipped with the package (overfeat/data/ilsvrc2012_class_order.txt).

Checked against the devkit's meta.mat read here with scipy (where ../shared/data has it), against
the spot checks of overfeat-release.md §1.4 (everywhere), and against pyproject.toml's package
data, so an installed copy carries it.
"""

from __future__ import annotations

import fnmatch
import re

import pytest
from conftest import ROOT

from overfeat.data.class_order import (
    CLASS_ORDER_FILE,
    class_order_path,
    ilsvrc2012_labels,
    ilsvrc2012_wnids,
    write_class_order,
)

SHIPPED = ROOT / "overfeat" / "data" / CLASS_ORDER_FILE

# overfeat-release.md §1.4: 0-based release index (ILSVRC2012_ID − 1) → WNID.
SPOT_CHECKS = {0: "n02119789", 1: "n02100735", 212: "n01882714", 428: "n02012849",
               448: "n01440764", 544: "n03126707", 600: "n01768244", 629: "n02206856",
               781: "n03710637", 976: "n03710721", 999: "n03255030"}  # fmt: skip


def _lines() -> list[str]:
    return SHIPPED.read_text(encoding="ascii").splitlines()


def test_shipped_file_states_its_source_in_a_header_line():
    header = _lines()[0]
    assert header.startswith("# ") and "ILSVRC2012_ID" in header
    assert "meta.mat" in header and "python -m overfeat.data.class_order" in header


def test_shipped_file_holds_1000_distinct_wnids_one_per_line():
    body = _lines()[1:]
    assert len(body) == 1000 and len(set(body)) == 1000
    assert all(re.fullmatch(r"n\d{8}", w) for w in body)
    assert list(ilsvrc2012_wnids()) == body
    assert class_order_path().resolve() == SHIPPED.resolve()


def test_shipped_order_is_the_release_order_of_the_documented_spot_checks():
    wnids = ilsvrc2012_wnids()
    assert {i: wnids[i] for i in SPOT_CHECKS} == SPOT_CHECKS


def test_shipped_order_equals_the_devkit_meta_mat(devkit_dir):
    import scipy.io

    synsets = scipy.io.loadmat(str(devkit_dir / "t12" / "meta.mat"), squeeze_me=True)["synsets"]
    by_id = {int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in synsets
             if 1 <= int(s["ILSVRC2012_ID"]) <= 1000}  # fmt: skip
    assert list(ilsvrc2012_wnids()) == [by_id[i] for i in range(1, 1001)]


def test_rewriting_from_the_devkit_meta_reproduces_the_shipped_file(devkit_dir, tmp_path):
    out = write_class_order(devkit_dir / "t12" / "meta.mat", tmp_path / CLASS_ORDER_FILE)
    assert out.read_text(encoding="ascii") == SHIPPED.read_text(encoding="ascii")


def test_labels_from_the_shipped_order_map_ids_to_sorted_indices():
    labels = ilsvrc2012_labels()
    assert labels.wnids == tuple(sorted(ilsvrc2012_wnids()))
    # tench: ILSVRC2012_ID 449, sorted index 0; kit fox: ID 1, sorted index 278 (§1.4).
    assert labels.devkit_to_index[449] == 0 and labels.devkit_to_index[1] == 278


def test_pyproject_ships_the_file_as_package_data():
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    package_data = config["tool"]["setuptools"]["package-data"]
    patterns = package_data.get("overfeat.data", [])
    assert any(fnmatch.fnmatch(CLASS_ORDER_FILE, p) for p in patterns), package_data
