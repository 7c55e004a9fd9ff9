"""The headline numbers per model (clean, -A, -C, -P, attacks), each with a 95% interval and a paired
comparison with the baseline, as one tidy frame that the verdict, the tables and headline.csv share."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..reference import C_BENCHMARK, P_TEST
from ..schema import (A_TOP1, ATTACKS, C_MEAN_ERR, CLEAN, CLEAN_TOP1, CORRUPTIONS, NATURAL_ADVERSARIAL, PERTURBATIONS,
                      attack_measure)
from . import stats as S
from .load import EvalResult

ATTACK_LABELS = {attack: attack.upper() for attack in ATTACKS}  # FGSM, PGD
BUILT_A = ("built -A: images this dataset's reference classifiers all get wrong, without ImageNet-A's human label "
           "check; it measures errors shared with those models, not robustness to natural adversarial examples "
           "(see \"How the robustness sets were made\")")


@dataclass
class Measure:
    key: str
    label: str
    bench: str  # clean, -C, -P, -A, attack
    task: str
    metric: str
    higher: bool
    condition: str | None = None  # None: any condition (for -A and *_partial)
    eps: float | None = None
    warning: str = ""


def lookup(rows: pd.DataFrame, task: str, metric: str, condition: str | None = None,
           eps: float | None = None) -> tuple[float, str]:
    """(value, note) of one saved row; (nan, "") when absent."""
    m = (rows.task == task) & (rows.metric == metric)
    if condition is not None:
        m &= rows.condition == condition
    if eps is not None and "eps_255" in rows:
        m &= rows.eps_255 == eps
    if not m.any():
        return np.nan, ""
    r = rows[m].iloc[0]
    return float(r.value), str(r.get("note", "") or "")


def failure(r: EvalResult, task: str) -> str:
    """The reason a task failed for this model ("" when it did not)."""
    m = (r.rows.task == task) & (r.rows.metric == "failed")
    return str(r.rows[m].note.iloc[0] or "no reason recorded") if m.any() else ""


def measures(evals: list[EvalResult]) -> list[Measure]:
    """The headline measures present in at least one model, in the page's order."""
    have = {(t, m) for r in evals for t, m in zip(r.rows.task, r.rows.metric)}
    built_a = any("references" in ((r.meta.get("sets") or {}).get(NATURAL_ADVERSARIAL) or {}) for r in evals)
    out = [Measure(CLEAN_TOP1, "clean top-1 (%)", "clean", CLEAN, "top1_acc", True, "clean"),
           Measure(A_TOP1, "built -A top-1 (%)" if built_a else "-A top-1 (%)", "-A", NATURAL_ADVERSARIAL,
                   "top1_acc", True, warning=BUILT_A if built_a else "")]
    for metric, label, task, bench in (("mce", "mCE", CORRUPTIONS, "-C"), ("relative_mce", "relative mCE", CORRUPTIONS, "-C"),
                                       ("mfr", "mFR", PERTURBATIONS, "-P"), ("mt5d", "mT5D", PERTURBATIONS, "-P")):
        if (task, metric) in have:
            out.append(Measure(metric, label, bench, task, metric, False, "all"))
        if (task, f"{metric}_partial") in have:
            out.append(Measure(f"{metric}_partial", f"{label} (partial)", bench, task, f"{metric}_partial", False,
                               warning=f"{label} (partial) covers an incomplete benchmark set: not comparable with {label}"))
        if metric == "relative_mce":
            out.append(Measure(C_MEAN_ERR, "-C mean error (%)", "-C", CORRUPTIONS, "mean_err", False, "all"))
    if (PERTURBATIONS, "mfr") not in have and (PERTURBATIONS, "mean_fp") in have:
        out.append(Measure("mean_fp", "-P mean flip probability (%)", "-P", PERTURBATIONS, "mean_fp", False, "all"))
    # an attack's rows carry its name as their task and condition (schema.ATTACKS): FGSM and PGD each get measures
    attacks = sorted({(str(t), float(e)) for r in evals for t, e in zip(r.rows.task, r.rows.get("eps_255", []))
                      if t in ATTACKS and np.isfinite(e) and e > 0})
    for attack, eps in attacks:
        out.append(Measure(attack_measure(attack, eps), f"{ATTACK_LABELS[attack]} {eps:g}/255 top-1 (%)", "attack",
                           attack, "top1_acc", True, attack, eps))
    present = [m for m in out if any(np.isfinite(lookup(r.rows, m.task, m.metric, m.condition, m.eps)[0])
                                     or lookup(r.rows, m.task, m.metric, m.condition, m.eps)[1] for r in evals)]
    return present


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
    p = per[(per.task == task) & (per.condition != "clean")] if task == "corruptions" else per[per.task == task]
    p = p[p[value].notna()]
    if p.empty:
        return None
    try:
        piv = p.pivot(index=index, columns="image", values=value).sort_index()
    except ValueError:  # duplicated cells
        return None
    return None if piv.isna().any(axis=None) else piv.astype(float)


