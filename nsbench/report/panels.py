"""The page's figure sections, each a titled grid of (caption, PNG data URI) panels: accuracy by severity per
corruption family, the per-condition dot plots (conditions.py picks CE or mean error, FR or flip probability),
adversarial accuracy against eps, and a Noisy Student run's progress and pseudo-labels."""
from __future__ import annotations

import numpy as np

from ..schema import CLEAN_CONDITION, CLEAN_TOP1, CORRUPTIONS, PERTURBATIONS, TOP1_ERR, lookup
from . import conditions, figures, figures_run, fmt
from .compare import Report
from .headline import condition_intervals
from .tables import ATTACK, severity_curves


def _clean_accuracy(report: Report) -> dict[str, float]:
    """Each model's clean top-1 (severity 0 of the curves): the -C task's clean images, else the clean task's."""
    head = report.head
    out = {}
    for r in report.evals:
        v = 100 - lookup(r.rows, CORRUPTIONS, TOP1_ERR, CLEAN_CONDITION)[0]
        out[r.label] = v if np.isfinite(v) else float(head[(head.model == r.label)
                                                           & (head.measure == CLEAN_TOP1)].value.mean())
    return out


def _dots(report: Report, task: str) -> tuple[str, str | None]:
    """(caption, dot plot) of the chosen per-condition metric of `task`, each dot with its 95% interval."""
    chosen, table = conditions.choose(report.evals, task)
    intervals = condition_intervals(report.evals, task, chosen.metric, list(table.index)) if len(table) else {}
    plot = figures.dots(table, chosen.axis, fmt.CORRUPTION_NAMES, 100.0 if chosen.normalised else None, intervals)
    return chosen.caption, plot


def section(report: Report) -> list[dict]:
    """The figure sections that have at least one panel, each keeping only its drawn panels."""
    sections = [
        ("Accuracy by severity, per corruption family",
         figures.severity_by_family(severity_curves(report.evals), _clean_accuracy(report))),
        ("Per corruption and per perturbation (lower is better; dashed line: the normaliser)",
         [_dots(report, CORRUPTIONS), _dots(report, PERTURBATIONS)]),
        ("Adversarial accuracy against eps", [("bars: 95% bootstrap intervals over images",
                                               figures.attack_curve(report.head[report.head.bench == ATTACK]))]),
        ("Noisy Student progress across iterations",
         figures_run.progress(figures_run.progress_points(report.head, report.evals), report.runs)),
        ("Pseudo-label statistics", figures_run.pseudo_stats(report.runs)),
    ]
    return [{"title": t, "panels": [(c, s) for c, s in panels if s]} for t, panels in sections
            if any(s for _, s in panels)]
