"""Effective robustness (Taori et al., NeurIPS 2020, "Measuring Robustness to Natural Distribution Shifts"): accuracy
on a shifted set against clean accuracy, a linear fit in logit space through baseline models, and each model's
distance above or below that line: ER = acc_shift - inv_logit(slope * logit(acc_clean) + intercept), in points.

The fit goes through the models the user marks as baselines (`nsbench report --er-baseline NAME`, two or more),
else through the shipped published rows (reference_data/published_scorecard.csv: every model with a clean and a
shifted accuracy for that set), so one scored model still gets a line. Accuracies are clipped to [0.1, 99.9] % before
the logit (a set a model gets entirely right or wrong has no finite logit)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..reference import published_scorecard
from ..schema import CLEAN, TOP1_ACC
from . import figures, shifts
from .load import EvalResult

CLIP = (0.1, 99.9)
TICKS = (0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999)
# per set and model: clean and shifted accuracy (%), the line's prediction, the distance above it, and the line
COLUMNS = ["set", "model", CLEAN, "shifted", "predicted", "effective_robustness", "fit_from", "slope", "intercept"]


def logit(acc):
    p = np.clip(np.asarray(acc, float), *CLIP) / 100
    return np.log(p / (1 - p))


def inv_logit(z):
    return 100 / (1 + np.exp(-np.asarray(z, float)))


def fit(clean, shifted) -> tuple[float, float]:
    """(slope, intercept) of the least-squares line through (logit clean, logit shifted)."""
    x, y = logit(clean), logit(shifted)
    slope, intercept = np.polyfit(x, y, 1)
    return float(slope), float(intercept)


def published_points(key: str) -> pd.DataFrame:
    rows = {}
    for p in published_scorecard():
        if p["metric"] == TOP1_ACC and p["set"] in (CLEAN, key):
            rows.setdefault(p["model"], {})[p["set"]] = p["value"]
    pts = [(m, v[CLEAN], v[key]) for m, v in rows.items() if CLEAN in v and key in v]
    return pd.DataFrame(pts, columns=["model", CLEAN, "shifted"])


def effective_robustness(evals: list[EvalResult], baselines: list[str] | None = None) -> pd.DataFrame:
    """One row per shifted set and scored model, for sets that two or more models were scored on and that have a line
    to measure from (two baselines, or two published models with clean and shifted accuracy)."""
    acc = shifts.accuracy_frame(evals)
    if acc.empty:
        return pd.DataFrame(columns=COLUMNS)
    clean = acc[acc.set == CLEAN].set_index("model").value
    out = []
    for key in [k for k in dict.fromkeys(acc.set) if k != CLEAN]:
        sub = acc[(acc.set == key) & acc.model.isin(clean.index)].set_index("model").value
        pts = pd.DataFrame({"model": sub.index, CLEAN: clean[sub.index].to_numpy(), "shifted": sub.to_numpy()})
        if len(pts) < 2:  # a comparison: several models scored on this set
            continue
        base = pts[pts.model.isin(baselines or [])]
        if len(base) >= 2 and base.clean.nunique() >= 2:
            src = f"baselines: {', '.join(base.model)}"
        else:
            base = published_points(key)
            src = f"published rows ({len(base)} models)"
            if len(base) < 2:
                continue
        slope, intercept = fit(base.clean, base.shifted)
        pred = inv_logit(slope * logit(pts.clean) + intercept)
        for (_, p), yhat in zip(pts.iterrows(), pred):
            out.append({"set": key, "model": p.model, CLEAN: p.clean, "shifted": p.shifted, "predicted": float(yhat),
                        "effective_robustness": float(p.shifted - yhat), "fit_from": src, "slope": slope,
                        "intercept": intercept})
    return pd.DataFrame(out, columns=COLUMNS)


@figures.figure
def figure(er: pd.DataFrame, baselines: list[str] | None = None) -> list[tuple[str, str]]:
    """One panel per shifted set: models (labelled), the fit line, y = x, published points in grey; logit axes."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator

    panels = []
    for key, sub in er.groupby("set", sort=False):
        fig, ax = plt.subplots(figsize=(4.6, 3.8))
        slope, intercept = float(sub.slope.iloc[0]), float(sub.intercept.iloc[0])
        pub = published_points(key)
        if sub.fit_from.iloc[0].startswith("published") and len(pub):
            ax.scatter(pub.clean / 100, pub.shifted / 100, c="#8c959f", marker="x", s=22, label="published")
        both = np.concatenate([sub.clean, sub.shifted, pub.clean, pub.shifted]) if len(pub) else \
            np.concatenate([sub.clean, sub.shifted])
        lo, hi = np.clip([both.min() - 5, both.max() + 2], *CLIP) / 100
        xs = np.linspace(lo, hi, 200)
        ax.plot(xs, inv_logit(slope * logit(100 * xs) + intercept) / 100, "-", c="#0969da", lw=1.2, label="fit")
        ax.plot(xs, xs, ":", c="#57606a", lw=1, label="y = x")
        for i, (_, p) in enumerate(sub.iterrows()):
            is_base = p.model in (baselines or [])
            x, y = np.clip([p.clean, p.shifted], *CLIP) / 100  # a logit axis has no 0 or 100 %
            ax.scatter([x], [y], marker=figures.MARKERS[i % len(figures.MARKERS)], s=36, zorder=3,
                       edgecolors="k" if is_base else "none", label=f"{figures.short(p.model, 22)} ({p.effective_robustness:+.1f})")
        ax.set_xscale("logit")
        ax.set_yscale("logit")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_xlabel("clean top-1 (%, logit axis)")
        ax.set_ylabel(f"{shifts.label(key)} top-1 (%)")
        ax.legend(loc="best")
        ticks = [t for t in TICKS if lo <= t <= hi]
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_locator(FixedLocator(ticks))
            axis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{100 * v:g}"))
            axis.set_minor_formatter(plt.NullFormatter())
        panels.append((f"{shifts.label(key)}: fit through {sub.fit_from.iloc[0]}; legend: effective robustness (points)",
                       figures.png(fig)))
    return panels


def table(er: pd.DataFrame) -> list[dict]:
    return [{"set": shifts.label(x.set), "model": x.model, CLEAN: f"{x.clean:.2f}", "shifted": f"{x.shifted:.2f}",
             "predicted": f"{x.predicted:.2f}", "er": f"{x.effective_robustness:+.2f}", "fit": x.fit_from}
            for _, x in er.iterrows()]
