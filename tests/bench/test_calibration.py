"""ECE / NLL / Brier against hand computations, robustness_metrics' binning, label sets, and the bootstrap form."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nsbench import calibration


def test_ece_by_hand_with_two_images_sharing_a_bin():
    # bins of width 1/15: 0.91 and 0.93 share bin 13 (their gaps cancel in part), 0.3 is bin 4, 1.0 the last bin
    conf = np.array([0.91, 0.93, 0.3, 1.0])
    correct = np.array([1, 0, 1, 1], bool)
    # bin 13: |(1 - 0.91) + (0 - 0.93)| = 0.84; bin 4: |1 - 0.3| = 0.7; bin 14: 0 -> (0.84 + 0.7) / 4
    assert calibration.ece(conf, correct) == pytest.approx((0.84 + 0.7) / 4)
    # in separate bins the same gaps would add up: the binning is what is tested
    assert calibration.ece(np.array([0.91, 0.99, 0.3, 1.0]), correct) != pytest.approx((0.84 + 0.7) / 4)


def test_bins_are_tf_histogram_fixed_width_bins_over_0_1():
    got = calibration.bins(np.array([0.0, 0.0666, 0.0667, 0.5, 0.9999, 1.0]))
    assert got.tolist() == [0, 0, 1, 7, 14, 14]  # floor(15 p), p = 1 in the last bin


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_confidences_on_bin_edges_fall_in_the_bin_they_open(dtype):
    """tf.histogram_fixed_width_bins(p, [0, 1], nbins=15): floor(15 p) clipped to 0..14, so an edge k/15 opens bin
    k (bins are [k/15, (k+1)/15)), 0 is bin 0 and 1 joins bin 14. Checked on the edges themselves, as float64 and as
    float32 (float32(k/15) * 15 rounds to k in float64 and in float32 alike), where floor and ceil - 1, or a
    right-closed (k-1)/15 < p <= k/15 binning, part ways; ECE against a hand computation whose bins say so."""
    ks = np.arange(16)
    edges = (ks / 15).astype(dtype)
    assert calibration.bins(edges).tolist() == list(range(15)) + [14]
    # a worked example: each edge shares its bin with an image half a bin above it, not with the one below
    #   image  conf     correct  bin
    #   a      0        1        0
    #   c      0.5/15   0        0
    #   b      1/15     0        1
    #   f      6.5/15   1        6
    #   d      7/15     1        7
    #   e      7.5/15   0        7
    #   i      13.5/15  1        13
    #   g      14/15    0        14
    #   h      1        1        14
    conf = np.array([0.0, 0.5 / 15, 1 / 15, 6.5 / 15, 7 / 15, 7.5 / 15, 13.5 / 15, 14 / 15, 1.0]).astype(dtype)
    correct = np.array([1, 0, 0, 1, 1, 0, 1, 0, 1], bool)
    assert calibration.bins(conf).tolist() == [0, 0, 1, 6, 7, 7, 13, 14, 14]
    # per bin |sum(correct - conf)|: bin 0 |1 - 0.5/15| = 29/30, bin 1 1/15, bin 6 8.5/15, bin 7 |1 - 14.5/15| =
    # 0.5/15, bin 13 1.5/15, bin 14 |-14/15 + 0| = 14/15; their sum 29/30 + 25.5/15 = 80/30, over 9 images
    c = conf.astype(np.float64)  # the stored confidences (float32 moves each by < 1e-7)
    by_hand = (abs((1 - c[0]) + (0 - c[1])) + abs(0 - c[2]) + abs(1 - c[3]) + abs((1 - c[4]) + (0 - c[5]))
               + abs(1 - c[6]) + abs((0 - c[7]) + (1 - c[8]))) / 9
    assert by_hand == pytest.approx(8 / 27, abs=1e-6)
    assert calibration.ece(conf, correct) == pytest.approx(by_hand, rel=1e-12, abs=1e-15)
    # a right-closed binning puts b with a and c, d with f, g with i: another number, which the above rules out
    closed = (abs((1 - c[0]) + (0 - c[1]) + (0 - c[2])) + abs((1 - c[3]) + (1 - c[4])) + abs(0 - c[5])
              + abs((1 - c[6]) + (0 - c[7])) + abs(1 - c[8])) / 9
    assert abs(closed - by_hand) > 0.05
    # the bootstrap form bins the same way
    assert calibration.ece_weighted(np.full((1, 9), 1 / 9), conf, correct)[0] == pytest.approx(by_hand, rel=1e-12)


def test_nll_and_brier_by_hand():
    logits = np.array([[0.0, math.log(3.0)], [0.0, math.log(3.0)]])  # p = (0.25, 0.75)
    z = calibration.per_image(logits, np.array([1, 0]))
    assert z["confidence"] == pytest.approx([0.75, 0.75])
    assert z["correct"].tolist() == [True, False]
    assert z["nll"] == pytest.approx([-math.log(0.75), math.log(4.0)])
    assert z["brier"] == pytest.approx([0.25**2 + 0.25**2, 0.75**2 + 0.75**2])
    s = calibration.summary(z)
    assert s["nll"] == pytest.approx((-math.log(0.75) + math.log(4.0)) / 2)
    assert s["brier"] == pytest.approx((0.125 + 1.125) / 2)
    assert s["ece"] == pytest.approx(100 * abs((1 - 0.75) + (0 - 0.75)) / 2)  # both in bin 11


def test_a_label_set_renormalises_over_its_classes():
    logits = np.array([[0.0, math.log(3.0), 50.0]])  # class 2 is outside the set [0, 1]
    z = calibration.per_image(logits, np.array([1]), mask=np.array([0, 1]))
    assert z["confidence"] == pytest.approx([0.75]) and z["nll"] == pytest.approx([-math.log(0.75)])
    full = calibration.per_image(logits, np.array([1]))
    # over all three classes p(0) and p(1) are below 1e-7: clipped (robustness_metrics' nll through Keras)
    assert not full["correct"][0] and full["nll"][0] == pytest.approx(math.log(1 + 1e-7) - math.log(1e-7))


def test_huge_logits_stay_finite():
    z = calibration.per_image(np.array([[1e4, -1e4, 0.0]]), np.array([1]))
    # p = (1, 0, 0) clips to (1 - 1e-7, 1e-7, 1e-7), which sums to 1 + 1e-7
    assert np.isfinite(z["nll"]).all() and z["nll"][0] == pytest.approx(math.log(1 + 1e-7) - math.log(1e-7))


def _keras_nll(p: list[float], y: int) -> float:
    """robustness_metrics' nll by hand: Keras clips p to [1e-7, 1 - 1e-7], takes the log and applies
    sparse_softmax_cross_entropy_with_logits, -log(softmax(log c)[y]) = -log(c_y / sum_k c_k)."""
    c = [min(max(x, 1e-7), 1 - 1e-7) for x in p]
    return -math.log(c[y] / sum(c))


def test_a_confident_wrong_prediction_costs_what_keras_clipping_allows():
    z = calibration.per_image(np.array([[100.0, 0.0]]), np.array([1]))
    assert z["nll"][0] == pytest.approx(16.11809565095832, abs=1e-9)  # -log(1e-7): the clip, not 100
    assert z["nll"][0] == pytest.approx(_keras_nll([1.0, math.exp(-100.0)], 1), abs=1e-9)
    # a confident right answer over 1000 classes costs log((1 + 998e-7) / (1 - 1e-7)): its 999 tails clip to 1e-7
    many = np.zeros((1, 1000))
    many[0, 0] = 100.0
    got = calibration.per_image(many, np.array([0]))["nll"][0]
    assert got == pytest.approx(_keras_nll([1.0] + [math.exp(-100.0)] * 999, 0), rel=1e-9) and 9.9e-5 < got < 1.01e-4


def test_an_ordinary_prediction_keeps_minus_log_p():
    logits = np.log(np.array([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]]))  # every probability inside [1e-7, 1 - 1e-7]
    z = calibration.per_image(logits, np.array([2, 1]))
    assert z["nll"] == pytest.approx([-math.log(0.3), -math.log(0.1)], rel=1e-12)
    assert z["nll"] == pytest.approx([_keras_nll([0.2, 0.5, 0.3], 2), _keras_nll([0.6, 0.1, 0.3], 1)], rel=1e-12)


def test_weighted_ece_equals_ece_at_uniform_weights_and_follows_resampling():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.2, 1.0, 200)
    correct = rng.uniform(size=200) < conf
    uniform = np.full((1, 200), 1 / 200)
    assert calibration.ece_weighted(uniform, conf, correct)[0] == pytest.approx(calibration.ece(conf, correct))
    w = np.zeros((1, 200))
    w[0, :100] = 1 / 100  # a resample that holds only the first half
    assert calibration.ece_weighted(w, conf, correct)[0] == pytest.approx(calibration.ece(conf[:100], correct[:100]))


def test_a_cached_cell_with_nll_of_another_definition_is_scored_again(tmp_path):
    from helpers import PixelOracle, ctx_for

    ctx = ctx_for(tmp_path, PixelOracle([0]))
    calls = []

    def compute():
        calls.append(1)
        return {"correct": np.array([False]), "nll": np.array([16.1])}

    ctx.cell("t", "k", compute)
    again = ctx.cell("t", "k", compute)
    assert len(calls) == 1 and set(again) == {"correct", "nll"}  # reused; the definition tag is not handed back
    path = next((tmp_path / "cache" / "cells").rglob("*.npz"))
    np.savez(path, correct=np.array([False]), nll=np.array([100.0]))  # written before NLL was clipped: no tag
    assert ctx.cell("t", "k", compute)["nll"][0] == 16.1 and len(calls) == 2
    assert ctx.cell("t", "k", compute)["nll"][0] == 16.1 and len(calls) == 2  # rewritten with the tag: reused


# ---- temperature scaling (Guo et al. 2017, section 4.2): T minimising NLL on held-out images

def _t_of_one_hot_logits(a: float, accuracy: float, n_classes: int) -> float:
    """Worked example: logits a on the predicted class, 0 elsewhere. NLL = -q log p - (1 - q) log((1 - p) / (C - 1))
    with p = e^(a/T) / (e^(a/T) + C - 1) is least at p = q (accuracy), so a / T = log(q (C - 1) / (1 - q))."""
    return a / math.log(accuracy * (n_classes - 1) / (1 - accuracy))


def test_temperature_of_a_worked_example():
    labels = np.array([0, 1, 2, 3, 0, 1, 2, 3, 0, 1])
    pred = labels.copy()
    pred[[1, 4, 8]] = (pred[[1, 4, 8]] + 1) % 4  # 7 of 10 right
    logits = 5.0 * np.eye(4)[pred]
    assert calibration.fit_temperature(logits, labels) == pytest.approx(_t_of_one_hot_logits(5.0, 0.7, 4), rel=1e-9)
    # the same logits at 9 of 10 right call for a colder softmax (lower T)
    pred[[1, 4]] = labels[[1, 4]]
    assert calibration.fit_temperature(5.0 * np.eye(4)[pred], labels) == pytest.approx(
        _t_of_one_hot_logits(5.0, 0.9, 4), rel=1e-9)


def test_temperature_minimises_nll_against_scipy():
    from scipy.optimize import minimize_scalar
    from scipy.special import log_softmax

    rng = np.random.default_rng(3)
    logits = rng.normal(0, 3, (300, 7))
    labels = np.where(rng.random(300) < 0.6, logits.argmax(1), rng.integers(0, 7, 300))

    def nll(t):
        return -log_softmax(logits / t, axis=1)[np.arange(300), labels].mean()

    best = minimize_scalar(nll, bounds=(0.05, 20), method="bounded", options={"xatol": 1e-10}).x
    t = calibration.fit_temperature(logits, labels)
    assert t == pytest.approx(best, rel=1e-5)
    assert nll(t) <= min(nll(x) for x in np.linspace(0.05, 20, 2000)) + 1e-12


def test_temperature_stops_at_its_search_bounds():
    labels = np.array([0, 1, 2])
    right, wrong = 4.0 * np.eye(3)[labels], 4.0 * np.eye(3)[(labels + 1) % 3]
    assert calibration.fit_temperature(right, labels) == calibration.T_RANGE[0]  # sharper is always better
    assert calibration.fit_temperature(wrong, labels) == calibration.T_RANGE[1]  # flatter is always better
    assert math.isnan(calibration.fit_temperature(np.zeros((0, 3)), np.zeros(0)))


def test_cross_fit_folds_deal_a_seeded_permutation():
    fold = calibration.cross_fit_folds(11, seed=5)
    order = np.random.default_rng(5).permutation(11)
    assert [sorted(order[k::2].tolist()) for k in range(2)] == [np.flatnonzero(fold == k).tolist() for k in range(2)]
    assert (calibration.cross_fit_folds(11, seed=5) == fold).all() and not (calibration.cross_fit_folds(11, 6) == fold).all()


class _QuadrantModel(torch.nn.Module):
    """Logits A on the brightest quadrant's class (the tiny folder's images light quadrant c for class c), moved one
    class on where the top-left pixel's red level is below 12: wrong on about a fifth of the images."""

    def forward(self, x):
        h = x.shape[-1] // 2
        q = torch.stack([x[:, :, :h, :h].mean((1, 2, 3)), x[:, :, :h, h:].mean((1, 2, 3)),
                         x[:, :, h:, :h].mean((1, 2, 3)), x[:, :, h:, h:].mean((1, 2, 3))], 1)
        pred = (q.argmax(1) + (x[:, 0, 0, 0] * 255 < 12).long()) % 4
        return A * torch.nn.functional.one_hot(pred, 4).float()


