"""evaluation: an ILSVRC harness (classification, CLS-LOC localization, DET mAP) that computes
the numbers exactly as the official devkits do (shared/reference/ilsvrc-evaluation.md §2).

Modules, one role each:

- ``labels``       the label spaces (WNID, sorted index 0..999, ILSVRC2012_ID, DET_ID) and the
                   only conversions between them;
- ``annotations``  ground-truth XML folders and Kaggle ``LOC_val_solution.csv``;
- ``formats``      devkit and Kaggle submission files, ground-truth txt, image lists, blacklists;
- ``boxes``        the devkits' inclusive "+1" overlap and the DET small-object threshold;
- ``clsloc``       classification and CLS-LOC error with 1..5 guesses;
- ``detection``    DET matching and all-points AP per class;
- ``tasks``        the three tasks from files (pairing by name or position);
- ``evaluator``    streaming reset / process / evaluate, gathered across torch.distributed ranks;
- ``coco_check``   pycocotools as an independent cross-check of the DET matching;
- ``__main__``     ``python -m evaluation {cls,loc,det}``.
"""
