"""The weather corruptions of ImageNet-C in torch: snow, frost, fog and spatter, each the reference's arithmetic on a
whole batch, its random draws taken from Rng (see __init__.py for the contract).

References: imagecorruptions-imaug 1.1.5, imagecorruptions/corruptions.py (calibration "imagenet-c", parameters in
IMAGENET below) and bench/calibrated.py's corrupt_calibrated ("cifar-10-c", "tiny-imagenet-c"), which differs in:
  snow: the zoomed layer's centre crop, truncated to uint8 before the motion blur, blurred at the image's size
    (imagecorruptions keeps the zoom's whole output, blurs it, then keeps its top-left H x W);
  frost: one of the first 5 photographs (np.random.randint(5)), shrunk by FROST_SCALE with cv2's INTER_LINEAR
    (imagecorruptions: one of 6, enlarged 1.1 times past the image with INTER_CUBIC);
  spatter's mud: its colour and sum in float32 (imagecorruptions': float64).
Fog's plasma map is the next power of two of the image's side in both.

Each random draw of the reference is one Rng stream (STREAMS); given the same draws the ops give the references'
uint8 images (identical on every image, severity and calibration tested: the tests patch numpy's generator with these
draws). Exactly as the reference, not approximated:
  plasma_fractal: the midpoint-displacement recursion, one batched step per scale and pass, float32 map, float64
    displacements rounded into it;
  scipy.ndimage.zoom(order=1) of the snow layer, _motion_blur (noise_blur.motion_blur_with_angle), np.round, and
    cv2's float32 RGB2GRAY with its vector loop's fused multiply-adds (_gray);
  skimage's gaussian (noise_blur's scipy-order separable filter; a float32 input is stored as float32 after each
    axis, as scipy does);
  spatter's water: Canny, distanceTransform, threshold, blur, equalizeHist and filter2D are cv2's own, run on the CPU
    on the uint8 liquid layer (N x H x W bytes go to the CPU and the float32 result comes back: the only non-torch
    step, a few hundred microseconds an image);
  the frost photographs: read once with cv2.imread and resized with cv2.resize as the reference does, kept per size as
    uint8 tensors on the device.
Float precision follows the reference's numpy dtypes (float32 where it computes in float32); a float64 result goes
back as float32 that truncates to the same grey level (noise_blur._f32).
"""
from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import calibrated
from .noise_blur import _f32, _gauss1d, motion_blur_with_angle
from .rng import Rng
from .params import severity_params

