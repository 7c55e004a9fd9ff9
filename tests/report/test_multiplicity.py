"""Verdicts that account for chance: Holm's adjustment across the tests of one report and of one study, a
zero-variance paired difference flagged (never "holds"), and the single-run warning on a report's verdict."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from helpers import FIX
from nsbench.cli import main
from nsbench.report import stats


def test_holm_on_a_hand_computed_example():
    # sorted: 0.005, 0.01, 0.03, 0.04 with m = 4 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04; the running maximum
    # keeps the order: 0.02, 0.03, 0.06, 0.06. The NaN (no test) is not part of the family.
    got = stats.holm([0.01, np.nan, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(got, [0.03, np.nan, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(stats.holm([0.5, 0.6]), [1.0, 1.0])  # 0.5 x 2 = 1.0 caps; 0.6 x 1 < 1.0 -> max 1.0
    np.testing.assert_allclose(stats.holm([0.2]), [0.2])  # a family of one is not adjusted
    assert np.isnan(stats.holm([np.nan])).all()


def test_a_report_family_demotes_what_does_not_survive_adjustment():
    from nsbench.report.family import NOT_AFTER_HOLM, Tests, adjust

    # four "better" intervals (all exclude zero); raw p 0.001, 0.03, 0.04, 0.045 -> Holm 0.004, 0.09, 0.09, 0.09
    f = pd.DataFrame({"diff_low": [1.0, 0.2, 0.1, 0.1], "diff_high": [3.0, 2.0, 2.0, 2.0], "higher_is_better": True,
                      "p_value": [0.001, 0.03, 0.04, 0.045], "verdict": "better"})
    assert adjust(Tests(f)) == 4  # the family's size
    np.testing.assert_allclose(f.p_adjusted, [0.004, 0.09, 0.09, 0.09])
    assert list(f.verdict) == ["better"] + [NOT_AFTER_HOLM] * 3
    # split over two frames (headline and across-seeds), the family is their union
    a, b = f.iloc[:2].copy(), f.iloc[2:].copy()
    adjust(Tests(a), Tests(b))
    np.testing.assert_allclose(np.r_[a.p_adjusted, b.p_adjusted], [0.004, 0.09, 0.09, 0.09])


def test_a_constant_per_seed_difference_is_flagged_not_holds():
    from nsbench.report.claims import ZERO_VARIANCE, claim_result

    d = stats.seeds_difference({0: 81.0, 1: 82.5, 2: 80.0}, {0: 80.0, 1: 81.5, 2: 79.0})  # +1.0 in every seed
    assert d["diff"] == 1.0 and np.isnan(d["diff_low"]) and np.isnan(d["p"]) and "zero variance" in d["flag"]
    head = pd.DataFrame({"model": ["a0", "a1", "a2", "b0", "b1", "b2"], "measure": "clean_top1",
                         "value": [81.0, 82.5, 80.0, 80.0, 81.5, 79.0], "higher_is_better": True})
    claim = {"metric": "clean_top1", "better": {"labels": {0: "a0", 1: "a1", 2: "a2"}},
             "than": {"labels": {0: "b0", 1: "b1", 2: "b2"}}}
    res = claim_result(claim, [], head, [0, 1, 2])
    assert res["verdict"] == ZERO_VARIANCE and "zero variance" in res["note"]
    # the same with a little spread is an ordinary paired t-test: per-seed differences 1.2, 1.0, 1.0
    head.loc[0, "value"] = 81.2
    res = claim_result(claim, [], head, [0, 1, 2])
    p, low, high = paired_t_by_hand([81.2 - 80.0, 82.5 - 81.5, 80.0 - 79.0])
    assert p < 0.01 and low > 0  # t = 16 on 2 degrees of freedom
    assert res["p_value"] == pytest.approx(p, rel=1e-9)
    assert (res["diff_low"], res["diff_high"]) == pytest.approx((low, high), rel=1e-9)
    assert res["verdict"] == "holds"


def paired_t_by_hand(d: list[float]) -> tuple[float, float, float]:
    """scipy.stats.ttest_1samp(d, 0) written out: t = mean / (sd / sqrt(n)), two-sided p = 2 P(T_{n-1} > |t|);
    and the 95% interval mean -+ t_{0.975, n-1} sd / sqrt(n)."""
    from scipy.stats import t as student

    n = len(d)
    mean = sum(d) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1))
    se = sd / math.sqrt(n)
    half = student.ppf(0.975, n - 1) * se
    return 2 * student.sf(abs(mean / se), n - 1), mean - half, mean + half


def holm_by_hand(p: list[float]) -> list[float]:
    """Holm (1979): sort ascending, p_(i) x (m - i + 1) for i = 1..m, a running maximum, capped at 1."""
    m = len(p)
    out, running = [0.0] * m, 0.0
    for i, j in enumerate(sorted(range(m), key=lambda j: p[j]), start=1):
        running = max(running, min(1.0, p[j] * (m - i + 1)))
        out[j] = running
    return out


def test_study_claim_verdicts_follow_the_paired_t_test_and_holm_by_hand():
    """Two claims of one study over three seeds. Per-seed differences 1.2, 1.0, 1.0 (t = 16, p = 0.0039) and
    1.0, 1.5, 0.6 (t = 3.97, p = 0.058: its 95% t-interval just reaches below zero, where a one-sided 90%
    interval or a z-interval would not). The verdict each should get is decided here from the p values and
    intervals computed by hand, then Holm over the family of two, by hand."""
    from nsbench.report.claims import HOLDS, UNRESOLVED, adjust_claims, claim_result

    better = {"a0": 81.2, "a1": 82.5, "a2": 80.0, "c0": 81.0, "c1": 83.0, "c2": 79.6}
    than = {"b0": 80.0, "b1": 81.5, "b2": 79.0}
    head = pd.DataFrame({"model": [*better, *than], "measure": "clean_top1",
                         "value": [*better.values(), *than.values()], "higher_is_better": True})
    claims = [{"metric": "clean_top1", "better": {"labels": {s: f"{x}{s}" for s in range(3)}},
               "than": {"labels": {s: f"b{s}" for s in range(3)}}} for x in ("a", "c")]
    results = [claim_result(c, [], head, [0, 1, 2]) for c in claims]
    by_hand = [paired_t_by_hand([better[f"{x}{s}"] - than[f"b{s}"] for s in range(3)]) for x in ("a", "c")]
    assert by_hand[0][0] == pytest.approx(0.0039, abs=1e-4) and by_hand[1][0] == pytest.approx(0.058, abs=1e-3)
    raw = [p for p, _, _ in by_hand]
    assert [r["p_value"] for r in results] == pytest.approx(raw, rel=1e-9)
    want = [HOLDS if low > 0 else UNRESOLVED for _, low, _ in by_hand]
    assert want == [HOLDS, UNRESOLVED]
    assert [r["verdict"] for r in results] == want
    adjust_claims(results)
    adjusted = holm_by_hand(raw)  # 0.0039 x 2 = 0.0078; max(0.0078, 0.058 x 1) = 0.058
    assert [r["p_adjusted"] for r in results] == pytest.approx(adjusted, rel=1e-9)
    assert [r["verdict"] for r in results] == [HOLDS if q < 0.05 and ok == HOLDS else UNRESOLVED
                                               for q, ok in zip(adjusted, want)] == [HOLDS, UNRESOLVED]


def test_study_claims_are_one_family():
    from nsbench.report.claims import HOLDS, UNRESOLVED, adjust_claims

    def claim(p):
        return {"diff_low": 0.1, "diff_high": 1.0, "higher": True, "p_value": p, "verdict": HOLDS, "note": ""}

    results = [claim(0.01), claim(0.02), claim(0.04)]  # Holm: 0.03, 0.04, 0.04 -> all hold
    adjust_claims(results)
    assert [r["verdict"] for r in results] == [HOLDS] * 3
    results = [claim(0.01), claim(0.03), claim(0.04), claim(0.9)]  # Holm: 0.04, 0.09, 0.09, 0.9
    adjust_claims(results)
    assert [r["verdict"] for r in results] == [HOLDS, UNRESOLVED, UNRESOLVED, UNRESOLVED]
    assert "not after Holm adjustment" in results[1]["note"] and results[0]["note"] == ""


def test_the_report_shows_adjusted_p_and_says_it_covers_one_training_run(tmp_path):
    out = tmp_path / "report"
    assert main(["report", str(FIX / "results"), "--baseline", "iter0", "--out", str(out)]) == 0
    head = pd.read_csv(out / "headline.csv")
    tested = head[np.isfinite(head.p_value)]
    assert len(tested) >= 5
    # Holm by hand over the report's family (its tested rows), from the raw p values the CSV holds (%.6g)
    np.testing.assert_allclose(tested.p_adjusted, holm_by_hand(tested.p_value.tolist()), rtol=1e-4)
    assert (tested.p_adjusted >= tested.p_value).all()
    html = (out / "index.html").read_text()
    assert "(Holm " in html and f"across the {len(tested)} tests" in html
    assert 'id="one-seed"' in html and "one training run per model" in html and "nsbench study" in html