A = 6.0


def _quadrant_pred(path) -> int:
    from PIL import Image

    x = np.asarray(Image.open(path).convert("RGB"), np.float64) / 255
    h = x.shape[0] // 2
    q = [x[:h, :h].mean(), x[:h, h:].mean(), x[h:, :h].mean(), x[h:, h:].mean()]
    return (int(np.argmax(q)) + int(x[0, 0, 0] * 255 < 12)) % 4


def _temperature_ctx(tmp_path, temperature: str):
    from helpers import write_folder
    from nsbench.bench.context import EvalContext
    from nsbench.bench.eval_model import EvalModel
    from nsbench.bench.suite import SuiteConfig

    root = write_folder(tmp_path / "data", 4, {"train": 25, "test": 15}, seed=4)
    cfg = SuiteConfig(name="t")
    cfg.data.source, cfg.data.split, cfg.data.crop_pct = f"folder:{root}", "test", 1.0
    cfg.clean.temperature = temperature
    em = EvalModel(_QuadrantModel(), "quad", "1" * 64, [f"class{c}" for c in range(4)], 32, {})
    return EvalContext(em, cfg, tmp_path / "cache", torch.device("cpu"), workers=0), root


def _by_hand(root, split: str):
    files = sorted((root / split).glob("class*/*.png"))
    labels = np.array([int(f.parent.name[5:]) for f in files])
    return np.array([_quadrant_pred(f) for f in files]) == labels


