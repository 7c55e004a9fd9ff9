"""The weather corruptions in torch (bench/onthefly/weather.py) against their references: imagecorruptions' snow,
frost, fog and spatter and nsbench's calibrated numpy generators, fed the very draws the torch op made (numpy's
generator patched), give the same image; with their own randomness, they agree in distribution; an image's
corruption depends on its seed alone."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import check_batch_independence, imagecorruptions_list
from nsbench.bench import calibrated
from nsbench.bench.onthefly import corrupt_batch
from nsbench.bench.onthefly import weather as wx
from nsbench.bench.onthefly.rng import Rng

C = pytest.importorskip("imagecorruptions.corruptions")
NAMES = sorted(wx.OPS)
S = wx.STREAMS


def _photo(name: str, size: int) -> np.ndarray:
    """A scikit-image photograph, centre square, resized with PIL."""
    import skimage.data

    im = getattr(skimage.data, name)()
    s = min(im.shape[:2])
    t0, t1 = (im.shape[0] - s) // 2, (im.shape[1] - s) // 2
    return np.asarray(Image.fromarray(im[t0 : t0 + s, t1 : t1 + s]).resize((size, size), Image.BICUBIC))


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return _photo("astronaut", 32)


def _torch(imgs: np.ndarray, name: str, severity: int, calibration: str, seeds) -> np.ndarray:
    x = torch.from_numpy(np.array(imgs)).to(torch.float32)
    return wx.OPS[name](x, severity, calibration, Rng(seeds), 1.0).clamp(0, 255).to(torch.uint8).numpy()


def _reference(img: np.ndarray, name: str, severity: int, calibration: str, seed: int) -> np.ndarray:
    """What corruption_sets.corrupt_one computes (before Tiny-ImageNet-C's JPEG)."""
    np.random.seed(seed)
    if calibration != "imagenet-c":
        return calibrated.corrupt_calibrated(img, name, severity, calibration, seed)
    from imagecorruptions import corrupt

    return corrupt(img, corruption_name=name, severity=severity)


def _injected(monkeypatch, img: np.ndarray, name: str, severity: int, calibration: str, seed: int) -> np.ndarray:
    """The reference, its numpy draws replaced by the ones the torch op made for `seed`."""
    h, w = img.shape[:2]
    r = Rng([seed])
    if name in ("snow", "spatter"):  # the layer's normals, then (snow) the motion blur's angle
        z = r.normal(S["layer"], (h, w))[0].numpy()
        u = float(r.uniform(S["angle"])[0])
        monkeypatch.setattr(np.random, "normal", lambda size=None, loc=0.0, scale=1.0: loc + scale * z)
        monkeypatch.setattr(np.random, "uniform", lambda lo, hi, size=None: lo + (hi - lo) * u)
    elif name == "frost":  # randint(6) (calibrated: 5), then the crop's top and left
        draws = iter([float(r.uniform(S[k])[0]) for k in ("photo", "top", "left")])

        def randint(low, high=None, size=None):
            low, high = (0, low) if high is None else (low, high)
            return low + int(math.floor(next(draws) * (high - low)))

        monkeypatch.setattr(np.random, "randint", randint)
    elif name == "fog":  # plasma_fractal's uniforms, one call per pass, stream by stream
        calls = iter(range(10**6))
        monkeypatch.setattr(np.random, "uniform", lambda lo, hi, size=None: lo + (hi - lo) * r.uniform(
            S["plasma"] + next(calls), tuple(size))[0].numpy())
    out = _reference(img, name, severity, calibration, seed)
    monkeypatch.undo()
    return out


def _agree(got: np.ndarray, ref: np.ndarray, what) -> None:
    d = np.abs(got.astype(int) - ref.astype(int))
    assert d.max() <= 1 and (d == 0).mean() >= 0.99, (what, d.max(), (d == 0).mean())


@pytest.mark.parametrize("calibration", ["imagenet-c", "cifar-10-c"])
@pytest.mark.parametrize("name", NAMES)
def test_the_reference_fed_the_same_draws_gives_the_same_image(monkeypatch, photo, name, calibration):
    for severity in range(1, 6):
        seed = 10 + severity
        got = _torch(photo[None], name, severity, calibration, [seed])[0]
        _agree(got, _injected(monkeypatch, photo, name, severity, calibration, seed), (name, severity))


@pytest.mark.parametrize("name", NAMES)
def test_tiny_imagenet_at_64_px(monkeypatch, name):
    img = _photo("coffee", 64)
    for severity in (2, 5):
        got = _torch(img[None], name, severity, "tiny-imagenet-c", [severity])[0]
        _agree(got, _injected(monkeypatch, img, name, severity, "tiny-imagenet-c", severity), (name, severity))


@pytest.mark.parametrize("name", NAMES)
def test_imagenet_at_224_px(monkeypatch, name):
    """One photograph, one severity each (every photograph and severity: the slow test below)."""
    img = _photo("chelsea", 224)
    _agree(_torch(img[None], name, 3, "imagenet-c", [7])[0], _injected(monkeypatch, img, name, 3, "imagenet-c", 7), name)


@pytest.mark.slow
@pytest.mark.parametrize("calibration", ["imagenet-c", "cifar-10-c"])
@pytest.mark.parametrize("name", NAMES)
def test_every_severity_on_224_px_photographs(monkeypatch, name, calibration):
    for k, picture in enumerate(("astronaut", "coffee", "chelsea", "rocket")):
        img = _photo(picture, 224)
        for severity in range(1, 6):
            seed = 100 * k + severity
            got = _torch(img[None], name, severity, calibration, [seed])[0]
            _agree(got, _injected(monkeypatch, img, name, severity, calibration, seed), (picture, severity))


def test_imagenet_table_is_imagecorruptions_own():
    """Each function's `c = [...]` read from imagecorruptions' source."""
    for name in NAMES:
        assert imagecorruptions_list(getattr(C, name)) == wx.IMAGENET[name], name


@pytest.mark.parametrize("name", NAMES)
def test_an_image_alone_or_in_a_batch_and_the_same_seed_twice(photo, name):
    check_batch_independence(lambda imgs, seeds: _torch(imgs, name, 4, "imagenet-c", seeds), photo)


@pytest.mark.parametrize("calibration", ["imagenet-c", "cifar-10-c"])
@pytest.mark.parametrize("name", NAMES)
def test_distribution_of_the_change_matches_the_reference(photo, name, calibration):
    """Mean and spread of (corrupted - clean) over 24 seeds each, torch's draws vs numpy's, within 5 standard
    errors (every severity at 32 and 224 px: the issue's report)."""
    k = 24
    ours = _torch(np.repeat(photo[None], k, 0), name, 3, calibration, list(range(1000, 1000 + k))).astype(float) - photo
    ref = np.stack([_reference(photo, name, 3, calibration, 2000 + s) for s in range(k)]).astype(float) - photo
    for stat in (lambda d: d.mean(axis=(1, 2, 3)), lambda d: d.std(axis=(1, 2, 3))):
        a, b = stat(ours), stat(ref)
        se = math.sqrt(a.var(ddof=1) / k + b.var(ddof=1) / k) + 1e-9
        assert abs(a.mean() - b.mean()) < 5 * se + 0.01, (name, a.mean(), b.mean(), se)


@pytest.mark.parametrize("calibration, count", [("imagenet-c", 6), ("cifar-10-c", 5)])
def test_frost_draws_every_photograph_the_reference_draws(calibration, count):
    """imagecorruptions picks one of 6 photographs, calibrated.py (make_cifar_c.py) one of the first 5."""
    stack, sizes = wx._frost_layers(32, 32, calibration, "cpu", 1.0)
    assert len(stack) == len(sizes) == count
    picked = Rng(list(range(600))).integers(S["photo"], len(stack))
    assert set(picked.tolist()) == set(range(count))


def test_plasma_fractal_is_a_unit_map_of_every_power_of_two():
    m = wx.plasma_fractal(Rng([1, 2]), 64, 2.0)
    assert m.shape == (2, 64, 64) and m.dtype == torch.float32
    assert torch.equal(m.amin(dim=(1, 2)), torch.zeros(2)) and torch.equal(m.amax(dim=(1, 2)), torch.ones(2))
    assert not torch.equal(m[0], m[1])


def test_corrupt_batch_runs_the_ops_and_rejects_an_unknown_calibration(photo):
    for name in NAMES:
        out = corrupt_batch(torch.from_numpy(photo.copy())[None], name, 3, [4], "tiny-imagenet-c")
        assert out.dtype == torch.uint8 and out.shape == (1, 32, 32, 3)
    with pytest.raises(ValueError, match="calibration"):
        wx.OPS["fog"](torch.zeros(1, 32, 32, 3), 1, "imagenet", Rng([0]), 1.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("calibration", ["imagenet-c", "cifar-10-c"])
@pytest.mark.parametrize("name", NAMES)
def test_the_same_images_on_the_gpu(name, calibration):
    img = _photo("rocket", 224)
    x = torch.from_numpy(np.stack([img, img[::-1]]))
    for severity in (1, 5):
        cpu = corrupt_batch(x, name, severity, [1, 2], calibration).int()
        gpu = corrupt_batch(x.cuda(), name, severity, [1, 2], calibration).cpu().int()
        d = (cpu - gpu).abs()
        assert d.max() <= 1 and (d == 0).double().mean() >= 0.99, (name, severity, d.max())


# ---------------------------------------------------------------- building blocks, exactly (issue 31)
# Each helper against the reference code it reproduces, bit for bit: imagecorruptions' plasma_fractal and
# clipped_zoom (scipy.ndimage.zoom, order 1), skimage's gaussian, the frost photographs as frost() and
# calibrated._frost resize them, spatter()'s cv2 water relief; and the raw (unclipped to uint8) float outputs of the
# ops against the references' raw outputs, fed chosen draws (no tolerance: the module claims identical images).


class _Draws:
    """An Rng for one image whose draws the test chooses: normal -> z (the layer), uniform -> u[stream] (snow's
    angle; frost's top and left), integers -> k (frost's photograph)."""

    device = torch.device("cpu")

    def __init__(self, z=None, u=None, k=0):
        self.z, self.u, self.k = z, u or {}, k

    def __len__(self):
        return 1

    def normal(self, stream, shape=()):
        return torch.as_tensor(np.asarray(self.z, np.float64)).reshape(1, *shape)

    def uniform(self, stream, shape=()):
        return torch.full((1, *shape), float(self.u.get(stream, 0.0)), dtype=torch.float64)

    def integers(self, stream, high, shape=()):
        return torch.full((1, *shape), self.k, dtype=torch.int64)


def _raw(x: np.ndarray, name: str, severity: int, calibration: str, rng) -> np.ndarray:
    """The op's float output for one image (no clamp, no uint8)."""
    return wx.OPS[name](torch.from_numpy(np.array(x))[None].to(torch.float32), severity, calibration, rng, 1.0)[0].numpy()


def _reference_raw(monkeypatch, img, name, severity, calibration, z=None, u=0.0, k=0, top=0, left=0):
    """The reference's float image in 0..255 before np.uint8 (imagecorruptions' function, or calibrated.py's generator
    clipped as corrupt_calibrated clips it), its numpy draws replaced by z (normals), u (uniform), k, top, left
    (randint: the photograph, then the crop)."""
    with monkeypatch.context() as mp:
        mp.setattr(np.random, "normal", lambda size=None, loc=0.0, scale=1.0: loc + scale * np.asarray(z))
        mp.setattr(np.random, "uniform", lambda lo, hi, size=None: lo + (hi - lo) * u)
        ints = iter([k, top, left])
        mp.setattr(np.random, "randint", lambda *a, **kw: next(ints))
        if calibration == "imagenet-c":
            return np.asarray(getattr(C, name)(Image.fromarray(img), severity), np.float64)  # mud: x_PIL.convert
        c = calibrated.params(calibration, name, severity)
        if name == "frost":
            return calibrated._frost(img, c, calibrated.FROST_SCALE[calibration]).astype(np.float64)
        x = (img.astype(np.float64) / 255.0).astype(np.float32)
        return np.clip(getattr(calibrated, "_" + name)(x, c), 0, 1) * 255


def _same_grey_levels(got: np.ndarray, ref: np.ndarray, what) -> None:
    """np.uint8 of the reference's float (truncation; NaN as 0) equals the op's, on every pixel: the op's float
    values themselves stay in 0..255 as the reference's np.clip leaves them."""
    assert got.max() <= 255 and got.min() >= 0, (what, got.max(), got.min())
    ref = np.floor(np.nan_to_num(ref, nan=0.0))
    assert np.array_equal(np.floor(got), ref), (what, np.abs(np.floor(got) - ref).max())


def test_plasma_fractal_is_imagecorruptions_own_with_the_same_draws(monkeypatch):
    """Every map size (1: a single point, 0 / 0 as in the reference) and the default first stream: the k-th call of
    np.random.uniform is stream k."""
    for size, decay, seed in [(1, 2.0, 0), (2, 3.0, 1), (8, 1.7, 2), (32, 1.4, 3), (64, 2.0, 4)]:
        r = Rng([seed])
        calls = iter(range(100))
        with monkeypatch.context() as mp:
            mp.setattr(np.random, "uniform", lambda lo, hi, size=None: lo + (hi - lo) * r.uniform(
                next(calls), tuple(size))[0].numpy())
            with np.errstate(invalid="ignore"):
                ref = C.plasma_fractal(mapsize=size, wibbledecay=decay)
        got = wx.plasma_fractal(r, size, decay)[0].numpy()
        assert got.dtype == ref.dtype == np.float32
        assert np.array_equal(got, ref, equal_nan=True), size
    with pytest.raises(AssertionError, match="power of two"):
        wx.plasma_fractal(Rng([0]), 6, 2.0)


@pytest.mark.parametrize("calibration", ["imagenet-c", "cifar-10-c"])
def test_fog_map_size_is_the_references(monkeypatch, calibration):
    """imagecorruptions: next_power_of_2(max(np.array(x).shape)), so the 3 channels count for tiny images;
    calibrated._fog: 1 << ceil(log2(max(h, w)))."""
    asked = []
    plasma = wx.plasma_fractal
    monkeypatch.setattr(wx, "plasma_fractal", lambda rng, size, *a: asked.append(size) or plasma(rng, size, *a))
    for h, w in [(1, 1), (2, 2), (1, 3), (3, 5), (9, 17), (33, 20), (20, 33), (64, 64), (65, 3)]:
        wx.fog(torch.full((1, h, w, 3), 100.0), 2, calibration, Rng([0]), 1.0)
        if calibration == "imagenet-c":
            assert asked[-1] == C.next_power_of_2(int(np.max(np.zeros((h, w, 3)).shape))), (h, w)
        else:
            assert asked[-1] == 1 << int(np.ceil(np.log2(max(h, w)))), (h, w)


@pytest.mark.parametrize("size, factor", [((1, 1), 1), ((1, 5), 1), ((5, 1), 2), ((3, 3), 3), ((2, 7), 1.25),
                                          ((32, 32), 2.5), ((32, 20), 4.5), ((17, 64), 1.75), ((64, 64), 4)])
def test_zoom_is_imagecorruptions_clipped_zoom(size, factor):
    """scipy.ndimage.zoom(order=1) of the centre crop of side ceil(side / factor), its whole output (to float64's
    last bits: scipy sums the two taps in another order)."""
    layer = np.random.default_rng(size[0] * 100 + size[1]).normal(0.5, 0.3, size)
    ref = C.clipped_zoom(layer[..., None], factor)[..., 0]
    got = wx._zoom(torch.from_numpy(layer)[None], factor)[0].numpy()
    assert got.shape == ref.shape and np.allclose(got, ref, rtol=1e-13, atol=0), (size, factor)  # to float64 ulps


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gauss_nearest_is_skimage_gaussian(dtype):
    """skimage.filters.gaussian (mode nearest, truncate 4): float64 to its ulps, float32 (stored as float32 per
    axis) exactly."""
    from skimage.filters import gaussian

    x = np.random.default_rng(3).normal(0.6, 0.3, (2, 24, 40)).astype(dtype)
    for sigma in (0.5, 1, 1.5, 4):
        got = wx._gauss_nearest(torch.from_numpy(x), sigma).numpy()
        assert got.dtype == dtype
        for i in range(2):
            ref = gaussian(x[i], sigma=sigma, preserve_range=True)
            if dtype == np.float32:
                assert np.array_equal(got[i], ref), sigma
            else:  # to float64 ulps: a float32 rounding anywhere is 1e-8
                assert np.allclose(got[i], ref, rtol=1e-13, atol=0), sigma


def test_grey_is_cv2_rgb2gray_on_rows_of_eight():
    import cv2

    x = np.random.default_rng(4).random((3, 16, 32, 3), dtype=np.float32)
    got = wx._gray(torch.from_numpy(x))[..., 0].numpy()
    for i in range(3):
        assert np.array_equal(got[i], cv2.cvtColor(x[i], cv2.COLOR_RGB2GRAY))


def test_water_relief_is_spatters_cv2_chain():
    """imagecorruptions' spatter, water branch: Canny(50, 150), distanceTransform, threshold at 20, blur, uint8,
    equalizeHist, the ripple filter, blur; on noise (gradients at every Canny threshold) and on blocks (distances
    past 20)."""
    import cv2

    def reference(layer):
        dist = 255 - cv2.Canny(layer, 50, 150)
        dist = cv2.distanceTransform(dist, cv2.DIST_L2, 5)
        _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
        dist = cv2.blur(dist, (3, 3)).astype(np.uint8)
        dist = cv2.equalizeHist(dist)
        dist = cv2.filter2D(dist, cv2.CV_8U, np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]]))
        return cv2.blur(dist, (3, 3)).astype(np.float32)

    rng = np.random.default_rng(5)
    noise = rng.integers(0, 256, (64, 64)).astype(np.uint8)
    smooth = np.clip(np.cumsum(rng.integers(0, 4, (64, 64)), 1), 0, 255).astype(np.uint8)
    blocks = np.zeros((64, 64), np.uint8)
    blocks[:, 50:] = 200
    for layer in (noise, smooth, blocks):
        got = wx._water_relief(torch.from_numpy(layer)[None].to(torch.float64))[0].numpy()
        assert np.array_equal(got, reference(layer))


