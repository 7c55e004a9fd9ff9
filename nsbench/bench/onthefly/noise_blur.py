"""The random corruptions of ImageNet-C in torch: noise (gaussian, shot, impulse, speckle), glass and motion blur,
and the elastic transform, each the reference's arithmetic on the reference's distributions, drawn from Rng.

References: imagecorruptions-imaug 1.1.5, imagecorruptions/corruptions.py (calibration "imagenet-c"), and nsbench's
numpy generators in bench/calibrated.py ("cifar-10-c", "tiny-imagenet-c"), which differ only in their parameters
except for elastic_transform (an affine warp, then the displacement field) and motion blur's /255 round trip.
Random draws cannot match numpy's generator; every one comes from Rng, one stream per distinct draw (STREAMS), so an
image's corruption depends on its seed alone. Arithmetic is float64 where the reference's is, and _f32 hands back
float32 that np.uint8 truncates to the same grey level as the float64 value.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .. import calibrated
from .rng import Rng
from .params import severity_params

# corruption -> the five severity parameters of imagecorruptions/corruptions.py (imagecorruptions-imaug 1.1.5), the
# `c = [...]` list of each function, line given
IMAGENET = {
    "gaussian_noise": [.08, .12, 0.18, 0.26, 0.38],  # line 177
    "shot_noise": [60, 25, 12, 5, 3],  # line 184
    "impulse_noise": [.03, .06, .09, 0.17, 0.27],  # line 191
    "speckle_noise": [.15, .2, 0.35, 0.45, 0.6],  # line 198
    "glass_blur": [(0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)],  # line 220: sigma, delta, iters
    "motion_blur": [(10, 3), (15, 5), (15, 8), (15, 12), (20, 15)],  # line 256: radius, sigma
    # line 571: alpha; the rest of elastic_transform's parameters follow the image size (lines 570 and 573):
    # sigma = 0.01 * (H, W), uniform displacements in +-0.005 * H
    "elastic_transform": [250 * 0.05, 250 * 0.065, 250 * 0.085, 250 * 0.1, 250 * 0.12],
}
CALIBRATIONS = ("imagenet-c", *calibrated.TABLES)
# Rng stream of each draw, distinct within an op (shot noise's rejection rounds take 1, 2, ... after its 0); ops may
# share numbers, their images' seeds differ (cache.seed_for(seed, corruption, severity, index))
STREAMS = {"noise": 0, "salted": 1, "poisson": 0, "offsets": 0, "angle": 0, "dx": 0, "dy": 1, "affine": 2}
_POISSON_ROUNDS = 64  # PTRS accepts >= 87% a round: 64 rounds leave a pending element with probability < 1e-56


def params(name: str, severity: int, calibration: str, scale: float):
    return severity_params(IMAGENET, name, severity, calibration, scale)


def _f32(y: torch.Tensor) -> torch.Tensor:
    """float64 -> float32 whose truncation (np.uint8) is the float64 value's: rounding to float32 can carry
    254.9999999 up to 255.0; such values step one float32 ulp down instead."""
    out = y.to(torch.float32)
    up = torch.floor(out.to(torch.float64)) > torch.floor(y)
    return torch.where(up, torch.nextafter(out, torch.full_like(out, -math.inf)), out)


# ---------------------------------------------------------------- gaussian filtering (scipy.ndimage.gaussian_filter)

def _edge_index(n: int, r: int, mode: str, device) -> torch.Tensor:
    """Indices of positions -r .. n-1+r under scipy.ndimage's boundary mode: 'nearest' repeats the edge, 'reflect'
    mirrors about the edge including it (d c b a | a b c d), repeated for any distance."""
    i = torch.arange(-r, n + r, device=device)
    if mode == "nearest":
        return i.clamp(0, n - 1)
    i = torch.remainder(i, 2 * n)
    return torch.where(i < n, i, 2 * n - 1 - i)


def _gauss1d(x: torch.Tensor, sigma: float, dim: int, mode: str, truncate: float) -> torch.Tensor:
    """scipy.ndimage.gaussian_filter1d: the kernel exp(-t^2 / 2 sigma^2) over |t| <= int(truncate * sigma + 0.5),
    normalised, summed in scipy's symmetric order (centre, then pairs outwards)."""
    if sigma <= 1e-15:  # scipy leaves the axis alone
        return x
    r = int(truncate * float(sigma) + 0.5)
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    w = torch.exp(-0.5 / float(sigma) ** 2 * t * t)
    w = (w / w.sum()).tolist()
    n = x.shape[dim]
    p = x.index_select(dim, _edge_index(n, r, mode, x.device))
    out = p.narrow(dim, r, n) * w[r]
    for j in range(1, r + 1):
        out = out + (p.narrow(dim, r - j, n) + p.narrow(dim, r + j, n)) * w[r + j]
    return out


