"""-C corruptions calibrated for small images: the severity parameters of the reference generators for CIFAR-10-C
(32 px) and Tiny-ImageNet-C (64 px), so a built DATASET-C of CIFAR-sized images is comparable with published
CIFAR-10-C numbers (RobustBench's corruptions board) instead of running ImageNet-C's 224-px parameters on 32 px.

Parameters are the constants of hendrycks/robustness ImageNet-C/create_c/make_cifar_c.py (commit ca36008) and
make_tinyimagenet_c.py (commit 7a64e6a), one `c = [...]` list per corruption, cited by function name below.
The implementations are nsbench's own; where the reference calls ImageMagick's motion blur (motion_blur, snow),
imagecorruptions' numpy motion-blur kernel stands in, as it does in imagecorruptions itself. Pixel dimensions that
the reference hard-codes (32 or 64) follow the actual image size. Randomness comes from numpy's global generator,
which the builder re-seeds per image (impulse noise takes the seed explicitly).
"""
from __future__ import annotations

from io import BytesIO
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

# calibration name -> corruption -> the five severity parameters
CIFAR = {  # make_cifar_c.py
    "gaussian_noise": [0.04, 0.06, .08, .09, .10],
    "shot_noise": [500, 250, 100, 75, 50],
    "impulse_noise": [.01, .02, .03, .05, .07],
    "speckle_noise": [.06, .1, .12, .16, .2],
    "gaussian_blur": [.4, .6, 0.7, .8, 1],
    "glass_blur": [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)],
    "defocus_blur": [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)],
    "motion_blur": [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)],
    "zoom_blur": [1.06, 1.11, 1.16, 1.21, 1.26],  # np.arange(1, END, 0.01)
    "fog": [(.2, 3), (.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)],
    "frost": [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)],
    "snow": [(0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
             (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)],
    "spatter": [(0.62, 0.1, 0.7, 0.7, 0.5, 0), (0.65, 0.1, 0.8, 0.7, 0.5, 0), (0.65, 0.3, 1, 0.69, 0.5, 0),
                (0.65, 0.1, 0.7, 0.69, 0.6, 1), (0.65, 0.1, 0.5, 0.68, 0.6, 1)],
    "contrast": [.75, .5, .4, .3, 0.15],
    "brightness": [.05, .1, .15, .2, .3],
    "saturate": [(0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)],
    "jpeg_compression": [80, 65, 58, 50, 40],
    "pixelate": [0.95, 0.9, 0.85, 0.75, 0.65],
    "elastic_transform": [(0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03)],
}
TINY = {  # make_tinyimagenet_c.py
    "gaussian_noise": [0.04, 0.08, .12, .15, .18],
    "shot_noise": [250, 100, 50, 30, 15],
    "impulse_noise": [.01, .02, .05, .08, .14],
    "speckle_noise": [.15, .2, 0.25, 0.3, 0.35],
    "gaussian_blur": [.5, .75, 1, 1.25, 1.5],
    "glass_blur": [(0.1, 1, 1), (0.5, 1, 1), (0.6, 1, 2), (0.7, 2, 1), (0.9, 2, 2)],
    "defocus_blur": [(0.5, 0.6), (1, 0.1), (1.5, 0.1), (2.5, 0.01), (3, 0.1)],
    "motion_blur": [(10, 1), (10, 1.5), (10, 2), (10, 2.5), (12, 3)],
    "zoom_blur": [1.06, 1.11, 1.16, 1.21, 1.26],
    "fog": [(.4, 3), (.7, 3), (1, 2.5), (1.5, 2), (2, 1.75)],
    "frost": [(1, 0.3), (0.9, 0.4), (0.8, 0.45), (0.75, 0.5), (0.7, 0.55)],
    "snow": [(0.1, 0.2, 1, 0.6, 8, 3, 0.8), (0.1, 0.2, 1, 0.5, 10, 4, 0.8), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.7),
             (0.25, 0.3, 2.25, 0.6, 12, 6, 0.65), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.6)],
    "spatter": [(0.62, 0.1, 0.7, 0.7, 0.6, 0), (0.65, 0.1, 0.8, 0.7, 0.6, 0), (0.65, 0.3, 1, 0.69, 0.6, 0),
                (0.65, 0.1, 0.7, 0.68, 0.6, 1), (0.65, 0.1, 0.5, 0.67, 0.6, 1)],
    "contrast": [.4, .3, .2, .1, 0.05],
    "brightness": [.1, .2, .3, .4, .5],
    "saturate": [(0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (30, 0.2)],
    "jpeg_compression": [65, 58, 50, 40, 25],
    "pixelate": [0.9, 0.8, 0.7, 0.6, 0.5],
    "elastic_transform": [(0, 0, 0.08), (0.05, 0.3, 0.06), (0.1, 0.08, 0.06), (0.1, 0.03, 0.03), (0.16, 0.03, 0.02)],
}
FROST_SCALE = {"cifar-10-c": 0.2, "tiny-imagenet-c": 0.3}  # frost(): cv2.resize(frost, fx=fy=...)
# How the reference stored each corrupted image. make_tinyimagenet_c.py, DistortImageFolder.__getitem__:
# `Image.fromarray(np.uint8(img)).save(save_path, quality=85, optimize=True)` under the source's .JPEG name, so every
# Tiny-ImageNet-C image went through JPEG at quality 85; make_cifar_c.py stored np.uint8 arrays (.npy), lossless.
SAVED_AS = {"cifar-10-c": None, "tiny-imagenet-c": 85}
# Bumped when a calibrated generator changes its output, so cached sets made by the old one are never reused.
# 2: glass_blur copies as the reference's numpy views do; Tiny-ImageNet-C sets pass through JPEG quality 85.
# 3: defocus_blur filters the float64 image, as the references do (it filtered a float32 copy: one grey level off on
#    up to a fifth of the pixels at Tiny-ImageNet-C severity 5).
REVISION = 3
TABLES = {"cifar-10-c": CIFAR, "tiny-imagenet-c": TINY}


