"""The severity parameters the op modules share: imagecorruptions' tables (each op module's IMAGENET) or nsbench's
calibrated CIFAR-10-C / Tiny-ImageNet-C tables (bench/calibrated.py), and ImageNet-C's scaled to another image size.

Native resolution (issue 34, item 3): ImageNet-C's parameters are those of 224-px images (hendrycks/robustness
ImageNet-C/create_c/make_imagenet_c.py, save_distorted: `trn.Resize(256), trn.CenterCrop(224)` before corrupting).
A model that runs at S px is scored on its own S-px images corrupted with every length in pixels multiplied by
S / 224 (`scale`): blur sigmas and radii, defocus's kernel grid, glass blur's shift, motion blur's streaks, elastic's
displacement, pixelate's blocks; and in the ops themselves, fog's fractal, frost's photographs, snow's layer and
spatter's liquid are made as for the 224-px image and magnified (shrunk, antialiased, below 224 px): a thresholded
smooth random field keeps its shape only so (a wider blur of a new field would lower its peaks and spatter less),
and snow's flakes would drop below a pixel in a small image. Noise levels, brightness, contrast,
saturation, zoom factors and JPEG quality have no size, and JPEG's 8 x 8 blocks are the codec's own.
benchmarks/native_resolution.py measured this against the released 224-px corruption resized to S px, and against
the 224-px parameters unscaled (benchmarks/README.md, "Native resolution").
"""
from __future__ import annotations

import math

from .. import calibrated

REFERENCE_SIZE = 224  # ImageNet-C's image size (make_imagenet_c.py: trn.Resize(256), trn.CenterCrop(224))


def severity_params(imagenet: dict, name: str, severity: int, calibration: str, scale: float):
    """A corruption's parameters at `severity` (1-5): imagecorruptions' for imagenet-c (the op module's IMAGENET
    table; lengths scaled by `scale`, see `scaled`), else calibrated.py's CIFAR-10-C / Tiny-ImageNet-C tables (which
    follow the image size already, so they take no scale)."""
    if calibration == "imagenet-c":
        c = imagenet[name][severity - 1]
        return c if scale == 1 else scaled(name, c, scale)
    if calibration not in calibrated.TABLES:
        raise ValueError(f"unknown calibration {calibration!r}; expected imagenet-c or {', '.join(calibrated.TABLES)}")
    if scale != 1:
        raise ValueError(f"{calibration}'s parameters follow the image size already; only imagenet-c's scale")
    return calibrated.params(calibration, name, severity)


def scale_for(size: int, calibration: str) -> float:
    """How much larger than ImageNet-C's 224 px an image of `size` px is (1 for the other calibrations)."""
    return size / REFERENCE_SIZE if calibration == "imagenet-c" else 1.0


def scaled(name: str, c, f: float):
    """One severity's 224-px parameters for an image f times as large: lengths in pixels times f; a length the
    reference uses as a whole number (a kernel radius, a shift) rounded, and at least 1."""
    def whole(v):
        return max(1, round(v * f))

    if name == "gaussian_blur":
        return c * f
    if name == "defocus_blur":  # disk(): half-width 8 and a 3 x 3 anti-aliasing window up to radius 8, else the
        radius, alias_blur = c  # radius and 5 x 5; magnified too, the disk keeps its margin (and the kernel its sum)
        half_width, window = (8, 3) if radius <= 8 else (radius, 5)
        return (radius * f, alias_blur * f, math.ceil(half_width * f), 2 * round((window * f - 1) / 2) + 1)
    if name == "glass_blur":  # sigma, the largest shift, iterations
        return (c[0] * f, whole(c[1]), c[2])
    if name == "motion_blur":  # radius, sigma
        return (whole(c[0]), c[1] * f)
    if name == "elastic_transform":  # alpha: the displacement's size (sigma and the uniform range follow H already)
        return c * f
    if name == "pixelate":  # the image shrunk to c of its side: blocks 1 / c pixels wide, f / c scaled (at most 1)
        return min(1.0, c / f)
    return c
