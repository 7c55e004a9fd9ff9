"""The student's batches: every step a labeled batch and a pseudo-labeled batch of `ratio` times its size, in one.

A MixedDataset puts the pseudo-labeled items after the labeled ones; MixedBatchSampler draws each step's indices
from two seeded streams (labeled, pseudo-labeled) that repeat independently, so the mix holds whatever the sizes of
the two sets; MixedCollate turns a step's items into one Batch, labeled rows first. The teacher uses the same
machinery with no pseudo-labeled part.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from ..data.augment import step_generator
from ..data.loaders import ImageDataset, pack_parts, stack_uint8, unpack_parts
from ..data.targets import TopKTargets, dense_targets


class MixedDataset(Dataset):
    """Labeled items (index < n_labeled) followed by pseudo-labeled ones. MixedBatchSampler hands it whole steps,
    (step, indices), which `__getitems__` loads as one batch."""

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

    def __getitems__(self, step_indices):
        epoch, step, indices = step_indices
        batch = self._prepared_batch(np.asarray(indices, np.int64))
        return epoch, step, batch if batch is not None else [self[i] for i in indices]

    def _prepared_batch(self, idx: np.ndarray) -> "Batch | None":
        """The step as one Batch by array indexing when every image is an in-memory small one padded at
        construction (what `collate_mixed` would build item by item); None otherwise."""
        lab, uns = idx[idx < self.n_labeled], idx[idx >= self.n_labeled] - self.n_labeled
        parts = [(self.labeled, lab)] + ([(self.pseudo, uns)] if len(uns) else [])
        if any(ds._prepared is None for ds, _ in parts) or len({ds._prepared.shape[1:] for ds, _ in parts}) > 1:
            return None
        x = stack_uint8(np.concatenate([ds._prepared[ds._row[k]] for ds, k in parts]))
        y = torch.as_tensor(np.asarray(self.labeled.targets[lab], dtype=np.int64))
        soft = None
        if len(uns):
            t = self.pseudo.targets
            soft = t.dense(uns) if isinstance(t, TopKTargets) else np.asarray(t[uns], np.float32)
            soft = torch.as_tensor(soft)
        return Batch(x, y, soft, len(lab), 0, torch.zeros(len(idx), dtype=torch.bool))


class MixedCollate:
    """(epoch, step, items) -> Batch. With `augment` (CPU training), the step's noise is applied here, in the
    loader's worker, from the step's own generator; otherwise the training loop applies it on the device."""

    def __init__(self, augment=None, seed: int = 0):
        self.augment, self.seed = augment, seed

    def __call__(self, step_items) -> "Batch":
        epoch, step, items = step_items
        b = items if isinstance(items, Batch) else collate_mixed(items)
        b.epoch, b.step = epoch, step
        if self.augment is not None and b.x is not None and b.parts is None:
            b.x = self.augment(b.x, step_generator(self.seed, epoch, step), b.natural)
            b.augmented = True
        return b


class Batch:
    """One training step's data: uint8 x (labeled rows first), labels, pseudo-labeled soft targets."""

    __slots__ = ("x", "y", "soft", "n_labeled", "skipped", "natural", "epoch", "step", "augmented", "parts")

    def __init__(self, x, y, soft, n_labeled, skipped, natural, parts=None):
        self.x, self.y, self.soft, self.n_labeled, self.skipped, self.natural = x, y, soft, n_labeled, skipped, natural
        self.parts = parts  # instead of x: packed JPEG bytes / worker-cropped images, per image (pack_parts)
        self.epoch, self.step, self.augmented = 0, 0, False

    def pin_memory(self):
        self.x = self.x.pin_memory() if self.x is not None else None
        self.y = self.y.pin_memory()
        self.soft = self.soft.pin_memory() if self.soft is not None else None
        if self.parts is not None:
            self.parts = (self.parts[0].pin_memory(), *self.parts[1:])
        return self

    def decode_on(self, device: torch.device, size: int, gen: torch.Generator) -> int:
        """Decode and crop `parts` on the device into x; images that fail to decode leave with their targets and
        are counted in `skipped`. Returns how many failed."""
        from ..data.decode import device_crops

        self.x, failed = device_crops(unpack_parts(self.parts), self.natural.tolist(), size, device, gen)
        self.parts = None
        if failed:
            keep = torch.ones(len(self.natural), dtype=torch.bool)
            keep[failed] = False
            n = self.n_labeled
            self.y = self.y[keep[:n]]
            self.soft = self.soft[keep[n:]] if self.soft is not None else None
            self.n_labeled = int(keep[:n].sum())
            self.skipped += len(failed)
        self.natural = torch.ones(len(self.x), dtype=torch.bool)
        return len(failed)


def collate_mixed(items) -> Batch:
    """Readable items of one step -> Batch; the labeled part first."""
    good = [it for it in items if it is not None]
    skipped = len(items) - len(good)
    lab = [g for g in good if g[4]]
    uns = [g for g in good if not g[4]]
    natural = torch.as_tensor([bool(g[3]) for g in lab + uns], dtype=torch.bool)
    parts = None
    if any(isinstance(g[0], torch.Tensor) for g in good):  # JPEG bytes to decode on the device (decode.py)
        x = None
        parts = pack_parts([g[0] for g in lab + uns])
    else:
        x = stack_uint8([g[0] for g in lab + uns]) if good else None
    y = torch.as_tensor(np.asarray([g[1] for g in lab], dtype=np.int64))
    soft = None
    if uns:
        first = uns[0][1]
        if isinstance(first, tuple):  # top-k (classes, values) rows: densified once per batch
            soft = dense_targets(np.stack([g[1][0] for g in uns]), np.stack([g[1][1] for g in uns]), uns[0][1][2])
        else:
            soft = np.stack([g[1] for g in uns]).astype(np.float32)
        soft = torch.as_tensor(soft)
    return Batch(x, y, soft, len(lab), skipped, natural, parts)


class MixedBatchSampler(torch.utils.data.Sampler):
    """Each step: `bl` labeled and `bu` pseudo-labeled indices of a MixedDataset, from seeded per-epoch permutations
    that repeat as needed. Under torch.distributed, rank r takes the r-th share of every global batch, so N ranks
    together see exactly the batches one process would with N times the batch size. It yields (epoch, step,
    indices); `set_epoch` moves it on, so one loader (and its workers) serves every epoch."""

    def __init__(self, n_labeled: int, n_pseudo: int, bl: int, bu: int, steps: int, seed: int, epoch: int,
                 rank: int = 0, world: int = 1):
        self.nl, self.nu, self.bl, self.bu, self.steps = n_labeled, n_pseudo, bl, bu, steps
        self.seed, self.epoch, self.rank, self.world = seed, epoch, rank, world

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

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
            yield self.epoch, s, np.concatenate([a, b]).tolist()
