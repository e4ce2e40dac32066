"""Verdicts on the paper's directions: does a reproduction resolve the sign of a comparison?

A direction (fine vs coarse stride, 4 scales vs 1, SCR vs PCR, ...) compares two rows scored on
the *same* images. Two point estimates always differ, so their sign alone says little on a few
hundred images; a verdict instead asks whether the paired difference is resolved:

- ``"agrees"``: its interval excludes 0 on the paper's side;
- ``"contradicts"``: its interval excludes 0 on the other side;
- ``"unresolved"``: its interval holds 0; :func:`images_to_resolve` then says how many paired
  images would detect the paper's own effect at the disagreement observed.

Decision VERDICT_STATISTICS (the paper reports no uncertainty, so every choice below is ours;
the values are :data:`VERDICT_STATISTICS` and the defaults of every function here):

- **Error-rate interval**: the exact Clopper–Pearson binomial interval (Clopper & Pearson 1934,
  Biometrika 26:404–413), through the beta-quantile identity ``low = B⁻¹(α/2; k, n−k+1)``,
  ``high = B⁻¹(1−α/2; k+1, n−k)``; it never covers less than its level, which matters at the
  0–10% error rates of top-5 rows. The Wilson score interval (Wilson 1927, JASA 22:209–212) is the
  option (:func:`wilson_interval`).
- **Paired test**: the exact McNemar test (McNemar 1947, Psychometrika 12:153–157), as Dietterich
  (1998, Neural Computation 10:1895–1923) recommends for two classifiers on one test set: with
  ``b`` images only the first gets wrong and ``c`` only the second, ``p = min(1, 2·P(X ≤
  min(b, c)))`` for ``X ~ Bin(b + c, 1/2)``, and ``p = 1`` when ``b + c = 0``.
- **Interval of the difference**: the paired percentile bootstrap (Efron & Tibshirani 1993, *An
  Introduction to the Bootstrap*, ch. 13): image indices drawn with replacement, the *same*
  indices for both rows (the rows share their images, and pairing cancels what the images have
  in common), ``statistic(b) − statistic(a)`` per resample, the ``(1−level)/2`` and
  ``(1+level)/2`` quantiles of the resampled differences (numpy's default linear quantile);
  10,000 resamples from ``numpy.random.default_rng(0)``, so a report renders the same twice. A
  statistic that is not a mean (an AP, a mAP) is recomputed per resample from the index array
  ("by image").
- **Level**: 95% two-sided for every interval; the verdict is read from the bootstrap interval,
  and the McNemar p-value is reported beside it.
- **Images to resolve**: the normal-approximation sample size of the two-sided McNemar test
  (Connor 1987, Biometrics 43:207–211): ``n = [z₁₋α/₂·√ψ + z₁₋β·√(ψ − δ²)]² / δ²`` with ``ψ``
  the discordance rate (fraction of images on which the two rows disagree), ``δ`` the difference
  in error rates (the paper's), ``α = 0.05`` and power ``1 − β = 0.8``, rounded up; ``inf`` when
  ``δ = 0``, and an observed ``ψ`` below ``|δ|`` (impossible for a true effect ``δ``) is raised
  to ``|δ|``, which makes the count a lower bound.
- **Training seeds**: a reproduction's other uncertainty, across networks trained with different
  seeds (ensemble members), is reported as mean, sample standard deviation (``ddof=1``), min and
  max (:func:`seed_spread`); no interval is claimed from the few seeds a CPU can train.

Conventions follow :mod:`evaluation.diff`: ``a`` is the baseline row, ``b`` the candidate, and a
difference is ``b − a``, so a negative error difference means the candidate is better. Error
rates and differences here are fractions (``-0.0027`` for the paper's −0.27 points).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from scipy.stats import beta, binom, norm

__all__ = [
    "AGREES",
    "CONTRADICTS",
    "UNRESOLVED",
    "VERDICT_STATISTICS",
    "Direction",
    "VerdictStatistics",
    "count_verdicts",
    "discordant_counts",
    "error_interval",
    "images_to_resolve",
    "judge_direction",
    "mcnemar_exact",
    "mcnemar_exact_from_counts",
    "paired_bootstrap",
    "paired_bootstrap_distribution",
    "seed_spread",
    "verdict",
    "wilson_interval",
]

AGREES, CONTRADICTS, UNRESOLVED = "agrees", "contradicts", "unresolved"


@dataclass(frozen=True)
class VerdictStatistics:
    """Decision VERDICT_STATISTICS as data: the methods and their parameters."""

    level: float = 0.95
    error_interval: str = "Clopper-Pearson exact (option: Wilson score)"
    paired_test: str = "exact McNemar, two-sided binomial on the discordant pairs"
    difference_interval: str = "paired percentile bootstrap over images"
    resamples: int = 10_000
    seed: int = 0
    sample_size: str = "Connor (1987) normal approximation for McNemar"
    alpha: float = 0.05
    power: float = 0.8
    seed_spread: str = "mean, sample std (ddof=1), min, max"


VERDICT_STATISTICS = VerdictStatistics()

# Index draws are made in blocks of about this many elements, so 10,000 resamples of 50,000
# images never hold 5·10⁸ indices at once; the block size is a function of n alone, so a seed
# gives the same resamples whatever the statistic.
_BLOCK_ELEMENTS = 1 << 22


def _check_level(level: float) -> float:
    if not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")
    return float(level)


# ----------------------------------------------------------------------------- error rates


def error_interval(
    errors: int, n: int, level: float = VERDICT_STATISTICS.level
) -> tuple[float, float]:
    """The exact Clopper–Pearson interval ``(low, high)`` for an error rate of ``errors`` in
    ``n`` images: the rates at which ``errors`` or more (``low``), or ``errors`` or fewer
    (``high``), would be seen with probability ``(1 − level)/2``. ``low = 0`` at 0 errors,
    ``high = 1`` at ``n``."""
    errors, n = _check_count(errors, n)
    tail = (1 - _check_level(level)) / 2
    low = 0.0 if errors == 0 else float(beta.ppf(tail, errors, n - errors + 1))
    high = 1.0 if errors == n else float(beta.ppf(1 - tail, errors + 1, n - errors))
    return low, high


def wilson_interval(
    errors: int, n: int, level: float = VERDICT_STATISTICS.level
) -> tuple[float, float]:
    """The Wilson score interval ``(low, high)`` for an error rate of ``errors`` in ``n`` images
    (no continuity correction): ``(p̂ + z²/2n ± z·√(p̂(1−p̂)/n + z²/4n²)) / (1 + z²/n)``."""
    errors, n = _check_count(errors, n)
    z = float(norm.ppf(0.5 + _check_level(level) / 2))
    p = errors / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    scale = 1 + z * z / n
    return max(0.0, (centre - half) / scale), min(1.0, (centre + half) / scale)


def _check_count(errors: int, n: int) -> tuple[int, int]:
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive whole number of images, got {n}")
    if int(errors) != errors or not 0 <= errors <= n:
        raise ValueError(f"errors must be a whole number in 0..{n}, got {errors}")
    return int(errors), int(n)


# ----------------------------------------------------------------------------- McNemar


def _paired_flags(a_wrong, b_wrong) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a_wrong)
    b = np.asarray(b_wrong)
    if a.ndim != 1 or a.shape != b.shape or a.size == 0:
        raise ValueError(
            f"a_wrong and b_wrong must be 1-D flags for the same images, got shapes "
            f"{a.shape} and {b.shape}"
        )
    for name, flags in (("a_wrong", a), ("b_wrong", b)):
        if flags.dtype != bool and not np.isin(flags, (0, 1)).all():
            raise ValueError(f"{name} must hold booleans (or 0/1), one per image")
    return a.astype(bool), b.astype(bool)


def discordant_counts(a_wrong, b_wrong) -> tuple[int, int]:
    """``(b, c)``: images ``a`` gets wrong and ``b`` right, images ``a`` gets right and ``b``
    wrong. ``a_wrong, b_wrong: (n,)`` booleans for the same images in the same order."""
    a, b = _paired_flags(a_wrong, b_wrong)
    return int(np.count_nonzero(a & ~b)), int(np.count_nonzero(~a & b))


def mcnemar_exact_from_counts(b: int, c: int) -> float:
    """The exact McNemar p-value from the discordant counts: ``min(1, 2·P(X ≤ min(b, c)))``
    for ``X ~ Bin(b + c, 1/2)``; 1 when ``b + c = 0``."""
    if int(b) != b or int(c) != c or b < 0 or c < 0:
        raise ValueError(f"discordant counts must be whole numbers ≥ 0, got b={b}, c={c}")
    m = int(b) + int(c)
    if m == 0:
        return 1.0
    return float(min(1.0, 2.0 * binom.cdf(min(b, c), m, 0.5)))


def mcnemar_exact(a_wrong, b_wrong) -> float:
    """The exact McNemar p-value (Dietterich 1998) for two classifiers on the same images.
    ``a_wrong, b_wrong: (n,)`` booleans, True where that classifier's answer is wrong."""
    return mcnemar_exact_from_counts(*discordant_counts(a_wrong, b_wrong))


