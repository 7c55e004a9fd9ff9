"""Accuracy on each shifted set per model, keyed as the published table keys them (`clean`, `imagenet_v2:VARIANT`,
`imagenet_sketch`, `imagenet_a`, `imagenet_r`, `imagenet_c`, `imagenet_c_bar`, `imagenet_3dcc`, `built_a`), with a
95% bootstrap interval where per-image outcomes allow one. The published-vs-measured table and the
effective-robustness figure read it. Each set is built (this dataset's -C / -P / -A, made by nsbench) or official (the
released files), as the eval's meta.json `sets` records it: the page is headed by what was scored (`origin`)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..schema import (ALL, ATTACKS_BY_NAME, C_MEAN_ERR, CLEAN, CLEAN_CONDITION, IMAGENET_3DCC, IMAGENET_C_BAR,
                      IMAGENET_SKETCH, IMAGENET_V2, MEAN_ERR, MEASURES, NATURAL_ADVERSARIAL, OFFICIAL_SET_TASKS,
                      PARTIAL, SKETCH, TASK_LABELS, TOP1_ACC, Measure, lookup)
from . import stats
from .load import EvalResult

SEED = 5151
IMAGENET_C = "imagenet_c"  # the published-set key of ImageNet-C: the corruptions task on the official set
# key -> (task, condition) of a single-cell top-1 accuracy
SINGLE = {CLEAN: (CLEAN, CLEAN_CONDITION), IMAGENET_SKETCH: (IMAGENET_SKETCH, SKETCH),
          "imagenet_a": (NATURAL_ADVERSARIAL, "imagenet-a"), "imagenet_r": (NATURAL_ADVERSARIAL, "imagenet-r"),
          "built_a": (NATURAL_ADVERSARIAL, "built")}


def _mean_error(task: str) -> Measure:
    return next(m for m in MEASURES.values() if m.task == task and m.metric == MEAN_ERR and m.condition == ALL)


# key -> the measure whose mean error over all corruptions gives the accuracy (100 - mean error)
TREES = {IMAGENET_C: MEASURES[C_MEAN_ERR], IMAGENET_C_BAR: _mean_error(IMAGENET_C_BAR),
         IMAGENET_3DCC: _mean_error(IMAGENET_3DCC)}
LABELS = {CLEAN: TASK_LABELS[CLEAN], IMAGENET_SKETCH: "ImageNet-Sketch", "imagenet_a": "ImageNet-A",
          "imagenet_r": "ImageNet-R", "built_a": "-A (built)", IMAGENET_C: "-C (mean over corruptions)",
          IMAGENET_C_BAR: "ImageNet-C-bar (mean)", IMAGENET_3DCC: "ImageNet-3DCC (mean)"}
V2 = f"{IMAGENET_V2}:"  # the key of an ImageNet-V2 variant: imagenet_v2:VARIANT
BUILT, OFFICIAL = "built", "official"  # a set's origin
NO_NORMALISER_SETS = (IMAGENET_C_BAR, IMAGENET_3DCC)  # official sets that publish no normaliser


@dataclass
class Measured:
    value: float
    low: float = np.nan
    high: float = np.nan
    n: int = 0
    note: str = ""


def label(key: str) -> str:
    if key.startswith(V2):
        return f"ImageNet-V2 {key.removeprefix(V2)}"
    return LABELS.get(key, key)


def task_of(key: str) -> str | None:
    """The task that scored a set key (None for the clean set)."""
    if key.startswith(V2):
        return IMAGENET_V2
    if key in TREES:
        return TREES[key].task
    cell = SINGLE.get(key)
    return cell[0] if cell and cell[0] != CLEAN else None


def origin(r: EvalResult, key: str) -> str:
    """"built" or "official": how r's set `key` was made, from meta.json's `sets` (a built set names its folder, a
    built -A its references; an official set's source starts "official"); the sets only read from released files
    (ImageNet-V2 / -Sketch / -C-bar / -3DCC) are official; on a dataset other than ImageNet every set is built (the
    official sets are ImageNet's); "" when nothing says."""
    task = task_of(key)
    if task is None:
        return ""
    if task in OFFICIAL_SET_TASKS:
        return OFFICIAL
    info = (r.meta.get("sets") or {}).get(task)
    info = info if isinstance(info, dict) else {}
    if str(info.get("source") or "").startswith(OFFICIAL):
        return OFFICIAL
    if "references" in info or "folder" in info or key == "built_a":
        return BUILT
    if not str((r.meta.get("dataset") or {}).get("source") or "").startswith("imagenet"):
        return BUILT
    return OFFICIAL if key in ("imagenet_a", "imagenet_r") else ""


def heading(origins: set[str]) -> str:
    """The shifted-set table's heading: what its sets are."""
    if origins == {BUILT}:
        return "Built shifted sets"
    if origins == {OFFICIAL}:
        return "Official shifted sets"
    if origins == {BUILT, OFFICIAL}:
        return "Shifted sets (built and official)"
    return "Shifted sets"


def origin_note(origins: set[str]) -> str:
    """What the origins on the page mean, for those it holds."""
    said = {BUILT: 'built: made by nsbench from this dataset (see "How the robustness sets were made")',
            OFFICIAL: "official: the released files, scored as shipped"}
    text = "; ".join(v for k, v in said.items() if k in origins)
    return f"{text[:1].upper()}{text[1:]}." if text else ""


def _cell(key: str) -> tuple[str, str] | None:
    if key.startswith(V2):
        return IMAGENET_V2, key.removeprefix(V2)
    return SINGLE.get(key)


def accuracy(r: EvalResult, key: str) -> Measured | None:
    """Top-1 accuracy (%) of one model on one set, with its interval; None when the model was not scored on it."""
    cell = _cell(key)
    if cell is not None:
        value, note = lookup(r.rows, cell[0], TOP1_ACC, cell[1])
        if not np.isfinite(value):
            return None
        m = Measured(value, note=note)
        per = r.per_image
        if per is not None and "correct" in per:
            p = per[(per.task == cell[0]) & (per.condition == cell[1]) & per.correct.notna()]
            if len(p) and not p.image.duplicated().any():
                s = stats.accuracy(p.sort_values("image").correct.astype(bool).to_numpy(), tuple(p.image), value)
                m.n = len(p)
                if stats.reproduces(s):
                    m.low, m.high = stats.interval(s, SEED)
        return m
    tree = TREES.get(key)
    if tree is None:
        return None
    err, note = tree.lookup(r.rows)
    if not np.isfinite(err):  # a partial download: its mean over the cells present, its note saying so
        tree = MEASURES.get(tree.name + PARTIAL, tree)
        err, note = tree.lookup(r.rows)
    if not np.isfinite(err):
        return None
    n = r.rows[tree.mask(r.rows)].n.iloc[0]  # a finite lookup found the row
    return Measured(100 - err, n=int(n), note=note or "mean over corruptions; no interval")


def keys_present(evals: list[EvalResult]) -> list[str]:
    """Every set key some model was scored on, clean first."""
    keys = list(SINGLE) + list(TREES)
    for r in evals:
        keys += [f"{V2}{c}" for c in r.rows[(r.rows.task == IMAGENET_V2) & (r.rows.metric == TOP1_ACC)].condition]
    keys = list(dict.fromkeys(keys))
    return [k for k in keys if any(accuracy(r, k) is not None for r in evals)]


def accuracy_frame(evals: list[EvalResult]) -> pd.DataFrame:
    rows = []
    for k in keys_present(evals):
        for r in evals:
            m = accuracy(r, k)
            if m is not None:
                rows.append({"model": r.label, "set": k, "label": label(k), "value": m.value, "ci_low": m.low,
                             "ci_high": m.high, "n": m.n, "note": m.note})
    return pd.DataFrame(rows, columns=["model", "set", "label", "value", "ci_low", "ci_high", "n", "note"])


def attack_frame(evals: list[EvalResult]) -> pd.DataFrame:
    """Top-1 accuracy under each attack run by name (task `attacks`), with its interval over images."""
    rows = []
    for r in evals:
        hits = r.rows[(r.rows.task == ATTACKS_BY_NAME) & (r.rows.metric == TOP1_ACC) & r.rows.value.notna()]
        for _, x in hits.iterrows():
            m = Measured(float(x.value), n=int(x.n))
            per = r.per_image
            if per is not None and "correct" in per:
                p = per[(per.task == ATTACKS_BY_NAME) & (per.condition == x.condition) & per.correct.notna()]
                if np.isfinite(x.eps_255):
                    p = p[p.eps_255 == x.eps_255]
                if len(p) and not p.image.duplicated().any():
                    s = stats.accuracy(p.sort_values("image").correct.astype(bool).to_numpy(), tuple(p.image), m.value)
                    if stats.reproduces(s):
                        m.low, m.high = stats.interval(s, SEED)
            rows.append({"model": r.label, "attack": x.condition, "eps_255": x.eps_255, "value": m.value,
                         "ci_low": m.low, "ci_high": m.high, "n": m.n})
    return pd.DataFrame(rows, columns=["model", "attack", "eps_255", "value", "ci_low", "ci_high", "n"])
