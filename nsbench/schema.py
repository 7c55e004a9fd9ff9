"""The results schema, in one place: the columns of `results.csv`, the metric names, how a row is made, how a
results folder is written and how it is checked to be whole.

A results folder holds `results.csv` and `results.parquet` (one row per measurement), `per_image.parquet`
(per-image / per-sequence outcomes that reports bootstrap and pair on) and `meta.json`, written last, which records
the row count and the sha256 of `results.csv` so that a truncated or edited file is refused, never reported
(nsbench/report/load.py checks it).
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd

from .utils import NsbenchError, atomic_path, file_sha256, make_dir, write_json

COLUMNS = ["model", "suite", "task", "condition", "severity", "eps_255", "eps", "metric", "value", "n", "normaliser",
           "note"]
SORT = ["task", "condition", "severity", "eps_255", "metric"]

# metric name -> what it is; `value` is a percentage unless said otherwise.
METRICS = {
    "top1_acc": "top-1 accuracy", "top5_acc": "top-5 accuracy", "top1_err": "top-1 error",
    "top5_err": "top-5 error", "class_acc": "top-1 accuracy of one class",
    "mean_err": "top-1 error averaged over severities (or corruptions)",
    "ce": "corruption error, normalised (Hendrycks & Dietterich 2019)", "relative_ce": "relative corruption error",
    "mce": "mean corruption error over the 15 benchmark corruptions", "relative_mce": "relative mCE",
    "mce_partial": "mean CE over an incomplete set of corruptions (not mCE)",
    "relative_mce_partial": "relative mean CE over an incomplete set of corruptions (not relative mCE)",
    "fp": "flip probability", "t5d": "top-5 distance (not a percentage)", "fr": "flip rate, normalised",
    "t5d_rel": "top-5 distance, normalised", "mean_fp": "mean flip probability",
    "mean_t5d": "mean top-5 distance (not a percentage)", "mfr": "mean flip rate over the 10 test perturbations",
    "mt5d": "mean top-5 distance over the 10 test perturbations, normalised",
    "mfr_partial": "mean flip rate over an incomplete set of perturbations (not mFR)",
    "mt5d_partial": "mean normalised top-5 distance over an incomplete set of perturbations (not mT5D)",
    "failed": "the task could not run; the note says why",
}

# --- scorecard names (issue 23): calibration metrics and the official shifted sets' summaries -------------------
METRICS.update({
    "ece": "expected calibration error, 15 equal-width confidence bins (robustness_metrics), x100",
    "nll": "negative log-likelihood of the true class, nats (not a percentage)",
    "brier": "Brier score, sum over classes of the squared error of the probabilities (0-2, not a percentage)",
    "skipped": "the task's data is absent (its root is not set); the note says how to set it",
})
# tasks reading official shifted sets from their released layouts (bench/tasks/<name>.py)
OFFICIAL_SET_TASKS = ("imagenet_v2", "imagenet_sketch", "imagenet_c_bar", "imagenet_3dcc")
# tasks whose cells are corruption x severity (one row per cell; reports summarise them per task)
CORRUPTION_TREE_TASKS = ("corruptions", "imagenet_c_bar", "imagenet_3dcc")
# any torchattacks attack by name (bench/tasks/attacks_by_name.py)
NAMED_ATTACKS_TASK = "attacks"
# --- end scorecard names --------------------------------------------------------------------------------------------

PER_IMAGE_KEYS = ["task", "condition", "severity", "eps_255", "image"]

# Task names: the `task` column. Every suite task writes rows under its registry name, except the attack task
# (registered as FGSM, its `attack` setting picks FGSM or PGD): its rows carry the attack's name as their task and
# condition, so PGD results are never labelled FGSM. A task that fails writes its `failed` row under its registry name.
CLEAN = "clean"
CORRUPTIONS = "corruptions"
PERTURBATIONS = "perturbations"
NATURAL_ADVERSARIAL = "natural_adversarial"
FGSM = "fgsm"
PGD = "pgd"
ATTACKS = (FGSM, PGD)  # the attacks, and the task names their rows carry

# Measure names: the headline numbers of a report (headline.csv's `measure`) that a study claim may test, and the
# task each needs; attacks add one measure per attack and eps, `ATTACK@EPS` (attack_measure).
CLEAN_TOP1 = "clean_top1"
A_TOP1 = "a_top1"
C_MEAN_ERR = "c_mean_err"
MEASURES = {CLEAN_TOP1: CLEAN, A_TOP1: NATURAL_ADVERSARIAL, "mce": CORRUPTIONS, "mce_partial": CORRUPTIONS,
            "relative_mce": CORRUPTIONS, C_MEAN_ERR: CORRUPTIONS, "mfr": PERTURBATIONS,
            "mfr_partial": PERTURBATIONS, "mt5d": PERTURBATIONS, "mean_fp": PERTURBATIONS}
ATTACK_MEASURE = re.compile(r"^(?P<attack>" + "|".join(ATTACKS) + r")@(?P<eps>\d+(?:\.\d+)?)$")


def attack_measure(attack: str, eps_255: float) -> str:
    """The measure name of an attack's accuracy at eps (in grey levels): `fgsm@8`, `pgd@4`, `fgsm@0.5`."""
    return f"{attack}@{eps_255:g}"


def row(*, model: str, suite: str, task: str, condition: str, metric: str, value: float | None, n: int,
        severity: int | None = None, eps_255: float | None = None, normaliser: str | None = None,
        note: str | None = None) -> dict:
    """One measurement. A value that cannot be defined (e.g. a zero denominator) is None with a note saying why;
    a non-finite value becomes None with the note "undefined" (never NaN in results)."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}")
    if value is not None and not math.isfinite(float(value)):
        value, note = None, note or "undefined"
    return {"model": model, "suite": suite, "task": task, "condition": condition, "severity": severity,
            "eps_255": eps_255, "eps": None if eps_255 is None else eps_255 / 255.0, "metric": metric,
            "value": None if value is None else float(value), "n": int(n), "normaliser": normaliser, "note": note}


def frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=COLUMNS)
    return df.sort_values(SORT, na_position="first", kind="stable").reset_index(drop=True)


def write_results(out: str | Path, df: pd.DataFrame, per_image: pd.DataFrame, meta: dict) -> Path:
    """Write a results folder; meta.json last, with the row count and the checksum of results.csv."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NsbenchError(f"{out}: exists and is not a folder")
    make_dir(out)
    df = frame(df.to_dict("records")) if list(df.columns) == COLUMNS else df
    with atomic_path(out / "results.csv") as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")
        sha = file_sha256(tmp)
    with atomic_path(out / "results.parquet") as tmp:
        df.to_parquet(tmp, index=False)
    if len(per_image):
        with atomic_path(out / "per_image.parquet") as tmp:
            per_image.to_parquet(tmp, index=False)
    else:
        (out / "per_image.parquet").unlink(missing_ok=True)
    write_json(out / "meta.json", {**meta, "results": {"rows": int(len(df)), "sha256": sha}})
    return out
