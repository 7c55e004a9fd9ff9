"""Metrics (bench/metrics.py) anchored on the reference facts (../shared/reference/README.md); every published -C, -P
and calibration number the tasks write checked against the one function that defines it (bench/metrics.py,
nsbench/calibration.py); and value tests against a hand computation or the reference implementation written out here
(hendrycks/robustness ImageNet-P/test.py, commit e0377d4: `flip_prob`, `ranking_dist`, `dist`; ImageNet-C: CE as a
ratio of summed errors, Hendrycks & Dietterich, ICLR 2019)."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import rankdata

from helpers import PixelOracle, encoded_image, oracle_model
from nsbench import calibration, reference
from nsbench.bench import metrics, perturbation_sets
from nsbench.bench.context import EvalContext
from nsbench.bench.normaliser import Normaliser
from nsbench.bench.suite import SuiteConfig
from nsbench.bench.tasks import corruptions, perturbations
from nsbench.reference import ALEXNET_CLEAN_ERR, C_BENCHMARK, P_TEST


def _ctx(tmp_path, cfg, oracle=None, classes=("a", "b")):
    return EvalContext(oracle_model(oracle or PixelOracle([0, 1]), list(classes)), cfg, tmp_path / "cache",
                       torch.device("cpu"))


def _c_means(tmp_path, errors, clean_err, ref, ref_clean_err) -> dict:
    """mce / relative_mce (or their _partial) as the -C task writes them, all five severities."""
    cfg = SuiteConfig(name="t")
    rows = corruptions._normalised_rows(_ctx(tmp_path, cfg), cfg.corruptions, errors, clean_err, (ref, ref_clean_err), "ref", 10)
    return {r["metric"]: r["value"] for r in rows if r["condition"] == "all"}


def test_alexnet_own_errors_give_ce_one_and_mce_100(tmp_path):
    alex = reference.alexnet_c_errors()
    for c, errs in alex.items():
        assert metrics.ce(errs, alex[c]) == pytest.approx(1.0)
        assert metrics.relative_ce(errs, ALEXNET_CLEAN_ERR, alex[c], ALEXNET_CLEAN_ERR) == pytest.approx(1.0)
    assert metrics.normalised_mean([metrics.ce(alex[c], alex[c]) for c in C_BENCHMARK]) == pytest.approx(100.0)
    assert metrics.normalised_mean([metrics.relative_ce(alex[c], ALEXNET_CLEAN_ERR, alex[c], ALEXNET_CLEAN_ERR)
                              for c in C_BENCHMARK]) == pytest.approx(100.0)
    means = _c_means(tmp_path, alex, ALEXNET_CLEAN_ERR, alex, ALEXNET_CLEAN_ERR)  # and as the -C task publishes them
    assert means["mce"] == pytest.approx(100.0) and means["relative_mce"] == pytest.approx(100.0)


def test_ce_is_ratio_of_sums_not_mean_of_ratios():
    errs, ref = [0.1, 0.5], [0.2, 0.6]
    assert metrics.ce(errs, ref) == pytest.approx(0.6 / 0.8)
    assert metrics.ce(errs, ref) != pytest.approx(np.mean([0.1 / 0.2, 0.5 / 0.6]))


def test_resnet50_row_gives_mce_76_9(tmp_path):
    """Errors that are the paper's ResNet-50 CE row times AlexNet's errors give that row back as CEs through
    nsbench, and an mCE of 76.9 (reported 76.7 from unrounded values)."""
    row = dict(zip(C_BENCHMARK, [80, 82, 83, 75, 89, 78, 80, 78, 75, 66, 57, 71, 85, 77, 77]))
    alex = reference.alexnet_c_errors()
    errors = {c: [e * row[c] / 100 for e in alex[c]] for c in C_BENCHMARK}
    for c in C_BENCHMARK:
        assert 100 * metrics.ce(errors[c], alex[c]) == pytest.approx(row[c])
    assert round(metrics.normalised_mean([metrics.ce(errors[c], alex[c]) for c in C_BENCHMARK]), 1) == 76.9
    assert round(_c_means(tmp_path, errors, 0.2, alex, ALEXNET_CLEAN_ERR)["mce"], 1) == 76.9


def test_benchmark_corruptions_match_reference_table():
    rows = {c for c, _ in reference.alexnet_c_errors().items()}
    assert set(C_BENCHMARK) | set(reference.C_VALIDATION) == rows
    assert len(C_BENCHMARK) == 15


@pytest.mark.parametrize("sigma,expected", [
    (list(range(1, 11)), 0), ([2, 1, 3, 4, 5, 6, 7], 2), ([3, 1, 2, 4, 5, 6, 7], 4),
    ([2, 3, 4, 5, 6, 7, 8, 9, 10, 1], 5), ([1, 2, 3, 4, 6, 5, 7], 1), ([1, 2, 3, 5, 6, 4, 7], 2),
    ([5, 4, 3, 2, 1, 6, 7], 12),
])
def test_top5_distance_examples_from_appendix_c(sigma, expected):
    assert metrics.top5_distance(sigma) == expected
    # the same through the sequence path: frame 0 ranks classes 0..9 in order; frame 1's ranks are sigma
    n = 10
    sigma = sigma + list(range(len(sigma) + 1, n + 1))
    f0 = -np.arange(n, dtype=float)
    f1 = np.empty(n)
    f1[np.arange(n)] = -np.asarray(sigma, float)  # class i gets rank sigma[i]
    assert metrics.sequence_t5d(np.stack([f0, f1]), noise=False) == expected


def test_flip_probability_noise_and_temporal():
    a, b = 0, 1
    seq = np.array([[a, b, a, a]])
    assert metrics.flip_probability(seq, noise=True)[0] == pytest.approx(1 / 3)
    assert metrics.flip_probability(seq, noise=False)[0] == pytest.approx(2 / 3)


def test_flip_probability_difficulty_two_uses_both_offset_chains():
    # chains (0, 2, 4) and (1, 3, 5): pairs (0,2) (2,4) (1,3) (3,5)
    seq = np.array([[0, 0, 1, 0, 1, 1]])
    # (0,2): 0 vs 1 flip; (2,4): 1 vs 1 same; (1,3): 0 vs 0 same; (3,5): 0 vs 1 flip -> 2/4
    assert metrics.flip_probability(seq, noise=False, difficulty=2)[0] == pytest.approx(0.5)
    # noise ignores difficulty and compares with the first frame: flips at 2, 4, 5 -> 3/5
    assert metrics.flip_probability(seq, noise=True, difficulty=2)[0] == pytest.approx(0.6)


def test_mean_per_sequence_then_over_sequences():
    seqs = np.array([[0, 1, 1, 1], [0, 0, 0, 0]])
    fp = metrics.flip_probability(seqs, noise=False)
    assert fp.tolist() == pytest.approx([1 / 3, 0.0])


def test_ordinal_ranks_break_ties_by_index():
    assert metrics.ordinal_ranks(np.array([[1.0, 3.0, 3.0, 0.0]])).tolist() == [[3, 1, 2, 4]]


# ---------------------------------------------------------------- the published rows are the functions' values
# Each number a task writes must equal, to the last bit, the function that defines it called here on the same
# inputs in the same order: a second copy of a formula in the harness (another operation order included) fails.

@pytest.mark.parametrize("drop", [None, "snow"])
def test_corruption_rows_are_the_metric_functions(monkeypatch, tmp_path, drop):
    """-C on the official-tree path: top1_err, ECE / NLL / Brier per cell, mean_err per corruption and over the
    benchmark, CE and relative CE against the AlexNet table, mCE and relative mCE (or their _partial without snow)."""
    rng = np.random.default_rng(7)
    names = [c for c in (*C_BENCHMARK, "speckle_noise") if c != drop]
    outcomes = {}
    for k, c in enumerate(names):
        for s in range(1, 6):
            correct = rng.random(40) < 0.9 - 0.1 * s - 0.01 * k
            cal = {"confidence": rng.uniform(0.1, 1.0, 40), "nll": rng.uniform(0, 3, 40),
                   "brier": rng.uniform(0, 2, 40)}
            outcomes[f"{c}|{s}"] = correct, np.arange(40), cal
    clean_err = 0.2137
    monkeypatch.setattr(corruptions, "_official", lambda ctx, t: (outcomes, clean_err, 40, {}))
    cfg = SuiteConfig(name="t")
    cfg.corruptions.root, cfg.corruptions.corruptions = str(tmp_path), [*C_BENCHMARK, "speckle_noise"]
    res = corruptions.run(_ctx(tmp_path, cfg), cfg.corruptions, Normaliser("auto"))
    got = {(r["condition"], r["severity"], r["metric"]): r["value"] for r in res.rows}
    alex = reference.alexnet_c_errors()
    errors = {c: [metrics.error(outcomes[f"{c}|{s}"][0]) for s in range(1, 6)] for c in names}
    for c in names:
        for s in range(1, 6):
            correct, _, cal = outcomes[f"{c}|{s}"]
            assert got[(c, s, "top1_err")] == 100 * metrics.error(correct)
            assert got[(c, s, "ece")] == 100 * calibration.ece(cal["confidence"], correct)
            assert got[(c, s, "nll")] == np.mean(cal["nll"]) and got[(c, s, "brier")] == np.mean(cal["brier"])
        assert got[(c, None, "mean_err")] == 100 * metrics.mean_error(errors, [c])
        assert got[(c, None, "ce")] == 100 * metrics.ce(errors[c], alex[c])
        assert got[(c, None, "relative_ce")] == 100 * metrics.relative_ce(errors[c], clean_err, alex[c], ALEXNET_CLEAN_ERR)
    assert got[("clean", None, "top1_err")] == 100 * clean_err
    bench = [c for c in C_BENCHMARK if c != drop]
    assert got[("all", None, "mean_err")] == 100 * metrics.mean_error(errors, bench)
    part = "" if drop is None else "_partial"
    assert got[("all", None, "mce" + part)] == metrics.normalised_mean([metrics.ce(errors[c], alex[c]) for c in bench])
    assert got[("all", None, "relative_mce" + part)] == metrics.normalised_mean(
        [metrics.relative_ce(errors[c], clean_err, alex[c], ALEXNET_CLEAN_ERR) for c in bench])
    assert ("all", None, "mce" if drop else "mce_partial") not in got


@pytest.mark.parametrize("drop", [None, "rotate"])
def test_perturbation_rows_are_the_metric_functions(monkeypatch, tmp_path, drop):
    """-P: FP and uT5D per perturbation, FR and T5D against the AlexNet table, mean_fp / mean_t5d, mFR and mT5D (or
    their _partial without rotate)."""
    rng = np.random.default_rng(8)
    stats = {p: {"fp": rng.random(9) * 0.3, "t5d": rng.random(9) * 4} for p in (*P_TEST, "shear") if p != drop}
    monkeypatch.setattr(perturbations, "perturbation_stats", lambda ctx, t: (stats, {}))
    cfg = SuiteConfig(name="t")
    cfg.perturbations.root, cfg.perturbations.perturbations = str(tmp_path), list(stats)
    res = perturbations.run(_ctx(tmp_path, cfg), cfg.perturbations, Normaliser("auto"))
    got = {(r["condition"], r["metric"]): r["value"] for r in res.rows}
    alex = reference.alexnet_p()
    fp = {p: metrics.mean(z["fp"]) for p, z in stats.items()}
    ut5d = {p: metrics.mean(z["t5d"]) for p, z in stats.items()}
    for p in stats:
        assert got[(p, "fp")] == 100 * fp[p] and got[(p, "t5d")] == ut5d[p]
        assert got[(p, "fr")] == 100 * metrics.fr(fp[p], alex[p]["fp"])
        assert got[(p, "t5d_rel")] == 100 * metrics.t5d_rel(ut5d[p], alex[p]["t5d"])
    test = [p for p in P_TEST if p != drop]
    assert got[("all", "mean_fp")] == 100 * metrics.mean([fp[p] for p in test])
    assert got[("all", "mean_t5d")] == metrics.mean([ut5d[p] for p in test])
    part = "" if drop is None else "_partial"
    assert got[("all", "mfr" + part)] == metrics.normalised_mean([metrics.fr(fp[p], alex[p]["fp"]) for p in test])
    assert got[("all", "mt5d" + part)] == metrics.normalised_mean([metrics.t5d_rel(ut5d[p], alex[p]["t5d"]) for p in test])


def test_built_perturbation_sequences_are_scored_by_the_metric_functions(monkeypatch, tmp_path):
    """A built -P set's per-sequence flip rates and top-5 distances (what FP and uT5D average) are
    `flip_probability` and `sequence_t5d` of the model's logits on its frames, noise and temporal, difficulty 2."""
    from nsbench.bench import cache

    rng = np.random.default_rng(9)
    folder = tmp_path / "P-set"
    folder.mkdir()
    frames = {p: np.stack([np.stack([encoded_image(int(k), 16) for k in rng.integers(0, 4, 7)]) for _ in range(3)])
              for p in ("gaussian_noise", "rotate")}
    for p, seqs in frames.items():
        cache.save_array(folder / f"{p}-d2.npy", seqs)
    manifest = {"n": 3, "seed": 0, "calibration": "cifar-10-p", "calibration_source": "test"}
    monkeypatch.setattr(perturbation_sets, "build_p", lambda *a, **k: (folder, manifest))
    cfg = SuiteConfig(name="t")
    cfg.perturbations.perturbations, cfg.perturbations.difficulty = list(frames), 2
    ctx = _ctx(tmp_path, cfg, PixelOracle([0, 1, 2, 3], n=6, decoy=None), classes="abcdef")
    ctx._source = "unread"  # build_p is replaced: the evaluation split is never opened
    stats, _ = perturbations.perturbation_stats(ctx, cfg.perturbations)
    res = perturbations.run(ctx, cfg.perturbations, Normaliser("none"))
    got = {(r["condition"], r["metric"]): r["value"] for r in res.rows}
    for p, seqs in frames.items():
        lg = ctx.logits(seqs.reshape(21, 16, 16, 3)).reshape(3, 7, -1)
        fp = metrics.flip_probability(lg.argmax(2), metrics.is_noise(p), 2)
        t5d = np.asarray([metrics.sequence_t5d(s, metrics.is_noise(p), 2) for s in lg])
        np.testing.assert_array_equal(stats[p]["fp"], fp)
        np.testing.assert_array_equal(stats[p]["t5d"], t5d)
        assert got[(p, "fp")] == 100 * metrics.mean(fp) and got[(p, "t5d")] == metrics.mean(t5d)
    assert 0 < got[("rotate", "fp")] < 100  # the frames do flip: the check above is not about constants