def _gauss2d(x: torch.Tensor, sigma, mode: str = "nearest", truncate: float = 4.0) -> torch.Tensor:
    """skimage.filters.gaussian over H and W of [N, H, W] or [N, H, W, C] (channel_axis=-1: channels apart)."""
    sh, sw = (sigma, sigma) if isinstance(sigma, (int, float)) else sigma
    return _gauss1d(_gauss1d(x, sh, 1, mode, truncate), sw, 2, mode, truncate)


# ---------------------------------------------------------------- noise

def gaussian_noise(x: torch.Tensor, severity: int, calibration: str, rng: Rng, scale: float) -> torch.Tensor:
    c = params("gaussian_noise", severity, calibration, scale)
    y = x.double() / 255.0 + rng.normal(STREAMS["noise"], tuple(x.shape[1:])) * c
    return _f32(y.clamp(0, 1) * 255)


def speckle_noise(x: torch.Tensor, severity: int, calibration: str, rng: Rng, scale: float) -> torch.Tensor:
    c = params("speckle_noise", severity, calibration, scale)
    x = x.double() / 255.0
    y = x + x * (rng.normal(STREAMS["noise"], tuple(x.shape[1:])) * c)
    return _f32(y.clamp(0, 1) * 255)


def shot_noise(x: torch.Tensor, severity: int, calibration: str, rng: Rng, scale: float) -> torch.Tensor:
    c = params("shot_noise", severity, calibration, scale)
    k = poisson(rng, STREAMS["poisson"], x.double() / 255.0 * c)
    return _f32((k / float(c)).clamp(0, 1) * 255)


def impulse_noise(x: torch.Tensor, severity: int, calibration: str, rng: Rng, scale: float) -> torch.Tensor:
    """skimage.util.random_noise(mode='s&p', amount=c): each element (channels apart) is flipped with probability c
    (uniform <= c), and a flipped one becomes 1 if a second uniform <= 0.5 (salt_vs_pepper), else 0."""
    c = params("impulse_noise", severity, calibration, scale)
    shape = tuple(x.shape[1:])
    flipped = rng.uniform(STREAMS["noise"], shape) <= c
    salted = rng.uniform(STREAMS["salted"], shape) <= 0.5
    y = torch.where(flipped, salted.double(), x.double() / 255.0)
    return _f32(y.clamp(0, 1) * 255)


