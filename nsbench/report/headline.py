"""The headline measures per model (schema.HEADLINE: clean, -A, -C, -P, attacks) that some model holds, and the
bootstrap sampler of each (per model, from its per-image outcomes), which compare.py turns into intervals and
paired comparisons with the baseline."""
from __future__ import annotations

import json
import re
from dataclasses import replace

import numpy as np
import pandas as pd

from ..reference import C_BENCHMARK, P_TEST
from .. import schema
from ..schema import (A_TOP1, A_TOP1_BUILT_LABEL, ALL, CLEAN_CONDITION, CORRUPTIONS, FAILED, FP, HEADLINE, MEAN_ERR,
                      NATURAL_ADVERSARIAL, PARTIAL, PERTURBATIONS, T5D, TOP1_ERR, Measure, measure, measures_in,
                      lookup, unit_metric)
from . import stats
from .load import EvalResult

# The -C and -P means whose samplers this module builds
RELATIVE_MCE, MT5D, MEAN_FP = (schema.MEASURES[k] for k in (schema.RELATIVE_MCE, schema.MT5D, schema.MEAN_FP))
BUILT_A = ("built -A: images this dataset's reference classifiers all get wrong, without ImageNet-A's human label "
           "check; it measures errors shared with those models, not robustness to natural adversarial examples "
           "(see \"How the robustness sets were made\")")


def failure(r: EvalResult, task: str) -> str:
    """The reason a task failed for this model ("" when it did not)."""
    m = (r.rows.task == task) & (r.rows.metric == FAILED)
    return str(r.rows[m].note.iloc[0] or "no reason recorded") if m.any() else ""


def measures(evals: list[EvalResult]) -> list[Measure]:
    """The headline measures that some model holds a value (or a note) of, in the page's order: a fallback
    (`unless`) only where its measure is absent, and a_top1 labelled as built where a model's -A set was built."""
    if not evals:
        return []
    held = measures_in(pd.concat([r.rows for r in evals], ignore_index=True))
    names = {m.name for m in held}
    built_a = any("references" in ((r.meta.get("sets") or {}).get(NATURAL_ADVERSARIAL) or {}) for r in evals)
    out = []
    for m in held:
        if not m.headline or m.unless in names:
            continue
        if any(np.isfinite(v) or note for v, note in (m.lookup(r.rows) for r in evals)):
            out.append(replace(m, label=A_TOP1_BUILT_LABEL) if m.name == A_TOP1 and built_a else m)
    return out


def warning(m: Measure) -> str:
    """What a reader must know beside a measure: a partial mean is not the full one; a built -A set is not
    ImageNet-A."""
    if m.partial:
        full = measure(m.name.removesuffix(PARTIAL)).label
        return f"{m.label} covers an incomplete benchmark set: not comparable with {full}"
    return BUILT_A if m.label == A_TOP1_BUILT_LABEL else ""


def normaliser_eval(r: EvalResult, evals: list[EvalResult]) -> EvalResult | None:
    """The evaluated model that normalised r's CE / FR (its per-image outcomes can be resampled with r's)."""
    n = r.meta.get("normaliser") or {}
    sha = n.get("sha256")
    if n.get("kind") != "model" or not sha:
        return None
    return next((e for e in evals if (e.meta.get("model") or {}).get("sha256") == sha), None)


def data_key(r: EvalResult, task: str) -> str | None:
    """What r's task was scored on: the dataset's fingerprint and split, and the set the task built or read (its
    folder and fingerprint in meta.json's sets). Per-image outcomes pair only between equal keys; None: unknown."""
    d = r.meta.get("dataset") or {}
    info = (r.meta.get("sets") or {}).get(task)
    info = info if isinstance(info, dict) else {}
    used = {k: str(info[k]) for k in ("folder", "fingerprint", "source") if k in info}
    if not d.get("fingerprint") and not used:  # e.g. results written before fingerprints were recorded
        return None
    return json.dumps([str(d.get("fingerprint")), str(d.get("split")), used], sort_keys=True)


def _same_data(a: EvalResult | None, b: EvalResult, task: str) -> EvalResult | None:
    """a when it was scored on b's data for `task` (a normaliser's outcomes resample with b's only then)."""
    return a if a is not None and data_key(b, task) is not None and data_key(a, task) == data_key(b, task) else None


