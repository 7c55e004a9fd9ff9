"""The page's figure sections, each a titled grid of (caption, PNG data URI) panels: accuracy by severity per
corruption family, the per-condition dot plots (conditions.py picks CE or mean error, FR or flip probability),
adversarial accuracy against eps, and a Noisy Student run's progress and pseudo-labels. Titles and captions name only
what is drawn: the normaliser's dashed line where a CE / FR plot draws it, bars where there are intervals."""
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
    """(caption, dot plot) of the chosen per-condition metric of `task`, each dot with its 95% interval; the caption
    names the bars and the normaliser's dashed line only where the plot draws them."""
    chosen, table = conditions.choose(report.evals, task)
    intervals = condition_intervals(report.evals, task, chosen.metric, list(table.index)) if len(table) else {}
    plot = figures.dots(table, chosen.axis, fmt.CORRUPTION_NAMES, 100.0 if chosen.normalised else None, intervals)
    over = "sequences" if task == PERTURBATIONS else "images"
    drawn = ([f"bars: 95% bootstrap intervals over {over}"] if intervals else []) + (
        ["dashed line: the normaliser (100)"] if chosen.normalised else [])
    return chosen.caption + (f" ({'; '.join(drawn)})" if drawn else ""), plot


def _per_condition(report: Report) -> tuple[str, list[tuple[str, str | None]]]:
    """The dot plots' section, titled by the plots it holds."""
    panels = [_dots(report, CORRUPTIONS), _dots(report, PERTURBATIONS)]
    names = [n for n, (_, plot) in zip(("corruption", "perturbation"), panels) if plot]
    return f"Per {' and per '.join(names) or 'condition'} (lower is better)", panels


def _attacks(report: Report) -> list[tuple[str, str | None]]:
    rows = report.head[report.head.bench == ATTACK]
    bars = bool(len(rows)) and bool(np.isfinite(rows[["ci_low", "ci_high"]].to_numpy(float)).all(axis=1).any())
    caption = "top-1 accuracy per model and attack" + ("; bars: 95% bootstrap intervals over images" if bars else "")
    return [(caption, figures.attack_curve(rows))]


def section(report: Report) -> list[dict]:
    """The figure sections that have at least one panel, each keeping only its drawn panels."""
    sections = [
        ("Accuracy by severity, per corruption family",
         figures.severity_by_family(severity_curves(report.evals), _clean_accuracy(report))),
        _per_condition(report),
        ("Adversarial accuracy against eps", _attacks(report)),
        ("Noisy Student progress across iterations",
         figures_run.progress(figures_run.progress_points(report.head, report.evals), report.runs)),
        ("Pseudo-label statistics", figures_run.pseudo_stats(report.runs)),
    ]
    return [{"title": t, "panels": [(c, s) for c, s in panels if s]} for t, panels in sections
            if any(s for _, s in panels)]
