"""Tables from tidy rows: per-benchmark tables laid out as the papers print them (models as rows), per-corruption
CE and per-perturbation FR, severity curves; cells carry the interval and the difference against the baseline,
coloured only where that difference's interval excludes zero."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..reference import C_BENCHMARK, P_TEST
from ..schema import A_TOP1, C_MEAN_ERR, CLEAN, CLEAN_TOP1, CORRUPTIONS, FGSM, NATURAL_ADVERSARIAL, PERTURBATIONS
from . import fmt as F
from .figures import FAMILIES
from .headline import failure, lookup
from .load import EvalResult

BENCHES = [("clean", "Clean", [CLEAN_TOP1]),
           ("-C", "Common corruptions (-C)", ["mce", "mce_partial", "relative_mce", "relative_mce_partial", C_MEAN_ERR]),
           ("-P", "Perturbations (-P)", ["mfr", "mfr_partial", "mt5d", "mt5d_partial", "mean_fp"]),
           ("-A", "Natural adversarial examples (-A)", [A_TOP1]),
           ("attack", "Adversarial attacks", None)]
# the task whose `failed` row explains an empty cell: a failed task writes it under its registry name (FGSM for attacks)
TASK_OF = {"clean": CLEAN, "-C": CORRUPTIONS, "-P": PERTURBATIONS, "-A": NATURAL_ADVERSARIAL, "attack": FGSM}


def cell(h: pd.Series | None, marks: set, *, failed: str = "") -> dict:
    """One table cell: value, interval, difference against the baseline; good/bad only when significant."""
    if h is None:
        return {"value": f"failed ({failed})" if failed else "–", "ci": "", "delta": "", "cls": "", "best": False,
                "title": "", "sort": ""}
    v = h.value
    value = F.value_or_note(v, h.note) if F.finite(v) or h.note else (f"failed ({failed})" if failed else "–")
    delta, cls = "", ""
    if F.finite(h["diff"]):
        delta = f"{F.signed(h['diff'])} {F.ci(h.diff_low, h.diff_high)}".strip()
        if h.verdict in ("better", "worse"):
            cls = "good" if h.verdict == "better" else "bad"
    title = "; ".join(x for x in (F.pvalues(h.p_value, h.get("p_adjusted")), h.test, h.note, h.warning) if x)
    interval = "(normaliser)" if "normaliser itself" in str(h.note) else F.ci(h.ci_low, h.ci_high)
    return {"value": value, "ci": interval, "delta": delta, "cls": cls,
            "best": (h.model, h.measure) in marks, "title": title, "sort": f"{v:.6g}" if F.finite(v) else ""}


def bench_tables(head: pd.DataFrame, evals: list[EvalResult], marks: set, baseline: str | None) -> list[dict]:
    """One table per benchmark: rows models, columns that benchmark's headline measures."""
    out = []
    for bench, title, keys in BENCHES:
        sub = head[head.bench == bench]
        present = list(dict.fromkeys(sub.measure)) if keys is None else [k for k in keys if k in set(sub.measure)]
        if not present:
            continue
        columns = [sub[sub.measure == k].label.iloc[0] for k in present]
        warnings = sorted({w for w in sub.warning if w})
        rows = []
        for r in evals:
            task = TASK_OF[bench]
            cells = []
            for k in present:
                hit = sub[(sub.model == r.label) & (sub.measure == k)]
                cells.append(cell(hit.iloc[0] if len(hit) else None, marks, failed=failure(r, task)))
            rows.append({"model": r.label, "baseline": r.label == baseline, "cells": cells})
        out.append({"id": "bench-" + bench.strip("-").lower(), "title": title, "columns": columns, "rows": rows,
                    "warnings": warnings})
    return out


def per_condition(evals: list[EvalResult], task: str, metric: str) -> pd.DataFrame:
    """Rows: conditions (corruptions / perturbations, in the papers' order); columns: models."""
    frames = []
    for r in evals:
        m = (r.rows.task == task) & (r.rows.metric == metric) & (r.rows.condition != "all")
        frames.append(r.rows[m].drop_duplicates("condition").set_index("condition").value.rename(r.label))
    if not frames or all(f.empty for f in frames):
        return pd.DataFrame()
    df = pd.concat(frames, axis=1)
    order = list(C_BENCHMARK if task == "corruptions" else P_TEST)
    return df.loc[[c for c in order if c in df.index] + [c for c in df.index if c not in order]]


def condition_table(evals: list[EvalResult], task: str, metric: str, baseline: str | None) -> dict | None:
    """Models as rows, conditions as columns (grouped by corruption family for -C): the papers' layout."""
    df = per_condition(evals, task, metric)
    if df.empty:
        return None
    conds = list(df.index)
    groups = []
    if task == "corruptions":
        for fam, names in FAMILIES.items():
            n = sum(1 for c in conds if c in names)
            if n:
                groups.append({"name": fam, "span": n})
        known = [c for fam in FAMILIES.values() for c in fam]
        conds = [c for c in known if c in conds] + [c for c in conds if c not in known]
    rows = []
    for r in evals:
        vals = []
        for c in conds:
            v, note = lookup(r.rows, task, metric, c)
            vals.append(F.value_or_note(v, note, 0 if metric in ("ce", "fr", "relative_ce") else 1))
        rows.append({"model": r.label, "baseline": r.label == baseline, "vals": vals})
    return {"columns": [(F.short_name(c), F.name(c)) for c in conds], "groups": groups, "rows": rows}


def severity_curves(evals: list[EvalResult]) -> pd.DataFrame:
    """Top-1 accuracy by corruption and severity: columns model, corruption, severity, acc."""
    out = []
    for r in evals:
        rows = r.rows
        m = (rows.task == "corruptions") & (rows.metric == "top1_err") & rows.severity.notna() & (rows.condition != "clean")
        sub = rows[m & np.isfinite(rows.value)]
        out.append(pd.DataFrame({"model": r.label, "corruption": sub.condition, "severity": sub.severity.astype(int),
                                 "acc": 100 - sub.value}))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()
