"""Models: timm.create_model behind one factory, wrapped so that inputs are [0, 1] images.

Normalisation lives inside the wrapper: corruptions and attacks operate on real pixels, and a checkpoint's
mean/std travel with the weights.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import timm
import torch
from torch import nn

from .utils import NsbenchError


@dataclass
class ModelSpec:
    """Everything needed to rebuild a model; stored in every checkpoint."""

    arch: str
    num_classes: int
    in_chans: int = 3
    input_size: int = 32
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    drop_rate: float = 0.0
    drop_path_rate: float = 0.0
    kwargs: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "arch": self.arch, "num_classes": self.num_classes, "in_chans": self.in_chans,
            "input_size": self.input_size, "mean": list(self.mean), "std": list(self.std),
            "drop_rate": self.drop_rate, "drop_path_rate": self.drop_path_rate, "kwargs": dict(self.kwargs),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "ModelSpec":
        d = dict(d)
        d["mean"], d["std"] = tuple(d["mean"]), tuple(d["std"])
        return cls(**d)


class NormalizedModel(nn.Module):
    """x in [0, 1] -> (x - mean) / std -> timm model -> logits."""

    def __init__(self, net: nn.Module, mean, std):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


def _check_arch(arch: str) -> None:
    if not timm.is_model(arch):
        close = timm.list_models(f"*{arch.split('.')[0][:6]}*")[:8]
        hint = f"; similar: {', '.join(close)}" if close else ""
        raise NsbenchError(f"unknown timm architecture {arch!r}{hint}")


def build_model(spec: ModelSpec, pretrained: bool = False) -> NormalizedModel:
    """timm.create_model with dropout and stochastic depth, wrapped to take [0, 1] inputs."""
    _check_arch(spec.arch)
    try:
        net = timm.create_model(
            spec.arch, pretrained=pretrained, num_classes=spec.num_classes, in_chans=spec.in_chans,
            drop_rate=spec.drop_rate, drop_path_rate=spec.drop_path_rate or None, **spec.kwargs,
        )
    except TypeError as e:
        raise NsbenchError(f"{spec.arch}: bad model arguments ({e})") from None
    except Exception as e:  # noqa: BLE001 - hub failures for pretrained weights
        if pretrained:
            raise NsbenchError(f"{spec.arch}: cannot fetch pretrained weights ({type(e).__name__}); is the HF hub reachable?") from None
        raise
    return NormalizedModel(net, spec.mean, spec.std)


def default_mean_std(arch: str) -> tuple[tuple, tuple]:
    cfg = timm.get_pretrained_cfg(arch) if timm.is_model(arch) else None
    if cfg is not None and getattr(cfg, "mean", None):
        return tuple(cfg.mean), tuple(cfg.std)
    return (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def inert_stochastic_depth(model: nn.Module) -> bool:
    """True when the model was built with stochastic depth that can never act: timm applies a block's DropPath only
    on its residual (skip) connection, and none of the blocks holding one has such a connection (timm's
    test_efficientnet, for one)."""
    from timm.layers import DropPath

    holders = [m for m in model.modules() if isinstance(getattr(m, "drop_path", None), DropPath)]
    return bool(holders) and not any(getattr(m, "has_skip", True) for m in holders)


def inference_precision(device: torch.device | str, amp: bool = True) -> str:
    """How pseudo-labeling runs: bf16 autocast with channels-last weights and inputs on CUDA (when amp), else fp32.
    Recorded beside its outputs. (Scoring is fp32 unless a suite asks for bf16: bench/context.py.)"""
    return "bf16 autocast, channels-last" if amp and torch.device(device).type == "cuda" else "fp32"


def autocast(device: torch.device | str, amp: bool = True):
    """The one mixed-precision rule: bf16 autocast on CUDA when `amp`, else full precision (a CPU's autocast gains
    nothing here and would change the numbers)."""
    if amp and torch.device(device).type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def padded_forward(model: nn.Module, x: torch.Tensor, cap: int) -> torch.Tensor:
    """model(x) for inference, with x on CUDA padded (repeating its last image) to the next power of two up to
    `cap` and the padding's outputs dropped: every batch then has one of a few shapes, so cuDNN's per-shape
    autotuning (cudnn.benchmark) and kernel selection run a few times per run instead of once more for every odd
    remainder (a fresh shape costs seconds at batch 512 in fp32). In eval mode each image's output is its own."""
    n = len(x)
    if x.device.type != "cuda" or n == 0:
        return model(x)
    target = min(max(cap, n), 1 << (n - 1).bit_length())
    if target == n:
        return model(x)
    pad = x[-1:].expand(target - n, *x.shape[1:])
    return model(torch.cat([x, pad]).contiguous(memory_format=torch.channels_last))[:n]
