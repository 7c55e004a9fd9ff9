"""report/claims.py by value: a study table's cells (mean and 95% t-interval over two seeds, the one seed's own
interval, a dash where no seed has a value) against the t-interval written out, and a one-seed claim whose bootstrap
p lies within Monte Carlo error of the 5% threshold, redrawn with 4x the resamples on the claim's own seed: its p and
interval against the percentile bootstrap written out (unpaired: the results record no dataset fingerprint). The
verdict rules at their edges (an interval touching zero, a non-finite bound, an MDE equal to the usual effect); each
claim's direction and usual effect from its own measure, the paired t-interval and Welch's (fewer seeds on one side)
written out; one seed without a side or without outcomes that give back the saved value; a claim with no p outside
the Holm family; claims.md's wording for two seeds and one."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import t as student_t

from nsbench import schema
from nsbench.report import stats
from nsbench.report.claims import (CLAIM_COLUMNS, HOLDS, NO_RESULT, REVERSED, UNDERPOWERED, UNRESOLVED, adjust_claims,
                                   claim_result, claim_verdict, claims_markdown, convergence_status, section,
                                   study_tables)
from nsbench.report.compare import Report
from nsbench.report.load import EvalResult


def clean_eval(label: str, correct: np.ndarray) -> EvalResult:
    """A model's clean top-1 row and its per-image outcomes (images 0..n-1), with no dataset fingerprint."""
    correct = np.asarray(correct, bool)
    rows = schema.frame([schema.row(model=label, suite="t", task=schema.CLEAN, condition=schema.CLEAN_CONDITION,
                                    metric=schema.TOP1_ACC, value=100 * correct.mean(), n=len(correct))])
    per = pd.DataFrame({"task": schema.CLEAN, "condition": schema.CLEAN_CONDITION, "severity": np.nan,
                        "eps_255": 0.0, "image": np.arange(len(correct)), "correct": correct})
    return EvalResult(label, Path(label), rows, {"model": {"label": label}}, per)


def head_of(values: dict[str, tuple[float, float, float]]) -> pd.DataFrame:
    """The headline frame by hand: model -> (value, ci_low, ci_high) of clean top-1."""
    return pd.DataFrame([{"model": k, "measure": "clean_top1", "label": "clean top-1 (%)", "value": v, "ci_low": lo,
                          "ci_high": hi, "higher_is_better": True, "usual_effect": 2.0}
                         for k, (v, lo, hi) in values.items()])


def study(seeds: list[int], rows: dict[str, dict[int, str]], claims: list[tuple[str, str]]) -> dict:
    return {"name": "s", "seeds": seeds, "tables": [{
        "id": "t0", "title": "T", "source": "",
        "rows": [{"ref": ref, "labels": labels, "about": ref} for ref, labels in rows.items()],
        "claims": [{"claim": f"{a} beats {b}", "metric": "clean_top1", "source": "",
                    "better": {"ref": a, "labels": rows[a]}, "than": {"ref": b, "labels": rows[b]}}
                   for a, b in claims]}]}