REF_DATA = Path(reference.__file__).parent / "reference_data"


# ---------------------------------------------------------------- the reference code, written out (test.py)

def ref_flip_prob(predictions, noise, difficulty=1):
    result = 0.0
    step = 1 if noise else difficulty
    for vid in predictions:
        out = []
        for i in range(step):
            prev = vid[i]
            for pred in vid[i::step][1:]:
                out.append(int(prev != pred))
                if not noise:
                    prev = pred
        result += np.mean(out) / len(predictions)
    return result


CUM_TOP5 = np.cumsum(np.asarray([0] + [1] * 5 + [0] * (999 - 5)))


def ref_dist(sigma):
    return np.sum(np.abs(CUM_TOP5[:5] - CUM_TOP5[sigma - 1][:5]))


def ref_ranking_dist(ranks, noise, difficulty=1):
    result = 0.0
    step = 1 if noise else difficulty
    for vid in ranks:
        out = []
        for i in range(step):
            perm1 = vid[i]
            inv = np.argsort(perm1)
            for perm2 in vid[i::step][1:]:
                out.append(ref_dist(perm2[inv]))
                if not noise:
                    perm1 = perm2
                    inv = np.argsort(perm1)
        result += np.mean(out) / len(ranks)
    return result


def ref_ranks(logits):  # the reference: np.uint16(rankdata(-frame, method='ordinal')) per frame
    return np.stack([np.uint16(rankdata(-f, method="ordinal")) for f in logits])


