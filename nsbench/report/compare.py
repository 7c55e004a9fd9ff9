"""Headline numbers with intervals, differences against the baseline and a verdict per model and measure; the same
across seeds when several models share a label up to a `seed<N>` part (as a study names its runs)."""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..schema import METRICS, PARTIAL, Measure, usual_effect
from . import published, stats
from .calibration_table import calibration_tests
from .family import Tests, adjust, verdict
from .headline import failure, measures, sampler, warning
from .load import EvalResult, RunResult

SEED = re.compile(r"^(?P<pre>.*?)[-_.]?seed[-_]?(?P<seed>\d+)(?P<post>.*)$", re.IGNORECASE)
COLUMNS = ["model", "measure", "label", "bench", "higher_is_better", "value", "ci_low", "ci_high", "n", "note",
           "warning", "diff", "diff_low", "diff_high", "p_value", "p_adjusted", "test", "verdict", "se", "mde",
           "usual_effect", "resamples"]


def _row(r: EvalResult, m: Measure, s: stats.Sampler | None, seed: int) -> dict:
    value, note = m.lookup(r.rows)
    if not np.isfinite(value) and not note:
        note = failure(r, m.task)  # shown as "failed (reason)"
    lo = hi = np.nan
    if s is not None and stats.reproduces(s):
        lo, hi = stats.interval(s, seed)
        if s.fixed:
            note = note or "the normaliser itself: 100 by definition"
    elif np.isfinite(value):
        note = note or ("per-image outcomes missing: no interval" if s is None
                        else "per-image outcomes do not reproduce the saved value: no interval")
    return {"model": r.label, "measure": m.name, "label": m.label, "bench": m.group,
            "higher_is_better": m.higher_is_better, "value": value, "ci_low": lo, "ci_high": hi,
            "n": len(s.items) if s is not None else np.nan, "note": note, "warning": warning(m), "diff": np.nan,
            "diff_low": np.nan, "diff_high": np.nan, "p_value": np.nan, "p_adjusted": np.nan, "test": "", "verdict": "",
            "se": np.nan, "mde": np.nan, "usual_effect": usual_effect(m.metric), "resamples": 0}


def _digits(row) -> int:
    """Decimals of a headline row's measure (its metric's), for the MDE in a verdict."""
    from ..schema import measure

    try:
        return METRICS[measure(row.measure).metric.removesuffix(PARTIAL)].digits
    except (KeyError, ValueError):
        return 1


def headline(evals: list[EvalResult], baseline: str | None) -> pd.DataFrame:
    """One row per model and headline measure (see COLUMNS), Holm-adjusted as a family of its own (compare() adjusts
    it again together with every other test of the page)."""
    tests = headline_tests(evals, baseline)
    adjust(tests)
    return tests.frame


def headline_tests(evals: list[EvalResult], baseline: str | None) -> Tests:
    """The headline rows, not yet adjusted, with the redraw of each bootstrap test."""
    base = next((r for r in evals if r.label == baseline), None)
    out, redraw = [], {}
    for i, m in enumerate(measures(evals)):
        seed = 1000 * (i + 1)
        samplers = {r.label: sampler(r, m, evals) for r in evals}
        sb = samplers.get(baseline)
        ok_b = sb is not None and stats.reproduces(sb)
        for r in evals:
            s = samplers[r.label]
            row = _row(r, m, s, seed)
            if base is not None and r is not base:
                bv = m.lookup(base.rows)[0]
                row["diff"] = row["value"] - bv
                if ok_b and s is not None and stats.reproduces(s) and not (s.fixed and sb.fixed):
                    d = stats.difference(s, sb, seed + 1)
                    row.update(diff_low=d["diff_low"], diff_high=d["diff_high"], p_value=d["p"], test=d["test"],
                               se=d["se"], resamples=d["resamples"])
                    if d["resamples"]:
                        redraw[len(out)] = (lambda a, b, sd: lambda n: stats.difference(a, b, sd, n))(s, sb, seed + 1)
                row["verdict"] = verdict(row["diff_low"], row["diff_high"], m.higher_is_better)
            out.append(row)
    return Tests(pd.DataFrame(out, columns=COLUMNS), redraw, _digits)


def seed_groups(labels: list[str]) -> dict[str, dict[int, str]]:
    """name without its seed part -> {seed: label}, for names shared by two or more seeds."""
    groups: dict[str, dict[int, str]] = {}
    for lab in labels:
        m = SEED.match(lab)
        if m:
            key = (m["pre"] + m["post"]).strip("-_.") or "model"
            groups.setdefault(key, {})[int(m["seed"])] = lab
    return {k: v for k, v in groups.items() if len(v) >= 2}


