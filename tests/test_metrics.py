"""Metrics anchored on the reference facts (../shared/reference/README.md), and every published -C, -P and
calibration number the tasks write checked against the one function that defines it (bench/metrics.py,
nsbench/calibration.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nsbench import calibration as CAL
from nsbench import reference
from nsbench.bench import metrics as M
from nsbench.bench import perturbations as perturbation_sets
from nsbench.bench.context import EvalContext
from nsbench.bench.normaliser import Normaliser
from nsbench.bench.suite import SuiteConfig
from nsbench.bench.tasks import corruptions as TC
from nsbench.bench.tasks import perturbations as TP
from nsbench.reference import ALEXNET_CLEAN_ERR, C_BENCHMARK, P_TEST


def _ctx(tmp_path, cfg, oracle=None, classes=("a", "b")):
    from test_bench import PixelOracle, oracle_model

    return EvalContext(oracle_model(oracle or PixelOracle([0, 1]), list(classes)), cfg, tmp_path / "cache",
                       torch.device("cpu"))


def _c_means(tmp_path, errors, clean_err, ref, ref_clean_err) -> dict:
    """mce / relative_mce (or their _partial) as the -C task writes them, all five severities."""
    cfg = SuiteConfig(name="t")
    rows = TC._normalised_rows(_ctx(tmp_path, cfg), cfg.corruptions, errors, clean_err, (ref, ref_clean_err), "ref", 10)
    return {r["metric"]: r["value"] for r in rows if r["condition"] == "all"}


def test_alexnet_own_errors_give_ce_one_and_mce_100(tmp_path):
    alex = reference.alexnet_c_errors()
    for c, errs in alex.items():
        assert M.ce(errs, alex[c]) == pytest.approx(1.0)
        assert M.relative_ce(errs, ALEXNET_CLEAN_ERR, alex[c], ALEXNET_CLEAN_ERR) == pytest.approx(1.0)
    assert M.normalised_mean([M.ce(alex[c], alex[c]) for c in C_BENCHMARK]) == pytest.approx(100.0)
    assert M.normalised_mean([M.relative_ce(alex[c], ALEXNET_CLEAN_ERR, alex[c], ALEXNET_CLEAN_ERR)
                              for c in C_BENCHMARK]) == pytest.approx(100.0)
    means = _c_means(tmp_path, alex, ALEXNET_CLEAN_ERR, alex, ALEXNET_CLEAN_ERR)  # and as the -C task publishes them
    assert means["mce"] == pytest.approx(100.0) and means["relative_mce"] == pytest.approx(100.0)


def test_ce_is_ratio_of_sums_not_mean_of_ratios():
    errs, ref = [0.1, 0.5], [0.2, 0.6]
    assert M.ce(errs, ref) == pytest.approx(0.6 / 0.8)
    assert M.ce(errs, ref) != pytest.approx(np.mean([0.1 / 0.2, 0.5 / 0.6]))


def test_resnet50_row_gives_mce_76_9(tmp_path):
    """Errors that are the paper's ResNet-50 CE row times AlexNet's errors give that row back as CEs through
    nsbench, and an mCE of 76.9 (reported 76.7 from unrounded values)."""
    row = dict(zip(C_BENCHMARK, [80, 82, 83, 75, 89, 78, 80, 78, 75, 66, 57, 71, 85, 77, 77]))
    alex = reference.alexnet_c_errors()
    errors = {c: [e * row[c] / 100 for e in alex[c]] for c in C_BENCHMARK}
    for c in C_BENCHMARK:
        assert 100 * M.ce(errors[c], alex[c]) == pytest.approx(row[c])
    assert round(M.normalised_mean([M.ce(errors[c], alex[c]) for c in C_BENCHMARK]), 1) == 76.9
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
    assert M.top5_distance(sigma) == expected
    # the same through the sequence path: frame 0 ranks classes 0..9 in order; frame 1's ranks are sigma
    n = 10
    sigma = sigma + list(range(len(sigma) + 1, n + 1))
    f0 = -np.arange(n, dtype=float)
    f1 = np.empty(n)
    f1[np.arange(n)] = -np.asarray(sigma, float)  # class i gets rank sigma[i]
    assert M.sequence_t5d(np.stack([f0, f1]), noise=False) == expected


def test_flip_probability_noise_and_temporal():
    a, b = 0, 1
    seq = np.array([[a, b, a, a]])
    assert M.flip_probability(seq, noise=True)[0] == pytest.approx(1 / 3)
    assert M.flip_probability(seq, noise=False)[0] == pytest.approx(2 / 3)


def test_flip_probability_difficulty_two_uses_both_offset_chains():
    # chains (0, 2, 4) and (1, 3, 5): pairs (0,2) (2,4) (1,3) (3,5)
    seq = np.array([[0, 0, 1, 0, 1, 1]])
    # (0,2): 0 vs 1 flip; (2,4): 1 vs 1 same; (1,3): 0 vs 0 same; (3,5): 0 vs 1 flip -> 2/4
    assert M.flip_probability(seq, noise=False, difficulty=2)[0] == pytest.approx(0.5)
    # noise ignores difficulty and compares with the first frame: flips at 2, 4, 5 -> 3/5
    assert M.flip_probability(seq, noise=True, difficulty=2)[0] == pytest.approx(0.6)


def test_mean_per_sequence_then_over_sequences():
    seqs = np.array([[0, 1, 1, 1], [0, 0, 0, 0]])
    fp = M.flip_probability(seqs, noise=False)
    assert fp.tolist() == pytest.approx([1 / 3, 0.0])


def test_ordinal_ranks_break_ties_by_index():
    assert M.ordinal_ranks(np.array([[1.0, 3.0, 3.0, 0.0]])).tolist() == [[3, 1, 2, 4]]


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
    monkeypatch.setattr(TC, "_official", lambda ctx, t: (outcomes, clean_err, 40, {}))
    cfg = SuiteConfig(name="t")
    cfg.corruptions.root, cfg.corruptions.corruptions = str(tmp_path), [*C_BENCHMARK, "speckle_noise"]
    res = TC.run(_ctx(tmp_path, cfg), cfg.corruptions, Normaliser("auto"))
    got = {(r["condition"], r["severity"], r["metric"]): r["value"] for r in res.rows}
    alex = reference.alexnet_c_errors()
    errors = {c: [M.error(outcomes[f"{c}|{s}"][0]) for s in range(1, 6)] for c in names}
    for c in names:
        for s in range(1, 6):
            correct, _, cal = outcomes[f"{c}|{s}"]
            assert got[(c, s, "top1_err")] == 100 * M.error(correct)
            assert got[(c, s, "ece")] == 100 * CAL.ece(cal["confidence"], correct)
            assert got[(c, s, "nll")] == np.mean(cal["nll"]) and got[(c, s, "brier")] == np.mean(cal["brier"])
        assert got[(c, None, "mean_err")] == 100 * M.mean_error(errors, [c])
        assert got[(c, None, "ce")] == 100 * M.ce(errors[c], alex[c])
        assert got[(c, None, "relative_ce")] == 100 * M.relative_ce(errors[c], clean_err, alex[c], ALEXNET_CLEAN_ERR)
    assert got[("clean", None, "top1_err")] == 100 * clean_err
    bench = [c for c in C_BENCHMARK if c != drop]
    assert got[("all", None, "mean_err")] == 100 * M.mean_error(errors, bench)
    part = "" if drop is None else "_partial"
    assert got[("all", None, "mce" + part)] == M.normalised_mean([M.ce(errors[c], alex[c]) for c in bench])
    assert got[("all", None, "relative_mce" + part)] == M.normalised_mean(
        [M.relative_ce(errors[c], clean_err, alex[c], ALEXNET_CLEAN_ERR) for c in bench])
    assert ("all", None, "mce" if drop else "mce_partial") not in got


@pytest.mark.parametrize("drop", [None, "rotate"])
def test_perturbation_rows_are_the_metric_functions(monkeypatch, tmp_path, drop):
    """-P: FP and uT5D per perturbation, FR and T5D against the AlexNet table, mean_fp / mean_t5d, mFR and mT5D (or
    their _partial without rotate)."""
    rng = np.random.default_rng(8)
    stats = {p: {"fp": rng.random(9) * 0.3, "t5d": rng.random(9) * 4} for p in (*P_TEST, "shear") if p != drop}
    monkeypatch.setattr(TP, "perturbation_stats", lambda ctx, t: (stats, {}))
    cfg = SuiteConfig(name="t")
    cfg.perturbations.root, cfg.perturbations.perturbations = str(tmp_path), list(stats)
    res = TP.run(_ctx(tmp_path, cfg), cfg.perturbations, Normaliser("auto"))
    got = {(r["condition"], r["metric"]): r["value"] for r in res.rows}
    alex = reference.alexnet_p()
    fp = {p: M.mean(z["fp"]) for p, z in stats.items()}
    ut5d = {p: M.mean(z["t5d"]) for p, z in stats.items()}
    for p in stats:
        assert got[(p, "fp")] == 100 * fp[p] and got[(p, "t5d")] == ut5d[p]
        assert got[(p, "fr")] == 100 * M.fr(fp[p], alex[p]["fp"])
        assert got[(p, "t5d_rel")] == 100 * M.t5d_rel(ut5d[p], alex[p]["t5d"])
    test = [p for p in P_TEST if p != drop]
    assert got[("all", "mean_fp")] == 100 * M.mean([fp[p] for p in test])
    assert got[("all", "mean_t5d")] == M.mean([ut5d[p] for p in test])
    part = "" if drop is None else "_partial"
    assert got[("all", "mfr" + part)] == M.normalised_mean([M.fr(fp[p], alex[p]["fp"]) for p in test])
    assert got[("all", "mt5d" + part)] == M.normalised_mean([M.t5d_rel(ut5d[p], alex[p]["t5d"]) for p in test])


def test_built_perturbation_sequences_are_scored_by_the_metric_functions(monkeypatch, tmp_path):
    """A built -P set's per-sequence flip rates and top-5 distances (what FP and uT5D average) are
    `flip_probability` and `sequence_t5d` of the model's logits on its frames, noise and temporal, difficulty 2."""
    from nsbench.bench import cache as K
    from test_bench import PixelOracle, encoded_image

    rng = np.random.default_rng(9)
    folder = tmp_path / "P-set"
    folder.mkdir()
    frames = {p: np.stack([np.stack([encoded_image(int(k), 16) for k in rng.integers(0, 4, 7)]) for _ in range(3)])
              for p in ("gaussian_noise", "rotate")}
    for p, seqs in frames.items():
        K.save_array(folder / f"{p}-d2.npy", seqs)
    manifest = {"n": 3, "seed": 0, "calibration": "cifar-10-p", "calibration_source": "test"}
    monkeypatch.setattr(perturbation_sets, "build_p", lambda *a, **k: (folder, manifest))
    cfg = SuiteConfig(name="t")
    cfg.perturbations.perturbations, cfg.perturbations.difficulty = list(frames), 2
    ctx = _ctx(tmp_path, cfg, PixelOracle([0, 1, 2, 3], n=6, decoy=None), classes="abcdef")
    ctx._source = "unread"  # build_p is replaced: the evaluation split is never opened
    stats, _ = TP.perturbation_stats(ctx, cfg.perturbations)
    res = TP.run(ctx, cfg.perturbations, Normaliser("none"))
    got = {(r["condition"], r["metric"]): r["value"] for r in res.rows}
    for p, seqs in frames.items():
        lg = ctx.logits(seqs.reshape(21, 16, 16, 3)).reshape(3, 7, -1)
        fp = M.flip_probability(lg.argmax(2), M.is_noise(p), 2)
        t5d = np.asarray([M.sequence_t5d(s, M.is_noise(p), 2) for s in lg])
        np.testing.assert_array_equal(stats[p]["fp"], fp)
        np.testing.assert_array_equal(stats[p]["t5d"], t5d)
        assert got[(p, "fp")] == 100 * M.mean(fp) and got[(p, "t5d")] == M.mean(t5d)
    assert 0 < got[("rotate", "fp")] < 100  # the frames do flip: the check above is not about constants
