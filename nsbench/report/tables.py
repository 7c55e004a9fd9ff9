"""The benchmark tables, laid out as the papers print them (models as rows, one table per benchmark, its headline
measures as columns); cells carry the interval and the difference against the baseline, coloured only where that
difference's interval excludes zero. Each -C / -P table carries its per-condition table (conditions.py)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..schema import A_TOP1, CLEAN_CONDITION, CLEAN_TOP1, CORRUPTIONS, FGSM, HEADLINE, MEASURES, PERTURBATIONS, TOP1_ERR
from . import conditions, fmt
from .compare import Report
from .headline import failure
from .load import EvalResult

ATTACK = "attack"  # the attacks' group: its measures (ATTACK@EPS) are those the models hold
BENCHES = [(MEASURES[CLEAN_TOP1].group, "Clean"), ("-C", "Common corruptions (-C)"), ("-P", "Perturbations (-P)"),
           (MEASURES[A_TOP1].group, "Natural adversarial examples (-A)"), (ATTACK, "Adversarial attacks")]
# the task whose `failed` row explains an empty cell: a failed task writes it under its registry name (FGSM for attacks)
TASK_OF = {**{m.group: m.task for m in HEADLINE}, ATTACK: FGSM}
CONDITIONS_OF = {"-C": CORRUPTIONS, "-P": PERTURBATIONS}  # the per-condition table below a benchmark's


def cell(h: pd.Series | None, marks: set, *, failed: str = "") -> dict:
    """One table cell: value, interval, difference against the baseline; good/bad only when significant."""
    if h is None:
        return {"value": f"failed ({failed})" if failed else "–", "ci": "", "delta": "", "cls": "", "best": False,
                "title": "", "sort": ""}
    v = h.value
    value = fmt.value_or_note(v, h.note) if fmt.finite(v) or h.note else (f"failed ({failed})" if failed else "–")
    delta, cls = "", ""
    if fmt.finite(h["diff"]):
        delta = f"{fmt.signed(h['diff'])} {fmt.ci(h.diff_low, h.diff_high)}".strip()
        if h.verdict in ("better", "worse"):
            cls = "good" if h.verdict == "better" else "bad"
    title = "; ".join(x for x in (fmt.pvalues(h.p_value, h.get("p_adjusted")), h.test, h.note, h.warning) if x)
    interval = "(normaliser)" if "normaliser itself" in str(h.note) else fmt.ci(h.ci_low, h.ci_high)
    return {"value": value, "ci": interval, "delta": delta, "cls": cls,
            "best": (h.model, h.measure) in marks, "title": title, "sort": f"{v:.6g}" if fmt.finite(v) else ""}


def table_id(bench: str) -> str:
    return "bench-" + bench.strip("-").lower()


def note_ids(head: pd.DataFrame) -> dict[str, str]:
    """{warning: the id of its one notice on the page}: each benchmark table states its measures' warnings (a built
    -A set is not ImageNet-A, a partial mean is not the full one) once, above the table; a verdict line links there
    instead of repeating it."""
    out = {}
    for bench, _ in BENCHES:
        for i, w in enumerate(sorted({w for w in head[head.bench == bench].warning if w})):
            out.setdefault(w, f"{table_id(bench)}-note-{i}")
    return out


def bench_tables(head: pd.DataFrame, evals: list[EvalResult], marks: set, baseline: str | None) -> list[dict]:
    """One table per benchmark: rows models, columns that benchmark's headline measures (schema.HEADLINE's order;
    the attacks in the order the models hold them)."""
    out = []
    for bench, title in BENCHES:
        sub = head[head.bench == bench]
        held = set(sub.measure)
        present = (list(dict.fromkeys(sub.measure)) if bench == ATTACK
                   else [m.name for m in HEADLINE if m.group == bench and m.name in held])
        if not present:
            continue
        columns = [sub[sub.measure == k].label.iloc[0] for k in present]
        ids = note_ids(sub)
        warnings = [{"id": ids[w], "text": w} for w in sorted({w for w in sub.warning if w})]
        rows = []
        for r in evals:
            cells = []
            for k in present:
                hit = sub[(sub.model == r.label) & (sub.measure == k)]
                cells.append(cell(hit.iloc[0] if len(hit) else None, marks, failed=failure(r, TASK_OF[bench])))
            rows.append({"model": r.label, "baseline": r.label == baseline, "cells": cells})
        out.append({"id": table_id(bench), "bench": bench, "title": title, "columns": columns,
                    "rows": rows, "warnings": warnings, "conditions": None})
    return out


def bench_section(report: Report) -> list[dict]:
    """The benchmark tables, each -C / -P one with its per-condition table (CE per corruption, FR per perturbation,
    or their fallbacks)."""
    out = bench_tables(report.head, report.evals, report.marks, report.baseline)
    for t in out:
        if t["bench"] in CONDITIONS_OF:
            t["conditions"] = conditions.section(report.evals, CONDITIONS_OF[t["bench"]], report.baseline)
    return out


def severity_curves(evals: list[EvalResult]) -> pd.DataFrame:
    """Top-1 accuracy by corruption and severity: columns model, corruption, severity, acc."""
    out = []
    for r in evals:
        rows = r.rows
        m = ((rows.task == CORRUPTIONS) & (rows.metric == TOP1_ERR) & rows.severity.notna()
             & (rows.condition != CLEAN_CONDITION))
        sub = rows[m & np.isfinite(rows.value)]
        out.append(pd.DataFrame({"model": r.label, "corruption": sub.condition, "severity": sub.severity.astype(int),
                                 "acc": 100 - sub.value}))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()
