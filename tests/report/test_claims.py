"""report/claims.py by value: a study table's cells (mean and 95% t-interval over two seeds, the one seed's own
interval, a dash where no seed has a value) against the t-interval written out, and a one-seed claim whose bootstrap
p lies within Monte Carlo error of the 5% threshold, redrawn with 4x the resamples on the claim's own seed: its p and
interval against the percentile bootstrap written out (unpaired: the results record no dataset fingerprint)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import t as student_t

from nsbench import schema
from nsbench.report.claims import study_tables
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
