"""ImageNet-C corruptions generated in torch, on uint8 batches on any device (issue 34).

`corrupt_batch(images, name, severity, seeds, calibration)` corrupts a [N, H, W, 3] uint8 batch; each image's
randomness comes from its own seed (rng.Rng), so a rerun, another batch size or another device gives the same
images. Each op module registers its corruptions in OPS: op(x, severity, calibration, rng, scale) takes float32 [N, H, W, 3]
in 0..255 (the uint8 values) and returns what the reference function returns before its final np.uint8 (float in
0..255, clipped as the reference clips), and corrupt_batch converts as the reference does (np.uint8: truncation).
The -P sequences are perturb.sequences.
"""
from __future__ import annotations

from typing import Callable

import torch

from .rng import Rng

# Bumped whenever an op's output changes: cached per-image outcomes of on-the-fly cells carry it in their key.
REVISION = 2  # 2: calibrated defocus_blur in float64, as calibrated.py (revision 3) and the references
Op = Callable[[torch.Tensor, int, str, Rng, float], torch.Tensor]
OPS: dict[str, Op] = {}


def _load() -> dict[str, Op]:
    """Every op, from the three op modules (imported on first use: torch work starts only when asked for)."""
    if not OPS:
        from . import deterministic, noise_blur, weather

        for mod in (deterministic, noise_blur, weather):
            OPS.update(mod.OPS)
    return OPS


def corrupt_batch(images: torch.Tensor, name: str, severity: int, seeds, calibration: str = "imagenet-c",
                  scale: float = 1.0) -> torch.Tensor:
    """[N, H, W, 3] uint8 -> the same batch corrupted at `severity` (1-5), on the images' device. `scale`: ImageNet-C's
    lengths in pixels multiplied by it (params.py; params.scale_for(size, calibration) for images of `size` px)."""
    ops = _load()
    if name not in ops:
        raise KeyError(f"no torch implementation of {name!r}; have {', '.join(sorted(ops))}")
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected uint8 [N, H, W, 3], got {images.dtype} {tuple(images.shape)}")
    rng = Rng(seeds, images.device)
    out = ops[name](images.to(torch.float32), int(severity), calibration, rng, scale)
    out = out.clamp(0, 255).to(torch.uint8)  # np.uint8 of a float in 0..255 truncates, as this does
    from .deterministic import as_saved

    return as_saved(out, calibration)  # Tiny-ImageNet-C's files went through JPEG quality 85 (calibrated.SAVED_AS)
