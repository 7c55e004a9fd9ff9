"""Input noise: the released code's RandAugment on timm's ops (same strengths per magnitude), random-resized crops
for natural images only, deterministic evaluation."""
from __future__ import annotations

import random

import numpy as np
from PIL import Image

from nsbench.data.loaders import ImageDataset, iterate_clean
from nsbench.data.sources import ArraySource, scan_folder
from nsbench.data.transforms import TrainAugment, prepare_batch


def _natural_folder(tmp_path):
    rng = np.random.default_rng(1)
    for c in range(2):
        d = tmp_path / "nat" / "train" / f"c{c}"
        d.mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(d / f"{i}.png")
    return scan_folder(tmp_path / "nat" / "train", "nat")


def test_natural_images_get_random_resized_crops_and_evaluation_stays_deterministic(tmp_path):
    src = _natural_folder(tmp_path)
    aug = TrainAugment(32, False, 0, 0, 0.0, natural_crop=True)
    ds = ImageDataset(src, np.arange(len(src)), 32, augment=aug)
    random.seed(0)
    views = [ds[0][0] for _ in range(6)]
    assert all(v.shape == (32, 32, 3) for v in views)
    assert len({v.tobytes() for v in views}) == 6  # a new crop every time
    clean = [next(iterate_clean(src, np.arange(len(src)), 32, 8))[0] for _ in range(2)]
    assert (clean[0] == clean[1]).all()  # evaluation: the same resize + centre crop every pass
    centre = (clean[0][0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    assert not any(np.array_equal(v, centre) for v in views)
    # natural_crop=center: the evaluation view itself (no crop noise)
    plain = ImageDataset(src, np.arange(len(src)), 32, augment=TrainAugment(32, False, 0, 0, 0.0))
    np.testing.assert_array_equal(plain[0][0], centre)


def test_small_padded_images_never_get_random_resized_crops():
    rng = np.random.default_rng(2)
    images = rng.integers(0, 255, (4, 28, 28, 1), dtype=np.uint8)
    src = ArraySource("small", images, np.zeros(4, np.int64), ["a"])
    ds = ImageDataset(src, np.arange(4), 32, augment=TrainAugment(32, False, 0, 0, 0.0, natural_crop=True))
    for k in range(4):
        np.testing.assert_array_equal(ds[k][0], prepare_batch(images, 32)[k])  # padded, never cropped or rescaled
