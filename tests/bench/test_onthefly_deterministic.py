"""The deterministic on-the-fly corruptions against their references (issue 34's bar: within one grey level on at least
99% of pixels, per corruption and severity): 32 px images under the CIFAR-10-C and ImageNet-C calibrations, 224 px
photographs under ImageNet-C, the reference called as nsbench calls it (corruption_sets.corrupt_one); and one image's
result the same whatever batch it comes in."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from nsbench.bench.corruption_sets import corrupt_one
from nsbench.bench.onthefly import corrupt_batch
from nsbench.bench.onthefly.deterministic import OPS, _nearest_index

NAMES = sorted(OPS)
SETTINGS = [(32, "cifar-10-c"), (32, "imagenet-c"), (224, "imagenet-c")]


def _photo(name: str, size: int) -> np.ndarray:
    """A scikit-image sample photograph, centre-cropped square and resized to size x size (PIL bilinear)."""
    import skimage.data

    im = Image.fromarray(getattr(skimage.data, name)())
    w, h = im.size
    m = min(w, h)
    box = ((w - m) // 2, (h - m) // 2, (w - m) // 2 + m, (h - m) // 2 + m)
    return np.asarray(im.crop(box).resize((size, size), Image.BILINEAR))


@pytest.fixture(scope="module")
def photos() -> dict[int, np.ndarray]:
    """Two photographs at 32 and 64 px, one at 224 px (the 224-px references take most of this file's time)."""
    small = {size: np.stack([_photo(n, size) for n in ("astronaut", "chelsea")]) for size in (32, 64)}
    return {**small, 224: _photo("chelsea", 224)[None]}


@pytest.mark.parametrize("size,calibration", SETTINGS)
@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("name", NAMES)
def test_within_one_grey_level_of_the_reference(photos, name, severity, size, calibration):
    imgs = photos[size]
    ref = np.stack([corrupt_one(img, name, severity, 0, calibration) for img in imgs]).astype(int)
    ours = corrupt_batch(torch.from_numpy(imgs), name, severity, [0] * len(imgs), calibration).numpy().astype(int)
    close = (np.abs(ours - ref) <= 1).mean()
    assert close >= 0.99, f"{name}-{severity} at {size} px ({calibration}): {close:.4f} within one grey level"


def test_tiny_imagenet_c_as_saved(photos):
    """Tiny-ImageNet-C's reference stores every image as JPEG quality 85: corrupt_batch does too (as_saved)."""
    imgs = photos[64]
    for name in NAMES:
        ref = np.stack([corrupt_one(img, name, 3, 0, "tiny-imagenet-c") for img in imgs]).astype(int)
        out = corrupt_batch(torch.from_numpy(imgs), name, 3, [0, 0], "tiny-imagenet-c")
        assert (np.abs(out.numpy().astype(int) - ref) <= 1).mean() >= 0.99, name


@pytest.mark.parametrize("size,calibration", [(32, "cifar-10-c"), (64, "imagenet-c")])
def test_an_image_does_not_depend_on_its_batch(photos, size, calibration):
    imgs = np.concatenate([photos[size], photos[size][:, ::-1]])
    batch = torch.from_numpy(np.concatenate([imgs, imgs[:, :, ::-1]])[:4].copy())  # 4 images
    for name in NAMES:
        together = corrupt_batch(batch, name, 5, [0] * 4, calibration)
        for k in range(4):
            alone = corrupt_batch(batch[k : k + 1], name, 5, [0], calibration)
            assert torch.equal(together[k], alone[0]), f"{name}: image {k} differs alone"


def test_nearest_upscale_table_is_pillows():
    """Pillow's NEAREST resize accumulates its source position in floating point; the table reproduces it."""
    for small, big in [(134, 224), (112, 224), (89, 224), (67, 224), (56, 224), (19, 32), (8, 32), (16, 32)]:
        ramp = Image.fromarray(np.arange(small, dtype=np.int32)[None].repeat(2, 0))
        want = np.asarray(ramp.resize((big, 2), Image.NEAREST))[0]
        assert np.array_equal(_nearest_index(small, big), want), (small, big)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_the_same_images_on_the_gpu(photos):
    imgs = torch.from_numpy(photos[224])
    for name in NAMES:
        for severity in (1, 5):
            cpu = corrupt_batch(imgs, name, severity, [0]).to(torch.int32)
            gpu = corrupt_batch(imgs.cuda(), name, severity, [0]).cpu().to(torch.int32)
            assert ((cpu - gpu).abs() <= 1).float().mean() >= 0.999, (name, severity)


# ---- the building blocks, exactly

def test_defocus_disk_is_imagecorruptions_disk():
    """Every (radius, alias_blur) of the three calibrations' tables, and radii around the reference's 8-px switch to a
    wider span and a 5 x 5 anti-aliasing blur, bit for bit."""
    from imagecorruptions.corruptions import disk

    from nsbench.bench import calibrated
    from nsbench.bench.onthefly.deterministic import IMAGENET, _disk

    pairs = {tuple(p) for p in IMAGENET["defocus_blur"]}
    pairs |= {tuple(calibrated.params(c, "defocus_blur", s)) for c in calibrated.TABLES for s in range(1, 6)}
    pairs |= {(r, a) for r in (7, 7.5, 8, 8.5, 9, 12) for a in (0.1, 0.5)}
    for radius, alias in sorted(pairs):
        want = disk(radius, alias_blur=alias)
        got = _disk(radius, alias)
        assert got.dtype == want.dtype and np.array_equal(got, want), (radius, alias)


def test_fft_size_is_the_least_5_smooth_number_not_below_n():
    from nsbench.bench.onthefly.deterministic import _fft_size

    def smooth(m):
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        return m == 1

    for n in range(1, 400):
        assert _fft_size(n) == next(m for m in range(n, 4 * n + 1) if smooth(m)), n


def test_box_resize_is_pillows_box_filter_bit_for_bit():
    """Pillow's BOX resampling (precomputed 8-bit fixed-point coefficients, a horizontal pass rounded to uint8, then
    a vertical one), pixelate's first step: every pair of sizes from 1 to 36 px, down and up, on random images, and a
    few 224-px ones."""
    from nsbench.bench.onthefly.deterministic import _box_resize

    rng = np.random.default_rng(0)
    pairs = [(a, b) for a in range(1, 37) for b in range(1, 37)] + [(224, b) for b in (56, 67, 112, 134, 150, 179)]
    for size_in, size_out in pairs:
        img = rng.integers(0, 256, (size_in, size_in, 3), np.uint8)
        want = np.asarray(Image.fromarray(img).resize((size_out, size_out), Image.BOX))
        got = _box_resize(torch.from_numpy(img)[None].to(torch.float64), size_out, size_out)[0]
        assert np.array_equal(got.numpy().astype(np.uint8), want), (size_in, size_out)


def test_float64_results_are_handed_on_as_float32_rounded_down():
    """_out's contract: np.clip(y, 0, 1) * 255 as float32, never above the float64 value, so that truncating it to uint8
    truncates the float64 value alike (a float32 rounded to nearest can cross an integer)."""
    from nsbench.bench.onthefly.deterministic import _out

    y = torch.tensor([0.0, 1.0, 1.5, -0.2, 0.5, 77.99999999 / 255, (78 - 1e-9) / 255], dtype=torch.float64)
    got = _out(y)
    assert got.dtype == torch.float32
    v = y.clamp(0, 1) * 255
    assert (got.double() <= v).all() and (got.double() > v - 1e-4).all()
    assert got.to(torch.uint8).tolist() == [int(x) for x in v.tolist()] == [0, 255, 255, 0, 127, 77, 77]
    f32 = torch.tensor([0.25, 0.5], dtype=torch.float32)
    assert torch.equal(_out(f32), f32 * 255)


def test_gaussian_kernel_is_scipys_at_truncate_4():
    """skimage's gaussian filters with scipy.ndimage at truncate=4.0: the kernel, radius int(4 sigma + 0.5), is what
    gaussian_filter1d does to a unit impulse (its support and every tap), for the tables' sigmas and sigmas whose
    4 sigma + 0.5 lands on or next to an integer."""
    from scipy.ndimage import gaussian_filter1d

    from nsbench.bench.onthefly.deterministic import _gauss_kernel

    for sigma in (1, 2, 3, 4, 6, 0.125, 0.3, 0.375, 0.5, 0.6, 0.625, 1.1, 1.5, 2.2):
        impulse = np.zeros(81)
        impulse[40] = 1.0
        want = gaussian_filter1d(impulse, sigma, truncate=4.0, mode="constant")
        taps = np.flatnonzero(want)
        want = want[taps[0] : taps[-1] + 1]
        assert len(want) == 2 * int(4 * sigma + 0.5) + 1, sigma
        got = _gauss_kernel(sigma)
        assert got.shape == want.shape and np.allclose(got, want, rtol=1e-14, atol=0), sigma


def test_hsv_conversions_are_skimages_exactly():
    """_rgb2hsv is skimage.color.rgb2hsv (hue in [0, 1), ties blue over green over red, grey hue and saturation 0) on
    every 8-bit colour of a 16-level grid and random ones; _hsv2rgb is skimage.color.hsv2rgb on a grid of hue,
    saturation and value that includes hue 1.0 (sector 6, which skimage folds to 0), bit for bit."""
    from skimage.color import hsv2rgb, rgb2hsv

    from nsbench.bench.onthefly.deterministic import _hsv2rgb, _rgb2hsv

    levels = np.arange(0, 256, 17)
    grid = np.stack(np.meshgrid(levels, levels, levels), -1).reshape(-1, 3)
    rgb = np.concatenate([grid, np.random.default_rng(0).integers(0, 256, (2000, 3))]) / 255.0
    want = rgb2hsv(rgb[None])[0]
    assert (want[:, 0] >= 0).all() and (want[:, 0] < 1).all()
    assert np.array_equal(_rgb2hsv(torch.from_numpy(rgb)).numpy(), want)
    h, s, v = np.meshgrid(np.linspace(0, 1, 61), np.linspace(0, 1, 11), np.linspace(0, 1, 11))
    hsv = np.stack([h, s, v], -1).reshape(-1, 3)
    assert np.array_equal(_hsv2rgb(torch.from_numpy(hsv)).numpy(), hsv2rgb(hsv[None])[0])


def test_zoom_layer_is_imagecorruptions_clipped_zoom():
    """imagecorruptions' clipped_zoom (scipy.ndimage.zoom order 1 of the central crop, its top-left H x W kept) on
    random float32 images, square and not, down to one pixel high or wide, at every factor of the ImageNet-C table;
    and calibrated.py's (the centred H x H kept) at every CIFAR-10-C factor: to the float32 rounding (one ulp)."""
    from imagecorruptions.corruptions import clipped_zoom

    from nsbench.bench import calibrated
    from nsbench.bench.onthefly.deterministic import IMAGENET, _clipped_zoom

    rng = np.random.default_rng(1)
    for h, w in [(20, 27), (27, 20), (32, 32), (1, 7), (7, 1)]:
        img = rng.random((h, w, 3)).astype(np.float32)
        for factor in sorted({float(f) for c in IMAGENET["zoom_blur"] for f in np.arange(*c)}):
            want = clipped_zoom(img, factor)[:h, :w]
            got = _clipped_zoom(torch.from_numpy(img)[None], factor, False)[0].numpy()
            assert got.dtype == np.float32 and np.allclose(got, want, rtol=0, atol=1e-7), (h, w, factor)
    for size in (17, 32):
        img = rng.random((size, size, 3)).astype(np.float32)
        for factor in np.arange(1, 1.26, 0.01):
            want = calibrated._clipped_zoom(img, factor)
            got = _clipped_zoom(torch.from_numpy(img)[None], float(factor), True)[0].numpy()
            assert np.allclose(got, want, rtol=0, atol=1e-7), (size, factor)


def test_defocus_blur_keeps_each_references_precision():
    """cv2.filter2D with BORDER_REFLECT_101 is scipy.ndimage.correlate(mode="mirror"). Every reference
    (imagecorruptions, make_cifar_c.py:186, make_tinyimagenet_c.py) filters and scales the float64 image, handed on
    rounded down to float32, as _out promises."""
    from imagecorruptions.corruptions import disk
    from scipy.ndimage import correlate

    from nsbench.bench import calibrated
    from nsbench.bench.onthefly.deterministic import IMAGENET, defocus_blur

    img = np.random.default_rng(2).integers(0, 256, (1, 24, 24, 3), np.uint8)
    x = img[0] / 255.0
    for severity in (1, 3, 5):
        def filtered(radius, alias):
            kernel = disk(radius, alias_blur=alias).astype(np.float64)
            return np.stack([correlate(x[..., d], kernel, mode="mirror") for d in range(3)], -1)

        v = np.clip(filtered(*calibrated.params("cifar-10-c", "defocus_blur", severity)), 0, 1) * 255
        got = defocus_blur(torch.from_numpy(img), severity, "cifar-10-c", None, 1.0)[0].numpy()
        assert got.dtype == np.float32, severity
        assert (got.astype(np.float64) <= v + 1e-9).all() and (got > v - 2 ** -16).all(), severity

        v = np.clip(filtered(*IMAGENET["defocus_blur"][severity - 1]), 0, 1) * 255
        got = defocus_blur(torch.from_numpy(img), severity, "imagenet-c", None, 1.0)[0].numpy().astype(np.float64)
        assert (got <= v + 1e-9).all() and (got > v - 2 ** -16).all(), severity


@pytest.mark.parametrize("calibration", ["cifar-10-c", "tiny-imagenet-c", "imagenet-c"])
def test_pixelate_is_its_references_resize_pair_bit_for_bit(calibration):
    """calibrated.py scales down and back up with PIL's BOX filter, imagecorruptions up with NEAREST: the two upscales
    differ on some sizes (e.g. 7 px from 2 at ImageNet-C severity 4, 22 px from 20 at CIFAR-10-C severity 1), so
    every size from 6 to 40 px at every severity, and for imagecorruptions (which keeps W x H) images that are not
    square, bit for bit."""
    from imagecorruptions.corruptions import pixelate as reference

    from nsbench.bench.calibrated import corrupt_calibrated
    from nsbench.bench.onthefly.deterministic import pixelate

    rng = np.random.default_rng(3)
    shapes = [(s, s) for s in range(6, 41)]
    if calibration == "imagenet-c":
        shapes += [(21, 34), (34, 21), (9, 40)]
    for h, w in shapes:
        img = rng.integers(0, 256, (h, w, 3), np.uint8)
        for severity in range(1, 6):
            if calibration == "imagenet-c":
                want = np.asarray(reference(Image.fromarray(img), severity))
            else:
                want = corrupt_calibrated(img, "pixelate", severity, calibration, 0)
            got = pixelate(torch.from_numpy(img)[None], severity, calibration, None, 1.0)[0].numpy()
            assert np.array_equal(got.astype(np.uint8), want), (h, w, severity)
