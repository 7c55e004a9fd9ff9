"""The labeled / unlabeled split: N labels per class, seeded; the rest is unlabeled with labels hidden."""
from __future__ import annotations

import numpy as np

from ..utils import NsbenchError


def labeled_split(labels: np.ndarray, per_class: int | None, seed: int, name: str = "data") -> tuple[np.ndarray, np.ndarray]:
    """Return (labeled indices, unlabeled indices), both sorted. `per_class=None` labels everything."""
    labels = np.asarray(labels)
    if per_class is None:
        return np.arange(len(labels)), np.arange(0)
    if per_class <= 0:
        raise NsbenchError(f"{name}: labels_per_class must be positive, got {per_class}")
    if (labels < 0).any():
        raise NsbenchError(f"{name}: some training images have no label; a labeled split needs labels")
    rng = np.random.default_rng(seed)
    chosen = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if len(members) < per_class:
            raise NsbenchError(f"{name}: class {c} has {len(members)} images, fewer than labels_per_class={per_class}")
        chosen.append(rng.choice(members, size=per_class, replace=False))
    labeled = np.sort(np.concatenate(chosen))
    mask = np.ones(len(labels), bool)
    mask[labeled] = False
    return labeled, np.flatnonzero(mask)


def subsample(indices: np.ndarray | int, limit: int | None, seed: int) -> np.ndarray:
    """A seeded subset of `limit` of `indices` (an int n: of range(n)), sorted; all of them when `limit` is None or
    not smaller. The one subset rule of the project: the training pools here, the evaluation sets in bench/."""
    if isinstance(indices, (int, np.integer)):
        indices = np.arange(indices)
    if limit is None or limit >= len(indices):
        return indices
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(indices, size=limit, replace=False))
