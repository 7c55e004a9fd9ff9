"""The severity parameters the op modules share: imagecorruptions' tables (each op module's IMAGENET) or nsbench's
calibrated CIFAR-10-C / Tiny-ImageNet-C tables (bench/calibrated.py)."""
from __future__ import annotations

from .. import calibrated


def severity_params(imagenet: dict, name: str, severity: int, calibration: str):
    """A corruption's parameters at `severity` (1-5): imagecorruptions' for imagenet-c (the op module's IMAGENET
    table), else calibrated.py's CIFAR-10-C / Tiny-ImageNet-C tables."""
    if calibration == "imagenet-c":
        return imagenet[name][severity - 1]
    if calibration not in calibrated.TABLES:
        raise ValueError(f"unknown calibration {calibration!r}; expected imagenet-c or {', '.join(calibrated.TABLES)}")
    return calibrated.params(calibration, name, severity)
