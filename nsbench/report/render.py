"""Render one self-contained HTML report (plus its CSV/JSON data) from saved results and run folders."""
from __future__ import annotations

import datetime as _dt
import math
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd

from ..reference import published_results
from ..utils import NsbenchError, atomic_path, library_versions, write_json, write_text
from . import figures as F
from . import tables as T
from .load import EvalResult, RunResult, load_inputs


def _fmt(v, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, (float, np.floating)):
        return f"{v:.{digits}f}"
    return str(v)


def _is_imagenet(evals: list[EvalResult]) -> bool:
    def imagenet(r):
        src = str((r.meta.get("dataset") or {}).get("source") or "")
        return src.startswith("imagenet:") or (r.meta.get("suite") or {}).get("name") == "imagenet"

    return bool(evals) and all(imagenet(r) for r in evals)


def _progress_points(evals: list[EvalResult], runs: list[RunResult]) -> pd.DataFrame:
    pts = []
    for r in evals:
        it = (r.meta.get("model") or {}).get("iteration")
        if it is None:
            continue
        for col, task, metric, cond, _ in T.SUMMARY:
            if col in ("clean top-1", "-A top-1", "mCE", "-C mean error", "mFR"):
                v = T._value(r.rows, task, metric, cond)
                if not np.isnan(v):
                    pts.append({"iteration": int(it), "metric": col, "value": v})
    if not pts:
        for run in runs:
            for e in run.summary.get("iterations", []):
                if e.get("val_top1") is not None:
                    pts.append({"iteration": e["iteration"], "metric": "validation top-1", "value": e["val_top1"]})
    return pd.DataFrame(pts).drop_duplicates(["iteration", "metric"], keep="last") if pts else pd.DataFrame()


