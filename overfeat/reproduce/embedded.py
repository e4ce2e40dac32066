"""The embedded default: what a reproduction runs on a machine with no ImageNet and no GPU.

A synthetic ILSVRC-format data set (``overfeat make-synthetic``) and toy-width networks trained
on it on the CPU, all cached under one folder, so that ``nox -s reproduce_table2`` on a fresh
clone finishes in minutes on 2 cores, and a second run reuses everything.

Decision EMBEDDED_DEFAULT (sized to the 10-minute budget of a 2-core machine, measured in the
README): 10 classes with class colours (decision CLASS_COLOURS: on 500 images, 10 epochs of the
toy recipe left a fast network at chance, top-1 error 0.91 on the validation images, without
them), 60 training and 12 validation images per class, and 50 DET validation images (0–6
objects each, for the detection reproduction); the toy recipe for ``TOY_EPOCHS`` (6)
epochs (100 images and 8 epochs took about 15 minutes, this sizing 7); ensembles of
``EMBEDDED_MEMBERS`` networks instead of the paper's 7. The synthetic images
(240–480 pixels on the long side, objects spanning 10–90% of it) are larger than the training
crop and hold objects at many sizes, which is what gives multi-scale evaluation room to work;
224-pixel photos upsampled to Table 5's sizes do not (see the imagenette-10 report).
"""

from __future__ import annotations

import shlex
from pathlib import Path

from overfeat.data.synthetic import SyntheticConfig, write_synthetic

__all__ = [
    "EMBEDDED_DATA",
    "EMBEDDED_MEMBERS",
    "EMBEDDED_TRAIN_ARGS",
    "embedded_data",
    "synthetic_command",
]

EMBEDDED_DATA = SyntheticConfig(
    seed=0, classes=10, train_per_class=60, val_per_class=12, det_images=50, class_colours=True
)
TOY_EPOCHS = 6
EMBEDDED_TRAIN_ARGS: tuple[str, ...] = (
    "--recipe", "toy", "--epochs", str(TOY_EPOCHS), "--workers", "1", "--log-every", "0",
)  # fmt: skip
EMBEDDED_MEMBERS = 2


def synthetic_command(config: SyntheticConfig, out: str | Path) -> str:
    """The ``overfeat make-synthetic`` command that writes ``config`` to ``out``."""
    args = [
        "overfeat", "make-synthetic", str(out), "--seed", str(config.seed),
        "--classes", str(config.classes), "--train-per-class", str(config.train_per_class),
        "--val-per-class", str(config.val_per_class), "--det-images", str(config.det_images),
    ]  # fmt: skip
    if config.class_colours:
        args.append("--class-colours")
    return shlex.join(args)


def embedded_data(cache: str | Path, progress: bool = True) -> Path:
    """The embedded default's data set under ``cache/data/synthetic``, written on first use."""
    root = Path(cache) / "data" / "synthetic"
    if (root / "synthetic.json").is_file():
        return root
    tmp = root.with_name(root.name + ".partial")
    if tmp.exists():  # an interrupted earlier write: start it again
        import shutil

        shutil.rmtree(tmp)
    write_synthetic(tmp, EMBEDDED_DATA, progress=progress)
    tmp.rename(root)
    return root
