"""Calibration rows of the harness: `ece` in % (x100, as accuracies), `nll` and `brier` as they are (definitions and
their source in nsbench/calibration.py); per-image `confidence`, `nll` and `brier` travel in per_image.parquet so
the report can bootstrap each with the image set."""
from __future__ import annotations

import numpy as np

from ..calibration import PER_IMAGE, per_image, summary

__all__ = ["PER_IMAGE", "per_image", "rows", "columns", "outcomes"]  # the tasks' one import for calibration


def rows(ctx, task: str, condition: str, z: dict[str, np.ndarray], **kw) -> list[dict]:
    """The three calibration rows of one cell, valued by nsbench.calibration.summary, their one definition (ctx.row
    keywords such as severity / eps_255 pass through)."""
    if len(z.get("confidence", ())) == 0:
        return []
    n = len(z["confidence"])
    return [ctx.row(task, condition, metric, value, n, **kw) for metric, value in summary(z).items()]


def columns(z: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The per-image calibration columns of a cell, for its per_image frame (empty when the cell has none)."""
    return {k: np.asarray(z[k], np.float64) for k in PER_IMAGE if k in z}


def outcomes(ctx, src, idx: np.ndarray, mask: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-image outcomes of the context's model on `src` at `idx`, sharded over ranks: `correct`, the `index` of
    each image scored (unreadable images are skipped, so it may be shorter than `idx`), `n_asked` and the calibration
    columns. With `mask` (ImageNet-A/-R), predictions and calibration are over the masked classes, as
    robustness_metrics' use_dataset_labelset."""
    def local(part):
        out = {"pred": [np.zeros(0, np.int64)], "index": [np.zeros(0, np.int64)],
               **{k: [np.zeros(0)] for k in PER_IMAGE}}
        for x, _, i, _ in ctx.batches(src, part):
            if len(i):
                z = per_image(ctx.forward(x).numpy(), src.labels[i.numpy()], mask)
                for k, v in {"pred": z["pred"], "index": i.numpy(), **columns(z)}.items():
                    out[k].append(v)
        return {k: np.concatenate(v) for k, v in out.items()}

    z = ctx.sharded(idx, local)
    index = z["index"].astype(np.int64)
    return {"correct": z["pred"].astype(np.int64) == src.labels[index], "index": index,
            "n_asked": np.asarray(len(idx)), **columns(z)}
