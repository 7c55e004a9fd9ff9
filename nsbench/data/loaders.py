"""Datasets and batch iterators over sources; unreadable images are skipped and counted, never fatal."""
from __future__ import annotations

import logging
import random
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .sources import Source, UnreadableImage
from .transforms import TrainAugment, prepare, prepare_batch, to_tensor

log = logging.getLogger(__name__)


class ImageDataset(Dataset):
    """Items (uint8 HWC image, target, source index); target is an int label or a soft vector row."""

    def __init__(self, source: Source, indices: np.ndarray, size: int, targets: np.ndarray | None = None,
                 augment: TrainAugment | None = None):
        self.source, self.indices, self.size, self.augment = source, np.asarray(indices, np.int64), size, augment
        self.targets = targets if targets is not None else source.labels[self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int):
        i = int(self.indices[k])
        try:
            img = prepare(self.source.load(i), self.size, self.source.kind)
        except UnreadableImage as e:
            log.warning("skipping unreadable image %s", e)
            return None
        if self.augment is not None:
            img = self.augment(img, np.random.default_rng(_worker_seed() + k))
        return np.ascontiguousarray(img), self.targets[k], i


def _worker_seed() -> int:
    # Python's `random` is re-seeded per epoch by the training loop and per worker by torch's DataLoader.
    return random.getrandbits(31)


def collate(items):
    """Stack the readable items; report how many were skipped as the fourth element."""
    good = [it for it in items if it is not None]
    skipped = len(items) - len(good)
    if not good:
        return None, None, None, skipped
    x = to_tensor(np.stack([g[0] for g in good]))
    t0 = good[0][1]
    if np.ndim(t0) == 0:
        y = torch.as_tensor(np.asarray([g[1] for g in good], dtype=np.int64))
    else:
        y = torch.as_tensor(np.stack([g[1] for g in good]).astype(np.float32))
    idx = torch.as_tensor([g[2] for g in good], dtype=torch.int64)
    return x, y, idx, skipped


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**31
    random.seed(seed)
    np.random.seed(seed)
    torch.set_num_threads(1)


def make_loader(dataset: ImageDataset, batch_size: int, shuffle: bool, num_workers: int, seed: int,
                drop_last: bool = False, sampler=None) -> DataLoader:
    g = torch.Generator()
    g.manual_seed(seed)
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle if sampler is None else False, sampler=sampler,
        num_workers=num_workers, collate_fn=collate, drop_last=drop_last, generator=g,
        worker_init_fn=_seed_worker if num_workers else None, persistent_workers=False,
        pin_memory=torch.cuda.is_available(),
    )


def iterate_clean(source: Source, indices: np.ndarray, size: int, batch_size: int, num_workers: int = 0
                  ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]]:
    """Un-augmented batches (x in [0,1] NCHW, labels, source indices, n_skipped) in index order.

    In-memory sources are sliced and padded a whole batch at a time; file sources decode in workers.
    """
    indices = np.asarray(indices, np.int64)
    if source.kind == "small" and source.load_batch(indices[:1]) is not None:
        for s in range(0, len(indices), batch_size):
            idx = indices[s : s + batch_size]
            x = to_tensor(prepare_batch(source.load_batch(idx), size))
            yield x, torch.as_tensor(source.labels[idx]), torch.as_tensor(idx), 0
        return
    ds = ImageDataset(source, indices, size)
    for x, y, idx, skipped in make_loader(ds, batch_size, False, num_workers, 0):
        if x is None:
            if skipped:
                yield torch.empty(0, 3, size, size), torch.empty(0, dtype=torch.int64), torch.empty(0, dtype=torch.int64), skipped
            continue
        yield x, y, idx, skipped
