"""Calibration in the report: ECE, NLL and Brier per model and set, each with a 95% bootstrap interval over images
and the paired difference against the baseline, from the per-image confidence / nll / brier that the harness
saves (bench/calibration_rows.py defines the three). Cells of a corruption tree (one per corruption and severity) are
summarised per task as the mean over its cells, without an interval (the cells hold different images). Each
difference against the baseline is a test of the page's one Holm family (family.py `adjust`), coloured only where
it is significant after the adjustment. On the page (`calibration_table`) the rows fold per task, each row naming its
set and, for an attack, its eps."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..calibration import ece_weighted  # the harness's own binning (nsbench/calibration_rows.py)
from ..schema import (ATTACKS_BY_NAME, CALIBRATION, CLEAN, CLEAN_CONDITION, CORRUPTION_TREE_TASKS, CORRUPTIONS, FGSM,
                      IMAGENET_3DCC, IMAGENET_C_BAR, IMAGENET_SKETCH, IMAGENET_V2, METRICS, NATURAL_ADVERSARIAL, PGD,
                      SKETCH, TASK_LABELS, TEMPERATURE, TEMPERATURE_SCALED, usual_effect)
from . import fmt, stats
from .family import Tests, adjust
from .headline import data_key
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
ATTACK_NAMES = {FGSM: "FGSM", PGD: "PGD"}  # the in-house attacks by name (schema labels both "adversarial attacks")
LABEL_SET_CONDITIONS = ("imagenet-a", "imagenet-r")  # scored over their 200 classes
BUILT = "built"  # the condition of a built -A set
# the folds' order: the page's benchmarks (clean, -C, -A, attacks), then the official shifted sets
TASK_ORDER = [CLEAN, CORRUPTIONS, NATURAL_ADVERSARIAL, FGSM, PGD, ATTACKS_BY_NAME, IMAGENET_V2, IMAGENET_SKETCH,
              IMAGENET_C_BAR, IMAGENET_3DCC]


def _cells(r: EvalResult) -> pd.DataFrame:
    """The calibration rows of an evaluation, and the temperature of its temperature-scaled clean rows."""
    rows = r.rows[r.rows.metric.isin(CALIBRATION) | (r.rows.metric == TEMPERATURE)]
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
        return stats.Sampler(items, lambda w: 100 * ece_weighted(w, conf, correct), point, data=data_key(r, task))
    x = p[metric].to_numpy(float)
    # what the images were scored on: differences against the baseline pair image by image only on the same data
    return stats.Sampler(items, lambda w: w @ x, point, data=data_key(r, task))


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
            how = str(x.get("note") or "") if x.condition == TEMPERATURE_SCALED else ""  # where T was fitted, and T
            if x.metric == TEMPERATURE:  # a setting of the scaled rows, not a calibration measure: no test
                out.append({"model": r.label, "task": x.task, "condition": x.condition, "eps_255": eps,
                            "metric": x.metric, "value": float(x.value), "ci_low": np.nan, "ci_high": np.nan,
                            "n": int(x.n), "diff": np.nan, "diff_low": np.nan, "diff_high": np.nan,
                            **_untested(x.metric), "note": how})
                continue
            s = _sampler(r, x.task, x.condition, eps, x.metric, float(x.value))
            row = {"model": r.label, "task": x.task, "condition": x.condition, "eps_255": eps, "metric": x.metric,
                   "value": float(x.value), "ci_low": np.nan, "ci_high": np.nan, "n": int(x.n), "diff": np.nan,
                   "diff_low": np.nan, "diff_high": np.nan, **_untested(x.metric), "note": how}
            if s is not None and stats.reproduces(s):
                row["ci_low"], row["ci_high"] = stats.interval(s, SEED)
                if base is not None and r is not base:
                    bx = _cells(base)
                    bx = bx[(bx.task == x.task) & (bx.condition == x.condition) & (bx.metric == x.metric)
                            & _same_eps(bx, eps)]
                    if len(bx):
                        sb = _sampler(base, x.task, x.condition, eps, x.metric, float(bx.value.iloc[0]))
                        if sb is not None and stats.reproduces(sb):
                            d = stats.difference(s, sb, SEED + 1)
                            row.update(diff=d["diff"], diff_low=d["diff_low"], diff_high=d["diff_high"], p_value=d["p"],
                                       test=d["test"], se=d["se"], resamples=d["resamples"])
                            redraw[len(out)] = (lambda a, b: lambda n: stats.difference(a, b, SEED + 1, n))(s, sb)
            else:
                row["note"] = "; ".join(x for x in ("per-image values missing: no interval", how) if x)
            out.append(row)
        tree = cells[cells.task.isin(TREE_TASKS)]
        for (task, metric), g in tree.groupby(["task", "metric"], sort=False):
            out.append({"model": r.label, "task": task, "condition": "mean over cells", "eps_255": np.nan,
                        "metric": metric, "value": float(g.value.mean()), "ci_low": np.nan, "ci_high": np.nan,
                        "n": int(g.n.max()), "diff": np.nan, "diff_low": np.nan, "diff_high": np.nan,
                        **_untested(metric), "note": f"mean over {len(g)} corruption x severity cells; no interval"})
    return Tests(pd.DataFrame(out, columns=COLUMNS), redraw, lambda row: _digits(row.metric))


def _same_eps(rows: pd.DataFrame, eps: float) -> pd.Series:
    """The rows at attack strength `eps` (/255; NaN: the rows without one): a baseline cell pairs only with the
    model's cell at the same eps."""
    if "eps_255" not in rows:
        return pd.Series(not np.isfinite(eps), index=rows.index)
    return rows.eps_255 == eps if np.isfinite(eps) else rows.eps_255.isna()


