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


# ------------------------------------------------------------------------- the tables against the reference
# Issue 31: every parameter of the three -P tables, read by hand from hendrycks/robustness ImageNet-P/create_p/
# (make_cifar_p.py at 3d6c46d; make_tinyimagenet_p.py and make_imagenet_p.py at e0377d4, the last commits to touch
# them), cited file:line. Difficulties 2 / 3 are the commented `_2` / `_3` loops of the noise blocks. Every entry is
# the reference's own number at the generator's own size (the module's docstring; scaling happens in `sequence`).
# The frame recipes (which entry goes where in each frame) are pinned by the recording tests below.

REF_CIFAR_P = {
    "gaussian_noise": {1: 0.02, 2: 0.04, 3: 0.06},  # make_cifar_p.py:76, :80, :84 (x + 0.02 * torch.randn_like(x))
    "shot_noise": {1: 700, 2: 400, 3: 200},  # :96, :101, :106 (np.random.poisson(z * 700) / 700.)
    "speckle_noise": {1: 0.05, 2: 0.07, 3: 0.1},  # :257, :261, :265 (np.random.normal(..., scale=0.05))
    "motion_blur": (21, 6, 1.8, 9),  # :113 range(0, 21); :119 radius=6, sigma=1.8, angle=(i - 20) * 9
    "snow": (0.05, 0.3, 2, 10, 2),  # :150 loc=0.05, scale=0.3; :152 clipped_zoom(.., 2); :162 radius=10, sigma=2
    "brightness": 1.5,  # :182 c=(i - 15) * 1.5 / 100.
    "translate": (7, 16),  # :191 range(0,16); :192 translate=(i-7, 0)
    "tilt": 0.75,  # :214 np.deg2rad(0.75*(i-15))
    "scale": (2, 70),  # :244 scale=(i * 2 + 70) / 100.
    "gaussian_blur": (0.3, 0.015),  # :274 sigma=0.3 + 0.015*i
}
REF_TINY_P = {
    "gaussian_noise": {1: 0.025, 2: 0.05, 3: 0.075},  # make_tinyimagenet_p.py:75, :80, :85
    "shot_noise": {1: 500, 2: 250, 3: 125},  # :112, :119, :126
    "speckle_noise": {1: 0.05, 2: 0.1, 3: 0.15},  # :402, :408, :414
    "motion_blur": (31, 14, 3, 5),  # :146 range(0,31); :153 radius=14, sigma=3, angle=(i-30)*5
    "snow": (0.05, 0.28, 2, 10, 2.5),  # :213 loc=0.05, scale=0.28; :215 clipped_zoom(.., 2); :225 radius=10, sigma=2.5
    "brightness": 2,  # :259 c=(i - 15) * 2 / 100.
    "translate": (15, 31),  # :280 range(0,31); :281 translate=(i-15, 0)
    "tilt": 1,  # :329 np.deg2rad(i-15)
    "scale": (2.5, 40),  # :372 scale=(i * 2.5 + 40) / 100.
    "gaussian_blur": (0.35, 0.014),  # :438 sigma=0.35 + 0.014*i
}
REF_IMAGENET_P = {
    "gaussian_noise": {1: 0.03, 2: 0.05, 3: 0.08},  # make_imagenet_p.py:74, :79, :84
    "shot_noise": {1: 300, 2: 120, 3: 60},  # :110, :116, :122
    "speckle_noise": {1: 0.05, 2: 0.10, 3: 0.15},  # :398, :404, :410
    "motion_blur": (31, 10, 3, 4),  # :142 range(0,31); :149 radius=10, sigma=3, angle=(i-30)*4
    "snow": (0.05, 0.3, 3, 14, 4),  # :209 loc=0.05, scale=0.3; :211 clipped_zoom(.., 3); :221 radius=14, sigma=4
    "brightness": 2,  # :255 c=(i - 15) * 2 / 100.
    "translate": (20, 41),  # :276 range(0,41); :277 translate=(i-20, 0)
    "tilt": 1,  # :325 np.deg2rad(i-15)
    "scale": (2.5, 40),  # :368 scale=(i * 2.5 + 40) / 100.
    "gaussian_blur": (0.25, 0.035),  # :434 sigma=0.25 + 0.035*i
}
# The generator's own image size: CIFAR-10's 32 px (make_cifar_p.py:124 `z.shape != (32, 32)`, :243 CenterCrop(32)),
# make_tinyimagenet_p.py:60 Resize(64) and :69 CenterCrop(64), make_imagenet_p.py:68 and :104 CenterCrop(224).
REF_NATIVE = {"cifar-10-p": 32, "tiny-imagenet-p": 64, "imagenet-p": 224}