# ---------------------------------------------------------------- -C: CE, relative CE, mCE, relative mCE

def test_ce_by_hand():
    assert metrics.ce([0.2, 0.3, 0.4, 0.5, 0.6], [0.4, 0.5, 0.6, 0.7, 0.8]) == pytest.approx(2.0 / 3.0, abs=1e-12)
    assert metrics.ce([0.5], [0.25]) == pytest.approx(2.0, abs=1e-12)
    assert np.isnan(metrics.ce([0.1, 0.2], [0.0, 0.0]))  # a normaliser with no error: undefined
    with pytest.raises(ValueError, match="2 severities against 3"):
        metrics.ce([0.1, 0.2], [0.1, 0.2, 0.3])


def test_relative_ce_with_different_clean_errors():
    # model: clean 0.1, errors .3 .4 .5 -> degradations .2 .3 .4 (sum .9)
    # normaliser: clean 0.2, errors .5 .6 .7 -> degradations .3 .4 .5 (sum 1.2)
    got = metrics.relative_ce([0.3, 0.4, 0.5], 0.1, [0.5, 0.6, 0.7], 0.2)
    assert got == pytest.approx(0.9 / 1.2, abs=1e-12)
    # swapping the clean errors gives a different number (0.6 / 1.5), so the assertion above pins which is which
    assert 0.9 / 1.2 != pytest.approx(0.6 / 1.5)
    # the same errors with no clean error at all are the plain CE (1.2 / 1.8)
    assert metrics.relative_ce([0.3, 0.4, 0.5], 0.0, [0.5, 0.6, 0.7], 0.0) == pytest.approx(1.2 / 1.8, abs=1e-12)
    # the normaliser's errors summing to its clean error: undefined
    assert np.isnan(metrics.relative_ce([0.3, 0.4], 0.1, [0.2, 0.2], 0.2))
    # a model whose corrupted error is below its clean error has a negative relative CE, kept as such
    assert metrics.relative_ce([0.05, 0.1], 0.1, [0.5, 0.6], 0.2) == pytest.approx(-0.05 / 0.7, abs=1e-12)


