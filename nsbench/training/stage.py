"""One training stage, as a loop you can hold in your head: the teacher (labeled only) and each noised student
(labeled + pseudo-labeled) train through it.

    setup(model, cfg)        optimiser, EMA, DDP, step counts
    resume(trainer, cfg)     reload the last finished epoch's state, if any
    for each epoch:
        run_epoch            every step: inputs -> loss_step (forward, loss, backward, update, EMA)
        save_state           atomically, so a killed run resumes from here

An epoch is one pass over the labeled set, as the paper and the released code count it (see budget.py); each step
concatenates a labeled batch of B images with a pseudo-labeled batch of B * ratio images drawn from their own
stream (batches.py), so every batch mixes both at the configured ratio. Every part takes the one StageConfig.
"""
from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional
from torch import nn
from torch.utils.data import DataLoader

from .. import distributed
from ..checkpoint import load_state, save_state
from ..config import OptimConfig, RuntimeConfig, TrainConfig
from ..data.augment import step_generator, to_float
from ..data.loaders import ImageDataset, loader_kwargs
from ..models import autocast
from ..tensorboard import log_epoch
from ..utils import NsbenchError, stop_if_diverged, tqdm
from .batches import Batch, MixedBatchSampler, MixedCollate, MixedDataset
from .budget import quarter_mark, steps_per_epoch as labeled_steps_per_epoch
from .optim import ema_decay_at, lr_at, make_optimizer, set_lr
from .validate import ValSet, evaluate

log = logging.getLogger(__name__)

# Every epoch reseeds Python, NumPy and torch from (stage seed) * SEED_STRIDE + epoch, and the loader's generator
# from the same number at the starting epoch: a resumed run draws exactly what an uninterrupted one would, and no
# two (seed, epoch) pairs share a stream while epochs stay below the stride (a prime, so that strides of stage seeds
# -- the driver's seed + 1000 * iteration, the reference trainer's seed + SEED_STRIDE * round -- do not line up).
SEED_STRIDE = 7919


def epoch_seed(seed: int, epoch: int) -> int:
    return seed * SEED_STRIDE + epoch


@dataclass
class StageConfig:
    """Everything one stage needs besides the model: what it trains on, how, and where it keeps its state."""

    name: str  # in logs, progress bars and the history's `stage` column
    optim: OptimConfig
    labeled: ImageDataset
    device: torch.device
    state_path: Path  # the training state, saved after every epoch (rank 0)
    seed: int
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    pseudo: ImageDataset | None = None  # None: the teacher (labeled only)
    ratio: int = 0  # pseudo-labeled images per labeled image in each step
    unlabeled_weight: float = 0.0  # weight of the pseudo-labeled mean in the loss (unlabeled_weight() below)
    pseudo_smoothing: float = 0.0  # hard pseudo-labels only: target * (1 - e) + e / classes
    val: ValSet | None = None
    num_workers: int = 0
    max_steps: int | None = None  # cap on steps per epoch (tests)
    distributed: bool = True  # False: train in this process alone even under torch.distributed
    decode: str = "cpu"  # "device": JPEG files travel as bytes and are decoded, cropped, flipped there (decode.py)


def unlabeled_weight(cfg: TrainConfig) -> float:
    """Weight of the pseudo-labeled mean in a student's loss; the labeled mean has weight 1.

    Why two conventions: the paper's equation sums the labeled mean and the pseudo-labeled mean (weight 1,
    ns.loss_weighting=paper), while the released code (main.py) computes (lab_loss * lab_bsz + unl_loss * unl_bsz)
    / lab_bsz, i.e. it weights the pseudo-labeled mean by unlabeled_ratio so that every image weighs the same
    (ns.loss_weighting=ratio). ns.unlabeled_loss_weight is an extra factor on either."""
    ratio = cfg.ns.unlabeled_ratio if cfg.ns.loss_weighting == "ratio" else 1
    return cfg.ns.unlabeled_loss_weight * ratio