def _frost_resize_of_reference(monkeypatch, k, h, w, calibration):
    """The resized photograph k the reference crops for an h x w image (cv2.resize's output, recorded)."""
    import cv2

    seen = []
    resize = cv2.resize
    with monkeypatch.context() as mp:
        mp.setattr(cv2, "resize", lambda *a, **kw: seen.append(resize(*a, **kw)) or seen[-1])
        _reference_raw(mp, np.zeros((h, w, 3), np.uint8), "frost", 1, calibration, k=k)
    return seen[0]


@pytest.mark.parametrize("calibration", ["imagenet-c", "cifar-10-c", "tiny-imagenet-c"])
def test_frost_photographs_resized_as_the_reference_resizes_them(monkeypatch, calibration):
    """Image sizes below, at and past each photograph's height and width (imagecorruptions enlarges a photograph
    smaller than the image on either side; calibrated.py takes the least scale past the image)."""
    for k in range(6 if calibration == "imagenet-c" else 5):
        ph, pw = wx._frost_photo(k).shape[:2]
        for h, w in [(32, 32), (ph, pw - 20), (ph + 7, pw - 20), (ph + 7, pw), (ph - 20, pw), (ph - 20, pw + 7),
                     (ph, pw + 7), (ph + 3, pw + 40), (ph + 40, pw + 3), (ph, pw)]:
            ref = _frost_resize_of_reference(monkeypatch, k, h, w, calibration)
            got = wx._resized_photo(k, h, w, calibration, 1.0)
            assert got.shape == ref.shape and np.array_equal(got, ref), (k, h, w)


