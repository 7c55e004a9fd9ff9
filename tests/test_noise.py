"""Input noise: the released code's RandAugment on timm's ops (same strengths per magnitude), random-resized crops
for natural images only, deterministic evaluation."""
from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image

from nsbench.data.loaders import ImageDataset, iterate_clean
from nsbench.data.sources import ArraySource, scan_folder
from nsbench.data.transforms import TrainAugment, prepare_batch, tf_randaugment

# google-research/noisystudent randaugment.py, per op at level m (`_MAX_LEVEL = 10.`): rotate m/10 x 30 degrees,
# shear m/10 x 0.3, translate m/10 x translate_const pixels (100 for ImageNet; image_size // 8 for 32x32 images in
# preprocessing.py), enhance factor m/10 x 1.8 + 0.1, posterize int(m/10 x 4) bits, solarize threshold
# int(m/10 x 256), Cutout half-side int(m/10 x cutout_const) (40 for ImageNet). Written out per magnitude:
EXPECTED = {  # m: (rotate deg, shear, translate px at 100, enhance factor, posterize bits, solarize thr, cutout px at 40)
    2: (6.0, 0.06, 20.0, 0.46, 0, 51, 8),
    6: (18.0, 0.18, 60.0, 1.18, 2, 153, 24),
    15: (45.0, 0.45, 150.0, 2.8, 6, 256, 60),
    27: (81.0, 0.81, 270.0, 4.96, 10, 256, 108),
}


def _ops(m, translate_const=100, cutout_const=40):
    ra = tf_randaugment(m, 2, translate_const=translate_const, cutout_const=cutout_const)
    return {op.name: op for op in ra.ops}


@pytest.mark.parametrize("m", sorted(EXPECTED))
def test_tf_magnitudes_give_the_released_codes_op_strengths(m, monkeypatch):
    rot, shear, tr, enh, bits, thr, cut = EXPECTED[m]
    ops = _ops(m)
    assert len(ops) == 16  # the code's 15 ops + Cutout (main.py --cutout_op default true)
    for op in ops.values():
        if op.name != "Cutout":  # always applied, fixed magnitude, not clipped at 10
            assert op.prob == 1.0 and op.magnitude == m and op.magnitude_std == 0 and op.magnitude_max >= m
    monkeypatch.setattr(random, "random", lambda: 0.0)  # timm's random sign: keep it positive
    level = {name: op.level_fn(m, op.hparams) for name, op in ops.items() if name != "Cutout" and op.level_fn}
    assert level["Rotate"][0] == pytest.approx(rot)
    assert level["ShearX"][0] == pytest.approx(shear) and level["ShearY"][0] == pytest.approx(shear)
    assert level["TranslateX"][0] == pytest.approx(tr) and level["TranslateY"][0] == pytest.approx(tr)
    for name in ("Color", "Contrast", "Brightness", "Sharpness"):
        assert level[name][0] == pytest.approx(enh)
    assert level["Posterize"][0] == bits and level["Solarize"][0] == thr
    assert ops["Cutout"].pad_size(m) == cut
    small = _ops(m, translate_const=32 // 8, cutout_const=32 // 8)
    assert small["TranslateX"].level_fn(m, small["TranslateX"].hparams)[0] == pytest.approx(m / 10 * 4)


def test_tf_ops_transform_pixels_at_the_codes_strength_past_level_10(monkeypatch):
    """End to end at magnitude 27: the op output equals PIL's transform at the code's strength (not clipped to 10)."""
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8))
    ops = _ops(27, translate_const=10)
    monkeypatch.setattr(random, "random", lambda: 0.0)
    fill = (128, 128, 128)
    np.testing.assert_array_equal(np.asarray(ops["Rotate"](img)),
                                  np.asarray(img.rotate(81.0, resample=Image.NEAREST, fillcolor=fill)))
    shifted = img.transform(img.size, Image.AFFINE, (1, 0, 27, 0, 1, 0), resample=Image.NEAREST, fillcolor=fill)
    np.testing.assert_array_equal(np.asarray(ops["TranslateX"](img)), np.asarray(shifted))
    from PIL import ImageEnhance

    np.testing.assert_array_equal(np.asarray(ops["Brightness"](img)),
                                  np.asarray(ImageEnhance.Brightness(img).enhance(4.96)))


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
