"""FGSM (and PGD) with torchattacks on unnormalised [0, 1] images; eps given in grey levels (eps_255)."""
from __future__ import annotations

import torch
from torch import nn

from ..utils import NsbenchError


def check_unit_range(x: torch.Tensor) -> None:
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        raise NsbenchError(f"attack inputs must be images in [0, 1]; got values in [{lo:.3g}, {hi:.3g}] "
                           f"(normalisation belongs inside the model)")


def adversarial(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps_255: float, attack: str = "fgsm",
                steps: int = 10, alpha_255: float = 1.0, seed: int = 0) -> torch.Tensor:
    """x' = clip(x + eps * sign(grad_x loss), 0, 1) for FGSM; PGD iterates with step alpha inside the eps ball."""
    import torchattacks

    check_unit_range(x)
    eps = eps_255 / 255.0
    if attack == "fgsm":
        atk = torchattacks.FGSM(model, eps=eps)
    elif attack == "pgd":
        torch.manual_seed(seed)
        atk = torchattacks.PGD(model, eps=eps, alpha=alpha_255 / 255.0, steps=steps, random_start=True)
    else:
        raise NsbenchError(f"unknown attack {attack!r}; valid: fgsm, pgd")
    atk.set_model_training_mode(model_training=False)
    return atk(x, y)