@pytest.mark.parametrize("calibration", ["imagenet-c", "cifar-10-c"])
def test_frost_stack_holds_each_photograph_rgb_zero_padded(calibration):
    """[K, largest height, largest width, 3]: photograph k (BGR read, RGB here) at the top left, zeros elsewhere."""
    stack, sizes = wx._frost_layers(40, 40, calibration, "cpu", 1.0)
    photos = [wx._resized_photo(k, 40, 40, calibration, 1.0)[..., ::-1] for k in range(len(stack))]
    hs, ws = [p.shape[0] for p in photos], [p.shape[1] for p in photos]
    assert tuple(stack.shape) == (len(photos), max(hs), max(ws), 3)
    assert sizes.tolist() == [[a, b] for a, b in zip(hs, ws)]
    for k, p in enumerate(photos):
        padded = np.zeros((max(hs), max(ws), 3), np.uint8)
        padded[: p.shape[0], : p.shape[1]] = p
        assert np.array_equal(stack[k].numpy(), padded), k


@pytest.mark.parametrize("calibration, h, k", [("imagenet-c", 48, 5), ("cifar-10-c", 32, 0), ("cifar-10-c", 64, 1),
                                               ("tiny-imagenet-c", 100, 2)])
def test_frost_raw_output_on_black_and_white_images(monkeypatch, calibration, h, k):
    """0 and 255 images: np.clip(a x + b photo, 0, 255) saturates on white and stays at the photograph's dark pixels
    on black (frost6.jpg has zeros); a photograph only one pixel past the image (calibrated, 64 and 100 px: span 1)
    is cropped at its only place."""
    for value in (0, 255):
        img = np.full((h, h, 3), value, np.uint8)
        for severity in (1, 5):
            for top, left in [(0, 0), (0.999, 0.5)]:
                span = np.array(wx._frost_layers(h, h, calibration, "cpu", 1.0)[1][k]) - h
                t, l = int(np.floor(top * span[0])), int(np.floor(left * span[1]))
                got = _raw(img, "frost", severity, calibration, _Draws(u={S["top"]: top, S["left"]: left}, k=k))
                ref = _reference_raw(monkeypatch, img, "frost", severity, calibration, k=k, top=t, left=l)
                _same_grey_levels(got, ref, (value, severity))


