"""bench/calibrated.py by value (issue 31): every severity parameter of the CIFAR-10-C and Tiny-ImageNet-C tables,
the frost scale and the storage of each calibration, read by hand from hendrycks/robustness
ImageNet-C/create_c/make_cifar_c.py (ca36008) and make_tinyimagenet_c.py (7a64e6a), the last commits to touch them,
cited file:line; where nsbench stores a parameter in another form (zoom blur's end of np.arange, elastic's fractions
of the image size) the documented rule is pinned against the reference's numbers. Then which severity and which
calibration a corruption reads, and the corruptions whose reference code needs no ImageMagick, transcribed below and
run on the same numpy draws (`multichannel=True` is today's channel_axis=-1; the caller's np.uint8 is the reference's
save step). Motion blur and snow's ImageMagick blur are stood in for by imagecorruptions' kernel (the module's
docstring): there the recorded radius, sigma and angle are pinned. Last, odd sizes and rectangles (glass blur and
elastic follow each axis) and spatter's mud mask at exactly its 0.8 threshold."""
from __future__ import annotations

from io import BytesIO
from pathlib import Path

import sys

import cv2
import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import map_coordinates
from scipy.ndimage import zoom as scizoom
from skimage.color import hsv2rgb, rgb2hsv
from skimage.filters import gaussian
from skimage.util import random_noise

from helpers import make_image
from nsbench.bench import calibrated
from nsbench.bench.calibrated import corrupt_calibrated

# make_cifar_c.py, one `c = [...]` per corruption (function: line)
REF_CIFAR = {
    "gaussian_noise": [0.04, 0.06, .08, .09, .10],  # gaussian_noise: 131
    "shot_noise": [500, 250, 100, 75, 50],  # shot_noise: 138
    "impulse_noise": [.01, .02, .03, .05, .07],  # impulse_noise: 145
    "speckle_noise": [.06, .1, .12, .16, .2],  # speckle_noise: 152
    "gaussian_blur": [.4, .6, 0.7, .8, 1],  # gaussian_blur: 159
    "glass_blur": [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)],  # glass_blur: 167
    "defocus_blur": [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)],  # defocus_blur: 184
    "motion_blur": [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)],  # motion_blur: 198
    "fog": [(.2, 3), (.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)],  # fog: 229
    "frost": [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)],  # frost: 238
    "snow": [(0.1, 0.2, 1, 0.6, 8, 3, 0.95),  # snow: 251
             (0.1, 0.2, 1, 0.5, 10, 4, 0.9),  # 252
             (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),  # 253
             (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),  # 254
             (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)],  # 255
    "spatter": [(0.62, 0.1, 0.7, 0.7, 0.5, 0),  # spatter: 279
                (0.65, 0.1, 0.8, 0.7, 0.5, 0),  # 280
                (0.65, 0.3, 1, 0.69, 0.5, 0),  # 281
                (0.65, 0.1, 0.7, 0.69, 0.6, 1),  # 282
                (0.65, 0.1, 0.5, 0.68, 0.6, 1)],  # 283
    "contrast": [.75, .5, .4, .3, 0.15],  # contrast: 334
    "brightness": [.05, .1, .15, .2, .3],  # brightness: 342
    "saturate": [(0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)],  # saturate: 353
    "jpeg_compression": [80, 65, 58, 50, 40],  # jpeg_compression: 364
    "pixelate": [0.95, 0.9, 0.85, 0.75, 0.65],  # pixelate: 374
}
# zoom_blur: 216-217, c = [np.arange(1, 1.06, 0.01), np.arange(1, 1.11, 0.01), ..., np.arange(1, 1.26, 0.01)]
REF_CIFAR_ZOOM = [np.arange(1, 1.06, 0.01), np.arange(1, 1.11, 0.01), np.arange(1, 1.16, 0.01),
                  np.arange(1, 1.21, 0.01), np.arange(1, 1.26, 0.01)]
# elastic_transform: 384 IMSIZE = 32; 385-389 c = [(IMSIZE*0, IMSIZE*0, IMSIZE*0.08), ...]
REF_CIFAR_ELASTIC = [(32 * 0, 32 * 0, 32 * 0.08), (32 * 0.05, 32 * 0.2, 32 * 0.07), (32 * 0.08, 32 * 0.06, 32 * 0.06),
                     (32 * 0.1, 32 * 0.04, 32 * 0.05), (32 * 0.1, 32 * 0.03, 32 * 0.03)]