def poisson(rng: Rng, stream: int, lam: torch.Tensor) -> torch.Tensor:
    """Exact Poisson(lam) samples (float64), lam [images, ...] >= 0: inversion of the CDF for lam < 10 (one uniform
    of `stream` per element), Hormann's PTRS transformed rejection for lam >= 10 (W. Hormann, "The transformed
    rejection method for generating Poisson random variables", Insurance: Mathematics and Economics 12, 1993; numpy's
    random_poisson_ptrs). Rejection round r draws an element's (U, V) from streams stream + 1 + 2r and
    stream + 2 + 2r at the element's own index, so each sample depends on its image's seed and its own lam alone."""
    per = lam[0].numel()
    flat = lam.reshape(-1)
    k = torch.zeros_like(flat)
    small = flat < 10
    lin = small.nonzero().squeeze(1)  # elements, numbered over the batch
    if lin.numel():
        l = flat.index_select(0, lin)
        u = rng.uniform_at(stream, lin, per)
        p = torch.exp(-l)
        cdf, j = p.clone(), 0
        while True:
            todo = (u > cdf).nonzero().squeeze(1)
            if not todo.numel():
                break
            lin, l, u, p, cdf = (t.index_select(0, todo) for t in (lin, l, u, p, cdf))
            j += 1
            p = p * l / j
            cdf = cdf + p
            k.index_fill_(0, lin, float(j))
            if not (p > 0).any():  # the CDF's float64 sum stopped short of u (u within 2^-52 of 1)
                break
    lin = (~small).nonzero().squeeze(1)
    l = flat.index_select(0, lin)
    slam, loglam = torch.sqrt(l), torch.log(l)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    log_invalpha = torch.log(1.1239 + 1.1328 / (b - 3.4))
    vr = 0.9277 - 3.6224 / (b - 2)
    for r in range(_POISSON_ROUNDS):
        if not lin.numel():
            return k.reshape(lam.shape)
        U = rng.uniform_at(stream + 1 + 2 * r, lin, per) - 0.5
        V = rng.uniform_at(stream + 2 + 2 * r, lin, per)
        us = 0.5 - U.abs()
        kk = torch.floor((2 * a / us + b) * U + l + 0.43)
        fast = (us >= 0.07) & (V <= vr)
        out = (kk < 0) | ((us < 0.013) & (V > us))
        slow = torch.log(V) + log_invalpha - torch.log(a / (us * us) + b) <= -l + kk * loglam - torch.lgamma(kk + 1)
        accept = fast | (~out & slow)
        k.index_put_((lin,), torch.where(accept, kk, k.index_select(0, lin)))
        keep = (~accept).nonzero().squeeze(1)
        lin, l, loglam, a, b, log_invalpha, vr = (t.index_select(0, keep) for t in (lin, l, loglam, a, b, log_invalpha, vr))
    if lin.numel():
        raise RuntimeError("Poisson sampler: elements still rejected after every round")
    return k.reshape(lam.shape)


# ---------------------------------------------------------------- glass blur

def glass_blur(x: torch.Tensor, severity: int, calibration: str, rng: Rng, scale: float) -> torch.Tensor:
    sigma, delta, iterations = params("glass_blur", severity, calibration, scale)
    y = torch.floor(_gauss2d(x.double() / 255.0, sigma) * 255).clamp(0, 255)  # np.uint8(gaussian(x / 255) * 255)
    # one (dx, dy) per step of the reference's loop, np.random.randint(-delta, delta, size=(2,))
    steps = (iterations, max(y.shape[1] - 2 * delta, 0), max(y.shape[2] - 2 * delta, 0), 2)
    y = glass_shuffle(y, delta, iterations, rng.integers(STREAMS["offsets"], 2 * delta, steps) - delta)
    return _f32(_gauss2d(y / 255.0, sigma).clamp(0, 1) * 255)


