"""Render one self-contained HTML report (plus its CSV/JSON data) from saved results and run folders."""
from __future__ import annotations

import datetime as _dt
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd

from ..reference import published_results
from ..runs import is_run
from ..utils import NsbenchError, atomic_path, library_versions, make_dir, write_json, write_text
from . import figures as FIG
from . import figures_run as FR
from . import fmt as F
from . import page
from . import tables as T
from .compare import across_seeds, adjust, best_marks, headline
from .headline import condition_intervals, lookup
from .study import claims_markdown, study_tables as claim_tables
from .load import EvalResult, RunResult, load_inputs
from .scorecard import build as scorecard_sections


def _is_imagenet(evals: list[EvalResult]) -> bool:
    def imagenet(r):
        src = str((r.meta.get("dataset") or {}).get("source") or "")
        return src.startswith("imagenet:") or (r.meta.get("suite") or {}).get("name") == "imagenet"

    return bool(evals) and all(imagenet(r) for r in evals)


def _figures(evals: list[EvalResult], runs: list[RunResult], head: pd.DataFrame) -> list[dict]:
    """Figure sections, each a grid of (caption, PNG data URI) panels."""
    names = {**F.CORRUPTION_NAMES}
    clean = {r.label: 100 - lookup(r.rows, "corruptions", "top1_err", "clean")[0] for r in evals}
    clean = {k: (v if np.isfinite(v) else float(head[(head.model == k) & (head.measure == "clean_top1")].value.mean()))
             for k, v in clean.items()}
    ce = T.per_condition(evals, "corruptions", "ce")
    ce_label = "CE (100 = normaliser)"
    if ce.empty:
        ce, ce_label = T.per_condition(evals, "corruptions", "mean_err"), "mean top-1 error (%)"
    fr = T.per_condition(evals, "perturbations", "fr")
    fr_label = "FR (100 = normaliser)"
    if fr.empty:
        fr, fr_label = T.per_condition(evals, "perturbations", "fp"), "flip probability (%)"
    sections = [
        ("Accuracy by severity, per corruption family", FIG.severity_by_family(T.severity_curves(evals), clean)),
        ("Per corruption and per perturbation (lower is better; dashed line: the normaliser)",
         [("corruption error per corruption (bars: 95% bootstrap intervals over images)",
           FIG.dots(ce, ce_label, names, 100.0 if ce_label.startswith("CE") else None, _intervals(evals, ce, ce_label))),
          ("flip rate per perturbation" if fr_label.startswith("FR") else "flip probability per perturbation",
           FIG.dots(fr, fr_label, names, 100.0 if fr_label.startswith("FR") else None, _intervals(evals, fr, fr_label)))]),
        ("Adversarial accuracy against eps", [("bars: 95% bootstrap intervals over images", FIG.attack_curve(head))]),
        ("Noisy Student progress across iterations", FR.progress(FR.progress_points(head, evals), runs)),
        ("Pseudo-label statistics", FR.pseudo_stats(runs)),
    ]
    return [{"title": t, "panels": [(c, s) for c, s in panels if s]} for t, panels in sections if any(s for _, s in panels)]


def _intervals(evals: list[EvalResult], table: pd.DataFrame, label: str) -> dict:
    """Per-condition 95% intervals for a dot plot's table (its label says which unit metric it holds)."""
    if table.empty:
        return {}
    task, metric = {"CE": ("corruptions", "ce"), "mean top-1 error": ("corruptions", "mean_err"),
                    "FR": ("perturbations", "fr"), "flip probability": ("perturbations", "fp")}[
        next(k for k in ("CE", "mean top-1 error", "FR", "flip probability") if label.startswith(k))]
    return condition_intervals(evals, task, metric, list(table.index))


def _provenance(evals: list[EvalResult]) -> list[dict]:
    out = []
    for r in evals:
        m, d = r.meta.get("model") or {}, r.meta.get("dataset") or {}
        out.append({
            "model": r.label, "sha256": str(m.get("sha256") or ""), "arch": F.text(m.get("arch")),
            "iteration": F.text(m.get("iteration")), "suite": F.text((r.meta.get("suite") or {}).get("name")),
            "dataset": F.text(d.get("source")), "split": F.text(d.get("split")),
            "fingerprint": F.text(d.get("fingerprint")),
            "normaliser": F.text((r.meta.get("normaliser") or {}).get("name") or "none"),
            "preprocessing": F.text(r.meta.get("preprocessing") or {}), "versions": F.text(r.meta.get("versions") or {}),
            "created": F.text(r.meta.get("created")), "limit": F.text(r.meta.get("limit"))})
    return out


