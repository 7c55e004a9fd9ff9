"""From source images to model inputs: float tensors in [0, 1], NCHW, 3 channels.

Small images (Fashion-MNIST, CIFAR-like) are padded to the target size so that corruption code, which needs at
least 32x32, sees the same pixels the model does; natural photos are resized and centre-cropped (0.875 crop, the
ImageNet convention). Training noise (RandAugment) is timm's implementation on PIL images.
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

    import torchvision.transforms.functional as TF
    from torchvision.transforms import InterpolationMode

    if interpolation not in INTERPOLATION:
        raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATION)}, got {interpolation!r}")
    pil = Image.fromarray(to_rgb(img))
    pil = TF.resize(pil, math.floor(size / crop_pct), interpolation=InterpolationMode(interpolation))
    return np.asarray(TF.center_crop(pil, [size, size]))


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


def to_tensor(batch: np.ndarray) -> torch.Tensor:
    """uint8 NHWC (1 or 3 channels) -> float NCHW in [0, 1] with 3 channels, in channels-last memory layout
    (what the NHWC bytes already are; convolutions run markedly faster in it with oneDNN and cuDNN)."""
    t = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2)
    if t.shape[1] == 1:
        t = t.expand(-1, 3, -1, -1)
    return t.to(torch.float32, memory_format=torch.channels_last).div_(255.0)


class TrainAugment:
    """Input noise for the student: optional pad-and-crop translation and flip, then timm's RandAugment.

    Works on uint8 HWC images with 1 or 3 channels; greyscale stays single-channel (RandAugment in PIL "L" mode,
    about half the cost of RGB) and becomes 3 channels only when the batch is stacked into a tensor.
    """

    def __init__(self, size: int, randaugment: bool, layers: int, magnitude: int, magnitude_std: float,
                 flip: bool = False, random_crop_pad: int = 0):
        from timm.data.auto_augment import rand_augment_transform

        self.size, self.flip, self.pad = size, flip, random_crop_pad
        self.ra = {}
        if randaugment and layers > 0:
            # timm's RandAugment config string: m = magnitude, n = layers, mstd = magnitude noise.
            spec = f"rand-m{magnitude}-n{layers}-mstd{magnitude_std}"
            for mode, fill in (("L", (0,)), ("RGB", (0, 0, 0))):
                self.ra[mode] = rand_augment_transform(spec, {"translate_const": int(size * 0.45), "img_mean": fill})

    def __call__(self, img: np.ndarray) -> np.ndarray:
        # Python's `random` (also what timm's RandAugment draws from) is seeded per epoch by the training loop and
        # per worker by torch's DataLoader, so a run is reproducible.
        if self.pad:
            img = _shift(img, random.randint(-self.pad, self.pad), random.randint(-self.pad, self.pad))
        if self.flip and random.random() < 0.5:
            img = img[:, ::-1]
        if self.ra:
            gray = img.shape[2] == 1
            pil = Image.fromarray(np.ascontiguousarray(img[..., 0] if gray else img), "L" if gray else "RGB")
            out = np.asarray(self.ra[pil.mode](pil))
            img = out[..., None] if gray else out
        return img


def _shift(img: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Translate by (dy, dx) pixels, filling with zeros (pad-and-crop without the padding copy)."""
    h, w = img.shape[:2]
    out = np.zeros_like(img)
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[yd, xd] = img[ys, xs]
    return out
