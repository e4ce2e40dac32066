"""Pictures, as the paper shows them (§4, Figures 6 and 7): a few validation images of a
localization or detection report with the ground-truth boxes, the boxes before the merge (thin,
coloured by scale) and the merged top guesses with their labels and scores.

A reproduction saves the boxes of its gallery images only (:func:`figure9_gallery`,
:func:`detection_gallery`) in ``reports/<artifact>/<run>.gallery.json.gz``, a few tens of KB
with the same bytes for the same boxes; ``overfeat reproduce report`` draws
``<run>.gallery.png`` from that file alone (:func:`render_galleries`), with no network run,
reading each image from the data folder the run read (or drawing on a blank canvas of its size
when the image is not there, and saying so).

The saved file (JSON, gzip)::

    {"artifact", "run", "row", "system", "protocol", "rule", "data_root", "scales": [s, ...],
     "names": {wnid: words},
     "images": [{"image": path relative to data_root, "name": stem, "size": [rows, cols],
                 "decoded": bool, "truth": [[wnid, x1, y1, x2, y2], ...],
                 "windows_class": wnid | null, "windows_total": K,
                 "windows": [[x1, y1, x2, y2, scale], ...],          (at most GALLERY_WINDOWS)
                 "guesses": [[wnid, x1, y1, x2, y2, score], ...]}]}  (best first)

Boxes are inclusive pixel boxes of the original image (PIXEL_BOX_ROUNDING); ``scale`` is the
1-based scale index of the protocol (:class:`overfeat.localize.LocalizationProtocol`).

The decisions named here: GALLERY_RULE, GALLERY_ROW, GALLERY_WINDOWS.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "GALLERY_DPI",
    "GALLERY_GUESSES",
    "GALLERY_IMAGES",
    "GALLERY_WINDOWS",
    "PANEL_INCHES",
    "detection_gallery",
    "figure9_gallery",
    "gallery_path",
    "gallery_picks",
    "read_gallery",
    "render_gallery",
    "render_galleries",
    "write_gallery",
]

# Decision GALLERY_RULE (the paper shows hand-picked photos): the gallery holds the first image,
# in the run's own order (file-name order for Figure 9, the DET list for detection), showing an
# object of class 0, then the first not yet shown of class 1, and so on in the data set's class
# order, until GALLERY_IMAGES images: a rule anyone can apply to the annotations by hand, which
# shows different classes rather than the best or worst cases.
GALLERY_IMAGES = 4

# Decision GALLERY_WINDOWS (Figure 7 draws every box of one class at one scale): the boxes drawn
# before the merge are those of the top guess's class, at every scale of the protocol, at most
# the GALLERY_WINDOWS most probable of them (ties in the order the windows were read); the
# panel says how many there were, so that the saved file stays a few tens of KB at 4 scales with
# fine offsets and flips.
GALLERY_WINDOWS = 300

# The merged guesses drawn: localization's 5 guesses (§2), detection's 5 most confident.
GALLERY_GUESSES = 5

PANEL_INCHES = 4.0
LEGEND_INCHES = 0.7  # the title and the legend of scales above the panels
PANEL_TITLE_INCHES = 0.35
PANEL_CAPTION_INCHES = 1.2
GALLERY_DPI = 80
GALLERY_COLUMNS = 4


# ----------------------------------------------------------------------------- the images


def gallery_picks(image_classes: Sequence[Sequence[int]], n: int = GALLERY_IMAGES) -> list[int]:
    """GALLERY_RULE: ``image_classes[i]`` the classes of image i's objects (in the run's order)
    → the indices of the gallery's images, in the order of the classes they were picked for."""
    picked: list[int] = []
    for c in sorted({int(c) for classes in image_classes for c in classes}):
        if len(picked) == n:
            break
        for i, classes in enumerate(image_classes):
            if i not in picked and c in classes:
                picked.append(i)
                break
    return picked


def gallery_path(reports: str | Path, artifact: str, run: str) -> Path:
    return Path(reports) / artifact / f"{run}.gallery.json.gz"


