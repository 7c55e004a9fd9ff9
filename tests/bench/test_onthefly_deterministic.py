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
