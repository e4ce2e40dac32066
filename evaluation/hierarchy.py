"""The ILSVRC class hierarchy, and the DET classes as sets of CLS-LOC classes.

The 2014 devkit's ``meta_clsloc.mat`` holds 1,860 synsets: ILSVRC2014_IDs 1..1000 are the CLS-LOC
classes (leaves, no children), 1001..1860 their WordNet ancestors, each with ``children`` (a list
of ILSVRC2014_IDs). It is a DAG, not a tree: 75 synsets have two parents.

The 200 DET classes (``meta_det.mat``) are synsets of that hierarchy: 150 are CLS-LOC classes, 50
are ancestors of CLS-LOC classes (n02084071 dog over the 118 dog breeds, n00007846 person over
scuba diver, groom and ballplayer; bird, car, airplane, chair, ...). A network trained on the
1,000 CLS-LOC classes therefore speaks about every DET class: a DET class *covers* the CLS-LOC
classes it is or lies above (:func:`det_class_cover`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from evaluation.labels import CLS_ID_FIELDS, NUM_CLS_CLASSES, DetLabels, _load_synsets

__all__ = ["Hierarchy", "det_class_cover", "det_class_mapping"]


@dataclass(frozen=True)
class Hierarchy:
    """A class DAG: ``wnids[i]`` is synset ``i``; ``children[i]`` the indices of its children;
    synsets ``0 .. num_leaves - 1`` are the classes a network outputs (CLS-LOC ILSVRC2014_ID − 1)."""

    wnids: tuple[str, ...]
    children: tuple[tuple[int, ...], ...]
    num_leaves: int

    def __post_init__(self) -> None:
        if len(self.children) != len(self.wnids) or len(set(self.wnids)) != len(self.wnids):
            raise ValueError("Hierarchy: one children tuple per synset, WNIDs unique")
        if any(self.children[i] for i in range(self.num_leaves)):
            raise ValueError("Hierarchy: the first num_leaves synsets must have no children")

    @classmethod
    def from_devkit_meta(cls, path: str | Path) -> Hierarchy:
        """Read ``meta_clsloc.mat`` (2014 kit; 2015 kit: field ILSVRC2015_CLSLOC_ID)."""
        path = Path(path)
        synsets = _load_synsets(path)
        fields = synsets[0]._fieldnames
        id_field = next((f for f in CLS_ID_FIELDS if f in fields), None)
        if id_field is None or "children" not in fields:
            raise ValueError(
                f"{path}: synsets need a {'/'.join(CLS_ID_FIELDS)} and a children field "
                f"(fields: {fields}); pass the 2014 devkit's meta_clsloc.mat"
            )
        by_id = {int(getattr(s, id_field)): s for s in synsets}
        if sorted(by_id) != list(range(1, len(synsets) + 1)):
            raise ValueError(f"{path}: ids are not 1..{len(synsets)}")
        ordered = [by_id[i] for i in range(1, len(synsets) + 1)]
        return cls(
            wnids=tuple(str(s.WNID) for s in ordered),
            # scipy squeezes a one-child list to a scalar and an empty one to an empty array.
            children=tuple(tuple(int(c) - 1 for c in np.atleast_1d(s.children)) for s in ordered),
            num_leaves=NUM_CLS_CLASSES,
        )

    @cached_property
    def wnid_to_index(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.wnids)}

    @cached_property
    def _leaves_under(self) -> tuple[frozenset[int], ...]:
        memo: dict[int, frozenset[int]] = {}

        def under(i: int) -> frozenset[int]:
            if i not in memo:
                if i < self.num_leaves:
                    memo[i] = frozenset((i,))
                else:
                    memo[i] = frozenset().union(*(under(c) for c in self.children[i]))
            return memo[i]

        return tuple(under(i) for i in range(len(self.wnids)))

    def leaves_under(self, wnid: str) -> tuple[str, ...]:
        """The leaf classes at or below ``wnid``, sorted by WNID; a leaf is its own only one."""
        if wnid not in self.wnid_to_index:
            raise KeyError(f"{wnid}: not a synset of the hierarchy")
        return tuple(sorted(self.wnids[i] for i in self._leaves_under[self.wnid_to_index[wnid]]))


def det_class_cover(hierarchy: Hierarchy, det_wnids) -> dict[str, tuple[str, ...]]:
    """Each DET class → the CLS-LOC classes it covers (itself when it is one, else all its leaf
    descendants), in ``det_wnids`` order; a ``ValueError`` naming any DET class that is not in
    the hierarchy or covers no CLS-LOC class."""
    cover, bad = {}, []
    # Decision DET_CLASS_COVER: an ancestor covers every CLS-LOC class below it by any path (the
    # DAG's two-parent synsets count once), so a DET class means "this or any kind of it", as
    # DET's "dog" boxes hold every breed.
    for w in det_wnids:
        leaves = hierarchy.leaves_under(w) if w in hierarchy.wnid_to_index else ()
        if not leaves:
            bad.append(w)
        cover[w] = leaves
    if bad:
        raise ValueError(f"DET classes outside the CLS-LOC hierarchy: {', '.join(bad)}")
    return cover


def det_class_mapping(meta_clsloc: str | Path, meta_det: str | Path) -> dict[str, tuple[str, ...]]:
    """:func:`det_class_cover` of the 200 DET classes of ``meta_det.mat`` (DET_ID order) over the
    hierarchy of ``meta_clsloc.mat``."""
    return det_class_cover(
        Hierarchy.from_devkit_meta(meta_clsloc), DetLabels.from_devkit_meta(meta_det).wnids
    )