def test_table_cells_over_two_seeds_one_seed_and_none():
    """Two seeds (50, 60): mean 55 and the t-interval's half width t_{0.975, 1} x s / sqrt(2), s = sqrt(50) the
    sample standard deviation; one seed (its other seed has no value): its value and its own interval; no seed: a
    dash, "0 seed(s)"."""
    evals = [clean_eval(lab, np.arange(10) < 5) for lab in ("a0", "a1", "b0", "c0")]
    head = head_of({"a0": (50.0, 45.0, 55.0), "a1": (60.0, 55.0, 65.0), "b0": (70.25, 61.5, 78.75),
                    "b1": (np.nan, np.nan, np.nan), "c0": (np.nan, np.nan, np.nan)})
    rows = {"two": {0: "a0", 1: "a1"}, "one": {0: "b0", 1: "b1"}, "none": {0: "c0", 1: "c1"}}
    tables, _ = study_tables(study([0, 1], rows, [("two", "one")]), evals, head)
    (table,) = tables
    cells = {r["ref"]: r["cells"][0] for r in table["rows"]}
    half = student_t.ppf(0.975, 1) * np.std([50.0, 60.0], ddof=1) / np.sqrt(2)
    assert half == pytest.approx(63.531, abs=1e-3)  # 12.7062 x 7.0711 / 1.4142
    assert cells["two"]["text"] == f"55.00 ± {half:.2f}" == "55.00 ± 63.53"
    assert cells["two"]["title"] == f"2 seed(s); 95% interval [{55 - half:.2f}, {55 + half:.2f}]"
    assert cells["one"]["text"] == "70.25 [61.50, 78.75]"
    assert cells["one"]["title"] == "1 seed(s); 95% interval [61.50, 78.75]"
    assert cells["none"]["text"] == "–" and cells["none"]["title"] == "0 seed(s)"
    assert {r["ref"]: r["seeds"] for r in table["rows"]} == {"two": 2, "one": 1, "none": 0}