def _untested(metric: str) -> dict:
    return {"p_value": np.nan, "p_adjusted": np.nan, "test": "", "verdict": "", "se": np.nan, "mde": np.nan,
            "usual_effect": usual_effect(metric), "resamples": 0, "higher_is_better": METRICS[metric].higher_is_better}


def _digits(metric: str) -> int:
    """A metric's decimals in the table (ECE in % to 0.1 point)."""
    return 1 if METRICS[metric].unit == "%" else METRICS[metric].digits


def _task_label(task: str, conditions) -> str:
    if task == NATURAL_ADVERSARIAL and set(conditions) == {BUILT}:
        return "built -A"
    return SET_NAMES.get(task) or ATTACK_NAMES.get(task) or TASK_LABELS.get(task, task.replace("_", " "))


def _where(task: str, condition: str, eps: float) -> str:
    """A row's set as the page names it, with its eps wherever the cell has one (0/255: the attack's clean images)."""
    where = _task_label(task, [condition])
    same = condition in (task, CLEAN_CONDITION, SKETCH) or where == "built -A"
    cond = ", temperature-scaled" if condition == TEMPERATURE_SCALED else "" if same else f": {fmt.name(condition)}"
    eps_text = f" at {eps:g}/255" if fmt.finite(eps) else ""
    return f"{where}{cond}{eps_text}"


def _cell(hit: pd.DataFrame, metric: str) -> dict:
    if not len(hit):
        return {"value": "–", "ci": "", "delta": "", "cls": "", "title": ""}
    h = hit.iloc[0]
    digits = _digits(metric)
    delta, cls = "", ""
    if fmt.finite(h["diff"]):
        delta = f"{fmt.signed(h['diff'], digits)} {fmt.ci(h.diff_low, h.diff_high, digits)}".strip()
        cls = {"better": "good", "worse": "bad"}.get(h.verdict, "")
    title = "; ".join(x for x in (fmt.pvalues(h.p_value, h.p_adjusted), h.verdict, h.test, h.note) if x)
    return {"value": fmt.num(h.value, digits), "ci": fmt.ci(h.ci_low, h.ci_high, digits), "delta": delta, "cls": cls,
            "title": title}


def _summary(sub: pd.DataFrame, cells: int) -> str:
    """What a folded task holds: models and cells, the range of its ECE, how many differences are significant."""
    models = sub.model.nunique()
    parts = [f"{models} model{'s' if models != 1 else ''}" + (f" × {cells} cells" if cells > 1 else "")]
    ece = sub[sub.metric == ECE].value.to_numpy(float)
    ece = ece[np.isfinite(ece)]
    if len(ece):
        lo, hi = fmt.num(ece.min(), _digits(ECE)), fmt.num(ece.max(), _digits(ECE))
        parts.append(f"ECE {lo}%" if lo == hi else f"ECE {lo}–{hi}%")
    tested = sub[np.isfinite(sub.p_value.to_numpy(float))]
    if len(tested):
        better, worse = int((tested.verdict == "better").sum()), int((tested.verdict == "worse").sum())
        parts.append(f"{better} better, {worse} worse of {len(tested)} differences against the baseline")
    return "; ".join(parts)


def calibration_table(frame: pd.DataFrame, baseline: str | None) -> dict | None:
    """One fold per task (clean, -C, -A, each attack, each shifted set): its rows (set with its eps, model) with ECE /
    NLL / Brier cells (value, interval, difference against the baseline), grouped by cell so the models of one cell
    sit together, and a one-line summary of the fold; the clean set's fold open, the others closed."""
    if frame.empty:
        return None
    models = list(dict.fromkeys(frame.model))
    temperature = {(t.model, t.task, t.condition): t.value for t in frame[frame.metric == TEMPERATURE].itertuples()}
    keys = frame[["task", "condition", "eps_255"]].drop_duplicates()
    order = list(dict.fromkeys([t for t in TASK_ORDER if t in set(keys.task)] + list(keys.task)))
    tasks = []
    for task in order:
        cells = keys[keys.task == task]
        rows = []
        for _, k in cells.iterrows():
            same = (frame.task == task) & (frame.condition == k.condition) & _same_eps(frame, k.eps_255)
            for model in models:
                sub = frame[same & (frame.model == model)]
                if not len(sub):
                    continue
                t = temperature.get((model, task, k.condition))
                rows.append({"model": model, "baseline": model == baseline,
                             "set": _where(task, k.condition, k.eps_255) + (f" (T = {fmt.num(t, 2)})" if t else ""),
                             "cells": [_cell(sub[sub.metric == metric], metric) for metric, _ in CELLS]})
        label = _task_label(task, cells.condition)
        tasks.append({"id": f"calibration-{task}", "task": task, "label": label, "open": task == CLEAN,
                      "summary": _summary(frame[frame.task == task], len(cells)), "rows": rows})
    return {"columns": [label for _, label in CELLS], "tasks": tasks,
            "label_sets": bool(frame.condition.isin(LABEL_SET_CONDITIONS).any()),
            "scaled": bool((frame.condition == TEMPERATURE_SCALED).any())}

