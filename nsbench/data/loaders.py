"""Datasets and batch iterators over sources; unreadable images are skipped and counted, never fatal.

Workers decode and ship uint8 (a quarter of float32's bytes); conversion to float, and the training noise, happen
on the batch's device (augment.py). Clean (labeling, evaluation) loaders parallelise per image: workers fill small
chunks that the main process joins into batches in order, so one batch never waits on one worker.
"""
from __future__ import annotations

import logging
import os
import random
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .sources import Source, UnreadableImage
from .augment import step_generator, to_float
from .decode import device_center_crops
from .targets import TopKTargets, dense_targets
from .transforms import SMALL_IMAGE_MAX, TrainAugment, prepare, prepare_batch

LOADER_TIMEOUT = 600  # seconds a worker may take for one chunk before the loader fails instead of hanging

log = logging.getLogger(__name__)


class ImageDataset(Dataset):
    """Items (uint8 HWC image, target, source index); target is an int label or a soft vector row."""

    def __init__(self, source: Source, indices: np.ndarray, size: int, targets: np.ndarray | None = None,
                 augment: TrainAugment | None = None, resize: dict | None = None):
        self.source, self.indices, self.size, self.augment = source, np.asarray(indices, np.int64), size, augment
        self.resize = resize or {}  # crop_pct / interpolation of the evaluation resize for natural images
        self.encoded = False  # decoding on the device: JPEG files travel as bytes (decode.py)
        self.targets = targets if targets is not None else source.labels[self.indices]
        # in-memory small images: pad the distinct ones once (channels kept; greyscale expands at batching)
        self._prepared, self._row = None, None
        if source.kind == "small" and len(self.indices) and source.load_batch(self.indices[:1]) is not None:
            uniq, self._row = np.unique(self.indices, return_inverse=True)
            self._prepared = prepare_batch(source.load_batch(uniq), size)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int):
        """(uint8 HWC image, target, source index, natural); None for an unreadable image. With `augment`, a
        natural image is cropped and flipped here (natural=True); the batch noise comes later (augment.py)."""
        i = int(self.indices[k])
        if self._prepared is not None:
            return self._prepared[self._row[k]], self.targets[k], i, False
        try:
            # encoded: JPEG bytes travel for clean images and for training's random-resized crops (decode.py)
            if self.encoded and (self.augment is None or self.augment.rrc is not None) and \
                    (data := self.source.encoded(i)) is not None:
                return torch.frombuffer(bytearray(data), dtype=torch.uint8), self.targets[k], i, False
            raw = self.source.load(i)
        except UnreadableImage as e:
            log.warning("skipping unreadable image %s", e)
            return None
        if self.augment is not None and self.augment.is_natural(raw, self.source.kind):
            return self.augment.natural(raw), self.targets[k], i, True  # crops from the decoded image
        return prepare(raw, self.size, self.source.kind, **self.resize), self.targets[k], i, False