def glass_shuffle(y: torch.Tensor, delta: int, iterations: int, offsets: torch.Tensor) -> torch.Tensor:
    """The reference's sequential pixel loop (_shuffle_pixels_njit_glass_blur): for each iteration, for h from
    H - delta down to delta + 1, for w from W - delta down to delta + 1, x[h, w] = x[h + dy, w + dx] with
    offsets[:, iteration, H - delta - h, W - delta - w] = (dx, dy) in -delta .. delta - 1. (Its "swap" copies: numpy
    and numba assign x[h, w] first, then write that new value back to x[h', w'].) Exactly, without the loop: each
    pixel is written once an iteration, so it ends up holding its source's final value if the loop wrote the source
    before it (a source below it, or on its row to the right, inside the looped region), else the source's value
    before the iteration; those links form chains, which pointer doubling resolves in log2(chain length) gathers."""
    n, h, w, ch = y.shape
    rows, cols = h - 2 * delta, w - 2 * delta
    if rows <= 0 or cols <= 0:
        return y
    dev = y.device
    hs = (h - delta - torch.arange(rows, device=dev))[:, None]  # the loop's rows and columns, in its order
    ws = (w - delta - torch.arange(cols, device=dev))[None, :]
    dst = (hs * w + ws).reshape(-1)
    flat = y.reshape(n, h * w, ch)
    for it in range(iterations):
        sh, sw = hs + offsets[:, it, :, :, 1], ws + offsets[:, it, :, :, 0]  # [N, rows, cols]
        looped = (sh >= delta + 1) & (sh <= h - delta) & (sw >= delta + 1) & (sw <= w - delta)
        before = looped & ((sh > hs) | ((sh == hs) & (sw > ws)))
        src = torch.arange(h * w, device=dev).repeat(n, 1)
        done = torch.ones(n, h * w, dtype=torch.bool, device=dev)
        src[:, dst] = (sh * w + sw).reshape(n, -1)
        done[:, dst] = ~before.reshape(n, -1)
        while not bool(done.all()):  # follow links to a source the iteration had not yet written
            src, done = torch.where(done, src, src.gather(1, src)), done | done.gather(1, src)
        flat = flat.gather(1, src[:, :, None].expand(-1, -1, ch))
    return flat.reshape(n, h, w, ch)


# ---------------------------------------------------------------- motion blur

def motion_blur_with_angle(x: torch.Tensor, radius: int, sigma: float, angle) -> torch.Tensor:
    """imagecorruptions' _motion_blur on [N, H, W] or [N, H, W, C] with one angle (degrees) per image: the sum over
    i < 2 * radius + 1 of getMotionBlurKernel's weight i times the image shifted by i steps along the angle (edge
    pixels repeated), stopping, unnormalised, at the first shift as long as the image; float64, as numpy sums it."""
    n, h, w = x.shape[:3]
    width = 2 * int(radius) + 1
    i = torch.arange(width, dtype=torch.float64, device=x.device)
    kernel = torch.exp(-(i**2) / (2 * sigma**2)) / (math.sqrt(2 * math.pi) * sigma)
    kernel = kernel / kernel.sum()
    rad = torch.deg2rad(torch.as_tensor(angle, dtype=torch.float64, device=x.device).reshape(-1).expand(n))
    py, px = width * torch.sin(rad), width * torch.cos(rad)
    hyp = torch.hypot(py, px)
    dy = -torch.ceil(i[None] * py[:, None] / hyp[:, None] - 0.5).to(torch.int64)  # [N, width]
    dx = -torch.ceil(i[None] * px[:, None] / hyp[:, None] - 0.5).to(torch.int64)
    live = torch.cumprod(((dy.abs() < h) & (dx.abs() < w)).to(torch.int64), dim=1).bool()  # the loop's break
    # shift(): rolled, the wrapped part the edge's copy = a window of the edge-replicated image
    pad = int(torch.where(live, torch.maximum(dy.abs(), dx.abs()), torch.zeros_like(dy)).max()) if n else 0
    planes = x.double().reshape(n, h, w, -1).permute(0, 3, 1, 2)  # [N, C, H, W]
    padded = F.pad(planes, (pad, pad, pad, pad), mode="replicate") if pad else planes
    out = torch.zeros_like(planes)
    weights, dy, dx, live = kernel.tolist(), dy.tolist(), dx.tolist(), live.tolist()
    for k in range(n):  # in j order per image, as the reference sums
        for j in range(width):
            if not live[k][j]:
                break
            top, left = pad - dy[k][j], pad - dx[k][j]
            out[k] += weights[j] * padded[k, :, top : top + h, left : left + w]
    return out.permute(0, 2, 3, 1).reshape(x.shape)


