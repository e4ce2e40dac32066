"""File formats of the ILSVRC devkits and of Kaggle, read AND written
(shared/reference/ilsvrc-evaluation.md §2.1–§2.4, §4).

Ground truth (annotation XML folders and ``LOC_val_solution.csv`` are in evaluation/annotations.py):

- ``ILSVRC2012_validation_ground_truth.txt``: one ILSVRC2012_ID per line, image-name order;
- DET image lists ``<image_name> <image_index>``: the devkit's own lists number their lines
  1, 2, 3, ...; a sub-list keeps the indices of the list it was cut from (any order, no repeats);
- CLS-LOC blacklist: one 1-based validation image index per line;
- DET blacklist: ``<image_index> <WNID>`` per line.

Submissions:

- classification: one line per image, up to 5 integer labels (positional, image-name order);
- CLS-LOC: one line per image, up to 5 groups ``<label> <xmin> <ymin> <xmax> <ymax>`` (positional);
- DET: one line per detection ``<image_index> <DET_ID> <confidence> <xmin> <ymin> <xmax> <ymax>``;
- Kaggle: ``ImageId,PredictionString`` with up to 5 groups ``WNID xmin ymin xmax ymax`` (by name).

Every reader refuses a malformed line with ``file:line: what was expected``. Readers return labels
exactly as written (their label space is the caller's to state; conversion is evaluation/labels.py's).
"""

from __future__ import annotations

import csv
import io
import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from evaluation.annotations import TEXT_ENCODING, _not_text, _read_text
from evaluation.clsloc import NO_GUESS

__all__ = [
    "DEVKIT_NO_GUESS",
    "clsloc_image_name",
    "read_ground_truth_txt",
    "write_ground_truth_txt",
    "ImageList",
    "read_image_index",
    "read_image_list",
    "write_image_list",
    "read_clsloc_blacklist",
    "read_det_blacklist",
    "read_devkit_guesses",
    "write_devkit_guesses",
    "read_devkit_loc",
    "write_devkit_loc",
    "KaggleGuesses",
    "read_kaggle_submission",
    "write_kaggle_submission",
    "DetSubmission",
    "read_det_submission",
    "write_det_submission",
    "is_kaggle_csv",
]

# eval_flat.m reads submissions with dlmread, which pads short lines with 0; label 0 matches no
# ILSVRC2012_ID, so a line with fewer than 5 guesses simply has fewer chances. Readers pad with
# NO_GUESS (-1) instead, because in the sorted-index space 0 is a real class (n01440764 tench);
# writers write a line with no guess at all as the devkit's "0".
DEVKIT_NO_GUESS = 0
_WNID = re.compile(r"^n\d{8}$")
_DET_LINE = "'<image_index> <DET_ID> <confidence> <xmin> <ymin> <xmax> <ymax>'"


def clsloc_image_name(index: int) -> str:
    """The name of ILSVRC2012 validation image ``index`` (1-based). The official image list is
    exactly ILSVRC2012_val_00000001..00050000 in order, so a devkit position IS this name; pairing
    by name also keeps the 2014 blacklist right on any subset of the 50,000 images."""
    return f"ILSVRC2012_val_{index:08d}"


def _lines(path: Path):
    """(line number, stripped text) for the non-blank lines of a text file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with path.open(encoding=TEXT_ENCODING) as f:
        try:
            for lineno, line in enumerate(f, start=1):
                text = line.strip()
                if text:
                    yield lineno, text
        except UnicodeDecodeError as exc:
            raise _not_text(path, exc) from None


def _positional_lines(path: Path):
    """Like :func:`_lines` for files whose line i belongs to image i: a blank line inside the file
    would shift every later image, so it is refused (trailing blank lines are fine)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    lines = _read_text(path).splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    for lineno, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            raise ValueError(
                f"{path}:{lineno}: blank line; this format has one line per image in image-name "
                "order, so an image without guesses still needs a line (write label 0)"
            )
        yield lineno, text


