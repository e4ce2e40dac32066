"""The input normalisation of the released OverFeat networks, read by the data pipeline and by the
release importer alike (both import it; it imports nothing of the project).

Layer 0 of both released networks (overfeat-release.md §1.1): one scalar mean and one scalar
standard deviation for all three channels, applied to RGB pixels in 0–255. The paper states no
normalisation (FACTS §10).
"""

from __future__ import annotations

__all__ = ["RELEASE_MEAN", "RELEASE_STD"]

RELEASE_MEAN = 118.380948
RELEASE_STD = 61.896913
