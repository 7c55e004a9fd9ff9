"""Where the numbers come from: each model's provenance (checkpoint, data, suite, normaliser, preprocessing, versions),
the training runs' tables, and the published reference numbers shown beside ImageNet results."""
from __future__ import annotations

from ..reference import published_results
from . import fmt
from .compare import Report
from .load import EvalResult, RunResult


def section(report: Report) -> dict:
    rows = model_rows(report.evals)
    return {"rows": rows, "notes": shared_notes(rows)}


def run_tables(report: Report) -> list[dict]:
    return [run_table(run) for run in report.runs]


def published_section(report: Report) -> list[dict]:
    """The published reference rows, for ImageNet results only (another dataset's numbers are not comparable)."""
    if not _is_imagenet(report.evals):
        return []
    return [{"model": r["model"], "metric": r["metric"], "value": fmt.num(r["value"], 2), "source": r["source"],
             "note": r["note"]} for r in published_results()]


def _is_imagenet(evals: list[EvalResult]) -> bool:
    def imagenet(r):
        src = str((r.meta.get("dataset") or {}).get("source") or "")
        return src.startswith("imagenet:") or (r.meta.get("suite") or {}).get("name") == "imagenet"

    return bool(evals) and all(imagenet(r) for r in evals)


def model_rows(evals: list[EvalResult]) -> list[dict]:
    """One row per model: its checkpoint, data, suite, normaliser, and the texts of its preprocessing and versions."""
    out = []
    for r in evals:
        m, d = r.meta.get("model") or {}, r.meta.get("dataset") or {}
        out.append({
            "model": r.label, "sha256": str(m.get("sha256") or ""), "arch": fmt.text(m.get("arch")),
            "iteration": fmt.text(m.get("iteration")), "suite": fmt.text((r.meta.get("suite") or {}).get("name")),
            "dataset": fmt.text(d.get("source")), "split": fmt.text(d.get("split")),
            "fingerprint": fmt.text(d.get("fingerprint")),
            "normaliser": fmt.text((r.meta.get("normaliser") or {}).get("name") or "none"),
            "preprocessing": fmt.text(r.meta.get("preprocessing") or {}), "versions": fmt.text(r.meta.get("versions") or {}),
            "created": fmt.text(r.meta.get("created")), "limit": fmt.text(r.meta.get("limit"))})
    return out


def shared_notes(provenance: list[dict]) -> list[dict]:
    """Preprocessing and versions once per distinct text (usually once for all models), not once per model."""
    groups: dict[tuple, list[str]] = {}
    for p in provenance:
        groups.setdefault((p["preprocessing"], p["versions"]), []).append(p["model"])
    whole = len(groups) == 1 and len(provenance) > 1
    return [{"models": "all models" if whole else ", ".join(models), "preprocessing": pre, "versions": ver}
            for (pre, ver), models in groups.items()]


def run_table(run: RunResult) -> dict:
    """A Noisy Student run's iterations: model, validation accuracy, pseudo-label counts, time, checkpoint hash."""
    rows = []
    for e in sorted(run.summary.get("iterations", []), key=lambda e: e["iteration"]):
        p = run.pseudo.get(e["iteration"], {})
        kwargs = e.get("kwargs")
        rows.append([str(e["iteration"]), fmt.text(e.get("arch")) + (f" ({fmt.text(kwargs)})" if kwargs else ""),
                     fmt.params(e.get("n_params")), fmt.num(e.get("val_top1"), 2), fmt.num(e.get("val_top5"), 2),
                     fmt.text(p.get("n_kept")), fmt.text(p.get("n_selected")), fmt.text(p.get("n_duplicated")),
                     fmt.num(100 * p["agreement_kept"]) if fmt.finite(p.get("agreement_kept")) else "–",
                     fmt.num(e.get("wall_seconds"), 0), str(e.get("sha256") or "")[:12]])
    return {"folder": str(run.folder), "rows": rows,
            "columns": ["iteration", "model", "parameters", "val top-1 %", "val top-5 %", "pseudo kept", "selected",
                        "duplicated", "agreement (kept) %", "wall s", "sha256"]}