def test_mce_and_relative_mce_by_hand_over_the_corruptions_present(tmp_path):
    errors = {"fog": [0.2, 0.4], "snow": [0.3, 0.3], "frost": [0.6, 0.6], "extra": [0.9, 0.9]}
    ref = {"fog": [0.4, 0.4], "snow": [0.2, 0.4], "frost": [0.8, 0.4], "blur": [0.5, 0.5]}
    names = ["fog", "snow", "frost"]  # in both: blur has no model errors, extra has no normaliser
    ces = [0.6 / 0.8, 0.6 / 0.6, 1.2 / 1.2]
    assert metrics.normalised_mean([metrics.ce(errors[c], ref[c]) for c in names]) == pytest.approx(100 * np.mean(ces), abs=1e-10)
    rel = [(0.6 - 2 * 0.1) / (0.8 - 2 * 0.15), (0.6 - 0.2) / (0.6 - 0.3), (1.2 - 0.2) / (1.2 - 0.3)]
    assert metrics.normalised_mean([metrics.relative_ce(errors[c], 0.1, ref[c], 0.15) for c in names]) == pytest.approx(
        100 * np.mean(rel), abs=1e-10)
    # the -C task takes the same corruptions (those in both) for its partial means
    cfg = SuiteConfig(name="t")
    cfg.corruptions.severities = [1, 2]
    ctx = _ctx(tmp_path, cfg)
    rows = corruptions._normalised_rows(ctx, cfg.corruptions, errors, 0.1, (ref, 0.15), "ref", 7)
    got = {r["metric"]: r for r in rows if r["condition"] == "all"}
    assert got["mce_partial"]["value"] == pytest.approx(100 * np.mean(ces), abs=1e-10)
    assert got["relative_mce_partial"]["value"] == pytest.approx(100 * np.mean(rel), abs=1e-10)
    assert got["mce_partial"]["note"].startswith("partial: 3 of 15 benchmark corruptions; missing: gaussian_noise")
    # none of them in both: no mean at all (undefined, never NaN)
    rows = corruptions._normalised_rows(ctx, cfg.corruptions, {"extra": [0.9, 0.9]}, 0.1, (ref, 0.15), "ref", 7)
    assert [(r["metric"], r["value"]) for r in rows] == [("mce_partial", None), ("relative_mce_partial", None)]


