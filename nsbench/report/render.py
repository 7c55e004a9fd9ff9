"""Render one self-contained HTML report (plus its CSV/JSON data) from saved results and run folders.

The page is a list of named sections, top to bottom (SECTIONS); each section's data is built in its own module from
one `Report` (compare.py: the models, runs, baseline and their compared headline numbers), and the template
(templates/report.html.j2) renders that one `page` object."""
from __future__ import annotations

from pathlib import Path

import jinja2
import numpy as np
import pandas as pd

from ..runs import is_run
from ..schema import CE, CORRUPTIONS, FR, PERTURBATIONS
from ..utils import NsbenchError, atomic_path, make_dir, write_json, write_text
from . import claims, notes, page, panels, provenance, scorecard, sets, tables
from .compare import Report, compare
from .conditions import per_condition
from .load import EvalResult, RunResult, load_inputs

TITLE = "nsbench robustness report"
SECTIONS = {  # name in the template -> the function that builds its data from the Report
    "header": page.header,  # title, time, baseline, normalisers, versions
    "claims": claims.section,  # a study's claim tables (and the claims frame)
    "verdicts": page.verdict_section,  # one card per model against the baseline (none under a study)
    "models": page.model_section,
    "benches": tables.bench_section,  # one table per benchmark, -C / -P each with its per-condition table
    "scorecard": scorecard.section,  # shifted sets, attacks by name, published, effective robustness (+ CSVs)
    "seeds": page.seeds_section,
    "notes": notes.section,  # failed tasks, undefined values, unpaired comparisons
    "figures": panels.section,
    "calibration": scorecard.calibration_section,  # after the figures: one fold per task
    "published": provenance.published_section,  # published reference numbers (ImageNet only)
    "runs": provenance.run_tables,
    "sets": sets.section,  # how the robustness sets were made
    "provenance": provenance.section,
}


def render_report(inputs: list[str | Path], out: str | Path, baseline: str | None = None, title: str = TITLE,
                  study: dict | None = None, er_baselines: list[str] | None = None) -> Path:
    """Write out/index.html and its data files; return the HTML path. `study` (nsbench/study `report_spec()`) adds
    its claim tables and verdicts at the top, in place of the per-model verdict cards."""
    evals, runs = load_inputs(inputs)
    baseline = _baseline(evals, runs, baseline)
    out = Path(out)
    check_out(out, inputs, evals, runs)
    make_dir(out)
    _check_er_baselines(er_baselines, evals)
    report = compare(evals, runs, baseline, title, study, er_baselines)
    data = {name: build(report) for name, build in SECTIONS.items()}
    write_text(out / "index.html", _template().render(page=data))
    _write_data(out, report, data, inputs)
    return out / "index.html"


def _baseline(evals: list[EvalResult], runs: list[RunResult], baseline: str | None) -> str | None:
    """The baseline model: the one named, else the first evaluated; an error when there is nothing to report."""
    if not evals and not runs:
        raise NsbenchError("nothing to report: pass eval result folders or run folders")
    labels = [r.label for r in evals]
    if baseline is None and evals:
        baseline = labels[0]
    if evals and baseline not in labels:
        raise NsbenchError(f"baseline {baseline!r} is not among the models: {', '.join(labels)}")
    return baseline


def _check_er_baselines(er_baselines: list[str] | None, evals: list[EvalResult]) -> None:
    labels = [r.label for r in evals]
    unknown = [b for b in er_baselines or [] if b not in labels]
    if unknown:
        raise NsbenchError(f"effective-robustness baseline {unknown[0]!r} is not among the models: {', '.join(labels)}")


def _template() -> jinja2.Template:
    env = jinja2.Environment(loader=jinja2.PackageLoader("nsbench.report", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
                             undefined=jinja2.StrictUndefined)
    return env.get_template("report.html.j2")


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


def _write_data(out: Path, report: Report, data: dict, inputs: list) -> None:
    """The data files beside the page: headline, summary, seeds, per-condition, results, scorecard and claims tables,
    and provenance.json (reports/README.md describes each)."""
    evals, head = report.evals, report.head
    frames = {"headline.csv": head, "corruptions_ce.csv": per_condition(evals, CORRUPTIONS, CE),
              "perturbations_fr.csv": per_condition(evals, PERTURBATIONS, FR)}
    if len(head):
        wide = head.pivot(index="model", columns="label", values="value").reindex([r.label for r in evals])
        frames["summary.csv"] = wide.reset_index()
    if len(report.seeds):
        frames["seeds.csv"] = report.seeds
    if evals:
        frames["results.csv"] = pd.concat([r.rows for r in evals], ignore_index=True)
    for name, df in frames.items():
        index = name in ("corruptions_ce.csv", "perturbations_fr.csv")
        with atomic_path(out / name) as tmp:
            df.to_csv(tmp, index=index, index_label="condition" if index else None, float_format="%.6g")
    write_json(out / "provenance.json", {"baseline": report.baseline, "models": data["provenance"]["rows"],
                                         "sets": data["sets"], "inputs": [str(p) for p in inputs],
                                         "runs": [str(r.folder) for r in report.runs]})
    for name, frame in data["scorecard"]["frames"].items():
        with atomic_path(out / name) as tmp:
            frame.to_csv(tmp, index=False, float_format="%.6g")
    if data["claims"]["frame"] is not None:
        _write_claims(out, data["claims"]["frame"], len(report.study["seeds"]))


def _write_claims(out: Path, frame: pd.DataFrame, seeds: int) -> None:
    with atomic_path(out / "claims.csv") as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")
    write_json(out / "claims.json", frame.replace({np.nan: None}).to_dict("records"))
    write_text(out / "claims.md", claims.claims_markdown(frame, seeds))