# ----------------------------------------------------------------------------- bootstrap

Statistic = Callable[[np.ndarray], float]


def _index_blocks(n: int, resamples: int, seed: int):
    """The resampled image indices, ``(rows, n)`` blocks whose rows are the resamples in order."""
    rng = np.random.default_rng(seed)
    rows = max(1, _BLOCK_ELEMENTS // n)
    for start in range(0, resamples, rows):
        yield rng.integers(0, n, size=(min(rows, resamples - start), n))


def paired_bootstrap_distribution(
    a,
    b,
    statistic: Statistic | None = None,
    *,
    n: int | None = None,
    resamples: int = VERDICT_STATISTICS.resamples,
    seed: int = VERDICT_STATISTICS.seed,
) -> tuple[float, np.ndarray]:
    """The observed difference and its ``(resamples,)`` resampled differences.

    Two forms, one index stream (the same seed draws the same images in both):

    - per-image values, ``a, b: (n,)`` floats: ``statistic(b[idx]) − statistic(a[idx])`` for
      each resample ``idx: (n,)``; ``statistic`` takes a ``(n,)`` array and defaults to the mean;
    - by image, ``a, b`` callables ``statistic(indices: (n,) int) -> float`` that recompute a
      row's number (an AP, a mAP) from the images at those indices, repeats included; ``n``
      (the image count) is then required and ``statistic`` unused.

    The observed difference is the same computation on the images as they are (``arange(n)``).
    """
    if int(resamples) != resamples or resamples < 1:
        raise ValueError(f"resamples must be a positive whole number, got {resamples}")
    resamples = int(resamples)
    if callable(a) or callable(b):
        if not (callable(a) and callable(b)):
            raise ValueError("a and b must both be arrays or both be callables of indices")
        if statistic is not None:
            raise ValueError("statistic applies to per-image arrays; callables are the statistic")
        if n is None or int(n) != n or n < 1:
            raise ValueError(f"by-image resampling needs n, the number of images, got {n}")
        n = int(n)
        observed = float(b(np.arange(n))) - float(a(np.arange(n)))
        out = [
            float(b(idx)) - float(a(idx))
            for block in _index_blocks(n, resamples, seed)
            for idx in block
        ]
        return observed, np.asarray(out, dtype=np.float64)

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape or a.size == 0:
        raise ValueError(
            f"a and b must be 1-D values for the same images, got shapes {a.shape} and {b.shape}"
        )
    if n is not None and n != a.size:
        raise ValueError(f"n={n} but the arrays hold {a.size} images")
    n = a.size
    if statistic is None or statistic is np.mean:
        # The difference of two means over the same indices is the mean of the per-image
        # differences: one gather instead of two.
        d = b - a
        observed = float(b.mean() - a.mean())
        out = np.concatenate([d[block].mean(axis=1) for block in _index_blocks(n, resamples, seed)])
        return observed, out
    observed = float(statistic(b)) - float(statistic(a))
    out = [
        float(statistic(b[idx])) - float(statistic(a[idx]))
        for block in _index_blocks(n, resamples, seed)
        for idx in block
    ]
    return observed, np.asarray(out, dtype=np.float64)


def paired_bootstrap(
    a,
    b,
    statistic: Statistic | None = None,
    *,
    n: int | None = None,
    resamples: int = VERDICT_STATISTICS.resamples,
    seed: int = VERDICT_STATISTICS.seed,
    level: float = VERDICT_STATISTICS.level,
) -> tuple[float, float, float]:
    """``(difference, low, high)``: ``statistic(b) − statistic(a)`` and its paired percentile
    bootstrap interval at ``level``. Arguments as :func:`paired_bootstrap_distribution`."""
    level = _check_level(level)
    observed, diffs = paired_bootstrap_distribution(
        a, b, statistic, n=n, resamples=resamples, seed=seed
    )
    low, high = np.quantile(diffs, [(1 - level) / 2, (1 + level) / 2])
    return observed, float(low), float(high)


# ----------------------------------------------------------------------------- verdicts


def verdict(low: float, high: float, paper_sign: float) -> str:
    """``"agrees"`` when ``[low, high]`` excludes 0 on the side of ``paper_sign`` (any number;
    only its sign is read), ``"contradicts"`` when it excludes 0 on the other side,
    ``"unresolved"`` when it holds 0 (an end exactly at 0 holds it)."""
    if any(math.isnan(v) for v in (low, high, paper_sign)):
        raise ValueError(f"verdict needs numbers, got low={low}, high={high}, paper={paper_sign}")
    if low > high:
        raise ValueError(f"interval ends out of order: low={low} > high={high}")
    if paper_sign == 0:
        raise ValueError("the paper's difference is 0: it gives no direction to agree with")
    if low > 0:
        return AGREES if paper_sign > 0 else CONTRADICTS
    if high < 0:
        return AGREES if paper_sign < 0 else CONTRADICTS
    return UNRESOLVED


def images_to_resolve(
    effect: float,
    discordance: float,
    alpha: float = VERDICT_STATISTICS.alpha,
    power: float = VERDICT_STATISTICS.power,
) -> int | float:
    """Paired images needed for a two-sided McNemar test at ``alpha`` to detect a difference in
    error rates ``effect`` (δ) with probability ``power``, at ``discordance`` ψ (the fraction of
    images on which the two rows disagree): Connor (1987),
    ``n = [z₁₋α/₂·√ψ + z₁₋β·√(ψ − δ²)]² / δ²``, rounded up.

    ``math.inf`` when δ = 0 (no effect is ever detected). Every disagreement that moves the error
    rate is a discordant image, so ψ ≥ |δ| for any two classifiers; an observed ψ below |δ| (a
    pair that disagrees on fewer images than the paper's effect needs, often zero disagreements
    on a handful of images) is raised to |δ|, where every discordant image goes the paper's way,
    and the count is then the fewest images that could resolve the effect, a lower bound.
    """
    if math.isnan(effect) or math.isnan(discordance):
        raise ValueError(f"need numbers, got effect={effect}, discordance={discordance}")
    if not -1 <= effect <= 1:
        raise ValueError(f"effect is a difference of error rates, in [-1, 1]; got {effect}")
    if not 0 <= discordance <= 1:
        raise ValueError(f"discordance is a fraction of images, in [0, 1]; got {discordance}")
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"alpha and power lie strictly in (0, 1); got {alpha}, {power}")
    delta = abs(float(effect))
    if delta == 0:
        return math.inf
    psi = max(float(discordance), delta)
    z_alpha = float(norm.ppf(1 - alpha / 2))
    z_beta = float(norm.ppf(power))
    n = (z_alpha * math.sqrt(psi) + z_beta * math.sqrt(psi - delta * delta)) ** 2 / delta**2
    # A count that is whole in exact arithmetic must not round up past itself on float noise.
    return max(1, math.ceil(n - 1e-9))