def motion_blur(x: torch.Tensor, severity: int, calibration: str, rng: Rng, scale: float) -> torch.Tensor:
    radius, sigma = params("motion_blur", severity, calibration, scale)
    angle = rng.uniform(STREAMS["angle"]) * 90.0 - 45.0  # np.random.uniform(-45, 45)
    y = motion_blur_with_angle(x, int(radius), sigma, angle)
    if calibration == "imagenet-c":
        return _f32(y.clamp(0, 255))
    return _f32((y / 255.0).clamp(0, 1) * 255)  # calibrated.py: _motion(img) / 255, then clip(0, 1) * 255


# ---------------------------------------------------------------- elastic transform

def _bilinear_reflect(img: torch.Tensor, cy: torch.Tensor, cx: torch.Tensor) -> torch.Tensor:
    """scipy.ndimage.map_coordinates(order=1, mode='reflect') of [N, H, W, C] at float64 [N, H, W] (row, column)
    coordinates, channel by channel: linear weights on the two neighbours of each axis, their indices mirrored
    about the edge including it."""
    n, h, w, ch = img.shape
    flat = img.reshape(n, h * w, ch).double()
    y0, x0 = torch.floor(cy), torch.floor(cx)
    ty, tx = (cy - y0)[..., None], (cx - x0)[..., None]
    y0, x0 = y0.to(torch.int64), x0.to(torch.int64)

    def mirror(i, size):
        i = torch.remainder(i, 2 * size)
        return torch.where(i < size, i, 2 * size - 1 - i)

    def at(yy, xx):
        idx = (mirror(yy, h) * w + mirror(xx, w)).reshape(n, -1, 1).expand(-1, -1, ch)
        return flat.gather(1, idx).reshape(n, h, w, ch)

    top = (1 - tx) * at(y0, x0) + tx * at(y0, x0 + 1)
    return (1 - ty) * top + ty * ((1 - tx) * at(y0 + 1, x0) + tx * at(y0 + 1, x0 + 1))


def _reflect101(i: torch.Tensor, size: int) -> torch.Tensor:
    """OpenCV's BORDER_REFLECT_101 (g f e d c b | a b c d e f g h | g f ...)."""
    if size == 1:
        return torch.zeros_like(i)
    i = torch.remainder(i, 2 * size - 2)
    return torch.where(i < size, i, 2 * size - 2 - i)


