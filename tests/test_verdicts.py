"""The statistics of verdicts (evaluation.verdicts), each against an independent computation:
scipy's binomial test and intervals, binomial tails summed with math.comb, full enumeration of
every bootstrap resample of a tiny set, hand-worked power arithmetic, and planted effects."""

from __future__ import annotations

import inspect
import itertools
import math
import statistics
from fractions import Fraction

import numpy as np
import pytest
from scipy.stats import binom, binomtest, norm

from evaluation import verdicts as V
from evaluation.verdicts import (
    VERDICT_STATISTICS,
    count_verdicts,
    discordant_counts,
    error_interval,
    images_to_resolve,
    judge_direction,
    mcnemar_exact,
    mcnemar_exact_from_counts,
    paired_bootstrap,
    paired_bootstrap_distribution,
    seed_spread,
    verdict,
    wilson_interval,
)

# ----------------------------------------------------------------------------- intervals

CASES = [(n, k) for n in (1, 2, 7, 30, 120) for k in range(n + 1)] + [
    (50_000, k) for k in (0, 1, 17, 1_350, 19_640, 49_999, 50_000)
]


@pytest.mark.parametrize("level", [0.95, 0.9])
def test_error_interval_is_scipys_exact_clopper_pearson_for_every_count(level):
    # scipy finds each end by root-finding on binomial tails (brentq, xtol 2e-12); the module
    # uses beta quantiles, so agreement to 1e-9 checks one against the other.
    for n, k in CASES:
        expected = binomtest(k, n).proportion_ci(confidence_level=level, method="exact")
        low, high = error_interval(k, n, level)
        assert low == pytest.approx(expected.low, abs=1e-9), (n, k)
        assert high == pytest.approx(expected.high, abs=1e-9), (n, k)


def test_error_interval_ends_leave_half_alpha_in_each_binomial_tail():
    # The definition, summed by hand: at p = low, P(X ≥ k) = 2.5%; at p = high, P(X ≤ k) = 2.5%,
    # X ~ Bin(20, p).
    n = 20

    def tail_at_least(k, p):
        return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))

    def tail_at_most(k, p):
        return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))

    for k in range(1, n):
        low, high = error_interval(k, n)
        assert tail_at_least(k, low) == pytest.approx(0.025, abs=1e-10), k
        assert tail_at_most(k, high) == pytest.approx(0.025, abs=1e-10), k
    assert error_interval(0, n)[0] == 0.0 and error_interval(n, n)[1] == 1.0


@pytest.mark.parametrize("level", [0.95, 0.8])
def test_wilson_interval_is_scipys_wilson(level):
    for n, k in CASES:
        expected = binomtest(k, n).proportion_ci(confidence_level=level, method="wilson")
        low, high = wilson_interval(k, n, level)
        assert low == pytest.approx(expected.low, abs=1e-12), (n, k)
        assert high == pytest.approx(expected.high, abs=1e-12), (n, k)


def test_error_interval_refuses_impossible_counts():
    for errors, n in ((-1, 10), (11, 10), (3, 0), (2.5, 10)):
        with pytest.raises(ValueError):
            error_interval(errors, n)


# ----------------------------------------------------------------------------- McNemar


def _flags(both_wrong: int, only_a_wrong: int, only_b_wrong: int, both_right: int):
    a = [True] * both_wrong + [True] * only_a_wrong + [False] * only_b_wrong + [False] * both_right
    b = [True] * both_wrong + [False] * only_a_wrong + [True] * only_b_wrong + [False] * both_right
    order = np.random.default_rng(7).permutation(len(a))  # the test ignores image order
    return np.array(a)[order], np.array(b)[order]


def test_mcnemar_exact_on_a_hand_worked_case():
    # 20 images: 5 both wrong, 7 both right, 1 only a gets wrong (b = 1), 7 only b gets wrong
    # (c = 7). Discordant pairs: 8, X ~ Bin(8, 1/2).
    # P(X ≤ 1) = (C(8,0) + C(8,1)) / 2^8 = (1 + 8) / 256 = 9/256, so p = 2·9/256 = 9/128
    # = 0.0703125.
    a_wrong, b_wrong = _flags(5, 1, 7, 7)
    assert discordant_counts(a_wrong, b_wrong) == (1, 7)
    by_hand = 2 * Fraction(math.comb(8, 0) + math.comb(8, 1), 2**8)
    assert by_hand == Fraction(9, 128)
    assert mcnemar_exact(a_wrong, b_wrong) == pytest.approx(float(by_hand), rel=1e-12)
    assert mcnemar_exact(b_wrong, a_wrong) == pytest.approx(float(by_hand), rel=1e-12)
    assert (
        mcnemar_exact_from_counts(1, 7)
        == mcnemar_exact_from_counts(7, 1)
        == pytest.approx(9 / 128, rel=1e-12)
    )
    # b = 0, c = 6: p = 2·C(6,0)/2^6 = 1/32
    assert mcnemar_exact(*_flags(3, 0, 6, 11)) == pytest.approx(1 / 32, rel=1e-12)
    # b = c = 3: 2·P(X ≤ 3) = 2·42/64 > 1, so p = 1; no discordant pair at all: p = 1
    assert mcnemar_exact(*_flags(2, 3, 3, 2)) == 1.0
    assert mcnemar_exact(*_flags(4, 0, 0, 6)) == 1.0


