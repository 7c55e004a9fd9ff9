"""Soft-target rows: top-k (class, probability) pairs as stored by pseudo-labeling, densified for a batch."""
from __future__ import annotations

import numpy as np


def dense_targets(cls: np.ndarray, val: np.ndarray, num_classes: int) -> np.ndarray:
    """Top-k rows back to probability vectors, renormalised to sum to one."""
    out = np.zeros((len(cls), num_classes), np.float32)
    np.put_along_axis(out, cls.astype(np.int64), val, 1)
    out /= out.sum(1, keepdims=True)
    return out