def across_seeds(head: pd.DataFrame, baseline: str | None) -> pd.DataFrame:
    """Per seed group and measure: mean over seeds with a t-interval, and the difference against the baseline's
    group (paired by seed when both hold the same seeds) or against the single baseline model."""
    groups = seed_groups(list(dict.fromkeys(head.model)))
    if not groups:
        return pd.DataFrame()
    base_group = next((k for k, g in groups.items() if baseline in g.values()), None)
    out = []
    for key, members in groups.items():
        for measure, sub in head[head.model.isin(members.values())].groupby("measure", sort=False):
            vals = _by_seed(sub, members)
            mean, lo, hi = stats.seeds_interval(np.array(list(vals.values())))
            row = {"group": key, "measure": measure, "label": sub.label.iloc[0], "seeds": len(vals), "value": mean,
                   "ci_low": lo, "ci_high": hi, "diff": np.nan, "diff_low": np.nan, "diff_high": np.nan,
                   "p_value": np.nan, "p_adjusted": np.nan, "test": "", "verdict": "",
                   "higher_is_better": bool(sub.higher_is_better.iloc[0]), "se": np.nan, "dof": np.nan,
                   "mde": np.nan, "usual_effect": sub.usual_effect.iloc[0] if "usual_effect" in sub else np.nan,
                   "resamples": 0}
            if base_group is not None and key != base_group and len(vals) >= 2:
                bvals = _by_seed(head[head.measure == measure], groups[base_group])
                d = stats.seeds_difference(vals, bvals)
                row.update(diff=d["diff"], diff_low=d["diff_low"], diff_high=d["diff_high"], p_value=d["p"], test=d["test"],
                           se=d.get("se", np.nan), dof=d.get("dof", np.nan))
                row["verdict"] = verdict(d["diff_low"], d["diff_high"], row["higher_is_better"])
                if d.get("flag"):
                    row["verdict"], row["test"] = "no interval (zero variance across seeds)", f"{d['test']}: {d['flag']}"
            out.append(row)
    df = pd.DataFrame(out)
    adjust(Tests(df, digits=_digits))  # its own family; compare() adjusts it again with every test of the page
    return df


def _by_seed(rows: pd.DataFrame, members: dict[int, str]) -> dict[int, float]:
    """seed -> finite value of one measure."""
    out = {}
    for seed, label in members.items():
        v = rows[rows.model == label].value
        if len(v) and np.isfinite(v.iloc[0]):
            out[seed] = float(v.iloc[0])
    return out


def _separated(best, runner, higher: bool) -> bool:
    """Whether the best value's 95% interval lies wholly beyond the runner-up's (missing intervals: no)."""
    lo, hi = (best.ci_low, runner.ci_high) if higher else (runner.ci_low, best.ci_high)
    return bool(np.isfinite(lo) and np.isfinite(hi) and lo > hi)


def best_marks(head: pd.DataFrame, baseline: str | None) -> set[tuple[str, str]]:
    """(model, measure) pairs that earn a best mark: the best value of a measure, and only where the intervals
    say so: its 95% interval does not overlap the runner-up's, and a non-baseline model's difference against the
    baseline excludes zero in the good direction (the baseline: every other model is significantly worse)."""
    marks = set()
    for measure, sub in head.groupby("measure", sort=False):
        sub = sub[np.isfinite(sub.value)]
        if len(sub) < 2:
            continue
        higher = bool(sub.higher_is_better.iloc[0])
        ranked = sub.sort_values("value", ascending=not higher)
        best, runner = ranked.iloc[0], ranked.iloc[1]
        if not _separated(best, runner, higher):  # the runner-up's interval reaches the best's: no winner to mark
            continue
        if best.model != baseline:
            if best.verdict == "better":
                marks.add((best.model, measure))
        elif (sub[sub.model != baseline].verdict == "worse").all():
            marks.add((best.model, measure))
    return marks


@dataclass
class Report:
    """What every section of the page reads: the models and runs, the baseline, the headline numbers compared with it
    (and across seeds, Holm-adjusted as one family), the best marks, and what the caller asked for."""
    evals: list[EvalResult]
    runs: list[RunResult]
    baseline: str | None
    head: pd.DataFrame
    seeds: pd.DataFrame
    marks: set[tuple[str, str]]
    title: str
    study: dict | None = None  # nsbench/study `report_spec()`: its claims replace the per-model verdicts
    er_baselines: list[str] | None = None  # models the effective-robustness lines go through
    calibration: pd.DataFrame | None = None  # calibration_table.calibration_frame, its tests in the family
    published: pd.DataFrame | None = None  # published.published_vs_measured, decided with the family
    n_tests: int = 0  # the family's size: every test with a verdict on the page (a study's claims are their own)


def compare(evals: list[EvalResult], runs: list[RunResult], baseline: str | None, title: str,
            study: dict | None = None, er_baselines: list[str] | None = None) -> Report:
    tests = headline_tests(evals, baseline) if evals else Tests(pd.DataFrame(columns=["model", "measure", "bench"]))
    head = tests.frame
    seeds = across_seeds(head, baseline) if len(head) else pd.DataFrame()
    cal = calibration_tests(evals, baseline) if evals else Tests(pd.DataFrame(columns=["model"]))
    pub = Tests(published.published_vs_measured(evals, head) if evals else pd.DataFrame(columns=published.COLUMNS))
    # one family: every test with a verdict on this page
    size = adjust(tests, Tests(seeds, digits=_digits), cal, pub)
    pub_frame = published.decide(pub.frame) if len(pub.frame) else pub.frame
    marks = best_marks(head, baseline) if len(head) else set()
    return Report(evals, runs, baseline, head, seeds, marks, title, study, er_baselines, cal.frame, pub_frame, size)
