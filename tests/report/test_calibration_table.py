"""report/calibration_table.py by value. The tests: each interval on seed 4242 and each paired difference on seed 4243
(SEED + 1) against the percentile bootstrap written out over resampled image indices (NLL as a mean, ECE of one
confidence bin as |mean(correct - confidence)|, both hand-checked at the saved values); an attack's cell paired at
its own eps only; no interval where the per-image values are missing, duplicated or do not give back the saved
value; no difference for the baseline itself or against a baseline without per-image values. The table: one fold
per task in the page's order with its label and each row's set, cells to their digits, the fold summaries counted
by hand. Inputs are fabricated results rows, per-image frames and calibration frames."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import percentile, resample_index
from nsbench import schema
from nsbench.report import calibration_table as ct
from nsbench.report.load import EvalResult

FINGERPRINT = {"dataset": {"fingerprint": "f00d", "split": "val"}}
# 8 images per model; every confidence of a model in one ECE bin (base: 13/15 < c < 14/15, new: 12/15 < c < 13/15), so
# ECE = |sum(correct - confidence)| / n: base |6 - 7.2| / 8 = 0.15, new |7 - 6.8| / 8 = 0.025
BASE = {"correct": [1, 1, 1, 1, 1, 1, 0, 0], "confidence": [0.9, 0.88, 0.91, 0.92, 0.89, 0.87, 0.93, 0.9],
        "nll": [0.11, 0.23, 0.05, 0.47, 0.19, 0.31, 2.3, 1.7],  # sum 5.36: mean 0.67
        "brier": [0.02, 0.03, 0.01, 0.1, 0.04, 0.06, 1.5, 1.2]}  # sum 2.96: mean 0.37
NEW = {"correct": [1, 1, 1, 1, 1, 1, 1, 0], "confidence": [0.85, 0.83, 0.86, 0.84, 0.85, 0.85, 0.86, 0.86],
       "nll": [0.2, 0.15, 0.35, 0.1, 0.4, 0.25, 0.05, 1.7],  # sum 3.2: mean 0.4
       "brier": [0.05, 0.04, 0.09, 0.02, 0.11, 0.07, 0.01, 1.21]}  # sum 1.6: mean 0.2
SAVED = {"base": {"ece": 15.0, "nll": 0.67, "brier": 0.37}, "new": {"ece": 2.5, "nll": 0.4, "brier": 0.2}}


def per_image(values: dict, task: str = schema.CLEAN, condition: str = schema.CLEAN_CONDITION,
              eps: float = 0.0) -> pd.DataFrame:
    n = len(values["nll"])
    return pd.DataFrame({"task": task, "condition": condition, "severity": np.nan, "eps_255": eps,
                         "image": np.arange(n), **values}).astype({"correct": bool})


def evaluation(label: str, rows: list[dict], per: pd.DataFrame | None) -> EvalResult:
    df = schema.frame([schema.row(model=label, suite="t", n=8, **r) for r in rows])
    return EvalResult(label, Path(label), df, {**FINGERPRINT, "model": {"label": label}}, per)


def clean_model(label: str, values: dict, saved: dict, per: bool = True) -> EvalResult:
    rows = [{"task": schema.CLEAN, "condition": schema.CLEAN_CONDITION, "metric": m, "value": v} for m, v in saved.items()]
    return evaluation(label, rows, per_image(values) if per else None)


def one_bin_ece(v: dict, idx: np.ndarray) -> np.ndarray:
    """100 x ECE of each resample when every confidence falls in one bin: |mean(correct - confidence)|."""
    gap = np.asarray(v["correct"], float) - np.asarray(v["confidence"])
    return 100 * np.abs(gap[idx].mean(1))


def row_of(frame: pd.DataFrame, model: str, metric: str, **where) -> pd.Series:
    m = (frame.model == model) & (frame.metric == metric)
    for k, v in where.items():
        m &= frame[k] == v
    assert m.sum() == 1
    return frame[m].iloc[0]


def test_intervals_on_seed_4242_and_paired_differences_on_seed_4243_against_the_bootstrap_written_out():
    f = ct.calibration_tests([clean_model("base", BASE, SAVED["base"]), clean_model("new", NEW, SAVED["new"])],
                             "base").frame
    i42, i43 = resample_index(8, 4242), resample_index(8, 4243)
    nll_b, nll_n = np.asarray(BASE["nll"]), np.asarray(NEW["nll"])
    new = row_of(f, "new", "nll")
    assert (new.ci_low, new.ci_high) == pytest.approx(percentile(nll_n[i42].mean(1)), rel=1e-9)
    assert new["diff"] == pytest.approx(0.4 - 0.67)
    assert (new.diff_low, new.diff_high) == pytest.approx(percentile((nll_n - nll_b)[i43].mean(1)), rel=1e-9)
    assert new.test == "paired bootstrap over 8 items" and new.resamples == 2000
    ece = row_of(f, "new", "ece")
    assert (ece.ci_low, ece.ci_high) == pytest.approx(percentile(one_bin_ece(NEW, i42)), rel=1e-9)
    assert (ece.diff_low, ece.diff_high) == pytest.approx(
        percentile(one_bin_ece(NEW, i43) - one_bin_ece(BASE, i43)), rel=1e-9)
    base = row_of(f, "base", "nll")  # the baseline: its interval, no difference against itself, no resamples
    assert (base.ci_low, base.ci_high) == pytest.approx(percentile(nll_b[i42].mean(1)), rel=1e-9)
    assert math.isnan(base["diff"]) and math.isnan(base.diff_low) and base.test == "" and base.resamples == 0


def test_a_redraw_is_the_paired_bootstrap_on_seed_4243_with_more_resamples():
    tests = ct.calibration_tests([clean_model("base", BASE, SAVED["base"]), clean_model("new", NEW, SAVED["new"])],
                                 "base")
    i = int(row_of(tests.frame.reset_index(), "new", "nll")["index"])
    d = tests.redraw[i](8000)
    gap = np.asarray(NEW["nll"]) - np.asarray(BASE["nll"])
    assert (d["diff_low"], d["diff_high"]) == pytest.approx(percentile(gap[resample_index(8, 4243, 8000)].mean(1)),
                                                            rel=1e-9)


def _no_interval(row: pd.Series) -> bool:
    return math.isnan(row.ci_low) and row.note == "per-image values missing: no interval" and row.resamples == 0


def test_no_interval_without_per_image_values_with_duplicated_images_or_values_of_something_else():
    dup = clean_model("dup", NEW, SAVED["new"])
    dup.per_image = pd.concat([dup.per_image, dup.per_image], ignore_index=True)  # every image twice
    other = clean_model("other", NEW, {"nll": 0.5})  # the per-image nll averages 0.4, not the saved 0.5
    f = ct.calibration_tests([clean_model("none", NEW, SAVED["new"], per=False), dup, other], None).frame
    assert _no_interval(row_of(f, "none", "nll")) and _no_interval(row_of(f, "dup", "nll"))
    assert _no_interval(row_of(f, "other", "nll"))


def test_no_difference_against_a_baseline_without_per_image_values():
    f = ct.calibration_tests([clean_model("base", BASE, SAVED["base"], per=False),
                              clean_model("new", NEW, SAVED["new"])], "base").frame
    new = row_of(f, "new", "nll")
    assert np.isfinite(new.ci_low) and math.isnan(new.diff_low) and new.test == ""


def test_results_written_without_an_eps_column_still_pair_with_the_baseline():
    base, new = clean_model("base", BASE, SAVED["base"]), clean_model("new", NEW, SAVED["new"])
    for r in (base, new):  # an older writer: no eps_255 / eps columns
        r.rows = r.rows.drop(columns=["eps_255", "eps"])
        r.per_image = r.per_image.drop(columns=["eps_255"])
    new_nll = row_of(ct.calibration_tests([base, new], "base").frame, "new", "nll")
    gap = np.asarray(NEW["nll"]) - np.asarray(BASE["nll"])
    assert (new_nll.diff_low, new_nll.diff_high) == pytest.approx(percentile(gap[resample_index(8, 4243)].mean(1)),
                                                                  rel=1e-9)


def test_an_attack_cell_is_scored_and_paired_at_its_own_eps():
    # per image nll at eps 0 and eps 4 of each model; the eps 4 cells: base mean 1.2, new mean 0.9
    base0, base4 = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8], [0.4, 0.8, 1.2, 1.6, 2.0, 0.9, 1.1, 1.6]  # 3.6, 9.6
    new0, new4 = [0.2, 0.1, 0.2, 0.3, 0.1, 0.4, 0.2, 0.1], [0.5, 0.6, 1.5, 1.0, 1.2, 0.7, 0.8, 0.9]  # 1.6, 7.2

    def model(label, v0, v4, mean0, mean4):
        per = pd.concat([per_image({"correct": [1] * 8, "confidence": [0.5] * 8, "nll": v, "brier": [0.1] * 8},
                                   schema.FGSM, schema.FGSM, eps) for eps, v in ((0.0, v0), (4.0, v4))],
                        ignore_index=True)
        rows = [{"task": schema.FGSM, "condition": schema.FGSM, "metric": "nll", "value": m, "eps_255": eps}
                for eps, m in ((0.0, mean0), (4.0, mean4))]
        return evaluation(label, rows, per)

    f = ct.calibration_tests([model("base", base0, base4, 0.45, 1.2), model("new", new0, new4, 0.2, 0.9)],
                             "base").frame
    new = row_of(f, "new", "nll", eps_255=4.0)
    x4, gap4 = np.asarray(new4), np.asarray(new4) - np.asarray(base4)
    assert (new.ci_low, new.ci_high) == pytest.approx(percentile(x4[resample_index(8, 4242)].mean(1)), rel=1e-9)
    assert new["diff"] == pytest.approx(0.9 - 1.2)
    assert (new.diff_low, new.diff_high) == pytest.approx(percentile(gap4[resample_index(8, 4243)].mean(1)), rel=1e-9)


# ---- the table, from calibration frames by hand

def cal(model: str, task: str, condition: str, metric: str, value: float, eps: float = math.nan, **kw) -> dict:
    row = {c: math.nan for c in ct.COLUMNS}
    row.update(model=model, task=task, condition=condition, eps_255=eps, metric=metric, value=value, n=8,
               test="", verdict="", note="", resamples=0, higher_is_better=False)
    row.update(kw)
    return row


def with_test(verdict: str, diff: float, low: float, high: float, p: float) -> dict:
    return {"diff": diff, "diff_low": low, "diff_high": high, "p_value": p, "p_adjusted": p, "verdict": verdict,
            "test": "paired bootstrap over 8 items"}


def _frame() -> pd.DataFrame:
    C, V2, A, F = schema.CLEAN, schema.IMAGENET_V2, schema.NATURAL_ADVERSARIAL, schema.FGSM
    return pd.DataFrame([  # not in the page's order: v2 and the attack before clean
        cal("a", V2, "matched-frequency", "ece", 6.0),
        cal("a", F, F, "ece", 20.0, 4.0), cal("a", F, F, "ece", 5.0, 0.0),
        cal("a", A, "built", "ece", 30.0),
        cal("a", C, C, "ece", 15.0, ci_low=13.0, ci_high=17.0), cal("a", C, C, "nll", 0.67), cal("a", C, C, "brier", 0.37),
        cal("b", C, C, "ece", 2.5, **with_test("better", -12.5, -14.0, -11.0, 0.001)),
        cal("b", C, C, "nll", 0.4, **with_test("worse", -0.27, -0.5, -0.05, 0.02)),
        cal("b", C, C, "brier", 0.2, **with_test("no significant difference", -0.17, -0.4, 0.06, 0.2)),
    ], columns=ct.COLUMNS)


def test_one_fold_per_task_in_the_pages_order_with_its_label_and_each_rows_set():
    t = ct.calibration_table(_frame(), "a")
    assert t["columns"] == ["ECE (%)", "NLL", "Brier"]
    folds = [(x["id"], x["label"], x["open"]) for x in t["tasks"]]
    assert folds == [("calibration-clean", "clean", True), ("calibration-natural_adversarial", "built -A", False),
                     ("calibration-fgsm", "FGSM", False), ("calibration-imagenet_v2", "ImageNet-V2", False)]
    sets = [[(r["model"], r["set"]) for r in x["rows"]] for x in t["tasks"]]
    assert sets == [[("a", "clean"), ("b", "clean")], [("a", "built -A")],
                    [("a", "FGSM at 4/255"), ("a", "FGSM at 0/255")], [("a", "ImageNet-V2: matched-frequency")]]


def test_an_official_a_set_is_labelled_as_minus_a_and_named_in_its_row():
    t = ct.calibration_table(pd.DataFrame([cal("a", schema.NATURAL_ADVERSARIAL, "imagenet-a", "ece", 9.0)],
                                          columns=ct.COLUMNS), None)
    assert t["tasks"][0]["label"] == "-A (natural adversarial)"
    assert t["tasks"][0]["rows"][0]["set"] == "-A (natural adversarial): imagenet-a"


def test_cells_hold_each_models_own_values_to_their_digits():
    t = ct.calibration_table(_frame(), "a")
    clean, _, attack, v2 = (x["rows"] for x in t["tasks"])
    assert [(r["model"], r["baseline"]) for r in clean] == [("a", True), ("b", False)]
    # ECE in % to 0.1 point, NLL and Brier to 3 decimals (schema.METRICS)
    assert [[c["value"] for c in r["cells"]] for r in clean] == [["15.0", "0.670", "0.370"], ["2.5", "0.400", "0.200"]]
    assert clean[0]["cells"][0]["ci"] == "[13.0, 17.0]"
    assert clean[1]["cells"][0]["delta"] == "-12.5 [-14.0, -11.0]" and clean[1]["cells"][0]["cls"] == "good"
    assert clean[1]["cells"][1]["delta"] == "-0.270 [-0.500, -0.050]" and clean[1]["cells"][1]["cls"] == "bad"
    assert [[c["value"] for c in r["cells"]] for r in attack] == [["20.0", "–", "–"], ["5.0", "–", "–"]]
    assert [c["value"] for c in v2[0]["cells"]] == ["6.0", "–", "–"]


def test_fold_summaries_count_models_cells_the_ece_range_and_verdicts():
    t = ct.calibration_table(_frame(), "a")
    assert [x["summary"] for x in t["tasks"]] == [
        "2 models; ECE 2.5–15.0%; 1 better, 1 worse of 3 differences against the baseline",
        "1 model; ECE 30.0%",
        "1 model × 2 cells; ECE 5.0–20.0%",
        "1 model; ECE 6.0%",
    ]


def test_a_corruption_tree_is_one_mean_row_per_task_and_metric_in_the_results_order():
    """Cells of a corruption tree (one per corruption x severity) become one row per (task, metric): the mean over
    the cells, n the largest cell's, no interval; in the order the results hold them (here -C-bar's NLL before its
    ECE, and -C-bar before -C), not sorted."""
    cells = [(schema.IMAGENET_C_BAR, "blue_noise_sample", 1, "nll", 1.25, 8),
             (schema.IMAGENET_C_BAR, "blue_noise_sample", 1, "ece", 12.0, 8),
             (schema.IMAGENET_C_BAR, "caustic_refraction", 2, "nll", 0.75, 6),
             (schema.IMAGENET_C_BAR, "caustic_refraction", 2, "ece", 6.0, 6),
             (schema.CORRUPTIONS, "snow", 3, "nll", 2.0, 8), (schema.CORRUPTIONS, "snow", 3, "ece", 30.0, 8)]
    rows = [{"task": t, "condition": c, "severity": s, "metric": m, "value": v} for t, c, s, m, v, _ in cells]
    df = schema.frame([schema.row(model="a", suite="t", n=n, **r) for r, (*_, n) in zip(rows, cells)])
    # a results.csv in this order (schema.frame sorts the rows it writes; a file from elsewhere may not be)
    df = df.iloc[[int(np.flatnonzero((df.task == r["task"]) & (df.condition == r["condition"])
                                     & (df.metric == r["metric"]))[0]) for r in rows]].reset_index(drop=True)
    f = ct.calibration_tests([EvalResult("a", Path("a"), df, {**FINGERPRINT, "model": {"label": "a"}}, None)],
                             None).frame
    assert [(r.task, r.metric, r.value, r.n) for r in f.itertuples()] == [
        (schema.IMAGENET_C_BAR, "nll", 1.0, 8), (schema.IMAGENET_C_BAR, "ece", 9.0, 8),
        (schema.CORRUPTIONS, "nll", 2.0, 8), (schema.CORRUPTIONS, "ece", 30.0, 8)]
    assert (f.condition == "mean over cells").all() and f.ci_low.isna().all()
    assert f.note.iloc[0] == "mean over 2 corruption x severity cells; no interval"


def test_the_page_mentions_temperature_scaling_only_when_a_row_is_scaled():
    assert ct.calibration_table(_frame(), "a")["scaled"] is False
    scaled = pd.concat([_frame(), pd.DataFrame([cal("a", schema.CLEAN, schema.TEMPERATURE_SCALED, "ece", 4.0)],
                                               columns=ct.COLUMNS)], ignore_index=True)
    assert ct.calibration_table(scaled, "a")["scaled"] is True
