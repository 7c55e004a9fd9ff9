"""Calibration rows of the harness: `ece` in % (x100, as accuracies), `nll` and `brier` as they are (definitions and
their source in nsbench/calibration.py); per-image `confidence`, `nll` and `brier` travel in per_image.parquet so
the report can bootstrap each with the image set."""
from __future__ import annotations

import numpy as np

from ..calibration import ECE_BINS, PER_IMAGE, bins, ece, ece_weighted, per_image, summary

__all__ = ["ECE_BINS", "PER_IMAGE", "bins", "ece", "ece_weighted", "per_image", "summary", "rows", "columns"]


def rows(ctx, task: str, condition: str, z: dict[str, np.ndarray], **kw) -> list[dict]:
    """The three calibration rows of one cell (ctx.row keywords such as severity / eps_255 pass through)."""
    if len(z.get("confidence", ())) == 0:
        return []
    n = len(z["confidence"])
    return [ctx.row(task, condition, metric, value, n, **kw) for metric, value in summary(z).items()]


def columns(z: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The per-image calibration columns of a cell, for its per_image frame (empty when the cell has none)."""
    return {k: np.asarray(z[k], np.float64) for k in PER_IMAGE if k in z}