def test_mcnemar_exact_is_scipys_binomtest_on_the_discordant_counts():
    rng = np.random.default_rng(1)
    for _ in range(200):
        n = int(rng.integers(1, 400))
        a_wrong = rng.random(n) < rng.uniform(0.05, 0.7)
        flip = rng.random(n) < rng.uniform(0.0, 0.3)
        b_wrong = a_wrong ^ flip
        b = int(np.sum(a_wrong & ~b_wrong))
        c = int(np.sum(~a_wrong & b_wrong))
        expected = 1.0 if b + c == 0 else binomtest(b, b + c, 0.5).pvalue
        assert mcnemar_exact(a_wrong, b_wrong) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_mcnemar_refuses_flags_for_different_images():
    with pytest.raises(ValueError):
        mcnemar_exact(np.zeros(5, bool), np.zeros(6, bool))
    with pytest.raises(ValueError):
        mcnemar_exact(np.array([0, 2, 1]), np.array([0, 1, 1]))


# ----------------------------------------------------------------------------- bootstrap


def _enumerate(n: int) -> np.ndarray:
    """Every resample of n images, (n^n, n): each is equally likely under the bootstrap."""
    return np.array(list(itertools.product(range(n), repeat=n)))


def _check_against_enumeration(draws: np.ndarray, exact: np.ndarray, low, high, level=0.95):
    """``draws``: R bootstrap differences; ``exact``: the difference of every one of the n^n
    resamples. Tolerances are 5 Monte-Carlo standard errors, computed from the enumerated
    distribution itself: the mean's σ/√R; the variance's √((μ₄ − σ⁴)/R); an empirical
    quantile at p puts the exact CDF within √(p(1−p)/R) of p (binomial count below it)."""
    r = draws.size
    mu, var = exact.mean(), exact.var()
    mu4 = np.mean((exact - mu) ** 4)
    assert abs(draws.mean() - mu) <= 5 * math.sqrt(var / r)
    assert abs(draws.var() - var) <= 5 * math.sqrt((mu4 - var**2) / r)
    for end, p in ((low, (1 - level) / 2), (high, (1 + level) / 2)):
        tol = 5 * math.sqrt(p * (1 - p) / r)
        below = np.mean(exact < end - 1e-12)  # P(D < end)
        at_or_below = np.mean(exact <= end + 1e-12)  # P(D ≤ end)
        assert below <= p + tol and at_or_below >= p - tol, (end, p, below, at_or_below)


# Five images on which b tracks a closely: paired, the differences are small; resampling a and
# b independently would spread them over the images' own range (0.1 to 0.9). The per-image
# differences are chosen so that all 126 multisets of 5 images give distinct resampled means:
# the enumerated CDF then climbs in small steps (about 0.003 near 2.5%), so a quantile taken at
# a wrong level (0.03 or 0.022 instead of 0.025) lands outside the tolerance.
A5 = np.array([0.10, 0.50, 0.90, 0.30, 0.70])
B5 = A5 + np.array([0.0513, -0.0217, 0.0829, 0.0071, 0.0304])


def test_paired_bootstrap_matches_full_enumeration_of_all_resamples():
    idx = _enumerate(5)  # 3125 resamples
    exact = B5[idx].mean(axis=1) - A5[idx].mean(axis=1)
    resamples = 200_000
    observed, draws = paired_bootstrap_distribution(A5, B5, resamples=resamples, seed=3)
    difference, low, high = paired_bootstrap(A5, B5, resamples=resamples, seed=3)
    assert observed == difference == pytest.approx(np.mean(B5) - np.mean(A5), abs=1e-15)
    assert (low, high) == tuple(np.quantile(draws, [0.025, 0.975]))
    assert np.unique(exact.round(12)).size == 126
    _check_against_enumeration(draws, exact, low, high)
    # the enumeration is discriminating: unpaired resampling is ten times wider
    unpaired = (B5[idx][:, None, :].mean(-1) - A5[idx][None, :, :].mean(-1)).ravel()
    assert unpaired.std() > 10 * exact.std()


