"""Datasets and batch iterators over sources; unreadable images are skipped and counted, never fatal."""
from __future__ import annotations

import logging
import random
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .sources import Source, UnreadableImage
from .targets import dense_targets
from .transforms import TrainAugment, prepare, prepare_batch, to_tensor

log = logging.getLogger(__name__)


class ImageDataset(Dataset):
    """Items (uint8 HWC image, target, source index); target is an int label or a soft vector row."""

    def __init__(self, source: Source, indices: np.ndarray, size: int, targets: np.ndarray | None = None,
                 augment: TrainAugment | None = None, resize: dict | None = None):
        self.source, self.indices, self.size, self.augment = source, np.asarray(indices, np.int64), size, augment
        self.resize = resize or {}  # crop_pct / interpolation of the evaluation resize for natural images
        self.targets = targets if targets is not None else source.labels[self.indices]
        # in-memory small images: pad the distinct ones once (channels kept; greyscale expands at batching)
        self._prepared, self._row = None, None
        if source.kind == "small" and len(self.indices) and source.load_batch(self.indices[:1]) is not None:
            uniq, self._row = np.unique(self.indices, return_inverse=True)
            self._prepared = prepare_batch(source.load_batch(uniq), size)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int):
        i = int(self.indices[k])
        if self._prepared is not None:
            img = self._prepared[self._row[k]]
        else:
            try:
                raw = self.source.load(i)
            except UnreadableImage as e:
                log.warning("skipping unreadable image %s", e)
                return None
            if self.augment is not None and self.augment.is_natural(raw, self.source.kind):
                return self.augment.natural(raw), self.targets[k], i  # crops from the decoded image
            img = prepare(raw, self.size, self.source.kind, **self.resize)
        if self.augment is not None:
            img = self.augment(img)
        return img, self.targets[k], i


def collate(items):
    """Stack the readable items; report how many were skipped as the fourth element."""
    good = [it for it in items if it is not None]
    skipped = len(items) - len(good)
    if not good:
        return None, None, None, skipped
    x = to_tensor(np.stack([g[0] for g in good]))
    y = torch.as_tensor(np.asarray([g[1] for g in good], dtype=np.int64))
    idx = torch.as_tensor([g[2] for g in good], dtype=torch.int64)
    return x, y, idx, skipped


class MixedDataset(Dataset):
    """Labeled items (index < n_labeled) followed by pseudo-labeled ones, for MixedBatchSampler's batches."""

    def __init__(self, labeled: ImageDataset, pseudo: ImageDataset | None):
        self.labeled, self.pseudo = labeled, pseudo
        self.n_labeled = len(labeled)

    def __len__(self) -> int:
        return self.n_labeled + (len(self.pseudo) if self.pseudo is not None else 0)

    def __getitem__(self, i: int):
        if i < self.n_labeled:
            item = self.labeled[i]
            return None if item is None else (*item, True)
        k = i - self.n_labeled
        item = self.pseudo[k]
        return None if item is None else (*item, False)


def collate_mixed(items):
    """(x, labels of the labeled part, soft targets of the pseudo part, n_labeled, n_skipped); labeled first."""
    good = [it for it in items if it is not None]
    skipped = len(items) - len(good)
    lab = [g for g in good if g[3]]
    uns = [g for g in good if not g[3]]
    x = to_tensor(np.stack([g[0] for g in lab + uns])) if good else None
    y = torch.as_tensor(np.asarray([g[1] for g in lab], dtype=np.int64))
    soft = None
    if uns:
        first = uns[0][1]
        if isinstance(first, tuple):  # top-k (classes, values) rows: densified once per batch
            soft = dense_targets(np.stack([g[1][0] for g in uns]), np.stack([g[1][1] for g in uns]), uns[0][1][2])
        else:
            soft = np.stack([g[1] for g in uns]).astype(np.float32)
        soft = torch.as_tensor(soft)
    return x, y, soft, len(lab), skipped


class MixedBatchSampler(torch.utils.data.Sampler):
    """Each step: `bl` labeled and `bu` pseudo-labeled indices of a MixedDataset, from seeded per-epoch permutations
    that repeat as needed. Under torch.distributed, rank r takes the r-th share of every global batch, so N ranks
    together see exactly the batches one process would with N times the batch size."""

    def __init__(self, n_labeled: int, n_pseudo: int, bl: int, bu: int, steps: int, seed: int, epoch: int,
                 rank: int = 0, world: int = 1):
        self.nl, self.nu, self.bl, self.bu, self.steps = n_labeled, n_pseudo, bl, bu, steps
        self.seed, self.epoch, self.rank, self.world = seed, epoch, rank, world

    def __len__(self) -> int:
        return self.steps

    @staticmethod
    def _stream(n: int, need: int, rng: np.random.Generator) -> np.ndarray:
        if n == 0 or need == 0:
            return np.zeros(0, np.int64)
        reps = -(-need // n)
        return np.concatenate([rng.permutation(n) for _ in range(reps)])[:need]

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        gl, gu = self.bl * self.world, self.bu * self.world
        lab = self._stream(self.nl, gl * self.steps, rng)
        uns = self._stream(self.nu, gu * self.steps, rng) + self.nl
        for s in range(self.steps):
            a = lab[s * gl + self.rank * self.bl : s * gl + (self.rank + 1) * self.bl]
            b = uns[s * gu + self.rank * self.bu : s * gu + (self.rank + 1) * self.bu] if self.bu else uns[:0]
            yield np.concatenate([a, b]).tolist()


def worker_init(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**31
    random.seed(seed)
    np.random.seed(seed)
    torch.set_num_threads(1)


def make_loader(dataset: ImageDataset, batch_size: int, num_workers: int) -> DataLoader:
    """Batches of `dataset` in index order (training draws its batches from MixedBatchSampler instead)."""
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=collate,
        worker_init_fn=worker_init if num_workers else None, pin_memory=torch.cuda.is_available(),
    )


def iterate_clean(source: Source, indices: np.ndarray, size: int, batch_size: int, num_workers: int = 0,
                  resize: dict | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]]:
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
    ds = ImageDataset(source, indices, size, resize=resize)
    for x, y, idx, skipped in make_loader(ds, batch_size, num_workers):
        if x is None:
            if skipped:
                yield torch.empty(0, 3, size, size), torch.empty(0, dtype=torch.int64), torch.empty(0, dtype=torch.int64), skipped
            continue
        yield x, y, idx, skipped