# make_tinyimagenet_c.py (function: line)
REF_TINY = {
    "gaussian_noise": [0.04, 0.08, .12, .15, .18],  # gaussian_noise: 249
    "shot_noise": [250, 100, 50, 30, 15],  # shot_noise: 256
    "impulse_noise": [.01, .02, .05, .08, .14],  # impulse_noise: 263
    "speckle_noise": [.15, .2, 0.25, 0.3, 0.35],  # speckle_noise: 270
    "gaussian_blur": [.5, .75, 1, 1.25, 1.5],  # gaussian_blur: 277
    "glass_blur": [(0.1, 1, 1), (0.5, 1, 1), (0.6, 1, 2), (0.7, 2, 1), (0.9, 2, 2)],  # glass_blur: 285
    "defocus_blur": [(0.5, 0.6), (1, 0.1), (1.5, 0.1), (2.5, 0.01), (3, 0.1)],  # defocus_blur: 302
    "motion_blur": [(10, 1), (10, 1.5), (10, 2), (10, 2.5), (12, 3)],  # motion_blur: 316
    "fog": [(.4, 3), (.7, 3), (1, 2.5), (1.5, 2), (2, 1.75)],  # fog: 347
    "frost": [(1, 0.3), (0.9, 0.4), (0.8, 0.45), (0.75, 0.5), (0.7, 0.55)],  # frost: 356
    "snow": [(0.1, 0.2, 1, 0.6, 8, 3, 0.8),  # snow: 369
             (0.1, 0.2, 1, 0.5, 10, 4, 0.8),  # 370
             (0.15, 0.3, 1.75, 0.55, 10, 4, 0.7),  # 371
             (0.25, 0.3, 2.25, 0.6, 12, 6, 0.65),  # 372
             (0.3, 0.3, 1.25, 0.65, 14, 12, 0.6)],  # 373
    "spatter": [(0.62, 0.1, 0.7, 0.7, 0.6, 0),  # spatter: 397
                (0.65, 0.1, 0.8, 0.7, 0.6, 0),  # 398
                (0.65, 0.3, 1, 0.69, 0.6, 0),  # 399
                (0.65, 0.1, 0.7, 0.68, 0.6, 1),  # 400
                (0.65, 0.1, 0.5, 0.67, 0.6, 1)],  # 401
    "contrast": [.4, .3, .2, .1, 0.05],  # contrast: 452
    "brightness": [.1, .2, .3, .4, .5],  # brightness: 460
    "saturate": [(0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (30, 0.2)],  # saturate: 471
    "jpeg_compression": [65, 58, 50, 40, 25],  # jpeg_compression: 482
    "pixelate": [0.9, 0.8, 0.7, 0.6, 0.5],  # pixelate: 492
}
# zoom_blur: 334-335, the same five np.arange(1, END, 0.01) as make_cifar_c.py
REF_TINY_ZOOM = [np.arange(1, 1.06, 0.01), np.arange(1, 1.11, 0.01), np.arange(1, 1.16, 0.01),
                 np.arange(1, 1.21, 0.01), np.arange(1, 1.26, 0.01)]
# elastic_transform: 502 IMSIZE = 64; 503-507
REF_TINY_ELASTIC = [(64 * 0, 64 * 0, 64 * 0.08), (64 * 0.05, 64 * 0.3, 64 * 0.06), (64 * 0.1, 64 * 0.08, 64 * 0.06),
                    (64 * 0.1, 64 * 0.03, 64 * 0.03), (64 * 0.16, 64 * 0.03, 64 * 0.02)]

REF = {"cifar-10-c": (REF_CIFAR, REF_CIFAR_ZOOM, REF_CIFAR_ELASTIC, 32),
       "tiny-imagenet-c": (REF_TINY, REF_TINY_ZOOM, REF_TINY_ELASTIC, 64)}
# frost(): make_cifar_c.py:242 cv2.resize(frost, (0, 0), fx=0.2, fy=0.2); make_tinyimagenet_c.py:360 fx=0.3, fy=0.3
REF_FROST_SCALE = {"cifar-10-c": 0.2, "tiny-imagenet-c": 0.3}
# make_tinyimagenet_c.py:118 Image.fromarray(np.uint8(img)).save(save_path, quality=85, optimize=True) under the
# source's .JPEG name; make_cifar_c.py:460-461 np.save(..., np.array(cifar_c).astype(np.uint8)): lossless
REF_SAVED_AS = {"cifar-10-c": None, "tiny-imagenet-c": 85}


# ------------------------------------------------------------------------------------------------- the tables

@pytest.mark.parametrize("calibration", list(REF))
def test_every_severity_parameter_is_the_reference_generators_own(calibration):
    ref, zoom, elastic, imsize = REF[calibration]
    table = calibrated.TABLES[calibration]
    assert sorted(table) == sorted([*ref, "zoom_blur", "elastic_transform"])
    for name, want in ref.items():
        assert table[name] == want, (calibration, name)
        assert [type(v) for v in table[name]] == [type(v) for v in want], (calibration, name)
    # zoom_blur holds END of np.arange(1, END, 0.01) (the module's comment): the same zoom factors
    for severity in range(5):
        np.testing.assert_array_equal(np.arange(1, table["zoom_blur"][severity], 0.01), zoom[severity])
    # elastic_transform holds fractions of the image size (the docstring: "pixel dimensions that the reference
    # hard-codes follow the actual image size"): at the reference's own size they are its numbers
    for severity in range(5):
        assert [v * imsize for v in table["elastic_transform"][severity]] == pytest.approx(elastic[severity])
    assert calibrated.FROST_SCALE == REF_FROST_SCALE and calibrated.SAVED_AS == REF_SAVED_AS


@pytest.mark.parametrize("calibration", list(REF))
def test_severity_s_reads_the_s_th_parameter(calibration):
    ref = REF[calibration][0]
    for name in ref:
        assert [calibrated.params(calibration, name, s) for s in range(1, 6)] == ref[name], name


def test_the_calibration_is_cifar_up_to_48_px_tiny_up_to_128_and_imagenet_above():
    """calibration_for's docstring (and docs): CIFAR-10-C up to 48 px, Tiny-ImageNet-C up to 128 px."""
    from nsbench.bench import perturbation_sets

    want = {1: "cifar-10-c", 32: "cifar-10-c", 48: "cifar-10-c", 49: "tiny-imagenet-c", 64: "tiny-imagenet-c",
            128: "tiny-imagenet-c", 129: "imagenet-c", 224: "imagenet-c"}
    assert {s: calibrated.calibration_for(s) for s in want} == want
    assert {s: perturbation_sets.calibration_for(s) for s in want} == {s: c[:-2] + "-p" for s, c in want.items()}


def test_a_tiny_imagenet_c_image_is_stored_as_jpeg_85_and_a_cifar_10_c_one_as_is():
    img = make_image(2, np.random.default_rng(0), 64)
    assert calibrated.as_saved(img, "cifar-10-c") is img and calibrated.as_saved(img, "imagenet-c") is img
    buf = BytesIO()
    Image.fromarray(np.uint8(img)).save(buf, "JPEG", quality=85, optimize=True)  # make_tinyimagenet_c.py:118
    want = np.asarray(Image.open(buf).convert("RGB"))
    got = calibrated.as_saved(img, "tiny-imagenet-c")
    np.testing.assert_array_equal(got, want)
    assert not np.array_equal(got, img)


# ------------------------------------------------------------------------ the reference code, transcribed

def reference_clipped_zoom(img, zoom_factor):  # make_cifar_c.py:112-122 (make_tinyimagenet_c.py the same)
    h = img.shape[0]
    ch = int(np.ceil(h / zoom_factor))
    top = (h - ch) // 2
    img = scizoom(img[top:top + ch, top:top + ch], (zoom_factor, zoom_factor, 1), order=1)
    trim_top = (img.shape[0] - h) // 2
    return img[trim_top:trim_top + h, trim_top:trim_top + h]


def reference_disk(radius, alias_blur=0.1, dtype=np.float32):  # make_cifar_c.py:34-46
    if radius <= 8:
        L = np.arange(-8, 8 + 1)
        ksize = (3, 3)
    else:
        L = np.arange(-radius, radius + 1)
        ksize = (5, 5)
    X, Y = np.meshgrid(L, L)
    aliased_disk = np.array((X ** 2 + Y ** 2) <= radius ** 2, dtype=dtype)
    aliased_disk /= np.sum(aliased_disk)
    return cv2.GaussianBlur(aliased_disk, ksize=ksize, sigmaX=alias_blur)


def reference_plasma_fractal(mapsize=32, wibbledecay=3):  # make_cifar_c.py:63-109 (np.float_ is np.float64)
    assert (mapsize & (mapsize - 1) == 0)
    maparray = np.empty((mapsize, mapsize), dtype=np.float64)
    maparray[0, 0] = 0
    stepsize = mapsize
    wibble = 100

    def wibbledmean(array):
        return array / 4 + wibble * np.random.uniform(-wibble, wibble, array.shape)

    def fillsquares():
        cornerref = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        squareaccum = cornerref + np.roll(cornerref, shift=-1, axis=0)
        squareaccum += np.roll(squareaccum, shift=-1, axis=1)
        maparray[stepsize // 2:mapsize:stepsize, stepsize // 2:mapsize:stepsize] = wibbledmean(squareaccum)

    def filldiamonds():
        mapsize = maparray.shape[0]
        drgrid = maparray[stepsize // 2:mapsize:stepsize, stepsize // 2:mapsize:stepsize]
        ulgrid = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        ldrsum = drgrid + np.roll(drgrid, 1, axis=0)
        lulsum = ulgrid + np.roll(ulgrid, -1, axis=1)
        ltsum = ldrsum + lulsum
        maparray[0:mapsize:stepsize, stepsize // 2:mapsize:stepsize] = wibbledmean(ltsum)
        tdrsum = drgrid + np.roll(drgrid, 1, axis=1)
        tulsum = ulgrid + np.roll(ulgrid, -1, axis=0)
        ttsum = tdrsum + tulsum
        maparray[stepsize // 2:mapsize:stepsize, 0:mapsize:stepsize] = wibbledmean(ttsum)

    while stepsize >= 2:
        fillsquares()
        filldiamonds()
        stepsize //= 2
        wibble /= wibbledecay

    maparray -= maparray.min()
    return maparray / maparray.max()


def reference(name: str, img: np.ndarray, c, size: int) -> np.ndarray:
    """make_cifar_c.py's `name`(x, severity) with `c` its parameter and `size` its hard-coded 32 (64 in
    make_tinyimagenet_c.py), line numbers of make_cifar_c.py; returns what the generator saved (np.uint8)."""
    x = np.array(img) / 255.
    if name == "gaussian_noise":  # 133-134
        out = np.clip(x + np.random.normal(size=x.shape, scale=c), 0, 1) * 255
    elif name == "shot_noise":  # 140-141
        out = np.clip(np.random.poisson(x * c) / c, 0, 1) * 255
    elif name == "speckle_noise":  # 154-155
        out = np.clip(x + x * np.random.normal(size=x.shape, scale=c), 0, 1) * 255
    elif name == "gaussian_blur":  # 161-162
        out = np.clip(gaussian(x, sigma=c, channel_axis=-1), 0, 1) * 255
    elif name == "defocus_blur":  # 186-194
        kernel = reference_disk(radius=c[0], alias_blur=c[1])
        channels = np.array([cv2.filter2D(x[:, :, d], -1, kernel) for d in range(3)]).transpose((1, 2, 0))
        out = np.clip(channels, 0, 1) * 255
    elif name == "zoom_blur":  # 219-225, c the np.arange of zoom factors
        x = x.astype(np.float32)
        acc = np.zeros_like(x)
        for zoom_factor in c:
            acc += reference_clipped_zoom(x, zoom_factor)
        out = np.clip((x + acc) / (len(c) + 1), 0, 1) * 255
    elif name == "fog":  # 231-234 (plasma_fractal's mapsize is 32, 64 in make_tinyimagenet_c.py:181)
        max_val = x.max()
        x += c[0] * reference_plasma_fractal(mapsize=size, wibbledecay=c[1])[:size, :size][..., np.newaxis]
        out = np.clip(x * max_val / (max_val + c[0]), 0, 1) * 255
    elif name == "contrast":  # 336-338
        means = np.mean(x, axis=(0, 1), keepdims=True)
        out = np.clip((x - means) * c + means, 0, 1) * 255
    elif name == "brightness":  # 344-349
        x = rgb2hsv(x)
        x[:, :, 2] = np.clip(x[:, :, 2] + c, 0, 1)
        out = np.clip(hsv2rgb(x), 0, 1) * 255
    elif name == "saturate":  # 355-360
        x = rgb2hsv(x)
        x[:, :, 1] = np.clip(x[:, :, 1] * c[0] + c[1], 0, 1)
        out = np.clip(hsv2rgb(x), 0, 1) * 255
    elif name == "jpeg_compression":  # 366-370
        output = BytesIO()
        Image.fromarray(img).save(output, 'JPEG', quality=c)
        out = Image.open(output)
    elif name == "pixelate":  # 376-379
        out = Image.fromarray(img).resize((int(size * c), int(size * c)), Image.BOX).resize((size, size), Image.BOX)
    elif name == "frost":  # 239-247, the photographs as imagecorruptions ships them
        import imagecorruptions

        idx = np.random.randint(5)
        filename = ['frost1.png', 'frost2.png', 'frost3.png', 'frost4.jpg', 'frost5.jpg', 'frost6.jpg'][idx]
        frost = cv2.imread(str(Path(imagecorruptions.__file__).parent / "frost" / filename))
        scale = REF_FROST_SCALE["cifar-10-c" if size == 32 else "tiny-imagenet-c"]
        frost = cv2.resize(frost, (0, 0), fx=scale, fy=scale)
        x_start, y_start = np.random.randint(0, frost.shape[0] - size), np.random.randint(0, frost.shape[1] - size)
        frost = frost[x_start:x_start + size, y_start:y_start + size][..., [2, 1, 0]]
        out = np.clip(c[0] * np.array(img) + c[1] * frost, 0, 255)
    elif name == "spatter":  # 284-330
        x = np.array(img, dtype=np.float32) / 255.
        liquid_layer = np.random.normal(size=x.shape[:2], loc=c[0], scale=c[1])
        liquid_layer = gaussian(liquid_layer, sigma=c[2])
        liquid_layer[liquid_layer < c[3]] = 0
        if c[5] == 0:
            liquid_layer = (liquid_layer * 255).astype(np.uint8)
            dist = 255 - cv2.Canny(liquid_layer, 50, 150)
            dist = cv2.distanceTransform(dist, cv2.DIST_L2, 5)
            _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
            dist = cv2.blur(dist, (3, 3)).astype(np.uint8)
            dist = cv2.equalizeHist(dist)
            ker = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])
            dist = cv2.filter2D(dist, cv2.CV_8U, ker)
            dist = cv2.blur(dist, (3, 3)).astype(np.float32)
            m = cv2.cvtColor(liquid_layer * dist, cv2.COLOR_GRAY2BGRA)
            m /= np.max(m, axis=(0, 1))
            m *= c[4]
            color = np.concatenate((175 / 255. * np.ones_like(m[..., :1]), 238 / 255. * np.ones_like(m[..., :1]),
                                    238 / 255. * np.ones_like(m[..., :1])), axis=2)
            color = cv2.cvtColor(color, cv2.COLOR_BGR2BGRA)
            x = cv2.cvtColor(x, cv2.COLOR_BGR2BGRA)
            out = cv2.cvtColor(np.clip(x + m * color, 0, 1), cv2.COLOR_BGRA2BGR) * 255
        else:
            m = np.where(liquid_layer > c[3], 1, 0)
            m = gaussian(m.astype(np.float32), sigma=c[4])
            m[m < 0.8] = 0
            color = np.concatenate((63 / 255. * np.ones_like(x[..., :1]), 42 / 255. * np.ones_like(x[..., :1]),
                                    20 / 255. * np.ones_like(x[..., :1])), axis=2)
            color *= m[..., np.newaxis]
            x *= (1 - m[..., np.newaxis])
            out = np.clip(x + color, 0, 1) * 255
    elif name == "elastic_transform":  # 391-413, c in pixels
        image = np.array(img, dtype=np.float32) / 255.
        shape = image.shape
        shape_size = shape[:2]
        center_square = np.float32(shape_size) // 2
        square_size = min(shape_size) // 3
        pts1 = np.float32([center_square + square_size, [center_square[0] + square_size, center_square[1] - square_size],
                           center_square - square_size])
        pts2 = pts1 + np.random.uniform(-c[2], c[2], size=pts1.shape).astype(np.float32)
        M = cv2.getAffineTransform(pts1, pts2)
        image = cv2.warpAffine(image, M, shape_size[::-1], borderMode=cv2.BORDER_REFLECT_101)
        dx = (gaussian(np.random.uniform(-1, 1, size=shape[:2]), c[1], mode='reflect', truncate=3) * c[0]).astype(np.float32)
        dy = (gaussian(np.random.uniform(-1, 1, size=shape[:2]), c[1], mode='reflect', truncate=3) * c[0]).astype(np.float32)
        dx, dy = dx[..., np.newaxis], dy[..., np.newaxis]
        gx, gy, gz = np.meshgrid(np.arange(shape[1]), np.arange(shape[0]), np.arange(shape[2]))
        indices = np.reshape(gy + dy, (-1, 1)), np.reshape(gx + dx, (-1, 1)), np.reshape(gz, (-1, 1))
        out = np.clip(map_coordinates(image, indices, order=1, mode='reflect').reshape(shape), 0, 1) * 255
    else:
        raise KeyError(name)
    return np.uint8(out)


def photo(size: int) -> np.ndarray:
    """A smooth-ish image with edges (blur, fog and spatter have something to act on)."""
    img = make_image(5, np.random.default_rng(size), size).astype(float)
    return np.uint8(np.clip(cv2.GaussianBlur(img, (0, 0), 1.0) + 20, 0, 255))


EXACT = ["defocus_blur", "gaussian_noise", "shot_noise", "speckle_noise", "contrast", "brightness", "saturate", "jpeg_compression",
         "pixelate", "frost", "gaussian_blur", "zoom_blur", "spatter", "elastic_transform"]
# float32 where the reference computes in float64 (fog's plasma_fractal is imagecorruptions' float32 one): within one
# grey level on 1% of pixels
CLOSE = ["fog"]
LOOSE: dict[str, float] = {}


@pytest.mark.parametrize("calibration", list(REF))
@pytest.mark.parametrize("name", EXACT + CLOSE)
def test_each_corruption_is_the_reference_code_on_the_same_draws(calibration, name):
    ref, zoom, elastic, size = REF[calibration]
    img = photo(size)
    for severity in range(1, 6):
        c = zoom[severity - 1] if name == "zoom_blur" else elastic[severity - 1] if name == "elastic_transform" \
            else ref[name][severity - 1]
        np.random.seed(100 + severity)
        want = reference(name, img, c, size)
        np.random.seed(100 + severity)
        got = corrupt_calibrated(img, name, severity, calibration, 100 + severity)
        assert got.dtype == np.uint8 and got.shape == img.shape
        diff = np.abs(got.astype(int) - want.astype(int))
        if name in EXACT:
            assert diff.max() == 0, (name, severity)
        else:
            share = LOOSE.get(name, 0.01)
            assert diff.max() <= 1 and (diff > 0).mean() < share, (name, severity, diff.max(), (diff > 0).mean())


@pytest.mark.parametrize("calibration", list(REF))
def test_impulse_noise_is_salt_and_pepper_of_the_severitys_amount(calibration):
    """impulse_noise (make_cifar_c.py:147): sk.util.random_noise(x, mode='s&p', amount=c); the generator is the
    seed passed (the reference's skimage drew from numpy's global one, which the builder seeds per image)."""
    ref, _, _, size = REF[calibration]
    img = photo(size)
    for severity in range(1, 6):
        want = np.uint8(np.clip(random_noise(img / 255., mode="s&p", amount=ref["impulse_noise"][severity - 1],
                                             rng=7), 0, 1) * 255)
        np.testing.assert_array_equal(corrupt_calibrated(img, "impulse_noise", severity, calibration, 7), want)


@pytest.fixture
def motions(monkeypatch):
    """calibrated._motion replaced by an identity that records (radius, sigma, angle)."""
    calls = []

    def motion(x, radius, sigma, angle):
        calls.append((radius, sigma, angle))
        return np.asarray(x, dtype=np.float32)

    monkeypatch.setattr(calibrated, "_motion", motion)
    return calls


@pytest.mark.parametrize("calibration", list(REF))
def test_motion_blur_asks_for_the_references_radius_sigma_and_a_uniform_angle(motions, calibration):
    """motion_blur (make_cifar_c.py:204): x.motion_blur(radius=c[0], sigma=c[1], angle=np.random.uniform(-45, 45))."""
    ref, _, _, size = REF[calibration]
    img = photo(size)
    for severity in range(1, 6):
        np.random.seed(severity)
        angle = np.random.uniform(-45, 45)
        np.random.seed(severity)
        out = corrupt_calibrated(img, "motion_blur", severity, calibration, severity)
        assert motions[-1] == (*ref["motion_blur"][severity - 1], angle)
        np.testing.assert_array_equal(out, img)  # the identity blur returns the image


def reference_snow(img: np.ndarray, c, size: int, motion) -> np.ndarray:
    """snow (make_cifar_c.py:257-275), ImageMagick's motion blur replaced by `motion` (its 8-bit PNG output kept:
    the blurred layer is rounded to uint8 before / 255)."""
    x = np.array(img, dtype=np.float32) / 255.
    snow_layer = np.random.normal(size=x.shape[:2], loc=c[0], scale=c[1])
    snow_layer = reference_clipped_zoom(snow_layer[..., np.newaxis], c[2])
    snow_layer[snow_layer < c[3]] = 0
    snow_layer = (np.clip(snow_layer.squeeze(), 0, 1) * 255).astype(np.uint8)
    snow_layer = np.round(motion(snow_layer.astype(np.float32), c[4], c[5], np.random.uniform(-135, -45))) / 255.
    snow_layer = snow_layer[..., np.newaxis]
    x = c[6] * x + (1 - c[6]) * np.maximum(x, cv2.cvtColor(x, cv2.COLOR_RGB2GRAY).reshape(size, size, 1) * 1.5 + 0.5)
    return np.uint8(np.clip(x + snow_layer + np.rot90(snow_layer, k=2), 0, 1) * 255)


@pytest.mark.parametrize("calibration", list(REF))
def test_snow_is_the_reference_with_its_motion_blur_recorded(motions, calibration):
    ref, _, _, size = REF[calibration]
    img = photo(size)
    for severity in range(1, 6):
        c = ref["snow"][severity - 1]
        np.random.seed(severity)
        want = reference_snow(img, c, size, lambda x, r, s, a: x)
        np.random.seed(severity)
        np.random.normal(size=(size, size))
        angle = np.random.uniform(-135, -45)
        np.random.seed(severity)
        got = corrupt_calibrated(img, "snow", severity, calibration, severity)
        assert motions[-1] == (c[4], c[5], angle)
        diff = np.abs(got.astype(int) - want.astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 0.01, (severity, diff.max())


@pytest.mark.parametrize("calibration", list(REF))
def test_snow_keeps_a_flake_exactly_at_the_threshold(motions, monkeypatch, calibration):
    """make_cifar_c.py:261 snow_layer[snow_layer < c[3]] = 0: a layer exactly at c[3] stays. With zoom and blur
    identities and every draw c[3], each pixel gets twice uint8(255 c[3]) / 255 >= 254 / 255 over a base of at least
    0.05 * 0.5: white."""
    monkeypatch.setattr(calibrated, "_clipped_zoom", lambda img, factor: img)
    ref, _, _, size = REF[calibration]
    for severity in range(1, 6):
        level = ref["snow"][severity - 1][3]
        monkeypatch.setattr(np.random, "normal", lambda size, loc, scale: np.full(size, level))
        out = corrupt_calibrated(np.zeros((size, size, 3), np.uint8), "snow", severity, calibration, 0)
        assert (out == 255).all(), severity


@pytest.mark.parametrize("calibration", list(REF))
def test_spatter_on_chosen_liquid_layers_is_the_references(monkeypatch, calibration):
    """spatter (make_cifar_c.py:286-330) with the liquid's blur an identity (skimage's gaussian in the transcription,
    calibrated._gauss in nsbench) and two liquid layers: exactly c[3] everywhere (kept: `< c[3]` zeroes, the mud's
    `> c[3]` marks), and a half plane above it, whose distance transform (truncated at 20) reaches 31 px."""
    monkeypatch.setattr(calibrated, "_gauss", lambda x, sigma: x)
    monkeypatch.setattr(sys.modules[__name__], "gaussian", lambda x, sigma, **kw: x)
    ref, _, _, size = REF[calibration]
    img = photo(size)
    for severity in range(1, 6):
        c = ref["spatter"][severity - 1]
        half = np.where(np.arange(size) < size // 2, c[3] + 0.2, 0.0)[None, :].repeat(size, 0)
        for layer in (np.full((size, size), c[3]), half):
            monkeypatch.setattr(np.random, "normal", lambda size, loc, scale: layer.copy())
            with np.errstate(invalid="ignore"):
                want = reference("spatter", img, c, size)
                got = corrupt_calibrated(img, "spatter", severity, calibration, 0)
            np.testing.assert_array_equal(got, want, err_msg=f"severity {severity}")


def test_frost_above_the_references_size_takes_the_smallest_scale_that_covers_the_image():
    """frost() at the reference's size uses its scale (0.2 / 0.3); a larger image served by the calibration (up to
    128 px for Tiny-ImageNet-C) takes the smallest scale whose layer still leaves a crop to draw (the code's comment):
    max(scale, (h + 1) / layer height, (w + 1) / layer width); then the reference's crop and blend
    (make_tinyimagenet_c.py:357-365, 64 there being the image size)."""
    import imagecorruptions

    folder = Path(imagecorruptions.__file__).parent / "frost"
    files = ['frost1.png', 'frost2.png', 'frost3.png', 'frost4.jpg', 'frost5.jpg', 'frost6.jpg']
    size, c = 128, REF_TINY["frost"][4]
    img = photo(size)
    bound = 0
    for seed in range(8):
        np.random.seed(seed)
        frost = cv2.imread(str(folder / files[np.random.randint(5)]))
        scale = max(0.3, (size + 1) / frost.shape[0], (size + 1) / frost.shape[1])
        bound += scale > 0.3
        frost = cv2.resize(frost, (0, 0), fx=scale, fy=scale)
        x_start, y_start = np.random.randint(0, frost.shape[0] - size), np.random.randint(0, frost.shape[1] - size)
        frost = frost[x_start:x_start + size, y_start:y_start + size][..., [2, 1, 0]]
        want = np.uint8(np.clip(c[0] * np.array(img) + c[1] * frost, 0, 255))
        np.random.seed(seed)
        np.testing.assert_array_equal(corrupt_calibrated(img, "frost", 5, "tiny-imagenet-c", seed), want)
    assert bound  # some picture is too small at 0.3 for 128 px


# --------------------------------------------------------------- odd sizes and rectangles (issue 31, survivors)

def reference_glass_blur_per_axis(img: np.ndarray, c) -> np.ndarray:
    """glass_blur (make_cifar_c.py:170-181) with its hard-coded 32 written per axis: rows over the image's height,
    columns over its width (the numpy views make the "swap" a copy, as in tests/bench/test_reference_fidelity.py)."""
    x = np.uint8(gaussian(np.array(img) / 255., sigma=c[0], channel_axis=-1) * 255)
    for i in range(c[2]):
        for h in range(img.shape[0] - c[1], c[1], -1):
            for w in range(img.shape[1] - c[1], c[1], -1):
                dx, dy = np.random.randint(-c[1], c[1], size=(2,))
                h_prime, w_prime = h + dy, w + dx
                # swap
                x[h, w], x[h_prime, w_prime] = x[h_prime, w_prime], x[h, w]
    return np.clip(gaussian(x / 255., sigma=c[0], channel_axis=-1), 0, 1) * 255


@pytest.mark.parametrize("calibration, shape", [("cifar-10-c", (40, 32)), ("cifar-10-c", (32, 40)),
                                                ("tiny-imagenet-c", (72, 56))])
def test_glass_blur_on_a_rectangle_moves_rows_over_the_height_and_columns_over_the_width(calibration, shape):
    """The module's rule "pixel dimensions that the reference hard-codes follow the actual image size", per axis:
    the reference loop with range(H - d, d, -1) over rows and range(W - d, d, -1) over columns, same draws."""
    ref, _, _, _ = REF[calibration]
    img = photo(max(shape))[: shape[0], : shape[1]]
    for severity in range(1, 6):
        np.random.seed(severity)
        want = np.uint8(reference_glass_blur_per_axis(img, ref["glass_blur"][severity - 1]))
        np.random.seed(severity)
        got = corrupt_calibrated(img, "glass_blur", severity, calibration, severity)
        np.testing.assert_array_equal(got, want, err_msg=f"{shape} severity {severity}")


@pytest.mark.parametrize("calibration, shape", [("cifar-10-c", (33, 33)), ("cifar-10-c", (31, 31)),
                                                ("cifar-10-c", (40, 32)), ("cifar-10-c", (32, 40)),
                                                ("tiny-imagenet-c", (65, 65)), ("tiny-imagenet-c", (57, 70))])
def test_elastic_on_odd_sizes_and_rectangles_is_the_reference_code(calibration, shape):
    """elastic_transform (make_cifar_c.py:391-413) is written over shape[:2]: center_square = np.float32(shape_size)
    // 2 (floored on odd sizes), pts1's middle point [center[0] + s, center[1] - s], warpAffine's dsize
    shape_size[::-1] (width, height), meshgrid(arange(W), arange(H), arange(C)). Its pixel constants (IMSIZE * ...)
    follow the image's height (the module's docstring; the fractions are pinned above)."""
    img = photo(max(shape))[: shape[0], : shape[1]]
    for severity in range(1, 6):
        c = [v * shape[0] for v in calibrated.params(calibration, "elastic_transform", severity)]
        np.random.seed(200 + severity)
        want = reference("elastic_transform", img, c, None)
        np.random.seed(200 + severity)
        got = corrupt_calibrated(img, "elastic_transform", severity, calibration, 200 + severity)
        assert got.shape == img.shape
        np.testing.assert_array_equal(got, want, err_msg=f"{shape} severity {severity}")


def blur_then(mask: np.ndarray):
    """A stand-in blur that returns its first input as it is (spatter's liquid layer) and `mask` for the second
    call (the mud's blurred mask)."""
    calls = iter([None, mask])

    def blur(x, sigma, **kw):
        m = next(calls)
        return x if m is None else m

    return blur


@pytest.mark.parametrize("calibration", list(REF))
def test_spatter_mud_keeps_a_mask_of_exactly_0_8(monkeypatch, calibration):
    """make_cifar_c.py:322 m[m < 0.8] = 0 compares in float32 (the Python float takes the array's dtype), so a
    blurred mud mask of exactly float32 0.8 stays: every pixel x (1 - 0.8) + (63, 42, 20) / 255 * 0.8 (323-328).
    The liquid's blur an identity, the mask's blur returns 0.8 everywhere, in the transcription and in nsbench."""
    ref, _, _, size = REF[calibration]
    img = photo(size)
    for severity in [s for s in range(1, 6) if ref["spatter"][s - 1][5] == 1]:
        c = ref["spatter"][severity - 1]
        for module, name in ((sys.modules[__name__], "gaussian"), (calibrated, "_gauss")):
            monkeypatch.setattr(module, name, blur_then(np.full((size, size), 0.8, np.float32)))
        np.random.seed(severity)
        want = reference("spatter", img, c, size)
        np.random.seed(severity)
        got = corrupt_calibrated(img, "spatter", severity, calibration, severity)
        np.testing.assert_array_equal(got, want, err_msg=f"severity {severity}")
        assert (want != img).mean() > 0.9  # the mask was kept: mud over the image
