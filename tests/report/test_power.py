"""Every verdict knows its power: bootstrap p values that are never 0 and are redrawn until Holm's decision on them
is resolved, the minimum detectable effect of each test, and "underpowered" where a test could not have seen the
measure's usual effect."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from nsbench.report import stats
from nsbench.report.claims import UNDERPOWERED, claim_verdict
from nsbench.report.family import NO_DIFFERENCE, Tests, adjust, verdict


def test_a_bootstrap_p_is_never_zero():
    assert stats.bootstrap_p(np.full(999, 2.0)) == pytest.approx(2 / 1000)  # no resample reaches zero
    assert stats.bootstrap_p(np.full(999, -2.0)) == pytest.approx(2 / 1000)
    d = np.r_[np.full(990, 1.0), np.full(9, -1.0)]  # 9 of 999 at or below zero
    assert stats.bootstrap_p(d) == pytest.approx(2 * 10 / 1000)
    assert stats.bootstrap_p(np.r_[np.ones(10), np.full(90, np.nan)]) != stats.bootstrap_p(np.ones(10))  # too few finite
    assert np.isnan(stats.bootstrap_p(np.r_[np.ones(10), np.full(90, np.nan)]))


def test_resolution_against_every_threshold_of_the_family():
    # 0.0125 = 0.05 / 4: at 2,000 resamples a p of 0.013 is within Monte Carlo error of Holm's threshold for rank 1
    assert not stats.resolved(0.013, 2000, 4)
    assert stats.resolved(0.013, 2000, 1)  # a family of one compares it with 0.05 only
    assert stats.resolved(0.4, 2000, 20) and stats.resolved(0.013, 0, 4)  # far from all; an exact p
    # the smallest p 2,000 resamples can give (2 / 2001) is not resolved against 0.05 / 60 = 0.00083
    assert not stats.resolved(2 / 2001, 2000, 60) and stats.resolved(2 / 128001, 128000, 60)


def _frame(p, resamples, se=0.5, usual=2.0):
    return pd.DataFrame({"diff_low": [0.1], "diff_high": [2.0], "higher_is_better": True, "p_value": [p],
                         "test": "paired bootstrap", "verdict": "", "se": [se], "mde": np.nan,
                         "usual_effect": [usual], "resamples": [resamples]})


def test_a_p_near_a_holm_threshold_is_redrawn_until_resolved():
    calls = []

    def redraw(n):  # a test whose p settles at 0.02 once drawn often enough
        calls.append(n)
        return {"diff_low": 0.1, "diff_high": 2.0, "p": 0.02 if n >= 32000 else 0.0251, "se": 0.5, "resamples": n}

    t = Tests(_frame(0.0251, 2000), {0: redraw})
    other = Tests(_frame(0.9, 0))  # an exact p: the family is two tests, thresholds 0.025 and 0.05
    assert adjust(t, other) == 2
    assert calls == [8000, 32000] and t.frame.resamples[0] == 32000 and t.frame.p_value[0] == 0.02
    assert "Monte Carlo" not in t.frame.test[0]
    # one that never leaves the threshold stops at B_MAX and says so
    stuck = Tests(_frame(0.025, 2000), {0: lambda n: {"diff_low": 0.1, "diff_high": 2.0, "p": 0.025, "se": 0.5,
                                                      "resamples": n}})
    adjust(stuck, Tests(_frame(0.9, 0)))
    assert stuck.frame.resamples[0] == stats.B_MAX
    assert "within Monte Carlo error of a Holm threshold at 128,000 resamples" in stuck.frame.test[0]


def test_the_minimum_detectable_effect_is_the_powered_difference_at_the_familys_level():
    se, m = 0.7, 10
    want = (norm.ppf(1 - 0.05 / (2 * m)) + norm.ppf(0.8)) * se
    assert stats.mde(se, m) == pytest.approx(want)
    assert stats.mde(se, 1) == pytest.approx((1.959964 + 0.841621) * se, rel=1e-5)  # the textbook 2.80 SE
    from scipy.stats import t as tdist
    assert stats.mde(se, 2, dof=2) == pytest.approx((tdist.ppf(1 - 0.05 / 4, 2) + tdist.ppf(0.8, 2)) * se)
    assert np.isnan(stats.mde(0.0, 3)) and np.isnan(stats.mde(np.nan, 3))


def test_an_underpowered_verdict_is_labelled_as_such():
    # not significant, and the test could not have seen the usual 2-point effect: underpowered, not "no difference"
    assert verdict(-5.0, 8.0, True, 0.7, mde=9.71, usual=2.0) == "underpowered (MDE 9.7)"
    assert verdict(-0.5, 0.8, True, 0.7, mde=1.2, usual=2.0) == NO_DIFFERENCE  # could have seen it: a real null
    assert verdict(0.5, 8.0, True, 0.01, mde=9.7, usual=2.0) == "better"  # significant stays significant
    assert claim_verdict(-1.0, 3.0, True, 0.4, mde=4.0, usual=2.0) == f"{UNDERPOWERED} (MDE 4.00)"
    # through adjust(): the MDE is computed at the family's size and decides the label
    f = _frame(0.4, 0, se=3.0)
    f.loc[0, ["diff_low", "diff_high"]] = [-4.0, 6.0]
    adjust(Tests(f))
    assert f.mde[0] == pytest.approx(stats.mde(3.0, 1)) and f.verdict[0] == f"underpowered (MDE {f.mde[0]:.1f})"


def test_verdict_boundaries_are_the_interval_and_the_usual_effect_exactly():
    # an interval that touches zero includes it: no verdict of direction
    assert verdict(0.0, 2.0, True, 0.01) == NO_DIFFERENCE
    assert verdict(-2.0, 0.0, True, 0.01) == NO_DIFFERENCE
    # an MDE equal to the usual effect could see it: a real "no significant difference"
    assert verdict(-1.0, 1.0, True, 0.5, mde=2.0, usual=2.0) == NO_DIFFERENCE
    assert verdict(-1.0, 1.0, True, 0.5, mde=2.0 + 1e-9, usual=2.0).startswith("underpowered")


def test_a_family_without_tests_has_size_zero():
    empty = pd.DataFrame({"diff_low": [0.1], "diff_high": [1.0], "higher_is_better": True, "p_value": [np.nan],
                          "verdict": [""]})
    assert adjust(Tests(empty)) == 0 and empty.verdict[0] == ""  # untouched
    assert adjust(Tests(pd.DataFrame({"p_value": []})), Tests(pd.DataFrame({"value": [1.0]}))) == 0
    # a frame with rows but no p_value column is not a family member (and is not changed)
    other = pd.DataFrame({"value": [1.0]})
    assert adjust(Tests(other), Tests(_frame(0.01, 0))) == 1 and list(other.columns) == ["value"]


# the formulas of interval_se, resolved and mde written out (issue 31: values, not just directions)

Z975 = 1.959963984540054  # z_{0.975}, any normal table


def test_the_standard_error_of_an_interval_is_its_width_over_2_z():
    # a 95% interval [lo, hi] of a normal difference is mean +- z_{0.975} se: se = (hi - lo) / 3.919927969...
    assert stats.interval_se(1.0, 4.0) == pytest.approx(3.0 / (2 * Z975), rel=1e-12)
    assert stats.interval_se(-2.5, -0.5) == pytest.approx(2.0 / (2 * norm.ppf(0.975)), rel=1e-12)
    assert stats.interval_se(0.7, 0.7) == 0.0
    # no interval, or an unbounded one: no standard error
    for lo, hi in ((np.nan, 1.0), (1.0, np.nan), (np.nan, np.nan), (-np.inf, 1.0), (0.0, np.inf)):
        assert np.isnan(stats.interval_se(lo, hi))


def _mc_se(p, b):
    """The Monte Carlo standard error of a bootstrap p from b resamples, written out: twice a tail frequency's,
    2 sqrt(q (1 - q) / b) with q = p / 2, at least one resample's step 2 / (b + 1)."""
    q = p / 2
    return max(2 * np.sqrt(q * (1 - q) / b), 2 / (b + 1))


