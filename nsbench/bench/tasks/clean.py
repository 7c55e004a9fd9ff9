"""clean: top-1 / top-5 accuracy on the evaluation split, overall and per class."""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ...config import check_range
from .. import calibration_rows
from ..metrics import accuracy, error
from ..registry import TaskResult, register

log = logging.getLogger(__name__)


@dataclass
class CleanTask:
    enabled: bool = True
    limit: int | None = None  # images of the evaluation split (None: all)


def validate(t: CleanTask) -> None:
    check_range("clean.limit", t.limit, lo=1, optional=True)


def clean_cell(ctx) -> dict[str, np.ndarray]:
    """Per-image predictions on the clean split: index, pred, label, correct5 and the calibration columns
    (confidence, nll, brier; cached per model)."""
    src = ctx.source
    idx = ctx.pick(len(src), ctx.suite.clean.limit)

    def local(part):
        preds, c5, ids, labels = [np.zeros(0, np.int64)], [np.zeros(0, bool)], [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
        cal = {k: [np.zeros(0)] for k in calibration_rows.PER_IMAGE}
        for x, y, i, _ in ctx.batches(src, part):
            if len(y) == 0:
                continue
            lg = ctx.forward(x)
            top = lg.topk(min(5, lg.shape[1]), 1).indices
            preds.append(top[:, 0].numpy())
            c5.append((top == y[:, None]).any(1).numpy())
            ids.append(i.numpy())
            labels.append(y.numpy())
            for k, v in calibration_rows.columns(calibration_rows.per_image(lg.numpy(), y.numpy())).items():
                cal[k].append(v)
        return {"index": np.concatenate(ids), "pred": np.concatenate(preds), "label": np.concatenate(labels),
                "correct5": np.concatenate(c5), **{k: np.concatenate(v) for k, v in cal.items()}}

    return ctx.cell("clean", f"{src.name}|{src.fingerprint()}|{ctx.size}|{idx.tolist()}|calibration", lambda: ctx.sharded(idx, local))


def clean_correct(ctx) -> np.ndarray:
    z = clean_cell(ctx)
    return z["pred"] == z["label"]


@register("clean", config=CleanTask, order=0, validate=validate)
def run(ctx, cfg: CleanTask, norm) -> TaskResult:
    z = clean_cell(ctx)
    correct = z["pred"] == z["label"]
    n = len(correct)
    rows = [ctx.row("clean", "clean", "top1_acc", 100 * accuracy(correct), n),
            ctx.row("clean", "clean", "top5_acc", 100 * accuracy(z["correct5"]), n),
            ctx.row("clean", "clean", "top1_err", 100 * error(correct), n),
            ctx.row("clean", "clean", "top5_err", 100 * error(z["correct5"]), n)]
    for c, name in enumerate(ctx.em.classes):
        m = z["label"] == c
        if m.any():
            rows.append(ctx.row("clean", f"class:{name}", "class_acc", 100 * correct[m].mean(), m.sum()))
    rows += calibration_rows.rows(ctx, "clean", "clean", {**z, "correct": correct})
    per = pd.DataFrame({"task": "clean", "condition": "clean", "severity": 0, "eps_255": 0.0,
                        "image": z["index"], "correct": correct, **calibration_rows.columns(z)})
    asked = len(ctx.pick(len(ctx.source), ctx.suite.clean.limit))
    if asked > n:  # unreadable images are skipped by the loader: counted, as every other task counts them
        log.warning("%s: %d unreadable image(s) of the evaluation split skipped and counted", ctx.source.name, asked - n)
    return TaskResult(rows, [per], {"clean": {"n": int(n), "skipped_unreadable": int(asked - n)}})
