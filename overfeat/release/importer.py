"""``overfeat import-release``: a released network written as a classifier run.

§4.2: "We fix the feature extraction layers (1-5) from the classification network and train the
regression network"; the paper's regressors and detector sit on its own classifier. The
localization and detection trainers start from a classifier run (a folder of ``checkpoint-*.pt``
written by ``overfeat train classifier``, :mod:`overfeat.engine.checkpoint`); this module writes
the released ``net_weight_0``/``net_weight_1`` as such a run, so that ``overfeat train regressor
--classifier RUN`` and ``overfeat train detector --classifier RUN`` start from the released
layers 1–5.

The run holds one checkpoint, ``checkpoint-00000000.pt``, in the engine's format, plus::

    release      {"file", "sha256", "arch", "class_order", "activation"}: where it came from

Its outputs follow the sorted-WNID index the project uses (the last layer's rows permuted as
:func:`overfeat.release.release_model_for` permutes them, through ``--meta`` or the class order
shipped with the package), and its activation is the release's threshold (decision
RELEASE_ACTIVATION), recorded in ``model_config`` so that ``build_model(**model_config)``
rebuilds the same network. The run holds a copy of the weights, so it is as private as the
released files themselves (NYU licence: internal research and evaluation only).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from overfeat.release.weights import RELEASE_FILE_NAMES, load_release, resolve_weights_file

__all__ = ["IMPORTED_CHECKPOINT", "file_sha256", "import_release", "register"]

# Step 0: the run took no optimizer step of its own.
IMPORTED_CHECKPOINT = "checkpoint-00000000.pt"


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, read in 16 MiB blocks (the released files are ~580 MB)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 24):
            h.update(block)
    return h.hexdigest()


def import_release(
    weights: str | Path,
    arch: str | None,
    out: str | Path,
    meta: str | Path | None = None,
    sha256: str | None = None,
) -> Path:
    """Write the released ``arch`` network in ``weights`` (a folder or the file) as the classifier
    run ``out``; returns the checkpoint's path.

    ``meta``: the devkit's meta.mat that orders the outputs (default: the order shipped with the
    package, decision SHIPPED_CLASS_ORDER). ``sha256``: the weight file's digest when the caller
    has it already. ``out`` must hold no checkpoint yet (a run is never overwritten).
    """
    from evaluation.labels import ClassLabels
    from overfeat.data.class_order import ilsvrc2012_labels
    from overfeat.engine.checkpoint import list_checkpoints, save_checkpoint_atomic
    from overfeat.engine.config import TrainConfig
    from overfeat.release.classes import permute_classifier_to_sorted

    out = Path(out)
    if list_checkpoints(out):
        raise FileExistsError(
            f"--out {out}: holds checkpoints already; import into a new folder (a run is never "
            "overwritten)"
        )
    path = resolve_weights_file(weights, arch)
    net = load_release(path, arch)
    labels = ClassLabels.from_devkit_meta(meta) if meta is not None else ilsvrc2012_labels()
    permute_classifier_to_sorted(net.model, labels)
    layout = net.layout
    # Decision RELEASE_IMPORT_RUN: the run reads as a finished one-epoch run (so nothing offers
    # to "continue" it) with no optimizer or scheduler state: the release published no training
    # state, and a classifier run's consumers read only the network.
    config = TrainConfig(out=str(out), arch=layout.arch, width=layout.width, epochs=1,
                         progress=False)  # fmt: skip
    state = {
        "model": net.model.state_dict(),
        "model_config": net.model.config,
        "train_config": config.to_dict(),
        "optimizer": {},
        "scheduler": {},
        "progress": {"epoch": 1, "step_in_epoch": 0, "global_step": 0},
        "release": {
            "file": str(path.resolve()),
            "sha256": sha256 or file_sha256(path),
            "arch": layout.arch,
            "class_order": f"sorted WNIDs, through {meta if meta is not None else 'the shipped order'}",
            "activation": net.model.activation,
        },
    }
    return save_checkpoint_atomic(state, out / IMPORTED_CHECKPOINT)


# ---------------------------------------------------------------------------------- command line
def register(subparsers) -> None:
    from overfeat.flags import add_meta_flag

    p = subparsers.add_parser(
        "import-release",
        help="write a released OverFeat network as a classifier run (for train regressor/detector)",
        description=(
            "Write net_weight_0 (fast) or net_weight_1 (accurate) as a run of 'overfeat train "
            "classifier' (one checkpoint, outputs in sorted-WNID order, the release's activation), "
            "so that 'overfeat train regressor --classifier RUN' and 'overfeat train detector "
            "--classifier RUN' start from the released layers 1-5."
        ),
    )
    p.add_argument("weights", metavar="DIR",
                   help="directory holding net_weight_0/net_weight_1 (or one of the files)")  # fmt: skip
    p.add_argument("--arch", choices=sorted(RELEASE_FILE_NAMES),
                   help="network (default: fast when DIR holds it, or the file's size for a file)")  # fmt: skip
    p.add_argument("--out", required=True, metavar="RUN", help="the run folder to write")
    add_meta_flag(p, use="the class order of the outputs",
                  absent="the class order shipped with the package")  # fmt: skip
    p.set_defaults(func=_main)


def _main(args) -> int:
    try:
        path = import_release(args.weights, args.arch, args.out, args.meta)
    except (FileNotFoundError, FileExistsError, ValueError) as exc:
        print(f"import-release: {exc}", file=sys.stderr)
        return 2
    print(f"import-release: wrote {path}; train on it with 'overfeat train regressor "
          f"--classifier {args.out} ...'", flush=True)  # fmt: skip
    return 0
