"""FGSM and PGD (L-inf) on unnormalised [0, 1] images; eps given in grey levels (eps_255).

The same attacks as torchattacks 3.5.1's FGSM and PGD (same steps, same random start, same clamping; a test
compares outputs when torchattacks is importable), written out here because torchattacks pins `requests~=2.25.1`,
and installing it would downgrade requests to releases with published security advisories.
"""
from __future__ import annotations

import torch
from torch.nn import functional
from torch import nn

from ..schema import ATTACKS, FGSM
from ..utils import NsbenchError


def check_unit_range(x: torch.Tensor) -> None:
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        raise NsbenchError(f"attack inputs must be images in [0, 1]; got values in [{lo:.3g}, {hi:.3g}] "
                           f"(normalisation belongs inside the model)")


def _input_grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """d CE(model(x), y) / dx (mean over the batch, as nn.CrossEntropyLoss)."""
    x = x.detach().requires_grad_(True)
    loss = functional.cross_entropy(model(x), y)
    return torch.autograd.grad(loss, x, retain_graph=False, create_graph=False)[0]


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """x' = clamp(x + eps * sign(grad_x CE), 0, 1)."""
    x = x.detach()
    return torch.clamp(x + eps * _input_grad(model, x, y).sign(), 0, 1).detach()


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float, steps: int,
        generator: torch.Generator | None = None) -> torch.Tensor:
    """Madry et al.'s PGD: a uniform random start in the eps ball, then `steps` signed-gradient steps of size
    alpha, each projected back into the ball around x and into [0, 1]."""
    x = x.detach()
    adv = x + torch.empty_like(x).uniform_(-eps, eps, generator=generator)
    adv = torch.clamp(adv, 0, 1).detach()
    for _ in range(steps):
        adv = adv + alpha * _input_grad(model, adv, y).sign()
        delta = torch.clamp(adv - x, min=-eps, max=eps)
        adv = torch.clamp(x + delta, 0, 1).detach()
    return adv


def adversarial(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps_255: float, attack: str = FGSM,
                steps: int = 10, alpha_255: float = 1.0, seed: int = 0) -> torch.Tensor:
    """x' = clip(x + eps * sign(grad_x loss), 0, 1) for FGSM; PGD iterates with step alpha inside the eps ball.

    The model is attacked in eval mode (dropout off, BN running statistics) and its mode is restored after."""
    check_unit_range(x)
    if attack not in ATTACKS:
        raise NsbenchError(f"unknown attack {attack!r}; valid: {', '.join(ATTACKS)}")
    eps = eps_255 / 255.0
    was_training = model.training
    model.eval()
    try:
        y = y.detach().to(x.device)
        if attack == FGSM:
            return fgsm(model, x, y, eps)
        g = torch.Generator(device=x.device)
        g.manual_seed(seed)
        return pgd(model, x, y, eps, alpha_255 / 255.0, steps, generator=g)
    finally:
        model.train(was_training)
