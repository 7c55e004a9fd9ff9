"""One visible training loop for the teacher (labeled only) and the noised student (labeled + pseudo-labeled).

An epoch is one pass over the labeled set, as the paper and the released code count it (see budget.py); each step
concatenates a labeled batch of B images with a pseudo-labeled batch of B * ratio images drawn from their own
stream, so every batch mixes both at the configured ratio. State is saved
atomically after every epoch, so a killed run resumes from the last finished epoch.
"""
from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from ..tensorboard import log_epoch
from ..utils import tqdm

from .. import distributed as D
from ..checkpoint import load_state, save_state
from ..config import OptimConfig, RuntimeConfig
from torch.utils.data import DataLoader

from ..data.augment import step_generator, to_float
from ..data.loaders import ImageDataset, MixedBatchSampler, MixedCollate, MixedDataset, iterate_clean, loader_kwargs
from ..data.sources import Source
from ..models import padded_forward
from .budget import steps_per_epoch as labeled_steps_per_epoch

log = logging.getLogger(__name__)


@dataclass
class ValSet:
    source: Source
    indices: np.ndarray
    size: int
    batch_size: int = 512
    num_workers: int = 0


def make_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # on CUDA, the fused kernels: one launch per step instead of several per parameter tensor; elsewhere the foreach
    # ones (torch's CPU default is a Python loop over the tensors: 3.8 against 2.6 ms a step for the default recipe)
    cuda = bool(decay) and decay[0].is_cuda
    fast = {"fused": True} if cuda else {"foreach": True}
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, **fast)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True, **fast)
    if cfg.optimizer == "rmsprop":  # the paper's EfficientNet optimiser (no fused kernel: foreach everywhere)
        return torch.optim.RMSprop(groups, lr=cfg.lr, momentum=cfg.momentum, alpha=0.9, eps=1e-3, foreach=True)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; valid: adamw, sgd, rmsprop")


def lr_at(step: int, total: int, warmup: int, base: float) -> float:
    """Linear warmup, then cosine decay to zero; a pure function of the step so resume needs no state."""
    if warmup and step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return -(target * F.log_softmax(logits.float(), dim=1)).sum(dim=1).mean()


@torch.no_grad()
def evaluate(model: nn.Module, val: ValSet, device: torch.device, channels_last: bool = False,
             amp: bool = False) -> dict:
    """Top-1 / top-5 accuracy over a clean set; shards over ranks and sums counts exactly once."""
    was_training = model.training
    model.eval()
    idx = val.indices[D.shard(len(val.indices))]
    counts = torch.zeros(3, dtype=torch.float64)  # correct@1, correct@5, n
    for x, y, _, _ in iterate_clean(val.source, idx, val.size, val.batch_size, val.num_workers, device=device,
                                    channels_last=channels_last):
        if len(y) == 0:
            continue
        with _autocast(device, amp):
            logits = padded_forward(model, x, val.batch_size).float().cpu()
        k = min(5, logits.shape[1])
        top = logits.topk(k, dim=1).indices
        counts += torch.tensor([(top[:, 0] == y).sum().item(), (top == y[:, None]).any(1).sum().item(), len(y)],
                               dtype=torch.float64)
    model.train(was_training)
    counts = D.all_reduce_sum(counts.to(device if device.type == "cuda" and D.is_dist() else "cpu")).cpu()
    n = max(counts[2].item(), 1)
    return {"top1": 100 * counts[0].item() / n, "top5": 100 * counts[1].item() / n, "n": int(counts[2].item())}


