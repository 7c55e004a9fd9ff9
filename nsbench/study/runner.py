"""Run a study: train every variant x seed in its own run folder, score every checkpoint with the one suite and one
shared cache, render one report. Resumable: a finished run, and a finished evaluation of the same checkpoint with
the same suite, are skipped; the report is rendered again from saved results.

```
OUT/study.json            the resolved study, what this invocation trained and scored, and its timings
OUT/study.log             the study's log (each run also logs to its own train.log)
OUT/runs/<name>/          one ordinary `nsbench train` run folder per variant and seed (teacher-seed<N> when shared)
OUT/eval/<label>/         one `nsbench eval` result folder per checkpoint (<variant>-seed<N>-iter<K>)
OUT/eval/cache/           the suite's built sets and per-cell results, shared by every checkpoint
OUT/report/               index.html and its data (claims.csv, claims.md, headline.csv, ...)
```

Under torchrun every rank walks the same loop (train and evaluate are distributed-aware); the decisions to skip
read files that rank 0 wrote before a barrier, and only rank 0 writes outside train / evaluate.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import time
from pathlib import Path

from .. import distributed as D
from .. import runs as R
from ..utils import NsbenchError, atomic_path, clean_stale_temps, log_to, read_json, write_json
from .spec import RunPlan, Study, describe

log = logging.getLogger("nsbench")


def run_study(study: Study, out: str | Path, *, device: str = "auto", workers: int | None = None) -> dict:
    """Train, evaluate and report `study` into `out`; return what was done (trained / evaluated run and label
    names, the report's path, the claims and the wall time)."""
    from ..lock import run_lock

    out = Path(out)
    t0 = time.time()
    D.init_from_env(device)
    lock = run_lock(out, what=f"nsbench study {study.name}") if D.is_main() else contextlib.nullcontext()
    done = {"trained": [], "evaluated": [], "timings_s": {}}
    with lock, log_to(out / "study.log", enabled=D.env_rank() == 0):
        if D.is_main():
            for p in clean_stale_temps(out / "eval"):
                log.info("removed %s, left by a killed run", p)
        log.info("study %s (%s): %d run(s), %d seed(s), scale %s, into %s", study.name, study.path, len(study.runs),
                 len(study.seeds), study.scale, out)
        preflight(study, out)
        for plan in study.runs:
            t = time.time()
            if _train(plan, out):
                done["trained"].append(plan.name)
                done["timings_s"][f"train {plan.name}"] = round(time.time() - t, 1)
            for k, label in study.checkpoints(plan):
                t = time.time()
                if _evaluate(study, out / "runs" / plan.name, k, label, out, device, workers):
                    done["evaluated"].append(label)
                    done["timings_s"][f"eval {label}"] = round(time.time() - t, 1)
        report, claims = None, []
        if D.is_main():
            report, claims = _report(study, out)
            log.info("report: %s", report)
        done.update(report=str(report) if report else None, claims=claims, wall_s=round(time.time() - t0, 1))
        if D.is_main():
            write_json(out / "study.json", {**describe(study), "last_invocation": done})
        D.barrier()
    return done


# ------------------------------------------------------------------------------------------------------- training

def preflight(study: Study, out: Path) -> None:
    """Everything that can refuse the study, before anything trains: every run folder an earlier invocation left
    holds this study's config for its run (finished ones included: a changed study must not re-report old claims
    under new definitions), and every variant's model ladder holds (no student smaller than its teacher)."""
    for plan in study.runs:
        run = out / "runs" / plan.name
        if R.is_run(run):
            _check_same_config(run, plan)
    _check_ladders(study)


def _check_ladders(study: Study) -> None:
    from ..data import open_source
    from ..training.ladder import check_ladder

    classes: dict[tuple, int] = {}  # the training source's class count, opened once per source
    seen = set()
    for plan in study.runs:
        d = plan.cfg.data
        key = (d.source, d.train_split, d.image_column, d.label_column)
        ladder = json.dumps([key, plan.cfg.to_dict()["teacher"], plan.cfg.to_dict()["students"],
                             plan.cfg.ns.iterations, plan.cfg.ns.allow_smaller_student, d.image_size], default=str)
        if plan.cfg.ns.iterations == 0 or ladder in seen:
            continue
        seen.add(ladder)
        try:
            if key not in classes:
                classes[key] = len(open_source(*key).classes)
            check_ladder(plan.cfg, classes[key])
        except NsbenchError as e:
            raise NsbenchError(f"{study.path}: variant {plan.variant} ({plan.name}): {e}") from None


def _finished(run: Path, iterations: int) -> bool:
    if not R.is_finished_run(run):
        return False
    try:
        recorded = {e["iteration"] for e in read_json(run / R.SUMMARY).get("iterations", [])}
    except (NsbenchError, KeyError, TypeError, AttributeError):
        return False
    return all(k in recorded and R.checkpoint(run, k).exists() for k in range(iterations + 1))


def _train(plan: RunPlan, out: Path) -> bool:
    """Train (or resume) one run folder; False when it had finished already."""
    from ..training.driver import train

    run = out / "runs" / plan.name
    resume = R.is_run(run)
    if resume:  # compared before a finished run is skipped: its checkpoints belong to the config it holds
        _check_same_config(run, plan)
    if _finished(run, plan.cfg.ns.iterations):
        log.info("%s: finished already, skipping", run)
        return False
    place = plan.teacher and not R.checkpoint(run, 0).exists()
    D.barrier()  # every rank has looked at the folder before rank 0 writes to it (a barrier behind a per-rank
    # test of a file rank 0 writes would otherwise pair with a different barrier on a slower rank)
    if place:
        if D.is_main():
            _place_teacher(out / "runs" / plan.teacher, run)
        D.barrier()
    log.info("%s: %s", run, "resuming" if resume else "training")
    with _run_lock(run), log_to(run / R.LOG, enabled=D.env_rank() == 0):
        if D.is_main():
            for p in clean_stale_temps(run):
                log.info("removed %s, left by a killed run", p)
        train(plan.cfg, run, resume=resume)
    return True


def _place_teacher(teacher_run: Path, run: Path) -> None:
    """The shared teacher's iter0.pt into the run folder (a hard link where the filesystem allows, else a copy),
    before the run starts: the driver finds it, checks it and records it as its iteration 0."""
    src = R.checkpoint(teacher_run, 0)
    if not src.exists():
        raise NsbenchError(f"{src}: the shared teacher is missing (its run did not finish)")
    dst = R.checkpoint(run, 0)
    with atomic_path(dst) as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
    log.info("%s: starts from the shared teacher %s", run, src)


def _check_same_config(run: Path, plan: RunPlan) -> None:
    """A run folder left by an earlier invocation must hold this variant's config (the study file or its
    overrides may have changed since): anything else would mix two experiments under one name."""
    from ..config import load_train_config

    old = load_train_config(run / R.CONFIG).to_dict()
    new = plan.cfg.to_dict()
    old.pop("runtime", None)
    new.pop("runtime", None)
    diff = _first_difference(old, new)
    if diff:
        raise NsbenchError(f"{run}: holds a run whose config differs from the study's {plan.name} ({diff}); "
                           f"use another --out or remove the folder")


def _first_difference(a, b, where: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            d = _first_difference(a.get(k), b.get(k), f"{where}.{k}" if where else str(k))
            if d:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            d = _first_difference(x, y, f"{where}.{i}")
            if d:
                return d
        return None
    return None if a == b else f"{where}: {a!r} there, {b!r} now"


def _run_lock(run: Path):
    from ..lock import run_lock

    return run_lock(run, what="nsbench study (train)") if D.env_rank() == 0 else contextlib.nullcontext()


# ----------------------------------------------------------------------------------------------------- evaluation

def _suite_record(study: Study) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(study.suite), default=str))


