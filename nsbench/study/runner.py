"""Run a study: train every variant x seed in its own run folder, score every checkpoint with the one suite and one
shared cache, render one report. Resumable: a finished run, and a finished evaluation of the same checkpoint with
the same suite, are skipped; the report is rendered again from saved results.

```
OUT/study.json            the resolved study; what this invocation trained and scored, where each job ran, its
                          timings; every run's threads, labeled draw and final-quarter gains; the doubling test
OUT/study.log             the study's log (each run also logs to its own train.log)
OUT/runs/<name>/          one ordinary `nsbench train` run folder per variant and seed (teacher-seed<N> when shared;
                          teacher-x2-seed<N>, <variant>-x2-seed<N>: the doubling test's, convergence.py)
OUT/eval/<label>/         one `nsbench eval` result folder per checkpoint (<variant>-seed<N>-iter<K>)
OUT/eval/cache/           the suite's built sets and per-cell results, shared by every checkpoint
OUT/report/               index.html and its data (claims.csv, claims.md, headline.csv, ...)
```

Runs execute one job per slot (jobs.py: a process pinned to a core group or a GPU), or one after another in this
process with --jobs 1. Under torchrun every rank walks the same loop (train and evaluate are distributed-aware);
the decisions to skip read files that rank 0 wrote before a barrier, and only rank 0 writes outside train /
evaluate.
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

from .. import distributed
from .. import runs
from ..utils import NsbenchError, atomic_path, clean_stale_temps, log_to, read_json, write_json
from . import convergence
from .jobs import Slot, auto_jobs, job, pinned, run_parallel, slots
from .spec import RunPlan, Study, describe

log = logging.getLogger("nsbench")


def run_study(study: Study, out: str | Path, *, device: str = "auto", workers: int | None = None,
              jobs: int | None = None, threads: int | None = None) -> dict:
    """Train, evaluate and report `study` into `out`; return what was done (trained / evaluated run and label
    names, the report's path, the claims, the doubling test when the study holds its runs, and the wall time).

    `jobs` runs execute at once (None: by the machine, nsbench/study/jobs.py), each pinned to `threads` threads
    (None: its share of the cores); under torchrun the ranks share each run instead, one run at a time."""
    from ..lock import run_lock

    out = Path(out)
    t0 = time.time()
    distributed.init_from_env(device)
    if distributed.is_dist() or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        jobs = 1
    jobs = auto_jobs(device) if jobs is None else jobs
    run_slots = slots(jobs, device, threads)
    lock = run_lock(out, what=f"nsbench study {study.name}") if distributed.is_main() else contextlib.nullcontext()
    done = {"trained": [], "evaluated": [], "timings_s": {}, "jobs": jobs,
            "threads_per_job": threads if jobs == 1 else run_slots[0].threads}
    with lock, log_to(out / "study.log", enabled=distributed.env_rank() == 0):
        if distributed.is_main():
            for p in clean_stale_temps(out / "eval"):
                log.info("removed %s, left by a killed run", p)
        plans = [*study.runs, *study.doubled]
        log.info("study %s (%s): %d run(s)%s, %d seed(s), scale %s, into %s; %d job(s) at a time, %s thread(s) each",
                 study.name, study.path, len(study.runs),
                 f" and {len(study.doubled)} for the doubling test" if study.doubled else "", len(study.seeds),
                 study.scale, out, jobs, done["threads_per_job"] or "torch's default")
        preflight(study, out)
        for r in _run_all(study, out, plans, run_slots, threads, device, workers):
            done["trained"] += r["trained"]
            done["evaluated"] += r["evaluated"]
            done["timings_s"].update(r["timings_s"])
            if "threads" in r:
                done.setdefault("slots", {})[r["name"]] = {k: r[k] for k in ("device", "threads", "cores", "seconds")}
        report, claims = None, []
        if distributed.is_main():
            done["runs"] = run_records(study, out)
            done["convergence"] = convergence.doubling_test(study, out)
            report, claims = _report(study, out, done)
            log.info("report: %s", report)
        done.update(report=str(report) if report else None, claims=claims, wall_s=round(time.time() - t0, 1))
        if distributed.is_main():
            write_json(out / "study.json", {**describe(study), "last_invocation": done})
        distributed.barrier()
    return done


def _run_all(study: Study, out: Path, plans: list[RunPlan], run_slots: list[Slot], threads: int | None, device: str,
             workers: int | None) -> list[dict]:
    """Every run's job: one after another in this process (one slot), else each in its own pinned process."""
    if len(run_slots) == 1:
        if threads:
            import torch

            torch.set_num_threads(threads)
        return [run_job(pinned(p, run_slots[0]) if threads else p, study, out, device, workers, False) for p in plans]
    todo = [job(p) for p in plans if not _complete(study, p, out)]
    for p in plans:
        if p.name not in {j.plan.name for j in todo}:
            log.info("%s: trained and evaluated already, skipping", p.name)
    return run_parallel(todo, run_slots, run_job, (study, out, device, workers, True))


def run_job(plan: RunPlan, study: Study, out: Path, device: str, workers: int | None, child: bool) -> dict:
    """One run of the study: train (or resume, or skip) its folder, then score each of its checkpoints the study
    reports. In a job's own process (`child`) its messages also go to the study's log."""
    res = {"name": plan.name, "trained": [], "evaluated": [], "timings_s": {}}
    pinned_gpu = plan.cfg.runtime.device.startswith("cuda:")  # a job's GPU (jobs.pinned) scores on it too
    with log_to(out / "study.log") if child else contextlib.nullcontext():
        t = time.time()
        if _train(plan, out):
            res["trained"].append(plan.name)
            res["timings_s"][f"train {plan.name}"] = round(time.time() - t, 1)
        for k, label in study.checkpoints(plan):
            t = time.time()
            if _evaluate(study, out / "runs" / plan.name, k, label, out,
                         plan.cfg.runtime.device if pinned_gpu else device, workers):
                res["evaluated"].append(label)
                res["timings_s"][f"eval {label}"] = round(time.time() - t, 1)
    return res


def _complete(study: Study, plan: RunPlan, out: Path) -> bool:
    """The run is trained and every checkpoint of it the study reports is scored (no job needed)."""
    run = out / "runs" / plan.name
    if not _finished(run, plan.cfg.ns.iterations):
        return False
    try:
        entries = {e["iteration"]: e for e in read_json(run / runs.SUMMARY)["iterations"]}
    except (NsbenchError, KeyError, TypeError):
        return False
    return all(k in entries and entries[k].get("sha256")  # a damaged entry: not complete, train resolves it
               and _evaluated(out / "eval" / label, entries[k]["sha256"], _suite_record(study))
               for k, label in study.checkpoints(plan))


def run_records(study: Study, out: Path) -> list[dict]:
    """Per run: its seed, the labeled subset it drew (count and a hash of the indices), the threads it trained with,
    and per iteration the final top-1 seen in training and the final-quarter gain (training/records.py)."""
    import hashlib

    rows = []
    for plan, doubling in [*((p, False) for p in study.runs), *((p, True) for p in study.doubled)]:
        run = out / "runs" / plan.name
        if not (run / runs.SUMMARY).is_file():
            continue
        rec = {"name": plan.name, "variant": plan.variant, "seed": plan.seed, "doubling_test": doubling}
        try:
            split = read_json(run / runs.SPLIT)
            idx = json.dumps(split.get("labeled_indices", split.get("labeled", [])))
            rec["labeled"] = {"n": split.get("n_labeled"), "sha256": hashlib.sha256(idx.encode()).hexdigest()[:16]}
        except (NsbenchError, OSError):
            pass
        try:
            import yaml

            rec["threads"] = (yaml.safe_load((run / runs.CONFIG).read_text()).get("runtime") or {}).get("threads")
            summary = read_json(run / runs.SUMMARY)
        except (NsbenchError, OSError):
            continue
        rec["iterations"] = [{key: e.get(key) for key in ("iteration", "val_top1", "steps", "final_quarter_gain",
                                                          "quarter_epoch", "train_seconds")}
                             for e in sorted(summary.get("iterations", []), key=lambda e: e["iteration"])]
        rows.append(rec)
    return rows


# ------------------------------------------------------------------------------------------------------- training

def preflight(study: Study, out: Path) -> None:
    """Everything that can refuse the study, before anything trains: every run folder an earlier invocation left
    holds this study's config for its run (finished ones included: a changed study must not re-report old claims
    under new definitions), and every variant's model ladder holds (no student smaller than its teacher)."""
    for plan in study.runs:
        run = out / "runs" / plan.name
        if runs.is_run(run):
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
    if not runs.is_finished_run(run):
        return False
    try:
        recorded = {e["iteration"] for e in read_json(run / runs.SUMMARY).get("iterations", [])}
    except (NsbenchError, KeyError, TypeError, AttributeError):
        return False
    return all(k in recorded and runs.checkpoint(run, k).exists() for k in range(iterations + 1))


def _train(plan: RunPlan, out: Path) -> bool:
    """Train (or resume) one run folder; False when it had finished already."""
    from ..training.driver import train

    run = out / "runs" / plan.name
    resume = runs.is_run(run)
    if resume:  # compared before a finished run is skipped: its checkpoints belong to the config it holds
        _check_same_config(run, plan)
    if _finished(run, plan.cfg.ns.iterations):
        log.info("%s: finished already, skipping", run)
        return False
    place = plan.teacher and not runs.checkpoint(run, 0).exists()
    distributed.barrier()  # every rank has looked at the folder before rank 0 writes to it (a barrier behind a per-rank
    # test of a file rank 0 writes would otherwise pair with a different barrier on a slower rank)
    if place:
        if distributed.is_main():
            _place_teacher(out / "runs" / plan.teacher, run)
        distributed.barrier()
    log.info("%s: %s", run, "resuming" if resume else "training")
    with _run_lock(run), log_to(run / runs.LOG, enabled=distributed.env_rank() == 0):
        if distributed.is_main():
            for p in clean_stale_temps(run):
                log.info("removed %s, left by a killed run", p)
        train(plan.cfg, run, resume=resume)
    return True


def _place_teacher(teacher_run: Path, run: Path) -> None:
    """The shared teacher's iter0.pt into the run folder (a hard link where the filesystem allows, else a copy),
    before the run starts: the driver finds it, checks it and records it as its iteration 0."""
    src = runs.checkpoint(teacher_run, 0)
    if not src.exists():
        raise NsbenchError(f"{src}: the shared teacher is missing (its run did not finish)")
    dst = runs.checkpoint(run, 0)
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

    old = load_train_config(run / runs.CONFIG).to_dict()
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

    return run_lock(run, what="nsbench study (train)") if distributed.env_rank() == 0 else contextlib.nullcontext()


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
    from ..bench.harness import ModelInfo, ScoreSettings

    entry = next(e for e in read_json(run / runs.SUMMARY)["iterations"] if e["iteration"] == k)
    dest = out / "eval" / label
    distributed.barrier()  # every rank decides on the same files (rank 0 writes results)
    if _evaluated(dest, entry["sha256"], _suite_record(study)):
        log.info("%s: evaluated already, skipping", label)
        return False
    # dest is out/eval/LABEL, as evaluate lays it out; the study owns it, so a retrained variant replaces its results
    evaluate(str(runs.checkpoint(run, k)), study.suite, dest.parent, info=ModelInfo(label=label),
             settings=ScoreSettings(device=device, workers=workers, cache_dir=out / "eval" / "cache", overwrite=True))
    return True


# --------------------------------------------------------------------------------------------------------- report

def _report(study: Study, out: Path, done: dict) -> tuple[Path, list[dict]]:
    from ..report.render import render_report

    labels = [label for plan in study.runs for _, label in study.checkpoints(plan)]
    folders = [out / "eval" / label for label in labels if (out / "eval" / label / "meta.json").is_file()]
    baseline = next((lab for lab in labels if lab.endswith("-iter0")), labels[0])
    line = convergence.describe(done["convergence"])
    spec = {**study.report_spec(), "convergence": {**done["convergence"], "line": line},
            "final_quarter": _final_quarter(done["runs"])}
    log.info("%s", spec["convergence"]["line"])
    html = render_report(folders, out / "report", baseline=baseline, study=spec,
                         title=f"nsbench study {study.name}: {study.spec.description or study.path.name}")
    claims = read_json(out / "report" / "claims.json") if (out / "report" / "claims.json").exists() else []
    return html, claims


def _final_quarter(records: list[dict]) -> dict:
    """label -> the final-quarter gain of that checkpoint's training (the study's own runs)."""
    out = {}
    for rec in records:
        if rec["doubling_test"]:
            continue
        for it in rec.get("iterations", []):
            if it.get("final_quarter_gain") is not None:
                out[f"{rec['name']}-iter{it['iteration']}"] = it["final_quarter_gain"]
    return out
