"""JPEG decoding on the device: loader workers only read the files' bytes; the GPU decodes a whole batch at once
(nvJPEG through `torchvision.io.decode_jpeg(list, device="cuda")`) and takes each image's random-resized crop and
flip there (training), or its evaluation resize and centre crop (pseudo-labeling, `device_center_crops`).

The crop follows the same rule as the CPU path (timm's RandomResizedCropAndInterpolation, which is torchvision's
`RandomResizedCrop.get_params`: area 8-100 %, aspect 3/4-4/3 log-uniform, 10 tries, then the centre crop clipped
to the aspect range; google-research/noisystudent preprocessing.py _random_crop), with bicubic antialiased
resizing, its draws from the step's generator. Files that are not JPEG (or that nvJPEG refuses) come decoded and
cropped by the worker instead; one unreadable image is skipped and counted, never fatal.
"""
from __future__ import annotations

import logging
import math

import torch
from torch.nn import functional

from .transforms import IMAGENET_CROP_PCT

log = logging.getLogger(__name__)

SCALE, RATIO = (0.08, 1.0), (3 / 4, 4 / 3)  # preprocessing.py _random_crop: area_range, aspect_ratio_range


def crop_box(h: int, w: int, gen: torch.Generator) -> tuple[int, int, int, int]:
    """(top, left, height, width) of one random-resized crop, as torchvision's RandomResizedCrop.get_params."""
    area = h * w
    log_ratio = (math.log(RATIO[0]), math.log(RATIO[1]))
    for _ in range(10):
        target = area * float(torch.empty(1).uniform_(SCALE[0], SCALE[1], generator=gen))
        aspect = math.exp(float(torch.empty(1).uniform_(log_ratio[0], log_ratio[1], generator=gen)))
        cw = int(round(math.sqrt(target * aspect)))
        ch = int(round(math.sqrt(target / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            top = int(torch.randint(0, h - ch + 1, (1,), generator=gen))
            left = int(torch.randint(0, w - cw + 1, (1,), generator=gen))
            return top, left, ch, cw
    in_ratio = w / h  # fallback: the centre crop, clipped to the aspect range
    if in_ratio < RATIO[0]:
        cw, ch = w, int(round(w / RATIO[0]))
    elif in_ratio > RATIO[1]:
        ch, cw = h, int(round(h * RATIO[1]))
    else:
        cw, ch = w, h
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def resized_crop(img: torch.Tensor, box: tuple[int, int, int, int], size: int, flip: bool) -> torch.Tensor:
    """uint8 [c, h, w] -> uint8 [c, size, size]: the box, bicubic antialiased resize, optional horizontal flip."""
    top, left, ch, cw = box
    x = img[None, :, top : top + ch, left : left + cw].float()
    x = functional.interpolate(x, size=(size, size), mode="bicubic", antialias=True, align_corners=False)
    x = x.round_().clamp_(0, 255).to(torch.uint8)[0]
    return x.flip(2) if flip else x


def decode_batch(parts: list, device: torch.device) -> tuple[list, list[int]]:
    """Decode the encoded parts (1-d uint8 CPU tensors of JPEG bytes) on `device`, batched; parts already decoded
    (uint8 [c, h, w] tensors) pass through. Returns (decoded images or None, positions that failed)."""
    from torchvision.io import ImageReadMode, decode_jpeg

    enc = [k for k, p in enumerate(parts) if p.ndim == 1]
    out: list = list(parts)
    failed: list[int] = []
    if not enc:
        return out, failed
    try:
        if device.type == "cuda":  # nvJPEG decodes on its own stream into memory the current stream may still be
            torch.cuda.current_stream(device).synchronize()  # reading (freed tensors of the last batch): wait first
        imgs = decode_jpeg([parts[k] for k in enc], mode=ImageReadMode.RGB, device=device)
        for k, im in zip(enc, imgs):
            out[k] = im
    except RuntimeError:  # one bad file fails the whole call: decode one by one, skipping the bad ones
        for k in enc:
            try:
                out[k] = decode_jpeg(parts[k], mode=ImageReadMode.RGB, device=device)
            except RuntimeError as e:
                log.warning("skipping an image that does not decode: %s", str(e).splitlines()[0][:200])
                out[k], failed = None, failed + [k]
    return out, failed


def _decoded_rgb(parts: list, device: torch.device) -> tuple[list[tuple[int, torch.Tensor]], list[int]]:
    """decode_batch, then every readable image on `device` with 3 channels: ([(position, uint8 [3, h, w])], failed)."""
    decoded, failed = decode_batch(parts, device)
    out = []
    for k, img in enumerate(decoded):
        if img is not None:
            img = img.to(device, non_blocking=True)
            out.append((k, img.expand(3, -1, -1) if img.shape[0] == 1 else img))
    return out, failed


def _stack(images: list[torch.Tensor], size: int, device: torch.device) -> torch.Tensor:
    return torch.stack(images) if images else torch.empty(0, 3, size, size, dtype=torch.uint8, device=device)


def device_crops(parts: list, natural_done: list[bool], size: int, device: torch.device,
                 gen: torch.Generator) -> tuple[torch.Tensor, list[int]]:
    """A training batch from mixed parts: encoded JPEGs decoded on `device`, each cropped and flipped from `gen`;
    parts the worker already cropped (natural_done) pass through. Returns (uint8 [n, 3, size, size], failed)."""
    images, failed = _decoded_rgb(parts, device)
    out = []
    for k, img in images:
        if not natural_done[k]:
            box = crop_box(img.shape[1], img.shape[2], gen)
            img = resized_crop(img, box, size, bool(torch.rand(1, generator=gen) < 0.5))
        out.append(img)
    return _stack(out, size, device), failed


def device_center_crops(parts: list, size: int, device: torch.device, crop_pct: float = IMAGENET_CROP_PCT,
                        interpolation: str = "bilinear") -> tuple[torch.Tensor, list[int]]:
    """A clean batch from mixed parts: encoded JPEGs decoded on `device`, then `transforms.resize_center_crop`'s
    geometry (shorter side to floor(size / crop_pct), centre crop) with torchvision's antialiased tensor resize,
    which follows PIL's to within a grey level or so; parts the worker already prepared (not 1-d bytes) pass
    through. Returns (uint8 [n, 3, size, size], failed positions)."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2.functional import center_crop, resize

    images, failed = _decoded_rgb(parts, device)
    short = math.floor(size / crop_pct)
    out = []
    for k, img in images:
        if parts[k].ndim == 1:
            img = resize(img, [short], interpolation=InterpolationMode(interpolation), antialias=True)
            img = center_crop(img, [size, size])
        out.append(img)
    return _stack(out, size, device), failed
