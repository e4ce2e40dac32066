"""The ILSVRC2012 devkit's class order (ILSVRC2012_ID → WNID), shipped with the package.

``ilsvrc2012_class_order.txt`` beside this module holds the 1000 CLS-LOC WNIDs in ILSVRC2012_ID
order (line k after the header is the class with ILSVRC2012_ID k): the order of the devkit's
validation ground truth and of the released OverFeat networks' outputs (overfeat-release.md
§1.4). It is public data of the devkit's ``meta.mat`` (no names, no images), so a user who has
ImageNet but not the devkit's meta, or the released weights but no ``--meta``, still gets the
order right (decision SHIPPED_CLASS_ORDER; a ``--meta`` given is read instead). The 2014 and 2015 kits keep the same 1000 leaves in the same order under other id
field names (:data:`evaluation.labels.CLS_ID_FIELDS`), so one file serves every kit.

The file was written once by::

    python -m overfeat.data.class_order ILSVRC2012_devkit_t12/data/meta.mat

and ``tests/test_class_order.py`` checks it against the devkit's meta.mat where that is present.
"""

from __future__ import annotations

import argparse
import re
import sys
from functools import cache
from importlib import resources
from pathlib import Path

from evaluation.labels import ClassLabels

__all__ = [
    "CLASS_ORDER_FILE",
    "class_order_path",
    "ilsvrc2012_labels",
    "ilsvrc2012_wnids",
    "write_class_order",
]

CLASS_ORDER_FILE = "ilsvrc2012_class_order.txt"
NUM_CLASSES = 1000
_WNID = re.compile(r"^n\d{8}$")


def class_order_path() -> Path:
    """The shipped file itself (its content is the order, e.g. in a cache key)."""
    return Path(str(resources.files(__package__).joinpath(CLASS_ORDER_FILE)))


@cache
def ilsvrc2012_wnids() -> tuple[str, ...]:
    """The 1000 WNIDs in ILSVRC2012_ID order: ``ilsvrc2012_wnids()[i]`` has ILSVRC2012_ID ``i + 1``."""
    path = class_order_path()
    lines = path.read_text(encoding="ascii").splitlines()
    wnids = tuple(line.strip() for line in lines if line.strip() and not line.startswith("#"))
    # A damaged installation must not silently mislabel every image.
    bad = [w for w in wnids if not _WNID.match(w)]
    if len(wnids) != NUM_CLASSES or len(set(wnids)) != NUM_CLASSES or bad:
        raise RuntimeError(
            f"{path}: expected {NUM_CLASSES} distinct WNIDs, found {len(set(wnids))} "
            f"({len(bad)} malformed); reinstall overfeat-repro"
        )
    return wnids


@cache
def ilsvrc2012_labels() -> ClassLabels:
    """The shipped order as :class:`~evaluation.labels.ClassLabels` (devkit ids known, words
    empty: the file carries WNIDs only)."""
    order = ilsvrc2012_wnids()
    return ClassLabels(wnids=tuple(sorted(order)), devkit_wnids=order, words=("",) * len(order))


def write_class_order(meta: str | Path, out: str | Path) -> Path:
    """Write the class order of the devkit's ``meta`` (meta.mat or meta_clsloc.mat) to ``out``:
    a header line naming the source, then one WNID per line in ILSVRC2012_ID order."""
    meta, out = Path(meta), Path(out)
    order = ClassLabels.from_devkit_meta(meta).devkit_wnids
    header = (
        f"# ILSVRC2012 CLS-LOC class order: line k below is the WNID with ILSVRC2012_ID k. "
        f"Source: the ILSVRC2012 devkit's data/{meta.name} (synsets with ILSVRC2012_ID "
        f"1..{NUM_CLASSES}), written by 'python -m overfeat.data.class_order {meta.name}'.\n"
    )
    out.write_text(header + "".join(f"{w}\n" for w in order), encoding="ascii")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m overfeat.data.class_order",
        description="Write the shipped ILSVRC2012_ID → WNID order from the devkit's meta.mat.",
    )
    parser.add_argument("meta", help="the devkit's data/meta.mat")
    parser.add_argument("--out", default=str(class_order_path()), help="default: the packaged file")
    args = parser.parse_args(argv)
    print(f"wrote {write_class_order(args.meta, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
