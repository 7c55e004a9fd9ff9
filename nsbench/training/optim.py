"""The optimiser, the learning-rate schedule and the EMA decay of every training stage."""
from __future__ import annotations

import math

import torch
from torch import nn

from ..config import OptimConfig


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
    if cfg.optimizer == "rmsprop":  # the paper's optimiser, as TF's RMSProp runs it (released utils.py
        # build_optimizer: decay 0.9, momentum 0.9, epsilon 1e-3): epsilon inside the square root and the mean square
        # starting at 1, which timm's RMSpropTF reproduces; torch's RMSprop (eps outside, start at 0) takes first
        # steps 35-900x larger at these settings
        from timm.optim import RMSpropTF

        return RMSpropTF(groups, lr=cfg.lr, momentum=cfg.momentum, alpha=0.9, eps=1e-3)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; valid: adamw, sgd, rmsprop")


def lr_at(step: int, total: int, warmup: int, base: float) -> float:
    """Linear warmup, then cosine decay to zero; a pure function of the step so resume needs no state."""
    if warmup and step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def set_lr(opt: torch.optim.Optimizer, lr: float) -> float:
    for group in opt.param_groups:
        group["lr"] = lr
    return lr


def ema_decay_at(cfg: OptimConfig, step: int, batch: int) -> float:
    """Decay of the weights' EMA at optimizer step `step` (0-based, the update after that step) with `batch` labeled
    images per step over all ranks; a pure function of the step, so resume needs no state.

    - ema_warmup off: timm ModelEmaV3.get_decay(step) as nsbench always ran it: 0 for steps 0 and 1 (the average
      starts as the trained weights), then ema_decay.
    - ema_warmup on: TF's ramp, min(decay, (1 + n) / (10 + n)) (tensorflow/python/training/moving_averages.py,
      ExponentialMovingAverage.apply), with num_updates = global_step as the released code passes it (main.py line
      475); ema.apply runs after train_op (main.py lines 606-608), whose minimize(loss, global_step) (line 604) has
      already counted the step, so n = step + 1.
    - ema_reference_batch R: the decay is per R images, a step of `batch` takes it to the power batch / R, and n
      counts steps of R images ((step + 1) * batch / R), so both the ramp and the plateau span the images the
      reference's do."""
    scale = batch / cfg.ema_reference_batch if cfg.ema_reference_batch else 1.0
    if not cfg.ema_warmup:
        return 0.0 if step <= 1 else cfg.ema_decay ** scale
    n = (step + 1) * scale
    return min(cfg.ema_decay, (1 + n) / (10 + n)) ** scale
