"""The page's one Holm family: every test with a verdict on a report page (headline, across-seeds, calibration and
published-vs-measured differences) as `Tests` frames, adjusted together by `adjust`, which first redraws each
bootstrap p that a threshold of the family lies within Monte Carlo error of, then sets the adjusted p, each test's
minimum detectable effect at the family's size, and the verdicts."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from . import stats

NOT_AFTER_HOLM = "no significant difference after Holm adjustment"
NO_DIFFERENCE = "no significant difference"
UNDERPOWERED = "underpowered"
Redraw = Callable[[int], dict]  # resamples -> stats.difference's dict, for a bootstrap p refined near a threshold


def verdict(low: float, high: float, higher: bool, p_adjusted: float = np.nan, mde: float = np.nan,
            usual: float = np.nan, digits: int = 1) -> str:
    """better / worse only when the interval of the difference excludes zero and, where the test is one of a family,
    its Holm-adjusted p is below ALPHA (5%): with 20 tests at 5% one "finding" is expected by chance. A difference
    that is not significant, where the test could not have seen the measure's usual effect (its minimum detectable
    effect is wider), is "underpowered (MDE x)": not evidence of no effect."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return "no interval"
    if low > 0 or high < 0:
        if not (np.isfinite(p_adjusted) and p_adjusted >= stats.ALPHA):
            return "better" if (low > 0) == higher else "worse"
        plain = NOT_AFTER_HOLM
    else:
        plain = NO_DIFFERENCE
    if np.isfinite(mde) and np.isfinite(usual) and mde > usual:
        return f"{UNDERPOWERED} (MDE {mde:.{digits}f})"
    return plain


@dataclass
class Tests:
    """Rows of which those with a finite p_value are tests (columns diff_low, diff_high, p_value, p_adjusted, test,
    verdict, se, mde, usual_effect, resamples, higher_is_better; `dof` for t-tests), and for each row whose p is a
    bootstrap's, the function that redraws its difference with more resamples."""
    frame: pd.DataFrame
    redraw: dict[int, Redraw] = field(default_factory=dict)
    digits: Callable[[pd.Series], int] = lambda row: 1


def adjust(*parts: Tests) -> int:
    """Holm-adjust every test in `parts` as one family (the tests one report makes), in place: first every
    bootstrap p that a threshold of the family lies within Monte Carlo error of is redrawn with 4x the resamples
    (up to stats.B_MAX), then the adjusted p, each test's minimum detectable effect at the family's size, and the
    verdicts again. Returns the family's size."""
    parts = [t for t in parts if len(t.frame) and "p_value" in t.frame]
    for t in parts:  # frames written before these columns (or built by hand) test as bare p values
        for col, empty in (("se", np.nan), ("mde", np.nan), ("usual_effect", np.nan), ("resamples", 0)):
            if col not in t.frame:
                t.frame[col] = empty
    size = sum(int(np.isfinite(t.frame.p_value.to_numpy(float)).sum()) for t in parts)
    if not size:
        return 0
    for t in parts:
        _refine(t, size)
    adj, k = stats.holm(np.concatenate([t.frame.p_value.to_numpy(float) for t in parts])), 0
    for t in parts:
        f = t.frame
        f["p_adjusted"] = adj[k:k + len(f)]
        k += len(f)
        tested = np.isfinite(f.p_adjusted.to_numpy(float))
        dof = f["dof"] if "dof" in f else pd.Series(np.nan, index=f.index)
        f.loc[tested, "mde"] = [stats.mde(float(f.at[i, "se"]), size, float(dof[i]) if np.isfinite(dof[i]) else None)
                                for i in f.index[tested]]
        f.loc[tested, "verdict"] = [
            verdict(r.diff_low, r.diff_high, bool(r.higher_is_better), r.p_adjusted, r.mde, r.usual_effect,
                    t.digits(r)) for r in f[tested].itertuples()]
    return size


def _refine(t: Tests, size: int) -> None:
    """Redraw each bootstrap p of `t` that is not resolved in a family of `size` (stats.resolved) with 4x the
    resamples until it is, or until stats.B_MAX; one still unresolved there says so in its test."""
    f = t.frame
    for i, redraw in t.redraw.items():
        d, note = stats.refine(float(f.at[i, "p_value"]), int(f.at[i, "resamples"]), size, redraw)
        if d is not None:
            for col, key in (("diff_low", "diff_low"), ("diff_high", "diff_high"), ("p_value", "p"), ("se", "se"),
                             ("resamples", "resamples")):
                f.at[i, col] = d[key]
        if note:
            f.at[i, "test"] = f"{f.at[i, 'test']}; {note}"
