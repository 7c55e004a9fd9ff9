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