def test_relative_mce_against_alexnet_with_a_model_of_its_own_clean_error(tmp_path):
    """Relative mCE against the published AlexNet table for errors that are AlexNet's minus 0.1 with a clean error
    of 0.2, as the -C task publishes it: each relative CE is sum(E_a - 0.1 - 0.2) / sum(E_a - 0.43478), computed here
    from the CSV itself."""
    with open(REF_DATA / "imagenet_c_alexnet_error.csv") as f:
        rows = {r["corruption"]: r for r in csv.DictReader(f)}
    alex = {c: [float(r[f"severity_{s}"]) for s in range(1, 6)] for c, r in rows.items()}
    bench = [c for c, r in rows.items() if r["in_mce"] == "yes"]
    model = {c: [e - 0.1 for e in v] for c, v in alex.items()}
    expect_rel = np.mean([sum(e - 0.3 for e in alex[c]) / sum(e - 0.43478 for e in alex[c]) for c in bench])
    expect_ce = np.mean([sum(e - 0.1 for e in alex[c]) / sum(alex[c]) for c in bench])
    cfg = SuiteConfig(name="t")
    rows = corruptions._normalised_rows(_ctx(tmp_path, cfg), cfg.corruptions, model, 0.2,
                               (reference.alexnet_c_errors(), reference.ALEXNET_CLEAN_ERR), "AlexNet", 10)
    got = {r["metric"]: r["value"] for r in rows if r["condition"] == "all"}
    assert got["relative_mce"] == pytest.approx(100 * expect_rel, abs=1e-9)
    assert got["mce"] == pytest.approx(100 * expect_ce, abs=1e-9)
    assert reference.ALEXNET_CLEAN_ERR == 0.43478 and sorted(bench) == sorted(reference.C_BENCHMARK)