def _same_model(a: EvalResult | None, b: EvalResult) -> bool:
    """b is the normaliser itself (same checkpoint hash): its normalised numbers are 100 by definition."""
    sha = (b.meta.get("model") or {}).get("sha256")
    return a is not None and bool(sha) and (a.meta.get("model") or {}).get("sha256") == sha


def _pivot(per: pd.DataFrame | None, task: str, value: str, index) -> pd.DataFrame | None:
    if per is None or value not in per:
        return None
    p = per[(per.task == task) & (per.condition != CLEAN_CONDITION)] if task == CORRUPTIONS else per[per.task == task]
    p = p[p[value].notna()]
    if p.empty:
        return None
    try:
        piv = p.pivot(index=index, columns="image", values=value).sort_index()
    except ValueError:  # duplicated cells
        return None
    return None if piv.isna().any(axis=None) else piv.astype(float)


def _members(rows: pd.DataFrame, m: Measure, unit: str, order) -> list[str]:
    """The corruptions / perturbations behind a mean: the benchmark set with a per-condition row (for a partial
    mean, the names its condition lists)."""
    have = set(rows[(rows.task == m.task) & (rows.metric == unit)].condition)
    if m.partial:
        r = rows[(rows.task == m.task) & (rows.metric == m.metric)]
        listed = [x for x in re.split(r"[,;+ ]+", str(r.condition.iloc[0])) if x in have] if len(r) else []
        if listed:
            return listed
    return [c for c in order if c in have]


def _clean_error(rows: pd.DataFrame) -> float:
    return lookup(rows, CORRUPTIONS, TOP1_ERR, CLEAN_CONDITION)[0]


def c_sampler(r: EvalResult, m: Measure, ref: EvalResult | None, only: str | None = None) -> stats.Sampler | None:
    """The sampler of a -C mean; with `only`, of that one corruption's unit value (its CE, relative CE or mean
    error), for per-corruption intervals."""
    piv = _pivot(r.per_image, CORRUPTIONS, "correct", ["condition", "severity"])
    base = m.metric.removesuffix(PARTIAL)
    unit = unit_metric(base)
    point = m.lookup(r.rows)[0] if only is None else lookup(r.rows, m.task, unit, only)[0]
    if piv is None:
        return None
    members = [only] if only is not None else _members(r.rows, m, unit, C_BENCHMARK)
    members = [c for c in members if c in piv.index.get_level_values(0)]
    if not members:
        return None
    sub = piv.loc[members]
    groups = pd.Categorical(sub.index.get_level_values(0), categories=members).codes.astype(int)
    items = tuple(sub.columns)
    if base == MEAN_ERR:
        return stats.corruption(sub.to_numpy(), groups, items, point, kind=base)
    relative = base == RELATIVE_MCE.metric  # errors counted above the clean error
    clean = _clean_error(r.rows)
    if relative and not np.isfinite(clean):
        return None
    ref_piv = _pivot(ref.per_image, CORRUPTIONS, "correct", ["condition", "severity"]) if ref is not None else None
    if ref_piv is not None and ref_piv.columns.equals(sub.columns) and set(sub.index) <= set(ref_piv.index):
        rsub = ref_piv.loc[sub.index].to_numpy()
        g = np.eye(len(members))[groups]
        shift = _clean_error(ref.rows) * g.sum(0) if relative else 0.0
        den = lambda w: (100 * (1 - w @ rsub.T)) @ g - shift  # noqa: E731
    else:
        den = _c_constants(r.rows, members, unit, clean if relative else None)
    s = stats.corruption(sub.to_numpy(), groups, items, point, kind=base, den=den,
                         clean=(clean if relative else 0.0, 0))
    s.fixed = _same_model(ref, r)
    return s


def _c_constants(rows: pd.DataFrame, members: list[str], unit: str, clean: float | None) -> np.ndarray:
    """The normaliser's per-corruption denominators (%) recovered from the saved rows: CE = sum E / den."""
    out = []
    for c in members:
        e = rows[(rows.task == CORRUPTIONS) & (rows.condition == c) & (rows.metric == TOP1_ERR)].value.to_numpy(float)
        num = e.sum() - (len(e) * clean if clean is not None else 0.0)
        ratio = lookup(rows, CORRUPTIONS, unit, c)[0]
        out.append(100 * num / ratio if ratio else np.nan)
    return np.asarray(out, float)