def _scaled_by_hand(correct: np.ndarray, t: np.ndarray) -> dict:
    """ECE (%), NLL and Brier of one-hot logits A divided by T per image, written out."""
    e = np.exp(A / t)
    top, other = e / (e + 3), 1 / (e + 3)
    p_true = np.where(correct, top, other)
    brier = np.where(correct, (1 - top) ** 2 + 3 * other**2, top**2 + (1 - other) ** 2 + 2 * other**2)
    return {"ece": 100 * calibration.ece(top, correct), "nll": -np.log(p_true).mean(), "brier": brier.mean()}


@pytest.mark.parametrize("mode", ["train", "cross_fit"])
def test_clean_task_scales_by_a_temperature_fitted_on_held_out_images(tmp_path, mode):
    from nsbench.bench.normaliser import Normaliser
    from nsbench.bench.tasks import clean

    ctx, root = _temperature_ctx(tmp_path, mode)
    res = clean.run(ctx, ctx.suite.clean, Normaliser("none"))
    got = {(r["condition"], r["metric"]): r for r in res.rows}
    correct = _by_hand(root, "test")
    assert 0.5 < correct.mean() < 0.95  # the model errs: a temperature is worth fitting
    assert got[("clean", "top1_acc")]["value"] == pytest.approx(100 * correct.mean())
    if mode == "train":
        t = np.full(len(correct), _t_of_one_hot_logits(A, _by_hand(root, "train").mean(), 4))
        assert "100 images of split 'train'" in got[("temperature_scaled", "temperature")]["note"]
    else:  # each half of the scored images by the T of the other half
        order = np.random.default_rng(0).permutation(len(correct))
        halves = [np.sort(order[k::2]) for k in range(2)]
        t = np.empty(len(correct))
        t[halves[0]] = _t_of_one_hot_logits(A, correct[halves[1]].mean(), 4)
        t[halves[1]] = _t_of_one_hot_logits(A, correct[halves[0]].mean(), 4)
        assert "2-fold cross-fitting" in got[("temperature_scaled", "temperature")]["note"]
    assert got[("temperature_scaled", "temperature")]["value"] == pytest.approx(np.unique(t).mean(), rel=1e-6)
    want = _scaled_by_hand(correct, t)
    for metric in ("ece", "nll", "brier"):
        assert got[("temperature_scaled", metric)]["value"] == pytest.approx(want[metric], rel=1e-6), metric
        assert got[("temperature_scaled", metric)]["n"] == len(correct)
    # before scaling the confidence of every image is e^A / (e^A + 3)
    assert got[("clean", "ece")]["value"] == pytest.approx(_scaled_by_hand(correct, np.ones(len(correct)))["ece"])
    per = res.per_image[1]
    assert set(per.condition) == {"temperature_scaled"} and (per.correct.to_numpy() == correct).all()
    assert res.sets["clean"]["temperature"]["fitted_on"] == mode