def test_corruption_task_rows_are_the_hand_ratios(monkeypatch, tmp_path):
    """The published CE / relative CE rows (x100) of the corruption task for two corruptions."""
    errors = {"fog": [0.2, 0.4], "snow": [0.3, 0.5]}
    ref = ({"fog": [0.4, 0.6], "snow": [0.5, 0.5]}, 0.25)
    cfg = SuiteConfig(name="t")
    cfg.corruptions.severities = [1, 2]
    rows = corruptions._normalised_rows(_ctx(tmp_path, cfg), cfg.corruptions, errors, 0.1, ref, "ref", 7)
    got = {(r["condition"], r["metric"]): r["value"] for r in rows}
    assert got[("fog", "ce")] == pytest.approx(100 * 0.6 / 1.0)
    assert got[("snow", "ce")] == pytest.approx(100 * 0.8 / 1.0)
    assert got[("fog", "relative_ce")] == pytest.approx(100 * (0.6 - 0.2) / (1.0 - 0.5))
    assert got[("snow", "relative_ce")] == pytest.approx(100 * (0.8 - 0.2) / (1.0 - 0.5))
    part = {r["metric"]: r for r in rows if r["condition"] == "all"}
    assert part["mce_partial"]["value"] == pytest.approx(100 * np.mean([0.6, 0.8]))
    assert part["relative_mce_partial"]["value"] == pytest.approx(100 * np.mean([0.8, 1.2]))