def p_sampler(r: EvalResult, m: Measure, ref: EvalResult | None, only: str | None = None) -> stats.Sampler | None:
    """The sampler of a -P mean; with `only`, of that one perturbation's FR, T5D or flip probability."""
    base = m.metric.removesuffix(PARTIAL)
    t5d = base == MT5D.metric  # top-5 distances (raw, not in %), else flips
    value = T5D if t5d else "flip"
    piv = _pivot(r.per_image, PERTURBATIONS, value, "condition")
    if piv is None:
        return None
    unit = unit_metric(base)
    point = m.lookup(r.rows)[0] if only is None else lookup(r.rows, m.task, unit, only)[0]
    members = [p for p in ([only] if only is not None else _members(r.rows, m, unit, P_TEST)) if p in piv.index]
    if not members:
        return None
    v = piv.loc[members].to_numpy()
    items = tuple(piv.columns)
    if base == MEAN_FP.metric:
        return stats.perturbation(v, items, point)
    ref_piv = _pivot(ref.per_image, PERTURBATIONS, value, "condition") if ref is not None else None
    if ref_piv is not None and ref_piv.columns.equals(piv.columns) and set(members) <= set(ref_piv.index):
        rv = ref_piv.loc[members].to_numpy()
        den = lambda w: w @ rv.T  # noqa: E731
    else:
        num = np.array([lookup(r.rows, PERTURBATIONS, T5D if t5d else FP, p)[0] for p in members], float)
        with np.errstate(divide="ignore", invalid="ignore"):
            den = num / np.array([lookup(r.rows, PERTURBATIONS, unit, p)[0] for p in members], float)
        den = den * 100 if t5d else den  # fp rows are in %, t5d rows raw
    s = stats.perturbation(v, items, point, den=den)
    s.fixed = _same_model(ref, r)
    return s


def sampler(r: EvalResult, m: Measure, evals: list[EvalResult]) -> stats.Sampler | None:
    s = _sampler(r, m, evals)
    if s is not None:
        s.data = data_key(r, m.task)
    return s


def _sampler(r: EvalResult, m: Measure, evals: list[EvalResult]) -> stats.Sampler | None:
    if m.task == CORRUPTIONS:
        return c_sampler(r, m, _same_data(normaliser_eval(r, evals), r, m.task))
    if m.task == PERTURBATIONS:
        return p_sampler(r, m, _same_data(normaliser_eval(r, evals), r, m.task))
    per = r.per_image
    if per is None or "correct" not in per:
        return None
    p = per[(per.task == m.task) & per.correct.notna()]
    if m.condition is not None:  # a task's other conditions (clean's temperature-scaled rows) hold the same images
        p = p[p.condition == m.condition]
    if m.eps_255 is not None:
        p = p[p.eps_255 == m.eps_255]
    if p.empty or p.image.duplicated().any():
        return None
    p = p.sort_values("image")
    return stats.accuracy(p.correct.astype(bool).to_numpy(), tuple(p.image), m.lookup(r.rows)[0])


def _mean_of(task: str, unit: str) -> Measure:
    """The benchmark mean whose per-condition value is `unit`: mCE of CE, the mean error of itself, mFR of FR, the
    mean flip probability of the flip probability."""
    return next(m for m in HEADLINE if m.task == task and m.condition == ALL and unit_metric(m.metric) == unit)


def condition_intervals(evals: list[EvalResult], task: str, metric: str, conditions: list[str]) -> dict:
    """{(model, condition): (low, high)}: 95% bootstrap intervals of each corruption's CE (or mean error) or each
    perturbation's FR (or flip probability), resampling images (sequences) exactly as the headline means do; a
    cell whose per-image outcomes do not give back its saved value gets none."""
    m = _mean_of(task, metric)
    build = c_sampler if task == CORRUPTIONS else p_sampler
    out = {}
    for r in evals:
        ref = normaliser_eval(r, evals)
        for k, c in enumerate(conditions):
            s = build(r, m, ref, only=c)
            if s is not None and stats.reproduces(s):
                out[(r.label, c)] = stats.interval(s, seed=1000 + k)
    return out
