"""A run's data: the labeled / unlabeled / validation sets, the recorded split, and how images reach the model."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from .. import distributed
from .. import runs
from ..config import TrainConfig
from ..data import labeled_split, open_source, subsample
from ..data.sources import Source
from ..data.transforms import SMALL_IMAGE_MAX, TrainAugment
from ..utils import NsbenchError, read_json, write_json, write_text

# Seeds derived from cfg.seed, one per random choice, so that changing one never moves another.
UNLABELED_SUBSET_SEED = 1  # the data.unlabeled_limit subset: cfg.seed + 1
VAL_SUBSET_SEED = 2  # the data.val_limit subset: cfg.seed + 2


@dataclass
class RunData:
    train: Source
    val: Source
    unlabeled: Source
    labeled_idx: np.ndarray
    unlabeled_idx: np.ndarray
    val_idx: np.ndarray
    classes: list[str]


def load_data(cfg: TrainConfig) -> RunData:
    d = cfg.data
    train = open_source(d.source, d.train_split, d.image_column, d.label_column)
    val = open_source(d.source, d.val_split, d.image_column, d.label_column, classes=train.classes)
    labeled_idx, rest = labeled_split(train.labels, d.labels_per_class, cfg.seed, train.name)
    if d.unlabeled:
        unl = open_source(d.unlabeled, "train", d.image_column, d.label_column)
        if unl.classes != train.classes:  # labels of another taxonomy are meaningless here: hide them
            unl.labels = np.full(len(unl), -1, dtype=np.int64)
        unl_idx = np.arange(len(unl))
    else:
        unl, unl_idx = train, rest
    unl_idx = subsample(unl_idx, d.unlabeled_limit, cfg.seed + UNLABELED_SUBSET_SEED)
    val_idx = subsample(np.arange(len(val)), d.val_limit, cfg.seed + VAL_SUBSET_SEED)
    if len(unl_idx) == 0:
        raise NsbenchError(f"{d.source}: no unlabeled images (labels_per_class={d.labels_per_class} labels all of "
                           f"them); lower labels_per_class or set data.unlabeled")
    return RunData(train, val, unl, labeled_idx, unl_idx, val_idx, train.classes)


def split_record(cfg: TrainConfig, data: RunData) -> dict:
    """What split.json holds: the seeded labeled indices and the fingerprint of the data they index."""
    return {"seed": cfg.seed, "labels_per_class": cfg.data.labels_per_class, "n_labeled": int(len(data.labeled_idx)),
            "n_unlabeled": int(len(data.unlabeled_idx)), "n_val": int(len(data.val_idx)),
            "labeled_indices": data.labeled_idx.tolist(), "unlabeled_source": cfg.data.unlabeled or cfg.data.source,
            "train_fingerprint": data.train.fingerprint(),
            "classes": list(data.classes)}  # so that reports name the classes from the run folder alone


def record_split(run: Path, cfg: TrainConfig, split: dict, resume: bool, config_text: str) -> None:
    """Rank 0 writes config.yaml and split.json; a resumed run must find the same split of the same data."""
    if distributed.is_main():
        run.mkdir(parents=True, exist_ok=True)
        path = run / runs.SPLIT
        if resume and path.exists():
            old = read_json(path)
            if any(old[key] != split[key] for key in ("labeled_indices", "train_fingerprint")):
                raise NsbenchError(f"{path}: the data or split changed since this run started; resume needs the "
                                   f"same data")
        write_text(run / runs.CONFIG, config_text)
        write_json(path, split)
    distributed.barrier()


def train_augment(cfg: TrainConfig) -> TrainAugment:
    """The input noise of teacher and students (RandAugment, flips, crops) from the recipe's noise section."""
    n = cfg.noise
    return TrainAugment(cfg.data.image_size, n.randaugment, n.ra_layers, n.ra_magnitude, n.ra_magnitude_std,
                        n.flip, n.random_crop_pad, ops=n.ra_ops, translate_const=n.ra_translate_const,
                        natural_crop=n.natural_crop == "inception")


def decode_mode(cfg: TrainConfig, device: torch.device, stage: Literal["train", "label"] = "train") -> str:
    """data.decode resolved for training (stage "train") or pseudo-labeling ("label"): auto decodes JPEGs on the GPU
    when running there on natural images (targets larger than SMALL_IMAGE_MAX); training also needs random-resized
    crops (its centre crops stay with the workers). Small images gain nothing from it."""
    if stage not in ("train", "label"):
        raise ValueError(f"stage must be train or label, got {stage!r}")
    if cfg.data.decode != "auto":
        return cfg.data.decode
    natural = cfg.data.image_size > SMALL_IMAGE_MAX and (stage == "label" or cfg.noise.natural_crop == "inception")
    return "device" if device.type == "cuda" and natural else "cpu"
