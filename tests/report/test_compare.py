"""report/compare.py by value: the headline rows' intervals on each measure's documented seed (1000 x (k + 1) for
the k-th measure, the difference on the next seed) against the percentile bootstrap written out, McNemar's p by
scipy; what a row without an interval says (a failed task's reason, missing or non-reproducing per-image outcomes);
the across-seeds rows against the paired t written out (a seed without a value left out, the baseline's own group
never tested against itself, rows in the headline's measure order, no resamples, an unseen usual effect
"underpowered"); a bootstrap p near the Holm threshold redrawn on the difference's own seeds; best marks of a baseline
that every other model is significantly worse than, none for intervals that only touch."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest, t as student_t

from helpers import percentile, resample_index
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


def test_a_bootstrap_p_near_the_holm_threshold_is_redrawn_on_the_differences_own_seed():
    """Models scored on different data (other fingerprints): an unpaired bootstrap, new on seed 1001 and the
    baseline on 1002 (the difference's seed and the next). At 2,000 resamples the p lies within three Monte Carlo
    standard errors (2 sqrt(q (1 - q) / B), q = p / 2) of 0.05, the one threshold of a family of one, so it is
    redrawn with 4x the resamples on the same seeds; at 8,000 it is clear of it. p: twice the smaller tail, each
    counted as (count + 1) / (B + 1), ties at zero in both."""
    n = 200
    a, b = np.arange(n) < 100, np.arange(n) < 121  # 50% and 60.5%
    base, new = model("base", a), model("new", b)
    new.meta["dataset"] = {"fingerprint": "beef", "split": "test"}

    def by_hand(resamples):
        d = 100 * (b[resample_index(n, 1001, resamples)].sum(1) - a[resample_index(n, 1002, resamples)].sum(1)) / n
        tail = min(int((d <= 0).sum()), int((d >= 0).sum()))
        return d, 2 * (tail + 1) / (resamples + 1)

    def near(p, resamples):
        q = p / 2
        return abs(p - 0.05) <= 3 * 2 * np.sqrt(q * (1 - q) / resamples)

    _, p2000 = by_hand(2000)
    d, p8000 = by_hand(8000)
    assert near(p2000, 2000) and not near(p8000, 8000)  # the data make the redraw happen, once
    row = headline([base, new], "base").set_index("model").loc["new"]
    assert row.resamples == 8000 and row.p_value == pytest.approx(p8000, rel=1e-12)
    assert (row.diff_low, row.diff_high) == (pytest.approx(percentile(d)[0], abs=1e-9),
                                             pytest.approx(percentile(d)[1], abs=1e-9))
    assert row.test == ("unpaired bootstrap (200 vs 200 items); not paired: scored on different data (dataset "
                        "fingerprints or sets differ)")
    assert row["diff"] == pytest.approx(10.5)


def test_across_seeds_rows_keep_the_headline_order_and_an_unseen_usual_effect_is_underpowered():
    """Rows per group (in the order the models appear) and per measure in the headline's order (clean top-1, then
    -A top-1: not alphabetical); a t-test draws no resamples (0). new - base paired by seed: clean d = (1, 3), -A
    d = (5, 4), neither significant; two tests, so the MDE is (t_{1 - 0.05 / 4, 1} + t_{0.8, 1}) x sd(d) / sqrt(2),
    wider than top-1's usual effect of 2 points: "underpowered (MDE x)", one decimal as top-1 is printed."""
    values = {"clean_top1": {"base-seed0": 70.0, "base-seed1": 71.0, "new-seed0": 71.0, "new-seed1": 74.0},
              "a_top1": {"base-seed0": 40.0, "base-seed1": 42.0, "new-seed0": 45.0, "new-seed1": 46.0}}
    label = {"clean_top1": "clean top-1 (%)", "a_top1": "-A top-1 (%)"}
    head = pd.DataFrame([{"model": m, "measure": k, "label": label[k], "value": v, "higher_is_better": True,
                          "usual_effect": 2.0} for k, vals in values.items() for m, v in vals.items()])
    seeds = across_seeds(head, "base-seed0")
    assert list(zip(seeds.group, seeds.measure)) == [("base", "clean_top1"), ("base", "a_top1"),
                                                     ("new", "clean_top1"), ("new", "a_top1")]
    assert list(seeds.label) == ["clean top-1 (%)", "-A top-1 (%)"] * 2
    assert (seeds.resamples == 0).all() and (seeds.usual_effect == 2.0).all()
    new = seeds[seeds.group == "new"].set_index("measure")
    for k, d in (("clean_top1", np.array([1.0, 3.0])), ("a_top1", np.array([5.0, 4.0]))):
        se = d.std(ddof=1) / np.sqrt(2)
        mde = (student_t.ppf(1 - 0.05 / 4, 1) + student_t.ppf(0.8, 1)) * se
        assert new.loc[k, "mde"] == pytest.approx(mde) and mde > 2.0
        assert new.loc[k, "verdict"] == f"underpowered (MDE {mde:.1f})", k


def test_a_best_value_whose_interval_only_touches_the_runner_ups_earns_no_mark():
    """"does not overlap": the best's lower bound equal to the runner-up's upper bound shares a point, no mark;
    just above it, the mark (the best, not the baseline, significantly better)."""
    touching = marks_head([("new", 80.0, 72.0, 88.0, "better"), ("base", 70.0, 62.0, 72.0, "")])
    assert best_marks(touching, "base") == set()
    clear = marks_head([("new", 80.0, 72.5, 88.0, "better"), ("base", 70.0, 62.0, 72.0, "")])
    assert best_marks(clear, "base") == {("new", "clean_top1")}