def write_gallery(path: str | Path, gallery: dict) -> Path:
    """``gallery`` as gzipped JSON with no time stamp or file name in the header, keys sorted:
    the same boxes give the same bytes."""
    raw = json.dumps(gallery, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as f:
        f.write(raw)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    return path


def read_gallery(path: str | Path) -> dict:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return json.load(f)


def _pixel(boxes: np.ndarray, size) -> list[list[int]]:
    from overfeat.boxes import to_pixel_boxes

    if not len(boxes):
        return []
    return to_pixel_boxes(torch.from_numpy(np.asarray(boxes, dtype=np.float64)), size).tolist()


def _windows(cands, cls: int | None, size) -> tuple[list[list[int]], int]:
    """The candidates of class ``cls`` (:class:`overfeat.localize.Candidates`) as
    ``[[x1, y1, x2, y2, scale]]``, the GALLERY_WINDOWS most probable, and how many there were."""
    if cls is None:
        return [], 0
    mine = np.flatnonzero(cands.classes == cls)
    kept = mine[np.lexsort((np.arange(len(mine)), -cands.scores[mine]))[:GALLERY_WINDOWS]]
    kept = np.sort(kept)  # drawn in the order read: scale by scale
    boxes = _pixel(cands.boxes[kept], size)
    return [[*b, int(s)] for b, s in zip(boxes, cands.scales[kept])], len(mine)


def _guesses(classes, boxes, scores, wnids, size) -> list[list]:
    keep = [i for i, c in enumerate(classes) if c >= 0][:GALLERY_GUESSES]
    pixel = _pixel(np.asarray(boxes)[keep].reshape(-1, 4), size)
    return [[wnids[int(classes[i])], *b, round(float(scores[i]), 4)] for i, b in zip(keep, pixel)]


def _entry(path: str, data: Path, size, truth, decoded: bool) -> dict:
    return {"image": Path(os.path.relpath(path, data)).as_posix(), "name": Path(path).stem,
            "size": [int(size[0]), int(size[1])], "decoded": decoded,
            "truth": [[w, *map(int, b)] for w, b in truth], "windows_class": None,
            "windows_total": 0, "windows": [], "guesses": []}  # fmt: skip


def _names(data: Path, classes, images: list[dict]) -> dict:
    from overfeat.reproduce.detection import class_names

    words = dict(zip(classes, class_names(data, classes)))
    used = {t[0] for e in images for t in e["truth"]} | {g[0] for e in images for g in e["guesses"]}
    return {w: words.get(w, "") for w in sorted(used)}


def _decoded(paths, options):
    """``(index, (3, H, W) image)`` for each decodable file of ``paths``."""
    from overfeat.localize import image_batches

    for indices, images in image_batches(paths, replace(options, progress=False), "gallery"):
        yield from zip(indices, images)


def _gallery(artifact, run, row, system, protocol, data, classes, picked, truths, sizes,
             boxes_of, options) -> dict:  # fmt: skip
    """The saved file's dict: ``boxes_of(image)`` → (candidates, merged (classes, boxes,
    scores) best first) for one decoded image."""
    images = [_entry(p, data, s, t, False) for p, s, t in zip(picked, sizes, truths)]
    for i, img in _decoded(picked, options):
        size = tuple(img.shape[-2:])
        cands, (labels, boxes, scores) = boxes_of(img)
        top = int(labels[0]) if len(labels) and labels[0] >= 0 else None
        windows, total = _windows(cands, top, size)
        images[i] |= {"size": list(size), "decoded": True, "guesses": _guesses(
            labels, boxes, scores, classes, size), "windows": windows, "windows_total": total,
            "windows_class": None if top is None else classes[top]}  # fmt: skip
    return {"artifact": artifact, "run": run, "row": row, "system": system,
            "protocol": protocol.to_dict(), "rule": _RULE, "data_root": str(data),
            "scales": list(protocol.scales), "names": _names(data, classes, images),
            "images": images}  # fmt: skip


_RULE = (f"GALLERY_RULE: for each class in the data set's order, the first image of the run "
         f"showing one, until {GALLERY_IMAGES} images")  # fmt: skip


def _on_device(options, *networks):
    device = torch.device(options.device)
    return [None if n is None else n.to(device).eval() for n in networks]


# ----------------------------------------------------------------------------- the hooks


def figure9_gallery(rows, records, model, regressors, samples, classes, boxes, data, request,
                    run: str) -> Path | None:  # fmt: skip
    """Save Figure 9's gallery: the boxes of the GALLERY_RULE images under one bar.

    Decision GALLERY_ROW (the paper's Figures 6 and 7 show the regressor's boxes at several
    scales): the bar is, among those that ran with dense windows and their own boxes (not the
    whole image, not the centred crop), one with regressor boxes before one with window boxes,
    then the most scales, then SCR before PCR (Figure 9's best bar, SCR at 4 scales, when it
    ran). ``rows``: :class:`~overfeat.reproduce.figure9.Figure9Row` s; ``records``: those that
    ran, by row id. Returns the saved file, or ``None`` (and says why) when no bar fits."""
    from overfeat.localize import candidate_boxes, merge_per_class, top_predictions

    fits = [r for r in rows if r.row in records and r.view == "dense" and r.box_source != "image"]
    if not fits:
        print("gallery: no bar with dense windows and their own boxes ran; none saved", flush=True)
        return None
    row = max(fits, key=lambda r: (r.box_source == "regressor", r.num_scales, r.regression == "scr"))
    protocol = row.protocol()
    regressor = regressors.get(row.regression) if row.box_source == "regressor" else None
    model, regressor = _on_device(request.options, model, regressor)
    truth = boxes or {}
    picked = gallery_picks([[label] for _, label in samples])
    paths = [samples[i][0] for i in picked]
    anns = [truth.get(Path(p).stem) for p in paths]
    truths = [[] if a is None else list(zip(a.wnids, a.boxes.tolist())) for a in anns]
    sizes = [(0, 0) if a is None else (a.height, a.width) for a in anns]

    def boxes_of(img):
        cands = candidate_boxes(model, regressor, [img], protocol)[0]
        loc = top_predictions(*merge_per_class(cands, protocol.merge_threshold))
        return cands, (loc.labels, loc.boxes, loc.scores)

    gallery = _gallery("figure9", run, row.row, row.bar, protocol, Path(data), list(classes),
                       paths, truths, sizes, boxes_of, request.options)  # fmt: skip
    return write_gallery(gallery_path(request.reports, "figure9", run), gallery)


def detection_gallery(records, model, background, regressor, samples, classes, protocol, data,
                      request, run: str) -> Path | None:  # fmt: skip
    """Save the detection report's gallery: the boxes of the GALLERY_RULE images under the
    detector with its regressor's boxes (DET-REG), else each window's own box (DET-WIN) when
    no regressor ran (GALLERY_ROW). ``samples``: ``[(path, Annotation)]``; ``protocol``: the
    run's :class:`~overfeat.detect.DetectionProtocol`."""
    from overfeat.detect import _most_confident, detection_candidates
    from overfeat.localize import merge_per_class

    row = "DET-REG" if "DET-REG" in records and regressor is not None else "DET-WIN"
    if row not in records:
        print("gallery: neither DET-REG nor DET-WIN ran; none saved", flush=True)
        return None
    source = "regressor" if row == "DET-REG" else "window"
    protocol = replace(protocol, box_source=source)
    model, regressor = _on_device(request.options, model, regressor if row == "DET-REG" else None)
    index = {w: i for i, w in enumerate(classes)}
    picked = gallery_picks([[index[w] for w in ann.wnids if w in index] for _, ann in samples])
    paths = [samples[i][0] for i in picked]
    anns = [samples[i][1] for i in picked]
    truths = [list(zip(a.wnids, a.boxes.tolist())) for a in anns]
    sizes = [(a.height, a.width) for a in anns]

    def boxes_of(img):
        cands = detection_candidates(model, background, regressor, [img], protocol)[0]
        found = _most_confident(*merge_per_class(cands, protocol.merge_threshold),
                                GALLERY_GUESSES)  # fmt: skip
        return cands, (found.classes, found.boxes, found.scores)

    system = {"DET-REG": "detector + SCR regressor boxes", "DET-WIN": "detector + each window's "
              "own box"}[row]  # fmt: skip
    gallery = _gallery("detection", run, row, system, protocol, Path(data), list(classes), paths,
                       truths, sizes, boxes_of, request.options)  # fmt: skip
    return write_gallery(gallery_path(request.reports, "detection", run), gallery)


# ----------------------------------------------------------------------------- drawing


def _label(wnid: str, names: dict) -> str:
    words = names.get(wnid, "")
    return words.split(",")[0] if words else wnid


def _panel(ax, entry: dict, gallery: dict, root: Path, colours: dict) -> str | None:
    """Draw one image and its boxes on ``ax``; returns what was missing, or ``None``."""
    from matplotlib.patches import Rectangle

    h, w = entry["size"]
    path = root / entry["image"]
    missing = None
    if path.is_file():
        from PIL import Image

        with Image.open(path) as im:
            pixels = np.asarray(im.convert("RGB"))
        if pixels.shape[:2] != (h, w) and h and w:
            missing = f"{path} is {pixels.shape[1]}x{pixels.shape[0]}, not the run's {w}x{h}"
        else:
            h, w = pixels.shape[:2]
            ax.imshow(pixels)
    else:
        missing = f"{path} not found"
    if missing:
        ax.set_facecolor("0.85")
        ax.text(0.5, 0.5, "image not found:\nboxes on a blank canvas\nof its size",
                transform=ax.transAxes, ha="center", va="center", fontsize=8, color="0.3")  # fmt: skip
    w, h = max(w, 1), max(h, 1)
    ax.set_aspect("equal")
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)

    def box(b, **kw):
        x1, y1, x2, y2 = b
        ax.add_patch(Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1 + 1, y2 - y1 + 1, fill=False, **kw))

    names = gallery["names"]
    for *b, s in entry["windows"]:
        box(b, lw=0.5, edgecolor=colours[s], alpha=0.6)
    for _, *b in entry["truth"]:
        box(b, lw=2.5, edgecolor="lime", linestyle="--")
    # The best guess is drawn last, on top of the others that share its box; each box carries
    # its rank, and the caption says each rank's label and score (labels on boxes that merged
    # to the same place would cover each other).
    for rank, (_, *b, _score) in reversed(list(enumerate(entry["guesses"]))):
        box(b, lw=2.5 if rank == 0 else 1.2, edgecolor="red" if rank == 0 else "yellow")
        ax.text(b[0] + 2 * rank, b[1], str(rank + 1), fontsize=7, va="top", color="black",
                bbox={"facecolor": "white", "alpha": 0.8, "pad": 1, "linewidth": 0})  # fmt: skip
    truth = ", ".join(sorted({_label(t[0], names) for t in entry["truth"]})) or "no object"
    shown = len(entry["windows"])
    before = (f"{entry['windows_total']:,} boxes of {_label(entry['windows_class'], names)}"
              if entry["windows_class"] else "no box")  # fmt: skip
    if shown < entry["windows_total"]:
        before += f"\n({shown} most probable drawn)"
    guesses = [f"{rank + 1}. {_label(wnid, names)}  {score:.3g}"
               for rank, (wnid, *_, score) in enumerate(entry["guesses"])] or ["no guess"]  # fmt: skip
    ax.set_title(f"{entry['name']}\ntruth: {truth}", fontsize=7)
    ax.set_xlabel("\n".join([f"before merge: {before}", "merged:", *guesses]), fontsize=7,
                  loc="left")  # fmt: skip
    ax.set_xticks([])
    ax.set_yticks([])
    return missing


