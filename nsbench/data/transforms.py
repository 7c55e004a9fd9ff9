"""From source images to model inputs: float tensors in [0, 1], NCHW, 3 channels.

Small images (Fashion-MNIST, CIFAR-like) are padded to the target size so that corruption code, which needs at
least 32x32, sees the same pixels the model does; natural photos are resized and centre-cropped (0.875 crop, the
ImageNet convention). Training noise: random-resized crops here, per image; the rest per batch in augment.py.
"""
from __future__ import annotations

import random

import numpy as np
import torch
from PIL import Image

IMAGENET_CROP_PCT = 0.875  # 224 / 256: the official scripts' Resize(256) + CenterCrop(224); timm's default crop_pct
SMALL_IMAGE_MAX = 64  # targets up to this side are small-image models (CIFAR, Tiny-ImageNet): small images are padded
INTERPOLATION = ("bilinear", "bicubic", "nearest")


def to_rgb(img: np.ndarray) -> np.ndarray:
    if img.ndim == 2:
        img = img[..., None]
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    elif img.shape[2] == 4:
        img = img[..., :3]
    return img


def pad_to(img: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad an HWC image symmetrically to at least size x size."""
    h, w = img.shape[:2]
    ph, pw = max(size - h, 0), max(size - w, 0)
    if ph == 0 and pw == 0:
        return img
    return np.pad(img, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))


def resize_center_crop(img: np.ndarray, size: int, crop_pct: float = IMAGENET_CROP_PCT,
                       interpolation: str = "bilinear") -> np.ndarray:
    """The reference evaluation transform: resize the shorter side to floor(size / crop_pct), then centre-crop
    size x size. Exactly torchvision's `Resize(256)` + `CenterCrop(224)` at size 224 and crop_pct 0.875, as the
    official ImageNet-A/-C/-R/-P scripts use (hendrycks/robustness ImageNet-C/test.py: `trn.Resize(256),
    trn.CenterCrop(224)`; timm's `transforms_factory.transforms_imagenet_eval`: `math.floor(img_size / crop_pct)`)."""
    import math

    from torchvision.transforms import functional
    from torchvision.transforms import InterpolationMode

    if interpolation not in INTERPOLATION:
        raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATION)}, got {interpolation!r}")
    pil = Image.fromarray(to_rgb(img))
    pil = functional.resize(pil, math.floor(size / crop_pct), interpolation=InterpolationMode(interpolation))
    return np.asarray(functional.center_crop(pil, [size, size]))


def prepare(img: np.ndarray, size: int, kind: str, crop_pct: float = IMAGENET_CROP_PCT,
            interpolation: str = "bilinear") -> np.ndarray:
    """One uint8 HWC image -> uint8 size x size x 3, deterministically.

    - "as-is" (official robustness files shipped at the model's resolution): unchanged.
    - "small" (in-memory small-image datasets such as Fashion-MNIST), and any image no larger than the target when
      the target itself is small (<= SMALL_IMAGE_MAX, CIFAR-like folders): zero-padded to size x size, so corruption
      code sees the pixels the model does.
    - everything else (photos): the reference resize + centre crop, also for photos smaller than the crop (resized,
      never padded).
    """
    img = to_rgb(img)
    if kind == "as-is":
        return img
    h, w = img.shape[:2]
    if kind == "small" or (h <= size and w <= size and size <= SMALL_IMAGE_MAX):
        img = pad_to(img, size)
        if img.shape[0] == size and img.shape[1] == size:
            return img
        return resize_center_crop(img, size, crop_pct=1.0, interpolation="bicubic")
    return resize_center_crop(img, size, crop_pct, interpolation)


def prepare_batch(batch: np.ndarray, size: int) -> np.ndarray:
    """Vectorised `prepare` for a stacked NHWC batch of small images (pads only)."""
    n, h, w, c = batch.shape
    if h <= size and w <= size:
        ph, pw = size - h, size - w
        batch = np.pad(batch, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
        return batch
    return np.stack([prepare(b, size, "small") for b in batch])


class TrainAugment:
    """Input noise for the student (and the teacher), in two stages.

    Per image, where it is decoded: natural images (anything larger than the target size, not of a "small" source)
    take, when `natural_crop`, a random-resized crop + horizontal flip (else the evaluation resize + centre crop);
    small images are padded (`prepare`). Per batch (`batch`, nsbench/data/augment.py), on the batch's device: the
    small images' pad-and-crop shift and flip, then RandAugment with each image drawing its own ops.
    """

    def __init__(self, size: int, randaugment: bool, layers: int, magnitude: int, magnitude_std: float,
                 flip: bool = False, random_crop_pad: int = 0, *, ops: str = "tf",
                 translate_const: int | None = None, natural_crop: bool = False):
        from timm.data.transforms import RandomResizedCropAndInterpolation

        from .augment import batch_augment

        self.size = size
        common = dict(ops=ops, translate_const=translate_const)
        self.batch = batch_augment(size, randaugment, layers, magnitude, magnitude_std, flip, random_crop_pad, **common)
        # natural images: the code's ImageNet translate / Cutout sizes (100 / 40 px at level 10)
        self.batch_natural = batch_augment(size, randaugment, layers, magnitude, magnitude_std, **common, natural=True)
        # preprocessing.py _random_crop: area_range (0.08, 1.0), aspect_ratio_range (3/4, 4/3), bicubic resize
        self.rrc = RandomResizedCropAndInterpolation(size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3),
                                                     interpolation="bicubic") if natural_crop else None

    def on_batch(self, x: torch.Tensor, gen: torch.Generator, natural: torch.Tensor | None = None) -> torch.Tensor:
        """The batch stage on a uint8 NCHW batch: natural rows (cropped at decoding) take the natural-image noise."""
        if natural is None or not bool(natural.any()):
            return self.batch(x, gen)
        if bool(natural.all()):
            return self.batch_natural(x, gen, natural)
        out = x.clone()
        nat = natural.to(x.device)
        out[~nat] = self.batch(x[~nat], gen)
        out[nat] = self.batch_natural(x[nat], gen, natural[natural])
        return out

    def is_natural(self, img: np.ndarray, kind: str) -> bool:
        """Whether `img` (as decoded) takes the natural-image path; `prepare` pads the others."""
        return kind not in ("small", "as-is") and not (img.shape[0] <= self.size and img.shape[1] <= self.size
                                                        and self.size <= SMALL_IMAGE_MAX)

    def natural(self, img: np.ndarray) -> np.ndarray:
        """A decoded natural image -> random-resized crop + flip (or the evaluation resize + centre crop)."""
        if self.rrc is None:
            return resize_center_crop(img, self.size)
        pil = self.rrc(Image.fromarray(to_rgb(img)))
        if random.random() < 0.5:  # preprocessing.py _flip: random_flip_left_right
            pil = pil.transpose(Image.FLIP_LEFT_RIGHT)
        return np.asarray(pil)
