"""report/compare.py by value: the headline rows' intervals on each measure's documented seed (1000 x (k + 1) for
the k-th measure, the difference on the next seed) against the percentile bootstrap written out, McNemar's p by
scipy; what a row without an interval says (a failed task's reason, missing or non-reproducing per-image outcomes);
the across-seeds rows against the paired t written out (a seed without a value left out, the baseline's own group
never tested against itself); best marks of a baseline that every other model is significantly worse than."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest, t as student_t

from nsbench import schema
from nsbench.report.compare import across_seeds, best_marks, headline
from nsbench.report.load import EvalResult

FINGERPRINT = {"dataset": {"fingerprint": "f00d", "split": "test"}}


def model(label: str, clean: np.ndarray | None = None, fgsm8: np.ndarray | None = None, *, value: float | None = None,
          per_image: bool = True, failed: str | None = None) -> EvalResult:
    """A model's clean top-1 (and FGSM 8/255 top-1) rows with their per-image outcomes on images 0..n-1 of one
    dataset; `value` overrides the saved clean value; `failed`: the clean task failed with that reason instead."""
    rows, per = [], []
    if failed is not None:
        rows.append(schema.row(model=label, suite="t", task=schema.CLEAN, condition=schema.ALL,
                               metric=schema.FAILED, value=None, n=0, note=failed))
    for task, cond, eps, x in ((schema.CLEAN, schema.CLEAN_CONDITION, None, clean),
                               (schema.FGSM, schema.FGSM, 8.0, fgsm8)):
        if x is None:
            continue
        x = np.asarray(x, bool)
        v = value if value is not None and task == schema.CLEAN else 100 * x.mean()
        rows.append(schema.row(model=label, suite="t", task=task, condition=cond, metric=schema.TOP1_ACC, value=v,
                               n=len(x), eps_255=eps))
        per.append(pd.DataFrame({"task": task, "condition": cond, "severity": np.nan, "eps_255": eps or 0.0,
                                 "image": np.arange(len(x)), "correct": x}))
    per_frame = pd.concat(per, ignore_index=True) if per and per_image else None
    frame = schema.frame(rows)
    frame["note"] = frame.note.fillna("").astype(str)  # as report/load.py reads results.csv
    return EvalResult(label, Path(label), frame, {**FINGERPRINT, "model": {"label": label}}, per_frame)


def resample_index(n: int, seed: int, b: int = 2000) -> np.ndarray:
    """The resampled item indices [b, n]: chunks of 250, chunk k from default_rng(seed + 7919 k) as
    rng.integers(0, n, (chunk, n)) (the seeds stats.draws documents)."""
    return np.concatenate([np.random.default_rng(seed + 7919 * k).integers(0, n, (min(250, b - 250 * k), n))
                           for k in range((b + 249) // 250)])


def percentile(values: np.ndarray) -> tuple[float, float]:
    lo, hi = np.quantile(values, [0.025, 0.975])
    return float(lo), float(hi)


def outcomes(n: int, right: int, seed: int) -> np.ndarray:
    x = np.zeros(n, bool)
    x[np.random.default_rng(seed).choice(n, right, replace=False)] = True
    return x


def test_headline_intervals_use_each_measures_seed_and_mcnemar():
    """Clean top-1 is the first measure (seed 1000, the difference 1001), FGSM 8/255 the second (2000, 2001);
    the difference of the paired accuracies takes the p of the exact McNemar test (no resamples to refine)."""
    n = 300
    a_clean, b_clean = outcomes(n, 201, 1), outcomes(n, 180, 2)
    a_adv, b_adv = outcomes(n, 97, 3), outcomes(n, 61, 4)
    evals = [model("base", a_clean, a_adv), model("new", b_clean, b_adv)]
    head = headline(evals, "base").set_index(["model", "measure"])
    for k, (name, a, b) in enumerate((("clean_top1", a_clean, b_clean), ("fgsm@8", a_adv, b_adv))):
        seed = 1000 * (k + 1)
        for label, x in (("base", a), ("new", b)):
            r = head.loc[(label, name)]
            assert r.value == pytest.approx(100 * x.mean())
            lo, hi = percentile(100 * x[resample_index(n, seed)].astype(float).mean(1))
            assert (r.ci_low, r.ci_high) == (pytest.approx(lo, abs=1e-9), pytest.approx(hi, abs=1e-9)), (label, name)
            assert r.note == ""
        base, new = head.loc[("base", name)], head.loc[("new", name)]
        assert np.isnan(base.p_value) and base.verdict == "" and base.resamples == 0 and base.test == ""
        idx = resample_index(n, seed + 1)
        lo, hi = percentile(100 * (b[idx].astype(float).mean(1) - a[idx].astype(float).mean(1)))
        assert (new.diff_low, new.diff_high) == (pytest.approx(lo, abs=1e-9), pytest.approx(hi, abs=1e-9)), name
        n01, n10 = int((b & ~a).sum()), int((~b & a).sum())
        assert new.p_value == pytest.approx(binomtest(n01, n01 + n10, 0.5).pvalue, rel=1e-12), name
        assert new.resamples == 0 and new.test.startswith(f"exact McNemar ({n01} vs {n10} discordant of {n})")
        assert new["diff"] == pytest.approx(100 * (b.mean() - a.mean()))


def test_rows_without_an_interval_say_why():
    """A task that failed gives its reason; a value without per-image outcomes, or with outcomes that do not give it
    back (60% saved, 50% in the outcomes), says so; none gets an interval or a test."""
    x = np.arange(20) % 2 == 0  # 50%
    evals = [model("base", x), model("broken", failed="CUDA out of memory"), model("bare", x, per_image=False),
             model("other", x, value=60.0)]
    head = headline(evals, "base").set_index("model")
    assert head.loc["broken", "note"] == "CUDA out of memory" and np.isnan(head.loc["broken", "value"])
    assert head.loc["bare", "note"] == "per-image outcomes missing: no interval"
    assert head.loc["other", "note"] == "per-image outcomes do not reproduce the saved value: no interval"
    assert head.loc["other", "value"] == 60.0 and head.loc["other", "diff"] == pytest.approx(10.0)
    for label in ("broken", "bare", "other"):
        r = head.loc[label]
        assert np.isnan(r.ci_low) and np.isnan(r.ci_high) and np.isnan(r.p_value), label
        assert r.verdict == "no interval" and r.resamples == 0, label
    assert head.loc["base", "note"] == "" and np.isfinite(head.loc["base", "ci_low"])


def seed_head(values: dict[str, float]) -> pd.DataFrame:
    """The headline frame by hand: model -> clean top-1 value."""
    return pd.DataFrame([{"model": k, "measure": "clean_top1", "label": "clean top-1 (%)", "value": v,
                          "higher_is_better": True, "usual_effect": 2.0} for k, v in values.items()])


def test_across_seeds_paired_t_by_hand_and_the_baseline_group_untested():
    """Groups `base` (seeds 0, 1) and `new` (seeds 0, 1, 2; seed 2 failed: no value, left out). new against base,
    paired by seed: d = (3, 5), mean 4, half width t_{0.975, 1} x sd(d) / sqrt(2), p of t = mean / (sd / sqrt(2))
    on 1 degree of freedom. The baseline's own group is not compared with itself."""
    head = seed_head({"base-seed0": 70.0, "base-seed1": 71.0, "new-seed0": 73.0, "new-seed1": 76.0,
                      "new-seed2": np.nan})
    seeds = across_seeds(head, "base-seed0").set_index("group")
    new, base = seeds.loc["new"], seeds.loc["base"]
    assert new.seeds == 2 and new.value == pytest.approx(74.5)
    half = student_t.ppf(0.975, 1) * np.std([73.0, 76.0], ddof=1) / np.sqrt(2)
    assert (new.ci_low, new.ci_high) == (pytest.approx(74.5 - half), pytest.approx(74.5 + half))
    d = np.array([3.0, 5.0])
    dh = student_t.ppf(0.975, 1) * d.std(ddof=1) / np.sqrt(2)
    assert new["diff"] == pytest.approx(4.0)
    assert (new.diff_low, new.diff_high) == (pytest.approx(4.0 - dh), pytest.approx(4.0 + dh))
    tstat = d.mean() / (d.std(ddof=1) / np.sqrt(2))
    assert new.p_value == pytest.approx(2 * student_t.sf(tstat, 1)) and new.test == "paired t over 2 seeds"
    assert base.seeds == 2 and base.value == pytest.approx(70.5)
    assert np.isnan(base["diff"]) and np.isnan(base.p_value) and base.verdict == "" and base.test == ""


def marks_head(rows: list[tuple[str, float, float, float, str]]) -> pd.DataFrame:
    return pd.DataFrame([{"model": m, "measure": "clean_top1", "value": v, "ci_low": lo, "ci_high": hi,
                          "higher_is_better": True, "verdict": verdict} for m, v, lo, hi, verdict in rows])


def test_the_baseline_is_marked_best_only_when_every_other_model_is_worse():
    """The baseline's value is the best and its interval clear of the runner-up's: marked when every other
    model's verdict is "worse", not when one is only "no significant difference"."""
    worse = marks_head([("base", 80.0, 78.0, 82.0, ""), ("a", 70.0, 68.0, 72.0, "worse"),
                        ("b", 60.0, 58.0, 62.0, "worse")])
    assert best_marks(worse, "base") == {("base", "clean_top1")}
    mixed = marks_head([("base", 80.0, 78.0, 82.0, ""), ("a", 70.0, 68.0, 72.0, "worse"),
                        ("b", 60.0, 58.0, 62.0, "no significant difference")])
    assert best_marks(mixed, "base") == set()