def test_by_image_bootstrap_matches_full_enumeration_for_a_ratio_statistic():
    # A precision-like number, hits / detections summed over the resampled images: not a mean
    # of per-image values, so it must be recomputed from each resample's indices.
    hits_a, dets_a = np.array([1, 0, 2, 3, 1]), np.array([2, 1, 2, 4, 3])
    hits_b, dets_b = np.array([2, 1, 2, 3, 1]), np.array([2, 2, 3, 4, 2])

    def precision(hits, dets):
        return lambda idx: hits[idx].sum() / dets[idx].sum()

    stat_a, stat_b = precision(hits_a, dets_a), precision(hits_b, dets_b)
    idx = _enumerate(5)
    exact = hits_b[idx].sum(1) / dets_b[idx].sum(1) - hits_a[idx].sum(1) / dets_a[idx].sum(1)
    resamples = 40_000
    observed, draws = paired_bootstrap_distribution(stat_a, stat_b, n=5, resamples=resamples)
    difference, low, high = paired_bootstrap(stat_a, stat_b, n=5, resamples=resamples)
    assert observed == difference == pytest.approx(9 / 13 - 7 / 12, abs=1e-15)
    _check_against_enumeration(draws, exact, low, high)


def test_bootstrap_draws_the_same_images_for_arrays_and_for_callables():
    rng = np.random.default_rng(5)
    a, b = rng.random(37), rng.random(37)
    _, by_array = paired_bootstrap_distribution(a, b, resamples=500, seed=11)
    _, by_image = paired_bootstrap_distribution(
        lambda idx: a[idx].mean(), lambda idx: b[idx].mean(), n=37, resamples=500, seed=11
    )
    np.testing.assert_allclose(by_array, by_image, rtol=0, atol=1e-12)
    _, median = paired_bootstrap_distribution(a, b, np.median, resamples=500, seed=11)
    _, median_by_image = paired_bootstrap_distribution(
        lambda idx: np.median(a[idx]), lambda idx: np.median(b[idx]), n=37, resamples=500, seed=11
    )
    np.testing.assert_array_equal(median, median_by_image)
    assert paired_bootstrap(a, b, resamples=500, seed=11) == paired_bootstrap(
        a, b, resamples=500, seed=11
    )
    assert paired_bootstrap(a, b, resamples=500, seed=11) != paired_bootstrap(
        a, b, resamples=500, seed=12
    )


# ----------------------------------------------------------------------------- verdicts


def test_verdict_reads_the_interval_against_the_papers_sign():
    assert verdict(-0.03, -0.01, -0.0027) == "agrees"  # both below 0, paper: lower error
    assert verdict(0.01, 0.03, -0.0027) == "contradicts"
    assert verdict(0.01, 0.03, 2.83) == "agrees"
    assert verdict(-0.03, -0.01, 2.83) == "contradicts"
    assert verdict(-0.01, 0.02, -1) == "unresolved"
    assert verdict(-0.01, 0.02, 1) == "unresolved"
    assert verdict(0.0, 0.02, 1) == "unresolved"  # an end at 0 holds 0
    assert verdict(-0.02, 0.0, -1) == "unresolved"
    for bad in ((0.1, -0.1, 1), (0.1, 0.2, 0), (math.nan, 0.1, 1), (0.1, 0.2, math.nan)):
        with pytest.raises(ValueError):
            verdict(*bad)


def test_images_to_resolve_on_a_hand_worked_power_calculation():
    # δ = 0.05, ψ = 0.2, α = 0.05 (two-sided), power 0.8:
    # z_0.975 = 1.959964, z_0.8 = 0.841621
    # √ψ = 0.447214                      → 1.959964 × 0.447214 = 0.876523
    # ψ − δ² = 0.2 − 0.0025 = 0.1975, √ = 0.444410 → 0.841621 × 0.444410 = 0.374025
    # (0.876523 + 0.374025)² = 1.250548² = 1.563871; / δ² = 1.563871 / 0.0025 = 625.55 → 626
    assert images_to_resolve(0.05, 0.2) == 626
    assert images_to_resolve(-0.05, 0.2) == 626  # two-sided: the sign does not matter
    # ψ below |δ| is raised to |δ| (every discordant image goes the effect's way):
    # δ = ψ = 0.1: (1.959964 × √0.1 + 0.841621 × √(0.1 − 0.01))² / 0.01
    # = (0.619795 + 0.252486)² / 0.01 = 0.760874 / 0.01 = 76.09 → 77
    assert images_to_resolve(0.1, 0.1) == 77
    assert images_to_resolve(0.1, 0.0) == 77
    assert images_to_resolve(0.0, 0.2) == math.inf
    for bad in ((0.05, 1.2), (1.5, 0.2), (0.05, -0.1), (math.nan, 0.2)):
        with pytest.raises(ValueError):
            images_to_resolve(*bad)


