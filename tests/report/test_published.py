"""report/published.py by value: the rounding of a published number (half its last printed digit); the test of
"measured = published": the exact binomial p written out for a top-1 accuracy with its image count, the normal p
beyond the rounding otherwise; the verdicts of `decide` at each boundary of the rounding-widened interval and of
Holm's alpha; the causes read from the metadata; the table's text to two decimals; the rows for the shipped
ResNet-50 numbers. Inputs are fabricated results, meta and published rows."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nsbench import schema
from nsbench.report import published
from nsbench.report.load import EvalResult
from nsbench.report.shifts import Measured


def test_rounding_is_half_the_last_printed_digit():
    assert published._rounding("76.13") == pytest.approx(0.005)
    assert published._rounding("77") == 0.5


def binomial_p(k: int, n: int, rate: float) -> float:
    """Exact two-sided binomial p: the probability of every count no more likely than k."""
    pmf = [math.comb(n, j) * rate ** j * (1 - rate) ** (n - j) for j in range(n + 1)]
    return min(1.0, sum(q for q in pmf if q <= pmf[k] * (1 + 1e-7)))


def test_a_top1_accuracy_is_tested_exactly_against_the_nearest_published_rate():
    # 76% of 200: 152 right; published 80.13 +- 0.005: the nearest rate within the rounding is 0.80125
    p, test, se = published._test(Measured(76.0, n=200), 80.13, 0.005, schema.TOP1_ACC, 9.9)
    assert p == pytest.approx(binomial_p(152, 200, 0.80125), rel=1e-6)
    assert test.startswith("exact binomial (152 of 200 right against")
    assert se == pytest.approx(100 * math.sqrt(0.80125 * 0.19875 / 200))
    one = published._test(Measured(100.0, n=1), 99.5, 0.05, schema.TOP1_ACC, 0.3)  # one image is a count too
    assert one[1].startswith("exact binomial (1 of 1 right")


def test_other_numbers_take_the_normal_p_beyond_the_rounding():
    # mCE 76.5 measured, 76.9 published (+- 0.05): 0.35 beyond the rounding, standard error 0.51
    p, test, se = published._test(Measured(76.5, 75.5, 77.5, n=5000), 76.9, 0.05, "mce", 0.51)
    assert p == pytest.approx(math.erfc(0.35 / 0.51 / math.sqrt(2)), rel=1e-9) and se == 0.51
    assert test == "normal from the measured 95% interval, beyond the published number's rounding"
    # a top-1 accuracy without an image count, too
    assert published._test(Measured(76.5), 76.9, 0.05, schema.TOP1_ACC, 0.51)[0] == pytest.approx(p, rel=1e-9)
    nan = published._test(Measured(76.5), 76.9, 0.05, "mce", 0.0)  # no spread: no test
    assert math.isnan(nan[0]) and nan[1] == ""


PUB = {"model": "R", "set": schema.CLEAN, "metric": schema.TOP1_ACC, "img_size": 224, "crop_pct": 0.875,
       "interpolation": "bilinear", "label_set": "1000", "n_images": 50000, "normaliser": "", "note": ""}


def evaluation(meta: dict | None = None, rows: list[dict] | None = None) -> EvalResult:
    df = schema.frame([schema.row(model="m", suite="t", **{"n": 10, **r}) for r in rows or []]).astype({"value": float})
    return EvalResult("m", Path("m"), df, meta or {}, None)


def test_causes_name_each_protocol_difference_in_the_metadata():
    pre = {"image_size": 224, "crop_pct": 0.875, "interpolation": "bilinear"}
    same = evaluation({"preprocessing": pre})
    assert published.causes(same, PUB, Measured(76.0, n=50000)) == []
    assert published.causes(same, PUB, Measured(76.0, n=0)) == []  # no image count: nothing to compare
    other = evaluation({"preprocessing": {"image_size": 256, "crop_pct": 0.9, "interpolation": "bicubic"},
                        "precision": "fp16"})
    assert published.causes(other, PUB, Measured(76.0, n=7500)) == [
        "preprocessing: measured at 256 px, published at 224 px",
        "preprocessing: crop_pct 0.9 measured, 0.875 published",
        "preprocessing: bicubic resizing measured, bilinear published",
        "images: 7,500 measured of the 50,000 in the released set",
        "precision: fp16 measured"]
    v2 = {**PUB, "set": "imagenet_v2:matched-frequency"}
    assert published.causes(other, v2, Measured(76.0))[1:3] == [
        "preprocessing: crop_pct 0.9 measured, 0.875 published",
        "preprocessing: bicubic resizing measured, bilinear published"]


def test_causes_of_the_label_set_and_the_normaliser():
    a = {**PUB, "set": "imagenet_a", "label_set": "1000"}
    assert published.causes(evaluation(), a, Measured(3.0)) == [
        "label set: measured through the 200-class subset, published 1000-way"]
    assert published.causes(evaluation(), {**a, "label_set": "200"}, Measured(3.0)) == []
    mce = {**PUB, "set": "imagenet_c", "metric": "mce", "normaliser": "AlexNet (published)"}
    c = {"task": schema.CORRUPTIONS, "condition": schema.ALL}
    mean_err = {**c, "metric": schema.MEAN_ERR, "value": 40.0}  # sorts after mce; no normaliser
    by = lambda norm: evaluation(rows=[{**c, "metric": "mce", "value": 70.0, "normaliser": norm}, mean_err])
    assert published.causes(by("resnet50"), mce, Measured(70.0)) == [
        "normaliser: resnet50 measured, AlexNet (published) published"]
    assert published.causes(by(None), mce, Measured(70.0)) == [
        "normaliser: none measured, AlexNet (published) published"]
    assert published.causes(by("AlexNet (published)"), mce, Measured(70.0)) == []
    assert published.causes(by("resnet50"), {**mce, "normaliser": ""}, Measured(70.0)) == []


def _row(low: float, high: float, tol: float = 0.5, p_adj: float = 0.01, mde: float = np.nan,
         usual: float = 1.0) -> dict:
    row = dict.fromkeys(published.COLUMNS, np.nan)
    row.update(diff_low=low, diff_high=high, tolerance=tol, p_adjusted=p_adj, mde=mde, usual_effect=usual,
               outside=False, causes="", verdict="", _pub=PUB, _eval=evaluation(), _m=Measured(76.0))
    return row


@pytest.mark.parametrize("row,verdict,outside", [
    (_row(1.0, 2.0), "outside the interval", True),  # 1.0 - 0.5 > 0
    (_row(-2.0, -1.0), "outside the interval", True),  # -1.0 + 0.5 < 0
    (_row(1.0, 2.0, p_adj=np.nan), "outside the interval", True),  # no adjusted p: the interval decides
    # alpha = 1 - 0.95 (stats.ALPHA: 1 - LEVEL); an adjusted p equal to it is not below it
    (_row(1.0, 2.0, p_adj=1 - 0.95), "outside the interval, not after Holm adjustment", False),
    (_row(0.5, 2.0), "within", False),  # exactly at the rounding: not beyond
    (_row(-2.0, -0.5), "within", False),
    (_row(-0.3, 0.3), "within", False),
    (_row(-0.3, 0.3, mde=1.0, usual=1.0), "within", False),  # an MDE equal to the usual effect is powered
    (_row(-0.3, 0.3, mde=3.0, usual=1.0), "underpowered (MDE 3.00)", False),
    (_row(np.nan, 0.3), "no interval", False),
])
def test_decide_at_each_boundary(row, verdict, outside):
    out = published.decide(pd.DataFrame([row], columns=published.COLUMNS + ["_pub", "_eval", "_m"])).iloc[0]
    assert (out.verdict, bool(out.outside)) == (verdict, outside)
    if verdict.startswith("outside"):
        assert out.causes.startswith("none of preprocessing, normaliser, label set, image count or precision differs")


def test_table_text_to_two_decimals():
    row = {**dict.fromkeys(published.COLUMNS, np.nan), "model": "m", "published_model": "R", "set": "clean",
           "metric": schema.TOP1_ACC, "published": 76.156, "measured": 75.0, "measured_low": 74.25,
           "measured_high": 75.75, "diff": -1.156, "diff_low": -1.906, "diff_high": -0.406, "verdict": "within",
           "outside": False, "causes": "", "source": "s", "note": ""}
    t = published.table(pd.DataFrame([row, {**row, "metric": "mce"}]))
    assert [x["metric"] for x in t] == ["top-1 %", "mCE"]
    assert (t[0]["published"], t[0]["measured"], t[0]["ci"], t[0]["diff"], t[0]["diff_ci"]) == (
        "76.16", "75.00", "[74.25, 75.75]", "-1.16", "[-1.91, -0.41]")


def test_the_shipped_resnet50_numbers_beside_what_was_measured():
    rows = [{"task": schema.CLEAN, "condition": schema.CLEAN_CONDITION, "metric": schema.TOP1_ACC, "value": 75.0,
             "n": 0}]
    r = evaluation({"model": {"arch": "timm:resnet50.tv_in1k"}}, rows)
    head = pd.DataFrame([{"model": "m", "measure": "mce", "value": 78.0, "ci_low": 77.0, "ci_high": 79.0, "n": 500},
                         {"model": "other", "measure": "mce", "value": 50.0, "ci_low": 49.0, "ci_high": 51.0, "n": 9}])
    f = published.published_vs_measured([r], head)
    clean, c = f[f.set == "clean"].iloc[0], f[f.set == "imagenet_c"].iloc[0]
    assert clean.published == 76.156 and clean.measured == 75.0 and clean.tolerance == pytest.approx(0.0005)
    # the ImageNet-C paper's ResNet-50 mCE (76.7) against the head's 78.0 [77.0, 79.0]
    assert (c.measured, c["diff"], c.diff_low, c.diff_high) == pytest.approx((78.0, 1.3, 0.3, 2.3))
    assert c.resamples == 0 and not c.outside and c.verdict == ""
    assert bool(clean.higher_is_better) and not bool(c.higher_is_better)  # each metric's own direction (mCE: lower)
    assert c.test == "normal from the measured 95% interval, beyond the published number's rounding"