@pytest.mark.parametrize("calibration, ref", [("cifar-10-p", REF_CIFAR_P), ("tiny-imagenet-p", REF_TINY_P),
                                              ("imagenet-p", REF_IMAGENET_P)])
def test_every_p_table_entry_is_the_reference_generators_own(calibration, ref):
    table = perturbation_sets.TABLES[calibration]
    assert sorted(table) == sorted(ref)
    for name, want in ref.items():
        assert table[name] == want, (calibration, name)
        assert type(table[name]) is type(want), (calibration, name)  # a dict per difficulty, a tuple, a number
    assert perturbation_sets.NATIVE == REF_NATIVE
    assert perturbation_sets.SOURCES[calibration] == "hendrycks/robustness ImageNet-P/create_p/" + {
        "cifar-10-p": "make_cifar_p.py", "tiny-imagenet-p": "make_tinyimagenet_p.py",
        "imagenet-p": "make_imagenet_p.py"}[calibration]


# --------------------------------------------------------------- each frame's parameters, recorded (no real images)

class FakeRng:
    """Stands in for the generator: standard normal draws of 1, Poisson draws of their mean, normal draws of a fixed
    `value`; records every scale / loc asked for."""

    def __init__(self, value: float = 1.0):
        self.value, self.calls = value, []

    def standard_normal(self, shape):
        return np.ones(shape)

    def poisson(self, lam):
        self.calls.append(("poisson", float(np.max(lam))))
        return np.asarray(lam, dtype=float)

    def normal(self, size=None, loc=0.0, scale=1.0):
        self.calls.append(("normal", loc, scale))
        return np.full(size, self.value)


@pytest.fixture
def recorded(monkeypatch):
    """sequence() with _affine, _motion and tilt_matrix replaced by recorders that return their input (identity)."""
    calls = []

    def affine(img, angle=0.0, translate=(0, 0), scale=1.0, shear=0.0):
        calls.append(("affine", angle, tuple(translate), scale, shear))
        return img

    def motion(x, radius, sigma, angle):
        calls.append(("motion", radius, sigma, angle))
        return x

    def tilt(h, w, degrees):
        calls.append(("tilt", degrees))
        return np.eye(3)

    monkeypatch.setattr(perturbation_sets, "_affine", affine)
    monkeypatch.setattr(perturbation_sets, "_motion", motion)
    monkeypatch.setattr(perturbation_sets, "tilt_matrix", tilt)
    return calls


REFS = {"cifar-10-p": REF_CIFAR_P, "tiny-imagenet-p": REF_TINY_P, "imagenet-p": REF_IMAGENET_P}