def resampled_means(x: np.ndarray, seed: int, b: int) -> np.ndarray:
    """The percentile bootstrap written out: chunks of 250 resamples, chunk k drawn from default_rng(seed + 7919 k)
    as rng.integers(0, n, (chunk, n)) (the seeds stats.draws documents), the mean of x over each resample."""
    out = []
    for k in range((b + 249) // 250):
        rng = np.random.default_rng(seed + 7919 * k)
        out.append(x[rng.integers(0, len(x), (min(250, b - 250 * k), len(x)))].mean(1))
    return np.concatenate(out)


def unpaired(xa: np.ndarray, xb: np.ndarray, seed: int, b: int) -> tuple[float, float, float]:
    """(p, low, high) of a - b from two independent bootstraps (a on `seed`, b on seed + 1): the two-sided p is
    twice the smaller tail, each tail (count + 1) / (b + 1) with ties at zero in both (Davison & Hinkley eq. 4.11)."""
    d = np.round(100 * (resampled_means(xa, seed, b) - resampled_means(xb, seed + 1, b)), 9)
    tail = min(int((d <= 0).sum()), int((d >= 0).sum()))
    lo, hi = np.quantile(d, [0.025, 0.975])
    return min(1.0, 2 * (tail + 1) / (b + 1)), float(lo), float(hi)


def near_threshold(p: float, b: int) -> bool:
    """Within 3 Monte Carlo standard errors of 0.05 (a family of one): 2 sqrt(q (1 - q) / b), q = p / 2, at least
    2 / (b + 1)."""
    q = p / 2
    return abs(p - 0.05) <= 3 * max(2 * np.sqrt(q * (1 - q) / b), 2 / (b + 1))


def test_one_seed_claim_near_the_threshold_is_redrawn_on_its_own_seed():
    """30 of 40 against 21 of 40 right, one seed, no fingerprint: an unpaired bootstrap on seed 4242 (the other
    model on 4243). Its p from 2,000 resamples lies within Monte Carlo error of 0.05, so the claim is redrawn with
    8,000 on the same seeds, where it is resolved: the claim's p, adjusted p (one claim: itself) and interval are
    those of the 8,000-resample bootstrap written out."""
    xa, xb = (np.arange(40) < 30).astype(float), (np.arange(40) < 21).astype(float)
    evals = [clean_eval("A", xa), clean_eval("B", xb)]
    head = head_of({"A": (75.0, np.nan, np.nan), "B": (52.5, np.nan, np.nan)})
    p0, _, _ = unpaired(xa, xb, 4242, 2000)
    assert near_threshold(p0, 2000)
    p, lo, hi = unpaired(xa, xb, 4242, 8000)
    assert not near_threshold(p, 8000) and p < 0.05 and lo > 0
    _, claims = study_tables(study([0], {"A": {0: "A"}, "B": {0: "B"}}, [("A", "B")]), evals, head)
    c = claims.iloc[0]
    assert c.p_value == pytest.approx(p, abs=1e-12) and c.p_adjusted == pytest.approx(p, abs=1e-12)
    assert (c.diff_low, c.diff_high) == (pytest.approx(lo, abs=1e-9), pytest.approx(hi, abs=1e-9))
    assert c["diff"] == pytest.approx(75.0 - 52.5) and c.verdict == "holds"
    assert c.test.startswith("unpaired bootstrap (40 vs 40 items)") and "Monte Carlo" not in c.test


# ----------------------------------------------------------------------------- verdicts at their edges, by the rules

def test_a_verdict_needs_an_interval_strictly_clear_of_zero_and_both_bounds():
    """The documented rule (module docstring, docs/studies.md): holds when the 95% interval excludes zero in the
    paper's direction and the Holm-adjusted p is below 5% (p = ALPHA is not). An interval that touches zero does
    not exclude it, either way round; an interval with a
    non-finite bound is no result at all (never a verdict from its one finite bound)."""
    assert claim_verdict(0.0, 1.0, True) == UNRESOLVED  # touches 0 from above
    assert claim_verdict(-1.0, 0.0, True) == UNRESOLVED  # touches 0 from below
    assert claim_verdict(0.0, 1.0, False) == UNRESOLVED and claim_verdict(-1.0, 0.0, False) == UNRESOLVED
    assert claim_verdict(0.01, 1.0, True) == HOLDS and claim_verdict(-1.0, -0.01, True) == REVERSED
    assert claim_verdict(0.5, 2.0, True, stats.ALPHA) == UNRESOLVED  # Holm p at the 5% level itself: not below it
    assert claim_verdict(0.5, 2.0, True, stats.ALPHA / 2) == HOLDS
    assert claim_verdict(np.nan, -1.0, True) == NO_RESULT  # only the upper bound, below zero
    assert claim_verdict(0.5, np.inf, True) == NO_RESULT  # only the lower bound, above zero
    assert claim_verdict(-np.inf, -0.5, False) == NO_RESULT


def test_underpowered_only_when_the_mde_is_wider_than_the_usual_effect():
    """schema.Metric.usual_effect against the claim's MDE: "underpowered" when the MDE is wider (strictly); an MDE
    equal to the usual effect could see it, so an unresolved claim stays "not resolved"."""
    assert claim_verdict(-0.5, 1.0, True, 0.3, mde=2.0, usual=2.0) == UNRESOLVED
    assert claim_verdict(-0.5, 1.0, True, 0.3, mde=2.5, usual=2.0) == f"{UNDERPOWERED} (MDE 2.50)"


# ----------------------------------------------------------------------------------------- claim_result by value

def seeds_head(rows: dict[str, tuple[bool, float, dict[str, float]]]) -> pd.DataFrame:
    """The headline frame by hand: measure -> (higher is better, usual effect, {model: value})."""
    return pd.DataFrame([{"model": k, "measure": name, "value": v, "higher_is_better": higher, "usual_effect": usual}
                         for name, (higher, usual, values) in rows.items() for k, v in values.items()])


def three_seeds(metric: str, better: str = "a", than: str = "b", seeds=(0, 1, 2)) -> dict:
    return {"metric": metric, "better": {"labels": {s: f"{better}{s}" for s in seeds}},
            "than": {"labels": {s: f"{than}{s}" for s in seeds}}}


def test_each_claim_reads_the_direction_and_usual_effect_of_its_own_measure():
    """Two measures in one headline: clean top-1 (higher is better, usual effect 2) and an error (lower is better,
    usual effect 5). Per-seed differences +1.2, +1.0, +1.0 in top-1 and -1.2, -1.0, -1.0 in the error: both
    claims hold in their own measure's direction (the t-interval mean -+ t_{0.975, 2} sd / sqrt(3) excludes 0 on
    the paper's side), each with its own usual effect; the working keys are the t-test's: se = sd / sqrt(3),
    2 degrees of freedom, no resamples (an exact p: nothing to redraw). A measure with no row at all is taken as
    higher-is-better and gives no result."""
    head = seeds_head({
        "clean_top1": (True, 2.0, {"a0": 81.2, "a1": 82.5, "a2": 80.0, "b0": 80.0, "b1": 81.5, "b2": 79.0}),
        "err": (False, 5.0, {"a0": 60.0, "a1": 61.0, "a2": 59.0, "b0": 61.2, "b1": 62.0, "b2": 60.0})})
    top1 = claim_result(three_seeds("clean_top1"), [], head, [0, 1, 2])
    err = claim_result(three_seeds("err"), [], head, [0, 1, 2])
    d = np.array([81.2 - 80.0, 82.5 - 81.5, 80.0 - 79.0])
    se = np.sqrt(((d - d.mean()) ** 2).sum() / 2) / np.sqrt(3)
    half = student_t.ppf(0.975, 2) * se
    assert d.mean() - half == pytest.approx(0.780, abs=1e-3)  # 1.0667 - 4.3027 x 0.0667 > 0
    assert (top1["diff_low"], top1["diff_high"]) == pytest.approx((d.mean() - half, d.mean() + half), rel=1e-9)
    assert (err["diff_low"], err["diff_high"]) == pytest.approx((-d.mean() - half, -d.mean() + half), rel=1e-9)
    assert top1["verdict"] == HOLDS and top1["higher"] is True and top1["usual_effect"] == 2.0
    assert err["verdict"] == HOLDS and err["higher"] is False and err["usual_effect"] == 5.0
    for r in (top1, err):
        assert r["se"] == pytest.approx(se, rel=1e-9) and r["dof"] == 2.0
        assert r["resamples"] == 0 and r["redraw"] is None and r["note"] == "" and r["seeds"] == 3
    none = claim_result(three_seeds("fgsm_top1"), [], head, [0, 1, 2])
    assert none["higher"] is True and np.isnan(none["usual_effect"]) and none["verdict"] == NO_RESULT


def test_fewer_seeds_on_one_side_is_noted_and_tested_by_welch():
    """Three seeds asked for, the `than` side has two (its third has no value): the note says so ("results for 3
    and 2 of 3 seeds"), the test is Welch's over the seeds each side has, written out: diff = mean(x) - mean(y),
    se = sqrt(s_x^2 / 3 + s_y^2 / 2), Welch-Satterthwaite degrees of freedom, interval diff -+ t_{0.975, dof} se."""
    head = seeds_head({"clean_top1": (True, 2.0, {"a0": 81.0, "a1": 83.0, "a2": 82.0, "b0": 79.0, "b1": 80.0,
                                                   "b2": np.nan})})
    r = claim_result(three_seeds("clean_top1"), [], head, [0, 1, 2])
    x, y = np.array([81.0, 83.0, 82.0]), np.array([79.0, 80.0])
    va, vb = x.var(ddof=1) / 3, y.var(ddof=1) / 2  # 1/3, 1/4
    se = np.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 1)
    half = student_t.ppf(0.975, dof) * se
    assert r["note"] == "results for 3 and 2 of 3 seeds" and r["test"] == "Welch t over seeds"
    assert r["diff"] == pytest.approx(82.0 - 79.5) and r["seeds"] == 2
    assert (r["diff_low"], r["diff_high"]) == pytest.approx((2.5 - half, 2.5 + half), rel=1e-9)
    assert r["verdict"] == (HOLDS if 2.5 - half > 0 else UNRESOLVED)


