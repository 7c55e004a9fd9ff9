"""report/stats.py by value: bootstrap intervals recomputed independently (plain resampling of the outcomes with the
documented seeds), paired against unpaired (and unpaired when the models were scored on different data), exact
McNemar p on known tables, t-intervals and Welch against closed forms and t-table quantiles."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from helpers import eval_folder
from nsbench.report import stats

# two-sided 95% t quantiles, t_{0.975, dof} (any t table; e.g. NIST/SEMATECH e-Handbook 1.3.6.7.2)
T975 = {2: 4.302652729749464, 3: 3.1824463052837078, 4: 2.7764451051977987}


def on(s: stats.Sampler, data: str = "fmnist|test") -> stats.Sampler:
    """The sampler as scored on `data`: items pair image by image only between samplers of the same data."""
    return replace(s, data=data)


def resampled_means(x: np.ndarray, seed: int, b: int = stats.B) -> np.ndarray:
    """The percentile bootstrap written out: chunks of 250 resamples, chunk k drawn from default_rng(seed + 7919 k)
    as `rng.integers(0, n, (chunk, n))` (the seeds documented in stats.draws), the mean of x over each resample."""
    out = []
    for k in range((b + 249) // 250):
        rng = np.random.default_rng(seed + 7919 * k)
        idx = rng.integers(0, len(x), (min(250, b - 250 * k), len(x)))
        out.append(x[idx].mean(1))
    return np.concatenate(out)


def correlated_outcomes(n=400, flips=12, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.random(n) < 0.7
    b = a.copy()
    b[rng.choice(n, flips, replace=False)] ^= True
    return a, b


def test_weights_are_resample_counts_over_n():
    w = stats.weights(7, seed=5, b=3)
    idx = np.random.default_rng(5).integers(0, 7, (3, 7))
    expect = np.stack([np.bincount(r, minlength=7) for r in idx]) / 7
    np.testing.assert_array_equal(w, expect)


def test_accuracy_interval_on_a_fixed_seed_equals_plain_resampling():
    x = (np.arange(60) % 3 != 0).astype(float)  # 40 of 60 right
    s = stats.accuracy(x, tuple(range(60)), 100 * x.mean())
    assert s.fn(np.full((1, 60), 1 / 60))[0] == pytest.approx(100 * 40 / 60)
    lo, hi = stats.interval(s, seed=11)
    exp_lo, exp_hi = np.quantile(100 * resampled_means(x, 11), [0.025, 0.975])
    assert (lo, hi) == (pytest.approx(exp_lo, abs=1e-9), pytest.approx(exp_hi, abs=1e-9))
    assert lo < 100 * 40 / 60 < hi and stats.LEVEL == 0.95 and stats.B == 2000
    # the normal approximation (p +- 1.96 sqrt(p(1-p)/n)) lands within two resampling grid steps of it
    half = 1.96 * math.sqrt(40 / 60 * 20 / 60 / 60) * 100
    assert abs(lo - (100 * 40 / 60 - half)) < 2 * 100 / 60 and abs(hi - (100 * 40 / 60 + half)) < 2 * 100 / 60


def test_paired_difference_is_the_resampled_difference_and_narrower_than_unpaired():
    a, b = correlated_outcomes()
    items = tuple(range(len(a)))
    sa, sb = on(stats.accuracy(a, items, 100 * a.mean())), on(stats.accuracy(b, items, 100 * b.mean()))
    paired = stats.difference(sa, sb, seed=3)
    assert "paired bootstrap" in paired["test"] and paired["diff"] == pytest.approx(100 * (a.mean() - b.mean()))
    d = 100 * resampled_means(a.astype(float) - b.astype(float), 3)
    assert (paired["diff_low"], paired["diff_high"]) == tuple(pytest.approx(v, abs=1e-9)
                                                              for v in np.quantile(d, [0.025, 0.975]))
    # the same outcomes on items that differ by name: two independent bootstraps, seeds `seed` and `seed + 1`
    other = on(stats.accuracy(b, tuple(f"o{i}" for i in range(len(b))), 100 * b.mean()))
    unpaired = stats.difference(sa, other, seed=3)
    assert unpaired["test"] == f"unpaired bootstrap ({len(a)} vs {len(b)} items)"
    du = 100 * (resampled_means(a.astype(float), 3) - resampled_means(b.astype(float), 4))
    assert (unpaired["diff_low"], unpaired["diff_high"]) == tuple(pytest.approx(v, abs=1e-9)
                                                                  for v in np.quantile(du, [0.025, 0.975]))
    width_p = paired["diff_high"] - paired["diff_low"]
    width_u = unpaired["diff_high"] - unpaired["diff_low"]
    assert width_p < 0.5 * width_u  # 12 discordant of 400: the pairing removes most of the variance
    # the unpaired p is the two-sided bootstrap p
    tail = min((du <= 0).sum(), (du >= 0).sum())
    assert unpaired["p"] == pytest.approx(min(1.0, 2 * (tail + 1) / (len(du) + 1)))


def test_mcnemar_exact_two_sided_p_on_a_known_table():
    # 2 images only a gets right, 8 only b gets right, 20 both, 5 neither
    a = np.array([1] * 2 + [0] * 8 + [1] * 20 + [0] * 5, bool)
    b = np.array([0] * 2 + [1] * 8 + [1] * 20 + [0] * 5, bool)
    p, how = stats.mcnemar(a, b)
    # two-sided exact binomial: 2 P(X <= 2), X ~ Bin(10, 1/2) = 2 (1 + 10 + 45) / 1024
    assert p == pytest.approx(112 / 1024, abs=1e-12)
    assert how.startswith("exact McNemar (2 vs 8 discordant of 35)")
    assert stats.mcnemar(b, a)[0] == pytest.approx(112 / 1024, abs=1e-12)  # symmetric
    # 0 vs 5: 2 / 32; no discordant pairs: 1; balanced: 1
    assert stats.mcnemar(np.array([0] * 5 + [1], bool), np.array([1] * 5 + [1], bool))[0] == pytest.approx(1 / 16)
    assert stats.mcnemar(np.ones(4, bool), np.ones(4, bool))[0] == 1.0
    assert stats.mcnemar(np.array([1, 0], bool), np.array([0, 1], bool))[0] == pytest.approx(1.0)


def test_paired_accuracy_difference_reports_the_mcnemar_p():
    a = np.array([1] * 2 + [0] * 8 + [1] * 20 + [0] * 5, float)
    b = np.array([0] * 2 + [1] * 8 + [1] * 20 + [0] * 5, float)
    items = tuple(range(len(a)))
    res = stats.difference(on(stats.accuracy(a, items, 100 * a.mean())), on(stats.accuracy(b, items, 100 * b.mean())), seed=0)
    assert res["p"] == pytest.approx(112 / 1024, abs=1e-12) and res["test"].startswith("exact McNemar (2 vs 8")
    assert res["diff"] == pytest.approx(100 * (22 - 28) / 35)


def test_bootstrap_p_of_a_measure_without_binary_outcomes():
    rng = np.random.default_rng(1)
    v = rng.random((1, 50))
    items = tuple(range(50))
    sa = on(stats.perturbation(v + 0.02, items, 100 * (v.mean() + 0.02)))
    sb = on(stats.perturbation(v, items, 100 * v.mean()))
    res = stats.difference(sa, sb, seed=0)
    # every resample of a constant shift is the shift itself: interval [2, 2]; no resample reaches zero, and the p is
    # (0 + 1) / (B + 1) per tail, doubled: the smallest a bootstrap p can be, never 0
    assert res["diff_low"] == pytest.approx(2.0) and res["diff_high"] == pytest.approx(2.0)
    assert res["p"] == pytest.approx(2 / (stats.B + 1)) and res["p"] > 0
    assert res["test"] == "paired bootstrap over 50 items"


def test_seeds_interval_is_the_t_interval():
    m, lo, hi = stats.seeds_interval(np.array([1.0, 2.0, 3.0, 4.0, 5.0, np.nan]))
    half = T975[4] * math.sqrt(2.5) / math.sqrt(5)  # sd 1.5811 over 5 seeds
    assert (m, lo, hi) == (3.0, pytest.approx(3 - half, abs=1e-12), pytest.approx(3 + half, abs=1e-12))
    one = stats.seeds_interval(np.array([4.0]))
    assert one[0] == 4.0 and np.isnan(one[1]) and np.isnan(one[2])


def test_seeds_difference_paired_t_by_closed_form():
    res = stats.seeds_difference({0: 1.0, 1: 2.0, 2: 4.0}, {0: 0.5, 1: 1.0, 2: 2.5})  # d = .5, 1, 1.5
    half = T975[2] * 0.5 / math.sqrt(3)
    assert res["diff"] == pytest.approx(1.0) and res["test"] == "paired t over 3 seeds"
    assert (res["diff_low"], res["diff_high"]) == (pytest.approx(1 - half), pytest.approx(1 + half))
    t = 1.0 / (0.5 / math.sqrt(3))
    assert res["p"] == pytest.approx(1 - t / math.sqrt(2 + t * t), abs=1e-12)  # two-sided p of t with 2 dof
    # a constant per-seed difference has no variance: flagged, with no interval or test (never "certain")
    const = stats.seeds_difference({0: 2.0, 1: 3.0}, {0: 1.0, 1: 2.0})
    assert const["diff"] == 1.0 and const["flag"] == stats.ZERO_VARIANCE
    assert np.isnan(const["p"]) and np.isnan(const["diff_low"]) and np.isnan(const["diff_high"])
    same = stats.seeds_difference({0: 2.0, 1: 3.0}, {0: 2.0, 1: 3.0})
    assert same["diff"] == 0.0 and np.isnan(same["p"]) and same["flag"] == stats.ZERO_VARIANCE


def test_seeds_difference_welch_by_hand():
    from scipy.stats import t as t_dist

    res = stats.seeds_difference({0: 1.0, 1: 2.0, 2: 3.0}, {5: 2.0, 6: 4.0, 7: 6.0, 8: 8.0})
    va, vb = 1.0 / 3, (20 / 3) / 4  # sample variances 1 and 20/3 over n
    se = math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 3)
    assert dof == pytest.approx(4.0754717, abs=1e-6)
    half = t_dist.ppf(0.975, dof) * se
    assert res["test"] == "Welch t over seeds" and res["diff"] == pytest.approx(-3.0)
    assert (res["diff_low"], res["diff_high"]) == (pytest.approx(-3 - half), pytest.approx(-3 + half))
    assert res["p"] == pytest.approx(2 * t_dist.sf(3.0 / se, dof), abs=1e-12)
    few = stats.seeds_difference({0: 1.0}, {1: 2.0, 2: 3.0})
    assert np.isnan(few["diff"]) and few["test"] == ""


def test_corruption_sampler_values_by_hand():
    # 2 corruptions x 2 severities = 4 cells over 3 items; 1 = correct
    correct = np.array([[1, 1, 0], [1, 0, 0], [1, 1, 1], [0, 1, 1]], float)
    groups = np.array([0, 0, 1, 1])
    items = (0, 1, 2)
    w = np.full((1, 3), 1 / 3)
    err = 100 * (1 - correct.mean(1))  # 33.3, 66.7, 0, 33.3
    sums = np.array([err[0] + err[1], err[2] + err[3]])  # per corruption
    mean_err = stats.corruption(correct, groups, items, 0.0, kind="mean_err").fn(w)[0]
    assert mean_err == pytest.approx(np.mean(sums / 2))
    den = np.array([150.0, 120.0])
    mce = stats.corruption(correct, groups, items, 0.0, kind="mce", den=den).fn(w)[0]
    assert mce == pytest.approx(100 * np.mean(sums / den))
    rel = stats.corruption(correct, groups, items, 0.0, kind="relative_mce", den=den - 2 * 20.0, clean=(10.0, 2)).fn(w)[0]
    assert rel == pytest.approx(100 * np.mean((sums - 2 * 10.0) / (den - 40.0)))
    # a normaliser resampled on the same items: its denominators come from the same weights
    called = []
    fn_den = lambda ww: (called.append(ww.shape), np.tile(den, (len(ww), 1)))[1]  # noqa: E731
    assert stats.corruption(correct, groups, items, 0.0, kind="mce", den=fn_den).fn(w)[0] == pytest.approx(mce)
    assert called == [(1, 3)]


def test_perturbation_sampler_values_by_hand():
    v = np.array([[0.1, 0.3], [0.2, 0.6], [0.0, 0.4]])  # 3 perturbations x 2 sequences
    w = np.array([[0.5, 0.5], [1.0, 0.0]])
    plain = stats.perturbation(v, (0, 1), 0.0).fn(w)
    np.testing.assert_allclose(plain, [100 * np.mean([0.2, 0.4, 0.2]), 100 * np.mean([0.1, 0.2, 0.0])])
    den = np.array([0.5, 0.8, 0.4])
    fr = stats.perturbation(v, (0, 1), 0.0, den=den).fn(w)
    np.testing.assert_allclose(fr, [100 * np.mean([0.2 / 0.5, 0.4 / 0.8, 0.2 / 0.4]),
                                    100 * np.mean([0.1 / 0.5, 0.2 / 0.8, 0.0])])
    t5 = stats.perturbation(v, (0, 1), 0.0, scale=1.0).fn(w)
    np.testing.assert_allclose(t5, [np.mean([0.2, 0.4, 0.2]), np.mean([0.1, 0.2, 0.0])])


def test_reproduces_quantiles_and_fixed():
    x = np.array([1.0, 0.0, 1.0, 1.0])
    items = (0, 1, 2, 3)
    assert stats.reproduces(stats.accuracy(x, items, 75.0)) and stats.reproduces(stats.accuracy(x, items, 75.0 + 0.07))
    assert not stats.reproduces(stats.accuracy(x, items, 75.2))  # beyond 1e-3 x max(1, |point|)
    assert not stats.reproduces(stats.accuracy(x, items, float("nan"))) and not stats.reproduces(stats.accuracy(x[:0], (), 0.0))
    assert stats.interval(stats.Sampler(items, lambda w: w[:, 0], 100.0, fixed=True), 0) == (100.0, 100.0)
    vals = np.arange(1000, dtype=float)
    assert stats.quantiles(vals) == (pytest.approx(np.quantile(vals, 0.025)), pytest.approx(np.quantile(vals, 0.975)))
    holes = vals.copy()
    holes[:101] = np.nan  # fewer than 90% finite: no interval
    assert all(np.isnan(stats.quantiles(holes)))
    holes = vals.copy()
    holes[:100] = np.nan  # exactly 90% finite: an interval over the finite ones
    assert stats.quantiles(holes) == (pytest.approx(np.quantile(vals[100:], 0.025)),
                                  pytest.approx(np.quantile(vals[100:], 0.975)))


def test_reproduces_at_its_tolerance_boundary():
    const = lambda v: (lambda w: np.full(len(w), v))  # noqa: E731
    items = (0, 1)
    assert stats.reproduces(stats.Sampler(items, const(0.001), 0.0))  # |got - point| = 1e-3 x max(1, 0): kept (<=)
    assert not stats.reproduces(stats.Sampler(items, const(0.0015), 0.0))
    assert stats.reproduces(stats.Sampler(items, const(1000.9), 1000.0))  # relative above 1: 1e-3 x 1000 = 1
    assert not stats.reproduces(stats.Sampler(items, const(1001.5), 1000.0))
    assert not stats.reproduces(stats.Sampler(items, const(np.nan), 1.0))


def test_identical_unpaired_measures_have_p_one_and_a_zero_interval():
    v = np.full((2, 30), 0.25)  # every resample has the same mean: d = 0 exactly, in both tails
    a = stats.perturbation(v, tuple(range(30)), 25.0)
    b = stats.perturbation(v, tuple(f"b{i}" for i in range(30)), 25.0)
    res = stats.difference(a, b, seed=2)
    assert res["p"] == 1.0 and res["diff_low"] == 0.0 and res["diff_high"] == 0.0 and res["test"].startswith("unpaired")


def test_pairing_needs_identical_non_empty_items():
    one = stats.Sampler((7,), lambda w: w[:, 0], 1.0, data="d")
    assert stats.paired(one, stats.Sampler((7,), lambda w: w[:, 0], 1.0, data="d"))
    assert not stats.paired(one, stats.Sampler((8,), lambda w: w[:, 0], 1.0, data="d"))
    assert not stats.paired(stats.Sampler((), lambda w: w, 1.0, data="d"), stats.Sampler((), lambda w: w, 1.0, data="d"))
    # the same item ids on other data (another folder of the same size), or on data nobody recorded: not paired
    assert not stats.paired(one, stats.Sampler((7,), lambda w: w[:, 0], 1.0, data="e"))
    assert not stats.paired(stats.Sampler((7,), lambda w: w[:, 0], 1.0), stats.Sampler((7,), lambda w: w[:, 0], 1.0))


def test_relative_mce_sampler_default_clean_error_is_zero():
    correct = np.array([[1, 0], [0, 0]], float)
    groups, w, den = np.array([0, 1]), np.full((1, 2), 0.5), np.array([80.0, 90.0])
    rel = stats.corruption(correct, groups, (0, 1), 0.0, kind="relative_mce", den=den).fn(w)[0]
    assert rel == pytest.approx(100 * np.mean([50 / 80, 100 / 90]))


def test_t_interval_edge_cases():
    m, lo, hi = stats.seeds_interval(np.array([1.0, 3.0]))  # two seeds: t with 1 dof, 12.706 x sd / sqrt(2)
    assert m == 2.0 and hi - m == pytest.approx(12.706204736174698 * math.sqrt(2) / math.sqrt(2), abs=1e-9)
    assert lo == pytest.approx(2 - 12.706204736174698, abs=1e-9)
    empty = stats.seeds_interval(np.array([np.nan]))
    assert all(np.isnan(empty))


def test_welch_with_zero_variances_and_partly_shared_seeds():
    res = stats.seeds_difference({0: 1.0, 1: 1.0}, {2: 3.0, 3: 3.0})
    assert res["test"] == "Welch t over seeds" and res["diff"] == -2.0  # both sides constant: flagged, no test
    assert np.isnan(res["diff_low"]) and np.isnan(res["diff_high"]) and np.isnan(res["p"]) and "zero variance" in res["flag"]
    same = stats.seeds_difference({0: 1.0, 1: 1.0}, {2: 1.0, 3: 1.0})
    assert same["diff"] == 0.0 and np.isnan(same["p"]) and np.isnan(same["diff_low"])
    # two shared seeds but a third on one side only: not paired
    part = stats.seeds_difference({0: 1.0, 1: 2.0, 2: 3.0}, {0: 1.5, 1: 2.5})
    assert part["test"] == "Welch t over seeds" and part["diff"] == pytest.approx(0.0)


@pytest.mark.parametrize("b", [1, 249, 250, 251, 999, 1000, 1001])
def test_draws_give_exactly_b_resamples(b):
    got = stats.draws(lambda w: w.sum(1), 5, seed=0, b=b)
    assert got.shape == (b,) and np.allclose(got, 1.0)


def test_welch_with_small_variances():
    """Variances below 1 (accuracies as fractions, or close seeds): the same Welch formulas, not a fallback."""
    from scipy.stats import t as t_dist

    x, y = [0.80, 0.82, 0.81], [0.70, 0.74, 0.71, 0.73]
    res = stats.seeds_difference(dict(enumerate(x)), {10 + i: v for i, v in enumerate(y)})
    va, vb = np.var(x, ddof=1) / 3, np.var(y, ddof=1) / 4
    se = math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 3)
    m = np.mean(x) - np.mean(y)
    assert res["diff_high"] - res["diff"] == pytest.approx(t_dist.ppf(0.975, dof) * se, rel=1e-9)
    assert res["p"] == pytest.approx(2 * t_dist.sf(m / se, dof), rel=1e-9) and 0 < res["p"] < 0.05


def test_items_on_other_or_unrecorded_data_are_compared_unpaired_and_say_why():
    a, b = correlated_outcomes(n=40)
    items = tuple(range(40))
    sa = stats.accuracy(a, items, 100 * a.mean())
    sb = stats.accuracy(b, items, 100 * b.mean())
    other = stats.difference(on(sa, "folder-1"), on(sb, "folder-2"), seed=0)
    assert other["test"] == ("unpaired bootstrap (40 vs 40 items); not paired: scored on different data (dataset "
                             "fingerprints or sets differ)")
    for x, y in ((on(sa), sb), (sa, on(sb)), (sa, sb)):  # either side's data unknown
        assert stats.difference(x, y, seed=0)["test"] == ("unpaired bootstrap (40 vs 40 items); not paired: a dataset "
                                                      "fingerprint is missing")
    # unpaired means two independent bootstraps (seeds 0 and 1), whatever the reason
    du = 100 * (resampled_means(a.astype(float), 0) - resampled_means(b.astype(float), 1))
    assert (other["diff_low"], other["diff_high"]) == tuple(pytest.approx(v, abs=1e-9)
                                                            for v in np.quantile(du, [0.025, 0.975]))


def test_holm_caps_adjusted_p_at_one_and_keeps_the_raw_order():
    # m = 3, sorted 0.3, 0.45, 0.6: x 3, 2, 1 = 0.9, 0.9, 0.6 -> running max 0.9, 0.9, 0.9 (never below a smaller
    # raw p's adjusted value)
    np.testing.assert_allclose(stats.holm([0.6, 0.3, 0.45]), [0.9, 0.9, 0.9])
    # m = 2, sorted 0.6, 0.7: x 2, 1 = 1.2 -> 1 (capped), 0.7 -> running max 1
    np.testing.assert_allclose(stats.holm([0.7, 0.6]), [1.0, 1.0])


# pairing requires the same data (issue 21, probe 3)

@pytest.mark.usefixtures("fresh_log_handlers")
def test_models_scored_on_different_data_are_compared_unpaired_and_the_report_says_so(tmp_path):
    from nsbench.report.compare import headline
    from nsbench.report.load import load_inputs
    from nsbench.report.render import render_report

    a = eval_folder("iter0", tmp_path / "a")
    same = eval_folder("iter0", tmp_path / "same", label="same")
    other = eval_folder("iter0", tmp_path / "other", label="other", fingerprint="0123456789abcdef")
    evals, _ = load_inputs([a, same, other])
    head = headline(evals, evals[0].label)
    clean = head[head.measure == "clean_top1"].set_index("model")
    assert clean.loc["same", "test"].startswith("exact McNemar")  # same fingerprint, same ids: paired
    assert clean.loc["other", "test"].startswith("unpaired bootstrap")
    assert "scored on different data" in clean.loc["other", "test"] and "McNemar" not in clean.loc["other", "test"]
    html = render_report([a, other], tmp_path / "r").read_text()
    assert "other against iter0: scored on different data, so the differences are unpaired" in html
    unknown = eval_folder("iter0", tmp_path / "unknown", label="unknown", fingerprint="")  # older results
    evals, _ = load_inputs([a, unknown])
    test = headline(evals, "iter0").set_index(["model", "measure"]).loc[("unknown", "clean_top1"), "test"]
    assert test.startswith("unpaired bootstrap") and "a dataset fingerprint is missing" in test


# the guards and the fields the power of a verdict reads (issue 31)

def test_one_value_or_none_and_the_ninety_percent_guard_of_bootstrap_p():
    assert stats.quantiles(np.array([3.0])) == (3.0, 3.0)  # one resample: its value at both ends
    assert all(np.isnan(stats.quantiles(np.array([]))))
    # one resample above zero: each tail (0 + 1) / 2 and (1 + 1) / 2, twice the smaller = 1
    assert stats.bootstrap_p(np.array([0.5])) == 1.0 and np.isnan(stats.bootstrap_p(np.array([])))
    # exactly 90% finite: a p over the 90 finite values, none reaching zero: 2 (0 + 1) / 91
    assert stats.bootstrap_p(np.r_[np.ones(90), np.full(10, np.nan)]) == pytest.approx(2 / 91, rel=1e-12)
    assert np.isnan(stats.bootstrap_p(np.r_[np.ones(89), np.full(11, np.nan)]))


def test_bootstrap_p_counts_values_zero_to_nine_decimals_as_ties():
    # 4e-10 is 0 to 9 decimals: a tie, counted in both tails, p = 1; 6e-10 rounds to 1e-9: no resample at zero
    assert stats.bootstrap_p(np.full(99, 4e-10)) == 1.0 and stats.bootstrap_p(np.full(99, -4e-10)) == 1.0
    assert stats.bootstrap_p(np.full(99, 6e-10)) == pytest.approx(2 / 100, rel=1e-12)


def test_an_exact_mcnemar_p_has_no_resamples_and_a_bootstrap_p_has_b():
    a = np.array([1] * 2 + [0] * 8 + [1] * 20 + [0] * 5, float)
    b = np.array([0] * 2 + [1] * 8 + [1] * 20 + [0] * 5, float)
    items = tuple(range(len(a)))
    sa, sb = stats.accuracy(a, items, 100 * a.mean()), stats.accuracy(b, items, 100 * b.mean())
    assert stats.difference(on(sa), on(sb), seed=0)["resamples"] == 0  # McNemar: nothing to redraw
    assert stats.difference(sa, sb, seed=0, resamples=500)["resamples"] == 500  # unpaired: a bootstrap p


def test_paired_seeds_difference_gives_the_t_tests_standard_error_and_dof():
    # d = 0.5, 1, 1.5, 3 over 4 seeds: mean 1.5, sample variance (1 + 0.25 + 0 + 2.25) / 3 = 7 / 6
    res = stats.seeds_difference({0: 1.0, 1: 2.0, 2: 4.0, 3: 5.0}, {0: 0.5, 1: 1.0, 2: 2.5, 3: 2.0})
    assert res["test"] == "paired t over 4 seeds" and res["diff"] == pytest.approx(1.5)
    assert res["se"] == pytest.approx(math.sqrt(7 / 6) / 2, rel=1e-12) and res["dof"] == 3.0
    half = T975[3] * math.sqrt(7 / 6) / 2
    assert (res["diff_low"], res["diff_high"]) == (pytest.approx(1.5 - half), pytest.approx(1.5 + half))