def _at_threshold(loc, scale, threshold, shape, sigma=None):
    """A normal z, constant over the layer, with loc + scale * z == threshold in float64 (after skimage's gaussian
    when sigma is given), the nearest to (threshold - loc) / scale within 300 ulps, or None: the layer's pixels then
    sit exactly on the reference's threshold."""
    from skimage.filters import gaussian

    z0 = (threshold - loc) / scale
    steps = np.arange(1, 301)
    for z in [z0] + [z for n in steps for z in (z0 + n * np.spacing(z0), z0 - n * np.spacing(z0))]:
        layer = np.full(shape, loc + scale * z)
        if sigma is not None:
            layer = gaussian(layer, sigma=sigma, preserve_range=True)
        if (layer == threshold).any():
            return np.full(shape, z)
    return None


@pytest.mark.parametrize("calibration", ["imagenet-c", "cifar-10-c", "tiny-imagenet-c"])
def test_snow_raw_output_is_the_references(monkeypatch, photo, calibration):
    """Every severity, a normal layer and one exactly on the threshold (kept by `layer < threshold` -> 0 only below
    it), on a photograph and on white (saturating)."""
    rng = np.random.default_rng(6)
    for severity in range(1, 6):
        loc, scale, factor, threshold = wx.params("snow", severity, calibration, 1.0)[:4]
        # on the threshold: imagecorruptions' zoom only at its integer factors (severities 1 and 2), elsewhere the
        # taps' float64 sums differ from scipy's in the last bit, which decides a pixel exactly on the threshold
        edge = _at_threshold(loc, scale, threshold, (32, 32)) if calibration != "imagenet-c" or severity < 3 else None
        for z in (rng.normal(size=(32, 32)), edge):
            if z is None:
                continue
            for img in (photo, np.full_like(photo, 255)):
                got = _raw(img, "snow", severity, calibration, _Draws(z=z, u={S["angle"]: 0.3}))
                ref = _reference_raw(monkeypatch, img, "snow", severity, calibration, z=z, u=0.3)
                _same_grey_levels(got, ref, severity)


