"""report/family.py by value: a Holm-adjusted p at the 5% level itself is not significant (p < ALPHA, Holm 1979),
and frames built by hand (no se, mde, usual_effect or resamples columns) test as bare p values: no bootstrap p of
theirs is redrawn and their resamples read 0."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nsbench.report import stats
from nsbench.report.family import NOT_AFTER_HOLM, Tests, adjust


def bare(p: list[float]) -> pd.DataFrame:
    """Tests as written before the se / mde / usual_effect / resamples columns: intervals above zero, higher better."""
    return pd.DataFrame({"diff_low": [1.0] * len(p), "diff_high": [2.0] * len(p), "p_value": p,
                         "higher_is_better": [True] * len(p), "test": ["by hand"] * len(p), "verdict": [""] * len(p)})


def test_an_adjusted_p_at_the_level_itself_is_not_significant():
    """One test: Holm leaves its p as it is (p x 1). Significant means p < 0.05; p = 0.05 is not."""
    alpha = stats.ALPHA
    assert alpha == pytest.approx(0.05)
    t = Tests(bare([alpha]))
    assert adjust(t) == 1
    assert t.frame.p_adjusted.tolist() == [alpha]
    assert t.frame.verdict.tolist() == [NOT_AFTER_HOLM]  # the interval excludes zero, the adjusted p does not pass
    below = Tests(bare([np.nextafter(alpha, 0.0)]))
    adjust(below)
    assert below.frame.verdict.tolist() == ["better"]


def test_a_two_test_family_at_the_boundary():
    """Holm by hand. p = (ALPHA / 2, 0.01), sorted ascending: 0.01 x 2 = 0.02, then max(0.02, ALPHA / 2 x 1) =
    ALPHA / 2: both below ALPHA, both better. p = (ALPHA, ALPHA / 2): ALPHA / 2 x 2 = ALPHA, then max(ALPHA, ALPHA x 1)
    = ALPHA: both at the level, neither passes."""
    t = Tests(bare([stats.ALPHA / 2, 0.01]))
    adjust(t)
    assert t.frame.p_adjusted.tolist() == pytest.approx([stats.ALPHA / 2, 0.02])
    assert t.frame.verdict.tolist() == ["better", "better"]
    t = Tests(bare([stats.ALPHA, stats.ALPHA / 2]))  # ALPHA / 2 x 2 = ALPHA, then max(ALPHA, ALPHA x 1) = ALPHA
    adjust(t)
    assert t.frame.p_adjusted.tolist() == pytest.approx([stats.ALPHA, stats.ALPHA])
    assert t.frame.verdict.tolist() == [NOT_AFTER_HOLM, NOT_AFTER_HOLM]


def test_frames_without_resample_counts_are_never_redrawn():
    """A frame with no `resamples` column is one of bare p values: its p (here 0.04, within Monte Carlo error of the
    5% threshold for any bootstrap) is kept, the redraw never called, and its resamples column reads 0, its se and
    mde none."""
    calls = []

    def redraw(n):
        calls.append(n)
        return {"diff_low": -1.0, "diff_high": 1.0, "p": 0.9, "se": 0.5, "resamples": n}

    t = Tests(bare([0.04]), redraw={0: redraw})
    assert adjust(t) == 1
    assert calls == []
    f = t.frame
    assert f.p_value.tolist() == [0.04] and f.p_adjusted.tolist() == [0.04] and f.verdict.tolist() == ["better"]
    assert f.resamples.tolist() == [0] and f.test.tolist() == ["by hand"]
    assert np.isnan(f.se.iloc[0]) and np.isnan(f.mde.iloc[0]) and np.isnan(f.usual_effect.iloc[0])