def test_one_seed_without_both_sides_or_their_outcomes_gives_no_interval():
    """One seed. The `than` model has no value: "not evaluated", no difference, no result. Both have values but
    the `than` model's per-image outcomes do not give back its saved top-1 (60% saved, 21 of 40 = 52.5% in the
    outcomes), or one of the two has no outcomes at all: the difference of the saved values (75 - 52.5 from the
    headline) and no interval, hence no verdict."""
    xa, xb = np.arange(40) < 30, np.arange(40) < 21
    rows = {"A": {0: "A"}, "B": {0: "B"}}
    claim = {"metric": "clean_top1", "better": {"labels": rows["A"]}, "than": {"labels": rows["B"]}}
    r = claim_result(claim, [clean_eval("A", xa)], head_of({"A": (75.0, np.nan, np.nan)}), [0])  # B: no row
    assert r["note"] == "not evaluated" and r["verdict"] == NO_RESULT and np.isnan(r["diff"]) and r["seeds"] == 0
    assert r["better_value"] == 75.0 and np.isnan(r["than_value"])
    assert r["usual_effect"] == 2.0 and r["higher"] is True  # from the measure's one row
    head = head_of({"A": (75.0, np.nan, np.nan), "B": (52.5, np.nan, np.nan)})
    other = clean_eval("B", xb)
    other.rows["value"] = 60.0  # the saved top-1 is not what these outcomes give
    for evals, note in (([clean_eval("A", xa), other], "per-image outcomes do not reproduce the saved values"),
                        ([clean_eval("A", xa)], "per-image outcomes missing"),
                        ([clean_eval("B", xb)], "per-image outcomes missing")):
        r = claim_result(claim, evals, head, [0])
        assert r["note"] == f"{note}: no interval" and r["diff"] == 75.0 - 52.5
        assert np.isnan(r["diff_low"]) and np.isnan(r["diff_high"]) and np.isnan(r["p_value"])
        assert r["verdict"] == NO_RESULT and r["redraw"] is None