def test_resolution_is_within_three_monte_carlo_standard_errors_inclusive():
    # 149 resamples and a small p: one resample's step 2 / 150 is the standard error (2 sqrt(q (1 - q) / 149) is
    # 0.0116 at p = 0.01); 3 of them, 0.04, below 0.05 the threshold of a family of one
    se = 2 / 150
    assert 2 * np.sqrt(0.005 * 0.995 / 149) < se
    p = stats.ALPHA - 3 * se
    assert stats.ALPHA - p == 3 * se  # exactly Z_MC standard errors from the threshold: not resolved (<=)
    assert not stats.resolved(p, 149, 1)
    assert not stats.resolved(p + 1e-6, 149, 1) and stats.resolved(p - 1e-6, 149, 1)
    # the same p at 4,000 resamples is far from 0.05 and from 0.025 (a family of two)
    assert stats.resolved(p, 4000, 2)


def test_resolution_boundary_on_the_tail_frequency_standard_error():
    from scipy.optimize import brentq

    # 2,000 resamples, a family of one: the p at exactly 3 standard errors above and below 0.05, where
    # 2 sqrt(q (1 - q) / B) (about 0.009) is larger than one resample's step (0.001)
    b = 2000
    above = brentq(lambda p: p - 0.05 - 3 * _mc_se(p, b), 0.05, 0.2, xtol=1e-15)
    below = brentq(lambda p: 0.05 - p - 3 * _mc_se(p, b), 0.005, 0.05, xtol=1e-15)
    assert 0.07 < above < 0.09 and 0.02 < below < 0.04
    for edge, outward in ((above, 1 + 1e-4), (below, 1 - 1e-4)):
        assert stats.resolved(edge * outward, b, 1)
        assert not stats.resolved(edge / outward, b, 1)


