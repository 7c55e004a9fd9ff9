"""Built -P sets follow the reference generator calibrated for the image size: CIFAR-10-P at ~32 px (unchanged),
Tiny-ImageNet-P at ~64 px, ImageNet-P at 224 px; the manifest and the set description say which."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import PixelOracle, make_image, oracle_model
from nsbench.bench import cache, perturbation_sets
from nsbench.bench.context import EvalContext
from nsbench.bench.normaliser import Normaliser
from nsbench.bench.suite import SuiteConfig
from nsbench.bench.tasks import perturbations
from nsbench.data.sources import ArraySource
from nsbench.utils import NsbenchError


def grey(n: int, size: int) -> ArraySource:
    return ArraySource(f"grey{size}", np.full((n, size, size, 3), 128, np.uint8), np.zeros(n, np.int64), ["a"])


def noise_std(seqs: np.ndarray) -> float:
    return float((seqs[:, 1:].astype(float) - 128).std() / 255)


def old_key(src: ArraySource, size: int, n: int) -> str:
    """The cache folder every built -P set had before calibrations existed (CIFAR-10-P's parameters at any size)."""
    spec = {"kind": "P", "source": src.name, "fingerprint": src.fingerprint(), "size": size, "seed": 0, "n": n,
            "generator": "cifar-p-params-v1"}
    return f"P-{cache.key_of(spec)}"


def test_the_calibration_follows_the_image_size_with_the_thresholds_of_c():
    from nsbench.bench.calibrated import calibration_for as c_calibration

    for size in (32, 48, 49, 64, 128, 129, 224):
        assert perturbation_sets.calibration_for(size) == c_calibration(size).replace("-c", "-p")
    assert [perturbation_sets.calibration_for(s) for s in (32, 64, 224)] == ["cifar-10-p", "tiny-imagenet-p", "imagenet-p"]
    assert perturbation_sets.SOURCES["tiny-imagenet-p"].endswith("ImageNet-P/create_p/make_tinyimagenet_p.py")


def test_a_32px_built_set_keeps_cifar_10_p_and_its_cache_key(tmp_path):
    src = grey(2, 32)
    folder, manifest = perturbation_sets.build_p(src, 32, ["gaussian_noise", "translate", "motion_blur"], 1, None, 0, tmp_path,
                                 workers=1)
    assert manifest["calibration"] == "cifar-10-p" and manifest["calibration_source"].endswith("make_cifar_p.py")
    assert folder.name == old_key(src, 32, 2)  # sets built before calibrations existed are still reused
    assert np.load(folder / "translate-d1.npy").shape[1] == 16 and np.load(folder / "motion_blur-d1.npy").shape[1] == 21
    assert perturbation_sets.CIFAR_P["gaussian_noise"][1] == 0.02
    assert abs(noise_std(np.load(folder / "gaussian_noise-d1.npy")) - 0.02) < 0.002
    img = make_image(1, np.random.default_rng(0))
    for name in ("snow", "brightness", "tilt", "scale", "gaussian_blur"):
        auto = perturbation_sets.sequence(img, name, 1, np.random.default_rng(3))
        assert np.array_equal(auto, perturbation_sets.sequence(img, name, 1, np.random.default_rng(3), "cifar-10-p")), name


def test_a_64px_built_set_uses_tiny_imagenet_p_and_never_reuses_an_old_set(tmp_path):
    src = grey(2, 64)
    perts = ["gaussian_noise", "translate", "motion_blur"]
    folder, manifest = perturbation_sets.build_p(src, 64, perts, 1, None, 0, tmp_path, workers=1)
    assert manifest["calibration"] == "tiny-imagenet-p"
    assert manifest["calibration_source"] == "hendrycks/robustness ImageNet-P/create_p/make_tinyimagenet_p.py"
    assert perturbation_sets.TINY_P["gaussian_noise"][1] == 0.025 and perturbation_sets.TINY_P["translate"] == (15, 31)
    assert abs(noise_std(np.load(folder / "gaussian_noise-d1.npy")) - 0.025) < 0.002  # CIFAR-10-P's would be 0.02
    assert np.load(folder / "translate-d1.npy").shape[1] == 31  # CIFAR-10-P scaled to 64 px: 30
    assert np.load(folder / "motion_blur-d1.npy").shape[1] == 31  # CIFAR-10-P: 21
    # a 64-px set built before calibrations existed (CIFAR-10-P scaled by size / 32) sits under another key
    old, m_old = perturbation_sets.build_p(src, 64, ["translate"], 1, None, 0, tmp_path, workers=1, calibration="cifar-10-p")
    assert old.name == old_key(src, 64, 2) != folder.name
    assert m_old["calibration"] == "cifar-10-p" and np.load(old / "translate-d1.npy").shape[1] == 30
    _, again = perturbation_sets.build_p(src, 64, perts, 1, None, 0, tmp_path, workers=1)
    assert again == manifest
    with pytest.raises(NsbenchError, match="calibration"):
        perturbation_sets.build_p(src, 64, perts, 1, None, 0, tmp_path, workers=1, calibration="imagenet-c")


def test_a_224px_image_gets_imagenet_p_parameters():
    img = np.full((224, 224, 3), 128, np.uint8)
    assert perturbation_sets.calibration_for(224) == "imagenet-p" and perturbation_sets.IMAGENET_P["shot_noise"][1] == 300
    seq = perturbation_sets.sequence(img, "gaussian_noise", 1, np.random.default_rng(0))
    assert seq.shape == (31, 224, 224, 3) and abs(noise_std(seq[None]) - 0.03) < 0.002
    assert len(perturbation_sets.sequence(img, "translate", 1, np.random.default_rng(0))) == 41
    assert abs(noise_std(perturbation_sets.sequence(img, "gaussian_noise", 3, np.random.default_rng(0))[None]) - 0.08) < 0.004


def test_the_set_description_names_the_calibration_and_a_wrong_one_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    src = ArraySource("p64", np.stack([make_image(i % 4, rng, 64) for i in range(2)]), np.arange(2) % 4, list("abcd"))
    cfg = SuiteConfig(name="t")
    cfg.perturbations.perturbations, cfg.perturbations.limit = ["rotate"], None
    em = oracle_model(PixelOracle([0, 1, 2, 3], n=4, decoy=None), list("abcd"))
    em.input_size = 64
    ctx = EvalContext(em, cfg, tmp_path / "cache", torch.device("cpu"), workers=1)
    ctx._source = src
    res = perturbations.run(ctx, cfg.perturbations, Normaliser("none"))
    assert res.sets["perturbations"]["calibration"] == "tiny-imagenet-p"
    assert res.sets["perturbations"]["calibration_source"].endswith("make_tinyimagenet_p.py")
    cfg.perturbations.calibration = "tiny-imagenet-c"
    with pytest.raises(NsbenchError, match="perturbations.calibration"):
        perturbations.validate(cfg.perturbations)