def _evaluated(dest: Path, sha: str, suite: dict) -> bool:
    """dest holds a complete result of this checkpoint (by hash) on this suite (meta.json is written last)."""
    if not (dest / "meta.json").is_file() or not (dest / "results.csv").is_file():
        return False
    try:
        meta = read_json(dest / "meta.json")
    except NsbenchError:
        return False
    return (meta.get("model") or {}).get("sha256") == sha and (meta.get("suite") or {}).get("config") == suite


def _evaluate(study: Study, run: Path, k: int, label: str, out: Path, device: str, workers: int | None) -> bool:
    from ..api import evaluate

    entry = next(e for e in read_json(run / R.SUMMARY)["iterations"] if e["iteration"] == k)
    dest = out / "eval" / label
    D.barrier()  # every rank decides on the same files (rank 0 writes results)
    if _evaluated(dest, entry["sha256"], _suite_record(study)):
        log.info("%s: evaluated already, skipping", label)
        return False
    # dest is out/eval/LABEL, as evaluate lays it out; the study owns it, so a retrained variant replaces its results
    evaluate(str(R.checkpoint(run, k)), study.suite, dest.parent, label=label, device=device, workers=workers,
             cache_dir=out / "eval" / "cache", overwrite=True)
    return True


# --------------------------------------------------------------------------------------------------------- report

def _report(study: Study, out: Path) -> tuple[Path, list[dict]]:
    from ..report.render import render_report

    labels = [label for plan in study.runs for _, label in study.checkpoints(plan)]
    folders = [out / "eval" / label for label in labels if (out / "eval" / label / "meta.json").is_file()]
    baseline = next((lab for lab in labels if lab.endswith("-iter0")), labels[0])
    html = render_report(folders, out / "report", baseline=baseline, study=study.report_spec(),
                         title=f"nsbench study {study.name}: {study.spec.description or study.path.name}")
    claims = read_json(out / "report" / "claims.json") if (out / "report" / "claims.json").exists() else []
    return html, claims
