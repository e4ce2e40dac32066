"""Ground-truth annotations: ILSVRC CLS-LOC / DET VOC-style XML files and Kaggle's
``LOC_val_solution.csv`` (shared/reference/ilsvrc-evaluation.md §2.4, §4).

One :class:`Annotation` per image holds its boxes as ``(K, 4)`` int64 inclusive
``(x1, y1, x2, y2)`` pixel coordinates (0-based, width ``x2 - x1 + 1``, the devkits' convention)
and one WNID per box. Both readers and both writers round-trip: what ``write_xml`` writes,
``read_xml`` reads back identically, in the same layout as the official CLS-LOC files.

Errors name the file and the line (CSV) or element (XML) and say what was expected.
"""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "Annotation",
    "read_xml",
    "read_xml_dir",
    "read_loc_solution_csv",
    "write_xml",
    "write_loc_solution_csv",
]

_WNID = re.compile(r"^n\d{8}$")
# Text files are read as UTF-8 with an optional byte-order mark: spreadsheet programs and pandas'
# "utf-8-sig" start a CSV with U+FEFF, which would otherwise hide the Kaggle header.
TEXT_ENCODING = "utf-8-sig"
_BOX_TAGS = ("xmin", "ymin", "xmax", "ymax")


@dataclass(frozen=True)
class Annotation:
    """The ground truth of one image.

    ``image``: file stem (``ILSVRC2012_val_00000001``); ``width``/``height``: image size in
    pixels, 0 when the source does not say (Kaggle CSV); ``boxes``: ``(K, 4)`` int64 inclusive
    ``(x1, y1, x2, y2)``, K may be 0 (677 DET val2 images have no object); ``wnids``: ``(K,)``.
    """

    image: str
    width: int
    height: int
    boxes: np.ndarray
    wnids: tuple[str, ...]

    def __post_init__(self) -> None:
        boxes = np.asarray(self.boxes, dtype=np.int64).reshape(-1, 4)
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "wnids", tuple(self.wnids))
        if len(self.wnids) != len(boxes):
            raise ValueError(
                f"{self.image}: {len(boxes)} boxes but {len(self.wnids)} WNIDs; need one per box"
            )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Annotation):
            return NotImplemented
        return (self.image, self.width, self.height, self.wnids) == (
            other.image,
            other.width,
            other.height,
            other.wnids,
        ) and np.array_equal(self.boxes, other.boxes)

    __hash__ = None  # mutable array inside; equality is by value


def _not_text(path, exc: UnicodeDecodeError) -> ValueError:
    return ValueError(
        f"{path}: not a UTF-8 text file (byte {exc.start}: {exc.reason}); pass the text file itself"
    )


def _read_text(path: str | Path) -> str:
    """The whole text of ``path`` (``TEXT_ENCODING``); a binary file is refused naming the file."""
    try:
        return Path(path).read_text(encoding=TEXT_ENCODING)
    except UnicodeDecodeError as exc:
        raise _not_text(path, exc) from None


# ----------------------------------------------------------------------------- XML


def _int(text: str | None, where: str) -> int:
    """Parse an integer pixel coordinate. The devkit reads them with ``str2double``; a value like
    ``"12.0"`` is accepted, a fractional one is refused because boxes are integer pixels."""
    if text is None:
        raise ValueError(f"{where}: missing; expected an integer")
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where}: expected an integer, got {text.strip()!r}") from None
    if not np.isfinite(value) or value != int(value):
        raise ValueError(f"{where}: expected an integer pixel coordinate, got {text.strip()!r}")
    return int(value)