@dataclass
class Trainer:
    """The live objects of one stage, built by `setup` and moved on by the loop."""

    model: nn.Module  # the weights (what EMA tracks and the state saves)
    forward: nn.Module  # the same model, DDP-wrapped under torch.distributed
    opt: torch.optim.Optimizer
    ema: object | None  # timm ModelEmaV3
    distributed: bool  # under torch.distributed: DDP, shares of each global batch, a barrier after each epoch
    rank: int
    world: int
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    history: list = field(default_factory=list)
    start_epoch: int = 0
    sampler: MixedBatchSampler | None = None
    batches: DataLoader | None = None

    @property
    def final(self) -> nn.Module:
        """The model to checkpoint and validate: the EMA weights when enabled."""
        return self.ema.module if self.ema is not None else self.model


def train_stage(model: nn.Module, cfg: StageConfig) -> tuple[nn.Module, list[dict]]:
    """Train `model` in place; return the model to checkpoint (EMA weights if enabled) and the history.

    Under torch.distributed (and cfg.distributed), the model is wrapped in DistributedDataParallel, every rank takes
    its share of each global batch, and only rank 0 writes the training state."""
    t = setup(model, cfg)
    resume(t, cfg)
    t.sampler, t.batches = make_batches(t, cfg)
    for epoch in range(t.start_epoch, cfg.optim.epochs):
        row = run_epoch(t, cfg, epoch)
        t.history.append(row)
        log_epoch(row)  # TensorBoard, when a session is open (nsbench/tensorboard.py)
        log.info("%s epoch %d/%d loss %.4f lr %.2e %s%.0f img/s", cfg.name, epoch + 1, cfg.optim.epochs,
                 row["train_loss"], row["lr"], f"val top-1 {row['val_top1']:.2f} " if "val_top1" in row else "",
                 row["images_per_s"])
        if t.rank == 0:
            save_state(cfg.state_path, {"model": t.model.state_dict(), "optimizer": t.opt.state_dict(),
                                        "ema": t.ema.module.state_dict() if t.ema is not None else None,
                                        "epoch": epoch, "history": t.history})
        if t.distributed:
            distributed.barrier()
    return t.final, t.history


def setup(model: nn.Module, cfg: StageConfig) -> Trainer:
    """The model on its device, the optimiser, the EMA copy, DDP, and the step counts of the schedule."""
    from timm.utils import ModelEmaV3

    dist_on = cfg.distributed and distributed.is_dist()
    rank, world = (distributed.rank(), distributed.world_size()) if dist_on else (0, 1)
    if dist_on and cfg.runtime.sync_bn and cfg.device.type == "cuda":  # SyncBatchNorm runs on GPUs only
        from timm.layers import convert_sync_batchnorm

        model = convert_sync_batchnorm(model)
    model.to(cfg.device)
    if cfg.runtime.channels_last:
        model.to(memory_format=torch.channels_last)
    opt = make_optimizer(model, cfg.optim)
    # the decay of each update comes from ema_decay_at (loss_step); the copy starts as the model's weights
    ema = ModelEmaV3(model, decay=cfg.optim.ema_decay) if cfg.optim.ema_decay > 0 else None
    forward = model
    if dist_on:
        forward = nn.parallel.DistributedDataParallel(
            model, device_ids=[cfg.device.index] if cfg.device.type == "cuda" else None)
    steps = labeled_steps_per_epoch(len(cfg.labeled), cfg.optim.batch_size, world)
    if cfg.max_steps:
        steps = min(steps, cfg.max_steps)
    return Trainer(model, forward, opt, ema, dist_on, rank, world, steps, steps * cfg.optim.epochs,
                   int(cfg.optim.warmup_epochs * steps))


