"""bench/tasks/perturbations.py by value: the defaults (suites/robustness.yaml's 200 sequences, difficulty 1) and
what validate refuses; FR / T5D rows exactly when a normaliser is in use (a model normaliser gives them, an
AlexNet request its table cannot serve gives none even with a model at hand); unreadable official videos counted
per perturbation; a built set cached or made on the fly, each saying so; and the on-the-fly logits: every clean image
of the built set made into its sequence with the cached path's per-image seed (cache.seed_for(seed, perturbation,
difficulty, source index)), max(1, batch // 31) sequences per generator call, frames handed to the model in batches
of the context's size as NCHW floats of pixel / 255, and an empty share (a rank without images) as many frames deep
as the sequence. Expected values are written out here: the torch generator called image by image, a linear model's
logits by hand, FR = 100 for a normaliser that is the model itself."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import (PIXEL_B, PIXEL_W, PixelOracle, PixelRecorder, encoded_image, oracle_model, random_photos,
                     synsets, task_context)
from nsbench.bench import cache, onthefly, perturbation_sets
from nsbench.bench.context import EvalContext
from nsbench.bench.eval_model import EvalModel
from nsbench.bench.normaliser import Normaliser
from nsbench.bench.onthefly import perturb
from nsbench.bench.suite import SuiteConfig
from nsbench.bench.tasks import perturbations
from nsbench.bench.tasks.perturbations import PerturbationTask, validate
from nsbench.reference import P_TEST
from nsbench.utils import NsbenchError

W, B, Recorder, photos = PIXEL_W, PIXEL_B, PixelRecorder, random_photos


def context(tmp_path, model=None, *, batch_size=None, **task) -> tuple[EvalContext, PerturbationTask]:
    return task_context(tmp_path, "perturbations", model, batch_size=batch_size, **task)


# ---- settings


def test_the_defaults_are_the_robustness_suites_200_sequences_at_difficulty_1():
    t = PerturbationTask()  # suites/robustness.yaml: limit 200 sequences per perturbation, difficulty 1
    assert t.limit == 200 and t.difficulty == 1 and t.perturbations == list(P_TEST) and t.generate == "auto"


def test_validate_takes_a_limit_of_one_and_difficulties_1_to_3():
    validate(PerturbationTask(limit=1))
    for d in (1, 2, 3):
        validate(PerturbationTask(difficulty=d))
    with pytest.raises(NsbenchError, match="perturbations.limit"):
        validate(PerturbationTask(limit=0))
    for d in (0, 4):
        with pytest.raises(NsbenchError, match="perturbations.difficulty must be 1, 2 or 3"):
            validate(PerturbationTask(difficulty=d))


def test_spatter_needs_the_official_set():
    with pytest.raises(NsbenchError, match="'spatter' exists only in the official ImageNet-P"):
        validate(PerturbationTask(perturbations=["spatter"]))
    validate(PerturbationTask(perturbations=["spatter"], root="/data/imagenet-p"))


# ---- the normaliser's rows (per-sequence statistics fabricated, as test_metrics does)


def rows_with(tmp_path, monkeypatch, norm, root=None):
    stats = {p: {"fp": np.array([0.1, 0.3]), "t5d": np.array([1.0, 2.0])} for p in ("gaussian_noise", "rotate")}
    monkeypatch.setattr(perturbations, "perturbation_stats", lambda ctx, t: (stats, {}))
    cfg = SuiteConfig(name="t")
    cfg.perturbations.root, cfg.perturbations.perturbations = root, list(stats)
    ctx = EvalContext(oracle_model(PixelOracle([0, 1]), ["a", "b"]), cfg, tmp_path / "cache", torch.device("cpu"))
    return {(r["condition"], r["metric"]): r for r in perturbations.run(ctx, cfg.perturbations, norm).rows}


def other_model() -> EvalModel:
    return EvalModel(PixelOracle([0, 1]), "ref", "cd" * 32, ["a", "b"], 64, {})


def test_a_model_normaliser_gives_fr_and_t5d_rows(tmp_path, monkeypatch):
    rows = rows_with(tmp_path, monkeypatch, Normaliser("model", other_model()))
    for p in ("gaussian_noise", "rotate"):  # the normaliser's statistics are the model's own: ratios of 1
        assert rows[(p, "fr")]["value"] == pytest.approx(100.0)
        assert rows[(p, "fr")]["normaliser"] == "ref (cdcdcdcdcdcd)"
        assert rows[(p, "t5d_rel")]["value"] == pytest.approx(100.0)
    assert rows[("all", "mfr_partial")]["value"] == pytest.approx(100.0)


def test_no_normaliser_no_fr_rows_even_with_a_model_at_hand(tmp_path, monkeypatch):
    for norm in (Normaliser("none"), Normaliser("alexnet", other_model())):  # AlexNet's table: not for a built set
        rows = rows_with(tmp_path, monkeypatch, norm)
        assert not [k for k in rows if k[1] in ("fr", "t5d_rel", "mfr", "mt5d", "mfr_partial", "mt5d_partial")]
        assert rows[("rotate", "fp")]["value"] == pytest.approx(20.0)


# ---- the official videos: unreadable ones counted per perturbation


def write_video(path, frames: int = 31):
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 64))
    for _ in range(frames):
        vw.write(cv2.cvtColor(encoded_image(0), cv2.COLOR_RGB2BGR))
    vw.release()


def test_unreadable_official_videos_are_counted_per_perturbation(tmp_path):
    names = synsets()
    root = tmp_path / "p"
    write_video(root / "gaussian_noise" / names[5] / "a.mp4")
    write_video(root / "gaussian_noise" / names[5] / "b.mp4")
    (root / "gaussian_noise" / names[5] / "c.mp4").write_bytes(b"not a video")
    write_video(root / "rotate" / names[5] / "a.mp4")
    cfg = SuiteConfig(name="t")
    cfg.perturbations.root, cfg.perturbations.perturbations = str(root), ["gaussian_noise", "rotate"]
    em = oracle_model(PixelOracle([5, 9], decoy=None), names)
    ctx = EvalContext(em, cfg, tmp_path / "cache", torch.device("cpu"))
    res = perturbations.run(ctx, cfg.perturbations, Normaliser("none"))
    assert res.sets["perturbations"]["skipped_unreadable"] == {"gaussian_noise": 1}
    n = {r["condition"]: r["n"] for r in res.rows if r["metric"] == "fp"}
    assert n == {"gaussian_noise": 2, "rotate": 1}


# ---- a built set: cached, or made on the fly


def test_a_cached_set_keeps_its_sequences_and_names_no_torch_generator(tmp_path):
    ctx, t = context(tmp_path, perturbations=["rotate"], generate="cached")
    out, info = perturbations._built(ctx, t)
    assert info["generate"] == "cached" and "generator" not in info and len(out["rotate"]["fp"]) == 3
    assert (tmp_path / "cache" / "sets" / info["folder"] / "rotate-d1.npy").exists()


def test_an_on_the_fly_set_keeps_only_clean_images_and_names_the_torch_generator(tmp_path):
    ctx, t = context(tmp_path, perturbations=["rotate"], generate="on_the_fly")
    out, info = perturbations._built(ctx, t)
    assert info["generate"] == "on_the_fly" and len(out["rotate"]["fp"]) == 3
    assert info["generator"] == f"nsbench.bench.onthefly revision {onthefly.REVISION} (torch, on cpu)"
    files = {p.name for p in (tmp_path / "cache" / "sets" / info["folder"]).glob("*.npy")}
    assert files == {"clean.npy", "indices.npy", "labels.npy"}


def clean_set(tmp_path, n=3):
    """A built set of clean images only (what the on-the-fly path builds)."""
    folder, manifest = perturbation_sets.build_p(photos(n), 32, [], 1, None, 0, tmp_path / "cache", workers=1)
    return folder, manifest, np.load(folder / "clean.npy"), np.load(folder / "indices.npy")


@pytest.fixture
def generator_calls(monkeypatch):
    """How many images each call of the torch -P generator was given."""
    calls = []
    real = perturb.sequences

    def recording(images, *a, **k):
        calls.append(len(images))
        return real(images, *a, **k)

    monkeypatch.setattr(perturb, "sequences", recording)
    return calls


@pytest.mark.parametrize("bs, per_call, forwards", [(20, [1, 1, 1], [20, 11] * 3), (62, [2, 1], [62, 31])])
def test_on_the_fly_logits_are_the_model_on_each_sequence_made_with_its_own_seed(tmp_path, generator_calls, bs,
                                                                                 per_call, forwards):
    folder, manifest, clean, index = clean_set(tmp_path)
    want_x = torch.cat([perturb.sequences(torch.from_numpy(clean[k : k + 1]), "gaussian_noise", 1,
                                          [cache.seed_for(manifest["seed"], "gaussian_noise", 1, int(index[k]))],
                                          manifest["calibration"])[0] for k in range(3)])  # 3 x 31 frames
    want_x = want_x.permute(0, 3, 1, 2).double() / 255  # NHWC uint8 -> NCHW in [0, 1]
    generator_calls.clear()
    model = Recorder()
    ctx, _ = context(tmp_path, model, batch_size=bs)
    got = perturbations._on_the_fly_logits(ctx, folder, manifest, "gaussian_noise", 1)
    assert generator_calls == per_call  # max(1, bs // 31) sequences at a time: about one model batch of frames
    assert [len(x) for x in model.seen] == forwards  # frames in batches of ctx.bs
    torch.testing.assert_close(torch.cat(model.seen).double(), want_x, rtol=0, atol=1e-7)
    assert got.shape == (3, 31, 3)
    np.testing.assert_allclose(got.reshape(93, 3), want_x[:, :, 0, 0].numpy() @ W.T + B, rtol=1e-5, atol=1e-6)


def test_an_empty_share_of_on_the_fly_sequences_is_as_many_frames_deep_as_the_others(tmp_path):
    folder, manifest, *_ = clean_set(tmp_path)
    ctx, _ = context(tmp_path)

    def two_ranks(idx, fn):  # the second rank's share is empty (more ranks than images)
        parts = [fn(idx), fn(idx[:0])]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    ctx.sharded = two_ranks
    # CIFAR-10-P's translate: range(0, 16), 16 frames; gaussian noise: 31
    for p, frames in (("translate", 16), ("gaussian_noise", 31)):
        out = perturbations._on_the_fly_logits(ctx, folder, manifest, p, 1)
        assert out.shape == (3, frames, 3) and out.dtype == np.float32
