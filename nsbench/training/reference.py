"""Reference classifiers for building DATASET-A: trained here and handed to the harness as a function
(`nsbench.bench` scores models and never imports training)."""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import load_checkpoint, save_checkpoint
from ..config import OptimConfig, RuntimeConfig
from ..data.loaders import ImageDataset
from ..data.sources import Source
from ..data.transforms import TrainAugment
from ..models import ModelSpec, build_model, default_mean_std
from ..utils import seed_everything
from .stage import SEED_STRIDE, StageConfig, train_stage
from .validate import ValSet, evaluate

log = logging.getLogger(__name__)

FIRST_ROUND_WARMUP_EPOCHS = 0.1  # later rounds start from trained weights and need none
MIN_VAL_BATCH = 256
CROP_PAD_DIVISOR = 16  # the references' only noise: a pad-and-crop shift of max(1, size // 16) pixels


def _augment(size: int) -> TrainAugment:
    """Light noise for the references: a pad-and-crop shift, no RandAugment."""
    return TrainAugment(size, False, 0, 0, 0.0, random_crop_pad=max(1, size // CROP_PAD_DIVISOR))


def _optim(epochs: int, batch_size: int, lr: float, round_: int) -> OptimConfig:
    return OptimConfig(epochs=epochs, batch_size=batch_size, lr=lr,
                       warmup_epochs=FIRST_ROUND_WARMUP_EPOCHS if round_ == 0 else 0.0)


def recipe() -> dict:
    """Everything of the reference training that the caller's arguments do not say (optimiser, schedule, noise,
    runtime, seeds, the rule that keeps a round), as plain data: DATASET-A's cache key includes it, so a change
    here builds a new set instead of reusing one built by other references."""
    optim = dataclasses.asdict(_optim(1, 1, 1.0, 0))
    for given in ("epochs", "batch_size", "lr"):  # the caller's, already in the key
        optim.pop(given)
    return {"trainer": f"{__name__}.train_reference", "optim": optim, "later_rounds_warmup_epochs": 0.0,
            "runtime": dataclasses.asdict(RuntimeConfig()),
            "noise": f"pad-and-crop max(1, size // {CROP_PAD_DIVISOR}), no RandAugment",
            "round_seed": f"seed + {SEED_STRIDE} * round", "keep": "best round by held-out top-1",
            "stop": "a round that does not improve, or gains less than min_gain after the first"}


def train_reference(*, arch: str, seed: int, kwargs: dict, source: Source, indices: np.ndarray, val_indices: np.ndarray,
                    size: int, epochs: int, max_rounds: int, min_gain: float, batch_size: int, lr: float,
                    workdir: Path, device: torch.device) -> tuple[torch.nn.Module, dict]:
    """Train (or reload from `workdir`) one reference classifier on `source` at `indices` until its accuracy on the
    held-out `val_indices` stops improving: rounds of `epochs` epochs (a fresh cosine cycle each, warm-started), at
    most `max_rounds`, stopping when a round gains less than `min_gain` points; the best round's weights are kept.
    Returns the model (eval mode, on `device`) and what it reached ({rounds, val_top1 per round, val_top1})."""
    name = f"ref-{arch}-{seed}"
    path = Path(workdir) / f"{name}.pt"
    if path.exists():
        model, meta = load_checkpoint(path)
        return model.to(device), meta["metrics"]
    seed_everything(seed)
    mean, std = default_mean_std(arch)
    spec = ModelSpec(arch, num_classes=len(source.classes), input_size=size, mean=mean, std=std, kwargs=kwargs)
    model = build_model(spec)
    ds = ImageDataset(source, indices, size, augment=_augment(size))
    val = ValSet(source, np.asarray(val_indices), size, batch_size=max(batch_size, MIN_VAL_BATCH))
    history, best, best_state = [], -1.0, None
    for r in range(max_rounds):
        state = Path(workdir) / f"{name}.round{r}.state.pt"
        # each round a fresh cosine cycle from the last round's weights, with its own seed
        stage = StageConfig(name=f"{name} round {r + 1}", optim=_optim(epochs, batch_size, lr, r),
                            runtime=RuntimeConfig(), labeled=ds, device=device, state_path=state,
                            seed=seed + SEED_STRIDE * r, distributed=False)
        model, _ = train_stage(model, stage)
        state.unlink(missing_ok=True)
        acc = float(evaluate(model, val, device)["top1"])
        history.append(acc)
        log.info("%s: round %d, held-out top-1 %.2f%%", name, r + 1, acc)
        if acc > best:
            gain, best = acc - best, acc
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if r > 0 and gain < min_gain:
                break
        else:
            break
    model.load_state_dict(best_state)
    info = {"rounds": len(history), "epochs_per_round": epochs, "val_top1_per_round": history, "val_top1": best,
            "n_train": int(len(indices)), "n_val": int(len(val_indices))}
    save_checkpoint(path, model, spec, classes=source.classes, iteration=-1, parent_sha256=None,
                    config={"reference": {"arch": arch, "seed": seed, "kwargs": kwargs}}, metrics=info,
                    extra={"role": "dataset-a-reference"})
    return model.eval().to(device), info


train_reference.recipe = recipe  # read by the harness for DATASET-A's cache key (bench/natural.py build_a)