# ----------------------------------------------------------------------------------------------- adjust_claims

def test_a_claim_without_a_p_stays_outside_the_family():
    """Holm leaves a claim with no p out of the family (stats.holm): family size 1 here. The tested claim gets the
    MDE at that size, (z_{0.975} + z_{0.80}) x se = 2.80 x 0.2, and keeps its verdict (p 0.01 < 0.05); the
    claim without a p keeps its verdict and gets no MDE, however wide its interval's standard error."""
    from scipy.stats import norm

    tested = {"diff_low": 0.1, "diff_high": 1.0, "higher": True, "p_value": 0.01, "verdict": HOLDS, "note": "",
              "se": 0.2, "mde": np.nan, "usual_effect": 2.0}
    untested = {"diff_low": -1.0, "diff_high": 1.0, "higher": True, "p_value": np.nan, "verdict": UNRESOLVED,
                "note": "", "se": 1.0, "mde": np.nan, "usual_effect": 0.5}
    adjust_claims([tested, untested])
    assert tested["p_adjusted"] == 0.01 and tested["verdict"] == HOLDS
    assert tested["mde"] == pytest.approx((norm.ppf(0.975) + norm.ppf(0.8)) * 0.2, rel=1e-9)
    assert np.isnan(untested["p_adjusted"]) and untested["verdict"] == UNRESOLVED and np.isnan(untested["mde"])
    assert "se" not in tested and "higher" not in untested


def test_a_result_without_a_direction_is_higher_is_better():
    """adjust_claims reads each result's direction from its working key `higher`; without one it takes higher is
    better (claim_result's own default): an interval below zero is then "reversed", above zero "holds"."""
    below = {"diff_low": -2.0, "diff_high": -1.0, "p_value": 0.01, "verdict": REVERSED, "note": ""}
    above = {"diff_low": 1.0, "diff_high": 2.0, "p_value": 0.02, "verdict": HOLDS, "note": ""}
    adjust_claims([below, above])  # Holm: 0.02, 0.02
    assert below["verdict"] == REVERSED and above["verdict"] == HOLDS
    assert below["p_adjusted"] == pytest.approx(0.02) and above["p_adjusted"] == pytest.approx(0.02)


