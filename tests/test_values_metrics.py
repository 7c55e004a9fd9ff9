"""Value tests for the robustness metrics: every number checked against a hand computation or against the
reference implementation written out here (hendrycks/robustness ImageNet-P/test.py, commit e0377d4: `flip_prob`,
`ranking_dist`, `dist`; ImageNet-C: CE as a ratio of summed errors, Hendrycks & Dietterich, ICLR 2019)."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import rankdata

from nsbench import reference
from nsbench.bench import metrics as M
from nsbench.bench.context import EvalContext
from nsbench.bench.normaliser import Normaliser
from nsbench.bench.suite import SuiteConfig
from nsbench.bench.tasks import corruptions as TC
from nsbench.bench.tasks import perturbations as TP

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
    assert M.ce([0.2, 0.3, 0.4, 0.5, 0.6], [0.4, 0.5, 0.6, 0.7, 0.8]) == pytest.approx(2.0 / 3.0, abs=1e-12)
    assert M.ce([0.5], [0.25]) == pytest.approx(2.0, abs=1e-12)
    assert np.isnan(M.ce([0.1, 0.2], [0.0, 0.0]))  # a normaliser with no error: undefined
    with pytest.raises(ValueError, match="2 severities against 3"):
        M.ce([0.1, 0.2], [0.1, 0.2, 0.3])


def test_relative_ce_with_different_clean_errors():
    # model: clean 0.1, errors .3 .4 .5 -> degradations .2 .3 .4 (sum .9)
    # normaliser: clean 0.2, errors .5 .6 .7 -> degradations .3 .4 .5 (sum 1.2)
    got = M.relative_ce([0.3, 0.4, 0.5], 0.1, [0.5, 0.6, 0.7], 0.2)
    assert got == pytest.approx(0.9 / 1.2, abs=1e-12)
    # swapping the clean errors gives a different number (0.6 / 1.5), so the assertion above pins which is which
    assert 0.9 / 1.2 != pytest.approx(0.6 / 1.5)
    # the same errors with no clean error at all are the plain CE (1.2 / 1.8)
    assert M.relative_ce([0.3, 0.4, 0.5], 0.0, [0.5, 0.6, 0.7], 0.0) == pytest.approx(1.2 / 1.8, abs=1e-12)
    # the normaliser's errors summing to its clean error: undefined
    assert np.isnan(M.relative_ce([0.3, 0.4], 0.1, [0.2, 0.2], 0.2))
    # a model whose corrupted error is below its clean error has a negative relative CE, kept as such
    assert M.relative_ce([0.05, 0.1], 0.1, [0.5, 0.6], 0.2) == pytest.approx(-0.05 / 0.7, abs=1e-12)


def test_mce_and_relative_mce_by_hand_over_the_corruptions_present(tmp_path):
    errors = {"fog": [0.2, 0.4], "snow": [0.3, 0.3], "frost": [0.6, 0.6], "extra": [0.9, 0.9]}
    ref = {"fog": [0.4, 0.4], "snow": [0.2, 0.4], "frost": [0.8, 0.4], "blur": [0.5, 0.5]}
    names = ["fog", "snow", "frost"]  # in both: blur has no model errors, extra has no normaliser
    ces = [0.6 / 0.8, 0.6 / 0.6, 1.2 / 1.2]
    assert M.normalised_mean([M.ce(errors[c], ref[c]) for c in names]) == pytest.approx(100 * np.mean(ces), abs=1e-10)
    rel = [(0.6 - 2 * 0.1) / (0.8 - 2 * 0.15), (0.6 - 0.2) / (0.6 - 0.3), (1.2 - 0.2) / (1.2 - 0.3)]
    assert M.normalised_mean([M.relative_ce(errors[c], 0.1, ref[c], 0.15) for c in names]) == pytest.approx(
        100 * np.mean(rel), abs=1e-10)
    # the -C task takes the same corruptions (those in both) for its partial means
    cfg = SuiteConfig(name="t")
    cfg.corruptions.severities = [1, 2]
    ctx = _ctx(tmp_path, cfg)
    rows = TC._normalised_rows(ctx, cfg.corruptions, errors, 0.1, (ref, 0.15), "ref", 7)
    got = {r["metric"]: r for r in rows if r["condition"] == "all"}
    assert got["mce_partial"]["value"] == pytest.approx(100 * np.mean(ces), abs=1e-10)
    assert got["relative_mce_partial"]["value"] == pytest.approx(100 * np.mean(rel), abs=1e-10)
    assert got["mce_partial"]["note"].startswith("partial: 3 of 15 benchmark corruptions; missing: gaussian_noise")
    # none of them in both: no mean at all (undefined, never NaN)
    rows = TC._normalised_rows(ctx, cfg.corruptions, {"extra": [0.9, 0.9]}, 0.1, (ref, 0.15), "ref", 7)
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
    rows = TC._normalised_rows(_ctx(tmp_path, cfg), cfg.corruptions, model, 0.2,
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
    rows = TC._normalised_rows(_ctx(tmp_path, cfg), cfg.corruptions, errors, 0.1, ref, "ref", 7)
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
    assert M.top5_distance([7, 1, 2, 3, 4, 5, 6]) == 9
    assert M.top5_distance([7, 1, 2, 3, 4, 5, 6]) == ref_dist(np.array([7, 1, 2, 3, 4, 5, 6]))
    assert M.top5_distance([1, 2, 3, 4, 900]) == 1 == ref_dist(np.array([1, 2, 3, 4, 900]))


@pytest.mark.parametrize("noise,difficulty", [(True, 1), (False, 1), (False, 2), (False, 3), (True, 3)])
def test_flip_probability_equals_the_reference_code(noise, difficulty):
    rng = np.random.default_rng(difficulty + 10 * noise)
    preds = rng.integers(0, 3, (6, 13))
    got = M.flip_probability(preds, noise, difficulty)
    assert got.shape == (6,)
    assert float(got.mean()) == pytest.approx(ref_flip_prob(preds, noise, difficulty), abs=1e-12)
    for k in range(6):  # and sequence by sequence
        assert got[k] == pytest.approx(ref_flip_prob(preds[k:k + 1], noise, difficulty), abs=1e-12)


def test_flip_probability_by_hand_with_three_chains():
    seq = np.array([[0, 1, 2, 0, 1, 0, 0]])
    # difficulty 3: chains (0, 3, 6), (1, 4), (2, 5): pairs (0,3) same, (3,6) same, (1,4) same, (2,5) flip -> 1/4
    assert M.flip_probability(seq, noise=False, difficulty=3)[0] == pytest.approx(0.25)
    # noise: every frame against frame 0: flips at 1, 2, 4 -> 3/6
    assert M.flip_probability(seq, noise=True, difficulty=3)[0] == pytest.approx(0.5)


@pytest.mark.parametrize("noise,difficulty,classes", [(True, 1, 12), (False, 1, 12), (False, 2, 12), (False, 1, 7)])
def test_sequence_t5d_equals_the_reference_code(noise, difficulty, classes):
    rng = np.random.default_rng(classes + difficulty)
    # few distinct values: ties, broken by class index as rankdata(method='ordinal') does
    logits = rng.integers(0, 4, (3, 9, classes)).astype(float)
    got = [M.sequence_t5d(s, noise, difficulty) for s in logits]
    ranks = np.stack([ref_ranks(s) for s in logits])
    assert np.mean(got) == pytest.approx(ref_ranking_dist(ranks, noise, difficulty), abs=1e-12)
    for s in logits:
        np.testing.assert_array_equal(M.ordinal_ranks(s), ref_ranks(s))


def test_sequence_t5d_anchors_on_the_first_frame_for_noise():
    # class order per frame: f0 = 0,1,2,3,4,5; f1 swaps 0 and 1; f2 equals f1
    f0 = -np.arange(6, dtype=float)
    f1 = f0[[1, 0, 2, 3, 4, 5]]
    lg = np.stack([f0, f1, f1])
    assert M.sequence_t5d(lg, noise=True) == pytest.approx(2.0)  # (f0,f1) = 2, (f0,f2) = 2
    assert M.sequence_t5d(lg, noise=False) == pytest.approx(1.0)  # (f0,f1) = 2, (f1,f2) = 0
    assert M.is_noise("gaussian_noise") and M.is_noise("speckle_noise") and not M.is_noise("rotate")


def test_ordinal_ranks_by_hand():
    assert M.ordinal_ranks(np.array([[0.5, 2.0, -1.0], [1.0, 1.0, 1.0]])).tolist() == [[2, 1, 3], [1, 2, 3]]


def _ctx(tmp_path, cfg):
    from test_bench import PixelOracle, oracle_model

    return EvalContext(oracle_model(PixelOracle([0, 1]), ["a", "b"]), cfg, tmp_path / "cache", torch.device("cpu"))


def test_fr_mfr_t5d_mt5d_rows_against_the_alexnet_table(monkeypatch, tmp_path):
    """FP, uT5D, FR = FP / FP(AlexNet), T5D = uT5D / uT5D(AlexNet) and their means over the 10 test perturbations,
    against the published table read from the CSV here (appendix E)."""
    with open(REF_DATA / "imagenet_p_alexnet.csv") as f:
        alex = {r["perturbation"]: (float(r["flip_probability"]), float(r["top5_distance"])) for r in csv.DictReader(f)}
    test = [p for p in alex if p in reference.P_TEST]
    assert len(test) == 10
    rng = np.random.default_rng(0)
    stats = {p: {"fp": rng.random(4) * 0.2, "t5d": rng.random(4) * 3} for p in test + ["shear"]}
    monkeypatch.setattr(TP, "perturbation_stats", lambda ctx, t: (stats, {}))
    cfg = SuiteConfig(name="t")
    cfg.perturbations.root, cfg.perturbations.perturbations = str(tmp_path), list(stats)
    res = TP.run(_ctx(tmp_path, cfg), cfg.perturbations, Normaliser("auto"))
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
