"""DATASET-A's reference classifiers (training/reference_models.py): what each round trains with (seed, warmup, one
process), the held-out top-1 per round and the standard error of a paired difference by hand, per-image held-out
outcomes, and the recipe that keys the built set. The stopping rule is tested in tests/bench/test_built_a.py."""
from __future__ import annotations

import dataclasses
import types

import numpy as np
import pytest
import torch

from nsbench.config import OptimConfig
from nsbench.data.sources import ArraySource
from nsbench.training import reference_models
from nsbench.training.stage import SEED_STRIDE
from nsbench.training.validate import ValSet


def _source(n=8, classes=4) -> ArraySource:
    images = np.zeros((n, 8, 8, 3), np.uint8)
    images[:, 0, 0, 0] = np.arange(n)
    return ArraySource("ids", images, np.arange(n) % classes, [f"c{i}" for i in range(classes)])


def test_rounds_train_with_their_seed_and_warmup_in_one_process_and_record_top1(tmp_path, monkeypatch):
    """Round r trains with seed + SEED_STRIDE r, a warmup only in the first round, in this process; its held-out
    top-1 is 100 x the share right: 2 / 8 = 25% and then 5 / 8 = 62.5%."""
    stages = []

    def fake_stage(model, stage):
        stages.append(stage)
        return model, {}

    outcomes = iter([np.array([1, 1, 0, 0, 0, 0, 0, 0], bool), np.array([1, 1, 1, 1, 1, 0, 0, 0], bool)])
    monkeypatch.setattr(reference_models, "train_stage", fake_stage)
    monkeypatch.setattr(reference_models, "_held_out_correct", lambda model, val, device: next(outcomes))
    job = types.SimpleNamespace(source=_source(), indices=np.arange(8), val_indices=np.arange(8), size=8, epochs=1,
                                batch_size=4, lr=1e-3, max_rounds=2, min_gain=0.0, workdir=tmp_path,
                                device=torch.device("cpu"), arch="x", seed=5)
    _, hist = reference_models._rounds(torch.nn.Linear(1, 1), job)
    assert hist["top1"] == [25.0, 62.5]
    assert [s.seed for s in stages] == [5, 5 + SEED_STRIDE]
    assert [s.distributed for s in stages] == [False, False]
    assert [s.optim.warmup_epochs for s in stages] == [reference_models.FIRST_ROUND_WARMUP_EPOCHS, 0.0]
    assert reference_models.recipe()["later_rounds_warmup_epochs"] == 0.0  # the key says what the rounds do


def test_improvement_and_its_standard_error_by_hand():
    """gain = 100 mean(d), se = 100 sd(d, ddof=1) / sqrt(n), d the per-image differences; one image has no sd."""
    gain, se = reference_models.improvement(np.array([True, False]), np.array([False, False]))
    assert gain == 50.0 and se == pytest.approx(100 * np.sqrt(0.5) / np.sqrt(2))  # d = [1, 0]: sd sqrt(1/2)
    gain, se = reference_models.improvement(np.array([True]), np.array([False]))
    assert gain == 100.0 and se == float("inf")
    assert all(np.isnan(reference_models.improvement(np.array([True]), None)))


def test_held_out_outcomes_per_image_in_index_order():
    """A model that predicts class (id + 1) % 4 for odd ids and the true class id % 4 for even ones."""

    class Model(torch.nn.Module):
        def forward(self, x):
            k = (x[:, 0, 0, 0] * 255).round().long()
            return torch.nn.functional.one_hot((k + k % 2) % 4, 4).float()

    val = ValSet(_source(), np.array([3, 0, 6, 5]), 8, batch_size=4)
    out = reference_models._held_out_correct(Model(), val, torch.device("cpu"))
    assert out.tolist() == [False, True, True, False]


def test_the_recipe_leaves_out_the_callers_settings_and_the_ema_options_that_are_off():
    """The caller's epochs, batch size and lr are in DATASET-A's key already; ema_warmup and ema_reference_batch,
    added later and off here, are left out so a set built before keeps its key."""
    optim = reference_models.recipe()["optim"]
    fields = {f.name for f in dataclasses.fields(OptimConfig)}
    assert set(optim) == fields - {"epochs", "batch_size", "lr", "ema_warmup", "ema_reference_batch"}


def test_the_references_train_with_the_documented_noise_and_warmup(monkeypatch):
    """docs/evaluation.md: a pad-and-crop shift of max(1, size // 16) pixels, no flip, no RandAugment; 0.1 epoch of
    warmup in the first round only."""
    import nsbench.data.augment as augment

    seen = []
    real = augment.batch_augment

    def spy(size, randaugment, layers, magnitude, magnitude_std, flip=False, random_crop_pad=0, **kw):
        if not kw.get("natural"):
            seen.append((size, randaugment and layers > 0, flip, random_crop_pad))
        return real(size, randaugment, layers, magnitude, magnitude_std, flip, random_crop_pad, **kw)

    monkeypatch.setattr(augment, "batch_augment", spy)
    for size, pad in ((8, 1), (15, 1), (16, 1), (32, 2), (40, 2), (224, 14)):
        reference_models._augment(size)
        assert seen[-1] == (size, False, False, pad) and type(seen[-1][3]) is int
    assert [reference_models._optim(3, 4, 0.1, r).warmup_epochs for r in (0, 1, 2)] == [0.1, 0.0, 0.0]


def test_a_reference_trained_for_real_is_kept_and_reloaded(tmp_path):
    """One real round on eight images: the reference is saved as workdir/ref-ARCH-SEED.pt (iteration -1, role
    dataset-a-reference, its metrics) and a second call reloads it instead of training."""
    import json

    from nsbench.checkpoint import load_checkpoint

    job = dict(arch="test_resnet", seed=3, kwargs={}, source=_source(), indices=np.arange(8), val_indices=np.arange(8),
               size=8, epochs=1, max_rounds=1, min_gain=0.0, batch_size=4, lr=1e-3, workdir=tmp_path,
               device=torch.device("cpu"))
    _, info = reference_models.train_reference(**job)
    path = tmp_path / "ref-test_resnet-3.pt"
    assert path.exists() and info["rounds"] == 1 and info["n_train"] == 8 and info["stopped_by"] == "cap"
    _, meta = load_checkpoint(path)
    assert meta["iteration"] == -1 and meta["parent_sha256"] is None and meta["role"] == "dataset-a-reference"
    assert meta["config"]["reference"] == {"arch": "test_resnet", "seed": 3, "kwargs": {}}
    _, again = reference_models.train_reference(**job)
    same = [json.dumps(m, sort_keys=True) for m in (again, meta["metrics"], info)]  # NaN se of the first round
    assert same[0] == same[1] == same[2]
