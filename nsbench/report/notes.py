"""What the page warns about in words: failed tasks and undefined values, comparisons that could not pair images,
and what a verdict of single training runs does not cover."""
from __future__ import annotations

import pandas as pd

from ..schema import FAILED
from . import fmt
from .compare import Report
from .load import EvalResult


def failed_notes(evals: list[EvalResult]) -> list[str]:
    """Failed tasks and undefined values, in words."""
    out = []
    for r in evals:
        rows = r.rows[r.rows.value.isna() | (r.rows.metric == FAILED)]
        for _, x in rows.iterrows():
            what = fmt.task_label(x.task)
            if x.metric == FAILED:
                out.append(f"{r.label}: {what} failed ({x.note or 'no reason recorded'})")
            else:
                out.append(f"{r.label}: {what}, {fmt.name(x.condition)}, {fmt.metric_label(x.metric)}: "
                           f"{x.note or 'undefined'}")
    return out


def unpaired_notes(head: pd.DataFrame, baseline: str | None) -> list[str]:
    """Comparisons that could not pair images because the two models were scored on different data."""
    if "test" not in head:
        return []
    rows = head[head.test.astype(str).str.contains("not paired", regex=False)]
    out = []
    for model, sub in rows.groupby("model", sort=False):
        different = sub.test.str.contains("different data").any()
        why = "scored on different data" if different else "a dataset fingerprint is missing"
        out.append(f"{model} against {baseline}: {why}, so the differences are unpaired (no image-by-image test) "
                   f"for {', '.join(sub.label)}")
    return out


def section(report: Report) -> list[str]:
    return failed_notes(report.evals) + unpaired_notes(report.head, report.baseline)


def one_run_note(evals: list[EvalResult], seeds: pd.DataFrame) -> str:
    """The verdicts of single training runs describe those runs: say so, and where training randomness is measured."""
    if len(seeds) or not evals:
        return ""
    found = sorted({str(s) for r in evals if (s := (r.meta.get("model") or {}).get("train_seed")) is not None})
    which = f" (training seed {', '.join(found)})" if found else ""
    return (f"These verdicts cover one training run per model{which}: their intervals and p values are over the test "
            f"images and say nothing about training randomness. Another seed, or the same seed on another machine, "
            f"moves single-run numbers. `nsbench study paper_ablations` trains every variant over several seeds and "
            f"tests the paper's claims across them.")
