"""Calibration in the report: ECE, NLL and Brier per model and set, each with a 95% bootstrap interval over images
and the paired difference against the baseline, from the per-image confidence / nll / brier that the harness
saves (bench/calibration_rows.py defines the three). Cells of a corruption tree (one per corruption and severity) are
summarised per task as the mean over its cells, without an interval (the cells hold different images). Each
difference against the baseline is a test of the page's one Holm family (family.py `adjust`), coloured only where
it is significant after the adjustment."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..calibration import ece_weighted  # the harness's own binning (nsbench/calibration_rows.py)
from ..schema import (CALIBRATION, CLEAN_CONDITION, CORRUPTION_TREE_TASKS, IMAGENET_3DCC, IMAGENET_C_BAR,
                      IMAGENET_SKETCH, IMAGENET_V2, METRICS, SKETCH, TASK_LABELS, usual_effect)
from . import fmt, stats
from .family import Tests, adjust
from .load import EvalResult

# the table's columns: ECE (%), NLL, Brier (schema.CALIBRATION, labelled as schema.METRICS labels them)
CELLS = [(m, METRICS[m].label + (" (%)" if METRICS[m].unit == "%" else "")) for m in CALIBRATION]
ECE = CALIBRATION[0]  # binned over the confidences, not a mean of per-image values
TREE_TASKS = CORRUPTION_TREE_TASKS  # one cell per corruption and severity
COLUMNS = ["model", "task", "condition", "eps_255", "metric", "value", "ci_low", "ci_high", "n", "diff", "diff_low",
           "diff_high", "p_value", "p_adjusted", "test", "verdict", "se", "mde", "usual_effect", "resamples",
           "higher_is_better", "note"]
SEED = 4242
SET_NAMES = {IMAGENET_V2: "ImageNet-V2", IMAGENET_SKETCH: "ImageNet-Sketch", IMAGENET_C_BAR: "ImageNet-C-bar",
             IMAGENET_3DCC: "ImageNet-3DCC"}


def _cells(r: EvalResult) -> pd.DataFrame:
    rows = r.rows[r.rows.metric.isin(CALIBRATION)]
    return rows[rows.value.notna()]


def _sampler(r: EvalResult, task: str, condition: str, eps: float, metric: str, point: float) -> stats.Sampler | None:
    per = r.per_image
    if per is None or "confidence" not in per:
        return None
    p = per[(per.task == task) & (per.condition == condition) & per.confidence.notna()]
    if "eps_255" in p and np.isfinite(eps):
        p = p[p.eps_255 == eps]
    if p.empty or p.image.duplicated().any():
        return None
    p = p.sort_values("image")
    items = tuple(p.image)
    if metric == ECE:
        conf, correct = p.confidence.to_numpy(float), p.correct.astype(bool).to_numpy()
        return stats.Sampler(items, lambda w: 100 * ece_weighted(w, conf, correct), point)
    x = p[metric].to_numpy(float)
    return stats.Sampler(items, lambda w: w @ x, point)


def calibration_frame(evals: list[EvalResult], baseline: str | None) -> pd.DataFrame:
    """One row per model, cell (task, condition, eps) and metric; corruption trees as one mean row per task; its tests
    Holm-adjusted as a family of their own (a report adjusts them together with its other tests)."""
    tests = calibration_tests(evals, baseline)
    adjust(tests)
    return tests.frame


def calibration_tests(evals: list[EvalResult], baseline: str | None) -> Tests:
    """calibration_frame's rows, not yet adjusted, with the redraw of each bootstrap test."""
    base = next((r for r in evals if r.label == baseline), None)
    out, redraw = [], {}
    for r in evals:
        cells = _cells(r)
        single = cells[~cells.task.isin(TREE_TASKS)]
        for _, x in single.iterrows():
            eps = float(x.eps_255) if fmt.finite(x.get("eps_255")) else np.nan
            s = _sampler(r, x.task, x.condition, eps, x.metric, float(x.value))
            row = {"model": r.label, "task": x.task, "condition": x.condition, "eps_255": eps, "metric": x.metric,
                   "value": float(x.value), "ci_low": np.nan, "ci_high": np.nan, "n": int(x.n), "diff": np.nan,
                   "diff_low": np.nan, "diff_high": np.nan, **_untested(x.metric), "note": ""}
            if s is not None and stats.reproduces(s):
                row["ci_low"], row["ci_high"] = stats.interval(s, SEED)
                if base is not None and r is not base:
                    bx = _cells(base)
                    bx = bx[(bx.task == x.task) & (bx.condition == x.condition) & (bx.metric == x.metric)]
                    if len(bx):
                        sb = _sampler(base, x.task, x.condition, eps, x.metric, float(bx.value.iloc[0]))
                        if sb is not None and stats.reproduces(sb):
                            d = stats.difference(s, sb, SEED + 1)
                            row.update(diff=d["diff"], diff_low=d["diff_low"], diff_high=d["diff_high"], p_value=d["p"],
                                       test=d["test"], se=d["se"], resamples=d["resamples"])
                            redraw[len(out)] = (lambda a, b: lambda n: stats.difference(a, b, SEED + 1, n))(s, sb)
            else:
                row["note"] = "per-image values missing: no interval"
            out.append(row)
        tree = cells[cells.task.isin(TREE_TASKS)]
        for (task, metric), g in tree.groupby(["task", "metric"], sort=False):
            out.append({"model": r.label, "task": task, "condition": "mean over cells", "eps_255": np.nan,
                        "metric": metric, "value": float(g.value.mean()), "ci_low": np.nan, "ci_high": np.nan,
                        "n": int(g.n.max()), "diff": np.nan, "diff_low": np.nan, "diff_high": np.nan,
                        **_untested(metric), "note": f"mean over {len(g)} corruption x severity cells; no interval"})
    return Tests(pd.DataFrame(out, columns=COLUMNS), redraw, lambda row: _digits(row.metric))


