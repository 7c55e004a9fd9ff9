"""A study's tables and claims, from saved results only: one table per claim group as the paper lays it out (rows
the variants, cells the mean and 95% interval across seeds), and one verdict per claim, decided by the interval of
the difference, never by its sign alone:

- several seeds: the per-seed differences `better - than` (paired by seed), mean and 95% t-interval;
- one seed: the paired bootstrap over the identical images (95%), with the exact McNemar test for accuracies.

"holds" when the interval excludes zero in the paper's direction and the claim's p, Holm-adjusted across every claim
of the study (one family), is below 5%; "reversed" when both hold the other way; "not resolved at this scale"
otherwise. Per-seed differences that are all equal give no interval (zero variance) and a flag, never "holds". The study is plain data (nsbench/study/spec.py `Study.report_spec`): each
row and claim names the evaluated label of every seed, so this module needs nothing but the results.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from . import fmt, stats
from .compare import Report
from .headline import measures, sampler
from .load import EvalResult

HOLDS, REVERSED, UNRESOLVED, NO_RESULT = "holds", "reversed", "not resolved at this scale", "no result"
ZERO_VARIANCE = "no interval: zero variance across seeds"
UNDERPOWERED = "underpowered"
CLAIM_COLUMNS = ["table", "claim", "better", "than", "metric", "seeds", "better_value", "than_value", "diff",
                 "diff_low", "diff_high", "p_value", "p_adjusted", "test", "verdict", "mde", "usual_effect",
                 "convergence", "note", "source"]


def convergence_status(study: dict) -> tuple[str, str]:
    """(status, note) of the study's scale under the doubling test (nsbench/study/convergence.py): "passed",
    "failed" or "not tested", and for a scale that did not pass, the note every claim carries."""
    conv = study.get("convergence") or {}
    status = str(conv.get("status", "not tested"))
    if status == "passed":
        return status, ""
    if re.match(r"failed\b", status):  # failed, or failed (incomplete: ...)
        moved = ", ".join(f"{role} {conv[role]['mean_change']:+.2f}" for role in ("teacher", "student")
                          if isinstance(conv.get(role), dict) and "mean_change" in conv[role])
        return status, "not converged at this scale" + (f" (doubling the budget moved top-1: {moved})" if moved else "")
    return status, "convergence not tested at this scale"


def claim_verdict(low: float, high: float, higher: bool, p_adjusted: float = np.nan, mde: float = np.nan,
                  usual: float = np.nan) -> str:
    """holds / reversed only when the 95% interval of (better - than) excludes zero and the Holm-adjusted p (when
    there is one) is below ALPHA; otherwise not resolved, or "underpowered (MDE x)" where the claim's minimum
    detectable effect is wider than its measure's usual effect (schema.Metric.usual_effect)."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return NO_RESULT
    if (low > 0 or high < 0) and not (np.isfinite(p_adjusted) and p_adjusted >= stats.ALPHA):
        return HOLDS if (low > 0) == higher else REVERSED
    if np.isfinite(mde) and np.isfinite(usual) and mde > usual:
        return f"{UNDERPOWERED} (MDE {mde:.2f})"
    return UNRESOLVED


def _values(head: pd.DataFrame, measure: str, labels: dict) -> dict:
    """seed -> the finite value of `measure` for that seed's label."""
    out = {}
    for seed, label in labels.items():
        v = head[(head.model == label) & (head.measure == measure)].value
        if len(v) and np.isfinite(v.iloc[0]):
            out[int(seed)] = float(v.iloc[0])
    return out


def _summary(head: pd.DataFrame, measure: str, labels: dict) -> tuple[float, float, float, int]:
    """Mean and 95% interval of one row's measure: over seeds (t), or with one seed its bootstrap over images."""
    vals = _values(head, measure, labels)
    if len(vals) >= 2:
        m, lo, hi = stats.seeds_interval(np.array(list(vals.values())))
        return m, lo, hi, len(vals)
    if len(vals) == 1:
        label = _label({"labels": labels}, next(iter(vals)))
        h = head[(head.model == label) & (head.measure == measure)].iloc[0]
        return float(h.value), float(h.ci_low), float(h.ci_high), 1
    return np.nan, np.nan, np.nan, 0


def _cell_text(m: float, lo: float, hi: float, n: int, digits: int = 2) -> str:
    if not fmt.finite(m):
        return "–"
    if n >= 2 and fmt.finite(lo):
        return f"{m:.{digits}f} ± {(hi - lo) / 2:.{digits}f}"
    return f"{m:.{digits}f} {fmt.ci(lo, hi, digits)}".strip()


