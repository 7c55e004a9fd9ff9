"""The robustness harness: official layouts (fabricated), built sets, guards, and a suite end to end."""
from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from helpers import TINY_SUITE, PixelOracle, encoded_image, make_image, oracle_model, synsets
from nsbench import ScoreSettings, reference, schema
from nsbench.api import evaluate
from nsbench.bench import built_a, corruption_sets, perturbation_sets
from nsbench.bench.attacks import adversarial
from nsbench.bench.context import EvalContext
from nsbench.bench.suite import SuiteConfig, load_suite
from nsbench.bench.tasks import corruptions, natural, perturbations
from nsbench.data.sources import ArraySource
from nsbench.models import ModelSpec, build_model
from nsbench.resources import list_shipped
from nsbench.utils import NsbenchError


def test_imagenet_a_and_r_masks_are_200_increasing_indices_matching_wnids():
    names = synsets()
    for idx, wnids in (reference.imagenet_a_classes(), reference.imagenet_r_classes()):
        assert len(idx) == 200 and len(set(idx)) == 200
        assert all(a < b for a, b in zip(idx, idx[1:]))
        assert [names[i] for i in idx] == list(wnids)
    shared = set(reference.imagenet_a_classes()[1]) & set(reference.imagenet_r_classes()[1])
    assert len(shared) == 86


@pytest.mark.parametrize("with_category", [False, True])
def test_official_imagenet_c_tree_with_and_without_category_level(tmp_path, with_category, monkeypatch):
    names = synsets()
    wnids = [names[3], names[7]]
    root = tmp_path / "imagenet-c"
    for corr, cat in (("gaussian_noise", "noise"), ("fog", "weather")):
        for sev in (1, 2):
            for k, w in enumerate(wnids):
                d = (root / cat if with_category else root) / corr / str(sev) / w
                d.mkdir(parents=True)
                for j in range(2):
                    Image.fromarray(encoded_image(k)).save(d / f"img{j}.JPEG", quality=95)
    cells = corruption_sets.scan_imagenet_c(root)
    assert sorted((c.corruption, c.severity) for c in cells) == [("fog", 1), ("fog", 2), ("gaussian_noise", 1), ("gaussian_noise", 2)]
    oracle = PixelOracle([3, 7], decoy=None)
    cfg = SuiteConfig(name="t")
    cfg.corruptions.root = str(root)
    cfg.corruptions.corruptions, cfg.corruptions.severities = ["gaussian_noise", "fog"], [1, 2]
    ctx = EvalContext(oracle_model(oracle, names), cfg, tmp_path / "cache", torch.device("cpu"))
    monkeypatch.setattr(corruptions, "clean_correct", lambda ctx: np.ones(4, bool))
    errors, clean_err, outcomes, n, _ = corruptions.corruption_errors(ctx, cfg.corruptions)
    assert errors == {"gaussian_noise": [0.0, 0.0], "fog": [0.0, 0.0]} and n == 4
    assert set(oracle.seen_shapes) == {(3, 64, 64)}  # evaluated at the files' own size, no resizing


