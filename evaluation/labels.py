"""Label spaces of ILSVRC, and the only place that converts between them.

Three label spaces exist for the 1,000 CLS-LOC classes (shared/reference/ilsvrc-evaluation.md §2.4,
§7 item 1) and they are never mixed silently:

- the **WNID** string (``n01440764``);
- the **index** 0..999 of the WNID in sorted order (torchvision, Kaggle ``LOC_synset_mapping.txt``,
  the train folder order);
- the devkit's **ILSVRC2012_ID** 1..1000 (devkit ground truth and submissions, the released
  OverFeat weights' output order), read from the devkit's ``meta.mat`` / ``meta_clsloc.mat``.

DET has its own space, **DET_ID** 1..200 (``meta_det.mat``, ``ILSVRC2013_DET_ID``).

Converters are vectorised lookup tables: ``labels.devkit_to_index[ids]`` maps an integer array of
ILSVRC2012_IDs to indices, with -1 where an id is out of range.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

__all__ = ["ClassLabels", "DetLabels", "read_synset_mapping"]

NUM_CLS_CLASSES = 1000
NUM_DET_CLASSES = 200
# The id field was renamed from kit to kit while the ids stayed the same (ILSVRC2015 readme: "the
# same as in ILSVRC2012/13 devkits except the id field was renamed"); the 2015 kit also calls the
# CLS-LOC ``words`` field ``name``. Every name is accepted, the first one present is used.
CLS_ID_FIELDS = ("ILSVRC2012_ID", "ILSVRC2014_ID", "ILSVRC2015_CLSLOC_ID")
DET_ID_FIELDS = ("ILSVRC2013_DET_ID", "ILSVRC2014_DET_ID", "ILSVRC2015_DET_ID")


def _load_synsets(path: Path) -> list:
    import scipy.io

    try:
        mat = scipy.io.loadmat(str(path), squeeze_me=True, struct_as_record=False)
    except Exception as exc:  # scipy raises several kinds for a non-MAT file
        raise ValueError(f"{path}: not a readable devkit meta .mat file ({exc})") from exc
    if "synsets" not in mat:
        raise ValueError(f"{path}: no 'synsets' variable; expected the devkit's meta .mat file")
    return list(np.atleast_1d(mat["synsets"]))


@dataclass(frozen=True)
class ClassLabels:
    """The 1,000 CLS-LOC classes.

    ``wnids``: the WNIDs in sorted order (position = index 0..999).
    ``devkit_wnids``: the WNIDs in ILSVRC2012_ID order (position = id − 1), or ``None`` when only a
    sorted mapping (Kaggle) was read and devkit ids are therefore unknown.
    ``words``: human-readable names, aligned with ``wnids``.
    """

    wnids: tuple[str, ...]
    devkit_wnids: tuple[str, ...] | None
    words: tuple[str, ...]

    def __post_init__(self) -> None:
        if list(self.wnids) != sorted(self.wnids) or len(set(self.wnids)) != len(self.wnids):
            raise ValueError("ClassLabels.wnids must be sorted and unique")
        if self.devkit_wnids is not None and sorted(self.devkit_wnids) != list(self.wnids):
            raise ValueError("devkit order and sorted order must hold the same WNIDs")

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_devkit_meta(cls, path: str | Path) -> ClassLabels:
        """Read ``meta.mat`` (2012 kit, field ILSVRC2012_ID) or ``meta_clsloc.mat`` (2014 kit,
        field ILSVRC2014_ID; 2015 kit, field ILSVRC2015_CLSLOC_ID; the same 1,000 leaves in the
        same order)."""
        path = Path(path)
        synsets = _load_synsets(path)
        fields = synsets[0]._fieldnames
        id_field = next((f for f in CLS_ID_FIELDS if f in fields), None)
        if id_field is None:
            raise ValueError(
                f"{path}: synsets have no {'/'.join(CLS_ID_FIELDS)} field (fields: {fields}); "
                "pass the CLS-LOC meta.mat, not meta_det.mat"
            )
        words_field = "words" if "words" in fields else "name"
        leaves = {}
        for s in synsets:
            i = int(getattr(s, id_field))
            if 1 <= i <= NUM_CLS_CLASSES:
                leaves[i] = (str(s.WNID), str(getattr(s, words_field, "")))
        if sorted(leaves) != list(range(1, NUM_CLS_CLASSES + 1)):
            raise ValueError(f"{path}: expected ids 1..1000, found {len(leaves)} leaf synsets")
        devkit = tuple(leaves[i][0] for i in range(1, NUM_CLS_CLASSES + 1))
        words = dict(leaves.values())
        wnids = tuple(sorted(devkit))
        return cls(wnids=wnids, devkit_wnids=devkit, words=tuple(words[w] for w in wnids))

    @classmethod
    def from_synset_mapping(cls, path: str | Path) -> ClassLabels:
        """Read Kaggle's ``LOC_synset_mapping.txt`` (``WNID words`` per line, sorted)."""
        wnids, words = read_synset_mapping(path)
        if list(wnids) != sorted(wnids):
            raise ValueError(f"{path}: WNIDs are not in sorted order; the file is not the mapping")
        return cls(wnids=tuple(wnids), devkit_wnids=None, words=tuple(words))

    # ---------------------------------------------------------------- lookups
    @cached_property
    def wnid_to_index(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.wnids)}

    @cached_property
    def wnid_to_devkit_id(self) -> dict[str, int]:
        return {w: i + 1 for i, w in enumerate(self._require_devkit())}

    @cached_property
    def devkit_to_index(self) -> np.ndarray:
        """``(1001,)`` int64: ILSVRC2012_ID → index 0..999; entry 0 is -1."""
        table = np.full(len(self.wnids) + 1, -1, dtype=np.int64)
        for i, w in enumerate(self._require_devkit(), start=1):
            table[i] = self.wnid_to_index[w]
        return table

    @cached_property
    def index_to_devkit(self) -> np.ndarray:
        """``(1000,)`` int64: index 0..999 → ILSVRC2012_ID 1..1000."""
        table = np.empty(len(self.wnids), dtype=np.int64)
        table[self.devkit_to_index[1:]] = np.arange(1, len(self.wnids) + 1)
        return table

    def devkit_ids_to_index(self, ids: np.ndarray) -> np.ndarray:
        """Map ILSVRC2012_IDs (any shape) to indices; out-of-range ids become -1."""
        ids = np.asarray(ids, dtype=np.int64)
        out = np.full(ids.shape, -1, dtype=np.int64)
        ok = (ids >= 1) & (ids <= len(self.wnids))
        out[ok] = self.devkit_to_index[ids[ok]]
        return out

    def _require_devkit(self) -> tuple[str, ...]:
        if self.devkit_wnids is None:
            raise ValueError(
                "devkit ILSVRC2012_IDs are unknown for labels read from a sorted synset mapping; "
                "read the devkit meta.mat with ClassLabels.from_devkit_meta"
            )
        return self.devkit_wnids