# ------------------------------------------------------------------------------------------------- claims.md

def test_claims_markdown_says_how_the_interval_was_made_for_two_seeds_and_one():
    """claims.md's header names the interval: over two (or more) seeds the paired t-interval, with one seed the
    paired bootstrap over images; each row the signed difference and its interval, p and Holm p as printed
    (fmt.pvalue), the MDE or a dash."""
    frame = pd.DataFrame([{"claim": "A beats B", "better": "A", "than": "B", "metric": "clean_top1", "diff": 1.0667,
                           "diff_low": 0.78, "diff_high": 1.35, "p_value": 0.0039, "p_adjusted": 0.0078,
                           "mde": 0.5, "verdict": HOLDS, "convergence": "failed"},
                          {"claim": "C beats B", "better": "C", "than": "B", "metric": "clean_top1", "diff": np.nan,
                           "diff_low": np.nan, "diff_high": np.nan, "p_value": np.nan, "p_adjusted": np.nan,
                           "mde": np.nan, "verdict": NO_RESULT, "convergence": "failed"}], columns=CLAIM_COLUMNS)
    rule = "|---|---|---|---|---|---|---|---|---|---|"
    rows = ["| A beats B | A | B | clean_top1 | +1.07 [0.78, 1.35] | p = 0.004 | p = 0.008 | 0.50 | holds | failed |",
            "| C beats B | C | B | clean_top1 | – | – | – | – | no result | failed |"]

    def header(how: str) -> str:
        return (f"| claim | better | than | measure | difference ({how}) | p | p (Holm, 2 claims) | MDE | verdict "
                f"| converged (doubling test) |")

    assert claims_markdown(frame, 2) == "\n".join([header("paired over 2 seeds, 95% t-interval"), rule, *rows]) + "\n"
    assert claims_markdown(frame, 1) == "\n".join([header("one seed: paired bootstrap over images, 95%"), rule,
                                                   *rows]) + "\n"


def test_two_seeds_are_a_paired_t_test():
    """Two seeds are "several": per-seed differences 1 and 2, mean 1.5, sd sqrt(0.5), se 0.5, t = 3 on 1 degree of
    freedom, p = 2 P(T_1 > 3) (= 0.205), interval 1.5 -+ t_{0.975, 1} x 0.5 = 1.5 -+ 6.35: not resolved."""
    head = seeds_head({"clean_top1": (True, 2.0, {"a0": 81.0, "a1": 82.0, "b0": 80.0, "b1": 80.0})})
    r = claim_result(three_seeds("clean_top1", seeds=(0, 1)), [], head, [0, 1])
    half = student_t.ppf(0.975, 1) * 0.5
    assert r["test"] == "paired t over 2 seeds" and r["seeds"] == 2 and r["diff"] == 1.5
    assert r["p_value"] == pytest.approx(2 * student_t.sf(3.0, 1), rel=1e-9)
    assert r["p_value"] == pytest.approx(0.205, abs=1e-3)
    assert (r["diff_low"], r["diff_high"]) == pytest.approx((1.5 - half, 1.5 + half), rel=1e-9)
    assert r["verdict"] == UNRESOLVED and r["se"] == pytest.approx(0.5) and r["dof"] == 1.0


def test_an_exact_p_is_never_redrawn():
    """stats.resolved: an exact p (resamples 0, a t-test's or McNemar's) is always resolved, so adjust_claims never
    calls its redraw, even within Monte Carlo distance of 0.05."""
    calls = []
    r = {"diff_low": 0.1, "diff_high": 1.0, "higher": True, "p_value": 0.049, "verdict": HOLDS, "note": "",
         "test": "exact", "resamples": 0, "redraw": lambda n: calls.append(n)}
    adjust_claims([r])
    assert calls == [] and r["test"] == "exact" and r["p_value"] == 0.049 and r["verdict"] == HOLDS


# ------------------------------------------------------------------------------ the study's convergence, page

