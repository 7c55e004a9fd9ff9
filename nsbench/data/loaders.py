"""Datasets and batch iterators over sources; unreadable images are skipped and counted, never fatal.

Workers decode and ship uint8 (a quarter of float32's bytes); conversion to float, and the training noise, happen
on the batch's device (augment.py). Clean (labeling, evaluation) loaders parallelise per image: workers fill small
chunks that the main process joins into batches in order, so one batch never waits on one worker. The student's
mixed labeled + pseudo-labeled batches are training's business (nsbench/training/batches.py).
"""
from __future__ import annotations

import logging
import os
import random
import sys
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .sources import Source, UnreadableImage
from .augment import to_float
from .decode import device_center_crops
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
            shipped = getattr(self.source, "shipped_size", None)
            if self.source.kind == "as-is" and shipped and tuple(raw.shape[:2]) != tuple(shipped):
                # an official robustness file is scored as shipped, never resized: one of another size cannot be
                # scored with the rest (skipped and counted, like a file that does not decode)
                raise UnreadableImage(f"{self.source.paths[i]}: {raw.shape[1]}x{raw.shape[0]} pixels, the other "
                                      f"files are {shipped[1]}x{shipped[0]}, scored as shipped")
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


def worker_init(_worker_id: int) -> None:
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


def _stop_opencv_pool() -> None:
    """OpenCV's thread pool, once started in this process (a DATASET-C built here), hangs forked loader workers at
    their first OpenCV call (worker_init's setNumThreads included): stop it before they fork."""
    cv2 = sys.modules.get("cv2")
    if cv2 is not None:
        cv2.setNumThreads(1)


def loader_kwargs(num_workers: int, device: torch.device | str | None = None) -> dict:
    """DataLoader settings shared by every loader: workers seeded and single-threaded, a timeout instead of a hang,
    pinned memory for GPU transfers."""
    cuda = torch.device(device).type == "cuda" if device is not None else torch.cuda.is_available()
    kw = {"num_workers": num_workers, "pin_memory": cuda}
    if num_workers:
        _stop_opencv_pool()
        kw.update(worker_init_fn=worker_init, timeout=LOADER_TIMEOUT, prefetch_factor=4)
    return kw


def make_loader(dataset: ImageDataset, batch_size: int, num_workers: int,
                device: torch.device | str | None = None) -> DataLoader:
    """Batches of `dataset` in index order (the student's mixed batches: training/batches.py)."""
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