def calibration_for(size: int) -> str:
    """The reference generator calibrated nearest the image size: CIFAR-10-C up to 48 px, Tiny-ImageNet-C up to
    128 px, ImageNet-C (imagecorruptions) above."""
    return "cifar-10-c" if size <= 48 else "tiny-imagenet-c" if size <= 128 else "imagenet-c"


def as_saved(img: np.ndarray, calibration: str) -> np.ndarray:
    """The image as the reference's dataset file holds it (see SAVED_AS)."""
    quality = SAVED_AS.get(calibration)
    if quality is None:
        return img
    buf = BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=quality, optimize=True)
    return np.asarray(Image.open(buf).convert("RGB"))


def params(calibration: str, name: str, severity: int):
    return TABLES[calibration][name][severity - 1]


def _gauss(x: np.ndarray, sigma: float) -> np.ndarray:
    from skimage.filters import gaussian

    return gaussian(x, sigma=sigma, channel_axis=-1 if x.ndim == 3 else None)


def _clipped_zoom(img: np.ndarray, factor: float) -> np.ndarray:
    from scipy.ndimage import zoom

    h = img.shape[0]
    ch = int(np.ceil(h / factor))
    top = (h - ch) // 2
    z = zoom(img[top : top + ch, top : top + ch], (factor, factor, 1), order=1)
    t = (z.shape[0] - h) // 2
    return z[t : t + h, t : t + h]


def _motion(x: np.ndarray, radius: float, sigma: float, angle: float) -> np.ndarray:
    from imagecorruptions.corruptions import _motion_blur

    return _motion_blur(x, radius=int(radius), sigma=sigma, angle=angle)


def _hsv(x: np.ndarray, fn) -> np.ndarray:
    from skimage.color import hsv2rgb, rgb2hsv

    hsv = rgb2hsv(x)
    fn(hsv)
    return hsv2rgb(hsv)


def corrupt_calibrated(img: np.ndarray, name: str, severity: int, calibration: str, seed: int) -> np.ndarray:
    """One uint8 HWC (3-channel, square) image -> its corruption at `severity` with the calibration's parameters."""
    c = params(calibration, name, severity)
    x = img.astype(np.float64) / 255.0
    h, w = img.shape[:2]
    if name == "gaussian_noise":
        out = x + np.random.normal(size=x.shape, scale=c)
    elif name == "shot_noise":
        out = np.random.poisson(x * c) / c
    elif name == "impulse_noise":
        from skimage.util import random_noise

        out = random_noise(x, mode="s&p", amount=c, rng=seed)
    elif name == "speckle_noise":
        out = x + x * np.random.normal(size=x.shape, scale=c)
    elif name == "gaussian_blur":
        out = _gauss(x, c)
    elif name == "glass_blur":
        out = _glass(x, c, seed)  # offsets from the global generator, seeded per image
    elif name == "defocus_blur":
        out = _defocus(x, *c)  # the float64 image, as make_cifar_c.py:186 filters it
    elif name == "motion_blur":
        out = _motion(img, c[0], c[1], np.random.uniform(-45, 45)) / 255.0
    elif name == "zoom_blur":
        xf = x.astype(np.float32)
        factors = np.arange(1, c, 0.01)
        out = (xf + sum(_clipped_zoom(xf, z) for z in factors)) / (len(factors) + 1)
    elif name == "fog":
        out = _fog(x, *c)
    elif name == "frost":
        return _frost(img, c, FROST_SCALE[calibration])
    elif name == "snow":
        out = _snow(x.astype(np.float32), c)
    elif name == "spatter":
        out = _spatter(x.astype(np.float32), c)
    elif name == "contrast":
        m = x.mean(axis=(0, 1), keepdims=True)
        out = (x - m) * c + m
    elif name == "brightness":
        out = _hsv(x, lambda v: v.__setitem__((..., 2), np.clip(v[..., 2] + c, 0, 1)))
    elif name == "saturate":
        out = _hsv(x, lambda v: v.__setitem__((..., 1), np.clip(v[..., 1] * c[0] + c[1], 0, 1)))
    elif name == "jpeg_compression":
        buf = BytesIO()
        Image.fromarray(img).save(buf, "JPEG", quality=c)
        return np.asarray(Image.open(buf).convert("RGB"))
    elif name == "pixelate":
        small = Image.fromarray(img).resize((int(w * c), int(h * c)), Image.BOX)
        return np.asarray(small.resize((w, h), Image.BOX))
    elif name == "elastic_transform":
        out = _elastic(x.astype(np.float32), [v * h for v in c])
    else:
        raise ValueError(f"no calibrated generator for {name!r}")
    return np.uint8(np.clip(out, 0, 1) * 255)