def _members(rows: pd.DataFrame, m: Measure, unit_metric: str, order) -> list[str]:
    """The corruptions / perturbations behind a mean: the benchmark set with a per-condition row (for a partial
    mean, the names its condition lists)."""
    have = set(rows[(rows.task == m.task) & (rows.metric == unit_metric)].condition)
    if m.metric.endswith("_partial"):
        r = rows[(rows.task == m.task) & (rows.metric == m.metric)]
        listed = [x for x in re.split(r"[,;+ ]+", str(r.condition.iloc[0])) if x in have] if len(r) else []
        if listed:
            return listed
    return [c for c in order if c in have]


def c_sampler(r: EvalResult, m: Measure, ref: EvalResult | None, only: str | None = None) -> S.Sampler | None:
    """The sampler of a -C mean; with `only`, of that one corruption's unit value (its CE, relative CE or mean
    error), for per-corruption intervals."""
    piv = _pivot(r.per_image, "corruptions", "correct", ["condition", "severity"])
    base = m.metric.removesuffix("_partial")
    unit = {"mce": "ce", "relative_mce": "relative_ce", "mean_err": "mean_err"}[base]
    point = lookup(r.rows, m.task, m.metric, m.condition)[0] if only is None else lookup(r.rows, m.task, unit, only)[0]
    if piv is None:
        return None
    members = [only] if only is not None else _members(r.rows, m, unit, C_BENCHMARK)
    members = [c for c in members if c in piv.index.get_level_values(0)]
    if not members:
        return None
    sub = piv.loc[members]
    groups = pd.Categorical(sub.index.get_level_values(0), categories=members).codes.astype(int)
    items = tuple(sub.columns)
    if base == "mean_err":
        return S.corruption(sub.to_numpy(), groups, items, point, kind="mean_err")
    clean = lookup(r.rows, "corruptions", "top1_err", "clean")[0]
    if base == "relative_mce" and not np.isfinite(clean):
        return None
    ref_piv = _pivot(ref.per_image, "corruptions", "correct", ["condition", "severity"]) if ref is not None else None
    if ref_piv is not None and ref_piv.columns.equals(sub.columns) and set(sub.index) <= set(ref_piv.index):
        rsub = ref_piv.loc[sub.index].to_numpy()
        ref_clean = lookup(ref.rows, "corruptions", "top1_err", "clean")[0]
        g = np.eye(len(members))[groups]
        shift = ref_clean * g.sum(0) if base == "relative_mce" else 0.0
        den = lambda w: (100 * (1 - w @ rsub.T)) @ g - shift  # noqa: E731
    else:
        den = _c_constants(r.rows, members, unit, clean if base == "relative_mce" else None)
    s = S.corruption(sub.to_numpy(), groups, items, point, kind=base, den=den, clean=(clean, 0))
    s.fixed = _same_model(ref, r)
    return s


def _c_constants(rows: pd.DataFrame, members: list[str], unit: str, clean: float | None) -> np.ndarray:
    """The normaliser's per-corruption denominators (%) recovered from the saved rows: CE = sum E / den."""
    out = []
    for c in members:
        e = rows[(rows.task == "corruptions") & (rows.condition == c) & (rows.metric == "top1_err")].value.to_numpy(float)
        num = e.sum() - (len(e) * clean if clean is not None else 0.0)
        ratio = lookup(rows, "corruptions", unit, c)[0]
        out.append(100 * num / ratio if ratio else np.nan)
    return np.asarray(out, float)


