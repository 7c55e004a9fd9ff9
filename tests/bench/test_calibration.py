"""ECE / NLL / Brier against hand computations, robustness_metrics' binning, label sets, and the bootstrap form."""
from __future__ import annotations

import math

import numpy as np
import pytest

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
