"""Built sets and ratios as the reference code makes them: glass blur's copy semantics (numpy views) at 32/64 px,
Tiny-ImageNet-C's JPEG quality 85, floating-point zero denominators undefined, and -A/-R folders that skip and
count an unreadable image as -C does."""
from __future__ import annotations

from io import BytesIO

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.filters import gaussian

from helpers import PixelOracle, encoded_image, oracle_model, synsets
from nsbench.bench import corruption_sets, metrics
from nsbench.bench.calibrated import CIFAR, TINY, corrupt_calibrated
from nsbench.bench.context import EvalContext
from nsbench.bench.suite import SuiteConfig
from nsbench.bench.tasks import natural
from nsbench.reference import imagenet_a_classes


def reference_glass_blur(img: np.ndarray, c, size: int) -> np.ndarray:
    """Transcribed from hendrycks/robustness ImageNet-C/create_c/make_cifar_c.py (ca36008) and
    make_tinyimagenet_c.py (7a64e6a), glass_blur(): `size` is their hard-coded 32 / 64; `multichannel=True` is
    today's channel_axis=-1. The caller's np.uint8(...) is the reference's save step."""
    x = np.uint8(gaussian(np.array(img) / 255., sigma=c[0], channel_axis=-1) * 255)
    for i in range(c[2]):
        for h in range(size - c[1], c[1], -1):
            for w in range(size - c[1], c[1], -1):
                dx, dy = np.random.randint(-c[1], c[1], size=(2,))
                h_prime, w_prime = h + dy, w + dx
                # swap
                x[h, w], x[h_prime, w_prime] = x[h_prime, w_prime], x[h, w]
    return np.clip(gaussian(x / 255., sigma=c[0], channel_axis=-1), 0, 1) * 255


@pytest.mark.parametrize("size, calibration, table", [(32, "cifar-10-c", CIFAR), (64, "tiny-imagenet-c", TINY)])
def test_glass_blur_equals_the_reference_loop(size, calibration, table):
    rng = np.random.default_rng(size)
    img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    for severity in range(1, 6):
        for seed in (0, 12345):
            np.random.seed(seed)
            want = np.uint8(reference_glass_blur(img, table["glass_blur"][severity - 1], size))
            np.random.seed(seed)
            got = corrupt_calibrated(img, "glass_blur", severity, calibration, seed)
            np.testing.assert_array_equal(got, want, err_msg=f"{calibration} severity {severity} seed {seed}")


def test_the_reference_swap_copies_so_values_vanish():
    """What the transcription does on its own: with numpy views the 'swap' is a copy, so distinct values are lost
    (a true swap would only permute them)."""
    from nsbench.bench.calibrated import _copy_shift

    y = np.arange(32 * 32, dtype=np.int64).reshape(32, 32, 1)
    np.random.seed(0)
    offsets = np.random.randint(-1, 1, size=(1, 30, 30, 2))
    _copy_shift(y, offsets, 1)
    assert len(np.unique(y)) < 32 * 32


def test_tiny_imagenet_calibrated_cells_pass_through_jpeg_85_and_cifar_ones_do_not(tmp_path):
    rng = np.random.default_rng(1)
    img64 = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    raw = (np.random.seed(7), corrupt_calibrated(img64, "contrast", 3, "tiny-imagenet-c", 7))[1]
    buf = BytesIO()
    Image.fromarray(raw).save(buf, "JPEG", quality=85, optimize=True)  # make_tinyimagenet_c.py's save
    np.testing.assert_array_equal(corruption_sets.corrupt_one(img64, "contrast", 3, 7, "tiny-imagenet-c"),
                                  np.asarray(Image.open(buf).convert("RGB")))
    img32 = img64[:32, :32].copy()
    raw32 = (np.random.seed(7), corrupt_calibrated(img32, "contrast", 3, "cifar-10-c", 7))[1]
    np.testing.assert_array_equal(corruption_sets.corrupt_one(img32, "contrast", 3, 7, "cifar-10-c"), raw32)  # .npy: lossless
    from nsbench.data.sources import ArraySource

    src = ArraySource("t64", np.stack([img64, img64[::-1]]), np.zeros(2, np.int64), ["a"])
    _, manifest = corruption_sets.build_c(src, 64, ["contrast"], [1], None, 0, tmp_path, workers=1)
    assert manifest["saved_as"].startswith("JPEG quality 85") and manifest["calibration"] == "tiny-imagenet-c"


