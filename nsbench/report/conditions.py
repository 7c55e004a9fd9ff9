"""Per-condition numbers: CE per corruption, else (no normaliser) the mean error per corruption; FR per
perturbation, else the flip probability. `choose` picks one of each pair, once, for the table under the benchmark
table and for the dot plot; rows are the conditions in the papers' order, grouped by corruption family for -C."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..reference import C_BENCHMARK, P_TEST
from ..schema import ALL, CE, CORRUPTIONS, FP, FR, MEAN_ERR, METRICS, PERTURBATIONS, lookup
from . import fmt
from .figures import FAMILIES
from .load import EvalResult


@dataclass(frozen=True)
class PerCondition:
    """One per-condition metric of a task and how the page names it."""
    task: str
    metric: str
    heading: str  # above the table
    axis: str  # the dot plot's axis
    caption: str  # the dot plot's caption

    @property
    def normalised(self) -> bool:
        """100 = the normaliser (CE, FR): the dot plot draws it as a dashed line."""
        return METRICS[self.metric].unit == ""


# per task: the normalised metric, then its fallback when the results hold none (no normaliser); each caption names
# what its dot plot draws (panels.py adds the bars and the normaliser's line only where they are drawn)
CHOICES = {
    CORRUPTIONS: (PerCondition(CORRUPTIONS, CE, "CE per corruption (100 = normaliser)", "CE (100 = normaliser)",
                               "corruption error per corruption"),
                  PerCondition(CORRUPTIONS, MEAN_ERR, "mean top-1 error per corruption (%)", "mean top-1 error (%)",
                               "mean top-1 error per corruption")),
    PERTURBATIONS: (PerCondition(PERTURBATIONS, FR, "FR per perturbation (100 = normaliser)", "FR (100 = normaliser)",
                                 "flip rate per perturbation"),
                    PerCondition(PERTURBATIONS, FP, "Flip probability per perturbation (%)", "flip probability (%)",
                                 "flip probability per perturbation")),
}


def per_condition(evals: list[EvalResult], task: str, metric: str) -> pd.DataFrame:
    """Rows: conditions (corruptions / perturbations, in the papers' order); columns: models."""
    frames = []
    for r in evals:
        m = (r.rows.task == task) & (r.rows.metric == metric) & (r.rows.condition != ALL)
        frames.append(r.rows[m].drop_duplicates("condition").set_index("condition").value.rename(r.label))
    if not frames or all(f.empty for f in frames):
        return pd.DataFrame()
    df = pd.concat(frames, axis=1)
    order = list(C_BENCHMARK if task == CORRUPTIONS else P_TEST)
    return df.loc[[c for c in order if c in df.index] + [c for c in df.index if c not in order]]


def choose(evals: list[EvalResult], task: str) -> tuple[PerCondition, pd.DataFrame]:
    """The normalised metric of `task` where the results hold it, else its fallback; with its per-condition frame."""
    first, fallback = CHOICES[task]
    table = per_condition(evals, task, first.metric)
    return (first, table) if not table.empty else (fallback, per_condition(evals, task, fallback.metric))


def condition_table(evals: list[EvalResult], task: str, metric: str, baseline: str | None) -> dict | None:
    """Models as rows, conditions as columns (grouped by corruption family for -C): the papers' layout."""
    df = per_condition(evals, task, metric)
    if df.empty:
        return None
    conds = list(df.index)
    groups = []
    if task == CORRUPTIONS:
        for fam, names in FAMILIES.items():
            n = sum(1 for c in conds if c in names)
            if n:
                groups.append({"name": fam, "span": n})
        known = [c for fam in FAMILIES.values() for c in fam]
        conds = [c for c in known if c in conds] + [c for c in conds if c not in known]
    rows = []
    for r in evals:
        vals = [fmt.value_or_note(*lookup(r.rows, task, metric, c), METRICS[metric].digits) for c in conds]
        rows.append({"model": r.label, "baseline": r.label == baseline, "vals": vals})
    return {"columns": [(fmt.short_name(c), fmt.name(c)) for c in conds], "groups": groups, "rows": rows}


def section(evals: list[EvalResult], task: str, baseline: str | None) -> dict | None:
    """The table under a benchmark's: its heading, its id (the task) and the table; None when there is none."""
    chosen, _ = choose(evals, task)
    table = condition_table(evals, task, chosen.metric, baseline)
    return {"id": task, "heading": chosen.heading, **table} if table else None
