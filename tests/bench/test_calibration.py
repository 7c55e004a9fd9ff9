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
    assert not full["correct"][0] and full["nll"][0] > 40


def test_huge_logits_stay_finite():
    z = calibration.per_image(np.array([[1e4, -1e4, 0.0]]), np.array([1]))
    assert np.isfinite(z["nll"]).all() and z["nll"][0] == pytest.approx(2e4)


def test_weighted_ece_equals_ece_at_uniform_weights_and_follows_resampling():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.2, 1.0, 200)
    correct = rng.uniform(size=200) < conf
    uniform = np.full((1, 200), 1 / 200)
    assert calibration.ece_weighted(uniform, conf, correct)[0] == pytest.approx(calibration.ece(conf, correct))
    w = np.zeros((1, 200))
    w[0, :100] = 1 / 100  # a resample that holds only the first half
    assert calibration.ece_weighted(w, conf, correct)[0] == pytest.approx(calibration.ece(conf[:100], correct[:100]))
