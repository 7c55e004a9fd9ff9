"""Shared fixtures: tiny synthetic image datasets on disk, tiny recipes, a fixed seed, no network."""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(autouse=True)
def _seed():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


def make_image(cls: int, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """A learnable 32x32 RGB image: class c lights one quadrant (c % 4) in one colour family (c // 4)."""
    img = rng.integers(0, 60, (size, size, 3)).astype(np.uint8)
    h = size // 2
    y, x = (cls % 4) // 2 * h, (cls % 4) % 2 * h
    colour = np.array([[220, 40, 40], [40, 220, 40], [40, 40, 220]][cls // 4 % 3], np.uint8)
    img[y : y + h, x : x + h] = np.clip(colour.astype(int) + rng.integers(-30, 30, 3), 0, 255).astype(np.uint8)
    return img


def write_folder(root: Path, n_classes: int, per_class: dict[str, int], seed: int = 0) -> Path:
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, n in per_class.items():
        for c in range(n_classes):
            d = root / split / f"class{c}"
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(make_image(c, rng)).save(d / f"{i:04d}.png")
    return root


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory) -> Path:
    """folder:PATH with train (40/class) and test (10/class) splits of 4 classes."""
    return write_folder(tmp_path_factory.mktemp("tiny") / "data", 4, {"train": 40, "test": 10})


def tiny_recipe(source: str, iterations: int = 2, **extra) -> dict:
    recipe = {
        "seed": 0,
        "data": {"source": source, "labels_per_class": 8, "val_split": "test", "image_size": 32},
        "teacher": {"arch": "test_efficientnet", "drop_rate": 0.1, "drop_path_rate": 0.1},
        "students": [{"arch": "test_efficientnet", "drop_rate": 0.2, "drop_path_rate": 0.1,
                      "kwargs": {"channel_multiplier": 1.0}}],
        "teacher_optim": {"epochs": 2, "batch_size": 16, "lr": 0.003, "warmup_epochs": 0},
        "student_optim": {"epochs": 1, "batch_size": 16, "lr": 0.003, "warmup_epochs": 0},
        "pseudo": {"threshold": 0.0, "batch_size": 64},
        "noise": {"ra_layers": 1, "ra_magnitude": 5},
        "ns": {"iterations": iterations, "unlabeled_ratio": 2},
        "runtime": {"device": "cpu"},
    }
    for k, v in extra.items():
        recipe[k] = {**recipe.get(k, {}), **v} if isinstance(v, dict) else v
    return recipe


@pytest.fixture(scope="session")
def tiny_run(tiny_folder, tmp_path_factory) -> Path:
    """A finished one-iteration run on the tiny folder dataset: iter0.pt (teacher) and iter1.pt (student)."""
    import yaml

    from nsbench.cli import main

    root = tmp_path_factory.mktemp("run")
    recipe = root / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(f"folder:{tiny_folder}", iterations=1)))
    assert main(["train", "--recipe", str(recipe), "--out", str(root / "run")]) == 0
    return root / "run"


TINY_SUITE = [
    "corruptions.limit=8", "corruptions.severities=[1,2]", "corruptions.corruptions=[gaussian_noise,impulse_noise,fog,speckle_noise]",
    "perturbations.limit=4", "perturbations.perturbations=[gaussian_noise,translate,rotate]",
    "natural_adversarial.references=[{arch: test_resnet, seed: 0}]", "natural_adversarial.ref_epochs=1",
    "natural_adversarial.ref_train_limit=32", "fgsm.limit=16", "fgsm.eps_255=[0,4]",
]
