"""bench/tasks/corruptions.py by value: the defaults (suites/robustness.yaml's 1,000 images per cell, severities
1-5) and what validate refuses; the overall mean error named partial unless all 15 benchmark corruptions were scored
at all five severities; only the wanted cells of an official tree scored (corruption and severity both); the per-image
frame at eps 0; a built set cached (cells on disk, imagecorruptions' version recorded) or made on the fly (clean
images only, the torch generator's revision recorded); and the on-the-fly logits: every clean image of the built set,
batch by batch, corrupted with the cached path's per-image seed (cache.seed_for(seed, corruption, severity, source
index)), handed to the model as NCHW floats of pixel / 255. Expected values are written out here: the torch
generator called image by image on the set's files, the logits of a linear model by hand."""
from __future__ import annotations

import importlib.metadata as md

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import (PIXEL_B, PIXEL_W, PixelOracle, PixelRecorder, encoded_image, oracle_model, random_photos,
                     synsets, task_context)
from nsbench.bench import cache, corruption_sets, onthefly
from nsbench.bench.context import EvalContext
from nsbench.bench.normaliser import Normaliser
from nsbench.bench.suite import SuiteConfig
from nsbench.bench.tasks import corruptions
from nsbench.bench.tasks.corruptions import CorruptionTask, validate
from nsbench.reference import C_BENCHMARK
from nsbench.utils import NsbenchError

W, B, Recorder, photos = PIXEL_W, PIXEL_B, PixelRecorder, random_photos


def built_ctx(tmp_path, model=None, *, batch_size=None, **task) -> tuple[EvalContext, CorruptionTask]:
    return task_context(tmp_path, "corruptions", model, batch_size=batch_size, **task)


# ---- settings


def test_the_defaults_are_the_robustness_suites_1000_images_at_severities_1_to_5():
    t = CorruptionTask()  # suites/robustness.yaml: limit 1000 images per (corruption, severity)
    assert t.limit == 1000 and t.severities == [1, 2, 3, 4, 5] and t.generate == "auto" and t.root is None


def test_validate_takes_a_limit_of_one_and_severities_within_1_to_5():
    validate(CorruptionTask(limit=1, severities=[5]))
    validate(CorruptionTask(limit=None))
    with pytest.raises(NsbenchError, match="corruptions.limit"):
        validate(CorruptionTask(limit=0))
    for bad in ([], [0], [6], [1, 6]):
        with pytest.raises(NsbenchError, match="corruptions.severities must be a non-empty list within 1-5"):
            validate(CorruptionTask(severities=bad))


# ---- the rows of a scored tree (outcomes fabricated, as test_metrics does)


def rows_of(tmp_path, monkeypatch, names, severities):
    outcomes = {f"{c}|{s}": (np.array([True, False, True, True]), np.arange(4), {}) for c in names for s in severities}
    monkeypatch.setattr(corruptions, "_official", lambda ctx, t: (outcomes, 0.25, 4, {}))
    cfg = SuiteConfig(name="t")
    t = cfg.corruptions
    t.root, t.corruptions, t.severities = str(tmp_path), list(names), severities
    ctx = EvalContext(oracle_model(PixelOracle([0, 1]), ["a", "b"]), cfg, tmp_path / "cache", torch.device("cpu"))
    return corruptions.run(ctx, cfg.corruptions, Normaliser("none"))


def overall(res) -> dict:
    (row,) = [r for r in res.rows if r["condition"] == "all" and r["metric"] == "mean_err"]
    return row


def test_the_overall_mean_error_is_partial_unless_every_benchmark_corruption_at_every_severity(tmp_path, monkeypatch):
    full = overall(rows_of(tmp_path, monkeypatch, C_BENCHMARK, [1, 2, 3, 4, 5]))
    assert full["note"] is None and full["value"] == 25.0
    assert overall(rows_of(tmp_path, monkeypatch, C_BENCHMARK, [5, 3, 1, 2, 4]))["note"] is None  # any order
    assert overall(rows_of(tmp_path, monkeypatch, C_BENCHMARK, [1, 2]))["note"] == \
        "partial: 15 of 15 benchmark corruptions"  # two severities of five
    assert overall(rows_of(tmp_path, monkeypatch, C_BENCHMARK[1:], [1, 2, 3, 4, 5]))["note"] == \
        "partial: 14 of 15 benchmark corruptions"


def test_the_per_image_frame_is_each_cell_at_eps_0(tmp_path, monkeypatch):
    res = rows_of(tmp_path, monkeypatch, ["fog"], [2, 4])
    per = res.per_image
    assert [(f.condition.iloc[0], f.severity.iloc[0]) for f in per] == [("fog", 2), ("fog", 4)]
    for f in per:
        assert f.task.eq("corruptions").all() and f.eps_255.eq(0.0).all() and list(f.image) == [0, 1, 2, 3]
        assert list(f.correct) == [True, False, True, True]


# ---- an official tree: only the wanted cells


def tree(root, cells, wnids):
    for corr, sev in cells:
        for k, w in enumerate(wnids):
            d = root / corr / str(sev) / w
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(encoded_image(k)).save(d / "img0.JPEG", quality=95)
    return root