@pytest.mark.parametrize("calibration", ["imagenet-c", "cifar-10-c", "tiny-imagenet-c"])
def test_spatter_raw_output_is_the_references(monkeypatch, photo, calibration):
    """Every severity: a normal layer; one past 1 after the blur ((liquid * 255).astype(np.uint8) wraps); one below
    the threshold everywhere (water: 0 / 0, a black image); one exactly on the threshold after the blur (calibrated:
    water keeps it, mud's liquid > threshold does not); on a photograph and on white."""
    rng = np.random.default_rng(7)
    for severity in range(1, 6):
        loc, scale, sigma, threshold = wx.params("spatter", severity, calibration, 1.0)[:4]
        layers = [rng.normal(size=(32, 32)), rng.normal(size=(32, 32)) + 3.0, np.full((32, 32), -20.0)]
        if calibration != "imagenet-c":  # imagecorruptions' wider blurs: the last bit of the sums decides the edge
            layers.append(_at_threshold(loc, scale, threshold, (32, 32), sigma))
        for z in [z for z in layers if z is not None]:
            for img in (photo, np.full_like(photo, 255)):
                with np.errstate(invalid="ignore"):
                    ref = _reference_raw(monkeypatch, img, "spatter", severity, calibration, z=z)
                got = _raw(img, "spatter", severity, calibration, _Draws(z=z))
                _same_grey_levels(got, ref, severity)