def test_every_holm_threshold_from_alpha_down_counts_and_a_family_of_one_too():
    # p at 0.05 itself is never resolved: in a family of one (its only threshold) or of two (thresholds 0.05, 0.025)
    assert not stats.resolved(0.05, 2000, 1) and not stats.resolved(0.05, 2000, 2)
    assert not stats.resolved(0.025, 128000, 2) and stats.resolved(0.025, 128000, 1)
    # one resample: the standard error is at least 2 / 2 = 1, so every threshold lies within 3 of it
    assert not stats.resolved(0.5, 1, 1) and not stats.resolved(1.0, 1, 1)
    # a family of none, a p that is no number, an exact p: resolved
    assert stats.resolved(0.05, 2000, 0) and stats.resolved(np.nan, 2000, 1) and stats.resolved(0.05, 0, 1)


def test_the_minimum_detectable_effect_at_family_three_and_with_few_degrees_of_freedom():
    from scipy.stats import t as tdist

    se = 1.5
    # family 3: a two-sided test at 0.05 / 3, z_{1 - 0.05 / 6} = 2.3940 (a normal table), z_{0.8} = 0.8416
    assert stats.mde(se, 3) == pytest.approx((2.393980 + 0.841621) * se, rel=1e-6)
    assert stats.mde(se, 3) == pytest.approx((norm.ppf(1 - 0.05 / 6) + norm.ppf(0.8)) * se, rel=1e-12)
    # 1 degree of freedom (two seeds): t_{1 - 0.05 / 2, 1} = 12.7062, t_{0.8, 1} = 1.3764
    assert stats.mde(se, 1, dof=1) == pytest.approx((12.706205 + 1.376382) * se, rel=1e-6)
    assert stats.mde(se, 3, dof=4) == pytest.approx((tdist.ppf(1 - 0.05 / 6, 4) + tdist.ppf(0.8, 4)) * se, rel=1e-12)
    # no degrees of freedom (0, or none known): the normal approximation
    assert stats.mde(se, 1, dof=0) == pytest.approx((Z975 + 0.841621) * se, rel=1e-6)
    assert stats.mde(se, 1, dof=np.nan) == stats.mde(se, 1)
    assert np.isnan(stats.mde(se, 0)) and np.isnan(stats.mde(-1.0, 1))