def _glass(x: np.ndarray, c, seed: int) -> np.ndarray:
    """glass_blur(): blur, move pixels locally, blur again. The reference's "swap"
    `x[h, w], x[h_prime, w_prime] = x[h_prime, w_prime], x[h, w]` acts on numpy views: the first assignment
    overwrites x[h, w], the second writes that new value back where it came from, so each step copies
    x[h + dy, w + dx] into x[h, w] and values can vanish (about 14 of 256 distinct grey levels of a 32 px image).
    The offsets come from numpy's global generator in the reference's order (re-seeded per image by the builder)."""
    sigma, delta, iterations = c
    y = np.uint8(_gauss(x, sigma) * 255)
    h, w = y.shape[:2]
    rows, cols = len(range(h - delta, delta, -1)), len(range(w - delta, delta, -1))
    # one draw of size (2,) per pixel, (dx, dy), for iterations x rows (bottom up) x columns (right to left): the
    # same stream as the reference's per-pixel np.random.randint(-delta, delta, size=(2,))
    offsets = np.random.randint(-delta, delta, size=(iterations, rows, cols, 2))
    _copy_shift(y, offsets, delta)
    return _gauss(y / 255.0, sigma)


_COPY_SHIFT = None


def _copy_shift(y: np.ndarray, offsets: np.ndarray, delta: int) -> None:
    """In place, in the reference's order: y[i, j] = y[i + dy, j + dx] from the bottom-right corner up (compiled:
    the plain loop costs about 0.3 s per 32 px image)."""
    global _COPY_SHIFT
    if _COPY_SHIFT is None:
        from numba import njit

        @njit(cache=False)
        def copy_shift(y, offsets, delta):
            h, w = y.shape[0], y.shape[1]
            for it in range(offsets.shape[0]):
                for a in range(offsets.shape[1]):
                    i = h - delta - a
                    for b in range(offsets.shape[2]):
                        j = w - delta - b
                        dx, dy = offsets[it, a, b, 0], offsets[it, a, b, 1]
                        for k in range(y.shape[2]):
                            y[i, j, k] = y[i + dy, j + dx, k]

        _COPY_SHIFT = copy_shift
    _COPY_SHIFT(y, offsets.astype(np.int64), delta)


def _defocus(x: np.ndarray, radius: float, alias_blur: float) -> np.ndarray:
    span = np.arange(-8, 9) if radius <= 8 else np.arange(-radius, radius + 1)
    ksize = (3, 3) if radius <= 8 else (5, 5)
    X, Y = np.meshgrid(span, span)
    kernel = np.array(X**2 + Y**2 <= radius**2, dtype=np.float32)
    kernel = cv2.GaussianBlur(kernel / kernel.sum(), ksize=ksize, sigmaX=alias_blur)
    return np.stack([cv2.filter2D(x[..., d], -1, kernel) for d in range(3)], axis=-1)


def _fog(x: np.ndarray, strength: float, decay: float) -> np.ndarray:
    from imagecorruptions.corruptions import plasma_fractal

    h, w = x.shape[:2]
    size = 1 << int(np.ceil(np.log2(max(h, w))))
    top = x.max()
    y = x + strength * plasma_fractal(mapsize=size, wibbledecay=decay)[:h, :w][..., None]
    return y * top / (top + strength)


