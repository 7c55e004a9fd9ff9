"""Training noise on uint8 batches (nsbench/data/augment.py) and decoding on the device (decode.py): each op equals
PIL's, every image draws its own ops, ranges hold, and a step's pixels depend on the seed alone (not on the loader's
workers or the device)."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance, ImageOps

from helpers import teacher_probs
from nsbench.data import augment
from nsbench.data.decode import crop_box, decode_batch, device_crops
from nsbench.data.loaders import ImageDataset, auto_workers, chunk_size, iterate_clean
from nsbench.data.sources import ArraySource, scan_folder
from nsbench.data.transforms import TrainAugment
from nsbench.training.batches import MixedBatchSampler, MixedCollate, MixedDataset

RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 255, (4, 40, 36, 3), dtype=np.uint8)
FILL = (128, 128, 128)


def _batch(images=IMAGES) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float()


def _pil(fn) -> np.ndarray:
    return np.stack([np.asarray(fn(Image.fromarray(im))) for im in IMAGES])


def _hwc(x: torch.Tensor) -> np.ndarray:
    return x.permute(0, 2, 3, 1).to(torch.uint8).numpy()


def _point_op(name: str):
    """One point op alone on a float batch of uint8 values: its lookup table (augment.POINT_OPS) built from the batch
    and applied, as the grouped RandAugment (augment.run) applies it to the images that drew it."""
    def op(x: torch.Tensor, arg=None) -> torch.Tensor:
        return augment.apply_lut(x, augment.POINT_OPS[name](x, augment._table(x), arg))

    return op


autocontrast, equalize, invert, posterize, solarize, solarize_add, brightness, contrast = (
    _point_op(name) for name in ("AutoContrast", "Equalize", "Invert", "Posterize", "Solarize", "SolarizeAdd",
                                 "Brightness", "Contrast"))


F17 = torch.full((4,), 1.7)
PIXEL_OPS = {  # op on the batch, the same op on each PIL image
    "brightness": (lambda x: brightness(x, F17), lambda im: ImageEnhance.Brightness(im).enhance(1.7)),
    "color": (lambda x: augment.color(x, F17), lambda im: ImageEnhance.Color(im).enhance(1.7)),
    "contrast": (lambda x: contrast(x, F17), lambda im: ImageEnhance.Contrast(im).enhance(1.7)),
    "sharpness": (lambda x: augment.sharpness(x, F17), lambda im: ImageEnhance.Sharpness(im).enhance(1.7)),
    "equalize": (equalize, ImageOps.equalize),
    "invert": (invert, ImageOps.invert),
    "posterize": (lambda x: posterize(x, torch.full((4,), 3)), lambda im: ImageOps.posterize(im, 3)),
    "solarize": (lambda x: solarize(x, torch.full((4,), 100.0)), lambda im: ImageOps.solarize(im, 100)),
    "shear": (lambda x: augment.affine(x, _mat(1, 0.27), 128.0),
              lambda im: im.transform(im.size, Image.AFFINE, (1, 0.27, 0, 0, 1, 0), resample=Image.NEAREST,
                                      fillcolor=FILL)),
    "translate": (lambda x: augment.affine(x, _mat(2, -7.2), 128.0),
                  lambda im: im.transform(im.size, Image.AFFINE, (1, 0, -7.2, 0, 1, 0), resample=Image.NEAREST,
                                          fillcolor=FILL)),
    "rotate": (lambda x: augment.affine(x, augment._rotation(torch.full((4,), 27.0), 36, 40), 128.0),
               lambda im: im.rotate(27.0, resample=Image.NEAREST, fillcolor=FILL)),
}


def _mat(col: int, v: float) -> torch.Tensor:
    m = augment._unit(4)
    m[:, col] = v
    return m


@pytest.mark.parametrize("name", sorted(PIXEL_OPS))
def test_each_op_equals_pil_pixel_for_pixel(name):
    ours, pil = PIXEL_OPS[name]
    np.testing.assert_array_equal(_hwc(ours(_batch())), _pil(pil))


def test_autocontrast_and_bilinear_resampling_match_pil():
    low = (IMAGES // 2 + 20).astype(np.uint8)
    ref = np.stack([np.asarray(ImageOps.autocontrast(Image.fromarray(im))) for im in low])
    np.testing.assert_array_equal(_hwc(autocontrast(_batch(low))), ref)
    rot = _hwc(augment.affine(_batch(), augment._rotation(torch.full((4,), 13.5), 36, 40), 0.0, "bilinear"))
    ref = _pil(lambda im: im.rotate(13.5, resample=Image.BILINEAR))
    diff = np.abs(rot.astype(int) - ref)
    assert diff.max() <= 1 and (diff > 0).mean() < 0.005  # PIL's fixed-point rounding, at most 1 level


def _grey_batch(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images[:, None]).float()


def test_point_op_tables_equal_pil_on_every_range_and_edge_case():
    # AutoContrast over every (lo, hi) pair: each image holds every level from lo to hi (PIL's table in double, with
    # a true division; a reciprocal-and-multiply is one grey level low for about one pair in nine)
    lo, hi = np.triu_indices(256)
    ramps = np.clip(np.arange(256)[None], lo[:, None], hi[:, None]).reshape(-1, 16, 16).astype(np.uint8)
    ref = np.stack([np.asarray(ImageOps.autocontrast(Image.fromarray(im))) for im in ramps])
    np.testing.assert_array_equal(autocontrast(_grey_batch(ramps))[:, 0].to(torch.uint8).numpy(), ref)
    # Equalize: constant, two-level, narrow, skewed and random images
    ims = [np.full((12, 12), 7), np.where(RNG.random((12, 12)) < 0.1, 3, 250), RNG.integers(100, 104, (12, 12)),
           np.minimum(RNG.exponential(20, (12, 12)), 255), RNG.integers(0, 256, (12, 12))]
    ims = np.stack(ims).astype(np.uint8)
    ref = np.stack([np.asarray(ImageOps.equalize(Image.fromarray(im))) for im in ims])
    np.testing.assert_array_equal(equalize(_grey_batch(ims))[:, 0].to(torch.uint8).numpy(), ref)
    x = _grey_batch(ims[4:5].repeat(9, 0))
    bits = torch.arange(9)  # 0 bits: black (randaugment.py's shift; Pillow 13 refuses 0)
    got = posterize(x, bits)[:, 0].to(torch.uint8).numpy()
    assert (got[0] == 0).all()
    for b in range(1, 9):
        np.testing.assert_array_equal(got[b], np.asarray(ImageOps.posterize(Image.fromarray(ims[4]), b)))
    thresholds = torch.tensor([0.0, 1, 128, 255, 256])
    got = solarize(x[:5], thresholds)[:, 0].to(torch.uint8).numpy()
    for k, t in enumerate(thresholds.tolist()):
        np.testing.assert_array_equal(got[k], np.asarray(ImageOps.solarize(Image.fromarray(ims[4]), int(t))))
    adds = torch.tensor([0.0, 1, 60, 110, 300])  # randaugment.py solarize_add: clip(img + add) where img < 128
    got = solarize_add(x[:5], adds)[:, 0].numpy()
    for k, a in enumerate(adds.tolist()):
        v = ims[4].astype(float)
        np.testing.assert_array_equal(got[k], np.where(v < 128, np.minimum(v + a, 255), v))
    for f in (0.0, 0.1, 0.55, 1.0, 1.9):
        fs = torch.full((5,), f)
        for ours, pil in ((brightness, ImageEnhance.Brightness), (contrast, ImageEnhance.Contrast)):
            ref = np.stack([np.asarray(pil(Image.fromarray(im)).enhance(f)) for im in ims])
            np.testing.assert_array_equal(ours(_grey_batch(ims), fs)[:, 0].to(torch.uint8).numpy(), ref)


def _one_image_at_a_time(ra: augment.BatchRandAugment, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """RandAugment from the same draws, each image alone and each op by its own function (no grouping)."""
    p = ra.draw(len(x), gen)
    h, w = x.shape[2:]
    singles = {"AutoContrast": autocontrast, "Equalize": equalize, "Invert": invert, "Posterize": posterize,
               "Solarize": solarize, "SolarizeAdd": solarize_add, "Brightness": brightness,
               "Contrast": contrast, "Color": augment.color, "Sharpness": augment.sharpness}
    out = []
    for i in range(len(x)):
        img = x[i : i + 1].float()
        for layer in range(ra.layers):
            if not p["apply"][i, layer]:
                continue
            k = int(p["op"][i, layer])
            name, m, s = ra.names[k], p["magnitude"][i : i + 1, layer].numpy(), p["sign"][i : i + 1, layer].numpy()
            v = ra.level(name, m, s, (h, w))
            if name in augment.SIGNED:
                img = augment.affine(img, ra.matrices(np.array([k]), m, s, (h, w)), ra.fill, ra.mode)
            elif name == "Cutout":
                cy, cx = (min(int(f * n), n - 1) for f, n in zip(p["where"][i, layer].tolist(), (h, w)))
                img = augment.cutout(img, torch.tensor([[cy, cx, int(v[0])]]), ra.fill)
            else:
                arg = None if v is None else torch.as_tensor(v)
                img = singles[name](img, arg.float() if arg is not None and arg.is_floating_point() else arg)
        out.append(img)
    return torch.cat(out).to(torch.uint8)


@pytest.mark.parametrize("ops", ["tf", "timm"])
def test_grouped_layers_equal_each_images_ops_applied_alone(ops):
    ra = augment.BatchRandAugment(9, 2, ops=ops, magnitude_std=0.5, translate_const=6, cutout_const=6)
    x = torch.from_numpy(RNG.integers(0, 256, (96, 3, 20, 24), dtype=np.uint8))
    for step in range(3):
        got = ra(x, augment.step_generator(5, 0, step))
        assert torch.equal(got, _one_image_at_a_time(ra, x, augment.step_generator(5, 0, step)))


# google-research/noisystudent randaugment.py at level m (see tests/data/test_noise.py): rotate m/10 x 30 degrees,
# shear m/10 x 0.3, translate m/10 x 100 px, enhance m/10 x 1.8 + 0.1, posterize int(m/10 x 4), solarize
# int(m/10 x 256), cutout int(m/10 x 40)
@pytest.mark.parametrize("m,expected", [(6, (18.0, 0.18, 60.0, 1.18, 2, 153, 24)),
                                        (27, (81.0, 0.81, 270.0, 4.96, 10, 691, 108))])
def test_tf_levels_are_the_released_codes_strengths(m, expected):
    ra = augment.BatchRandAugment(m, 2, ops="tf", translate_const=100, cutout_const=40)
    one, t = torch.tensor([float(m)]), torch.tensor([1.0])
    got = [ra.level(n, one, t, (224, 224)).item() for n in
           ("Rotate", "ShearX", "TranslateX", "Color", "Posterize", "Solarize", "Cutout")]
    assert got == pytest.approx(list(expected))
    assert ra.draw(8, torch.Generator().manual_seed(0))["magnitude"].max() == m  # not clipped at 10
    timm = augment.BatchRandAugment(m, 2, ops="timm")
    assert timm.draw(8, torch.Generator().manual_seed(0))["magnitude"].max() == min(m, 10)


def test_every_image_draws_its_own_ops_and_ranges_hold():
    ra = augment.BatchRandAugment(9, 1, ops="tf", magnitude_std=0.5, translate_const=4, cutout_const=4)
    p = ra.draw(4000, torch.Generator().manual_seed(0))
    counts = torch.bincount(p["op"][:, 0], minlength=len(ra.names))
    assert len(ra.names) == 16 and (counts > 150).all()  # uniform over the 16 ops, per image
    assert ((p["magnitude"] >= 0) & (p["magnitude"] <= ra.magnitude_max)).all()
    assert p["apply"].all()  # tf: always applied
    timm = augment.BatchRandAugment(9, 2, ops="timm").draw(4000, torch.Generator().manual_seed(0))
    assert 0.45 < timm["apply"].float().mean() < 0.55  # timm: each op with probability 0.5
    same = torch.from_numpy(np.repeat(IMAGES[:1], 64, 0)).permute(0, 3, 1, 2).contiguous()
    out = ra(same, torch.Generator().manual_seed(1))
    assert out.dtype == torch.uint8 and out.shape == same.shape
    assert len({o.numpy().tobytes() for o in out}) > 10  # one image, many different results in one batch


def test_the_same_seed_gives_the_same_pixels_and_another_seed_others():
    aug = augment.batch_augment(32, True, 2, 9, 0.5, flip=True, random_crop_pad=2)
    x = torch.from_numpy(RNG.integers(0, 255, (16, 1, 32, 32), dtype=np.uint8))
    a = aug(x, augment.step_generator(0, 1, 2))
    assert torch.equal(a, aug(x, augment.step_generator(0, 1, 2)))
    assert not torch.equal(a, aug(x, augment.step_generator(0, 1, 3)))
    assert not torch.equal(a, aug(x, augment.step_generator(1, 1, 2)))
    flat = augment.BatchAugment(None, flip=True, shift=2)(x, augment.step_generator(0, 0, 0))
    assert (flat.float().mean((1, 2, 3)) <= x.float().mean((1, 2, 3)) + 1e-6).all()  # shifts fill with zeros


def test_shift_is_pad_and_crop_per_image():
    x = torch.from_numpy(RNG.integers(1, 255, (5, 3, 9, 7), dtype=np.uint8)).float()
    d = torch.tensor([[0, 0], [2, -1], [-3, 3], [8, 0], [-1, -6]])
    got = augment.shift(x, d, 0.0)
    for k, (dy, dx) in enumerate(d.tolist()):  # output (y, x) = input (y - dy, x - dx): pad by 9, crop
        padded = np.pad(x[k].numpy(), ((0, 0), (9, 9), (9, 9)))
        np.testing.assert_array_equal(got[k].numpy(), padded[:, 9 - dy : 9 - dy + 9, 9 - dx : 9 - dx + 7])


@pytest.mark.parametrize("topk", [True, False])
def test_in_memory_steps_batch_as_collate_does_item_by_item(topk):
    from nsbench.training.batches import collate_mixed
    from nsbench.data.targets import TopKTargets

    src = ArraySource("toy", RNG.integers(0, 255, (40, 28, 28, 1), dtype=np.uint8), np.arange(40) % 3, ["a", "b", "c"])
    probs = RNG.random((32, 3)).astype(np.float32)
    cls = np.argsort(-probs, 1)[:, :2].astype(np.int32)
    targets = TopKTargets(cls, np.take_along_axis(probs, cls, 1), 3) if topk else probs
    ds = MixedDataset(ImageDataset(src, np.arange(8), 32), ImageDataset(src, np.arange(8, 40), 32, targets=targets))
    idx = [5, 1, 1, 7, 9, 30, 12, 12, 39]  # labeled rows first, as the sampler gives them; repeats
    fast = ds._prepared_batch(np.asarray(idx))
    slow = collate_mixed([ds[i] for i in idx])
    assert fast is not None and fast.n_labeled == slow.n_labeled == 4
    for name in ("x", "y", "soft", "natural"):
        a, b = getattr(fast, name), getattr(slow, name)
        assert a.dtype == b.dtype and torch.equal(a, b), name


def _mixed(augment):
    src = ArraySource("toy", RNG.integers(0, 255, (40, 28, 28, 1), dtype=np.uint8), np.zeros(40, np.int64), ["a"])
    lab = ImageDataset(src, np.arange(8), 32, augment=augment)
    pseudo = ImageDataset(src, np.arange(8, 40), 32, targets=np.ones((32, 1), np.float32), augment=augment)
    return MixedDataset(lab, pseudo)


@pytest.mark.timeout(300)
def test_a_steps_noise_is_the_same_with_or_without_loader_workers():
    from torch.utils.data import DataLoader

    aug = TrainAugment(32, True, 2, 9, 0.5, flip=True, random_crop_pad=2)
    ds = _mixed(aug)
    runs = []
    for workers in (0, 2):
        sampler = MixedBatchSampler(8, 32, 2, 6, 4, seed=3, epoch=1)
        loader = DataLoader(ds, batch_sampler=sampler, collate_fn=MixedCollate(aug.on_batch, 3),
                            num_workers=workers)
        runs.append([b.x for b in loader])
    assert all(torch.equal(a, b) for a, b in zip(*runs))
    # and the training loop's own application (the GPU's place) gives the same pixels as the loader's
    b = MixedCollate(None, 3)(ds.__getitems__(next(iter(MixedBatchSampler(8, 32, 2, 6, 4, seed=3, epoch=1)))))
    assert torch.equal(aug.on_batch(b.x, augment.step_generator(3, 1, b.step), b.natural), runs[0][0])


def _jpeg_folder(tmp_path, n=6, bad=0):
    from skimage import data

    photo = data.astronaut()
    root = tmp_path / "jpg"
    for k in range(n):
        d = root / f"c{k % 2}"
        d.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        Image.fromarray(photo[k * 20 : k * 20 + 300, k * 10 : k * 10 + 400]).save(buf, "JPEG", quality=90)
        (d / f"{k}.jpg").write_bytes(buf.getvalue()[: 200] if k < bad else buf.getvalue())
    return scan_folder(root, "jpg")


def test_crop_box_follows_random_resized_crop_bounds():
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        top, left, ch, cw = crop_box(300, 400, g)
        assert 0 <= top and top + ch <= 300 and 0 <= left and left + cw <= 400
        assert 0.08 * 0.99 <= ch * cw / (300 * 400) <= 1.0
        assert 3 / 4 * 0.9 <= cw / ch <= 4 / 3 * 1.1
    assert crop_box(10, 1000, g)[2:] == (10, 13)  # no try fits: the centre crop clipped to 4:3


def test_device_decoding_crops_skips_bad_files_and_is_seeded(tmp_path):
    src = _jpeg_folder(tmp_path, n=6, bad=1)
    parts = [torch.frombuffer(bytearray(src.encoded(i)), dtype=torch.uint8) for i in range(len(src))]
    decoded, failed = decode_batch(parts, torch.device("cpu"))
    assert len(failed) == 1 and decoded[failed[0]] is None
    assert all(d.shape[0] == 3 for d in decoded if d is not None)
    x, failed = device_crops(parts, [False] * 6, 96, torch.device("cpu"), augment.step_generator(0, 0, 0))
    assert x.shape == (5, 3, 96, 96) and x.dtype == torch.uint8 and len(failed) == 1
    again, _ = device_crops(parts, [False] * 6, 96, torch.device("cpu"), augment.step_generator(0, 0, 0))
    assert torch.equal(x, again)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("workers", [0, 2])
def test_clean_batches_decoded_on_the_device_follow_the_cpu_pipeline(tmp_path, workers):
    src = _jpeg_folder(tmp_path, n=9, bad=1)
    Image.fromarray(RNG.integers(0, 255, (120, 90, 3), dtype=np.uint8)).save(src.paths[4].with_suffix(".png"))
    src.paths[4].unlink()  # one PNG among the JPEGs: the worker decodes it
    src.paths[4] = src.paths[4].with_suffix(".png")
    runs = {d: list(iterate_clean(src, np.arange(9), 96, 4, workers, decode=d)) for d in ("cpu", "device")}
    for (xc, yc, ic, sc), (xd, yd, id_, sd) in zip(*runs.values(), strict=True):
        assert torch.equal(yc, yd) and torch.equal(ic, id_) and sc == sd and xd.shape == xc.shape
        diff = ((xc - xd).abs() * 255).round()  # the same JPEG decoder on a CPU; the resizes differ in rounding
        assert diff.max() <= 1 and diff.mean() < 0.05
    assert sum(r[3] for r in runs["device"]) == 1 and sum(len(r[2]) for r in runs["device"]) == 8
    png = [k for k, r in enumerate(runs["cpu"]) if 4 in r[2].tolist()][0]
    pos = runs["cpu"][png][2].tolist().index(4)  # the PNG went through the worker's own pipeline, unchanged
    assert torch.equal(runs["cpu"][png][0][pos], runs["device"][png][0][pos])


@pytest.mark.parametrize("workers", [0, 2])
def test_training_with_device_decoding_runs_and_counts_the_skipped(tmp_path, workers):
    from nsbench.config import OptimConfig, RuntimeConfig
    from nsbench.models import ModelSpec, build_model
    from nsbench.training.stage import StageConfig, train_stage

    src = _jpeg_folder(tmp_path, n=8, bad=1)
    aug = TrainAugment(96, True, 2, 9, 0.0, natural_crop=True)
    lab = ImageDataset(src, np.arange(8), 96, augment=aug)
    seen = []
    model = build_model(ModelSpec("test_efficientnet", num_classes=2))
    model.net.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape))
    _, hist = train_stage(model, StageConfig(name="t", optim=OptimConfig(epochs=1, batch_size=4, warmup_epochs=0),
                          runtime=RuntimeConfig(device="cpu"), labeled=lab, pseudo=None, ratio=0,
                          unlabeled_weight=1.0, val=None, device=torch.device("cpu"),
                          state_path=tmp_path / "s.pt", seed=0, decode="device", num_workers=workers))
    assert hist[0]["skipped"] == 1 and sum(s[0] for s in seen) == 7
    assert all(tuple(s[1:]) == (3, 96, 96) for s in seen)


@pytest.mark.timeout(240)
def test_pseudo_labeling_a_file_source_with_workers_finishes_in_order(tmp_path):
    """The pseudo-labeling stall: a file-backed source of several batches through loader workers must finish (the
    harness's timeout fails the test instead of hanging) and return every image once, in order."""
    from nsbench.models import ModelSpec, build_model
    import dataclasses

    from nsbench.config import PseudoConfig
    from nsbench.training.label import LabelConfig

    rng = np.random.default_rng(0)
    root = tmp_path / "png"
    for k in range(70):
        d = root / f"c{k % 3}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (48, 40, 3), dtype=np.uint8)).save(d / f"{k:03d}.png")
    src = scan_folder(root, "png")
    model = build_model(ModelSpec("test_efficientnet", num_classes=3))
    idx = np.arange(len(src))[::-1].copy()
    job = LabelConfig(PseudoConfig(batch_size=16), 3, 64, torch.device("cpu"), num_workers=3)
    probs, got, skipped = teacher_probs(model, src, idx, job, progress=False)
    assert skipped == 0 and np.array_equal(got, idx) and probs.shape == (70, 3)
    ref, _, _ = teacher_probs(model, src, idx, dataclasses.replace(job, num_workers=0), progress=False)
    np.testing.assert_allclose(probs, ref, atol=1e-5)  # chunked per image across workers: the same batches


def test_clean_batches_keep_their_size_when_chunked_across_workers(tmp_path):
    assert chunk_size(512, 14) == 16 and 512 % chunk_size(512, 14) == 0 and chunk_size(500, 0) == 50
    src = _jpeg_folder(tmp_path, n=7)
    sizes = [len(y) for _, y, _, _ in iterate_clean(src, np.arange(7), 64, 3, num_workers=2)]
    assert sizes == [3, 3, 1]


def test_num_workers_auto(monkeypatch):
    import os

    monkeypatch.setattr(os, "sched_getaffinity", lambda _: set(range(2)), raising=False)
    assert auto_workers("auto") == 0 and auto_workers(3) == 3
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: set(range(16)), raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert auto_workers("auto") == 15
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    assert auto_workers("auto") == 1


def test_decode_auto_decodes_natural_jpegs_on_the_gpu_only():
    from nsbench.config import load_train_config
    from nsbench.resources import resolve
    from nsbench.training.run_data import decode_mode

    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    small = load_train_config(resolve("recipe", "default"))  # 32 px Fashion-MNIST: nothing to decode
    assert {decode_mode(small, d, s) for d in (cuda, cpu) for s in ("train", "label")} == {"cpu"}
    b0 = resolve("recipe", "imagenet_b0")
    big = load_train_config(b0)
    assert decode_mode(big, cuda) == decode_mode(big, cuda, "label") == "device"
    assert decode_mode(big, cpu) == decode_mode(big, cpu, "label") == "cpu"
    centre = load_train_config(b0, ["noise.natural_crop=center"])  # training's centre crops stay with the workers
    assert decode_mode(centre, cuda) == "cpu" and decode_mode(centre, cuda, "label") == "device"
    assert decode_mode(load_train_config(b0, ["data.decode=cpu"]), cuda, "label") == "cpu"