def read_xml(path: str | Path) -> Annotation:
    """Read one CLS-LOC or DET VOC-style XML. Tags are found by name, never by position (DET
    files order ``xmin, xmax, ymin, ymax``, CLS-LOC files ``xmin, ymin, xmax, ymax``)."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        line, col = exc.position
        raise ValueError(f"{path}:{line}:{col}: not well-formed XML ({exc.msg})") from None
    if root.tag != "annotation":
        raise ValueError(f"{path}: root element is <{root.tag}>, expected <annotation>")
    filename = root.findtext("filename")
    image = (filename or path.stem).strip()
    # The devkit never checks <filename>; some files carry an extension, so keep only the stem.
    image = image.rsplit(".", 1)[0] if image.lower().endswith((".jpeg", ".jpg")) else image
    size = root.find("size")
    width = _int(size.findtext("width"), f"{path}: <size><width>") if size is not None else 0
    height = _int(size.findtext("height"), f"{path}: <size><height>") if size is not None else 0
    boxes, wnids = [], []
    for k, obj in enumerate(root.iter("object"), start=1):
        where = f"{path}: <object> #{k}"
        name = (obj.findtext("name") or "").strip()
        if not _WNID.match(name):
            raise ValueError(f"{where} <name>: expected a WNID like n01440764, got {name!r}")
        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise ValueError(f"{where}: no <bndbox>; expected <xmin>, <ymin>, <xmax>, <ymax>")
        boxes.append([_int(bndbox.findtext(t), f"{where} <bndbox><{t}>") for t in _BOX_TAGS])
        wnids.append(name)
    return Annotation(image, width, height, np.array(boxes, dtype=np.int64).reshape(-1, 4), wnids)


def read_xml_dir(folder: str | Path, images: Iterable[str] | None = None) -> dict[str, Annotation]:
    """Read ``folder/*.xml`` (all, sorted by name), or ``folder/<image>.xml`` for each named image.

    Returns ``{image stem: Annotation}`` in the order read. A named image without its XML is an
    error naming the missing file (the devkit would silently misalign, §2.2).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder of annotation XML files")
    if images is None:
        paths = sorted(folder.glob("*.xml"))
        if not paths:
            raise FileNotFoundError(f"{folder}: holds no *.xml annotation files")
    else:
        paths = [folder / f"{name}.xml" for name in images]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(
                f"{folder}: {len(missing)} annotation file(s) missing, first {missing[0].name}; "
                "the image list and the XML folder must name the same images"
            )
    out: dict[str, Annotation] = {}
    for p in paths:
        ann = read_xml(p)
        # Key by the file's stem: the devkit opens <image_id>.xml and never reads <filename>.
        out[p.stem] = ann if ann.image == p.stem else _renamed(ann, p.stem)
    return out


def _renamed(ann: Annotation, image: str) -> Annotation:
    return Annotation(image, ann.width, ann.height, ann.boxes, ann.wnids)


def write_xml(
    path: str | Path, ann: Annotation, folder: str = "val", database: str = "ILSVRC_2012"
) -> None:
    """Write ``ann`` in the layout of the official CLS-LOC validation XMLs (tab-indented,
    ``<size>`` with depth 3, ``<segmented>0``, objects with pose/truncated/difficult)."""
    t = "\t"
    lines = [
        "<annotation>",
        f"{t}<folder>{folder}</folder>",
        f"{t}<filename>{ann.image}</filename>",
        f"{t}<source>",
        f"{t}{t}<database>{database}</database>",
        f"{t}</source>",
        f"{t}<size>",
        f"{t}{t}<width>{ann.width}</width>",
        f"{t}{t}<height>{ann.height}</height>",
        f"{t}{t}<depth>3</depth>",
        f"{t}</size>",
        f"{t}<segmented>0</segmented>",
    ]
    for wnid, box in zip(ann.wnids, ann.boxes.tolist()):
        lines += [
            f"{t}<object>",
            f"{t}{t}<name>{wnid}</name>",
            f"{t}{t}<pose>Unspecified</pose>",
            f"{t}{t}<truncated>0</truncated>",
            f"{t}{t}<difficult>0</difficult>",
            f"{t}{t}<bndbox>",
            *(f"{t}{t}{t}<{tag}>{v}</{tag}>" for tag, v in zip(_BOX_TAGS, box)),
            f"{t}{t}</bndbox>",
            f"{t}</object>",
        ]
    lines.append("</annotation>")
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


# ----------------------------------------------------------------------------- Kaggle CSV

_CSV_HEADER = ["ImageId", "PredictionString"]


def read_loc_solution_csv(path: str | Path) -> dict[str, Annotation]:
    """Read Kaggle's ``LOC_val_solution.csv``: header ``ImageId,PredictionString``, then per image
    groups of ``WNID xmin ymin xmax ymax``, one per box. Keyed by ImageId (row order is not
    meaningful); width and height are 0 because the file does not carry them."""
    path = Path(path)
    out: dict[str, Annotation] = {}
    with io.StringIO(_read_text(path), newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [h.strip() for h in header] != _CSV_HEADER:
            raise ValueError(f"{path}:1: expected the header 'ImageId,PredictionString'")
        for row in reader:
            lineno = reader.line_num
            if not row or not "".join(row).strip():
                continue
            if len(row) != 2:
                raise ValueError(
                    f"{path}:{lineno}: expected 2 fields 'ImageId,PredictionString', got {len(row)}"
                )
            image, tokens = row[0].strip(), row[1].split()
            if len(tokens) % 5:
                raise ValueError(
                    f"{path}:{lineno}: PredictionString has {len(tokens)} tokens; expected groups "
                    "of 5 'WNID xmin ymin xmax ymax'"
                )
            if image in out:
                raise ValueError(f"{path}:{lineno}: image {image} appears twice")
            wnids = tokens[0::5]
            for w in wnids:
                if not _WNID.match(w):
                    raise ValueError(f"{path}:{lineno}: expected a WNID like n01440764, got {w!r}")
            coords = [
                [_int(v, f"{path}:{lineno}: coordinate") for v in tokens[g + 1 : g + 5]]
                for g in range(0, len(tokens), 5)
            ]
            out[image] = Annotation(image, 0, 0, np.array(coords, np.int64).reshape(-1, 4), wnids)
    return out


def write_loc_solution_csv(
    path: str | Path, anns: Mapping[str, Annotation] | Iterable[Annotation]
) -> None:
    """Write ``LOC_val_solution.csv`` (rows sorted by ImageId, boxes in annotation order)."""
    items = anns.values() if isinstance(anns, Mapping) else anns
    with Path(path).open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(_CSV_HEADER)
        for ann in sorted(items, key=lambda a: a.image):
            groups = (
                f"{w} {x1} {y1} {x2} {y2}"
                for w, (x1, y1, x2, y2) in zip(ann.wnids, ann.boxes.tolist())
            )
            writer.writerow([ann.image, " ".join(groups)])