def _provenance_notes(provenance: list[dict]) -> list[dict]:
    """Preprocessing and versions once per distinct text (usually once for all models), not once per model."""
    groups: dict[tuple, list[str]] = {}
    for p in provenance:
        groups.setdefault((p["preprocessing"], p["versions"]), []).append(p["model"])
    whole = len(groups) == 1 and len(provenance) > 1
    return [{"models": "all models" if whole else ", ".join(models), "preprocessing": pre, "versions": ver}
            for (pre, ver), models in groups.items()]


def _notes(evals: list[EvalResult]) -> list[str]:
    """Failed tasks and undefined values, in words."""
    out = []
    for r in evals:
        rows = r.rows[r.rows.value.isna() | (r.rows.metric == "failed")]
        for _, x in rows.iterrows():
            what = F.TASK_NAMES.get(x.task, x.task)
            if x.metric == "failed":
                out.append(f"{r.label}: {what} failed ({x.note or 'no reason recorded'})")
            else:
                metric = F.METRIC_NAMES.get(x.metric, x.metric.replace("_", " "))
                out.append(f"{r.label}: {what}, {F.name(x.condition)}, {metric}: {x.note or 'undefined'}")
    return out


def _unpaired_notes(head: pd.DataFrame, baseline: str | None) -> list[str]:
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


def render_report(inputs: list[str | Path], out: str | Path, baseline: str | None = None,
                  title: str = "nsbench robustness report", study: dict | None = None,
                  er_baselines: list[str] | None = None) -> Path:
    """Write out/index.html and its data files; return the HTML path. `study` (nsbench/study `report_spec()`) adds
    its claim tables and verdicts at the top, in place of the per-model verdict cards."""
    evals, runs = load_inputs(inputs)
    if not evals and not runs:
        raise NsbenchError("nothing to report: pass eval result folders or run folders")
    labels = [r.label for r in evals]
    if baseline is None and evals:
        baseline = labels[0]
    if evals and baseline not in labels:
        raise NsbenchError(f"baseline {baseline!r} is not among the models: {', '.join(labels)}")
    out = Path(out)
    check_out(out, inputs, evals, runs)
    make_dir(out)

    head = headline(evals, baseline) if evals else pd.DataFrame(columns=["model", "measure", "bench"])
    seeds = across_seeds(head, baseline) if len(head) else pd.DataFrame()
    adjust(head, seeds)  # one family: every test this page shows (Holm)
    marks = best_marks(head, baseline) if len(head) else set()
    ce, ce_metric = T.condition_table(evals, "corruptions", "ce", baseline), "CE per corruption (100 = normaliser)"
    if ce is None:
        ce, ce_metric = T.condition_table(evals, "corruptions", "mean_err", baseline), "mean top-1 error per corruption (%)"
    fr, fr_metric = T.condition_table(evals, "perturbations", "fr", baseline), "FR per perturbation (100 = normaliser)"
    if fr is None:  # no normaliser: the cells are the flip probabilities themselves
        fr, fr_metric = T.condition_table(evals, "perturbations", "fp", baseline), "Flip probability per perturbation (%)"
    normalisers = sorted({str(n) for r in evals if "normaliser" in r.rows
                          for n in r.rows.normaliser.dropna().unique() if str(n)})
    reference_rows = []
    if _is_imagenet(evals):
        reference_rows = [{"model": r["model"], "metric": r["metric"], "value": F.num(r["value"], 2), "source": r["source"],
                           "note": r["note"]} for r in published_results()]
    provenance = _provenance(evals)
    sets = _sets_description(evals)
    study_tables, claims = claim_tables(study, evals, head) if study else ([], None)
    unknown = [b for b in er_baselines or [] if b not in labels]
    if unknown:
        raise NsbenchError(f"effective-robustness baseline {unknown[0]!r} is not among the models: {', '.join(labels)}")
    scorecard, scorecard_frames = scorecard_sections(evals, head, baseline, er_baselines)
    env = jinja2.Environment(loader=jinja2.PackageLoader("nsbench.report", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
                             undefined=jinja2.StrictUndefined)
    html = env.get_template("report.html.j2").render(
        title=title, created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), baseline=baseline,
        normalisers=normalisers, verdicts=[] if study else page.verdicts(head, baseline), study=study,
        study_tables=study_tables, models=page.model_table(head, evals, runs, baseline),
        benches=T.bench_tables(head, evals, marks, baseline), ce=ce, fr=fr,
        ce_metric=ce_metric, fr_metric=fr_metric, provenance_notes=_provenance_notes(provenance),
        seeds=page.seeds_table(seeds, head), notes=_notes(evals) + _unpaired_notes(head, baseline),
        training_runs=_one_run_note(evals, seeds),
        n_tests=sum(int(np.isfinite(f.p_value).sum()) for f in (head, seeds) if "p_value" in f),
        study_tests=int(np.isfinite(claims.p_value).sum()) if claims is not None else 0,
        figures=_figures(evals, runs, head) if (evals or runs) else [], reference_rows=reference_rows,
        provenance=provenance, sets=sets, run_tables=[_run_table(run) for run in runs], versions=library_versions(),
        scorecard=scorecard)
    write_text(out / "index.html", html)
    _write_data(out, evals, head, seeds, {"baseline": baseline, "models": provenance, "sets": sets,
                                           "inputs": [str(p) for p in inputs], "runs": [str(r.folder) for r in runs]})
    for name, frame in scorecard_frames.items():
        with atomic_path(out / name) as tmp:
            frame.to_csv(tmp, index=False, float_format="%.6g")
    if claims is not None:
        with atomic_path(out / "claims.csv") as tmp:
            claims.to_csv(tmp, index=False, float_format="%.6g")
        write_json(out / "claims.json", claims.replace({np.nan: None}).to_dict("records"))
        write_text(out / "claims.md", claims_markdown(claims, len(study["seeds"])))
    return out / "index.html"


