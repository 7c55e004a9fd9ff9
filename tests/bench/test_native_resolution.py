"""Native resolution (issue 34, item 3): ImageNet-C for a model at S != 224 px is corrupted at S px with its lengths
in pixels scaled by S / 224 (bench/onthefly/params.py), by the cached build and on the fly alike, and meta.json says
so. Scaled this way a corruption commutes with magnification: corrupting a 2x-magnified image at scale 2 gives the
224-px corruption magnified; the 224-px parameters unscaled give a weaker blur."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers import oracle_model
from nsbench.bench import cache, corruption_sets, onthefly, perturbation_sets
from nsbench.bench.context import EvalContext
from nsbench.bench.normaliser import Normaliser
from nsbench.bench.onthefly.params import REFERENCE_SIZE, scale_for, scaled, severity_params
from nsbench.bench.suite import SuiteConfig
from nsbench.bench.tasks import corruptions
from nsbench.data.sources import ArraySource


def test_lengths_in_pixels_scale_and_the_rest_stay():
    assert REFERENCE_SIZE == 224 and scale_for(448, "imagenet-c") == 2.0 and scale_for(300, "imagenet-c") == 300 / 224
    assert scale_for(40, "cifar-10-c") == 1.0 and scale_for(100, "tiny-imagenet-c") == 1.0
    assert scaled("gaussian_blur", 3, 2.0) == 6
    # defocus: radius, anti-aliasing sigma, and the kernel's half-width (8 up to radius 8, else the radius) and
    # anti-aliasing window (3, else 5) magnified alike, to the nearest odd window
    assert scaled("defocus_blur", (3, 0.1), 2.0) == (6, 0.2, 16, 5)
    assert scaled("defocus_blur", (3, 0.1), 1.5) == (4.5, pytest.approx(0.15), 12, 5)
    assert scaled("defocus_blur", (10, 0.5), 1.34) == (13.4, 0.67, 14, 7)
    assert scaled("defocus_blur", (10, 0.5), 0.5) == (5, 0.25, 5, 3)
    assert scaled("glass_blur", (0.7, 1, 2), 1.6) == (pytest.approx(1.12), 2, 2)  # shift rounded, iterations stay
    assert scaled("glass_blur", (0.7, 1, 2), 0.2)[1] == 1  # never below one pixel
    assert scaled("motion_blur", (10, 3), 1.34) == (13, pytest.approx(4.02))
    assert scaled("elastic_transform", 12.5, 2.0) == 25.0
    assert scaled("pixelate", 0.6, 2.0) == 0.3 and scaled("pixelate", 0.6, 0.5) == 1.0  # blocks twice as wide
    for name, c in (("gaussian_noise", 0.08), ("shot_noise", 60), ("contrast", 0.4),
                    ("jpeg_compression", 25), ("zoom_blur", (1, 1.11, 0.01)), ("fog", (1.5, 2)),
                    ("snow", (0.1, 0.3, 3, 0.5, 10, 4, 0.8)),
                    ("spatter", (0.65, 0.3, 4, 0.69, 0.6, 0))):
        assert scaled(name, c, 2.0) == c  # no size (fog, frost, snow and spatter magnify their layers in the ops)
    assert scaled("defocus_blur", (8, 0.5), 2.0) == (16, 1.0, 16, 5)  # radius 8 still has the 8 / 3 grid
    table = {"gaussian_blur": [1, 2, 3, 4, 6]}
    assert severity_params(table, "gaussian_blur", 5, "imagenet-c", 1.0) == 6
    assert severity_params(table, "gaussian_blur", 5, "imagenet-c", 0.5) == 3
    with pytest.raises(ValueError, match="follow the image size already"):
        severity_params({}, "gaussian_blur", 1, "cifar-10-c", 2.0)


def _photo(size: int) -> torch.Tensor:
    from PIL import Image
    from skimage import data

    img = np.asarray(Image.fromarray(data.astronaut()).resize((size, size), Image.BILINEAR))
    return torch.from_numpy(img)[None].repeat(2, 1, 1, 1)


def _magnified(x: torch.Tensor, size) -> torch.Tensor:
    size = (size, size) if isinstance(size, int) else size
    y = F.interpolate(x.permute(0, 3, 1, 2).double(), size=size, mode="bilinear", align_corners=False)
    return y.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


@pytest.mark.parametrize("name", ["gaussian_blur", "defocus_blur", "motion_blur", "spatter", "fog", "snow", "frost"])
def test_a_scaled_corruption_commutes_with_magnification(name):
    small = _photo(224)
    big = _magnified(small, 448)
    seeds = [3, 5]  # the same draws: motion blur's angle; fog's, snow's and spatter's layers (made at 224 px)
    # frost: the photograph's crop offset floor(u * span) lands within a pixel or two of twice the 224-px one
    bound = 2.5 if name == "frost" else 1.5
    for sev in (1, 3, 5):
        want = _magnified(onthefly.corrupt_batch(small, name, sev, seeds), 448).double()
        at_scale = (onthefly.corrupt_batch(big, name, sev, seeds, scale=2.0).double() - want).abs().mean()
        assert at_scale < bound, (name, sev, float(at_scale))
        unscaled = (onthefly.corrupt_batch(big, name, sev, seeds).double() - want).abs().mean()
        if name.endswith("_blur") and sev > 1:  # the 224-px parameters on the 448-px image: visibly less blur
            # (snow's and spatter's unscaled layers are drawn on the 448-px grid: other random numbers altogether)
            assert unscaled > 2 * at_scale + 1, (name, sev, float(unscaled), float(at_scale))


def test_a_layer_is_magnified_by_exactly_the_scale():
    from nsbench.bench.onthefly.weather import _magnified

    m = torch.rand(1, 10, 7, 1)
    for scale, (h, w) in ((1.3, (13, 9)), (300 / 224, (13, 9)), (0.5, (5, 3))):
        got = _magnified(m, h, w, scale)[0, ..., 0]
        assert got.shape == (h, w)
        if scale > 1:  # bilinear at source (i + 0.5) / scale - 0.5, edges clamped (align_corners=False)
            def taps(n, size):
                src = ((torch.arange(n, dtype=torch.float64) + 0.5) / scale - 0.5).clamp(min=0)
                i0 = src.floor().long().clamp(max=size - 1)
                return i0, (i0 + 1).clamp(max=size - 1), (src - i0).clamp(max=1)
            (r0, r1, wr), (c0, c1, wc) = taps(h, 10), taps(w, 7)
            g = m[0, ..., 0].double()
            rows = g[r0] * (1 - wr)[:, None] + g[r1] * wr[:, None]
            want = rows[:, c0] * (1 - wc) + rows[:, c1] * wc
            torch.testing.assert_close(got.double(), want, atol=1e-6, rtol=0)
    assert torch.equal(_magnified(m, 10, 7, 1.0), m)


@pytest.mark.parametrize("name", ["spatter", "snow", "fog"])
def test_layers_of_a_rectangular_image_are_magnified_along_each_side(name):
    small = _photo(224)[:, :, :112].contiguous()  # 224 rows x 112 columns
    big = _magnified(small, (448, 224))
    for sev in (1, 3, 5):
        want = _magnified(onthefly.corrupt_batch(small, name, sev, [3, 5]), (448, 224)).double()
        got = onthefly.corrupt_batch(big, name, sev, [3, 5], scale=2.0)
        assert got.shape == big.shape and (got.double() - want).abs().mean() < 1.5, (name, sev)


class MeanGrid(nn.Module):
    """A fixed model whose logits are a fixed mix of 4x4 cell means: any pixel change can move them."""

    def __init__(self, classes: int = 4):
        super().__init__()
        self.w = torch.linspace(-1, 1, 48 * classes).reshape(48, classes)

    def forward(self, x):
        return F.adaptive_avg_pool2d(x, 4).reshape(len(x), -1) @ self.w


def test_imagenet_c_at_160_px_is_scaled_cached_and_on_the_fly_alike(tmp_path):
    rng = np.random.default_rng(0)
    photos = _photo(160)[0].numpy()
    images = np.stack([np.roll(photos, 17 * k, axis=1) for k in range(4)])
    src = ArraySource("p160", images, rng.integers(0, 4, 4), list("abcd"))
    results = {}
    for how in ("cached", "on_the_fly"):
        cfg = SuiteConfig(name="t")
        t = cfg.corruptions
        t.corruptions, t.severities, t.limit, t.generate = ["gaussian_blur", "motion_blur"], [2, 5], None, how
        em = oracle_model(MeanGrid(), list("abcd"))
        em.input_size = 160
        ctx = EvalContext(em, cfg, tmp_path / "cache", torch.device("cpu"), workers=1)
        ctx._source = src
        results[how] = corruptions.run(ctx, t, Normaliser("none"))
    info = results["on_the_fly"].sets["corruptions"]
    assert info["calibration"] == "imagenet-c" and info["resolution"]["corrupted_at"] == 160
    assert info["resolution"]["spatial_scale"] == 160 / 224 and "160 / 224" in info["resolution"]["parameters"]
    assert results["cached"].sets["corruptions"]["resolution"] == info["resolution"]
    assert "torch, on the CPU, cached" in results["cached"].sets["corruptions"]["generator"]
    assert results["cached"].sets["corruptions"]["saved_as"].startswith("lossless")  # as every cached -C set says
    per = {how: pd_sorted(r.per_image) for how, r in results.items()}
    assert len(per["cached"]) == 2 * 2 * 4 and per["cached"].equals(per["on_the_fly"])  # the same images
    # the cached cells are the torch generator's at scale 160 / 224, each image with its seed
    folder = next((tmp_path / "cache" / "sets").glob("C-*"))
    manifest = cache.read_manifest(folder)
    assert manifest["spatial_scale"] == 160 / 224 and manifest["generator"].startswith("nsbench.bench.onthefly")
    clean, index = np.load(folder / "clean.npy"), np.load(folder / "indices.npy")
    seeds = [cache.seed_for(0, "motion_blur", 5, int(i)) for i in index]
    want = onthefly.corrupt_batch(torch.from_numpy(clean), "motion_blur", 5, seeds, scale=160 / 224).numpy()
    np.testing.assert_array_equal(np.load(folder / "motion_blur-5.npy"), want)
    unscaled = onthefly.corrupt_batch(torch.from_numpy(clean), "motion_blur", 5, seeds).numpy()
    assert np.abs(unscaled.astype(int) - want).mean() > 1  # the scale made a difference


def pd_sorted(per):
    import pandas as pd

    df = pd.concat(per) if isinstance(per, list) else per
    return df.sort_values(["condition", "severity", "image"]).reset_index(drop=True)


def test_other_calibrations_and_224_px_keep_their_sets(tmp_path):
    src = ArraySource("g32", np.full((2, 32, 32, 3), 128, np.uint8), np.zeros(2, np.int64), ["a"])
    _, manifest = corruption_sets.build_c(src, 32, ["contrast"], [1], None, 0, tmp_path, workers=1)
    assert "spatial_scale" not in manifest and "generator" not in manifest  # the set's key is unchanged
    assert manifest["resolution"]["spatial_scale"] == 1.0 and manifest["calibration"] == "cifar-10-c"
    assert corruption_sets.resolution(224, "imagenet-c") == {
        "corrupted_at": 224, "spatial_scale": 1.0, "parameters": "ImageNet-C's own size and parameters"}
    r = corruption_sets.resolution(40, "cifar-10-c")
    assert r["spatial_scale"] == 1.0 and "follow the image" in r["parameters"]
    p = perturbation_sets.resolution(300, "imagenet-p")
    assert p["corrupted_at"] == 300 and p["spatial_scale"] == 300 / 224 and "300 / 224" in p["parameters"]