def render_report(inputs: list[str | Path], out: str | Path, baseline: str | None = None,
                  title: str = "nsbench robustness report") -> Path:
    """Write out/index.html and its data files; return the HTML path."""
    evals, runs = load_inputs(inputs)
    if not evals and not runs:
        raise NsbenchError("nothing to report: pass eval result folders or run folders")
    labels = [r.label for r in evals]
    if baseline is None and evals:
        baseline = labels[0]
    if evals and baseline not in labels:
        raise NsbenchError(f"baseline {baseline!r} is not among the models: {', '.join(labels)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    summary, better = T.summary_table(evals) if evals else (pd.DataFrame(), {})
    best = T.best_per_column(summary, better) if len(summary) else {}
    deltas = T.with_deltas(summary, baseline) if len(summary) else summary
    comp = T.comparisons(evals, baseline) if evals else pd.DataFrame()
    ce = T.per_condition(evals, "corruptions", "ce")
    ce_metric = "CE (%)"
    if ce.empty:
        ce, ce_metric = T.per_condition(evals, "corruptions", "mean_err"), "mean error (%)"
    fr = T.per_condition(evals, "perturbations", "fr")
    fr_metric = "FR (%)"
    if fr.empty:
        fr, fr_metric = T.per_condition(evals, "perturbations", "fp"), "flip probability (%)"
    curves = T.severity_curves(evals) if evals else pd.DataFrame()
    clean = {r.label: T._value(r.rows, "clean", "top1_acc", "clean") for r in evals}
    pseudo = {k: v for run in runs for k, v in run.pseudo.items()}
    classes = None
    figures = [
        ("Accuracy by severity, per corruption family", F.severity_by_family(curves, clean)),
        (f"Corruption error per corruption ({ce_metric})", F.grouped_bars(ce, ce_metric, "per corruption", 100.0 if ce_metric.startswith("CE") else None)),
        (f"Perturbation flip rate per perturbation ({fr_metric})", F.grouped_bars(fr, fr_metric, "per perturbation", 100.0 if fr_metric.startswith("FR") else None)),
        ("FGSM accuracy against eps", F.fgsm_curve(evals)),
        ("Noisy Student progress across iterations", F.progress(_progress_points(evals, runs))),
        ("Pseudo-label statistics per iteration", F.pseudo_stats(pseudo, classes)),
    ]
    figures = [(t, src) for t, src in figures if src]

    normalisers = sorted({str(n) for r in evals for n in r.rows.get("normaliser", pd.Series(dtype=str)).dropna().unique()})
    reference_rows = []
    if _is_imagenet(evals):
        reference_rows = [{"model": r["model"], "metric": r["metric"], "value": _fmt(r["value"], 2), "source": r["source"],
                           "note": r["note"]} for r in published_results()]
    provenance = [{
        "model": r.label, "sha256": (r.meta.get("model") or {}).get("sha256", ""),
        "arch": (r.meta.get("model") or {}).get("arch"), "iteration": (r.meta.get("model") or {}).get("iteration"),
        "suite": (r.meta.get("suite") or {}).get("name"), "dataset": (r.meta.get("dataset") or {}).get("source"),
        "split": (r.meta.get("dataset") or {}).get("split"), "fingerprint": (r.meta.get("dataset") or {}).get("fingerprint"),
        "normaliser": (r.meta.get("normaliser") or {}).get("name") or "none",
        "preprocessing": ", ".join(f"{k}: {v}" for k, v in (r.meta.get("preprocessing") or {}).items()),
        "versions": ", ".join(f"{k} {v}" for k, v in (r.meta.get("versions") or {}).items()),
        "created": r.meta.get("created"), "limit": r.meta.get("limit"),
    } for r in evals]
    sets = _sets_description(evals)
    run_tables = [_run_table(run) for run in runs]

    summary_rows = []
    for _, row in deltas.iterrows():
        cols = []
        for c in summary.columns[1:]:
            d = row.get(f"Δ {c}", np.nan)
            cols.append({"value": _fmt(row[c]), "delta": "" if row["model"] == baseline or np.isnan(d) else f"{d:+.2f}",
                         "best": best.get(c) == row["model"],
                         "good": (not np.isnan(d)) and row["model"] != baseline and ((d > 0) == better[c]) and d != 0})
        summary_rows.append({"model": row["model"], "baseline": row["model"] == baseline, "cols": cols})

    env = jinja2.Environment(loader=jinja2.PackageLoader("nsbench.report", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
                             undefined=jinja2.StrictUndefined)
    html = env.get_template("report.html.j2").render(
        title=title, created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), baseline=baseline,
        summary_columns=list(summary.columns[1:]), summary_rows=summary_rows,
        better={c: ("higher is better" if hb else "lower is better") for c, hb in better.items()},
        comp_columns=list(comp.columns), comp_rows=_comparison_cells(comp),
        ce_columns=list(ce.columns), ce_rows=[[str(i), *[_fmt(v) for v in row]] for i, row in ce.iterrows()], ce_metric=ce_metric,
        fr_columns=list(fr.columns), fr_rows=[[str(i), *[_fmt(v) for v in row]] for i, row in fr.iterrows()], fr_metric=fr_metric,
        figures=figures, reference_rows=reference_rows, provenance=provenance, normalisers=normalisers, sets=sets,
        run_tables=run_tables, versions=library_versions(),
    )
    write_text(out / "index.html", html)
    # the data beside the page
    for name, df in (("summary.csv", deltas), ("comparisons.csv", comp), ("corruptions_ce.csv", ce.reset_index() if len(ce) else ce),
                     ("perturbations_fr.csv", fr.reset_index() if len(fr) else fr)):
        with atomic_path(out / name) as tmp:
            df.to_csv(tmp, index=False, float_format="%.6g")
    if evals:
        with atomic_path(out / "results.csv") as tmp:
            pd.concat([r.rows for r in evals], ignore_index=True).to_csv(tmp, index=False, float_format="%.6g")
    write_json(out / "provenance.json", {"baseline": baseline, "models": provenance, "sets": sets,
                                         "inputs": [str(p) for p in inputs], "runs": [str(r.folder) for r in runs]})
    return out / "index.html"


def _comparison_cells(comp: pd.DataFrame) -> list[list[str]]:
    rows = []
    for _, r in comp.iterrows():
        rows.append([_fmt(r[c], 2) if c != "p_value" else ("–" if pd.isna(r[c]) else f"{r[c]:.3g}") for c in comp.columns])
    return rows


def _sets_description(evals: list[EvalResult]) -> list[dict]:
    seen, out = set(), []
    for r in evals:
        for task, info in (r.meta.get("sets") or {}).items():
            key = (task, str(info.get("folder") or info.get("source")))
            if key in seen:
                continue
            seen.add(key)
            if task == "natural_adversarial" and "references" in info:
                refs = "; ".join(f"{x['arch']} seed {x['seed']} (pool top-1 {x['pool_top1']:.1f}%)" for x in info["references"])
                text = (f"{info['n']} images kept of a pool of {info['n_pool']} ({info['pool']}): {info['rule']}. "
                        f"Reference models, each trained {info['ref_epochs']} epochs on {info['ref_train_limit'] or 'all'} "
                        f"training images: {refs}.")
            elif task == "natural_adversarial":
                text = f"{info.get('source')}: {info.get('n')} images; class folders {info.get('folder_wnids')}, missing wnids {len(info.get('missing_wnids', []))}."
            else:
                text = ", ".join(f"{k}: {v}" for k, v in info.items())
            out.append({"task": task, "text": text})
    return out


def _run_table(run: RunResult) -> dict:
    rows = []
    for e in sorted(run.summary.get("iterations", []), key=lambda e: e["iteration"]):
        p = run.pseudo.get(e["iteration"], {})
        rows.append([str(e["iteration"]), e["arch"] + (f" {e['kwargs']}" if e.get("kwargs") else ""), f"{e['n_params']:,}",
                     _fmt(e.get("val_top1")), _fmt(e.get("val_top5")),
                     str(p.get("n_kept", "–")), str(p.get("n_selected", "–")), str(p.get("n_duplicated", "–")),
                     _fmt(100 * p["agreement_kept"]) if "agreement_kept" in p else "–",
                     _fmt(e.get("wall_seconds"), 0), str(e.get("sha256", ""))[:12]])
    return {"folder": str(run.folder), "rows": rows,
            "columns": ["iteration", "model", "parameters", "val top-1", "val top-5", "pseudo kept", "selected",
                        "duplicated", "agreement (kept) %", "wall s", "sha256"]}