def _warp_affine(img: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """cv2.warpAffine(img, m, (W, H), INTER_LINEAR, BORDER_REFLECT_101) of float32 [N, H, W, C] with per-image
    [N, 2, 3] float64 matrices, as OpenCV 5 computes it for float32 images: m inverted in float64, source
    coordinates and weights in float32, linear interpolation along x, then y. (OpenCV 4 rounds source coordinates to
    1/32 pixel instead; measured against the installed opencv-python 5.1.0: within 2e-6 of its output.)"""
    n, h, w, ch = img.shape
    d = m[:, 0, 0] * m[:, 1, 1] - m[:, 0, 1] * m[:, 1, 0]
    d = torch.where(d != 0, 1.0 / d, torch.zeros_like(d))
    a11, a12, a21, a22 = m[:, 1, 1] * d, m[:, 0, 1] * -d, m[:, 1, 0] * -d, m[:, 0, 0] * d
    b1 = -a11 * m[:, 0, 2] - a12 * m[:, 1, 2]
    b2 = -a21 * m[:, 0, 2] - a22 * m[:, 1, 2]
    inv = torch.stack([a11, a12, b1, a21, a22, b2], dim=1).to(torch.float32)[:, :, None, None]  # [N, 6, 1, 1]
    xs = torch.arange(w, dtype=torch.float32, device=img.device)[None, :]
    ys = torch.arange(h, dtype=torch.float32, device=img.device)[:, None]
    sx = inv[:, 0] * xs + inv[:, 1] * ys + inv[:, 2]  # [N, H, W]
    sy = inv[:, 3] * xs + inv[:, 4] * ys + inv[:, 5]
    x0, y0 = torch.floor(sx), torch.floor(sy)
    tx, ty = (sx - x0)[..., None], (sy - y0)[..., None]
    x0, y0 = x0.to(torch.int64), y0.to(torch.int64)
    flat = img.reshape(n, h * w, ch)

    def at(yy, xx):
        idx = (_reflect101(yy, h) * w + _reflect101(xx, w)).reshape(n, -1, 1).expand(-1, -1, ch)
        return flat.gather(1, idx).reshape(n, h, w, ch)

    v00, v01, v10, v11 = at(y0, x0), at(y0, x0 + 1), at(y0 + 1, x0), at(y0 + 1, x0 + 1)
    top, bottom = v00 + tx * (v01 - v00), v10 + tx * (v11 - v10)
    return top + ty * (bottom - top)


def _affine_from_points(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """cv2.getAffineTransform for [N, 3, 2] point triples (float64): the [N, 2, 3] map taking src to dst."""
    a = torch.cat([src, torch.ones_like(src[..., :1])], dim=-1)  # [N, 3, 3]
    return torch.linalg.solve(a, dst).transpose(1, 2)


def elastic_transform(x: torch.Tensor, severity: int, calibration: str, rng: Rng, scale: float) -> torch.Tensor:
    n, h, w, _ = x.shape
    img = (x.double() / 255.0).to(torch.float32)  # np.array(image, dtype=float32) / 255.
    if calibration == "imagenet-c":
        alpha, sigma, limit = params("elastic_transform", severity, calibration, scale), (h * 0.01, w * 0.01), h * 0.005
    else:  # calibrated._elastic: an affine warp of the whole image first, sizes scaled by the image's height
        alpha, sigma, shear = (v * h for v in params("elastic_transform", severity, calibration, scale))
        limit = 1.0
        img = _warp_affine(img, _elastic_affine(h, w, shear, rng))

    def field(stream):
        u = rng.uniform(stream, (h, w)) * (2 * limit) - limit  # np.random.uniform(-limit, limit, size=(H, W))
        return (_gauss2d(u, sigma, mode="reflect", truncate=3) * alpha).to(torch.float32).double()

    dx, dy = field(STREAMS["dx"]), field(STREAMS["dy"])
    gy = torch.arange(h, dtype=torch.float64, device=x.device)[None, :, None]
    gx = torch.arange(w, dtype=torch.float64, device=x.device)[None, None, :]
    y = _bilinear_reflect(img, gy + dy, gx + dx).to(torch.float32)  # map_coordinates returns the image's float32
    return y.clamp(0, 1) * 255


def _elastic_affine(h: int, w: int, limit: float, rng: Rng) -> torch.Tensor:
    """calibrated._elastic's affine map: three points around the centre (float32, as given to OpenCV), each moved by
    uniforms in +-limit."""
    c0, c1, half = float(h // 2), float(w // 2), float(min(h, w) // 3)
    pts1 = torch.tensor([[c0 + half, c1 + half], [c0 + half, c1 - half], [c0 - half, c1 - half]], dtype=torch.float32,
                        device=rng.device)
    move = (rng.uniform(STREAMS["affine"], (3, 2)) * (2 * limit) - limit).to(torch.float32)
    pts2 = pts1 + move
    return _affine_from_points(pts1.double().expand(len(rng), 3, 2), pts2.double())


OPS = {
    "gaussian_noise": gaussian_noise,
    "shot_noise": shot_noise,
    "impulse_noise": impulse_noise,
    "speckle_noise": speckle_noise,
    "glass_blur": glass_blur,
    "motion_blur": motion_blur,
    "elastic_transform": elastic_transform,
}