def _number(token: str, where: str, what: str) -> float:
    try:
        value = float(token)
    except ValueError:
        raise ValueError(f"{where}: expected {what}, got {token!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{where}: {what} is {token!r}; NaN and inf are refused")
    return value


def _integer(token: str, where: str, what: str) -> int:
    value = _number(token, where, what)
    if value != int(value):
        raise ValueError(f"{where}: expected {what} (an integer), got {token!r}")
    return int(value)


# ----------------------------------------------------------------------------- ground truth


def read_ground_truth_txt(path: str | Path, num_classes: int = 1000) -> np.ndarray:
    """``(N,)`` int64 ILSVRC2012_IDs, one per line (line i = ILSVRC2012_val_i)."""
    path = Path(path)
    out = []
    for lineno, text in _positional_lines(path):
        parts = text.split()
        where = f"{path}:{lineno}"
        if len(parts) != 1:
            raise ValueError(f"{where}: expected one ILSVRC2012_ID per line, got {text[:60]!r}")
        label = _integer(parts[0], where, f"an ILSVRC2012_ID 1..{num_classes}")
        if not 1 <= label <= num_classes:
            raise ValueError(f"{where}: label {label} outside 1..{num_classes}")
        out.append(label)
    return np.array(out, dtype=np.int64)


def write_ground_truth_txt(path: str | Path, labels: np.ndarray) -> None:
    Path(path).write_text("".join(f"{int(v)}\n" for v in labels), encoding="utf-8")


@dataclass(frozen=True)
class ImageList:
    """A DET image list in file order: ``names`` ``(I,)``, ``indices`` ``(I,)`` int64 (the index a
    submission and a blacklist use for the image), ``lines`` ``(I,)`` line numbers."""

    path: Path
    names: tuple[str, ...]
    indices: np.ndarray
    lines: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.names)

    def name_of(self) -> dict[int, str]:
        """``{image index: image name}``."""
        return dict(zip(self.indices.tolist(), self.names))


def read_image_index(path: str | Path) -> ImageList:
    """A DET list ``<image_name> <image_index>`` with any positive indices: a sub-list of a
    devkit list (a few hundred of val2's images, say) keeps the indices its images have there,
    so they need not run 1, 2, 3. A name or an index listed twice is refused with both lines
    (two names for one index would make a detection ambiguous)."""
    path = Path(path)
    names, indices, lines = [], [], []
    line_of_name: dict[str, int] = {}
    line_of_index: dict[int, int] = {}
    for lineno, text in _lines(path):
        parts = text.split()
        where = f"{path}:{lineno}"
        if len(parts) != 2:
            raise ValueError(f"{where}: expected '<image_name> <image_index>', got {text[:60]!r}")
        if parts[0] in line_of_name:
            raise ValueError(
                f"{where}: image {parts[0]} already listed on line {line_of_name[parts[0]]}; "
                "list each image once"
            )
        index = _integer(parts[1], where, "an image index")
        if index < 1:
            raise ValueError(f"{where}: image index {index} < 1 (indices are 1-based)")
        if index in line_of_index:
            raise ValueError(
                f"{where}: image index {index} already used on line {line_of_index[index]}; "
                "give each image its own index (the one it has in the devkit's list)"
            )
        line_of_name[parts[0]] = line_of_index[index] = lineno
        names.append(parts[0])
        indices.append(index)
        lines.append(lineno)
    return ImageList(path, tuple(names), np.array(indices, dtype=np.int64), tuple(lines))


def read_image_list(path: str | Path) -> list[str]:
    """A DET list ``<image_name> <image_index>`` whose indices run 1, 2, 3, ... in file order
    (the devkit's own lists); returns names, position = index - 1. Callers that pair images by
    position need exactly that; :func:`read_image_index` reads a sub-list with any indices."""
    listed = read_image_index(path)
    for k, (index, lineno) in enumerate(zip(listed.indices.tolist(), listed.lines)):
        if index != k + 1:
            raise ValueError(
                f"{listed.path}:{lineno}: image index {index}, expected {k + 1} (indices "
                "must run 1, 2, 3, ... in file order here; python -m evaluation det reads "
                "sub-lists with any indices)"
            )
    return list(listed.names)