@pytest.mark.parametrize("calibration", list(REFS))
@pytest.mark.parametrize("difficulty", [1, 2, 3])
def test_the_noise_of_each_difficulty_is_the_references_own(calibration, difficulty):
    """Difficulty d adds the `_d` loop's noise, 30 noisy frames after the clean one: x + std * N(0, 1) on a black
    image is std in every pixel; Poisson(x * lam) / lam (draws of their mean) is x again, having asked for x * lam;
    x + x * N(0, std) with draws of 0.5 is 1.5 x, having asked for std."""
    size = REF_NATIVE[calibration]
    black, grey = np.zeros((size, size, 3), np.uint8), np.full((size, size, 3), 102, np.uint8)  # grey: x = 0.4
    std = REFS[calibration]["gaussian_noise"][difficulty]
    seq = perturbation_sets.sequence(black, "gaussian_noise", difficulty, FakeRng(), calibration)
    assert seq.shape == (31, size, size, 3) and not seq[0].any()
    assert (seq[1:] == np.uint8(std * 255)).all()
    lam = REFS[calibration]["shot_noise"][difficulty]
    rng = FakeRng()
    seq = perturbation_sets.sequence(grey, "shot_noise", difficulty, rng, calibration)
    assert rng.calls == [("poisson", pytest.approx(0.4 * lam))] * 30
    assert len(seq) == 31 and (seq[0] == 102).all() and (np.abs(seq[1:].astype(int) - 102) <= 1).all()
    rng = FakeRng(0.5)
    seq = perturbation_sets.sequence(grey, "speckle_noise", difficulty, rng, calibration)
    assert rng.calls == [("normal", 0.0, REFS[calibration]["speckle_noise"][difficulty])] * 30
    assert len(seq) == 31 and (seq[0] == 102).all() and (np.abs(seq[1:].astype(int) - 153) <= 1).all()


@pytest.mark.parametrize("calibration, size", [("cifar-10-p", 32), ("tiny-imagenet-p", 64), ("imagenet-p", 224),
                                               ("cifar-10-p", 48), ("tiny-imagenet-p", 96)])
def test_the_motion_frames_are_the_references_and_their_pixel_sizes_scale_with_the_image(recorded, calibration,
                                                                                         size):
    """motion_blur: frame i of n blurs by (radius, sigma) at angle (i - (n - 1)) * step; snow's layer moves at
    angle 4 i - 150 (31 frames). Radius and sigma scale with size / the generator's size (1 at its own size)."""
    s = size / REF_NATIVE[calibration]
    n, radius, sigma, step = REFS[calibration]["motion_blur"]
    img = np.full((size, size, 3), 100, np.uint8)
    seq = perturbation_sets.sequence(img, "motion_blur", 1, FakeRng(), calibration)
    assert len(seq) == n
    assert recorded == [("motion", pytest.approx(radius * s), pytest.approx(sigma * s), (i - (n - 1)) * step)
                        for i in range(n)]
    recorded.clear()
    loc, scale, zoom, radius, sigma = REFS[calibration]["snow"]
    rng = FakeRng(0.0)
    assert len(perturbation_sets.sequence(img, "snow", 1, rng, calibration)) == 31
    assert rng.calls == [("normal", loc, scale)]  # the layer's mean and spread are not pixel sizes
    assert recorded == [("motion", pytest.approx(radius * s), pytest.approx(sigma * s), i * 4 - 150)
                        for i in range(31)]


def test_snow_keeps_flakes_from_0_5_and_blends_0_85_of_the_image(recorded, monkeypatch):
    """make_imagenet_p.py's snow (:211-:230): layer[layer < 0.5] = 0 after clipped_zoom(layer, zoom);
    z = 0.85 x + 0.15 max(x, gray * 1.5 + 0.5) + layer + rot90(layer, 2), clipped. Motion and zoom are identities here
    (recorded), so a layer of exactly 0.5 stays (uint8 127, twice 127 / 255 on top) and one just under is dropped."""
    zooms = []
    monkeypatch.setattr(perturbation_sets, "_zoom", lambda img, factor: (zooms.append(factor), img)[1])
    img = np.full((32, 32, 3), 51, np.uint8)  # x = 0.2, grey 0.2: 0.85 * 0.2 + 0.15 * 0.8 = 0.29
    base = 0.85 * 0.2 + 0.15 * max(0.2, 0.2 * 1.5 + 0.5)
    kept = perturbation_sets.sequence(img, "snow", 1, FakeRng(0.5), "cifar-10-p")
    dropped = perturbation_sets.sequence(img, "snow", 1, FakeRng(0.499), "cifar-10-p")
    assert zooms == [REF_CIFAR_P["snow"][2]] * 2
    assert abs(int(dropped[0, 0, 0, 0]) - int(base * 255)) <= 1 and (dropped == dropped[0, 0, 0, 0]).all()
    assert abs(int(kept[0, 0, 0, 0]) - int(min(1.0, base + 2 * 127 / 255) * 255)) <= 1 and (kept == kept[0, 0, 0, 0]).all()


