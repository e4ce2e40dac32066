"""The CI regression gate: the whole pipeline on real ImageNet photos, against committed baselines.

Unit tests check each piece against an independent computation; the gate checks that the pieces
still add up to the same numbers. It runs six suites and compares every metric with
``reports/baselines/<suite>.json`` as ``[suite, metric, baseline, tolerance]`` rows (detectron2's
quick schedules, torchvision's model checks):

- ``harness`` (:mod:`overfeat.gate.harness`): the devkits' own files through ``evaluation``;
- ``pretrained-real`` (:mod:`overfeat.gate.pretrained`): EfficientNet-Lite0 on 1,300 real
  ILSVRC2012 validation images through the readers and the harness's ``cls`` / ``loc``;
- ``train-real`` and ``synthetic`` (:mod:`overfeat.gate.trained`): a toy fast network trained
  from scratch (imagenette-10; the embedded default's synthetic set at its smallest), then Table 2
  rows through the reproduction runner (dense evaluation, offset max-pooling, scales, flips);
- ``loc-real`` and ``det-synthetic`` (:mod:`overfeat.gate.spatial`): an SCR regressor on
  train-real's classifier, Figure 9 rows on imagenette-10's 134 boxed validation images; a
  detector with a background class and its regressor on synthetic DET images, their mAP.

:mod:`overfeat.gate.config` holds what runs, :mod:`overfeat.gate.baselines` the files and the
rule that judges a metric, :mod:`overfeat.gate.perturb` the processes (CPU kernel sets, thread
counts) a tolerance is measured across, :mod:`overfeat.gate.run` the run,
:mod:`overfeat.gate.report` the table, :mod:`overfeat.gate.cli` the ``overfeat regression``
command.
"""

from overfeat.gate.config import GateConfig, TrainedSuite
from overfeat.gate.run import GateOutcome, run_gate

__all__ = ["GateConfig", "GateOutcome", "TrainedSuite", "run_gate"]