def write_image_list(path: str | Path, names: list[str]) -> None:
    Path(path).write_text("".join(f"{n} {i}\n" for i, n in enumerate(names, 1)), encoding="utf-8")


def read_clsloc_blacklist(path: str | Path) -> np.ndarray:
    """``(B,)`` int64 unique 1-based validation image indices (2014 kit: 1,762 of them)."""
    path = Path(path)
    out = []
    for lineno, text in _lines(path):
        where = f"{path}:{lineno}"
        if len(text.split()) != 1:
            raise ValueError(f"{where}: expected one image index per line, got {text[:60]!r}")
        index = _integer(text, where, "a 1-based image index")
        if index < 1:
            raise ValueError(f"{where}: image index {index} < 1 (indices are 1-based)")
        out.append(index)
    return np.unique(np.array(out, dtype=np.int64))


def read_det_blacklist(path: str | Path, lines: bool = False) -> list[tuple]:
    """``[(image_index, WNID), ...]`` (2014 kit: 409 lines); with ``lines``,
    ``[(line number, image_index, WNID), ...]`` so that a caller's error can name the line."""
    path = Path(path)
    out = []
    for lineno, text in _lines(path):
        where = f"{path}:{lineno}"
        parts = text.split()
        if len(parts) != 2 or not _WNID.match(parts[1]):
            raise ValueError(f"{where}: expected '<image_index> <WNID>', got {text[:60]!r}")
        row = (_integer(parts[0], where, "an image index"), parts[1])
        out.append((lineno, *row) if lines else row)
    return out


# ----------------------------------------------------------------------------- devkit submissions


def read_devkit_guesses(path: str | Path, max_guesses: int = 5) -> np.ndarray:
    """Classification submission → ``(N, max_guesses)`` int64, padded with ``NO_GUESS``;
    guesses beyond ``max_guesses`` are dropped (both as ``eval_flat.m``). Labels are returned as
    written; negative or non-integer labels are refused."""
    path = Path(path)
    rows = []
    for lineno, text in _positional_lines(path):
        where = f"{path}:{lineno}"
        row = [_integer(t, where, "an integer label") for t in text.split()[:max_guesses]]
        if min(row) < 0:
            raise ValueError(f"{where}: negative label in {text[:60]!r}")
        rows.append(row + [NO_GUESS] * (max_guesses - len(row)))
    return np.array(rows, dtype=np.int64).reshape(-1, max_guesses)


def write_devkit_guesses(path: str | Path, labels: np.ndarray) -> None:
    lines = (" ".join(str(int(v)) for v in row if v != NO_GUESS) for row in labels)
    Path(path).write_text("".join(f"{ln or DEVKIT_NO_GUESS}\n" for ln in lines), encoding="utf-8")