# ---------------------------------------------------------------- -P: FP, uT5D, FR, mFR, T5D, mT5D

def test_top5_distance_clips_ranks_beyond_five():
    # sigma(1) = 7 counts as 6 (min(7 - 1, 5) = 5): |0 - 5| + |1 - 0| + |2 - 1| + |3 - 2| + |4 - 3| = 9
    assert metrics.top5_distance([7, 1, 2, 3, 4, 5, 6]) == 9
    assert metrics.top5_distance([7, 1, 2, 3, 4, 5, 6]) == ref_dist(np.array([7, 1, 2, 3, 4, 5, 6]))
    assert metrics.top5_distance([1, 2, 3, 4, 900]) == 1 == ref_dist(np.array([1, 2, 3, 4, 900]))


@pytest.mark.parametrize("noise,difficulty", [(True, 1), (False, 1), (False, 2), (False, 3), (True, 3)])
def test_flip_probability_equals_the_reference_code(noise, difficulty):
    rng = np.random.default_rng(difficulty + 10 * noise)
    preds = rng.integers(0, 3, (6, 13))
    got = metrics.flip_probability(preds, noise, difficulty)
    assert got.shape == (6,)
    assert float(got.mean()) == pytest.approx(ref_flip_prob(preds, noise, difficulty), abs=1e-12)
    for k in range(6):  # and sequence by sequence
        assert got[k] == pytest.approx(ref_flip_prob(preds[k:k + 1], noise, difficulty), abs=1e-12)


def test_flip_probability_by_hand_with_three_chains():
    seq = np.array([[0, 1, 2, 0, 1, 0, 0]])
    # difficulty 3: chains (0, 3, 6), (1, 4), (2, 5): pairs (0,3) same, (3,6) same, (1,4) same, (2,5) flip -> 1/4
    assert metrics.flip_probability(seq, noise=False, difficulty=3)[0] == pytest.approx(0.25)
    # noise: every frame against frame 0: flips at 1, 2, 4 -> 3/6
    assert metrics.flip_probability(seq, noise=True, difficulty=3)[0] == pytest.approx(0.5)


@pytest.mark.parametrize("noise,difficulty,classes", [(True, 1, 12), (False, 1, 12), (False, 2, 12), (False, 1, 7)])
def test_sequence_t5d_equals_the_reference_code(noise, difficulty, classes):
    rng = np.random.default_rng(classes + difficulty)
    # few distinct values: ties, broken by class index as rankdata(method='ordinal') does
    logits = rng.integers(0, 4, (3, 9, classes)).astype(float)
    got = [metrics.sequence_t5d(s, noise, difficulty) for s in logits]
    ranks = np.stack([ref_ranks(s) for s in logits])
    assert np.mean(got) == pytest.approx(ref_ranking_dist(ranks, noise, difficulty), abs=1e-12)
    for s in logits:
        np.testing.assert_array_equal(metrics.ordinal_ranks(s), ref_ranks(s))


def test_sequence_t5d_anchors_on_the_first_frame_for_noise():
    # class order per frame: f0 = 0,1,2,3,4,5; f1 swaps 0 and 1; f2 equals f1
    f0 = -np.arange(6, dtype=float)
    f1 = f0[[1, 0, 2, 3, 4, 5]]
    lg = np.stack([f0, f1, f1])
    assert metrics.sequence_t5d(lg, noise=True) == pytest.approx(2.0)  # (f0,f1) = 2, (f0,f2) = 2
    assert metrics.sequence_t5d(lg, noise=False) == pytest.approx(1.0)  # (f0,f1) = 2, (f1,f2) = 0
    assert metrics.is_noise("gaussian_noise") and metrics.is_noise("speckle_noise") and not metrics.is_noise("rotate")


