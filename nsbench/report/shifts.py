"""Accuracy on each shifted set per model, keyed as the published table keys them (`clean`, `imagenet_v2:VARIANT`,
`imagenet_sketch`, `imagenet_a`, `imagenet_r`, `imagenet_c`, `imagenet_c_bar`, `imagenet_3dcc`, `built_a`), with a
95% bootstrap interval where per-image outcomes allow one. The published-vs-measured table and the
effective-robustness figure read it."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import stats as S
from .headline import lookup
from .load import EvalResult

SEED = 5151
# key -> (task, condition) of a single-cell accuracy
SINGLE = {"clean": ("clean", "clean"), "imagenet_sketch": ("imagenet_sketch", "sketch"),
          "imagenet_a": ("natural_adversarial", "imagenet-a"), "imagenet_r": ("natural_adversarial", "imagenet-r"),
          "built_a": ("natural_adversarial", "built")}
# key -> task whose `mean_err` over all corruptions gives the accuracy (100 - mean error)
TREES = {"imagenet_c": "corruptions", "imagenet_c_bar": "imagenet_c_bar", "imagenet_3dcc": "imagenet_3dcc"}
LABELS = {"clean": "clean", "imagenet_sketch": "ImageNet-Sketch", "imagenet_a": "ImageNet-A", "imagenet_r": "ImageNet-R",
          "built_a": "-A (built)", "imagenet_c": "-C (mean over corruptions)", "imagenet_c_bar": "ImageNet-C-bar (mean)",
          "imagenet_3dcc": "ImageNet-3DCC (mean)"}


@dataclass
class Measured:
    value: float
    low: float = np.nan
    high: float = np.nan
    n: int = 0
    note: str = ""


def label(key: str) -> str:
    if key.startswith("imagenet_v2:"):
        return f"ImageNet-V2 {key.split(':', 1)[1]}"
    return LABELS.get(key, key)


def _cell(key: str) -> tuple[str, str] | None:
    if key.startswith("imagenet_v2:"):
        return "imagenet_v2", key.split(":", 1)[1]
    return SINGLE.get(key)


def accuracy(r: EvalResult, key: str) -> Measured | None:
    """Top-1 accuracy (%) of one model on one set, with its interval; None when the model was not scored on it."""
    cell = _cell(key)
    if cell is not None:
        value, note = lookup(r.rows, cell[0], "top1_acc", cell[1])
        if not np.isfinite(value):
            return None
        m = Measured(value, note=note)
        per = r.per_image
        if per is not None and "correct" in per:
            p = per[(per.task == cell[0]) & (per.condition == cell[1]) & per.correct.notna()]
            if len(p) and not p.image.duplicated().any():
                s = S.accuracy(p.sort_values("image").correct.astype(bool).to_numpy(), tuple(p.image), value)
                m.n = len(p)
                if S.reproduces(s):
                    m.low, m.high = S.interval(s, SEED)
        return m
    task = TREES.get(key)
    if task is None:
        return None
    err, note = lookup(r.rows, task, "mean_err", "all")
    if not np.isfinite(err):
        return None
    n = r.rows[(r.rows.task == task) & (r.rows.metric == "mean_err") & (r.rows.condition == "all")].n
    return Measured(100 - err, n=int(n.iloc[0]) if len(n) else 0, note=note or "mean over corruptions; no interval")


def keys_present(evals: list[EvalResult]) -> list[str]:
    """Every set key some model was scored on, clean first."""
    keys = list(SINGLE) + list(TREES)
    for r in evals:
        keys += [f"imagenet_v2:{c}" for c in r.rows[(r.rows.task == "imagenet_v2") & (r.rows.metric == "top1_acc")].condition]
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
        hits = r.rows[(r.rows.task == "attacks") & (r.rows.metric == "top1_acc") & r.rows.value.notna()]
        for _, x in hits.iterrows():
            m = Measured(float(x.value), n=int(x.n))
            per = r.per_image
            if per is not None and "correct" in per:
                p = per[(per.task == "attacks") & (per.condition == x.condition) & per.correct.notna()]
                if np.isfinite(x.eps_255):
                    p = p[p.eps_255 == x.eps_255]
                if len(p) and not p.image.duplicated().any():
                    s = S.accuracy(p.sort_values("image").correct.astype(bool).to_numpy(), tuple(p.image), m.value)
                    if S.reproduces(s):
                        m.low, m.high = S.interval(s, SEED)
            rows.append({"model": r.label, "attack": x.condition, "eps_255": x.eps_255, "value": m.value,
                         "ci_low": m.low, "ci_high": m.high, "n": m.n})
    return pd.DataFrame(rows, columns=["model", "attack", "eps_255", "value", "ci_low", "ci_high", "n"])
