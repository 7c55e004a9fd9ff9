"""The deterministic -C corruptions in torch: gaussian_blur, defocus_blur, zoom_blur, brightness, contrast, saturate,
pixelate and jpeg_compression, each the reference's arithmetic on a whole batch (see __init__.py for the contract).

References: imagecorruptions-imaug's corruptions.py for "imagenet-c" (parameters copied into IMAGENET below) and
bench/calibrated.py's corrupt_calibrated for "cifar-10-c" / "tiny-imagenet-c" (its TABLES, its zoom ranges and
centred crop, its BOX-BOX pixelate). What each one does, reproduced here:
  skimage.filters.gaussian: scipy's gaussian_filter on the float64 image in 0..1 (no rescaling of a float input),
    truncate 4.0 (radius int(4 sigma + 0.5)), mode 'nearest' (edge replicated), kernel exp(-x^2 / 2 sigma^2) / sum.
  defocus: the disk kernel as disk() builds it (cv2.GaussianBlur anti-aliasing, computed by cv2 once per severity),
    cv2.filter2D's correlation with BORDER_REFLECT_101 (torch's 'reflect' padding).
  zoom: scipy.ndimage.zoom(order=1, grid_mode=False) of the centre crop: output size round(crop * factor), output
    index o samples the crop at o * (crop - 1) / (out - 1); imagecorruptions keeps its top-left H x W, calibrated.py
    the centred one. Accumulated in float32, in the factors' order, as both references do.
  rgb2hsv / hsv2rgb: skimage's formulas and tie order (blue beats green beats red for the hue).
  pixelate: Pillow's resize of 8-bit images: BOX through Pillow's fixed-point filter (22-bit coefficients, the
    horizontal pass rounded to uint8 before the vertical one), NEAREST through its scale-affine index table.
  jpeg: torchvision's encode_jpeg / decode_jpeg on the CPU (libjpeg-turbo, 4:2:0, islow DCT): byte-identical to
    Pillow's save(quality=q) / open on the images tested, so images on a GPU go to the CPU and back for this one.

Arithmetic is float64 (the references' numpy dtype) except where the reference works in float32 (zoom_blur, the
calibrated defocus). A float64 result is rounded down to float32, so the caller's truncation to uint8 gives what
np.uint8 gives on the float64 (rounding to nearest could turn 254.9999999 into 255).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from .. import calibrated
from .params import severity_params

# imagecorruptions-imaug 1.1.5, imagecorruptions/corruptions.py: each function's `c = [...]` list (line numbers of
# that file); zoom_blur's np.arange(start, stop, step) are kept as (start, stop, step).
IMAGENET = {
    "gaussian_blur": [1, 2, 3, 4, 6],  # gaussian_blur, line 205
    "defocus_blur": [(3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)],  # defocus_blur, line 238
    "zoom_blur": [(1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.02), (1, 1.26, 0.02), (1, 1.31, 0.03)],  # 273-277
    "contrast": [0.4, .3, .2, .1, .05],  # contrast, line 496
    "brightness": [.1, .2, .3, .4, .5],  # brightness, line 504
    "saturate": [(0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)],  # saturate, line 519
    "jpeg_compression": [25, 18, 15, 10, 7],  # jpeg_compression, line 537
    "pixelate": [0.6, 0.5, 0.4, 0.3, 0.25],  # pixelate, line 553
}


def _param(calibration: str, name: str, severity: int, scale: float):
    return severity_params(IMAGENET, name, severity, calibration, scale)


def _unit(x: torch.Tensor) -> torch.Tensor:
    """The uint8 values as the references' float64 image in 0..1 (np.array(x) / 255.)."""
    return x.to(torch.float64) / 255.0


def _out(y: torch.Tensor) -> torch.Tensor:
    """np.clip(y, 0, 1) * 255, as float32 rounded towards -inf (so truncating it truncates the float64 alike)."""
    y = y.clamp(0, 1) * 255
    if y.dtype == torch.float32:
        return y
    y32 = y.to(torch.float32)
    return torch.where(y32.to(torch.float64) > y, torch.nextafter(y32, torch.zeros_like(y32)), y32)


def _planes(x: torch.Tensor) -> torch.Tensor:
    """[N, H, W, C] -> [N * C, 1, H, W]."""
    n, h, w, c = x.shape
    return x.permute(0, 3, 1, 2).reshape(n * c, 1, h, w)


def _unplanes(y: torch.Tensor, n: int) -> torch.Tensor:
    return y.reshape(n, -1, *y.shape[-2:]).permute(0, 2, 3, 1)