def claim_result(claim: dict, evals: list[EvalResult], head: pd.DataFrame, seeds: list[int]) -> dict:
    """One claim's difference, interval, test and verdict (see the module's docstring)."""
    key = claim["metric"]
    rows = head[head.measure == key]
    higher = bool(rows.higher_is_better.iloc[0]) if len(rows) else True
    a, b = _values(head, key, claim["better"]["labels"]), _values(head, key, claim["than"]["labels"])
    out = {"better_value": np.mean(list(a.values())) if a else np.nan,
           "than_value": np.mean(list(b.values())) if b else np.nan, "seeds": len(set(a) & set(b)),
           "diff": np.nan, "diff_low": np.nan, "diff_high": np.nan, "p_value": np.nan, "p_adjusted": np.nan,
           "test": "", "note": "", "mde": np.nan, "usual_effect": float(rows.usual_effect.iloc[0])
           if len(rows) and "usual_effect" in rows else np.nan, "se": np.nan, "dof": np.nan, "resamples": 0,
           "redraw": None, "higher": higher}
    if len(seeds) >= 2:
        d = stats.seeds_difference(a, b)
        out.update(diff=d["diff"], diff_low=d["diff_low"], diff_high=d["diff_high"], p_value=d["p"], test=d["test"],
                   se=d.get("se", np.nan), dof=d.get("dof", np.nan))
        if len(a) < len(seeds) or len(b) < len(seeds):
            out["note"] = f"results for {len(a)} and {len(b)} of {len(seeds)} seeds"
        elif a and all(a[s] == b.get(s) for s in a):
            out["note"] = "identical in every seed: does the change reach the model?"
        elif d.get("flag"):
            out["note"] = d["flag"]
        if d.get("flag"):
            out["verdict"] = ZERO_VARIANCE
            return out
    elif a and b:
        seed = seeds[0]
        by_label = {r.label: r for r in evals}
        m = next((m for m in measures(evals) if m.name == key), None)
        ra, rb = by_label.get(_label(claim["better"], seed)), by_label.get(_label(claim["than"], seed))
        sa = sampler(ra, m, evals) if m and ra else None
        sb = sampler(rb, m, evals) if m and rb else None
        out["diff"] = a[seed] - b[seed]
        if sa is not None and sb is not None and stats.reproduces(sa) and stats.reproduces(sb):
            d = stats.difference(sa, sb, 4242)
            out.update(diff_low=d["diff_low"], diff_high=d["diff_high"], p_value=d["p"], test=d["test"], se=d["se"],
                       resamples=d["resamples"])
            if d["resamples"]:
                out["redraw"] = lambda n: stats.difference(sa, sb, 4242, n)
        else:
            out["note"] = ("per-image outcomes missing: no interval" if sa is None or sb is None
                           else "per-image outcomes do not reproduce the saved values: no interval")
    else:
        out["note"] = "not evaluated"
    out["verdict"] = claim_verdict(out["diff_low"], out["diff_high"], higher)
    return out


def adjust_claims(results: list[dict]) -> None:
    """Holm across every claim of one study (the family): first each bootstrap p that a threshold of the family lies
    within Monte Carlo error of is redrawn with more resamples (compare.py `adjust` does the same for a report),
    then the adjusted p, the minimum detectable effect at the family's size, and each verdict again; in place. The
    working keys (higher, se, dof, resamples, redraw) are removed."""
    size = int(np.isfinite([float(r["p_value"]) for r in results]).sum())
    for r in results:
        if not r.get("redraw"):
            continue
        d, note = stats.refine(r["p_value"], int(r.get("resamples") or 0), size, r["redraw"])
        if d is not None:
            r.update(diff_low=d["diff_low"], diff_high=d["diff_high"], p_value=d["p"], se=d["se"])
        if note:
            r["test"] = f"{r['test']}; {note}"
    adj = stats.holm([r["p_value"] for r in results])
    for r, p in zip(results, adj):
        higher = r.pop("higher", True)
        se, dof = r.pop("se", np.nan), r.pop("dof", np.nan)
        r.pop("resamples", None), r.pop("redraw", None)
        r["p_adjusted"] = float(p)
        if r["verdict"] == ZERO_VARIANCE or not np.isfinite(p):
            continue
        r["mde"] = stats.mde(se, size, dof if np.isfinite(dof) else None)
        usual = r.get("usual_effect", np.nan)
        raw = claim_verdict(r["diff_low"], r["diff_high"], higher)
        r["verdict"] = claim_verdict(r["diff_low"], r["diff_high"], higher, p, r["mde"], usual)
        if raw in (HOLDS, REVERSED) and raw != r["verdict"]:
            r["note"] = "; ".join(x for x in (r["note"], f"the interval alone says {raw}; not after Holm adjustment") if x)