def test_images_to_resolve_is_the_fewest_images_with_the_asked_power():
    # Connor's power at n, written the other way round: Φ((|δ|√n − z_{1−α/2}√ψ) / √(ψ − δ²)).
    def power(n, delta, psi, alpha):
        z = norm.ppf(1 - alpha / 2)
        return norm.cdf(
            (abs(delta) * math.sqrt(n) - z * math.sqrt(psi)) / math.sqrt(psi - delta**2)
        )

    for delta, psi, alpha, target in (
        (0.0027, 0.05, 0.05, 0.8),
        (-0.0044, 0.12, 0.05, 0.8),
        (0.0283, 0.30, 0.01, 0.9),
        (0.128, 0.40, 0.05, 0.8),
    ):
        n = images_to_resolve(delta, psi, alpha, target)
        assert power(n, delta, psi, alpha) >= target - 1e-12
        assert power(n - 1, delta, psi, alpha) < target


def test_images_to_resolve_gives_the_exact_mcnemar_test_about_its_power():
    # The exact power of the exact test at n paired images, by summing over every outcome:
    # D ~ Bin(n, ψ) discordant images, of which C ~ Bin(D, (ψ + δ)/2ψ) go against a; reject
    # where min(1, 2·P(X ≤ min(C, D−C))) ≤ α. The exact test is conservative (a discrete test
    # never spends all of α) and the normal approximation is off by a few points at these
    # sizes, so the exact power at Connor's n sits a little under 0.8: within [0.75, 0.82].
    # Sizing with a one-sided z (1.645) instead would give 493 images and about 0.7.
    def exact_power(n, psi, delta, alpha=0.05):
        total = 0.0
        for d in range(1, n + 1):
            c = np.arange(d + 1)
            p = np.minimum(1.0, 2 * binom.cdf(np.minimum(c, d - c), d, 0.5))
            total += (
                binom.pmf(d, n, psi) * binom.pmf(c, d, (psi + delta) / (2 * psi))[p <= alpha].sum()
            )
        return total

    n = images_to_resolve(0.05, 0.2)
    assert 0.75 <= exact_power(n, 0.2, 0.05) <= 0.82
    assert exact_power(493, 0.2, 0.05) < 0.72


def test_seed_spread_is_the_sample_mean_std_and_range():
    values = [38.57, 39.12, 38.02, 38.90, 38.71]
    mean, std, low, high = seed_spread(np.array(values))
    assert mean == pytest.approx(statistics.mean(values), abs=1e-12)
    assert std == pytest.approx(statistics.stdev(values), abs=1e-12)  # n − 1 in the denominator
    assert (low, high) == (38.02, 39.12)
    one = seed_spread([40.0])
    assert one[0] == one[2] == one[3] == 40.0 and math.isnan(one[1])
    with pytest.raises(ValueError):
        seed_spread([])


# ----------------------------------------------------------------------------- planted effects


def _planted(n, rng, only_a=0.06, only_b=0.03, both=0.25):
    """Per-image outcomes drawn with P(only a wrong) = 6%, P(only b wrong) = 3%, P(both) = 25%:
    b's error is 3 points below a's, and the two disagree on 9% of images."""
    kind = rng.choice(4, size=n, p=[only_a, only_b, both, 1 - only_a - only_b - both])
    return (kind == 0) | (kind == 2), (kind == 1) | (kind == 2)


def test_planted_effect_is_unresolved_on_few_images():
    # 60 images holding the effect exactly: 4 only a wrong, 2 only b wrong (−2/60 = −3.3
    # points). McNemar: 2·P(X ≤ 2 | Bin(6, 1/2)) = 2·22/64 = 0.6875.
    a_wrong, b_wrong = _flags(15, 4, 2, 39)
    for paper in (-0.03, 0.03):
        d = judge_direction(a_wrong, b_wrong, paper, resamples=4000)
        assert d.difference == pytest.approx(-2 / 60, abs=1e-15)
        assert d.low < 0 < d.high
        assert d.verdict == "unresolved"
        assert d.p_value == pytest.approx(0.6875, rel=1e-12)
        assert d.images_to_resolve > 60