def render_gallery(gallery: dict, png: str | Path, data_root: str | Path | None = None):
    """Draw ``gallery`` (:func:`read_gallery`) into ``png``: one panel per image (ground truth
    dashed green, boxes before the merge thin and coloured by scale, the merged guesses labelled
    with rank, class and score, the best in red), GALLERY_COLUMNS panels a row, each
    PANEL_INCHES square at GALLERY_DPI. ``data_root`` overrides the run's. → ``(png, notes)``,
    one note per image drawn on a blank canvas."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    root = Path(data_root if data_root is not None else gallery["data_root"])
    n = max(len(gallery["images"]), 1)
    cols = min(n, GALLERY_COLUMNS)
    rows = math.ceil(n / cols)
    width, height = PANEL_INCHES * cols, PANEL_INCHES * rows + LEGEND_INCHES
    fig = plt.figure(figsize=(width, height), dpi=GALLERY_DPI)
    scales = gallery["scales"]
    # Scale colours from cyan to magenta, apart from the ground truth (lime) and the merged
    # boxes (red, yellow).
    cmap = plt.get_cmap("cool")
    colours = {s: cmap(i / max(len(scales) - 1, 1)) for i, s in enumerate(scales)}
    notes = []
    for k, entry in enumerate(gallery["images"]):
        r, c = divmod(k, cols)
        # Each panel: the title above, the image, the caption of PANEL_CAPTION_INCHES below.
        bottom = height - LEGEND_INCHES - (r + 1) * PANEL_INCHES + PANEL_CAPTION_INCHES
        box = (c * PANEL_INCHES + 0.1, bottom, PANEL_INCHES - 0.2,
               PANEL_INCHES - PANEL_CAPTION_INCHES - PANEL_TITLE_INCHES)  # fmt: skip
        ax = fig.add_axes([box[0] / width, box[1] / height, box[2] / width, box[3] / height])
        missing = _panel(ax, entry, gallery, root, colours)
        if missing:
            notes.append(f"{entry['name']}: {missing}; boxes drawn on a blank canvas of its size")
    handles = [Line2D([], [], color=colours[s], lw=1, label=f"scale {s}") for s in scales]
    handles += [Line2D([], [], color="lime", lw=2, ls="--", label="ground truth"),
                Line2D([], [], color="red", lw=2, label="merged, best"),
                Line2D([], [], color="yellow", lw=1.2, label="merged, next")]  # fmt: skip
    fig.legend(handles=handles, loc="upper right", ncol=len(handles), fontsize=7, frameon=False)
    fig.text(0.01, 1 - 0.15 * LEGEND_INCHES / height,
             f"{gallery['run']}: {gallery['row']} ({gallery['system']})", fontsize=9, va="top")  # fmt: skip
    png = Path(png)
    fig.savefig(png, dpi=GALLERY_DPI, metadata={"Software": None})
    plt.close(fig)
    return png, notes


def render_galleries(reports: str | Path, runs: Sequence[Path] | None = None) -> list[str]:
    """Draw ``<run>.gallery.png`` beside every localization and detection report under
    ``reports`` (or the reports ``runs``, their CSVs) from its saved ``<run>.gallery.json.gz``;
    a report without one is skipped. → one line per report: what was written or skipped."""
    if runs is None:
        runs = [p for a in ("figure9", "detection") for p in sorted((Path(reports) / a).glob("*.csv"))
                if not p.stem.endswith("_directions")]  # fmt: skip
    lines = []
    for csv in runs:
        if csv.parent.name not in ("figure9", "detection"):
            continue
        saved = csv.with_name(f"{csv.stem}.gallery.json.gz")
        if not saved.is_file():
            lines.append(f"gallery skipped for {csv}: no saved boxes ({saved.name}); rerun the "
                         "reproduction to save them")  # fmt: skip
            continue
        png, notes = render_gallery(read_gallery(saved), csv.with_name(f"{csv.stem}.gallery.png"))
        lines.append(f"wrote {png}" + "".join(f"\n  {n}" for n in notes))
    return lines