def test_calibrated_snow_on_a_rectangle_crops_each_axis_at_its_centre(monkeypatch):
    """calibrated._snow crops the zoomed layer's centre (square images); on a rectangle, each axis's own centre:
    the reference with its zoom as imagecorruptions' clipped_zoom (per axis) and that centre crop of each axis."""
    def clipped_zoom(img, factor):
        z = C.clipped_zoom(img, factor)
        t0, t1 = (z.shape[0] - img.shape[0]) // 2, (z.shape[1] - img.shape[1]) // 2
        return z[t0 : t0 + img.shape[0], t1 : t1 + img.shape[1]]

    img = _photo("coffee", 32)[4:28]  # 24 x 32: the zoom at 1.75 gives 24 x 33
    z = np.random.default_rng(8).normal(size=(24, 32))
    monkeypatch.setattr(calibrated, "_clipped_zoom", clipped_zoom)
    for severity in (3, 4, 5):
        got = _raw(img, "snow", severity, "tiny-imagenet-c", _Draws(z=z, u={S["angle"]: 0.6}))
        ref = _reference_raw(monkeypatch, img, "snow", severity, "tiny-imagenet-c", z=z, u=0.6)
        _same_grey_levels(got, ref, severity)


def test_spatter_mud_keeps_a_mask_of_exactly_0_8(monkeypatch, photo):
    """make_cifar_c.py's mud: m[m < 0.8] = 0 (float32 against 0.8, numpy's float32 comparison): a blurred mask of
    exactly float32 0.8 stays, so every pixel is x (1 - m) + (63, 42, 20) / 255 m, in float32."""
    severity = next(s for s in range(1, 6) if wx.params("spatter", s, "cifar-10-c", 1.0)[5])
    blurs = iter([None, torch.full((1, 32, 32), 0.8, dtype=torch.float32)])

    def gauss(layer, sigma):  # the liquid layer as drawn, then the mud mask at exactly 0.8
        mask = next(blurs)
        return layer if mask is None else mask

    monkeypatch.setattr(wx, "_gauss_nearest", gauss)
    got = _raw(photo, "spatter", severity, "cifar-10-c", _Draws(z=np.zeros((32, 32))))
    m = np.float32(0.8)
    y = photo.astype(np.float32) / np.float32(255)
    want = np.clip(y * (1 - m) + np.array([63, 42, 20], np.float32) / np.float32(255) * m, 0, 1) * 255
    np.testing.assert_allclose(got, want, rtol=1e-6)
