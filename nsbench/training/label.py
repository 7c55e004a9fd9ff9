"""Labeling: the un-noised teacher labels the unlabeled images into the store (store.py); selection.py then picks
the student's pseudo-labeled set from it.

The teacher runs in eval mode (no dropout, no stochastic depth, BN running statistics) on clean images; its
softmax at `pseudo.temperature` becomes top-k soft targets (or one hard label), and the confidence the filter
reads is recorded beside them.
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import distributed
from ..config import PseudoConfig
from ..data.loaders import decodes_on_device, iterate_clean
from ..data.sources import Source
from ..models import autocast, inference_precision, padded_forward
from ..utils import NsbenchError, tqdm
from .store import ShardWriter, read_stats, shard_name, stats_file

log = logging.getLogger(__name__)


@dataclass
class LabelConfig:
    """How one iteration's teacher labels: the recipe's pseudo section plus where and how it runs."""

    pseudo: PseudoConfig  # soft, temperature, topk, threshold, filter_on, balance, per_class, batch_size
    num_classes: int
    size: int
    device: torch.device
    num_workers: int = 0
    amp: bool = True  # bf16 autocast and channels-last on CUDA (models.autocast)
    decode: str = "cpu"  # "device": JPEGs decoded on `device`


@contextlib.contextmanager
def eval_mode(model: nn.Module):
    """Run `model` un-noised (eval mode: no dropout, no stochastic depth, BN running stats), then restore."""
    was = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was)


@torch.no_grad()
def teacher_batches(model: nn.Module, source: Source, indices: np.ndarray, cfg: LabelConfig, progress: bool = True):
    """Yield (softmax(logits / T) [b, C], source indices [b], n_skipped) of the un-noised teacher on clean images:
    eval mode (no dropout, no stochastic depth, BN running statistics) and no augmentation; on CUDA in bf16
    autocast with channels-last weights and inputs (models.inference_precision), the softmax in float32.
    decode="device": JPEGs are decoded, resized and centre-cropped on `device` (loaders.iterate_clean)."""
    temperature, batch_size, device, amp = cfg.pseudo.temperature, cfg.pseudo.batch_size, cfg.device, cfg.amp
    if temperature <= 0:
        raise NsbenchError(f"pseudo.temperature must be positive, got {temperature}")
    if inference_precision(device, amp) != "fp32":
        model.to(memory_format=torch.channels_last)
    with eval_mode(model):
        bar = tqdm(total=len(indices), desc="pseudo-labeling", leave=False, disable=not progress, mininterval=2.0)
        for x, _, idx, sk in iterate_clean(source, indices, cfg.size, batch_size, cfg.num_workers, device=device,
                                           decode=cfg.decode):
            if len(idx) == 0:
                bar.update(sk)
                yield np.zeros((0, cfg.num_classes), np.float32), np.zeros(0, np.int64), sk  # [0, C], as every batch
                continue
            with autocast(device, amp):
                logits = padded_forward(model, x, batch_size).float()
            bar.update(len(idx) + sk)  # after the forward: the bar counts labeled images
            yield torch.softmax(logits / temperature, dim=1).cpu().numpy(), idx.numpy(), sk
        bar.close()


def untempered_confidence(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Top probability of softmax(logits) from rows of softmax(logits / T): p_j^T renormalised (exact, in logs)."""
    if temperature == 1.0:
        return probs.max(1)
    with np.errstate(divide="ignore"):
        logp = np.log(probs.astype(np.float64))
    z = temperature * (logp - logp.max(1, keepdims=True))
    return (1.0 / np.exp(z).sum(1)).astype(np.float32)


def topk_targets(probs: np.ndarray, soft: bool, k: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Compress probabilities to (class indices, values) of the top k; hard labels are one class with value 1."""
    n, c = probs.shape
    if not soft:
        return probs.argmax(1)[:, None].astype(np.int32), np.ones((n, 1), np.float32)
    k = c if k is None and c <= 100 else min(k or 10, c)
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return order.astype(np.int32), np.take_along_axis(probs, order, 1).astype(np.float32)


def label_unlabeled(teacher: nn.Module, source: Source, indices: np.ndarray, store: Path, cfg: LabelConfig) -> dict:
    """Label `indices` of `source` with the un-noised teacher, sharded over ranks: each rank writes its own shard
    (a shard whose statistics exist is not labeled again: a resumed run). Returns how the labeling ran, for the
    store's stats.json (selection.select_pseudo_labels writes it)."""
    store.mkdir(parents=True, exist_ok=True)
    shard = store / shard_name(distributed.rank(), distributed.world_size())
    if read_stats(shard) is None:  # not labeled yet, or its statistics are damaged: (re)label the shard
        if stats_file(shard).exists():
            log.warning("%s: damaged pseudo-label statistics; labeling the shard again", stats_file(shard))
            stats_file(shard).unlink()
        _label_shard(teacher, source, indices[distributed.shard(len(indices))], shard, cfg)
    distributed.barrier()
    pc = cfg.pseudo
    return {"soft": pc.soft, "temperature": pc.temperature, "topk": pc.topk, "filter_on": pc.filter_on,
            "precision": inference_precision(cfg.device, cfg.amp), "num_workers": cfg.num_workers,
            "decode": "device" if decodes_on_device(source, cfg.size, cfg.decode) else "cpu"}  # what ran


def _label_shard(teacher: nn.Module, source: Source, mine: np.ndarray, shard: Path, cfg: LabelConfig) -> None:
    """This rank's share: teacher probabilities -> top-k targets and the filter's confidence -> one Parquet shard."""
    pc = cfg.pseudo
    writer = ShardWriter(shard, cfg.num_classes, pc.threshold)
    k_out, skipped = 1, 0
    for probs, idx, sk in teacher_batches(teacher, source, mine, cfg, progress=distributed.is_main()):
        skipped += sk
        if len(idx) == 0:
            continue
        cls, val = topk_targets(probs, pc.soft, pc.topk)
        k_out = cls.shape[1]
        writer.add(idx, cls, val, filter_confidence(probs, pc), source.labels[idx])
    writer.close(skipped, k_out)


def filter_confidence(probs: np.ndarray, pc: PseudoConfig) -> np.ndarray:
    """What the confidence filter reads (selection.py keeps rows with confidence >= pseudo.threshold): the teacher's
    top probability, for hard labels too, of softmax(logits) (filter_on=untempered: the released code, whose
    predict_label.py stores it before any temperature) or of softmax(logits / T) (tempered)."""
    return untempered_confidence(probs, pc.temperature) if pc.filter_on == "untempered" else probs.max(1)