def p_sampler(r: EvalResult, m: Measure, ref: EvalResult | None, only: str | None = None) -> S.Sampler | None:
    """The sampler of a -P mean; with `only`, of that one perturbation's FR, T5D or flip probability."""
    base = m.metric.removesuffix("_partial")
    value = "t5d" if base == "mt5d" else "flip"
    piv = _pivot(r.per_image, "perturbations", value, "condition")
    if piv is None:
        return None
    unit = {"mfr": "fr", "mt5d": "t5d_rel", "mean_fp": "fp"}[base]
    point = lookup(r.rows, m.task, m.metric, m.condition)[0] if only is None else lookup(r.rows, m.task, unit, only)[0]
    members = [p for p in ([only] if only is not None else _members(r.rows, m, unit, P_TEST)) if p in piv.index]
    if not members:
        return None
    v = piv.loc[members].to_numpy()
    items = tuple(piv.columns)
    if base == "mean_fp":
        return S.perturbation(v, items, point)
    ref_piv = _pivot(ref.per_image, "perturbations", value, "condition") if ref is not None else None
    if ref_piv is not None and ref_piv.columns.equals(piv.columns) and set(members) <= set(ref_piv.index):
        rv = ref_piv.loc[members].to_numpy()
        den = lambda w: w @ rv.T  # noqa: E731
    else:
        raw = "t5d" if base == "mt5d" else "fp"
        num = np.array([lookup(r.rows, "perturbations", raw, p)[0] for p in members], float)
        with np.errstate(divide="ignore", invalid="ignore"):
            den = num / np.array([lookup(r.rows, "perturbations", unit, p)[0] for p in members], float)
        den = den * 100 if base == "mt5d" else den  # fp rows are in %, t5d rows raw
    s = S.perturbation(v, items, point, den=den)
    s.fixed = _same_model(ref, r)
    return s


def sampler(r: EvalResult, m: Measure, evals: list[EvalResult]) -> S.Sampler | None:
    s = _sampler(r, m, evals)
    if s is not None:
        s.data = data_key(r, m.task)
    return s


def _sampler(r: EvalResult, m: Measure, evals: list[EvalResult]) -> S.Sampler | None:
    if m.bench == "-C":
        return c_sampler(r, m, _same_data(normaliser_eval(r, evals), r, m.task))
    if m.bench == "-P":
        return p_sampler(r, m, _same_data(normaliser_eval(r, evals), r, m.task))
    per = r.per_image
    if per is None or "correct" not in per:
        return None
    p = per[(per.task == m.task) & per.correct.notna()]
    if m.eps is not None:
        p = p[(p.eps_255 == m.eps) & (p.condition == m.condition)]
    if p.empty or p.image.duplicated().any():
        return None
    p = p.sort_values("image")
    return S.accuracy(p.correct.astype(bool).to_numpy(), tuple(p.image), lookup(r.rows, m.task, m.metric, m.condition, m.eps)[0])


# per-condition unit metric -> the mean measure whose sampler computes it for one condition
_UNIT_OF = {("corruptions", "ce"): "mce", ("corruptions", "mean_err"): "mean_err",
            ("perturbations", "fr"): "mfr", ("perturbations", "fp"): "mean_fp"}


def condition_intervals(evals: list[EvalResult], task: str, metric: str, conditions: list[str]) -> dict:
    """{(model, condition): (low, high)}: 95% bootstrap intervals of each corruption's CE (or mean error) or each
    perturbation's FR (or flip probability), resampling images (sequences) exactly as the headline means do; a
    cell whose per-image outcomes do not give back its saved value gets none."""
    mean = _UNIT_OF[(task, metric)]
    m = Measure(mean, mean, "-C" if task == "corruptions" else "-P", task, mean, False, "all")
    build = c_sampler if task == "corruptions" else p_sampler
    out = {}
    for r in evals:
        ref = normaliser_eval(r, evals)
        for k, c in enumerate(conditions):
            s = build(r, m, ref, only=c)
            if s is not None and S.reproduces(s):
                out[(r.label, c)] = S.interval(s, seed=1000 + k)
    return out