# imagecorruptions-imaug 1.1.5, imagecorruptions/corruptions.py: each function's `c = [...]` list (line of that file)
IMAGENET = {
    "fog": [(1.5, 2), (2., 2), (2.5, 1.7), (2.5, 1.5), (3., 1.4)],  # fog, line 309: strength, wibble decay
    "frost": [(1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)],  # frost, lines 330-334: image, frost
    "snow": [(0.1, 0.3, 3, 0.5, 10, 4, 0.8),  # snow, lines 386-390: loc, scale, zoom, threshold, radius, sigma,
             (0.2, 0.3, 2, 0.5, 12, 4, 0.7),  # image weight
             (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
             (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
             (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55)],
    "spatter": [(0.65, 0.3, 4, 0.69, 0.6, 0),  # spatter, lines 427-431: loc, scale, sigma, threshold, intensity
                (0.65, 0.3, 3, 0.68, 0.6, 0),  # (water) or mud sigma, mode (0 water, 1 mud)
                (0.65, 0.3, 2, 0.68, 0.5, 0),
                (0.65, 0.3, 1, 0.65, 1.5, 1),
                (0.67, 0.4, 1, 0.65, 1.5, 1)],
}
CALIBRATIONS = ("imagenet-c", *calibrated.TABLES)
# Rng stream of each draw (fog: plasma scale k draws from 3k, 3k + 1, 3k + 2: squares, then the two diamond passes)
STREAMS = {"layer": 0, "angle": 1, "photo": 0, "top": 1, "left": 2, "plasma": 0}
FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg", "frost6.jpg")


def params(name: str, severity: int, calibration: str, scale: float):
    return severity_params(IMAGENET, name, severity, calibration, scale)


def _div(a: torch.Tensor, v: float) -> torch.Tensor:
    """a / v rounded as numpy rounds it: a tensor divisor, since CUDA turns division by a Python number into
    multiplication by its reciprocal (off by an ulp at times)."""
    return a / torch.tensor(v, dtype=a.dtype, device=a.device)


def _unit32(x: torch.Tensor) -> torch.Tensor:
    """np.array(image, dtype=np.float32) / 255. (a float32 division)."""
    return _div(x.to(torch.float32), 255.0)


def _gauss_nearest(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """skimage.filters.gaussian of [N, H, W] (mode 'nearest', truncate 4): float64 in, float64 out; float32 in,
    float32 out, stored as float32 after each axis as scipy's gaussian_filter does. Its sums are ordered differently
    from scipy's: values agree to ~1e-13 relative, not bit for bit (a value exactly on a later threshold can differ)."""
    y = x.double()
    for dim in (1, 2):
        y = _gauss1d(y, sigma, dim, "nearest", 4.0)
        if x.dtype == torch.float32:
            y = y.to(torch.float32).double()
    return y.to(x.dtype)


# ---------------------------------------------------------------- fog

def plasma_fractal(rng: Rng, mapsize: int, wibbledecay: float, stream: int = 0) -> torch.Tensor:
    """imagecorruptions' plasma_fractal for each image: [N, mapsize, mapsize] float32 in 0..1. Diamond-square on a
    torus: per scale, the squares' centres, then the two diamond passes, each the mean of four points plus
    wibble * uniform(-wibble, wibble), computed in float64 and stored into the float32 map; the scale at step size s
    draws [mapsize / s]^2 uniforms for each pass, from streams stream + 3k, + 3k + 1, + 3k + 2 (k-th scale)."""
    assert mapsize & (mapsize - 1) == 0, "mapsize must be a power of two"
    n = len(rng)
    m = torch.zeros(n, mapsize, mapsize, dtype=torch.float32, device=rng.device)
    step, wibble, k = mapsize, 100.0, 0

    def wibbled_mean(total: torch.Tensor, s: int) -> torch.Tensor:
        u = -wibble + (wibble - -wibble) * rng.uniform(s, tuple(total.shape[1:]))  # np.random.uniform(-w, w)
        return (total / 4 + wibble * u).to(torch.float32)

    while step >= 2:
        half = step // 2
        corner = m[:, 0::step, 0::step]
        total = corner + torch.roll(corner, -1, 1)
        total = total + torch.roll(total, -1, 2)
        m[:, half::step, half::step] = wibbled_mean(total, stream + 3 * k)
        dr, ul = m[:, half::step, half::step], m[:, 0::step, 0::step]
        left = (dr + torch.roll(dr, 1, 1)) + (ul + torch.roll(ul, -1, 2))
        m[:, 0::step, half::step] = wibbled_mean(left, stream + 3 * k + 1)
        upper = (dr + torch.roll(dr, 1, 2)) + (ul + torch.roll(ul, -1, 1))
        m[:, half::step, 0::step] = wibbled_mean(upper, stream + 3 * k + 2)
        step //= 2
        wibble /= wibbledecay
        k += 1
    m = m - m.amin(dim=(1, 2), keepdim=True)
    return m / m.amax(dim=(1, 2), keepdim=True)


def fog(x: torch.Tensor, severity: int, calibration: str, rng: Rng, scale: float) -> torch.Tensor:
    strength, decay = params("fog", severity, calibration, scale)
    h, w = x.shape[1:3]
    if calibration == "imagenet-c":  # next_power_of_2(max(np.array(x).shape)): the channel count counts too
        # scaled: the fractal of the image 1 / scale as large, magnified (params.py)
        size = 1 << (max(*_grid(h, w, scale), 3) - 1).bit_length()
    else:  # calibrated._fog: 1 << ceil(log2(max(h, w)))
        size = 1 << (max(h, w) - 1).bit_length()
    y = _div(x.double(), 255.0)
    top = y.amax(dim=(1, 2, 3), keepdim=True)
    layer = _magnified(plasma_fractal(rng, size, decay, STREAMS["plasma"])[..., None], h, w, scale) * strength
    y = y + layer
    return _f32((y * top / (top + strength)).clamp(0, 1) * 255)


# ---------------------------------------------------------------- frost

@lru_cache(maxsize=None)
def _frost_photo(k: int) -> np.ndarray:
    import cv2
    import imagecorruptions

    return cv2.imread(str(Path(imagecorruptions.__file__).parent / "frost" / FROST_FILES[k]))  # BGR uint8


def _resized_photo(k: int, h: int, w: int, calibration: str, scale: float) -> np.ndarray:
    """Photograph k as the reference resizes it for an h x w image (BGR uint8); scaled: as for the image 1 / scale
    as large, then magnified by scale (params.py)."""
    import cv2

    if scale != 1:
        p = _resized_photo(k, *_grid(h, w, scale), calibration, 1.0)
        # at least 1.1 x (h / scale) x scale: the 224-px photograph is always 1.1 times past its image (below)
        return cv2.resize(p, dsize=(math.ceil(p.shape[1] * scale), math.ceil(p.shape[0] * scale)),
                          interpolation=cv2.INTER_CUBIC)
    photo = _frost_photo(k)
    ph, pw = photo.shape[:2]
    if calibration != "imagenet-c":  # calibrated._frost
        scale = max(calibrated.FROST_SCALE[calibration], (h + 1) / ph, (w + 1) / pw)
        return cv2.resize(photo, (0, 0), fx=scale, fy=scale)
    scale = 1.0  # frost(): enlarge a photograph smaller than the image, then 1.1 times
    if ph < h and pw >= w:
        scale = h / ph
    elif ph >= h and pw < w:
        scale = w / pw
    elif ph < h and pw < w:
        scale = max(h / ph, w / pw)
    scale *= 1.1
    size = (int(np.ceil(pw * scale)), int(np.ceil(ph * scale)))
    return cv2.resize(photo, dsize=size, interpolation=cv2.INTER_CUBIC)


@lru_cache(maxsize=16)
def _frost_layers(h: int, w: int, calibration: str, device: str, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The candidate photographs resized for h x w images, RGB, zero-padded into one uint8 [K, H', W', 3] tensor,
    and their sizes [K, 2]."""
    count = len(FROST_FILES) if calibration == "imagenet-c" else 5  # calibrated._frost: np.random.randint(5)
    photos = [_resized_photo(k, h, w, calibration, scale)[..., ::-1] for k in range(count)]
    sizes = torch.tensor([p.shape[:2] for p in photos], dtype=torch.int64)
    stack = np.zeros((count, int(sizes[:, 0].max()), int(sizes[:, 1].max()), 3), np.uint8)
    for k, p in enumerate(photos):
        stack[k, : p.shape[0], : p.shape[1]] = p
    return torch.from_numpy(stack).to(device), sizes.to(device)


def frost(x: torch.Tensor, severity: int, calibration: str, rng: Rng, scale: float) -> torch.Tensor:
    a, b = params("frost", severity, calibration, scale)
    h, w = x.shape[1:3]
    stack, sizes = _frost_layers(h, w, calibration, str(x.device), scale)
    k = rng.integers(STREAMS["photo"], len(stack))  # np.random.randint(6) (calibrated: 5)
    span = sizes[k] - torch.tensor([h, w], device=x.device)  # np.random.randint(0, photo side - image side)
    if bool((span <= 0).any()):
        raise ValueError(f"frost: a {h} x {w} image is as large as a frost photograph")
    top = torch.floor(rng.uniform(STREAMS["top"]) * span[:, 0]).to(torch.int64)
    left = torch.floor(rng.uniform(STREAMS["left"]) * span[:, 1]).to(torch.int64)
    picks = zip(k.tolist(), top.tolist(), left.tolist())
    layer = torch.stack([stack[i, t : t + h, l : l + w] for i, t, l in picks]).double()  # [N, H, W, 3]
    return _f32((a * x.double() + b * layer).clamp(0, 255))


# ---------------------------------------------------------------- snow

@lru_cache(maxsize=None)
def _zoom_taps(size: int, factor: float) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """clipped_zoom along one axis: the crop's start, and for each of scipy.ndimage.zoom(order=1)'s round(crop *
    factor) outputs the two source indices (of the full axis) and the weight of the second."""
    crop = int(np.ceil(size / float(factor)))
    start = (size - crop) // 2
    out = int(round(crop * factor))
    step = (crop - 1) / (out - 1) if out > 1 else 0.0
    cc = np.arange(out) * step
    i0 = np.minimum(np.floor(cc).astype(np.int64), crop - 1)
    return start, start + i0, start + np.minimum(i0 + 1, crop - 1), cc - i0


def _zoom(layer: torch.Tensor, factor: float) -> torch.Tensor:
    """clipped_zoom of [N, H, W] float64: the centre crop of side ceil(side / factor), zoomed to round(crop *
    factor) (scipy's order-1 spline: linear between the two neighbours), its whole output; to ~1e-13 relative of
    scipy's, not bit for bit."""
    y = layer
    for dim in (1, 2):
        _, i0, i1, wt = (torch.as_tensor(a, device=layer.device) for a in _zoom_taps(layer.shape[dim], factor))
        shape = [1, 1, 1]
        shape[dim] = len(wt)
        wt = wt.reshape(shape)
        y = y.index_select(dim, i0) * (1 - wt) + y.index_select(dim, i1) * wt
    return y


def _fma(a: torch.Tensor, b: float, c: torch.Tensor) -> torch.Tensor:
    """float32 a * b + c rounded once (the float32 product is exact in float64)."""
    return (a.double() * float(np.float32(b)) + c.double()).to(torch.float32)


def _gray(x: torch.Tensor) -> torch.Tensor:
    """cv2.cvtColor(float32 RGB, COLOR_RGB2GRAY)[..., None]: 0.299 R + 0.587 G + 0.114 B in float32, in the order
    and with the fused multiply-adds of OpenCV 5.1's vector loop, fma(B, 0.114, fma(R, 0.299, G * 0.587)) (measured:
    identical on rows whose width is a multiple of 8; the last pixels of other rows take its scalar loop, whose
    rounding differs by an ulp at times)."""
    r, g, b = x.unbind(-1)
    return _fma(b, 0.114, _fma(r, 0.299, g * float(np.float32(0.587))))[..., None]


def snow(x: torch.Tensor, severity: int, calibration: str, rng: Rng, scale: float) -> torch.Tensor:
    loc, spread, factor, threshold, radius, sigma, weight = params("snow", severity, calibration, scale)
    h, w = x.shape[1:3]
    y = _unit32(x)
    gh, gw = _grid(h, w, scale)  # scaled (params.py): the snow of the image 1 / scale as large, magnified
    layer = loc + spread * rng.normal(STREAMS["layer"], (gh, gw))  # np.random.normal(size=(H, W), loc, scale)
    angle = -135.0 + (-45.0 - -135.0) * rng.uniform(STREAMS["angle"])  # np.random.uniform(-135, -45)
    layer = _zoom(layer, factor)
    if calibration != "imagenet-c":  # calibrated._snow: centre crop, uint8, blurred at the image's size
        t0, t1 = (layer.shape[1] - h) // 2, (layer.shape[2] - w) // 2
        layer = layer[:, t0 : t0 + h, t1 : t1 + w]
        layer = torch.where(layer < threshold, torch.zeros_like(layer), layer)
        layer = torch.floor(layer.clamp(0, 1) * 255).to(torch.float32)  # np.uint8(...).astype(np.float32)
        layer = _div(torch.round(motion_blur_with_angle(layer, int(radius), sigma, angle)), 255.0)
    else:  # snow(): blurred at the zoom's size, rounded, then its top-left H x W
        layer = torch.where(layer < threshold, torch.zeros_like(layer), layer).clamp(0, 1)
        layer = _div(torch.round(motion_blur_with_angle(layer, int(radius), sigma, angle) * 255), 255.0)
        layer = _magnified(layer[:, :gh, :gw, None], h, w, scale)[..., 0]
    layer = layer[..., None]
    y = weight * y + (1 - weight) * torch.maximum(y, _gray(y) * 1.5 + 0.5)  # float32
    return _f32((y.double() + layer + layer.flip(1, 2)).clamp(0, 1) * 255)


# ---------------------------------------------------------------- spatter

_RIPPLE = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])


def _water_relief(liquid: torch.Tensor) -> torch.Tensor:
    """spatter()'s water shading of the uint8 liquid layers [N, H, W], computed by cv2 on the CPU exactly as the
    reference does: distance to the layer's Canny edges (capped at 20), box-blurred, equalised, embossed, blurred.
    float32 [N, H, W] on the layers' device."""
    import cv2

    out = []
    for layer in liquid.to("cpu", torch.uint8).numpy():
        dist = cv2.distanceTransform(255 - cv2.Canny(layer, 50, 150), cv2.DIST_L2, 5)
        _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
        dist = cv2.equalizeHist(cv2.blur(dist, (3, 3)).astype(np.uint8))
        dist = cv2.filter2D(dist, cv2.CV_8U, _RIPPLE)
        out.append(cv2.blur(dist, (3, 3)).astype(np.float32))
    return torch.from_numpy(np.stack(out)).to(liquid.device)


def spatter(x: torch.Tensor, severity: int, calibration: str, rng: Rng, scale: float) -> torch.Tensor:
    loc, spread, sigma, threshold, intensity, mud = params("spatter", severity, calibration, scale)
    h, w = x.shape[1:3]
    y = _unit32(x)
    gh, gw = _grid(h, w, scale)  # scaled (params.py): the liquid of the image 1 / scale as large, magnified
    liquid = _gauss_nearest(loc + spread * rng.normal(STREAMS["layer"], (gh, gw)), sigma)  # float64
    liquid = torch.where(liquid < threshold, torch.zeros_like(liquid), liquid)
    if mud == 0:  # water: everything float32 from here, as in the reference
        liquid = torch.remainder(torch.floor(liquid * 255), 256)  # (liquid * 255).astype(np.uint8)
        m = (liquid.to(torch.float32) * _water_relief(liquid))[..., None]
        m = _magnified(m / m.amax(dim=(1, 2), keepdim=True), h, w, scale)
        m = m * intensity
        colour = torch.tensor([175 / 255.0, 238 / 255.0, 238 / 255.0], dtype=torch.float32, device=x.device)
        # a layer without shaded liquid makes m 0 / 0: NaN everywhere, which np.uint8 turns into 0 (a black image;
        # imagecorruptions at 32 px, severity 1, about 1 image in 50): 0 here on every device
        return torch.nan_to_num((y + m * colour).clamp(0, 1) * 255, nan=0.0)
    m = _gauss_nearest((liquid > threshold).to(torch.float32), intensity)  # float32
    m = _magnified(torch.where(m < 0.8, torch.zeros_like(m), m)[..., None], h, w, scale)
    if calibration == "imagenet-c":  # colour (63, 42, 20) / 255 in float64
        colour = torch.tensor([63 / 255.0, 42 / 255.0, 20 / 255.0], dtype=torch.float64, device=x.device)
        return _f32(((y * (1 - m)).double() + colour * m.double()).clamp(0, 1) * 255)
    colour = torch.tensor([63 / 255.0, 42 / 255.0, 20 / 255.0], dtype=torch.float32, device=x.device)
    return (y * (1 - m) + colour * m).clamp(0, 1) * 255  # calibrated._spatter: float32


def _grid(h: int, w: int, scale: float) -> tuple[int, int]:
    """The size of the image 1 / scale as large, for which a scaled layer is made (params.py): h x w at scale 1."""
    return math.ceil(h / scale), math.ceil(w / scale)


def _magnified(m: torch.Tensor, h: int, w: int, scale: float) -> torch.Tensor:
    """A [N, h', w', C] layer made for the image 1 / scale as large (at least _grid's size), magnified bilinearly
    (antialiased when it shrinks); its top-left h x w."""
    if scale != 1:
        # by exactly `scale` (floor(h' scale) >= h, as h' >= h / scale), so the layer's geometry is the 224-px one's
        m = F.interpolate(m.permute(0, 3, 1, 2), scale_factor=scale, mode="bilinear", align_corners=False,
                          recompute_scale_factor=False, antialias=scale < 1).permute(0, 2, 3, 1)
    return m[:, :h, :w]


OPS = {"snow": snow, "frost": frost, "fog": fog, "spatter": spatter}