def _frost(img: np.ndarray, c, scale: float) -> np.ndarray:
    import imagecorruptions

    k = np.random.randint(5)
    files = ["frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg", "frost6.jpg"]
    layer = cv2.imread(str(Path(imagecorruptions.__file__).parent / "frost" / files[k]))
    h, w = img.shape[:2]
    # the reference's scale fits its own size (32 / 64 px); images larger than that, up to the next calibration's
    # range, take the smallest scale whose frost layer still covers them (else there is no crop to draw)
    scale = max(scale, (h + 1) / layer.shape[0], (w + 1) / layer.shape[1])
    layer = cv2.resize(layer, (0, 0), fx=scale, fy=scale)
    y0, x0 = np.random.randint(0, layer.shape[0] - h), np.random.randint(0, layer.shape[1] - w)
    layer = layer[y0 : y0 + h, x0 : x0 + w][..., [2, 1, 0]]
    return np.uint8(np.clip(c[0] * img.astype(np.float64) + c[1] * layer, 0, 255))


def _snow(x: np.ndarray, c) -> np.ndarray:
    h, w = x.shape[:2]
    layer = np.random.normal(size=(h, w), loc=c[0], scale=c[1])
    layer = _clipped_zoom(layer[..., None], c[2])
    layer[layer < c[3]] = 0
    layer = np.uint8(np.clip(layer.squeeze(), 0, 1) * 255)
    layer = _motion(layer.astype(np.float32), c[4], c[5], np.random.uniform(-135, -45))
    layer = (np.round(layer) / 255.0)[..., None]
    gray = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY).reshape(h, w, 1)
    y = c[6] * x + (1 - c[6]) * np.maximum(x, gray * 1.5 + 0.5)
    return y + layer + np.rot90(layer, k=2)


def _spatter(x: np.ndarray, c) -> np.ndarray:
    liquid = _gauss(np.random.normal(size=x.shape[:2], loc=c[0], scale=c[1]), c[2])
    liquid[liquid < c[3]] = 0
    if c[5] == 0:  # water
        liquid = (liquid * 255).astype(np.uint8)
        dist = cv2.distanceTransform(255 - cv2.Canny(liquid, 50, 150), cv2.DIST_L2, 5)
        _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
        dist = cv2.equalizeHist(cv2.blur(dist, (3, 3)).astype(np.uint8))
        dist = cv2.filter2D(dist, cv2.CV_8U, np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]]))
        dist = cv2.blur(dist, (3, 3)).astype(np.float32)
        m = cv2.cvtColor(liquid * dist, cv2.COLOR_GRAY2BGRA)
        m /= np.max(m, axis=(0, 1))
        m *= c[4]
        colour = np.concatenate([v / 255.0 * np.ones_like(m[..., :1]) for v in (175, 238, 238)], axis=2)
        colour = cv2.cvtColor(colour, cv2.COLOR_BGR2BGRA)
        y = cv2.cvtColor(x, cv2.COLOR_BGR2BGRA)
        return cv2.cvtColor(np.clip(y + m * colour, 0, 1), cv2.COLOR_BGRA2BGR)
    m = _gauss(np.where(liquid > c[3], 1, 0).astype(np.float32), c[4])  # mud
    m[m < 0.8] = 0
    colour = np.concatenate([v / 255.0 * np.ones_like(x[..., :1]) for v in (63, 42, 20)], axis=2) * m[..., None]
    return x * (1 - m[..., None]) + colour


def _elastic(x: np.ndarray, c) -> np.ndarray:
    from scipy.ndimage import map_coordinates

    shape = x.shape
    hw = shape[:2]
    centre = np.float32(hw) // 2
    half = min(hw) // 3
    pts1 = np.float32([centre + half, [centre[0] + half, centre[1] - half], centre - half])
    pts2 = pts1 + np.random.uniform(-c[2], c[2], size=pts1.shape).astype(np.float32)
    y = cv2.warpAffine(x, cv2.getAffineTransform(pts1, pts2), hw[::-1], borderMode=cv2.BORDER_REFLECT_101)
    from skimage.filters import gaussian

    dx = (gaussian(np.random.uniform(-1, 1, size=hw), c[1], mode="reflect", truncate=3) * c[0]).astype(np.float32)
    dy = (gaussian(np.random.uniform(-1, 1, size=hw), c[1], mode="reflect", truncate=3) * c[0]).astype(np.float32)
    gx, gy, gz = np.meshgrid(np.arange(shape[1]), np.arange(shape[0]), np.arange(shape[2]))
    idx = np.reshape(gy + dy[..., None], (-1, 1)), np.reshape(gx + dx[..., None], (-1, 1)), np.reshape(gz, (-1, 1))
    return map_coordinates(y, idx, order=1, mode="reflect").reshape(shape)