def _label(ref: dict, seed: int) -> str:
    labels = ref["labels"]
    return labels.get(seed, labels.get(str(seed)))


def study_tables(study: dict, evals: list[EvalResult], head: pd.DataFrame) -> tuple[list[dict], pd.DataFrame]:
    """The template's study tables and the claims as a tidy frame (CLAIM_COLUMNS)."""
    seeds = [int(s) for s in study["seeds"]]
    order = measures(evals)
    names = {m.name: m.label for m in order}
    tables, claims = [], []
    results = [claim_result(c, evals, head, seeds) for t in study["tables"] for c in t["claims"]]
    adjust_claims(results)
    status, flag = convergence_status(study)
    for r in results:
        r["convergence"] = status
        if flag:
            r["note"] = "; ".join(x for x in (r["note"], flag) if x)
    quarter = study.get("final_quarter") or {}
    results = iter(results)
    for t in study["tables"]:
        labels = {lab for r in t["rows"] for lab in r["labels"].values()}
        keys = [m.name for m in order if (head.model.isin(labels) & (head.measure == m.name)).any()]
        rows = []
        for r in t["rows"]:
            cells = []
            for k in keys:
                m, lo, hi, n = _summary(head, k, r["labels"])
                cells.append({"text": _cell_text(m, lo, hi, n), "sort": f"{m:.6g}" if fmt.finite(m) else "",
                              "title": f"{n} seed(s)" + (f"; 95% interval [{lo:.2f}, {hi:.2f}]" if fmt.finite(lo) else "")})
            gains = [quarter[lab] for lab in r["labels"].values() if lab in quarter]
            n_seeds = len(_values(head, keys[0], r["labels"])) if keys else 0
            rows.append({"ref": r["ref"], "about": r.get("about", ""), "seeds": n_seeds, "cells": cells,
                         "quarter": fmt.signed(float(np.mean(gains)), 2) if gains else "–"})
        lines = []
        for c in t["claims"]:
            res = next(results)
            row = {"table": t["title"], "claim": c["claim"], "better": c["better"]["ref"], "than": c["than"]["ref"],
                   "metric": c["metric"], "source": c.get("source", ""), **res}
            claims.append(row)
            lines.append({**row, "metric_label": names.get(c["metric"], c["metric"]),
                          "diff_text": fmt.signed(res["diff"], 2), "ci": fmt.ci(res["diff_low"], res["diff_high"], 2),
                          "p": fmt.pvalues(res["p_value"], res["p_adjusted"]),
                          "cls": {HOLDS: "good", REVERSED: "bad"}.get(res["verdict"], ""),
                          "converged_cls": "good" if res["convergence"] == "passed" else "bad"})
        tables.append({"id": t["id"], "title": t["title"], "source": t.get("source", ""),
                       "columns": [names[k] for k in keys], "rows": rows, "claims": lines})
    return tables, pd.DataFrame(claims, columns=CLAIM_COLUMNS)


def claims_markdown(claims: pd.DataFrame, seeds: int) -> str:
    """The claims as one Markdown table (for a README or a closing note)."""
    how = f"paired over {seeds} seeds, 95% t-interval" if seeds >= 2 else "one seed: paired bootstrap over images, 95%"
    lines = [f"| claim | better | than | measure | difference ({how}) | p | p (Holm, {len(claims)} claims) | MDE "
             f"| verdict | converged (doubling test) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for _, c in claims.iterrows():
        diff = f"{fmt.signed(c['diff'], 2)} {fmt.ci(c.diff_low, c.diff_high, 2)}".strip()
        p, adj = fmt.pvalue(c.p_value) or "–", fmt.pvalue(c.p_adjusted) or "–"
        mde = fmt.num(c.mde, 2) if fmt.finite(c.get("mde")) else "–"
        lines.append(f"| {c.claim} | {c.better} | {c.than} | {c.metric} | {diff} | {p} | {adj} | {mde} | {c.verdict} "
                     f"| {c.convergence} |")
    return "\n".join(lines) + "\n"


def section(report: Report) -> dict:
    """A study's tables and claims for the page (none without a study), and the claims frame for claims.csv."""
    if not report.study:
        return {"study": None, "tables": [], "n_tests": 0, "frame": None}
    tables, frame = study_tables(report.study, report.evals, report.head)
    return {"study": report.study, "tables": tables, "n_tests": int(np.isfinite(frame.p_value).sum()), "frame": frame}