def _one_run_note(evals: list[EvalResult], seeds: pd.DataFrame) -> str:
    """The verdicts of single training runs describe those runs: say so, and where training randomness is measured."""
    if len(seeds) or not evals:
        return ""
    found = sorted({str(s) for r in evals if (s := (r.meta.get("model") or {}).get("train_seed")) is not None})
    which = f" (training seed {', '.join(found)})" if found else ""
    return (f"These verdicts cover one training run per model{which}: their intervals and p values are over the test "
            f"images and say nothing about training randomness. Another seed, or the same seed on another machine, "
            f"moves single-run numbers. `nsbench study paper_ablations` trains every variant over several seeds and "
            f"tests the paper's claims across them.")


def check_out(out: Path, inputs: list, evals: list[EvalResult], runs: list[RunResult]) -> None:
    """A report is written beside its inputs, never into them: an --out that is an input, one of the result or run
    folders found in them, or any other folder of eval results or training run would have its files (results.csv
    first) overwritten by the report's, and be refused as modified from then on."""
    if out.exists() and not out.is_dir():
        raise NsbenchError(f"--out {out}: exists and is not a folder")
    here = out.resolve()
    for p in [*(Path(x) for x in inputs), *(r.folder for r in evals), *(r.folder for r in runs)]:
        if p.resolve() == here:
            raise NsbenchError(f"--out {out}: is an input of the report ({p}); a report never writes into its "
                               f"inputs: choose another folder")
    if (out / "meta.json").is_file() and (out / "results.csv").is_file() or is_run(out):
        raise NsbenchError(f"--out {out}: holds {'a training run' if is_run(out) else 'eval results'}, which the "
                           f"report would overwrite: choose another folder")


def _write_data(out: Path, evals: list[EvalResult], head: pd.DataFrame, seeds: pd.DataFrame, provenance: dict) -> None:
    frames = {"headline.csv": head, "corruptions_ce.csv": T.per_condition(evals, "corruptions", "ce"),
              "perturbations_fr.csv": T.per_condition(evals, "perturbations", "fr")}
    if len(head):
        wide = head.pivot(index="model", columns="label", values="value").reindex([r.label for r in evals])
        frames["summary.csv"] = wide.reset_index()
    if len(seeds):
        frames["seeds.csv"] = seeds
    if evals:
        frames["results.csv"] = pd.concat([r.rows for r in evals], ignore_index=True)
    for name, df in frames.items():
        index = name in ("corruptions_ce.csv", "perturbations_fr.csv")
        with atomic_path(out / name) as tmp:
            df.to_csv(tmp, index=index, index_label="condition" if index else None, float_format="%.6g")
    write_json(out / "provenance.json", provenance)


