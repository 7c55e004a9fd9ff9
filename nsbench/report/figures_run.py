"""Figures of a Noisy Student run: headline numbers per iteration (on fixed, shared scales, with 95% intervals)
and pseudo-label statistics per class (named classes, one iteration per panel)."""
from __future__ import annotations

import json

from .figures import MARKERS, figure, png, short  # first: selects the Agg backend

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from ..runs import SPLIT  # noqa: E402
from ..schema import A_TOP1, CLEAN_TOP1, FGSM, MCE, MFR, MT5D, PGD, RELATIVE_MCE, attack_measure  # noqa: E402
from .load import EvalResult, RunResult  # noqa: E402

ACCURACY = [CLEAN_TOP1, A_TOP1, attack_measure(FGSM, 8).name, attack_measure(PGD, 8).name]
RELATIVE = [MCE, RELATIVE_MCE, MFR, MT5D]  # x100 relative to the normaliser


def progress_points(head: pd.DataFrame, evals: list[EvalResult]) -> pd.DataFrame:
    """Headline rows of models that carry an iteration number (meta.json model.iteration)."""
    it = {r.label: (r.meta.get("model") or {}).get("iteration") for r in evals}
    h = head.assign(iteration=head.model.map(it))
    return h[h.iteration.notna()].astype({"iteration": int})


def _panel(points: pd.DataFrame, keys: list[str], ylabel: str, ylim) -> str | None:
    sub = points[points.measure.isin(keys)]
    if sub.empty or sub.iteration.nunique() < 2:
        return None
    fig, ax = plt.subplots(figsize=(4.4, 3.2))
    for i, (_, g) in enumerate(sub.groupby("measure", sort=False)):
        g = g.sort_values("iteration")
        err = np.vstack([g.value - g.ci_low, g.ci_high - g.value]).astype(float)
        ax.errorbar(g.iteration, g.value, yerr=np.where(np.isfinite(err), err, 0.0), marker=MARKERS[i % 8],
                    capsize=3, label=g.label.iloc[0].replace(" (%)", ""))
    ax.set(xlabel="Noisy Student iteration", ylabel=ylabel, ylim=ylim(sub))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    return png(fig)


def _drawn(points: pd.DataFrame, keys: list[str]) -> str:
    """The measures a panel draws, as its legend names them ("clean, built -A, FGSM 8/255")."""
    sub = points[points.measure.isin(keys)].drop_duplicates("measure")
    return ", ".join(str(x).replace(" top-1 (%)", "").replace(" (%)", "") for x in sub.label)


@figure
def progress(points: pd.DataFrame, runs: list[RunResult]) -> list[tuple[str, str]]:
    """Accuracies on a 0-100 axis; normalised errors on an axis around 100 (iteration 0's own level) that does not
    zoom into noise: at least 60 to 140. Bars: 95% bootstrap intervals."""
    out = []
    acc = _panel(points, ACCURACY, "top-1 accuracy (%)", lambda s: (0, 100))
    if acc:
        out.append((f"Accuracy per iteration ({_drawn(points, ACCURACY)})", acc))

    def rel_lim(s):
        # from the values, not the whiskers: relative mCE's intervals can span hundreds (a small clean-error gap
        # in the denominator) and would flatten every line; whiskers beyond the panel run off its edge
        v = s.value.to_numpy(float)
        v = v[np.isfinite(v)]
        return min(60.0, v.min() - 10), max(140.0, v.max() + 10)

    rel = _panel(points, RELATIVE, "relative to the normaliser (100)", rel_lim)
    if rel:
        out.append((f"Normalised errors per iteration ({_drawn(points, RELATIVE)}; lower is better; whiskers "
                    "longer than the panel run off its edge)", rel))
    if not out:
        pts = pd.DataFrame([{"iteration": e["iteration"], "measure": "val", "label": "validation top-1", "value": e["val_top1"],
                             "ci_low": np.nan, "ci_high": np.nan}
                            for run in runs for e in run.summary.get("iterations", []) if e.get("val_top1") is not None])
        val = _panel(pts, ["val"], "validation top-1 (%)", lambda s: (0, 100)) if len(pts) else None
        if val:
            out.append(("Validation accuracy per iteration", val))
    return out


def class_names(run: RunResult, stats: dict) -> list[str] | None:
    """Class names from stats.json, else from the run's split.json (runs record their classes there), else from
    the pseudo-label statistics; None when the run folder does not say (the report reads saved results only)."""
    if isinstance(stats.get("classes"), list):
        return [str(c) for c in stats["classes"]]
    split = run.folder / SPLIT
    if split.exists():
        try:
            classes = json.loads(split.read_text()).get("classes")
        except (OSError, ValueError, AttributeError):
            classes = None
        if isinstance(classes, list):
            return [str(c) for c in classes]
    per = stats.get("per_class") or []
    if per and all("name" in p for p in per):
        return [str(p["name"]) for p in per]
    return None


@figure
def pseudo_stats(runs: list[RunResult]) -> list[tuple[str, str]]:
    """Per iteration: predicted images per class, split into selected-and-kept, dropped by balancing, below the
    confidence threshold; duplicates added by balancing drawn beside."""
    out = []
    for run in runs:
        for k in sorted(run.pseudo):
            st = run.pseudo[k]
            per = pd.DataFrame(st.get("per_class") or [])
            if per.empty or not {"predicted", "kept"} <= set(per.columns):
                continue
            names = class_names(run, st)
            labels = [names[int(c)] if names and int(c) < len(names) else f"class {c}" for c in per["class"]]
            for col in ("dropped_by_balance", "duplicated"):
                per[col] = per.get(col, 0)
            y = np.arange(len(per))[::-1]
            fig, ax = plt.subplots(figsize=(5.0, 1.2 + 0.3 * len(per)))
            used = per["kept"] - per["dropped_by_balance"]
            ax.barh(y, used, color="tab:green", label="kept and selected")
            ax.barh(y, per["dropped_by_balance"], left=used, color="tab:orange", label="dropped by balancing")
            ax.barh(y, per["predicted"] - per["kept"], left=per["kept"], color="tab:red", label="below threshold")
            ax.barh(y - 0.3, per["duplicated"], height=0.25, color="tab:purple", label="duplicated by balancing")
            ax.set_yticks(y, [short(s, 18) for s in labels])
            ax.set_xlabel("images")
            ax.grid(axis="x", alpha=0.3)
            fig.legend(loc="outside lower center", ncol=2, frameon=False)
            agree = st.get("agreement_kept")
            extra = f"; agreement of kept labels with the hidden labels {100 * agree:.1f}%" if agree is not None else ""
            out.append((f"Iteration {k}: pseudo-labels per class ({st.get('n_kept', '–')} of {st.get('n_unlabeled', '–')} "
                        f"kept{extra})", png(fig)))
    return out