def read_devkit_loc(path: str | Path, max_guesses: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """CLS-LOC submission → (labels ``(N, max_guesses)`` int64 padded with ``NO_GUESS``,
    boxes ``(N, max_guesses, 4)`` float64, NaN where no guess). Coordinates may be real numbers
    (the devkit neither rounds nor clips them)."""
    path = Path(path)
    labels, boxes = [], []
    for lineno, text in _positional_lines(path):
        where = f"{path}:{lineno}"
        tokens = text.split()
        if len(tokens) % 5:
            raise ValueError(
                f"{where}: {len(tokens)} numbers; expected groups of 5 "
                "'<label> <xmin> <ymin> <xmax> <ymax>'"
            )
        tokens = tokens[: 5 * max_guesses]
        lab = [_integer(t, where, "an integer label") for t in tokens[0::5]]
        if lab and min(lab) < 0:
            raise ValueError(f"{where}: negative label in {text[:60]!r}")
        box = [
            [_number(t, where, "a box coordinate") for t in tokens[g + 1 : g + 5]]
            for g in range(0, len(tokens), 5)
        ]
        pad = max_guesses - len(lab)
        labels.append(lab + [NO_GUESS] * pad)
        boxes.append(box + [[math.nan] * 4] * pad)
    return (
        np.array(labels, dtype=np.int64).reshape(-1, max_guesses),
        np.array(boxes, dtype=np.float64).reshape(-1, max_guesses, 4),
    )


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def write_devkit_loc(path: str | Path, labels: np.ndarray, boxes: np.ndarray) -> None:
    out = []
    for lab_row, box_row in zip(labels, boxes):
        groups = [
            " ".join([str(int(lab)), *(_fmt(v) for v in box)])
            for lab, box in zip(lab_row, box_row)
            if lab != NO_GUESS
        ]
        out.append((" ".join(groups) or f"{DEVKIT_NO_GUESS} 0 0 0 0") + "\n")
    Path(path).write_text("".join(out), encoding="utf-8")


# ----------------------------------------------------------------------------- Kaggle


def is_kaggle_csv(path: str | Path) -> bool:
    """True when the file starts with Kaggle's ``ImageId,PredictionString`` header."""
    try:
        with Path(path).open(encoding=TEXT_ENCODING) as f:
            return f.readline().strip().replace(" ", "").startswith("ImageId,")
    except UnicodeDecodeError as exc:
        raise _not_text(path, exc) from None


@dataclass(frozen=True)
class KaggleGuesses:
    """One image's Kaggle guesses: ``wnids`` ``(G,)`` and ``boxes`` ``(G, 4)`` float64; ``line``:
    the file line they were read from (0 when built in memory), for errors about a guess."""

    wnids: tuple[str, ...]
    boxes: np.ndarray
    line: int = field(default=0, compare=False)


def read_kaggle_submission(path: str | Path, max_guesses: int = 5) -> dict[str, KaggleGuesses]:
    """Kaggle ``ImageId,PredictionString`` with groups ``WNID xmin ymin xmax ymax`` (or, for a
    classification-only file, bare WNIDs). Keyed by ImageId; a repeated ImageId is refused."""
    path = Path(path)
    out: dict[str, KaggleGuesses] = {}
    with io.StringIO(_read_text(path), newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [h.strip() for h in header] != ["ImageId", "PredictionString"]:
            raise ValueError(f"{path}:1: expected the header 'ImageId,PredictionString'")
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if not row or not "".join(row).strip():
                continue
            if len(row) != 2:
                raise ValueError(
                    f"{where}: expected 'ImageId,PredictionString', got {len(row)} fields"
                )
            image, tokens = row[0].strip(), row[1].split()
            if image in out:
                raise ValueError(f"{where}: image {image} appears twice")
            bare = all(_WNID.match(t) for t in tokens)
            step = 1 if bare else 5
            if not bare and len(tokens) % 5:
                raise ValueError(
                    f"{where}: {len(tokens)} tokens; expected groups of 5 'WNID xmin ymin xmax ymax'"
                )
            tokens = tokens[: step * max_guesses]
            wnids = tuple(tokens[0::step])
            for w in wnids:
                if not _WNID.match(w):
                    raise ValueError(f"{where}: expected a WNID like n01440764, got {w!r}")
            if bare:
                boxes = np.full((len(wnids), 4), np.nan)
            else:
                boxes = np.array(
                    [
                        [_number(t, where, "a box coordinate") for t in tokens[g + 1 : g + 5]]
                        for g in range(0, len(tokens), 5)
                    ],
                    dtype=np.float64,
                ).reshape(-1, 4)
            out[image] = KaggleGuesses(wnids, boxes, reader.line_num)
    return out


def write_kaggle_submission(path: str | Path, guesses: Mapping[str, KaggleGuesses]) -> None:
    with Path(path).open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["ImageId", "PredictionString"])
        for image in sorted(guesses):
            g = guesses[image]
            groups = (" ".join([w, *(_fmt(v) for v in box)]) for w, box in zip(g.wnids, g.boxes))
            writer.writerow([image, " ".join(groups)])


# ----------------------------------------------------------------------------- DET


@dataclass(frozen=True)
class DetSubmission:
    """DET lines as arrays: ``image_index`` ``(D,)`` 1-based, ``det_id`` ``(D,)`` 1..200,
    ``confidence`` ``(D,)``, ``boxes`` ``(D, 4)`` inclusive, rows in file order."""

    image_index: np.ndarray
    det_id: np.ndarray
    confidence: np.ndarray
    boxes: np.ndarray

    def __len__(self) -> int:
        return len(self.image_index)


def _det_diagnose(
    path: Path, num_images: int | None, num_classes: int, image_list: ImageList | None = None
) -> None:
    """Slow path: find and report the first bad line (the fast path only knows something is)."""
    listed = set(image_list.indices.tolist()) if image_list is not None else None
    for lineno, text in _lines(path):
        where = f"{path}:{lineno}"
        tokens = text.split()
        if len(tokens) != 7:
            raise ValueError(f"{where}: {len(tokens)} fields; expected {_DET_LINE}")
        index = _integer(tokens[0], where, "an image index")
        det_id = _integer(tokens[1], where, "an integer DET_ID")
        _number(tokens[2], where, "a confidence")
        for t in tokens[3:]:
            _number(t, where, "a box coordinate")
        if num_images is not None and not 1 <= index <= num_images:
            raise ValueError(
                f"{where}: image index {index} is not in the image list (1..{num_images}); "
                "submit detections only for listed images"
            )
        if listed is not None and index not in listed:
            raise ValueError(
                f"{where}: image index {index} is not in the image list {image_list.path}; "
                "submit detections only for listed images, or list the image there"
            )
        if not 1 <= det_id <= num_classes:
            raise ValueError(f"{where}: DET_ID {det_id} outside 1..{num_classes}")
    raise ValueError(f"{path}: unreadable; expected {_DET_LINE} per line")


def read_det_submission(
    path: str | Path,
    num_images: int | None = None,
    num_classes: int = 200,
    image_list: ImageList | None = None,
) -> DetSubmission:
    """Read a DET submission; millions of lines take seconds (numpy's C reader), and any bad line
    is then located and reported with its line number. ``num_images``: refuse image indices
    outside ``1..num_images`` (the devkit would crash with an index error); ``image_list``: refuse
    image indices that the list does not hold (a sub-list's indices need not run 1, 2, 3)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # numpy's "input contained no data"
            data = np.loadtxt(
                path, dtype=np.float64, ndmin=2, comments=None, encoding=TEXT_ENCODING
            )
    except ValueError:
        _det_diagnose(path, num_images, num_classes, image_list)
        raise
    if data.size == 0:
        # The devkit crashes on an empty file (img_ids(1)); here it is a submission with no
        # detection: every class with positives scores AP 0.
        warnings.warn(f"{path}: no detections", stacklevel=2)
        data = np.zeros((0, 7))
    if data.shape[1] != 7 or not np.isfinite(data).all():
        _det_diagnose(path, num_images, num_classes, image_list)
    ints = data[:, :2]
    bad = (ints != np.round(ints)).any(axis=1) | (data[:, 1] < 1) | (data[:, 1] > num_classes)
    if num_images is not None:
        bad |= (data[:, 0] < 1) | (data[:, 0] > num_images)
    if image_list is not None:
        bad |= ~np.isin(data[:, 0], image_list.indices)
    if bad.any():
        _det_diagnose(path, num_images, num_classes, image_list)
    return DetSubmission(
        data[:, 0].astype(np.int64), data[:, 1].astype(np.int64), data[:, 2], data[:, 3:7].copy()
    )


def write_det_submission(path: str | Path, sub: DetSubmission) -> None:
    """One line per detection; confidences with 17 significant digits so ties survive exactly."""
    data = np.column_stack([sub.image_index, sub.det_id, sub.confidence, sub.boxes]).astype(
        np.float64
    )
    fmt = ["%d", "%d", "%.17g", "%.17g", "%.17g", "%.17g", "%.17g"]
    np.savetxt(path, data, fmt=fmt)
