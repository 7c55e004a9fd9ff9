"""What a run folder records of each iteration: its checkpoint, its summary.json entry and its history.csv rows;
and, on resume, the reconciliation of a checkpoint that was written but never recorded."""
from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from .. import distributed
from .. import runs
from ..checkpoint import load_state, read_checkpoint
from ..models import ModelSpec
from ..utils import NsbenchError, atomic_path, file_sha256, read_json, write_json
from .budget import quarter_mark

log = logging.getLogger(__name__)


def read_summary(run: Path) -> dict:
    path = run / runs.SUMMARY
    return read_json(path) if path.exists() else {"iterations": []}


def finished(summary: dict) -> set[int]:
    return {e["iteration"] for e in summary["iterations"]}


def sha_of(summary: dict, k: int) -> str:
    return next(e["sha256"] for e in summary["iterations"] if e["iteration"] == k)


def with_entry(summary: dict, entry: dict) -> dict:
    """`summary` with iteration `entry["iteration"]`'s entry replaced (or added)."""
    k = entry["iteration"]
    return {**summary, "iterations": [e for e in summary["iterations"] if e["iteration"] != k] + [entry]}


def final_quarter_gain(history: list[dict]) -> dict:
    """How much a stage's validation top-1 still rose over its last quarter: the final value less the value after
    3/4 of the epochs (stage.quarter_mark validates there). Under an annealed schedule this is no convergence test
    (the learning rate's decay lifts the end of every run); it is recorded so that a run still climbing steeply
    shows it, next to the doubling test of the study's scale (nsbench/study/convergence.py)."""
    vals = {int(h["epoch"]): h["val_top1"] for h in history if h.get("val_top1") is not None}
    epochs = max((int(h["epoch"]) for h in history), default=0)
    mark = quarter_mark(epochs)
    if mark is None or mark not in vals or epochs not in vals:
        return {}
    return {"final_quarter_gain": round(float(vals[epochs] - vals[mark]), 4), "quarter_epoch": mark}


def write_history(run: Path, rows: list[dict]) -> None:
    """Rank 0: history.csv with these iterations' rows replaced (a re-trained iteration never appears twice)."""
    if not distributed.is_main():
        return
    path = run / runs.HISTORY
    old = pd.read_csv(path) if path.exists() else pd.DataFrame()
    new = pd.DataFrame(rows)
    if len(old) and len(new):
        old = old[~old["iteration"].isin(new["iteration"].unique())]
    df = pd.concat([old, new], ignore_index=True).sort_values(["iteration", "epoch"])
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")


def reconcile(run: Path, k: int, spec: ModelSpec, summary: dict, parent_sha: str | None) -> dict:
    """iter{k}.pt exists but summary.json lacks it (a kill between the two writes). If the checkpoint loads and is
    this run's iteration k (its arch, its parent's sha256), record it from its own metadata and the state's history;
    otherwise move it aside as iter{k}.pt.damaged so that iteration k trains again from its saved state.

    Why the parent's hash: a checkpoint of the right architecture may still descend from another teacher (a run
    re-trained from an earlier iteration); only the lineage says it belongs to this run."""
    ckpt = runs.checkpoint(run, k)
    problem, meta = _inspect(ckpt, k, spec, parent_sha)
    distributed.barrier()
    if problem is not None:
        log.warning("%s: not recorded in summary.json and unusable (%s); moving it aside and training iteration %d "
                    "again", ckpt, problem, k)
        if distributed.is_main():
            ckpt.replace(runs.damaged(ckpt))
        distributed.barrier()
        return summary
    metrics = dict(meta.get("metrics") or {})
    entry = {"iteration": k, "arch": spec.arch, "kwargs": spec.kwargs, "n_params": meta.get("n_params"),
             "checkpoint": ckpt.name, "sha256": file_sha256(ckpt), "parent_sha256": meta.get("parent_sha256"),
             **metrics, "wall_seconds": metrics.get("train_seconds")}
    summary = with_entry(summary, entry)
    if distributed.is_main():
        state = runs.state_path(run, k)
        if state.exists():  # the history rows may not have reached history.csv either
            try:
                write_history(run, [{**h, "iteration": k} for h in load_state(state)["history"]])
            except (NsbenchError, KeyError, TypeError) as e:
                log.warning("%s: could not recover iteration %d's history rows (%s)", state, k, e)
        write_json(run / runs.SUMMARY, summary)
    log.info("iteration %d: %s was in the folder but not in summary.json (an interrupted run, or a teacher placed "
             "there by nsbench study); checked and recorded it now", k, ckpt.name)
    distributed.barrier()
    return summary


def _inspect(ckpt: Path, k: int, spec: ModelSpec, parent_sha: str | None) -> tuple[str | None, dict | None]:
    """(why iter{k}.pt cannot be this run's iteration k or None when it can, its metadata)."""
    try:
        meta, _ = read_checkpoint(ckpt)
    except NsbenchError as e:
        return str(e), None
    if meta.get("iteration") != k or meta["model"]["arch"] != spec.arch:
        return f"it holds iteration {meta.get('iteration')} ({meta['model']['arch']}), not {k} ({spec.arch})", meta
    if k > 0 and meta.get("parent_sha256") != parent_sha:
        return "its parent sha256 is not iteration {}'s".format(k - 1), meta
    return None, meta