def resume(t: Trainer, cfg: StageConfig) -> None:
    """Continue after the last finished epoch when a saved state exists: weights, optimiser, EMA and history. The
    schedule needs nothing more (the learning rate is a function of the step, the noise of the epoch's seed)."""
    if not cfg.state_path.exists():
        return
    st = load_state(cfg.state_path)
    t.model.load_state_dict(st["model"])
    t.opt.load_state_dict(st["optimizer"])
    if t.ema is not None and st.get("ema") is not None:
        t.ema.module.load_state_dict(st["ema"])
    t.history = list(st["history"])
    t.start_epoch = int(st["epoch"]) + 1
    log.info("%s: resuming after epoch %d of %d", cfg.name, t.start_epoch, cfg.optim.epochs)


def make_batches(t: Trainer, cfg: StageConfig) -> tuple[MixedBatchSampler, DataLoader]:
    """One loader for every epoch: its workers start once (persistent), the sampler moves on with set_epoch. On a
    CPU the noise runs in the loader's workers; on a GPU, where the batch trains (`inputs`)."""
    for ds in (cfg.labeled, cfg.pseudo):
        if ds is not None:
            ds.encoded = cfg.decode == "device"
    n_pseudo = len(cfg.pseudo) if cfg.pseudo is not None else 0
    pseudo_batch = cfg.optim.batch_size * cfg.ratio if cfg.pseudo is not None else 0
    sampler = MixedBatchSampler(len(cfg.labeled), n_pseudo, cfg.optim.batch_size, pseudo_batch, t.steps_per_epoch,
                                cfg.seed, t.start_epoch, t.rank, t.world)
    g = torch.Generator()
    g.manual_seed(epoch_seed(cfg.seed, t.start_epoch))
    augment = _batch_noise(cfg)
    collate = MixedCollate(None if cfg.device.type == "cuda" else augment, cfg.seed)
    loader = DataLoader(MixedDataset(cfg.labeled, cfg.pseudo), batch_sampler=sampler, collate_fn=collate,
                        generator=g, persistent_workers=cfg.num_workers > 0,
                        **loader_kwargs(cfg.num_workers, cfg.device))
    return sampler, loader


def _batch_noise(cfg: StageConfig):
    return cfg.labeled.augment.on_batch if cfg.labeled.augment is not None else None


def run_epoch(t: Trainer, cfg: StageConfig, epoch: int) -> dict:
    """One pass over the labeled set; returns the epoch's history row (validated every eval_every epochs)."""
    s = epoch_seed(cfg.seed, epoch)
    random.seed(s)
    np.random.seed(s % 2**32)
    torch.manual_seed(s)
    t.forward.train()
    t.sampler.set_epoch(epoch)
    t0, seen, loss_sum, skipped, lr = time.time(), 0, 0.0, 0, 0.0
    bar = tqdm(total=t.steps_per_epoch, desc=f"{cfg.name} epoch {epoch + 1}/{cfg.optim.epochs}", leave=False,
               disable=t.rank != 0, mininterval=2.0)
    for step, b in enumerate(t.batches):
        bar.update()
        skipped += b.skipped
        gstep = epoch * t.steps_per_epoch + step
        lr = set_lr(t.opt, lr_at(gstep, t.total_steps, t.warmup_steps, cfg.optim.lr))
        x, failed = inputs(b, cfg)
        skipped += failed
        if x is None:
            continue
        loss_value = loss_step(t, cfg, x, b, gstep, epoch, step)
        seen += len(x)
        loss_sum += loss_value * len(x)
    bar.close()
    elapsed = time.time() - t0
    row = {"stage": cfg.name, "epoch": epoch + 1, "steps": t.steps_per_epoch, "lr": lr,
           "train_loss": loss_sum / max(seen, 1), "images": seen * t.world,
           "images_per_s": seen * t.world / max(elapsed, 1e-9), "seconds": elapsed, "skipped": skipped}
    last = epoch + 1 == cfg.optim.epochs
    due = (epoch + 1) % max(1, cfg.optim.eval_every) == 0 or epoch + 1 == quarter_mark(cfg.optim.epochs)
    if cfg.val is not None and (last or due):
        m = evaluate(t.final, cfg.val, cfg.device, cfg.runtime.channels_last, cfg.runtime.amp)
        # a diverged model stops here, before its epoch is recorded or saved as a state to resume from
        stop_if_diverged(m, stage=cfg.name, epoch=epoch + 1, epochs=cfg.optim.epochs, lr=lr)
        row.update(val_top1=m["top1"], val_top5=m["top5"])
    return row