def _autocast(device: torch.device, amp: bool):
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _non_finite(name: str, loss: float, *, epoch: int, epochs: int, step: int, steps: int, state_path: Path) -> None:
    """Stop at the first NaN/inf loss, before it reaches the weights; the state of the last finished epoch stays."""
    from ..utils import NsbenchError

    kept = (f"the last good state (after epoch {epoch}) stays in {state_path}" if state_path.exists()
            else "no epoch had finished, so no state was saved")
    raise NsbenchError(f"{name} epoch {epoch + 1}/{epochs} step {step + 1}/{steps}: the training loss is "
                       f"{loss} (not finite); stopped before it reached the weights, {kept}; lower the learning "
                       f"rate or set grad_clip")


def train_stage(
    model: nn.Module,
    *,
    name: str,
    optim_cfg: OptimConfig,
    runtime: RuntimeConfig,
    labeled: ImageDataset,
    pseudo: ImageDataset | None,
    ratio: int,
    unlabeled_weight: float,
    val: ValSet | None,
    device: torch.device,
    state_path: Path,
    seed: int,
    num_workers: int = 0,
    max_steps: int | None = None,
    distributed: bool = True,
    pseudo_smoothing: float = 0.0,
    decode: str = "cpu",
) -> tuple[nn.Module, list[dict]]:
    """Train `model` in place; return the model to checkpoint (EMA weights if enabled) and the history.

    Under torch.distributed (and `distributed`), the model is wrapped in DistributedDataParallel, every rank takes
    its share of each global batch, and only rank 0 writes the training state. `pseudo_smoothing` smooths the
    pseudo-labeled targets (for hard pseudo-labels: target * (1 - e) + e / classes). decode="device": JPEG files
    travel as bytes and are decoded, cropped and flipped on the device (decode.py).
    """
    from timm.utils import ModelEmaV3

    dist_on = distributed and D.is_dist()
    rank, world = (D.rank(), D.world_size()) if dist_on else (0, 1)
    if dist_on and runtime.sync_bn and device.type == "cuda":  # SyncBatchNorm runs on GPUs only
        from timm.layers import convert_sync_batchnorm

        model = convert_sync_batchnorm(model)
    model.to(device)
    channels_last = runtime.channels_last
    if channels_last:
        model.to(memory_format=torch.channels_last)
    opt = make_optimizer(model, optim_cfg)
    ema = ModelEmaV3(model, decay=optim_cfg.ema_decay) if optim_cfg.ema_decay > 0 else None
    ddp_model = model
    if dist_on:
        ddp_model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    B = optim_cfg.batch_size
    Bu = B * ratio if pseudo is not None else 0
    n_l, n_u = len(labeled), len(pseudo) if pseudo is not None else 0
    steps_per_epoch = labeled_steps_per_epoch(n_l, B, world)
    if max_steps:
        steps_per_epoch = min(steps_per_epoch, max_steps)
    total = steps_per_epoch * optim_cfg.epochs
    warmup = int(optim_cfg.warmup_epochs * steps_per_epoch)

    history: list[dict] = []
    start_epoch = 0
    if state_path.exists():
        st = load_state(state_path)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        if ema is not None and st.get("ema") is not None:
            ema.module.load_state_dict(st["ema"])
        history = list(st["history"])
        start_epoch = int(st["epoch"]) + 1
        log.info("%s: resuming after epoch %d of %d", name, start_epoch, optim_cfg.epochs)

    for ds in (labeled, pseudo):
        if ds is not None:
            ds.encoded = decode == "device"
    mixed = MixedDataset(labeled, pseudo)
    augment = labeled.augment.on_batch if labeled.augment is not None else None
    on_device = device.type == "cuda"  # the noise runs where the batch trains; on a CPU, in the loader
    # one loader for every epoch: its workers start once (persistent), the sampler moves on with set_epoch
    sampler = MixedBatchSampler(n_l, n_u, B, Bu, steps_per_epoch, seed, start_epoch, rank, world)
    g = torch.Generator()
    g.manual_seed(seed * 7919 + start_epoch)
    batches = DataLoader(mixed, batch_sampler=sampler, collate_fn=MixedCollate(None if on_device else augment, seed),
                         generator=g, persistent_workers=num_workers > 0, **loader_kwargs(num_workers, device))
    for epoch in range(start_epoch, optim_cfg.epochs):
        random.seed(seed * 7919 + epoch)
        np.random.seed((seed * 7919 + epoch) % 2**32)
        torch.manual_seed(seed * 7919 + epoch)
        ddp_model.train()
        sampler.set_epoch(epoch)
        t0, seen, loss_sum, skipped = time.time(), 0, 0.0, 0
        bar = tqdm(total=steps_per_epoch, desc=f"{name} epoch {epoch + 1}/{optim_cfg.epochs}", leave=False,
                   disable=rank != 0, mininterval=2.0)
        for step, b in enumerate(batches):
            bar.update()
            skipped += b.skipped
            gstep = epoch * steps_per_epoch + step
            lr = lr_at(gstep, total, warmup, optim_cfg.lr)
            for grp in opt.param_groups:
                grp["lr"] = lr
            if b.x is None and b.parts is None:
                continue
            gen = step_generator(seed, b.epoch, b.step)
            if b.parts is not None:
                skipped += b.decode_on(device, labeled.size, gen)
                if len(b.x) == 0:
                    continue
            x, yl, yu, n_lab = b.x.to(device, non_blocking=True), b.y, b.soft, b.n_labeled
            if augment is not None and not b.augmented:
                x = augment(x, gen, b.natural)
            x = to_float(x, channels_last)
            with _autocast(device, runtime.amp):
                logits = ddp_model(x)
            loss = logits.new_zeros((), dtype=torch.float32)
            if n_lab:
                loss = loss + F.cross_entropy(logits[:n_lab].float(), yl.to(device, non_blocking=True),
                                              label_smoothing=optim_cfg.label_smoothing)
            if yu is not None and len(yu):
                yu = yu.to(device, non_blocking=True)
                if pseudo_smoothing > 0:
                    yu = yu * (1 - pseudo_smoothing) + pseudo_smoothing / yu.shape[1]
                loss = loss + unlabeled_weight * soft_cross_entropy(logits[n_lab:], yu)
            loss_value = loss.item()  # the step's one wait for the device
            if not math.isfinite(loss_value):
                _non_finite(name, loss_value, epoch=epoch, epochs=optim_cfg.epochs, step=step, steps=steps_per_epoch,
                            state_path=state_path)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if optim_cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), optim_cfg.grad_clip)
            opt.step()
            if ema is not None:
                ema.update(model, step=gstep)
            seen += len(x)
            loss_sum += loss_value * len(x)
        bar.close()
        elapsed = time.time() - t0
        row = {"stage": name, "epoch": epoch + 1, "steps": steps_per_epoch, "lr": lr,
               "train_loss": loss_sum / max(seen, 1), "images": seen * world, "images_per_s": seen * world / max(elapsed, 1e-9),
               "seconds": elapsed, "skipped": skipped}
        last = epoch + 1 == optim_cfg.epochs
        if val is not None and (last or (epoch + 1) % max(1, optim_cfg.eval_every) == 0):
            m = evaluate(ema.module if ema is not None else model, val, device, channels_last, runtime.amp)
            row.update(val_top1=m["top1"], val_top5=m["top5"])
        history.append(row)
        log_epoch(row)  # TensorBoard, when a session is open (nsbench/tensorboard.py)
        log.info("%s epoch %d/%d loss %.4f lr %.2e %s%.0f img/s", name, epoch + 1, optim_cfg.epochs,
                 row["train_loss"], lr, f"val top-1 {row['val_top1']:.2f} " if "val_top1" in row else "",
                 row["images_per_s"])
        if rank == 0:
            save_state(state_path, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                    "ema": ema.module.state_dict() if ema is not None else None,
                                    "epoch": epoch, "history": history})
        if dist_on:
            D.barrier()
    final = ema.module if ema is not None else model
    return final, history
