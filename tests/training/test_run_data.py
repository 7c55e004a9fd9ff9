"""A run's data (training/run_data.py), against its docstrings and the subset rule written out: the unlabeled pool
is the seeded subset of `unlabeled_limit` drawn with seed cfg.seed + 1, the validation images the subset of
`val_limit` with seed cfg.seed + 2 (np.random.default_rng(seed).choice without replacement, sorted); an unlabeled
source of other classes has its labels hidden (-1); no unlabeled image is refused in one line; split.json records
where the unlabeled images come from; a resumed run must find the same split, a fresh one writes its own; the decode
mode and the training crop follow the recipe."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from helpers import write_folder
from nsbench.config import DataConfig, NoiseConfig, TrainConfig
from nsbench.data.transforms import SMALL_IMAGE_MAX
from nsbench.training import run_data
from nsbench.utils import NsbenchError, read_json


def config(source: str, seed: int = 3, **data) -> TrainConfig:
    d = dataclasses.replace(DataConfig(), **{"source": source, "labels_per_class": 5, "val_split": "test", **data})
    return dataclasses.replace(TrainConfig(), seed=seed, data=d)


def subset(pool: np.ndarray, limit: int, seed: int) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).choice(pool, size=limit, replace=False))


def test_the_unlabeled_and_validation_subsets_have_seeds_of_their_own(tiny_folder):
    """4 classes x 40 training images, 5 labeled per class: 140 unlabeled, 20 of them kept (seed 3 + 1); 10 of the
    40 validation images (seed 3 + 2)."""
    data = run_data.load_data(config(f"folder:{tiny_folder}", unlabeled_limit=20, val_limit=10))
    assert len(data.labeled_idx) == 20 and data.unlabeled is data.train
    rest = np.setdiff1d(np.arange(160), data.labeled_idx)
    np.testing.assert_array_equal(data.unlabeled_idx, subset(rest, 20, 4))
    np.testing.assert_array_equal(data.val_idx, subset(np.arange(40), 10, 5))
    assert data.classes == data.train.classes


def test_an_unlabeled_source_keeps_its_labels_only_in_the_same_classes(tiny_folder, tmp_path):
    same = write_folder(tmp_path / "same", 4, {"train": 3}, seed=1)
    other = write_folder(tmp_path / "other", 3, {"train": 3}, seed=2)
    kept = run_data.load_data(config(f"folder:{tiny_folder}", unlabeled=f"folder:{same}"))
    assert sorted(kept.unlabeled.labels.tolist()) == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    np.testing.assert_array_equal(kept.unlabeled_idx, np.arange(12))
    hidden = run_data.load_data(config(f"folder:{tiny_folder}", unlabeled=f"folder:{other}"))
    assert hidden.unlabeled.labels.tolist() == [-1] * 9


def test_one_unlabeled_image_is_enough_and_none_is_refused(tiny_folder):
    data = run_data.load_data(config(f"folder:{tiny_folder}", labels_per_class=39, unlabeled_limit=1))
    assert len(data.unlabeled_idx) == 1
    with pytest.raises(NsbenchError, match=r"^folder:\S+: no unlabeled images \(labels_per_class=40 labels all of "
                                           r"them\); lower labels_per_class or set data.unlabeled$"):
        run_data.load_data(config(f"folder:{tiny_folder}", labels_per_class=40))


def test_split_json_names_the_unlabeled_source(tiny_folder, tmp_path):
    cfg = config(f"folder:{tiny_folder}", val_limit=10)
    rec = run_data.split_record(cfg, run_data.load_data(cfg))
    assert rec["unlabeled_source"] == f"folder:{tiny_folder}"
    assert (rec["seed"], rec["labels_per_class"], rec["n_labeled"], rec["n_unlabeled"], rec["n_val"]) == \
        (3, 5, 20, 140, 10)
    same = write_folder(tmp_path / "same", 4, {"train": 2})
    cfg = config(f"folder:{tiny_folder}", unlabeled=f"folder:{same}")
    assert run_data.split_record(cfg, run_data.load_data(cfg))["unlabeled_source"] == f"folder:{same}"


SPLIT = {"labeled_indices": [0, 1], "train_fingerprint": "f"}


def test_a_fresh_run_writes_its_split_even_over_an_old_one_and_a_resumed_one_needs_the_same(tmp_path):
    run = tmp_path / "runs" / "a"  # parents are made
    cfg = TrainConfig()
    run_data.record_split(run, cfg, SPLIT, resume=True, config_text="seed: 0\n")  # resume without split.json yet
    assert read_json(run / "split.json") == SPLIT and (run / "config.yaml").read_text() == "seed: 0\n"
    moved = {**SPLIT, "labeled_indices": [0, 2]}
    run_data.record_split(run, cfg, moved, resume=False, config_text="seed: 1\n")
    assert read_json(run / "split.json") == moved
    with pytest.raises(NsbenchError, match="split.json: the data or split changed since this run started"):
        run_data.record_split(run, cfg, SPLIT, resume=True, config_text="")
    run_data.record_split(run, cfg, moved, resume=True, config_text="")


def test_the_training_crop_is_random_resized_only_for_inception(tmp_path):
    for crop, natural in (("inception", True), ("center", False)):
        cfg = dataclasses.replace(TrainConfig(), noise=dataclasses.replace(NoiseConfig(), natural_crop=crop))
        assert (run_data.train_augment(cfg).rrc is not None) == natural  # the random-resized crop


def test_jpegs_are_decoded_on_the_gpu_only_for_natural_images_there():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")

    def mode(size, stage="train", crop="inception", device=cuda):
        cfg = dataclasses.replace(TrainConfig(), data=dataclasses.replace(DataConfig(), image_size=size),
                                  noise=dataclasses.replace(NoiseConfig(), natural_crop=crop))
        return run_data.decode_mode(cfg, device, stage)

    assert mode(SMALL_IMAGE_MAX + 1) == "device" and mode(SMALL_IMAGE_MAX) == "cpu"  # small images: no gain
    assert mode(224, device=cpu) == "cpu"
    assert mode(224, crop="center") == "cpu" and mode(224, "label", crop="center") == "device"
    with pytest.raises(ValueError, match="stage must be train or label"):
        mode(224, "eval")