# ----------------------------------------------------------------------------------------------------- blurs

@lru_cache(maxsize=None)
def _gauss_kernel(sigma: float) -> np.ndarray:
    """scipy.ndimage._gaussian_kernel1d at skimage's truncate=4.0."""
    radius = int(4.0 * float(sigma) + 0.5)
    t = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / (sigma * sigma) * t**2)
    return phi / phi.sum()


def _gaussian(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """skimage.filters.gaussian(x, sigma, channel_axis=-1) of a float64 [N, H, W, C]: scipy filters rows, then
    columns, edge replicated; the same separable kernel as one 2-d correlation."""
    k = torch.as_tensor(_gauss_kernel(sigma))
    return _unplanes(_correlate(_planes(x), torch.outer(k, k), "replicate"), len(x))


def gaussian_blur(x, severity, calibration, rng, scale):
    return _out(_gaussian(_unit(x), _param(calibration, "gaussian_blur", severity, scale)))


def _disk(radius: float, alias_blur: float) -> np.ndarray:
    """imagecorruptions' disk(radius, alias_blur) (calibrated._defocus builds the same), float32: half-width 8 and a
    3 x 3 anti-aliasing window up to radius 8, the radius and 5 x 5 above."""
    return _disk_kernel(radius, alias_blur, 8, 3) if radius <= 8 else _disk_kernel(radius, alias_blur, radius, 5)


@lru_cache(maxsize=None)
def _disk_kernel(radius: float, alias_blur: float, half_width: int, window: int) -> np.ndarray:
    """The disk of `radius` on a (2 half_width + 1)^2 grid, normalised, then cv2.GaussianBlur'd (window x window,
    sigma alias_blur): disk() with its half-width and window given (params.scaled magnifies them for other sizes)."""
    import cv2

    span = np.arange(-half_width, half_width + 1)
    gx, gy = np.meshgrid(span, span)
    kernel = np.array(gx**2 + gy**2 <= radius**2, dtype=np.float32)
    kernel /= np.sum(kernel)
    return cv2.GaussianBlur(kernel, ksize=(window, window), sigmaX=alias_blur)


@lru_cache(maxsize=None)
def _fft_size(n: int) -> int:
    """The least 2^a 3^b 5^c >= n (FFTs of such sizes are the fast ones)."""
    for m in range(n, 2 * n + 1):
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
    return n


def _correlate(planes: torch.Tensor, kernel: torch.Tensor, border: str) -> torch.Tensor:
    """Correlation of float64 [P, 1, H, W] planes with a square kernel, the planes extended by torch's padding mode
    `border`, through the FFT of the padded planes (on one CPU thread 2-5x faster than float64 conv2d or separable
    passes; cv2.filter2D itself takes the DFT for kernels this large). Accurate to ~1e-15."""
    r = kernel.shape[0] // 2
    h, w = planes.shape[-2:]
    padded = F.pad(planes, (r, r, r, r), mode=border)
    size = [_fft_size(n) for n in padded.shape[-2:]]  # zeros past the padding leave the kept part unwrapped
    spectrum = torch.fft.rfft2(padded, s=size) * torch.fft.rfft2(kernel.flip(0, 1).to(planes.device), s=size)
    return torch.fft.irfft2(spectrum, s=size)[..., 2 * r : 2 * r + h, 2 * r : 2 * r + w]  # no wrap-around there


def defocus_blur(x, severity, calibration, rng, scale):
    c = _param(calibration, "defocus_blur", severity, scale)  # scaled: (radius, alias_blur, half-width, window)
    kernel = torch.as_tensor(_disk(*c) if len(c) == 2 else _disk_kernel(*c), dtype=torch.float64)
    y = _correlate(_planes(_unit(x)), kernel, "reflect")  # cv2's BORDER_REFLECT_101
    y = _unplanes(y, len(x))
    return _out(y)  # every reference filters the float64 image


@lru_cache(maxsize=None)
def _zoom_axis(size: int, factor: float, centred: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """clipped_zoom along one axis: for each kept output index, the two source indices (of the full axis) and the
    weight of the second, as scipy.ndimage.zoom(order=1) computes them on the crop."""
    crop = int(np.ceil(size / float(factor)))
    top = (size - crop) // 2
    out = int(round(crop * factor))
    step = (crop - 1) / (out - 1) if out > 1 else 1.0
    first = (out - size) // 2 if centred else 0  # calibrated.py keeps the centre, imagecorruptions the top-left
    cc = np.arange(first, first + size) * step
    i0 = np.floor(cc).astype(np.int64)
    w = cc - i0
    i1 = np.minimum(i0 + 1, crop - 1)
    return top + i0, top + i1, w


def _clipped_zoom(y: torch.Tensor, factor: float, centred: bool) -> torch.Tensor:
    """[N, H, W, C] float64 (a float32 image's exact copy) -> its zoom layer, H x W, float32 (scipy interpolates in
    float64 and stores float32)."""
    for dim, size in ((1, y.shape[1]), (2, y.shape[2])):  # each pass keeps the layer's H x W
        i0, i1, w = (torch.as_tensor(a, device=y.device) for a in _zoom_axis(size, factor, centred))
        shape = [1, 1, 1, 1]
        shape[dim] = size
        w = w.view(shape)
        y = y.index_select(dim, i0) * (1 - w) + y.index_select(dim, i1) * w
    return y.to(torch.float32)


def zoom_blur(x, severity, calibration, rng, scale):
    c = _param(calibration, "zoom_blur", severity, scale)
    if calibration == "imagenet-c":
        factors, centred = np.arange(*c), False
    else:
        factors, centred = np.arange(1, c, 0.01), True  # calibrated.py: np.arange(1, END, 0.01), centred crop
    x32 = _unit(x).to(torch.float32)
    x64 = x32.to(torch.float64)  # once, not per factor
    out = torch.zeros_like(x32)
    for factor in factors:
        out += _clipped_zoom(x64, float(factor), centred)
    return _out((x32 + out) / (len(factors) + 1))


# ----------------------------------------------------------------------------------------------- colour, contrast

def _rgb2hsv(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(-1)
    v = x.amax(-1)
    delta = v - x.amin(-1)
    flat = delta == 0
    d = torch.where(flat, torch.ones_like(delta), delta)  # the reference's 0/0 NaNs are overwritten with 0
    s = torch.where(flat, torch.zeros_like(delta), delta / torch.where(flat, torch.ones_like(v), v))
    h = torch.where(r == v, (g - b) / d, torch.zeros_like(d))
    h = torch.where(g == v, 2.0 + (b - r) / d, h)  # later assignments win, as in skimage
    h = torch.where(b == v, 4.0 + (r - g) / d, h)
    h = torch.where(flat, torch.zeros_like(h), torch.remainder(h / 6.0, 1.0))
    return torch.stack([h, s, v], -1)


def _hsv2rgb(hsv: torch.Tensor) -> torch.Tensor:
    h, s, v = hsv.unbind(-1)
    hi = torch.floor(h * 6)
    f = h * 6 - hi
    p = v * (1 - s)
    q = v * (1 - f * s)
    t = v * (1 - (1 - f) * s)
    order = ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))  # np.choose's six cases
    case = hi.to(torch.int64) % 6
    picks = [case == k for k in range(5)]
    channels = []
    for ch in range(3):  # case 5's value, then each earlier case where it holds
        out = order[5][ch]
        for k in range(4, -1, -1):
            out = torch.where(picks[k], order[k][ch], out)
        channels.append(out)
    return torch.stack(channels, -1)


def brightness(x, severity, calibration, rng, scale):
    c = _param(calibration, "brightness", severity, scale)
    hsv = _rgb2hsv(_unit(x))
    hsv = torch.cat([hsv[..., :2], (hsv[..., 2:] + c).clamp(0, 1)], -1)
    return _out(_hsv2rgb(hsv))


def saturate(x, severity, calibration, rng, scale):
    factor, shift = _param(calibration, "saturate", severity, scale)
    hsv = _rgb2hsv(_unit(x))
    hsv = torch.cat([hsv[..., :1], (hsv[..., 1:2] * factor + shift).clamp(0, 1), hsv[..., 2:]], -1)
    return _out(_hsv2rgb(hsv))


def contrast(x, severity, calibration, rng, scale):
    c = _param(calibration, "contrast", severity, scale)
    y = _unit(x)
    means = y.mean(dim=(1, 2), keepdim=True)
    return _out((y - means) * c + means)


# ------------------------------------------------------------------------------------------------ pixelate, jpeg

_PRECISION_BITS = 32 - 8 - 2  # Pillow's Resample.c, 8 bits per channel


@lru_cache(maxsize=None)
def _box_weights(size_in: int, size_out: int) -> np.ndarray:
    """Pillow's precompute_coeffs + normalize_coeffs_8bpc for the BOX filter (support 0.5): [out, in] integers."""
    scale = size_in / size_out
    filterscale = max(scale, 1.0)
    support, ss = 0.5 * filterscale, 1.0 / filterscale
    m = np.zeros((size_out, size_in))
    for xx in range(size_out):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), size_in)
        ks = [1.0 if -0.5 < (x + xmin - center + 0.5) * ss <= 0.5 else 0.0 for x in range(xmax - xmin)]
        ww = sum(ks)
        for x, k in enumerate(ks):
            k = k / ww if ww != 0.0 else k
            m[xx, xmin + x] = int(0.5 + k * (1 << _PRECISION_BITS))
    return m


