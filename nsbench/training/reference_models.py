"""Reference classifiers for building DATASET-A: trained here and handed to the harness as a function
(`nsbench.bench` scores models and never imports training)."""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
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


@dataclass
class ReferenceJob:
    """One reference classifier to train: the keyword arguments the harness passes (bench/built_a.py build_a)."""

    arch: str
    seed: int
    kwargs: dict  # for timm.create_model
    source: Source
    indices: np.ndarray  # training images of `source`
    val_indices: np.ndarray  # held-out images of `source`, which decide when to stop
    size: int
    epochs: int  # per round
    max_rounds: int
    min_gain: float  # points of held-out top-1 a round must add to go on
    batch_size: int
    lr: float
    workdir: Path  # where the trained reference is kept (reloaded when present)
    device: torch.device


def train_reference(**job) -> tuple[torch.nn.Module, dict]:
    """Train (or reload from `workdir`) one reference classifier (ReferenceJob's fields, as keywords) until its
    accuracy on the held-out `val_indices` stops improving: rounds of `epochs` epochs (a fresh cosine cycle each,
    warm-started), at most `max_rounds`, stopping when a round gains less than `min_gain` points; the best round's
    weights are kept. Returns the model (eval mode, on `device`) and what it reached ({rounds, val_top1 per round,
    val_top1})."""
    j = ReferenceJob(**job)
    path = Path(j.workdir) / f"{_name(j)}.pt"
    if path.exists():
        model, meta = load_checkpoint(path)
        return model.to(j.device), meta["metrics"]
    seed_everything(j.seed)
    mean, std = default_mean_std(j.arch)
    spec = ModelSpec(j.arch, num_classes=len(j.source.classes), input_size=j.size, mean=mean, std=std, kwargs=j.kwargs)
    model, history, best = _rounds(build_model(spec), j)
    info = {"rounds": len(history), "epochs_per_round": j.epochs, "val_top1_per_round": history, "val_top1": best,
            "n_train": int(len(j.indices)), "n_val": int(len(j.val_indices))}
    save_checkpoint(path, model, spec, classes=j.source.classes, iteration=-1, parent_sha256=None,
                    config={"reference": {"arch": j.arch, "seed": j.seed, "kwargs": j.kwargs}}, metrics=info,
                    extra={"role": "dataset-a-reference"})
    return model.eval().to(j.device), info


def _name(j: ReferenceJob) -> str:
    return f"ref-{j.arch}-{j.seed}"


def _rounds(model: torch.nn.Module, j: ReferenceJob) -> tuple[torch.nn.Module, list[float], float]:
    """Train round after round; return the model holding the best round's weights, every round's held-out top-1
    and the best."""
    ds = ImageDataset(j.source, j.indices, j.size, augment=_augment(j.size))
    val = ValSet(j.source, np.asarray(j.val_indices), j.size, batch_size=max(j.batch_size, MIN_VAL_BATCH))
    history, best, best_state = [], -1.0, None
    for r in range(j.max_rounds):
        state = Path(j.workdir) / f"{_name(j)}.round{r}.state.pt"
        # each round a fresh cosine cycle from the last round's weights, with its own seed
        stage = StageConfig(name=f"{_name(j)} round {r + 1}", optim=_optim(j.epochs, j.batch_size, j.lr, r),
                            runtime=RuntimeConfig(), labeled=ds, device=j.device, state_path=state,
                            seed=j.seed + SEED_STRIDE * r, distributed=False)
        model, _ = train_stage(model, stage)
        state.unlink(missing_ok=True)
        acc = float(evaluate(model, val, j.device)["top1"])
        history.append(acc)
        log.info("%s: round %d, held-out top-1 %.2f%%", _name(j), r + 1, acc)
        if acc > best:
            gain, best = acc - best, acc
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if r > 0 and gain < j.min_gain:
                break
        else:
            break
    model.load_state_dict(best_state)
    return model, history, best


train_reference.recipe = recipe  # read by the harness for DATASET-A's cache key (bench/built_a.py build_a)
