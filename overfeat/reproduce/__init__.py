"""The reproduction runner: one artifact of the paper = one protocol set run through networks
and handed to the evaluation harness.

- :mod:`overfeat.reproduce.networks`: where the networks come from (trained runs and the released
  weights, named by :mod:`overfeat.network_sources`, or training them now, cached);
- :mod:`overfeat.reproduce.embedded`: the embedded default (synthetic data, toy networks);
- :mod:`overfeat.reproduce.content`: the sha256 of the files behind each network, the identity
  every cache key is built from;
- :mod:`overfeat.reproduce.runner`: Table 2's protocols over a validation set, scored by the
  harness, each finished row saved;
- :mod:`overfeat.reproduce.partial`: a row in progress on disk, so an interrupted row continues;
- :mod:`overfeat.reproduce.table2`, :mod:`overfeat.reproduce.tables`: Tables 2, 4 and 5;
- :mod:`overfeat.reproduce.figure9`, :mod:`overfeat.reproduce.detection`: Figure 9 and §5;
- :mod:`overfeat.reproduce.cli`: ``overfeat reproduce table2|figure9|detection|table4|table5|all|report``.

The reproductions are built on the inference layer and never the other way: the images decoded
in a DataLoader, undecodable ones named, and the run options are :mod:`overfeat.inference`'s,
the progress bars :mod:`overfeat.progress`'s (``overfeat.reproduce.images``, ``.progress`` and
``runner.RunOptions`` remain as their old names; ``tests/test_layers.py`` holds the rule).

The paper's numbers, the diff against them and the rendering are data work and live in
:mod:`evaluation` (``evaluation.paper``, ``evaluation.diff``, ``evaluation.render``).
"""
