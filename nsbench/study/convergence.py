"""Whether a study's scale trains to convergence: the doubling test.

Under an annealed schedule the end of every run rises as the learning rate decays, so a curve that flattens says
nothing about convergence. The test that does: train the same thing over twice the budget (the same schedule,
stretched) and see whether the final accuracy moves. `nsbench study NAME --check-convergence` retrains, for every
seed, the teacher and the study's reference variant's iteration-1 student (`convergence.variant`, the recipe) at
`convergence.factor` x the scale's budgets, scores them with the study's suite, and compares their clean top-1 with
the scale's own runs:

    passed  when |mean over seeds of (top-1 at factor x budget - top-1 at the budget)| < tolerance (0.3 points)
            for the teacher and for the student alike.

A study run without the check reads the result recorded for its scale in the study file (`convergence.measured`),
so every report says whether its claims rest on converged models, and which scale failed the test.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..report.stats import seeds_interval
from ..schema import CLEAN_TOP1, MEASURES
from .spec import TEACHER, Study

PASSED, FAILED, UNTESTED = "passed", "failed", "not tested"


def clean_top1(folder: Path) -> float | None:
    """Clean top-1 of one evaluated checkpoint (its results.csv), None when it was not scored."""
    path = folder / "results.csv"
    if not path.is_file():
        return None
    v = MEASURES[CLEAN_TOP1].lookup(pd.read_csv(path))[0]
    return None if np.isnan(v) else v


def _role(base: dict, doubled: dict) -> dict:
    seeds = sorted(set(base) & set(doubled))
    diffs = np.array([doubled[s] - base[s] for s in seeds])
    out = {"base": {str(s): base[s] for s in seeds}, "doubled": {str(s): doubled[s] for s in seeds},
           "change": {str(s): round(float(d), 4) for s, d in zip(seeds, diffs)}, "seeds": len(seeds)}
    if len(seeds):
        out["mean_change"] = round(float(diffs.mean()), 4)
    if len(seeds) >= 2:
        _, low, high = seeds_interval(diffs)  # the 95% t-interval over seeds the study's claims use
        half = (high - low) / 2  # about the rounded mean, as recorded in the study files
        out["interval"] = [round(out["mean_change"] - half, 4), round(out["mean_change"] + half, 4)]
    return out


def doubling_test(study: Study, out: Path) -> dict:
    """The doubling test of this study's scale: measured from this folder's runs when the study holds them (this
    invocation or an earlier one with --check-convergence), else the study file's record for the scale."""
    conv = study.spec.convergence
    head = {"scale": study.scale, "factor": conv.factor, "tolerance": conv.tolerance, "variant": conv.variant}
    measured = _measure(study, out) if (study.doubled or _has_doubled(study, out)) else None
    if measured is None:
        rec = (conv.measured or {}).get(study.scale)
        if not rec:
            return {**head, "status": UNTESTED, "source": "none: run the study with --check-convergence"}
        status = PASSED if rec.get("passed") else FAILED
        return {**head, **rec, "status": status, "source": f"recorded in {study.path.name} (convergence.measured."
                                                             f"{study.scale})"}
    return {**head, **measured, "source": "measured in this study folder"}


def _has_doubled(study: Study, out: Path) -> bool:
    return (out / "eval" / f"{TEACHER}-x{study.spec.convergence.factor}-seed{study.seeds[0]}-iter0").is_dir()


def _measure(study: Study, out: Path) -> dict | None:
    conv = study.spec.convergence
    f = conv.factor
    vals = {role: ({}, {}) for role in ("teacher", "student")}
    for s in study.seeds:
        pairs = {"teacher": (study.label(TEACHER, s), f"{TEACHER}-x{f}-seed{s}-iter0"),
                 "student": (study.label(f"{conv.variant}@1", s), f"{conv.variant}-x{f}-seed{s}-iter1")}
        for role, (base, doubled) in pairs.items():
            b, d = clean_top1(out / "eval" / base), clean_top1(out / "eval" / doubled)
            if b is not None and d is not None:
                vals[role][0][s], vals[role][1][s] = b, d
    res = {role: _role(*v) for role, v in vals.items()}
    if not all(r["seeds"] for r in res.values()):
        return None
    ok = all(abs(r["mean_change"]) < conv.tolerance for r in res.values())
    complete = all(r["seeds"] == len(study.seeds) for r in res.values())
    return {**res, "seeds": study.seeds, "passed": ok,
            "status": (PASSED if ok else FAILED) if complete else f"{PASSED if ok else FAILED} (incomplete: "
                                                                   f"{min(r['seeds'] for r in res.values())} of "
                                                                   f"{len(study.seeds)} seeds)"}


def describe(test: dict) -> str:
    """One line for logs, notes next to claims and the README."""
    if test["status"] == UNTESTED:
        return f"convergence not tested at scale {test['scale']} (nsbench study ... --check-convergence)"
    parts = []
    for role in ("teacher", "student"):
        r = test.get(role) or {}
        if "mean_change" in r:
            ci = r.get("interval")
            parts.append(f"{role} {r['mean_change']:+.2f}" + (f" [{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else ""))
    verdict = "converged" if test.get("passed") else "NOT converged"
    return (f"{verdict} at scale {test['scale']}: x{test['factor']} the budget moves clean top-1 by "
            f"{', '.join(parts)} points (mean over seeds; tolerance {test['tolerance']})")