def _untested(metric: str) -> dict:
    return {"p_value": np.nan, "p_adjusted": np.nan, "test": "", "verdict": "", "se": np.nan, "mde": np.nan,
            "usual_effect": usual_effect(metric), "resamples": 0, "higher_is_better": METRICS[metric].higher_is_better}


def _digits(metric: str) -> int:
    """A metric's decimals in the table (ECE in % to 0.1 point)."""
    return 1 if METRICS[metric].unit == "%" else METRICS[metric].digits


def calibration_table(frame: pd.DataFrame, baseline: str | None) -> dict | None:
    """Rows (model, set) with ECE / NLL / Brier cells: value, interval, difference against the baseline."""
    if frame.empty:
        return None
    rows = []
    keys = frame[["model", "task", "condition", "eps_255"]].drop_duplicates()
    for _, k in keys.iterrows():
        sub = frame[(frame.model == k.model) & (frame.task == k.task) & (frame.condition == k.condition)
                    & ((frame.eps_255 == k.eps_255) | (frame.eps_255.isna() & pd.isna(k.eps_255)))]
        cells = []
        for metric, _ in CELLS:
            hit = sub[sub.metric == metric]
            if not len(hit):
                cells.append({"value": "–", "ci": "", "delta": "", "cls": "", "title": ""})
                continue
            h = hit.iloc[0]
            digits = _digits(metric)
            delta, cls = "", ""
            if fmt.finite(h["diff"]):
                delta = f"{fmt.signed(h['diff'], digits)} {fmt.ci(h.diff_low, h.diff_high, digits)}".strip()
                cls = {"better": "good", "worse": "bad"}.get(h.verdict, "")
            title = "; ".join(x for x in (fmt.pvalues(h.p_value, h.p_adjusted), h.verdict, h.test, h.note) if x)
            cells.append({"value": fmt.num(h.value, digits), "ci": fmt.ci(h.ci_low, h.ci_high, digits), "delta": delta,
                          "cls": cls, "title": title})
        where = SET_NAMES.get(k.task) or TASK_LABELS.get(k.task, k.task.replace("_", " "))
        cond = "" if k.condition in (k.task, CLEAN_CONDITION, SKETCH) else f": {fmt.name(k.condition)}"
        eps = f" at {k.eps_255:g}/255" if fmt.finite(k.eps_255) and k.eps_255 > 0 else ""
        rows.append({"model": k.model, "baseline": k.model == baseline, "set": f"{where}{cond}{eps}", "cells": cells})
    return {"columns": [label for _, label in CELLS], "rows": rows}