def inputs(b: Batch, cfg: StageConfig) -> tuple[torch.Tensor | None, int]:
    """A step's images as float [0, 1] on the device, noised: (x, images that failed to decode), x None when the
    step has nothing left. The noise and any device decoding draw from the step's own generator, so a step's
    noise does not depend on where it ran."""
    if b.x is None and b.parts is None:
        return None, 0
    gen = step_generator(cfg.seed, b.epoch, b.step)
    failed = 0
    if b.parts is not None:
        failed = b.decode_on(cfg.device, cfg.labeled.size, gen)
        if len(b.x) == 0:
            return None, failed
    x = b.x.to(cfg.device, non_blocking=True)
    augment = _batch_noise(cfg)
    if augment is not None and not b.augmented:
        x = augment(x, gen, b.natural)
    return to_float(x, cfg.runtime.channels_last), failed


def loss_step(t: Trainer, cfg: StageConfig, x: torch.Tensor, b: Batch, gstep: int, epoch: int, step: int) -> float:
    """Forward, loss, backward, optimiser step and EMA update for one batch; returns the loss."""
    with autocast(cfg.device, cfg.runtime.amp):
        logits = t.forward(x)
    loss = batch_loss(logits, b, cfg)
    loss_value = loss.item()  # the step's one wait for the device
    if not math.isfinite(loss_value):
        _non_finite(cfg, loss_value, epoch, step, t.steps_per_epoch)
    t.opt.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.optim.grad_clip > 0:
        nn.utils.clip_grad_norm_(t.model.parameters(), cfg.optim.grad_clip)
    t.opt.step()
    if t.ema is not None:
        # the EMA of the weights (timm ModelEmaV3), at the decay of the stage's global step (optim.ema_decay_at: timm's
        # rule, or the released code's ramp and window per image), so a resumed stage does not start over
        t.ema.apply_update_(t.model, ema_decay_at(cfg.optim, gstep, cfg.optim.batch_size * t.world))
    return loss_value


def batch_loss(logits: torch.Tensor, b: Batch, cfg: StageConfig) -> torch.Tensor:
    """Cross-entropy of the labeled rows (a mean) plus `unlabeled_weight` times the soft cross-entropy of the
    pseudo-labeled rows (a mean of their own): two means, so the weight, not the batch sizes, sets the balance."""
    n_lab, loss = b.n_labeled, logits.new_zeros((), dtype=torch.float32)
    if n_lab:
        loss = loss + functional.cross_entropy(logits[:n_lab].float(), b.y.to(cfg.device, non_blocking=True),
                                      label_smoothing=cfg.optim.label_smoothing)
    if b.soft is not None and len(b.soft):
        target = b.soft.to(cfg.device, non_blocking=True)
        if cfg.pseudo_smoothing > 0:
            target = target * (1 - cfg.pseudo_smoothing) + cfg.pseudo_smoothing / target.shape[1]
        loss = loss + cfg.unlabeled_weight * soft_cross_entropy(logits[n_lab:], target)
    return loss


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return -(target * functional.log_softmax(logits.float(), dim=1)).sum(dim=1).mean()


def _non_finite(cfg: StageConfig, loss: float, epoch: int, step: int, steps: int) -> None:
    """Stop at the first NaN/inf loss, before it reaches the weights; the state of the last finished epoch stays."""
    kept = (f"the last good state (after epoch {epoch}) stays in {cfg.state_path}" if cfg.state_path.exists()
            else "no epoch had finished, so no state was saved")
    raise NsbenchError(f"{cfg.name} epoch {epoch + 1}/{cfg.optim.epochs} step {step + 1}/{steps}: the training loss "
                       f"is {loss} (not finite); stopped before it reached the weights, {kept}; lower the learning "
                       f"rate or set grad_clip")