def seed_spread(values) -> tuple[float, float, float, float]:
    """``(mean, std, min, max)`` of one number across training seeds (or ensemble members);
    ``std`` is the sample standard deviation (``ddof=1``), NaN for a single seed.
    ``values: (seeds,)``."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"seed_spread needs a 1-D array of at least one value, got {v.shape}")
    std = float(v.std(ddof=1)) if v.size > 1 else math.nan
    return float(v.mean()), std, float(v.min()), float(v.max())


@dataclass(frozen=True)
class Direction:
    """One of the paper's directions judged on paired per-image errors (``a`` the baseline row,
    ``b`` the candidate; rates and differences as fractions)."""

    name: str
    n: int
    errors_a: int
    errors_b: int
    error_a: float
    error_b: float
    error_a_interval: tuple[float, float]  # Clopper–Pearson
    error_b_interval: tuple[float, float]
    difference: float  # error_b − error_a
    low: float  # paired bootstrap interval of the difference
    high: float
    level: float
    a_wrong_b_right: int
    a_right_b_wrong: int
    discordance: float  # (a_wrong_b_right + a_right_b_wrong) / n
    p_value: float  # exact McNemar
    paper_delta: float
    verdict: str
    images_to_resolve: int | float  # at the paper's delta and the discordance observed


def judge_direction(
    a_wrong,
    b_wrong,
    paper_delta: float,
    *,
    name: str = "",
    level: float = VERDICT_STATISTICS.level,
    resamples: int = VERDICT_STATISTICS.resamples,
    seed: int = VERDICT_STATISTICS.seed,
    alpha: float = VERDICT_STATISTICS.alpha,
    power: float = VERDICT_STATISTICS.power,
) -> Direction:
    """Judge a direction of error rates: ``a_wrong, b_wrong: (n,)`` booleans for the same images
    (``a`` the baseline row, ``b`` the candidate), ``paper_delta`` the paper's
    ``error(b) − error(a)`` as a fraction. The verdict is read from the paired bootstrap
    interval of ``error(b) − error(a)``; the exact McNemar p-value and the images needed to
    resolve the paper's own delta come with it."""
    a, b = _paired_flags(a_wrong, b_wrong)
    n = a.size
    errors_a, errors_b = int(a.sum()), int(b.sum())
    only_a, only_b = discordant_counts(a, b)
    difference, low, high = paired_bootstrap(
        a.astype(np.float64), b.astype(np.float64), resamples=resamples, seed=seed, level=level
    )
    discordance = (only_a + only_b) / n
    return Direction(
        name=name,
        n=n,
        errors_a=errors_a,
        errors_b=errors_b,
        error_a=errors_a / n,
        error_b=errors_b / n,
        error_a_interval=error_interval(errors_a, n, level),
        error_b_interval=error_interval(errors_b, n, level),
        difference=difference,
        low=low,
        high=high,
        level=level,
        a_wrong_b_right=only_a,
        a_right_b_wrong=only_b,
        discordance=discordance,
        p_value=mcnemar_exact_from_counts(only_a, only_b),
        paper_delta=float(paper_delta),
        verdict=verdict(low, high, paper_delta),
        images_to_resolve=images_to_resolve(paper_delta, discordance, alpha, power),
    )


def count_verdicts(directions: Iterable[Direction | str]) -> str:
    """``"k agree, m contradict, r unresolved"`` over :class:`Direction` objects (or their
    verdict strings)."""
    counts = {AGREES: 0, CONTRADICTS: 0, UNRESOLVED: 0}
    for d in directions:
        v = d if isinstance(d, str) else d.verdict
        if v not in counts:
            raise ValueError(f"unknown verdict {v!r}; expected one of {sorted(counts)}")
        counts[v] += 1
    return (
        f"{counts[AGREES]} agree, {counts[CONTRADICTS]} contradict, {counts[UNRESOLVED]} unresolved"
    )