def test_a_snow_layer_above_one_is_clipped_to_255_before_it_moves(recorded, monkeypatch):
    """np.uint8(np.clip(snow_layer, 0, 1) * 255) (make_imagenet_p.py's PNG of the layer): a layer of 1.2 is white,
    so on a black image every frame is white (0.075 of the base plus twice 1, clipped)."""
    monkeypatch.setattr(perturbation_sets, "_zoom", lambda img, factor: img)
    seq = perturbation_sets.sequence(np.zeros((32, 32, 3), np.uint8), "snow", 1, FakeRng(1.2), "cifar-10-p")
    assert seq.shape == (31, 32, 32, 3) and (seq == 255).all()


def test_snow_adds_its_8_bit_layer_at_each_pixel_and_at_its_point_reflection(monkeypatch):
    """z + snow_layer + np.rot90(snow_layer, k=2) with snow_layer the blurred layer as ImageMagick's 8-bit PNG gives
    it back (make_cifar_p.py:164-171). A layer lit on the left half only, blurred to 200 / 255 of itself, lights the
    left half by the layer and the right half by its reflection: every pixel of a black image is
    0.15 * 0.5 + 200 / 255, uint8 219."""
    monkeypatch.setattr(perturbation_sets, "_zoom", lambda img, factor: img)
    monkeypatch.setattr(perturbation_sets, "_motion", lambda x, radius, sigma, angle: x * (200 / 255))
    rng = FakeRng()
    rng.normal = lambda size, loc, scale: np.concatenate([np.ones((size[0], size[1] // 2)),
                                                          np.zeros((size[0], size[1] // 2))], axis=1)
    seq = perturbation_sets.sequence(np.zeros((8, 8, 3), np.uint8), "snow", 1, rng, "cifar-10-p")
    assert int(0.15 * 0.5 * 255 + 200) == 219 and (seq == 219).all()


@pytest.mark.parametrize("calibration", list(REFS))
def test_the_geometric_frames_are_the_references_at_its_own_size(recorded, calibration):
    """translate: i - shift pixels for i in range(frames); rotate / shear: i - 15 degrees (make_*_p.py: angle=i-15,
    shear=i-15); scale: (i step + first) / 100; zoom_blur: scale 1 + 0.004 i for i = 1..30 (make_*_p.py's zoom blur
    block); tilt: step (i - 15) degrees; all 31 frames but translate's."""
    size = REF_NATIVE[calibration]
    ref = REFS[calibration]
    img = np.full((size, size, 3), 100, np.uint8)

    def frames(name):
        recorded.clear()
        seq = perturbation_sets.sequence(img, name, 1, FakeRng(), calibration)
        return len(seq), list(recorded)

    shift, n = ref["translate"]
    assert frames("translate") == (n, [("affine", 0.0, (i - shift, 0), 1.0, 0.0) for i in range(n)])
    assert frames("rotate") == (31, [("affine", i - 15, (0, 0), 1.0, 0.0) for i in range(31)])
    assert frames("shear") == (31, [("affine", 0.0, (0, 0), 1.0, i - 15) for i in range(31)])
    step, first = ref["scale"]
    assert frames("scale") == (31, [("affine", 0.0, (0, 0), pytest.approx((i * step + first) / 100.0), 0.0)
                                    for i in range(31)])
    assert frames("zoom_blur") == (31, [("affine", 0.0, (0, 0), pytest.approx(1 + 0.004 * i), 0.0)
                                        for i in range(1, 31)])
    assert frames("tilt") == (31, [("tilt", pytest.approx(ref["tilt"] * (i - 15))) for i in range(31)])


def test_the_translation_scales_with_the_image_and_always_moves(recorded):
    """CIFAR-10-P's i - 7 for i in range(16) (make_cifar_p.py:191-192) at 64 px (size / 32 = 2): shifts of twice
    the pixels, -14 .. 15; at 2 px the scaled shift (7 / 16) would round to none: it moves by one pixel, -1 .. 2."""
    for size, want in ((64, range(-14, 16)), (2, range(-1, 3))):
        recorded.clear()
        img = np.zeros((size, size, 3), np.uint8)
        assert len(perturbation_sets.sequence(img, "translate", 1, FakeRng(), "cifar-10-p")) == len(want)
        assert [c[2] for c in recorded] == [(t, 0) for t in want]


def test_zoom_blur_averages_the_clean_image_and_every_zoomed_frame_so_far(recorded, monkeypatch):
    """make_cifar_p.py:136-:142: avg = clean + zoomed_1 + ... + zoomed_i, frame i = avg / (i + 1). With every zoomed
    frame black and the image white, frame i is 255 / (i + 1) (truncated)."""
    monkeypatch.setattr(perturbation_sets, "_affine", lambda img, **kw: np.zeros_like(img))
    seq = perturbation_sets.sequence(np.full((8, 8, 3), 255, np.uint8), "zoom_blur", 1, FakeRng(), "cifar-10-p")
    want = [255] + [int(255 / (i + 1)) for i in range(1, 31)]
    assert np.abs(seq[:, 0, 0, 0].astype(int) - want).max() <= 1 and (seq == seq[:, :1, :1, :1]).all()


@pytest.mark.parametrize("calibration", list(REFS))
def test_brightness_shifts_v_by_the_references_step_per_frame(calibration):
    """brightness(x, c=(i - 15) * step / 100.) (make_*_p.py): on a grey image V is the grey level, so frame i is
    clip(128 / 255 + (i - 15) step / 100) * 255, within a grey level (float32 HSV)."""
    step = REFS[calibration]["brightness"]
    img = np.full((8, 8, 3), 128, np.uint8)
    seq = perturbation_sets.sequence(img, "brightness", 1, FakeRng(), calibration)
    want = [np.clip(128 / 255 + (i - 15) * step / 100, 0, 1) * 255 for i in range(31)]
    assert np.abs(seq[:, 0, 0, 0] - np.array(want)).max() <= 1.0 and (seq == seq[:, :1, :1, :1]).all()
    # (240, 120, 120) is hue 0, saturation 0.5, V 240 / 255: RGB = (V, V / 2, V / 2) with V clipped to [0, 1] first
    # (brightness(): np.clip(_x[:, :, 2] + c, 0, 1)), so the bright frames stay (255, 127.5, 127.5)
    seq = perturbation_sets.sequence(np.full((8, 8, 3), (240, 120, 120), np.uint8), "brightness", 1, FakeRng(),
                                     calibration)
    v = np.array([np.clip(240 / 255 + (i - 15) * step / 100, 0, 1) for i in range(31)])
    assert np.abs(seq[:, 0, 0].astype(float) - np.stack([v * 255, v * 127.5, v * 127.5], 1)).max() <= 1.0


@pytest.mark.parametrize("calibration, size", [("cifar-10-p", 32), ("imagenet-p", 224), ("cifar-10-p", 64)])
def test_gaussian_blur_sigma_grows_as_the_reference_and_scales_with_the_image(monkeypatch, calibration, size):
    """gaussian(x, sigma=first + step * i) for i in range(31) (make_*_p.py's gaussian blur block), scaled by
    size / the generator's size."""
    sigmas = []
    monkeypatch.setattr(perturbation_sets.cv2, "GaussianBlur",
                        lambda img, k, sigma: (sigmas.append((k, sigma)), img)[1])
    first, step = REFS[calibration]["gaussian_blur"]
    s = size / REF_NATIVE[calibration]
    seq = perturbation_sets.sequence(np.full((size, size, 3), 9, np.uint8), "gaussian_blur", 1, FakeRng(), calibration)
    # kernel size (0, 0): OpenCV sizes the kernel from sigma in both directions
    assert len(seq) == 31 and sigmas == [((0, 0), pytest.approx((first + step * i) * s)) for i in range(31)]


def test_blurs_keep_black_black_and_white_white():
    """A blur of a constant image is that image (weights >= 0 summing to 1): every gaussian_blur frame of a black
    image is 0 and of a white one 255; every motion_blur frame of a black image is 0."""
    for value in (0, 255):
        seq = perturbation_sets.sequence(np.full((32, 32, 3), value, np.uint8), "gaussian_blur", 1, FakeRng())
        assert seq.shape == (31, 32, 32, 3) and (seq == value).all()
    seq = perturbation_sets.sequence(np.zeros((32, 32, 3), np.uint8), "motion_blur", 1, FakeRng())
    assert seq.shape[1:] == (32, 32, 3) and len(seq) > 1 and not seq.any()


def bilinear(img: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """img (H, W) sampled at rows ys and columns xs by bilinear interpolation, coordinates clamped to the image
    (OpenCV's INTER_LINEAR with its replicated border)."""
    def weights(c, n):
        c = np.clip(c, 0, n - 1)
        lo = np.minimum(np.floor(c).astype(int), n - 1)
        hi = np.minimum(lo + 1, n - 1)
        return lo, hi, c - lo
    y0, y1, fy = weights(ys, img.shape[0])
    x0, x1, fx = weights(xs, img.shape[1])
    top = img[y0][:, x0] * (1 - fx) + img[y0][:, x1] * fx
    bottom = img[y1][:, x0] * (1 - fx) + img[y1][:, x1] * fx
    return top * (1 - fy)[:, None] + bottom * fy[:, None]


@pytest.mark.parametrize("h, factor", [(10, 3), (32, 2), (11, 2), (224, 3)])
def test_snows_zoom_is_the_references_centre_crop_magnified_and_trimmed(h, factor):
    """clipped_zoom (make_imagenet_p.py's): crop the centre ceil(h / zoom) rows and columns from (h - ch) // 2,
    magnify by zoom (here bilinear, pixel centres at (i + 0.5) / zoom - 0.5), trim the centre h from
    (zoomed - h) // 2."""
    img = np.random.default_rng(h).random((h, h, 1), dtype=np.float32)
    ch = int(np.ceil(h / factor))
    top = (h - ch) // 2
    crop = img[top:top + ch, top:top + ch, 0].astype(np.float64)
    trim = (round(ch * factor) - h) // 2
    at = (np.arange(h) + trim + 0.5) / factor - 0.5
    out = perturbation_sets._zoom(img, factor)
    assert out.shape[:2] == (h, h)
    np.testing.assert_allclose(out.reshape(h, h), bilinear(crop, at, at), atol=1e-4)


def test_a_sequence_of_a_non_square_image_is_refused():
    with pytest.raises(NsbenchError, match="square images, not 32x48"):
        perturbation_sets.sequence(np.zeros((32, 48, 3), np.uint8), "rotate", 1, FakeRng())


def test_the_tilt_homography_is_the_references():
    """make_imagenet_p.py:325-:342 written out: phi = theta = deg2rad(degrees), f = sqrt(w^2 + h^2),
    mat = P2 @ T @ RX @ RY @ P1."""
    for h, w, degrees in ((32, 32, -11.25), (64, 48, 7.0), (224, 224, 1.0)):
        phi = theta = np.deg2rad(degrees)
        f = np.sqrt(w ** 2 + h ** 2)
        P1 = np.array([[1, 0, -w / 2], [0, 1, -h / 2], [0, 0, 1], [0, 0, 1]])
        RX = np.array([[1, 0, 0, 0], [0, np.cos(theta), -np.sin(theta), 0],
                       [0, np.sin(theta), np.cos(theta), 0], [0, 0, 0, 1]])
        RY = np.array([[np.cos(phi), 0, -np.sin(phi), 0], [0, 1, 0, 0],
                       [np.sin(phi), 0, np.cos(phi), 0], [0, 0, 0, 1]])
        T = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, f], [0, 0, 0, 1]])
        P2 = np.array([[f, 0, w / 2, 0], [0, f, h / 2, 0], [0, 0, 1, 0]])
        np.testing.assert_allclose(perturbation_sets.tilt_matrix(h, w, degrees), P2 @ T @ RX @ RY @ P1, rtol=1e-12)


# ------------------------------------------------------------------------------- build_p: what is (re)built

def test_a_set_asked_for_no_perturbation_holds_the_clean_images_and_a_later_one_adds_a_perturbation(tmp_path):
    """On the fly asks for no sequence: the first call still writes the clean images, labels, indices and a manifest
    (build_p's `if manifest and want <= set(have)`); a later call for a perturbation not yet built builds it in the
    same folder and keeps what was there."""
    src = grey(2, 8)
    folder, manifest = perturbation_sets.build_p(src, 8, [], 1, None, 0, tmp_path, workers=1)
    assert (folder / "clean.npy").exists() and (folder / "labels.npy").exists() and (folder / "manifest.json").exists()
    assert manifest["sequences"] == [] and manifest["n"] == 2 and np.load(folder / "clean.npy").shape == (2, 8, 8, 3)
    same, m2 = perturbation_sets.build_p(src, 8, ["rotate"], 1, None, 0, tmp_path, workers=1)
    assert same == folder and [c["perturbation"] for c in m2["sequences"]] == ["rotate"]
    assert np.load(folder / "rotate-d1.npy").shape == (2, 31, 8, 8, 3)
    _, m3 = perturbation_sets.build_p(src, 8, ["shear"], 1, None, 0, tmp_path, workers=1)
    assert [c["perturbation"] for c in m3["sequences"]] == ["rotate", "shear"] and (folder / "shear-d1.npy").exists()


def test_a_set_asked_for_what_it_holds_is_reused_without_writing(tmp_path, monkeypatch):
    """A second call for exactly the perturbations already built (want == have) returns the set as it is: nothing
    is written again, not even the clean images."""
    src = grey(2, 8)
    folder, first = perturbation_sets.build_p(src, 8, ["rotate"], 1, None, 0, tmp_path, workers=1)
    monkeypatch.setattr(perturbation_sets, "write_clean_set", lambda *a: pytest.fail("rewrote the clean images"))
    same, again = perturbation_sets.build_p(src, 8, ["rotate"], 1, None, 0, tmp_path, workers=1)
    assert same == folder and again["sequences"] == first["sequences"]


def test_only_the_noise_perturbations_keep_difficulties_2_and_3_in_their_own_folders():
    """official_folder's docstring (ImageNet-P's layout): gaussian_noise_2 / _3 etc. hold the noise difficulties;
    every other perturbation has one folder."""
    assert perturbation_sets.official_folder("gaussian_noise", 1) == "gaussian_noise"
    assert perturbation_sets.official_folder("shot_noise", 2) == "shot_noise_2"
    assert perturbation_sets.official_folder("speckle_noise", 3) == "speckle_noise_3"
    assert [perturbation_sets.official_folder("rotate", d) for d in (1, 2, 3)] == ["rotate"] * 3


@pytest.mark.parametrize("name, message", [("spatter", "perturbation 'spatter' is not generated by nsbench; use the "
                                                       "official ImageNet-P"),
                                           ("sparkle", "unknown perturbation 'sparkle'")])
def test_spatter_and_unknown_perturbations_are_refused_by_name(name, message):
    with pytest.raises(NsbenchError, match=f"^{message}$"):
        perturbation_sets.sequence(np.zeros((32, 32, 3), np.uint8), name, 1, FakeRng())
