"""-P sequences in torch (bench/onthefly/perturb.py) against nsbench's numpy generator (bench/perturbation_sets.py's
`sequence`, the port of hendrycks/robustness create_p) on the same images: every frame within one grey level on at
least 99% of pixels, at 32 px (CIFAR-10-P parameters) and on 224-px photographs (ImageNet-P parameters). For the
random perturbations the numpy generator is handed the torch generator's own draws (a stand-in for its
np.random.Generator), so the comparison is of everything but the random numbers; a frame depends only on its image's
seed (the same in a batch of one)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from nsbench.bench import perturbation_sets
from nsbench.bench.onthefly import perturb
from nsbench.bench.onthefly.noise_blur import poisson
from nsbench.bench.onthefly.rng import Rng

DETERMINISTIC = ["translate", "rotate", "shear", "scale", "tilt", "zoom_blur", "brightness", "gaussian_blur",
                 "motion_blur"]
RANDOM = ["gaussian_noise", "speckle_noise", "shot_noise", "snow"]


def _photos(size: int, n: int) -> np.ndarray:
    import skimage.data as d

    out = []
    for img in (d.astronaut(), d.coffee(), d.chelsea(), d.rocket())[:n]:
        h, w = img.shape[:2]
        s = min(h, w)
        img = img[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
        out.append(np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR)))
    return np.stack(out)


class _Draws:
    """Stands in for the np.random.Generator `sequence` takes, answering each call with the torch draws of one image
    in the order the numpy code asks (frame i -> the image's stream i)."""

    def __init__(self, seed: int):
        self.rng, self.calls = Rng([seed]), 0

    def _next(self) -> int:
        self.calls += 1
        return self.calls - 1

    def standard_normal(self, shape):
        return self.rng.normal(self._next(), tuple(shape))[0].numpy()

    def normal(self, size, loc=0.0, scale=1.0):
        return loc + scale * self.rng.normal(self._next(), tuple(size))[0].numpy()

    def poisson(self, lam):
        i = self._next()
        return poisson(self.rng, perturb.FRAME_STREAMS * i, torch.as_tensor(np.asarray(lam, np.float64))[None])[0].numpy()


def _agreement(ours: np.ndarray, ref: np.ndarray) -> float:
    return float((np.abs(ours.astype(int) - ref.astype(int)) <= 1).mean())


CASES = [pytest.param(name, size, n, marks=[pytest.mark.slow] if (name, size) == ("shot_noise", 224) else [])
         for name in DETERMINISTIC + RANDOM for size, n in ((32, 3), (224, 2))]  # shot noise at 224 px: 16 s


@pytest.mark.parametrize("name, size, n", CASES)
def test_frames_match_the_numpy_generator(name, size, n):
    imgs = _photos(size, n)
    seeds = [11 + k for k in range(n)]
    ours = perturb.sequences(torch.from_numpy(imgs), name, 1, seeds).numpy()
    for k in range(n):
        ref = perturbation_sets.sequence(imgs[k], name, 1, _Draws(seeds[k]))
        assert ours[k].shape == ref.shape
        worst = min(_agreement(ours[k][f], ref[f]) for f in range(len(ref)))
        assert worst >= 0.99, (name, size, worst)


@pytest.mark.parametrize("name", ["gaussian_noise", "shot_noise", "snow", "rotate"])
def test_a_sequence_does_not_depend_on_its_batch(name):
    imgs = torch.from_numpy(_photos(32, 3))
    together = perturb.sequences(imgs, name, 2 if "noise" in name else 1, [5, 6, 7])
    alone = perturb.sequences(imgs[1:2], name, 2 if "noise" in name else 1, [6])
    assert torch.equal(together[1], alone[0])


# Building blocks, each against the library it reproduces, exactly.

def _test_image(size: int) -> np.ndarray:
    """Random uint8 pixels with a white top row and a black left column (so clamping and the 0 border show)."""
    img = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    img[0, :], img[:, 0] = 255, 0
    return img


@pytest.mark.parametrize("size, kw", [(16, dict(angle=7)), (16, dict(shear=5)), (16, dict(translate=(3, 1))),
                                      (16, dict(scale=1.3)), (16, dict(angle=-12, scale=0.8)),
                                      (4, dict(scale=0.25))])  # 4 px at 1/4: sources exactly at 0 and at the width
def test_pil_affine_is_pils_bilinear_affine_bit_for_bit(size, kw):
    from torchvision.transforms import InterpolationMode, functional

    img = _test_image(size) if size > 4 else np.random.default_rng(0).integers(1, 256, (4, 4, 3), dtype=np.uint8)
    ref = np.asarray(functional.affine(Image.fromarray(img), angle=kw.get("angle", 0.0),
                                       translate=list(kw.get("translate", (0, 0))), scale=kw.get("scale", 1.0),
                                       shear=[kw.get("shear", 0.0)], interpolation=InterpolationMode.BILINEAR))
    assert np.array_equal(perturb.pil_affine(torch.from_numpy(img)[None], **kw)[0].numpy(), ref)


def test_warp_perspective_with_the_identity_returns_the_image():
    img = _test_image(16)
    assert np.array_equal(perturb.cv2_warp_perspective(torch.from_numpy(img)[None], np.eye(3))[0].numpy(), img)


@pytest.mark.parametrize("degrees", [-9, 4, 15])
def test_warp_perspective_is_cv2s(degrees):
    """Exact but for OpenCV's own rounding of a rare tie: within one level, and equal on 99% of pixels."""
    import cv2

    img = _test_image(16)
    m = perturbation_sets.tilt_matrix(16, 16, degrees)
    ours = perturb.cv2_warp_perspective(torch.from_numpy(img)[None], m)[0].numpy()
    ref = cv2.warpPerspective(img, m, (16, 16))
    assert _agreement(ours, ref) == 1.0 and (ours == ref).mean() >= 0.99


def test_a_half_pixel_shift_averages_with_the_black_border():
    img = np.zeros((1, 2, 3), np.uint8)
    img[0, 1] = 200
    m = np.array([[1, 0, 0.5], [0, 1, 0], [0, 0, 1.0]])  # source x = x - 0.5
    out = perturb.cv2_warp_perspective(torch.from_numpy(img)[None], m)[0, 0, :, 0].tolist()
    assert out == [0, 100]  # (0 + 0) / 2 with the outside neighbour 0; (0 + 200) / 2


@pytest.mark.parametrize("sigma, size", [(0.5, 5), (1.0, 7), (1.5, 11), (2.2, 15)])
def test_gaussian_kernel_is_sized_by_opencvs_uint8_rule(sigma, size):
    k = perturb._cv2_gaussian_kernel(sigma)  # ksize = cvRound(sigma * 3 * 2 + 1) | 1 for CV_8U
    r = np.arange(size) - size // 2
    g = np.exp(-r ** 2 / (2 * sigma ** 2))
    assert len(k) == size and np.allclose(k, g / g.sum())


@pytest.mark.parametrize("value", [0, 255])
def test_blur_keeps_a_uniform_image(value):
    img = torch.full((1, 9, 9, 3), value, dtype=torch.uint8)
    assert torch.equal(perturb.cv2_gaussian_blur(img, 1.3), img)


@pytest.mark.parametrize("factor", [1.5, 2.0, 2.7])
def test_zoom_is_perturbation_sets_cv2_resize(factor):
    layer = np.random.default_rng(1).normal(0.3, 0.4, (20, 20)).astype(np.float32)
    ours = perturb.cv2_zoom(torch.from_numpy(layer)[None], factor)[0].numpy()
    assert np.allclose(ours, perturbation_sets._zoom(layer, factor), atol=1e-5)


# Per-frame parameters at sizes where the calibration scale s = size / 32 is not 1 (48 px: 1.5; 6 px: 0.1875, where
# CIFAR-10-P's 7-pixel translation rounds to 1).

@pytest.mark.parametrize("name, size", [("translate", 48), ("translate", 6), ("rotate", 48), ("shear", 48),
                                        ("scale", 48)])
def test_geometric_sequences_are_the_numpy_frames_bit_for_bit(name, size):
    img = _test_image(size)
    ours = perturb.sequences(torch.from_numpy(img)[None], name, 1, [0]).numpy()[0]
    ref = perturbation_sets.sequence(img, name, 1, None)
    assert ours.shape == ref.shape and np.array_equal(ours, ref)


@pytest.mark.parametrize("name, size", [("tilt", 48), ("gaussian_blur", 48), ("motion_blur", 48), ("motion_blur", 16)])
def test_opencv_sequences_at_other_sizes_are_the_numpy_frames(name, size):
    img = _test_image(size)
    ours = perturb.sequences(torch.from_numpy(img)[None], name, 1, [3]).numpy()[0]
    ref = perturbation_sets.sequence(img, name, 1, None)
    assert ours.shape == ref.shape and min(_agreement(o, r) for o, r in zip(ours, ref)) >= 0.99


def test_motion_blur_at_16px_is_the_numpy_blur_on_all_but_a_few_ties():
    img = _test_image(16)
    ours = perturb.sequences(torch.from_numpy(img)[None], "motion_blur", 1, [3]).numpy()[0]
    ref = perturbation_sets.sequence(img, "motion_blur", 1, None)
    assert _agreement(ours, ref) == 1.0 and (ours == ref).mean() >= 0.999


@pytest.mark.parametrize("size", [16, 48])
def test_snow_is_the_numpy_snow_bit_for_bit(size):
    """Handed the same normal draws, snow's layer, its blur and the composite agree exactly."""
    img = _test_image(size)
    ours = perturb.sequences(torch.from_numpy(img)[None], "snow", 1, [3]).numpy()[0]
    assert np.array_equal(ours, perturbation_sets.sequence(img, "snow", 1, _Draws(3)))


@pytest.mark.parametrize("value, grey", [(0.5, 255), (0.499, 73), (1.2, 255)])
def test_snow_keeps_a_layer_of_0_5_and_clips_one_above_1(monkeypatch, value, grey):
    """make_imagenet_p.py's snow: layer[layer < 0.5] = 0, then np.uint8(np.clip(layer, 0, 1) * 255). With the zoom
    giving `value` everywhere and the motion blur an identity, a grey image (x = 0.2) becomes
    0.85 x + 0.15 max(x, 1.5 x + 0.5) = 0.29 plus twice the 8-bit layer, clipped: 0.5 stays (127, white), 0.499 is
    dropped (0.29: 73), 1.2 is clipped to 1 (white)."""
    import nsbench.bench.onthefly.noise_blur as nb
    monkeypatch.setattr(perturb, "cv2_zoom", lambda layer, factor: torch.full_like(layer, value))
    monkeypatch.setattr(nb, "motion_blur_with_angle", lambda x, radius, sigma, angle: x)
    frames = perturb.sequences(torch.full((1, 32, 32, 3), 51, dtype=torch.uint8), "snow", 1, [0], "cifar-10-p")
    assert frames.shape == (1, 31, 32, 32, 3) and bool((frames == grey).all())


@pytest.mark.parametrize("name, value", [("zoom_blur", 255), ("motion_blur", 0)])
def test_a_uniform_image_stays_uniform(name, value):
    img = torch.full((1, 8, 8, 3), value, dtype=torch.uint8)
    frames = perturb.sequences(img, name, 1, [0])
    assert bool((frames == value).all())


def test_brightness_frames_shift_a_grey_ramp_by_the_cifar_step():
    """A grey pixel keeps hue and saturation, so frame i is np.uint8(clip(g / 255 + (i - 15) * 1.5 / 100, 0, 1) * 255)
    (CIFAR-10-P's 1.5% per frame; g / 255 in float32, as the images are read), up to rounding on a few pixels."""
    g = np.arange(256, dtype=np.uint8).reshape(16, 16)
    img = np.repeat(g[..., None], 3, axis=2)
    ours = perturb.sequences(torch.from_numpy(img)[None], "brightness", 1, [0]).numpy()[0]
    for i in range(31):
        want = np.uint8(np.clip((g.astype(np.float32) / 255.0).astype(np.float64) + (i - 15) * 1.5 / 100.0, 0, 1) * 255)
        assert (ours[i] == want[..., None]).mean() >= 0.95, i


def test_shot_noise_frame_i_draws_from_streams_i_times_2_to_the_20():
    """Each shot-noise frame's Poisson draws (rejection rounds included) use streams 2^20 i onwards: frame i is
    poisson(stream 2^20 i, x / 255 * level) / level, in uint8 (changing the offset changes every on-the-fly -P image:
    bump onthefly.REVISION)."""
    from nsbench.bench.onthefly.noise_blur import poisson

    img = torch.from_numpy(np.random.default_rng(3).integers(0, 256, (1, 32, 32, 3), np.uint8))
    seq = perturb.sequences(img, "shot_noise", 1, [41], "cifar-10-p")
    level = perturbation_sets.TABLES["cifar-10-p"]["shot_noise"][1]
    x = (img.to(torch.float32) / 255.0).double()
    for i in (0, 1, 29):
        want = perturb._u8(poisson(Rng([41]), (1 << 20) * i, x * level) / level)
        assert torch.equal(seq[:, i + 1], want), i