def _sets_description(evals: list[EvalResult]) -> list[dict]:
    seen, out = set(), []
    for r in evals:
        for task, info in (r.meta.get("sets") or {}).items():
            if not isinstance(info, dict):
                continue
            key = (task, str(info.get("folder") or info.get("source")))
            if key in seen:
                continue
            seen.add(key)
            if task == "natural_adversarial" and "references" in info:
                text = _a_description(info)
            else:
                text = F.text(info)
            out.append({"task": F.TASK_NAMES.get(task, task), "text": text})
    return out


def _a_description(info: dict) -> str:
    """What a built -A set is, how it was filtered and how strong each filter was: a set that weak references
    filtered is easy, one full of label noise rewards fitting the references' mistakes."""
    refs = []
    for x in info["references"]:
        rounds = x.get("rounds")
        cap = ""
        if x.get("cap_binding"):
            gain = f" (last round +{F.num(x['last_gain'], 2)} points)" if F.finite(x.get("last_gain")) else ""
            cap = f", stopped by the cap of {x.get('max_rounds')} rounds while still improving{gain}"
        reached = (f"held-out top-1 {F.num(x['val_top1'])}% after {rounds} round(s){cap}, "
                   if x.get("val_top1") is not None else "")
        refs.append(f"{x.get('arch')} seed {x.get('seed')} ({reached}pool top-1 {F.num(x.get('pool_top1'))}%, "
                    f"0% on the kept images by construction)")
    how = info.get("reference_training") or f"{info.get('ref_epochs')} epochs"
    what = info.get("what_it_measures") or "a built -A set: images that reference classifiers of this dataset all get wrong"
    text = (f"{what[0].upper()}{what[1:]}. {info.get('n')} images kept of a pool of {info.get('n_pool')} "
            f"({info.get('pool')}): {info.get('rule')}.")
    c = info.get("consensus")
    if isinstance(c, dict) and c.get("n_references", 0) >= 2:
        top = ", ".join(f"{k} {v}" for k, v in list((c.get("by_true_class") or {}).items())[:3])
        agreed = ", ".join(f"{k} {v}" for k, v in list((c.get("by_agreed_class") or {}).items())[:3])
        fate = "excluded from the set" if c.get("rule") == "exclude" else "kept in the set"
        text += (f" Of the {info.get('n_all_wrong')} images every reference gets wrong, {c.get('n')} "
                 f"({F.num(100 * c['rate']) if F.finite(c.get('rate')) else '–'}%) have all references naming the same "
                 f"wrong class, likely label noise, {fate} (true classes: {top or '–'}; named: {agreed or '–'}).")
    if info.get("skipped_unreadable"):
        text += f" {info['skipped_unreadable']} unreadable pool image(s) skipped."
    return (f"{text} Reference models trained on {info.get('ref_train_limit') or 'all'} training images ({how}): "
            f"{'; '.join(refs)}. The weaker the references, the easier the set: compare their held-out accuracy with "
            f"the models' clean accuracy.")


def _run_table(run: RunResult) -> dict:
    rows = []
    for e in sorted(run.summary.get("iterations", []), key=lambda e: e["iteration"]):
        p = run.pseudo.get(e["iteration"], {})
        kwargs = e.get("kwargs")
        rows.append([str(e["iteration"]), F.text(e.get("arch")) + (f" ({F.text(kwargs)})" if kwargs else ""),
                     F.params(e.get("n_params")), F.num(e.get("val_top1"), 2), F.num(e.get("val_top5"), 2),
                     F.text(p.get("n_kept")), F.text(p.get("n_selected")), F.text(p.get("n_duplicated")),
                     F.num(100 * p["agreement_kept"]) if F.finite(p.get("agreement_kept")) else "–",
                     F.num(e.get("wall_seconds"), 0), str(e.get("sha256") or "")[:12]])
    return {"folder": str(run.folder), "rows": rows,
            "columns": ["iteration", "model", "parameters", "val top-1 %", "val top-5 %", "pseudo kept", "selected",
                        "duplicated", "agreement (kept) %", "wall s", "sha256"]}
