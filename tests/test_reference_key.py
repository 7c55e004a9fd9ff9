"""DATASET-A's cache key holds everything that decides the set, the reference trainer's own recipe included: a set
built by other references is never reused."""
from __future__ import annotations

import types

import numpy as np
import torch

from nsbench.bench.natural import BuildSettings, build_a
from nsbench.data.sources import ArraySource
from nsbench.training import reference


def _source(name: str, n: int = 24) -> ArraySource:
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 4
    return ArraySource(name, rng.integers(0, 255, (n, 32, 32, 3), dtype=np.uint8), labels, [f"c{i}" for i in range(4)])


def _trainer(recipe: dict | None):
    """A stand-in trainer (always class 3, so a quarter of the pool is right) that may describe its recipe."""
    def train(**kw):
        class Three(torch.nn.Module):
            def forward(self, x):
                return torch.zeros(len(x), 4) + torch.tensor([0, 0, 0, 1.0])

        return Three(), {"val_top1": 25.0, "rounds": 1}

    if recipe is not None:
        train.recipe = lambda: recipe
    return train


def _build(trainer, cache):
    refs = [types.SimpleNamespace(arch="test_resnet", seed=0, kwargs={})]
    how = BuildSettings(epochs=1, max_rounds=2, min_gain=0.5, train_limit=None, val_limit=4, batch_size=8, lr=1e-3,
                        pool_limit=None, seed=0)
    return build_a(_source("train"), _source("pool"), 32, refs, how, train_reference=trainer, cache_dir=cache,
                   device=torch.device("cpu"))


def test_the_reference_trainers_recipe_is_part_of_the_a_key(tmp_path):
    a, ma = _build(_trainer({"optim": {"weight_decay": 0.05}}), tmp_path)
    again, _ = _build(_trainer({"optim": {"weight_decay": 0.05}}), tmp_path)
    other, mo = _build(_trainer({"optim": {"weight_decay": 0.1}}), tmp_path)
    assert a == again and other != a  # same recipe: reused; another recipe: another set
    assert ma["trainer"] == {"optim": {"weight_decay": 0.05}} and mo["trainer"]["optim"]["weight_decay"] == 0.1
    assert ma["n"] == 18  # the stand-in gets class 3 right: the other 18 of 24 pool images are kept
    plain, mp = _build(_trainer(None), tmp_path)  # a trainer that does not describe itself: keyed by its name
    assert plain not in (a, other) and mp["trainer"].endswith("_trainer.<locals>.train")


def test_nsbench_reference_recipe_holds_what_its_arguments_do_not():
    r = reference.train_reference.recipe()
    assert r["optim"]["optimizer"] == "adamw" and r["optim"]["warmup_epochs"] == reference.FIRST_ROUND_WARMUP_EPOCHS
    assert not {"epochs", "batch_size", "lr"} & set(r["optim"])  # the caller's arguments, keyed by build_a itself
    assert r["runtime"]["channels_last"] is True and str(reference.SEED_STRIDE) in r["round_seed"]