def test_official_imagenet_p_mp4_sequences(tmp_path):
    names = synsets()
    root = tmp_path / "imagenet-p"
    wnid = names[5]
    # translate: 41 frames whose encoded class flips at frames 10 and 11 -> 2 flips of 40 comparisons
    for pert, n_frames in (("translate", 41), ("gaussian_noise_2", 31)):
        d = root / pert / wnid
        d.mkdir(parents=True)
        vw = cv2.VideoWriter(str(d / "seq0.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 64))
        for f in range(n_frames):
            k = 1 if f == 10 or (pert.startswith("gaussian") and f in (3, 4)) else 0
            vw.write(cv2.cvtColor(encoded_image(k), cv2.COLOR_RGB2BGR))
        vw.release()
    frames = perturbation_sets.read_video(root / "translate" / wnid / "seq0.mp4")
    assert frames.shape == (41, 64, 64, 3)
    cfg = SuiteConfig(name="t")
    cfg.perturbations.root, cfg.perturbations.perturbations = str(root), ["translate", "gaussian_noise"]
    cfg.perturbations.difficulty = 2
    ctx = EvalContext(oracle_model(PixelOracle([5, 9], decoy=None), names), cfg, tmp_path / "cache", torch.device("cpu"))
    stats, _ = perturbations.perturbation_stats(ctx, cfg.perturbations)
    # difficulty 2, temporal: chains (0,2,..,40) and (1,3,..,39); frame 10 differs -> pairs (8,10),(10,12) flip: 2/39
    assert stats["translate"]["fp"][0] == pytest.approx(2 / 39)
    # noise: read from the _2 folder, every frame against frame 0 -> frames 3, 4 and 10 flip: 3/30
    assert stats["gaussian_noise"]["fp"][0] == pytest.approx(3 / 30)


def test_official_imagenet_a_folder_scored_through_the_mask(tmp_path):
    names = synsets()
    a_idx, a_wnids = reference.imagenet_a_classes()
    root = tmp_path / "imagenet-a"
    for k, w in enumerate(a_wnids[:3]):
        (root / w).mkdir(parents=True)
        for j in range(2):
            Image.fromarray(encoded_image(k, 300)).save(root / w / f"{j}.jpg", quality=95)
    cfg = SuiteConfig(name="t")
    cfg.natural_adversarial.root = str(root)
    oracle = PixelOracle(list(a_idx[:3]), decoy=0)  # class 0 (not an -A class) always has the top logit
    cfg.data.image_size = 224
    res = natural.run(EvalContext(oracle_model(oracle, names), cfg, tmp_path / "cache", torch.device("cpu")), cfg.natural_adversarial, None)
    acc = [x for x in res.rows if x["metric"] == "top1_acc"][0]
    assert acc["value"] == 100.0 and acc["n"] == 6
    assert len(res.sets["natural_adversarial"]["missing_wnids"]) == 197
    (root / "n00000000").mkdir()
    with pytest.raises(NsbenchError, match="not in the imagenet-a class list"):
        built_a.open_official(root, "imagenet-a")


def test_building_dataset_c_twice_gives_byte_identical_images(tmp_path):
    rng = np.random.default_rng(0)
    images = np.stack([make_image(i % 4, rng) for i in range(6)])
    src = ArraySource("det", images, np.arange(6) % 4, list("abcd"))
    names = ["gaussian_noise", "impulse_noise", "glass_blur", "frost", "snow", "elastic_transform"]
    f1, m1 = corruption_sets.build_c(src, 32, names, [1, 5], None, 0, tmp_path / "a", workers=2)
    f2, m2 = corruption_sets.build_c(src, 32, names, [1, 5], None, 0, tmp_path / "b", workers=1)
    assert [c["sha256"] for c in m1["cells"]] == [c["sha256"] for c in m2["cells"]]
    for c in m1["cells"]:
        assert (f1 / c["file"]).read_bytes() == (f2 / c["file"]).read_bytes()
    clean = np.load(f1 / "clean.npy")
    assert not np.array_equal(np.load(f1 / "gaussian_noise-5.npy"), clean)
    # a third build is served from the cache
    f3, m3 = corruption_sets.build_c(src, 32, names, [1], None, 0, tmp_path / "a")
    assert f3 == f1 and m3 == m1


def test_building_dataset_p_is_deterministic_and_shaped(tmp_path):
    rng = np.random.default_rng(1)
    images = np.stack([make_image(i % 4, rng) for i in range(3)])
    src = ArraySource("p", images, np.arange(3) % 4, list("abcd"))
    perts = list(reference.P_TEST)
    f1, m1 = perturbation_sets.build_p(src, 32, perts, 1, None, 0, tmp_path / "a", workers=2)
    f2, m2 = perturbation_sets.build_p(src, 32, perts, 1, None, 0, tmp_path / "b", workers=1)
    assert [s["sha256"] for s in m1["sequences"]] == [s["sha256"] for s in m2["sequences"]]
    frames = {p: np.load(f1 / f"{p}-d1.npy").shape[1] for p in perts}
    assert frames["translate"] == 16 and frames["motion_blur"] == 21 and frames["rotate"] == 31
    noise = np.load(f1 / "gaussian_noise-d1.npy")
    assert np.array_equal(noise[:, 0], np.load(f1 / "clean.npy"))  # noise sequences start clean


def test_fgsm_eps_zero_equals_clean_and_inputs_outside_unit_range_are_refused():
    spec = ModelSpec("test_efficientnet", num_classes=4)
    model = build_model(spec).eval()
    x = torch.rand(16, 3, 32, 32)
    y = torch.randint(0, 4, (16,))
    adv = adversarial(model, x, y, 0.0)
    assert torch.equal(model(adv).argmax(1), model(x).argmax(1))
    adv8 = adversarial(model, x, y, 8.0)
    assert (adv8 - x).abs().max() <= 8 / 255 + 1e-6 and adv8.min() >= 0 and adv8.max() <= 1
    inside = (adv8 > 0) & (adv8 < 1)  # every pixel that no bound stopped moved by exactly eps
    torch.testing.assert_close((adv8 - x).abs()[inside], torch.full_like(x[inside], 8 / 255), atol=1e-6, rtol=0)
    with pytest.raises(NsbenchError, match=r"\[0, 1\]"):
        adversarial(model, x * 2 - 0.5, y, 2.0)


def test_shipped_suites_load_and_unset_roots_are_named(monkeypatch):
    for var in ("NSBENCH_IMAGENET", "NSBENCH_IMAGENET_C", "NSBENCH_IMAGENET_P", "NSBENCH_IMAGENET_A"):
        monkeypatch.delenv(var, raising=False)
    paths = {p.stem: p for p in list_shipped("suite")}
    assert {"robustness", "quick", "imagenet"} <= set(paths)
    for name in ("robustness", "quick"):
        assert load_suite(paths[name]).tasks() == ["clean", "corruptions", "perturbations", "natural_adversarial", "fgsm"]
    # an unset root no longer refuses the suite (issue 33): each task it names is skipped, the override named
    from nsbench.bench.suite import unset_tasks

    unset = unset_tasks(load_suite(paths["imagenet"]))
    assert unset["clean"].startswith("$NSBENCH_IMAGENET is not set (data.source)")
    assert unset["corruptions"] == ("$NSBENCH_IMAGENET_C is not set: set it, or corruptions.root=PATH, or "
                                    "corruptions.enabled=false")
    assert set(unset) == {"clean", "corruptions", "perturbations", "natural_adversarial", "fgsm"}
    for var in ("NSBENCH_IMAGENET", "NSBENCH_IMAGENET_C", "NSBENCH_IMAGENET_P", "NSBENCH_IMAGENET_A"):
        monkeypatch.setenv(var, f"/data/{var}")
    cfg = load_suite(paths["imagenet"])
    assert cfg.corruptions.root == "/data/NSBENCH_IMAGENET_C" and cfg.normaliser == "alexnet"
    assert unset_tasks(cfg) == {}
    with pytest.raises(NsbenchError, match="unknown key"):
        load_suite(paths["quick"], ["fgsm.epsilon=3"])


def test_suite_end_to_end_on_a_trained_run_resumes_from_cached_cells(tiny_run, tmp_path, monkeypatch):
    import dataclasses

    from nsbench.bench import registry
    from nsbench.cli import main

    cache, out = tmp_path / "cache", tmp_path / "eval"
    # iteration 0 normalises itself: every CE is exactly 100
    df0 = evaluate(str(tiny_run / "iter0.pt"), "robustness", out, settings=ScoreSettings(overrides=TINY_SUITE, cache_dir=cache, device="cpu"))
    ce = df0[df0.metric == "ce"]
    assert len(ce) == 4 and np.allclose(ce.value, 100.0)
    # 3 of the 15 benchmark corruptions at severities 1-2: never "mce", always the partial metric with its members
    assert "mce" not in set(df0.metric)
    part = df0[df0.metric == "mce_partial"].iloc[0]
    assert part.value == pytest.approx(100.0) and part.note.startswith("partial: 3 of 15 benchmark corruptions")
    assert "missing: shot_noise" in part.note and "severities 1,2 of 1-5" in part.note
    # the student: killed during FGSM, then resumed; cells already computed are not recomputed
    kinds = registry.task_kinds()

    def interrupted(*a):
        raise KeyboardInterrupt

    monkeypatch.setitem(registry._TASKS, "fgsm", dataclasses.replace(kinds["fgsm"], run=interrupted))
    with pytest.raises(KeyboardInterrupt):
        evaluate(str(tiny_run / "iter1.pt"), "robustness", out, settings=ScoreSettings(overrides=TINY_SUITE, cache_dir=cache, device="cpu"))
    cells = {p: p.stat().st_mtime_ns for p in (cache / "cells").rglob("*.npz")}
    monkeypatch.setitem(registry._TASKS, "fgsm", kinds["fgsm"])
    assert main(["eval", "--suite", "robustness", str(tiny_run / "iter1.pt"), "--out", str(out), "--cache", str(cache),
                 "--device", "cpu", "--report", *TINY_SUITE]) == 0
    label = f"{tiny_run.name}-iter1"  # a run's checkpoint is labelled RUN-iterK
    assert label in (out / "report" / "index.html").read_text()  # --report renders the evaluated model
    for p, mtime in cells.items():
        assert p.stat().st_mtime_ns == mtime, f"{p} was recomputed"
    df = pd.read_csv(out / label / "results.csv")
    assert set(df.task) == {"clean", "corruptions", "perturbations", "natural_adversarial", "fgsm"}
    assert list(df.columns) == schema.COLUMNS
    norm = df[df.metric.isin(["ce", "relative_ce", "mce_partial", "relative_mce_partial", "fr", "t5d_rel", "mfr_partial",
                              "mt5d_partial"])]
    assert len(norm) and norm.normaliser.str.startswith(f"{tiny_run.name}-iter0").all()
    clean = df[(df.task == "clean") & (df.metric == "top1_acc")].value.iloc[0]
    fgsm0 = df[(df.task == "fgsm") & (df.eps_255 == 0) & (df.metric == "top1_acc")].value.iloc[0]
    per = pd.read_parquet(out / label / "per_image.parquet")
    clean_sub = per[(per.task == "clean") & (per.condition == "clean")].set_index("image").correct
    fgsm_sub = per[(per.task == "fgsm") & (per.eps_255 == 0)].set_index("image").correct
    assert (clean_sub.loc[fgsm_sub.index] == fgsm_sub).all()  # eps = 0 reproduces clean predictions image by image
    # the published rows are the means of the per-image outcomes (FGSM scores a subset, so not clean's value)
    assert clean == pytest.approx(100 * clean_sub.mean()) and fgsm0 == pytest.approx(100 * fgsm_sub.mean())
    import json

    meta = json.loads((out / label / "meta.json").read_text())
    assert meta["normaliser"]["sha256"] == json.loads((out / f"{tiny_run.name}-iter0" / "meta.json").read_text())["model"]["sha256"]
    assert meta["sets"]["natural_adversarial"]["rule"].startswith("kept: pool images that every reference")
    assert meta["dataset"]["fingerprint"] and meta["model"]["iteration"] == 1


def test_timm_models_without_the_hub_get_one_line_errors(monkeypatch):
    from nsbench.bench.eval_model import load_eval_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(NsbenchError, match=r"timm:resnet18: pretrained weights are not in the local HF cache and "
                                           r"HF_HUB_OFFLINE is set; pass --checkpoint PATH"):
        load_eval_model("timm:resnet18")
    with pytest.raises(NsbenchError, match="unknown timm model"):
        load_eval_model("timm:no_such_net")
