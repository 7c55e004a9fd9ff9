"""Soft-target rows: top-k (class, probability) pairs as stored by pseudo-labeling, densified for a batch."""
from __future__ import annotations

import numpy as np


def dense_targets(cls: np.ndarray, val: np.ndarray, num_classes: int) -> np.ndarray:
    """Top-k rows back to probability vectors, renormalised to sum to one."""
    out = np.zeros((len(cls), num_classes), np.float32)
    np.put_along_axis(out, cls.astype(np.int64), val, 1)
    out /= out.sum(1, keepdims=True)
    return out


class TopKTargets:
    """Soft targets kept as top-k rows (memory stays top-k sized); the batch collate densifies them."""

    def __init__(self, cls: np.ndarray, val: np.ndarray, num_classes: int):
        self.cls, self.val, self.c = cls, val, num_classes

    def __len__(self) -> int:
        return len(self.cls)

    def __getitem__(self, k) -> tuple[np.ndarray, np.ndarray, int]:
        return self.cls[k], self.val[k], self.c

    def dense(self, k) -> np.ndarray:
        """Row k as a probability vector; rows k (an index array) as a [len(k), classes] matrix."""
        out = dense_targets(self.cls[np.atleast_1d(k)], self.val[np.atleast_1d(k)], self.c)
        return out if np.ndim(k) else out[0]