def test_ordinal_ranks_by_hand():
    assert metrics.ordinal_ranks(np.array([[0.5, 2.0, -1.0], [1.0, 1.0, 1.0]])).tolist() == [[2, 1, 3], [1, 2, 3]]


def test_fr_mfr_t5d_mt5d_rows_against_the_alexnet_table(monkeypatch, tmp_path):
    """FP, uT5D, FR = FP / FP(AlexNet), T5D = uT5D / uT5D(AlexNet) and their means over the 10 test perturbations,
    against the published table read from the CSV here (appendix E)."""
    with open(REF_DATA / "imagenet_p_alexnet.csv") as f:
        alex = {r["perturbation"]: (float(r["flip_probability"]), float(r["top5_distance"])) for r in csv.DictReader(f)}
    test = [p for p in alex if p in reference.P_TEST]
    assert len(test) == 10
    rng = np.random.default_rng(0)
    stats = {p: {"fp": rng.random(4) * 0.2, "t5d": rng.random(4) * 3} for p in test + ["shear"]}
    monkeypatch.setattr(perturbations, "perturbation_stats", lambda ctx, t: (stats, {}))
    cfg = SuiteConfig(name="t")
    cfg.perturbations.root, cfg.perturbations.perturbations = str(tmp_path), list(stats)
    res = perturbations.run(_ctx(tmp_path, cfg), cfg.perturbations, Normaliser("auto"))
    rows = {(r["condition"], r["metric"]): r for r in res.rows}
    for p in test:
        fp, ut5d = stats[p]["fp"].mean(), stats[p]["t5d"].mean()
        assert rows[(p, "fp")]["value"] == pytest.approx(100 * fp)
        assert rows[(p, "t5d")]["value"] == pytest.approx(ut5d)
        assert rows[(p, "fr")]["value"] == pytest.approx(100 * fp / alex[p][0])
        assert rows[(p, "t5d_rel")]["value"] == pytest.approx(100 * ut5d / alex[p][1])
    mfr = np.mean([stats[p]["fp"].mean() / alex[p][0] for p in test])
    mt5d = np.mean([stats[p]["t5d"].mean() / alex[p][1] for p in test])
    assert rows[("all", "mfr")]["value"] == pytest.approx(100 * mfr) and rows[("all", "mfr")]["n"] == 4
    assert rows[("all", "mt5d")]["value"] == pytest.approx(100 * mt5d)
    assert rows[("all", "mean_fp")]["value"] == pytest.approx(100 * np.mean([stats[p]["fp"].mean() for p in test]))
    assert rows[("all", "mean_t5d")]["value"] == pytest.approx(np.mean([stats[p]["t5d"].mean() for p in test]))
    assert rows[("shear", "fr")]["value"] == pytest.approx(100 * stats["shear"]["fp"].mean() / alex["shear"][0])
    assert all(rows[(p, m)]["note"] is None for p in test for m in ("fr", "t5d_rel"))  # defined: no note
    per = {f.condition.iloc[0]: f for f in res.per_image}
    for p in test:  # the per-sequence values the report resamples, as -P rows (no severity, no eps)
        np.testing.assert_array_equal(per[p].flip, stats[p]["fp"])
        np.testing.assert_array_equal(per[p].t5d, stats[p]["t5d"])
        assert (per[p].severity == 0).all() and (per[p].eps_255 == 0.0).all() and per[p].image.tolist() == [0, 1, 2, 3]


def test_task_order_puts_perturbations_after_corruptions():
    from nsbench.bench.registry import task_kinds

    kinds = task_kinds()
    assert kinds["corruptions"].order == 1 and kinds["perturbations"].order == 2
    assert list(kinds).index("perturbations") == list(kinds).index("corruptions") + 1