def run_official(tmp_path, monkeypatch, root, which, severities):
    names = synsets()
    cfg = SuiteConfig(name="t")
    cfg.corruptions.root, cfg.corruptions.corruptions, cfg.corruptions.severities = str(root), which, severities
    monkeypatch.setattr(corruptions, "clean_correct", lambda ctx: np.array([True, True, False, True]))
    ctx = EvalContext(oracle_model(PixelOracle([3, 7], decoy=None), names), cfg, tmp_path / "cache",
                      torch.device("cpu"))
    return corruptions.run(ctx, cfg.corruptions, Normaliser("none"))


def test_an_official_tree_is_scored_only_at_the_wanted_corruptions_and_severities(tmp_path, monkeypatch):
    names = synsets()
    root = tree(tmp_path / "c", [("fog", 1), ("fog", 2), ("contrast", 1)], [names[3], names[7]])
    res = run_official(tmp_path, monkeypatch, root, ["fog"], [1])
    cells = {(r["condition"], r["severity"]) for r in res.rows if r["metric"] == "top1_err"}
    assert cells == {("fog", 1), ("clean", None)}
    clean = next(r for r in res.rows if r["condition"] == "clean")
    assert clean["value"] == 25.0 and clean["n"] == 2  # n: the images of a scored cell (two here)


def test_an_official_tree_without_a_wanted_cell_scores_none(tmp_path, monkeypatch):
    names = synsets()
    root = tree(tmp_path / "c", [("contrast", 1)], [names[3], names[7]])
    res = run_official(tmp_path, monkeypatch, root, ["fog"], [1])
    assert [(r["condition"], r["metric"], r["n"]) for r in res.rows] == [("clean", "top1_err", 0)]  # no cell: n 0
    assert res.per_image == []


# ---- a built set: cached, or made on the fly


def test_a_cached_set_keeps_its_cells_and_names_imagecorruptions(tmp_path):
    ctx, t = built_ctx(tmp_path, corruptions=["brightness"], severities=[1], generate="cached")
    outcomes, _, n, info = corruptions._built(ctx, t)
    assert info["generate"] == "cached" and n == 3 and "generator" not in info
    assert info["imagecorruptions"] == md.version("imagecorruptions-imaug")
    assert (tmp_path / "cache" / "sets" / info["folder"] / "brightness-1.npy").exists()


def test_an_on_the_fly_set_keeps_only_clean_images_and_names_the_torch_generator(tmp_path):
    ctx, t = built_ctx(tmp_path, corruptions=["brightness"], severities=[1], generate="on_the_fly")
    outcomes, _, n, info = corruptions._built(ctx, t)
    assert info["generate"] == "on_the_fly" and n == 3 and "imagecorruptions" not in info
    assert info["generator"] == f"nsbench.bench.onthefly revision {onthefly.REVISION} (torch, on cpu)"
    files = {p.name for p in (tmp_path / "cache" / "sets" / info["folder"]).glob("*.npy")}
    assert files == {"clean.npy", "indices.npy", "labels.npy"}
    assert len(outcomes["brightness|1"][0]) == 3


def clean_set(tmp_path, n=3):
    """A built set of clean images only (what the on-the-fly path builds): folder, clean images, source indices."""
    src = photos(n)
    folder, manifest = corruption_sets.build_c(src, 32, [], [], None, 0, tmp_path / "cache", workers=1)
    return folder, np.load(folder / "clean.npy"), np.load(folder / "indices.npy"), manifest


def test_on_the_fly_logits_are_the_model_on_each_image_corrupted_with_its_own_seed(tmp_path):
    folder, clean, index, manifest = clean_set(tmp_path)
    model = Recorder()
    ctx, _ = built_ctx(tmp_path, model, batch_size=2)
    got = corruptions._on_the_fly_logits(ctx, folder, "gaussian_noise", 2, "cifar-10-c")
    want_x = torch.cat([onthefly.corrupt_batch(torch.from_numpy(clean[k : k + 1]), "gaussian_noise", 2,
                                               [cache.seed_for(manifest["seed"], "gaussian_noise", 2, int(index[k]))],
                                               "cifar-10-c") for k in range(3)])
    want_x = want_x.permute(0, 3, 1, 2).double() / 255  # NHWC uint8 -> NCHW in [0, 1]
    assert [len(x) for x in model.seen] == [2, 1]  # batches of ctx.bs, every image once, in order
    torch.testing.assert_close(torch.cat(model.seen).double(), want_x, rtol=0, atol=1e-7)
    want = want_x[:, :, 0, 0].numpy() @ W.T + B
    assert got.shape == (3, 3)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_on_the_fly_logits_of_an_empty_share_are_an_empty_block(tmp_path):
    folder, *_ = clean_set(tmp_path)
    ctx, _ = built_ctx(tmp_path)
    ctx.sharded = lambda idx, fn: fn(idx[:0])  # a rank whose share of the images is empty
    out = corruptions._on_the_fly_logits(ctx, folder, "brightness", 1, "cifar-10-c")
    assert out.shape == (0, 3) and out.dtype == np.float32