def test_planted_effect_is_resolved_on_the_right_side_on_many_images():
    # 20,000 images: the standard error of the difference is √((ψ − δ²)/n) = √(0.0891/20000)
    # = 0.0021, so the planted −0.03 lies 14 standard errors from 0; a draw on the wrong side
    # has probability far below 1e-40.
    a_wrong, b_wrong = _planted(20_000, np.random.default_rng(2))
    agree = judge_direction(a_wrong, b_wrong, -0.0044, resamples=2000)
    assert agree.verdict == "agrees"
    assert agree.high < 0 and abs(agree.difference - (-0.03)) < 5 * 0.0021
    assert agree.p_value < 1e-20
    assert judge_direction(a_wrong, b_wrong, +0.0044, resamples=2000).verdict == "contradicts"
    # b worse than a: swap the rows
    assert judge_direction(b_wrong, a_wrong, +0.0044, resamples=2000).verdict == "agrees"


def test_planted_null_effect_stays_unresolved_on_many_images():
    a_wrong, b_wrong = _planted(20_000, np.random.default_rng(4), only_a=0.05, only_b=0.05)
    d = judge_direction(a_wrong, b_wrong, -0.0044, resamples=2000)
    # with no effect, the 95% interval holds 0 unless the draw is a 1-in-20 event; this seed's
    # draw is checked by binomtest independently before the verdict is asked for
    assert binomtest(d.a_wrong_b_right, d.a_wrong_b_right + d.a_right_b_wrong).pvalue > 0.05
    assert d.verdict == "unresolved"


def test_judge_direction_on_a_hand_worked_case():
    # 20 images: 2 both wrong, 1 only a wrong, 3 only b wrong, 14 both right.
    # error a = 3/20 = 0.15, error b = 5/20 = 0.25, difference = +0.10, discordance 4/20 = 0.2;
    # McNemar: 2·P(X ≤ 1 | Bin(4, 1/2)) = 2·5/16 = 0.625; paper δ = 0.05 at ψ = 0.2 → 626
    # images (the hand-worked power calculation above).
    a_wrong, b_wrong = _flags(2, 1, 3, 14)
    d = judge_direction(a_wrong, b_wrong, 0.05, name="toy", resamples=4000)
    assert (d.name, d.n, d.errors_a, d.errors_b) == ("toy", 20, 3, 5)
    assert (d.error_a, d.error_b) == (0.15, 0.25)
    assert d.difference == pytest.approx(0.10, abs=1e-15)
    assert (d.a_wrong_b_right, d.a_right_b_wrong, d.discordance) == (1, 3, 0.2)
    assert d.p_value == pytest.approx(0.625, rel=1e-12)
    assert d.images_to_resolve == 626
    ci = binomtest(3, 20).proportion_ci(method="exact")
    assert d.error_a_interval == pytest.approx((ci.low, ci.high), abs=1e-9)
    assert d.verdict == "unresolved" and d.low < 0 < d.high


def test_count_verdicts_summarises_directions():
    a_wrong, b_wrong = _flags(2, 1, 3, 14)
    d = judge_direction(a_wrong, b_wrong, 0.05, resamples=200)
    assert count_verdicts([]) == "0 agree, 0 contradict, 0 unresolved"
    assert (
        count_verdicts(["agrees", "agrees", "contradicts", d, "unresolved", "agrees"])
        == "3 agree, 1 contradict, 2 unresolved"
    )
    with pytest.raises(ValueError):
        count_verdicts(["same sign"])


def test_every_default_is_the_decisions_value():
    expected = {
        "level": VERDICT_STATISTICS.level,
        "resamples": VERDICT_STATISTICS.resamples,
        "seed": VERDICT_STATISTICS.seed,
        "alpha": VERDICT_STATISTICS.alpha,
        "power": VERDICT_STATISTICS.power,
    }
    assert (VERDICT_STATISTICS.level, VERDICT_STATISTICS.resamples, VERDICT_STATISTICS.seed) == (
        0.95, 10_000, 0,
    )  # fmt: skip
    assert (VERDICT_STATISTICS.alpha, VERDICT_STATISTICS.power) == (0.05, 0.8)
    for fn in (
        error_interval,
        wilson_interval,
        paired_bootstrap,
        images_to_resolve,
        judge_direction,
    ):
        for name, param in inspect.signature(fn).parameters.items():
            if name in expected:
                assert param.default == expected[name], (fn.__name__, name)
    assert "VERDICT_STATISTICS" in V.__doc__ and "Clopper" in V.__doc__ and "Connor" in V.__doc__
