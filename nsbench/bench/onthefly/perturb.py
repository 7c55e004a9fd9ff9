"""-P sequences generated in torch: the frames of bench/perturbation_sets.py's `sequence` (nsbench's port of
hendrycks/robustness ImageNet-P/create_p, calibrated per image size) for a batch of uint8 images on any device.

`sequences(images, name, difficulty, seeds, calibration)` takes [N, H, W, 3] uint8 and returns [N, F, H, W, 3] uint8.
The numpy generator draws from one numpy Generator per image; here each random frame draws from the image's
rng.Rng stream (frame index), so a frame depends on nothing but (image seed, frame). Geometric frames reproduce
PIL's bilinear affine (what torchvision's functional.affine calls on PIL images: the inverse map at pixel centres,
neighbours clamped at the edge, 0 outside, truncated to uint8) and OpenCV's warpPerspective (inverse map at pixel
corners, coordinates in 1/32 pixel, 0 outside); the others follow the numpy code line by line.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torchvision.transforms.functional import _get_inverse_affine_matrix

from ..perturbation_sets import NATIVE, TABLES, calibration_for, tilt_matrix
from .rng import Rng


FRAME_STREAMS = 1 << 20  # streams reserved for each frame's draws


def _u8(x: torch.Tensor) -> torch.Tensor:
    """np.uint8(np.clip(x, 0, 1) * 255): clip, scale, truncate."""
    return (x.clamp(0, 1) * 255).to(torch.uint8)


def pil_affine(img: torch.Tensor, angle: float = 0.0, translate=(0, 0), scale: float = 1.0,
               shear: float = 0.0) -> torch.Tensor:
    """torchvision.transforms.functional.affine on PIL images, bilinear, for a batch [N, H, W, 3] (uint8 or float
    holding uint8 values) -> uint8: the inverse matrix torchvision hands PIL (centre [W / 2, H / 2]; `shear` as
    perturbation_sets passes it, [shear], which torchvision applies to both axes), sampled as PIL's
    ImagingTransformAffine does."""
    n, h, w, _ = img.shape
    a, b, c, d, e, f = _get_inverse_affine_matrix([w * 0.5, h * 0.5], angle, list(translate), scale, [shear, shear])
    dev = img.device
    yo, xo = torch.meshgrid(torch.arange(h, dtype=torch.float64, device=dev) + 0.5,
                            torch.arange(w, dtype=torch.float64, device=dev) + 0.5, indexing="ij")
    xs, ys = a * xo + b * yo + c, d * xo + e * yo + f
    inside = (xs >= 0) & (ys >= 0) & (xs < w) & (ys < h)
    xin, yin = xs - 0.5, ys - 0.5
    x0, y0 = torch.floor(xin), torch.floor(yin)
    dx, dy = (xin - x0)[None, ..., None], (yin - y0)[None, ..., None]
    x0, y0 = x0.long(), y0.long()
    xa, xb, ya, yb = x0.clamp(0, w - 1), (x0 + 1).clamp(0, w - 1), y0.clamp(0, h - 1), (y0 + 1).clamp(0, h - 1)
    v = img.to(torch.float64)
    top = v[:, ya, xa] + (v[:, ya, xb] - v[:, ya, xa]) * dx
    bottom = v[:, yb, xa] + (v[:, yb, xb] - v[:, yb, xa]) * dx
    out = top + (bottom - top) * dy
    return torch.where(inside[None, ..., None], out, 0.0).to(torch.uint8)


def cv2_warp_perspective(img: torch.Tensor, m: np.ndarray) -> torch.Tensor:
    """cv2.warpPerspective(img, m, (W, H)) with INTER_LINEAR and a constant 0 border, for [N, H, W, 3] uint8: each
    output pixel (x, y) maps through m's inverse to a source point, bilinear over its four neighbours with those
    outside the image counting as 0, rounded. (OpenCV 5.1, which nsbench installs, interpolates uint8 at full precision: a shift of
    0.3 px between levels 0 and 128 gives 38 and 90, not the 40 and 88 of the older 1/32-pixel tables.)"""
    n, h, w, _ = img.shape
    dev = img.device
    inv = torch.as_tensor(np.linalg.inv(np.asarray(m, np.float64)), dtype=torch.float64, device=dev)
    yo, xo = torch.meshgrid(torch.arange(h, dtype=torch.float64, device=dev),
                            torch.arange(w, dtype=torch.float64, device=dev), indexing="ij")
    den = inv[2, 0] * xo + inv[2, 1] * yo + inv[2, 2]
    den = torch.where(den != 0, den, torch.full_like(den, float("inf")))
    xs = (inv[0, 0] * xo + inv[0, 1] * yo + inv[0, 2]) / den
    ys = (inv[1, 0] * xo + inv[1, 1] * yo + inv[1, 2]) / den
    x0, y0 = torch.floor(xs), torch.floor(ys)
    fx, fy = xs - x0, ys - y0
    x0, y0 = x0.long(), y0.long()
    v = img.to(torch.float64)
    out = torch.zeros(v.shape, dtype=torch.float64, device=dev)
    for oy, wy in ((0, 1 - fy), (1, fy)):
        for ox, wx in ((0, 1 - fx), (1, fx)):
            yy, xx = y0 + oy, x0 + ox
            ok = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
            px = v[:, yy.clamp(0, h - 1), xx.clamp(0, w - 1)]
            out += torch.where(ok[None, ..., None], px, 0.0) * (wy * wx)[None, ..., None]
    return torch.floor(out + 0.5).clamp(0, 255).to(torch.uint8)


def _cv2_gaussian_kernel(sigma: float) -> np.ndarray:
    """cv2.getGaussianKernel as GaussianBlur(uint8, (0, 0), sigma) sizes it: ksize = round(sigma * 3 * 2 + 1) | 1."""
    import cv2

    k = int(round(sigma * 3 * 2 + 1)) | 1
    return cv2.getGaussianKernel(k, sigma).reshape(-1)


def cv2_gaussian_blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """cv2.GaussianBlur(img, (0, 0), sigma) on [N, H, W, 3] uint8: separable, BORDER_REFLECT_101, rounded."""
    k = torch.as_tensor(_cv2_gaussian_kernel(sigma), dtype=torch.float64, device=img.device)
    r = len(k) // 2
    x = img.to(torch.float64).permute(0, 3, 1, 2)  # N, 3, H, W
    for dim in (2, 3):
        size = x.shape[dim]
        i = torch.arange(-r, size + r, device=img.device)
        i = i.abs()
        i = torch.where(i >= size, 2 * (size - 1) - i, i)  # reflect 101 (radius below the size)
        xp = x.index_select(dim, i)
        x = sum(k[j] * xp.narrow(dim, j, size) for j in range(len(k)))
    return torch.floor(x + 0.5).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


def cv2_zoom(layer: torch.Tensor, factor: float) -> torch.Tensor:
    """perturbation_sets._zoom on [N, H, W] float32: the centre crop of ceil(H / factor) pixels resized by `factor`
    with cv2.resize(INTER_LINEAR) (source (i + 0.5) / factor - 0.5, neighbours clamped at the edge), centre-cropped
    back to H x W."""
    n, h, w = layer.shape
    ch = int(np.ceil(h / factor))
    top = (h - ch) // 2
    crop = layer[:, top : top + ch, top : top + ch].to(torch.float64)
    out = int(round(ch * factor))  # cv2's dsize for fx = fy = factor: round(size * factor)
    pos = (torch.arange(out, dtype=torch.float64, device=layer.device) + 0.5) / factor - 0.5
    p0 = torch.floor(pos)
    frac = pos - p0
    p0 = p0.long()
    lo, hi = p0.clamp(0, ch - 1), (p0 + 1).clamp(0, ch - 1)
    frac = torch.where(p0 < 0, torch.zeros_like(frac), frac)  # cv2 clamps the coordinate itself at the left edge
    rows = crop[:, lo] * (1 - frac)[None, :, None] + crop[:, hi] * frac[None, :, None]
    z = rows[:, :, lo] * (1 - frac)[None, None, :] + rows[:, :, hi] * frac[None, None, :]
    t = (out - h) // 2
    return z[:, t : t + h, t : t + h].to(torch.float32)


def _brightness(x: torch.Tensor, delta: float) -> torch.Tensor:
    """RGB -> HSV, V + delta clipped to [0, 1], -> RGB: with hue and saturation kept, every channel scales by V' / V
    (a black pixel, V = 0, becomes grey V')."""
    v = x.amax(-1, keepdim=True)
    v2 = (v + delta).clamp(0, 1)
    return torch.where(v > 0, x * (v2 / v.clamp_min(1e-12)), v2.expand_as(x))


def sequences(images: torch.Tensor, name: str, difficulty: int, seeds, calibration: str = "auto") -> torch.Tensor:
    """[N, H, W, 3] uint8 -> [N, F, H, W, 3] uint8: the -P sequence `name` of every image, as
    perturbation_sets.sequence makes it (frame 0 the clean image for the noise perturbations)."""
    from .noise_blur import motion_blur_with_angle, poisson

    n, h, w, _ = images.shape
    calibration = calibration_for(h) if calibration == "auto" else calibration
    c = TABLES[calibration].get(name)
    s = h / float(NATIVE[calibration])
    rng = Rng(seeds, images.device)
    x = images.to(torch.float32) / 255.0
    if name in ("gaussian_noise", "shot_noise", "speckle_noise"):
        level = c[difficulty]
        frames = [images]
        for i in range(30):
            if name == "gaussian_noise":
                frames.append(_u8(x + level * rng.normal(i, x.shape[1:])))
            elif name == "speckle_noise":
                frames.append(_u8(x + x * (level * rng.normal(i, x.shape[1:]))))
            else:
                # a frame's Poisson draw uses streams FRAME_STREAMS * i onwards (its rejection rounds included)
                frames.append(_u8(poisson(rng, FRAME_STREAMS * i, x.double() * level) / level))
    elif name == "motion_blur":
        k, radius, sigma, step = c
        frames = [motion_blur_with_angle(images.to(torch.float32), int(round(radius * s)), sigma * s,
                                         (i - (k - 1)) * step).clamp(0, 255).to(torch.uint8) for i in range(k)]
    elif name == "zoom_blur":
        avg, frames = x.double(), [images]
        for i in range(1, 31):
            avg = avg + pil_affine(images, scale=1 + 0.004 * i).to(torch.float32).double() / 255.0
            frames.append(_u8(avg / (i + 1)))
    elif name == "snow":
        loc, scale, zoom, radius, sigma = c
        layer = cv2_zoom((loc + scale * rng.normal(0, (h, w))).to(torch.float32), zoom)
        layer = torch.where(layer < 0.5, torch.zeros_like(layer), layer)
        layer = (layer.clamp(0, 1) * 255).to(torch.uint8).to(torch.float32)
        gray = (0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2])[..., None]  # cv2 RGB2GRAY (float32)
        base = 0.85 * x + 0.15 * torch.maximum(x, gray * 1.5 + 0.5)
        frames = []
        for i in range(31):
            moving = motion_blur_with_angle(layer, int(round(radius * s)), sigma * s, i * 4 - 150)[..., None] / 255.0
            moving = torch.round(moving * 255) / 255.0
            frames.append(_u8(base + moving + torch.rot90(moving, 2, (1, 2))))
    elif name == "brightness":
        frames = [_u8(_brightness(x.double(), (i - 15) * c / 100.0)) for i in range(31)]
    elif name == "translate":
        shift, k = c
        m = max(1, int(round(shift * s)))
        frames = [pil_affine(images, translate=(i - m, 0)) for i in range(2 * m + k - 2 * shift)]
    elif name == "rotate":
        frames = [pil_affine(images, angle=i - 15) for i in range(31)]
    elif name == "shear":
        frames = [pil_affine(images, shear=i - 15) for i in range(31)]
    elif name == "scale":
        step, first = c
        frames = [pil_affine(images, scale=(i * step + first) / 100.0) for i in range(31)]
    elif name == "tilt":
        frames = [cv2_warp_perspective(images, tilt_matrix(h, w, c * (i - 15))) for i in range(31)]
    elif name == "gaussian_blur":
        first, step = c
        frames = [cv2_gaussian_blur(images, (first + step * i) * s) for i in range(31)]
    else:
        raise KeyError(f"no torch implementation of the -P perturbation {name!r}")
    return torch.stack(frames, 1)