@dataclass(frozen=True)
class DetLabels:
    """The 200 DET classes: ``wnids[k]`` is the class with DET_ID ``k + 1``."""

    wnids: tuple[str, ...]
    names: tuple[str, ...]

    @classmethod
    def from_devkit_meta(cls, path: str | Path) -> DetLabels:
        path = Path(path)
        synsets = _load_synsets(path)
        id_field = next((f for f in DET_ID_FIELDS if f in synsets[0]._fieldnames), None)
        if id_field is None:
            raise ValueError(
                f"{path}: synsets have no {'/'.join(DET_ID_FIELDS)} field; pass meta_det.mat"
            )
        leaves = {}
        for s in synsets:
            i = int(getattr(s, id_field))
            if 1 <= i <= NUM_DET_CLASSES:
                leaves[i] = (str(s.WNID), str(s.name))
        if sorted(leaves) != list(range(1, NUM_DET_CLASSES + 1)):
            raise ValueError(f"{path}: expected DET ids 1..200, found {len(leaves)}")
        return cls(
            wnids=tuple(leaves[i][0] for i in range(1, NUM_DET_CLASSES + 1)),
            names=tuple(leaves[i][1] for i in range(1, NUM_DET_CLASSES + 1)),
        )

    @cached_property
    def wnid_to_det_id(self) -> dict[str, int]:
        return {w: i + 1 for i, w in enumerate(self.wnids)}


def read_synset_mapping(path: str | Path) -> tuple[list[str], list[str]]:
    """Read ``WNID words`` lines (Kaggle ``LOC_synset_mapping.txt``, devkit ``map_clsloc.txt``
    style without ids). Returns (wnids, words) in file order."""
    path = Path(path)
    wnids, words = [], []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            wnid, _, rest = line.partition(" ")
            if not (wnid.startswith("n") and wnid[1:].isdigit()):
                raise ValueError(
                    f"{path}:{lineno}: expected 'WNID words' (WNID like n01440764), got {line[:60]!r}"
                )
            wnids.append(wnid)
            words.append(rest.strip())
    return wnids, words