def stack_uint8(images: list[np.ndarray] | np.ndarray) -> torch.Tensor:
    """HWC uint8 images (1 or 3 channels, same size; a list or an NHWC array) -> uint8 NCHW tensor in channels-last
    memory (the HWC bytes as they are)."""
    if isinstance(images, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    if any(im.shape[2] != images[0].shape[2] for im in images):
        images = [np.repeat(im, 3, axis=2) if im.shape[2] == 1 else im for im in images]
    return torch.from_numpy(np.ascontiguousarray(np.stack(images))).permute(0, 3, 1, 2)


def collate(items):
    """Stack the readable items (uint8 NCHW); report how many were skipped as the fourth element. Items of an
    encoded dataset (JPEG bytes, or images the worker prepared) come packed instead (`pack_parts`)."""
    good = [it for it in items if it is not None]
    skipped = len(items) - len(good)
    if not good:
        return None, None, None, skipped
    if any(isinstance(g[0], torch.Tensor) for g in good):
        x = pack_parts([g[0] for g in good])
    else:
        x = stack_uint8([g[0] for g in good])
    y = torch.as_tensor(np.asarray([g[1] for g in good], dtype=np.int64))
    idx = torch.as_tensor([g[2] for g in good], dtype=torch.int64)
    return x, y, idx, skipped


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
        from .decode import device_crops

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


def pack_parts(parts: list) -> tuple:
    """Per-image parts (1-d JPEG byte tensors, or HWC uint8 arrays the worker decoded and cropped) as one byte
    tensor plus their lengths and shapes: one shared-memory block crosses from a worker, not one per image."""
    flat = [p if isinstance(p, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(p)).reshape(-1) for p in parts]
    shapes = [None if isinstance(p, torch.Tensor) else tuple(p.shape) for p in parts]
    return torch.cat(flat) if flat else torch.empty(0, dtype=torch.uint8), [len(f) for f in flat], shapes


def unpack_parts(packed: tuple) -> list[torch.Tensor]:
    """pack_parts' inverse: JPEG bytes stay 1-d; decoded images become uint8 [c, h, w] views."""
    blob, lengths, shapes = packed
    out = []
    for t, shape in zip(torch.split(blob, lengths), shapes):
        out.append(t if shape is None else t.view(*shape).permute(2, 0, 1))
    return out


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


def worker_init(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**31
    random.seed(seed)
    np.random.seed(seed)
    torch.set_num_threads(1)
    try:  # OpenCV's own thread pool in every worker oversubscribes the cores (and is not fork-safe)
        import cv2

        cv2.setNumThreads(1)
    except ImportError:
        pass


def auto_workers(setting: int | str = "auto") -> int:
    """Loader processes for `data.num_workers`: an int as given; "auto": none on machines of 2 cores or fewer (the
    main process decodes; workers would take the model's cores), else the cores per local GPU less one (the main
    process feeds the GPU), or the cores less one without a GPU, at most 16."""
    if setting != "auto":
        return int(setting)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if cores <= 2:
        return 0
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    local = int(os.environ.get("LOCAL_WORLD_SIZE", max(gpus, 1)))
    return max(1, min(16, cores // max(local, 1) - 1))


def loader_kwargs(num_workers: int, device: torch.device | str | None = None) -> dict:
    """DataLoader settings shared by every loader: workers seeded and single-threaded, a timeout instead of a hang,
    pinned memory for GPU transfers."""
    cuda = torch.device(device).type == "cuda" if device is not None else torch.cuda.is_available()
    kw = {"num_workers": num_workers, "pin_memory": cuda}
    if num_workers:
        kw.update(worker_init_fn=worker_init, timeout=LOADER_TIMEOUT, prefetch_factor=4)
    return kw


def make_loader(dataset: ImageDataset, batch_size: int, num_workers: int,
                device: torch.device | str | None = None) -> DataLoader:
    """Batches of `dataset` in index order (training draws its batches from MixedBatchSampler instead)."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate,
                      **loader_kwargs(num_workers, device))


def to_device(x: torch.Tensor, device: torch.device, channels_last: bool = True) -> torch.Tensor:
    """A uint8 NCHW batch -> float [0, 1] on `device`: uint8 travels (pinned, asynchronous to a GPU), the
    conversion happens there."""
    cuda = device.type == "cuda"
    return to_float((x.pin_memory() if cuda else x).to(device, non_blocking=cuda), channels_last)


def chunk_size(batch_size: int, num_workers: int) -> int:
    """Images per worker task in clean loaders: a divisor of the batch size (batches stay exactly batch_size
    images), small enough that every worker has work in every batch, at most 64."""
    target = max(1, min(64, -(-batch_size // max(1, 2 * num_workers))))
    return next(c for c in range(target, 0, -1) if batch_size % c == 0)


def decodes_on_device(source: Source, size: int, decode: str) -> bool:
    """Whether a clean loader decodes `source`'s JPEGs on the device: decode="device", natural images (targets larger
    than SMALL_IMAGE_MAX), files rather than in-memory or as-is sets."""
    return decode == "device" and size > SMALL_IMAGE_MAX and source.kind not in ("small", "as-is")


def iterate_clean(source: Source, indices: np.ndarray, size: int, batch_size: int, num_workers: int = 0,
                  resize: dict | None = None, device: torch.device | str | None = None,
                  channels_last: bool = True,
                  decode: str = "cpu") -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]]:
    """Un-augmented batches (x in [0,1] NCHW float on `device` (CPU if None), labels, source indices, n_skipped)
    in index order. uint8 travels; the conversion to float happens on the device.

    In-memory sources are sliced and padded a whole batch at a time; file sources decode in workers, per chunk.
    decode="device": natural images (targets larger than SMALL_IMAGE_MAX) of JPEG files travel as bytes and are
    decoded, resized and centre-cropped on `device` (decode.device_center_crops); what is not JPEG still decodes in
    the workers. Pseudo-labeling uses it on GPUs; scoring keeps the reference's PIL pipeline.
    """
    indices = np.asarray(indices, np.int64)
    device = torch.device(device) if device is not None else torch.device("cpu")
    cuda = device.type == "cuda"
    if source.kind == "small" and source.load_batch(indices[:1]) is not None:
        for s in range(0, len(indices), batch_size):
            idx = indices[s : s + batch_size]
            x = stack_uint8(prepare_batch(source.load_batch(idx), size))
            yield to_device(x, device, channels_last), torch.as_tensor(source.labels[idx]), torch.as_tensor(idx), 0
        return
    ds = ImageDataset(source, indices, size, resize=resize)
    ds.encoded = decodes_on_device(source, size, decode)
    loader = make_loader(ds, chunk_size(batch_size, num_workers) if num_workers else batch_size, num_workers, device)
    xs, ys, ids, skipped, n = [], [], [], 0, 0

    def flush():  # chunks went to the device as they came (pinned); joined and converted there
        x = to_float(torch.cat(xs), channels_last) if xs else torch.empty(0, 3, size, size, device=device)
        y = torch.cat(ys) if ys else torch.empty(0, dtype=torch.int64)
        i = torch.cat(ids) if ids else torch.empty(0, dtype=torch.int64)
        return x, y, i, skipped

    for x, y, idx, sk in loader:
        if x is not None and not isinstance(x, torch.Tensor):  # packed parts (pin_memory makes the tuple a list)
            x, failed = device_center_crops(unpack_parts(x), size, device, **(resize or {}))
            if failed:
                keep = torch.ones(len(y), dtype=torch.bool)
                keep[failed] = False
                y, idx, sk = y[keep], idx[keep], sk + len(failed)
        skipped += sk
        n += sk
        if x is not None:
            xs.append(x.to(device, non_blocking=cuda))
            ys.append(y)
            ids.append(idx)
            n += len(x)
        if n >= batch_size:
            yield flush()
            xs, ys, ids, skipped, n = [], [], [], 0, 0
    if n:
        yield flush()
