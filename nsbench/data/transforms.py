"""From source images to model inputs: float tensors in [0, 1], NCHW, 3 channels.

Small images (Fashion-MNIST, CIFAR-like) are padded to the target size so that corruption code, which needs at
least 32x32, sees the same pixels the model does; natural photos are resized and centre-cropped (0.875 crop, the
ImageNet convention). Training noise (RandAugment) is timm's implementation on PIL images.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

IMAGENET_CROP_PCT = 0.875  # timm's default crop_pct for 224px ImageNet evaluation


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


def resize_center_crop(img: np.ndarray, size: int, crop_pct: float = IMAGENET_CROP_PCT) -> np.ndarray:
    h, w = img.shape[:2]
    scale_to = int(round(size / crop_pct))
    pil = Image.fromarray(to_rgb(img))
    if min(h, w) != scale_to:
        r = scale_to / min(h, w)
        pil = pil.resize((max(size, round(w * r)), max(size, round(h * r))), Image.BICUBIC)
    W, H = pil.size
    left, top = (W - size) // 2, (H - size) // 2
    return np.asarray(pil.crop((left, top, left + size, top + size)))


def prepare(img: np.ndarray, size: int, kind: str) -> np.ndarray:
    """One uint8 HWC image -> uint8 size x size x 3, deterministically."""
    img = to_rgb(img)
    if kind == "as-is":  # official robustness sets ship at the model's resolution: never resized
        return img
    h, w = img.shape[:2]
    if kind == "small" or (h <= size and w <= size):
        img = pad_to(img, size)
        if img.shape[0] == size and img.shape[1] == size:
            return img
        return resize_center_crop(img, size, crop_pct=1.0)
    return resize_center_crop(img, size)


def prepare_batch(batch: np.ndarray, size: int) -> np.ndarray:
    """Vectorised `prepare` for a stacked NHWC batch of small images (pads only)."""
    n, h, w, c = batch.shape
    if h <= size and w <= size:
        ph, pw = size - h, size - w
        batch = np.pad(batch, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
        return batch
    return np.stack([prepare(b, size, "small") for b in batch])


def to_tensor(batch: np.ndarray) -> torch.Tensor:
    """uint8 NHWC (1 or 3 channels) -> float NCHW in [0, 1] with 3 channels."""
    t = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2)
    if t.shape[1] == 1:
        t = t.expand(-1, 3, -1, -1)
    return t.float().div_(255.0)


class TrainAugment:
    """Input noise for the student: optional flip / pad-crop translation, then timm's RandAugment."""

    def __init__(self, size: int, randaugment: bool, layers: int, magnitude: int, magnitude_std: float,
                 flip: bool = False, random_crop_pad: int = 0):
        from timm.data.auto_augment import rand_augment_transform

        self.size, self.flip, self.pad = size, flip, random_crop_pad
        self.ra = None
        if randaugment and layers > 0:
            # timm's RandAugment config string: m = magnitude, n = layers, mstd = magnitude noise.
            spec = f"rand-m{magnitude}-n{layers}-mstd{magnitude_std}"
            self.ra = rand_augment_transform(spec, {"translate_const": int(size * 0.45), "img_mean": (0, 0, 0)})

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.pad:
            p = self.pad
            padded = np.pad(img, ((p, p), (p, p), (0, 0)))
            y, x = rng.integers(0, 2 * p + 1, size=2)
            img = padded[y : y + self.size, x : x + self.size]
        if self.flip and rng.random() < 0.5:
            img = img[:, ::-1]
        if self.ra is not None:
            img = np.asarray(self.ra(Image.fromarray(np.ascontiguousarray(img))))
        return img