@pytest.mark.parametrize("split, says", [("test", "is the evaluation split"), ("nosuch", "clean.temperature=nosuch")])
def test_a_temperature_split_that_is_not_held_out_is_refused_before_scoring(tmp_path, split, says):
    from nsbench.bench.normaliser import Normaliser
    from nsbench.bench.tasks import clean
    from nsbench.utils import NsbenchError

    ctx, _ = _temperature_ctx(tmp_path, split)
    with pytest.raises(NsbenchError, match=says):
        clean.run(ctx, ctx.suite.clean, Normaliser("none"))
    assert not (tmp_path / "cache" / "cells").exists()


def test_no_temperature_rows_when_switched_off(tmp_path):
    from nsbench.bench.normaliser import Normaliser
    from nsbench.bench.tasks import clean

    ctx, _ = _temperature_ctx(tmp_path, "none")
    res = clean.run(ctx, ctx.suite.clean, Normaliser("none"))
    assert {r["condition"] for r in res.rows} & {"temperature_scaled"} == set() and len(res.per_image) == 1


def test_empty_and_one_image_inputs():
    z = calibration.per_image(np.zeros((0, 5)), np.zeros(0, np.int64))
    assert {k: (v.shape, v.dtype.kind) for k, v in z.items()} == {
        "pred": ((0,), "i"), "correct": ((0,), "b"), "confidence": ((0,), "f"), "nll": ((0,), "f"), "brier": ((0,), "f")}
    assert math.isnan(calibration.ece([], []))
    # one image: |correct - confidence| of its one bin
    assert calibration.ece([0.8], [True]) == pytest.approx(0.2) and calibration.ece([0.8], [False]) == pytest.approx(0.8)


def test_temperature_is_searched_in_0_01_to_100():
    """T is searched in [0.01, 100] (docs/evaluation.md): an optimum inside is found, one outside stops at the bound."""
    labels = np.array([0, 1, 2, 3, 0, 1, 2, 3, 0, 1])
    pred = labels.copy()
    pred[[1, 4, 8]] = (pred[[1, 4, 8]] + 1) % 4  # 7 of 10 right: T = a / log(7)
    for t in (70.0, 0.02):
        logits = t * math.log(7) * np.eye(4)[pred]
        assert calibration.fit_temperature(logits, labels) == pytest.approx(t, rel=1e-9)
    assert calibration.fit_temperature(0.007 * math.log(7) * np.eye(4)[pred], labels) == 0.01  # optimum 0.007
    assert calibration.fit_temperature(150 * math.log(7) * np.eye(4)[pred], labels) == 100.0  # optimum 150
    assert calibration.fit_temperature(np.eye(4)[(labels + 1) % 4], labels) == 100.0  # all wrong, small logits