@lru_cache(maxsize=None)
def _box_taps(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray]:
    """_box_weights as [out, taps] source indices and weights (a row's few nonzeros; zero weights pad the rest)."""
    m = _box_weights(size_in, size_out)
    taps = max(int((row != 0).sum()) for row in m)
    idx, wts = np.zeros((size_out, taps), np.int64), np.zeros((size_out, taps))
    for o, row in enumerate(m):
        cols = np.flatnonzero(row)
        idx[o, : len(cols)], wts[o, : len(cols)] = cols, row[cols]
    return idx, wts


def _box_resize(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """PIL resize(BOX) of integer-valued [N, H, W, C] float64: horizontal pass, rounded to uint8, then vertical.
    Exact: integer products and sums below 2^53."""
    for dim, size in ((2, w), (1, h)):
        if size == x.shape[dim]:
            continue
        idx, wts = (torch.as_tensor(a, device=x.device) for a in _box_taps(x.shape[dim], size))
        shape = [1, 1, 1, 1]
        shape[dim] = size
        acc = sum(x.index_select(dim, idx[:, k]) * wts[:, k].reshape(shape) for k in range(idx.shape[1]))
        x = torch.floor((acc + (1 << (_PRECISION_BITS - 1))) / (1 << _PRECISION_BITS)).clamp_(0, 255)
    return x


@lru_cache(maxsize=None)
def _nearest_index(size_in: int, size_out: int) -> np.ndarray:
    """Pillow's ImagingScaleAffine table: the position advances by in/out per pixel from half a step, truncated."""
    step, pos, idx = size_in / size_out, 0.5 * (size_in / size_out), []
    for _ in range(size_out):
        idx.append(min(int(pos), size_in - 1))
        pos += step
    return np.asarray(idx, dtype=np.int64)


def pixelate(x, severity, calibration, rng, scale):
    c = _param(calibration, "pixelate", severity, scale)
    h, w = x.shape[1:3]
    small = _box_resize(x.to(torch.float64), int(h * c), int(w * c))
    if calibration != "imagenet-c":  # calibrated.py scales back up with BOX as well
        return _box_resize(small, h, w).to(torch.float32)
    rows = torch.as_tensor(_nearest_index(small.shape[1], h), device=x.device)
    cols = torch.as_tensor(_nearest_index(small.shape[2], w), device=x.device)
    return small.index_select(1, rows).index_select(2, cols).to(torch.float32)


def jpeg(images: torch.Tensor, quality: int) -> torch.Tensor:
    """uint8 [N, H, W, 3] -> the same through JPEG at `quality` as Pillow saves and reads it, on the images' device.
    Encoded and decoded on the CPU (libjpeg-turbo), where torchvision's bytes are Pillow's."""
    from torchvision.io import decode_jpeg, encode_jpeg

    cpu = images.to("cpu", torch.uint8).permute(0, 3, 1, 2)
    if not len(cpu):
        return images.clone()
    data = encode_jpeg(list(cpu.contiguous().unbind(0)), quality=int(quality))
    out = torch.stack(decode_jpeg(data))
    return out.permute(0, 2, 3, 1).to(images.device)


def jpeg_compression(x, severity, calibration, rng, scale):
    return jpeg(x.to(torch.uint8), _param(calibration, "jpeg_compression", severity, scale)).to(torch.float32)


def as_saved(images: torch.Tensor, calibration: str) -> torch.Tensor:
    """calibrated.as_saved on a uint8 batch: Tiny-ImageNet-C's files went through JPEG quality 85 (optimize=True
    only changes the Huffman tables, not the pixels), CIFAR-10-C's and ImageNet-C-by-imagecorruptions' did not.
    Applies to every corruption's uint8 result, so it belongs after corrupt_batch's truncation, not in the ops."""
    quality = calibrated.SAVED_AS.get(calibration)
    return images if quality is None else jpeg(images, quality)


OPS = {
    "gaussian_blur": gaussian_blur,
    "defocus_blur": defocus_blur,
    "zoom_blur": zoom_blur,
    "brightness": brightness,
    "contrast": contrast,
    "saturate": saturate,
    "pixelate": pixelate,
    "jpeg_compression": jpeg_compression,
}
