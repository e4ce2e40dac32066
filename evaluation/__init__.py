"""evaluation: an ILSVRC harness (classification, CLS-LOC localization, DET mAP) that computes
the numbers exactly as the official devkits do."""