def test_a_floating_point_zero_denominator_is_undefined():
    err = 1 - 0.7  # 0.30000000000000004: an error rate as the harness computes it
    assert sum([err - 0.3] * 5) != 0.0  # the residue that used to become a relative mCE of 1e15
    assert np.isnan(metrics.relative_ce([0.5] * 5, 0.2, [err] * 5, 0.3))
    assert np.isnan(metrics.ce([0.2] * 5, [1e-17] * 5))
    assert np.isnan(metrics.ratio(0.1, 1e-12)) and metrics.ratio(0.1, 1e-4) == pytest.approx(1000.0)
    assert np.isnan(metrics.ratio(0.1, metrics.ZERO)) and np.isnan(metrics.ratio(0.1, -metrics.ZERO))  # the tolerance itself counts as zero
    assert metrics.relative_ce([0.5] * 5, 0.2, [0.4] * 5, 0.3) == pytest.approx(3.0)  # ordinary ratios untouched


def test_float_zero_denominators_give_undefined_rows(tmp_path):
    from nsbench.bench.tasks.corruptions import _normalised_rows

    cfg = SuiteConfig(name="t")
    ctx = EvalContext(oracle_model(PixelOracle([3, 7], decoy=None), synsets()), cfg, tmp_path, torch.device("cpu"))
    errors = {"fog": [0.5] * 5, "frost": [0.4] * 5}
    ref = ({"fog": [1 - 0.7] * 5, "frost": [0.6] * 5}, 0.3)  # fog's relative denominator is 2.8e-16, not 0
    rows = {(r["condition"], r["metric"]): r for r in _normalised_rows(ctx, cfg.corruptions, errors, 0.2, ref, "t", 10)}
    fog = rows[("fog", "relative_ce")]
    assert fog["value"] is None and fog["note"].startswith("undefined")
    assert rows[("frost", "relative_ce")]["value"] == pytest.approx(100 * (5 * 0.2) / (5 * 0.3))
    part = rows[("all", "relative_mce_partial")]
    assert "undefined: fog" in part["note"] and part["value"] < 1e3


@pytest.mark.parametrize("mask", ["imagenet-a", "imagenet-r"])
def test_a_truncated_jpeg_in_an_a_or_r_folder_is_skipped_and_counted(tmp_path, mask):
    from nsbench.reference import imagenet_r_classes

    names = synsets()
    idx, wnids = imagenet_a_classes() if mask == "imagenet-a" else imagenet_r_classes()
    root = tmp_path / mask
    for k, w in enumerate(wnids[:3]):
        (root / w).mkdir(parents=True)
        for j in range(4):
            Image.fromarray(encoded_image(k, 300)).save(root / w / f"{j}.jpg", quality=95)
    victim = root / wnids[1] / "2.jpg"
    victim.write_bytes(victim.read_bytes()[: len(victim.read_bytes()) // 3])
    cfg = SuiteConfig(name="t")
    cfg.natural_adversarial.root, cfg.natural_adversarial.mask = str(root), mask
    cfg.data.image_size = 224
    ctx = EvalContext(oracle_model(PixelOracle(list(idx[:3]), decoy=0), names), cfg, tmp_path / "cache",
                      torch.device("cpu"))
    res = natural.run(ctx, cfg.natural_adversarial, None)
    acc = next(r for r in res.rows if r["metric"] == "top1_acc")
    assert acc["value"] == 100.0 and acc["n"] == 11
    assert res.sets["natural_adversarial"]["skipped_unreadable"] == 1
    per = res.per_image[0]
    assert len(per) == 11 and 6 not in set(per.image)  # the 7th file in scan order (class 1, image 2) is gone
