"""Shared fixtures: a fixed seed, tiny synthetic image datasets on disk, a tiny finished run, fresh log handlers; no
network. What tests share besides fixtures is in helpers.py, imported by name."""
from __future__ import annotations

import logging
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before anything imports huggingface_hub (helpers imports nsbench)
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

from helpers import tiny_recipe, write_folder  # noqa: E402 - after the offline switches above


@pytest.fixture(autouse=True)
def _seed():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory) -> Path:
    """folder:PATH with train (40/class) and test (10/class) splits of 4 classes."""
    return write_folder(tmp_path_factory.mktemp("tiny") / "data", 4, {"train": 40, "test": 10})


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


@pytest.fixture
def fresh_log_handlers(monkeypatch):
    """The CLI's stderr handler is made anew per test, on this test's captured stderr (a handler left by an earlier
    test would write to a closed capture and print a logging traceback)."""
    logger = logging.getLogger("nsbench")
    monkeypatch.setattr(logger, "handlers", [])
    monkeypatch.setattr(logger, "level", logger.level)