def test_convergence_status_and_the_note_every_claim_carries():
    """docs/studies.md: each claim carries its scale's doubling-test status; a scale that failed or was never tested
    is flagged, a failed one with how far doubling moved clean top-1 (the roles that were measured)."""
    assert convergence_status({"convergence": {"status": "passed"}}) == ("passed", "")
    conv = {"status": "failed", "teacher": {"mean_change": 0.77}, "student": {"mean_change": -0.5}}
    assert convergence_status({"convergence": conv}) == (
        "failed", "not converged at this scale (doubling the budget moved top-1: teacher +0.77, student -0.50)")
    conv = {"status": "failed (incomplete: no students)", "teacher": {"mean_change": 0.77}}  # no student entry
    assert convergence_status({"convergence": conv}) == ("failed (incomplete: no students)", "not converged at this "
                                                         "scale (doubling the budget moved top-1: teacher +0.77)")
    assert convergence_status({"convergence": {"status": "failed", "teacher": {}}}) == (
        "failed", "not converged at this scale")
    assert convergence_status({}) == ("not tested", "convergence not tested at this scale")
    assert convergence_status({"convergence": None}) == ("not tested", "convergence not tested at this scale")


def test_one_seed_study_page_lines_by_hand():
    """One seed, 30 of 40 against 10 of 40 right: the unpaired bootstrap on seed 4242 (the other model on 4243),
    p = 2 / 2,001 far from 0.05 (not redrawn); its interval, as printed on the page with two decimals, the verdict
    holds, a scale that passed (no note, "good"); each row's final-quarter gain with two decimals; a table whose
    models have no results has no columns and rows of 0 seeds; the section counts the one test."""
    xa, xb = (np.arange(40) < 30).astype(float), (np.arange(40) < 10).astype(float)
    evals = [clean_eval("A", xa), clean_eval("B", xb)]
    head = head_of({"A": (75.0, np.nan, np.nan), "B": (25.0, np.nan, np.nan)})
    p, lo, hi = unpaired(xa, xb, 4242, 2000)
    assert p == pytest.approx(2 / 2001) and not near_threshold(p, 2000) and lo > 0
    s = study([0], {"A": {0: "A"}, "B": {0: "B"}}, [("A", "B")])
    s["tables"].append({"id": "t1", "title": "U", "source": "", "claims": [],
                        "rows": [{"ref": "C", "labels": {0: "C"}, "about": "C"}]})
    s.update(convergence={"status": "passed"}, final_quarter={"A": 0.354, "B": -0.004})
    tables, claims = study_tables(s, evals, head)
    c = claims.iloc[0]
    assert (c.diff_low, c.diff_high) == (pytest.approx(lo, abs=1e-9), pytest.approx(hi, abs=1e-9))
    assert c.p_value == pytest.approx(p) and c.verdict == HOLDS and c.note == "" and c.convergence == "passed"
    (line,) = tables[0]["claims"]
    assert line["diff_text"] == "+50.00" and line["ci"] == f"[{lo:.2f}, {hi:.2f}]"
    assert line["cls"] == "good" and line["converged_cls"] == "good"
    assert [r["quarter"] for r in tables[0]["rows"]] == ["+0.35", "-0.00"]
    assert tables[1]["columns"] == [] and [(r["seeds"], r["cells"], r["quarter"]) for r in tables[1]["rows"]] == [
        (0, [], "–")]
    report = Report(evals, [], None, head, pd.DataFrame(), set(), "t", study=s)
    assert section(report)["n_tests"] == 1
    report.study = None
    assert section(report) == {"study": None, "tables": [], "n_tests": 0, "frame": None}
    s["convergence"] = {"status": "failed"}
    tables, claims = study_tables(s, evals, head)
    assert claims.iloc[0].note == "not converged at this scale" and claims.iloc[0].convergence == "failed"
    assert tables[0]["claims"][0]["converged_cls"] == "bad"
