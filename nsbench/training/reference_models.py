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
from ..data.loaders import ImageDataset, iterate_clean
from ..data.sources import Source
from ..data.transforms import TrainAugment
from ..models import ModelSpec, build_model, default_mean_std
from ..utils import seed_everything
from .stage import SEED_STRIDE, StageConfig, train_stage
from .validate import ValSet

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
    for later in ("ema_warmup", "ema_reference_batch"):  # added later, off here: a set built before keeps its key
        if not optim.get(later):
            optim.pop(later, None)
    return {"trainer": f"{__name__}.train_reference", "optim": optim, "later_rounds_warmup_epochs": 0.0,
            "runtime": dataclasses.asdict(RuntimeConfig()),
            "noise": f"pad-and-crop max(1, size // {CROP_PAD_DIVISOR}), no RandAugment",
            "round_seed": f"seed + {SEED_STRIDE} * round", "keep": "best round by held-out top-1",
            "stop": STOP_RULE}


PATIENCE = 2  # rounds in a row without an improvement beyond noise before a reference stops
STOP_RULE = (f"a round improves when its held-out top-1 beats the best round's so far by more than the standard error "
             f"of that paired difference over the held-out images (and by more than min_gain); stop after {PATIENCE} "
             f"rounds in a row that do not improve, or at max_rounds; the round with the best held-out top-1 is kept")


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
    min_gain: float  # points of held-out top-1 a round must add, beyond its standard error, to count as improving
    batch_size: int
    lr: float
    workdir: Path  # where the trained reference is kept (reloaded when present)
    device: torch.device


def train_reference(**job) -> tuple[torch.nn.Module, dict]:
    """Train (or reload from `workdir`) one reference classifier (ReferenceJob's fields, as keywords) until its
    accuracy on the held-out `val_indices` stops improving beyond noise: rounds of `epochs` epochs (a fresh cosine
    cycle each, warm-started), at most `max_rounds`, stopping as STOP_RULE says; the best round's weights are kept.
    Returns the model (eval mode, on `device`) and what it reached ({rounds, val_top1 per round, the standard error
    and whether it improved per round, val_top1, stopped_by: "plateau" or "cap"})."""
    j = ReferenceJob(**job)
    path = Path(j.workdir) / f"{_name(j)}.pt"
    if path.exists():
        model, meta = load_checkpoint(path)
        return model.to(j.device), meta["metrics"]
    seed_everything(j.seed)
    mean, std = default_mean_std(j.arch)
    spec = ModelSpec(j.arch, num_classes=len(j.source.classes), input_size=j.size, mean=mean, std=std, kwargs=j.kwargs)
    model, history = _rounds(build_model(spec), j)
    info = {"rounds": len(history["top1"]), "epochs_per_round": j.epochs, "val_top1_per_round": history["top1"],
            "se_per_round": history["se"], "improved_per_round": history["improved"], "val_top1": max(history["top1"]),
            "stopped_by": history["stopped_by"], "patience": PATIENCE, "n_train": int(len(j.indices)),
            "n_val": int(len(j.val_indices))}
    save_checkpoint(path, model, spec, classes=j.source.classes, iteration=-1, parent_sha256=None,
                    config={"reference": {"arch": j.arch, "seed": j.seed, "kwargs": j.kwargs}}, metrics=info,
                    extra={"role": "dataset-a-reference"})
    return model.eval().to(j.device), info


def _name(j: ReferenceJob) -> str:
    return f"ref-{j.arch}-{j.seed}"


def _rounds(model: torch.nn.Module, j: ReferenceJob) -> tuple[torch.nn.Module, dict]:
    """Train round after round (STOP_RULE); return the model holding the weights of the round with the best held-out
    top-1 and, per round, the held-out top-1, the standard error of its paired difference with the best round before
    it and whether it improved beyond that, and what stopped it."""
    ds = ImageDataset(j.source, j.indices, j.size, augment=_augment(j.size))
    val = ValSet(j.source, np.asarray(j.val_indices), j.size, batch_size=max(j.batch_size, MIN_VAL_BATCH))
    hist = {"top1": [], "se": [], "improved": [], "stopped_by": "cap"}
    best_correct, best_state, since = None, None, 0
    for r in range(j.max_rounds):
        state = Path(j.workdir) / f"{_name(j)}.round{r}.state.pt"
        # each round a fresh cosine cycle from the last round's weights, with its own seed
        stage = StageConfig(name=f"{_name(j)} round {r + 1}", optim=_optim(j.epochs, j.batch_size, j.lr, r),
                            runtime=RuntimeConfig(), labeled=ds, device=j.device, state_path=state,
                            seed=j.seed + SEED_STRIDE * r, distributed=False)
        model, _ = train_stage(model, stage)
        state.unlink(missing_ok=True)
        correct = _held_out_correct(model, val, j.device)
        gain, se = improvement(correct, best_correct)
        improved = best_correct is None or gain > max(se, j.min_gain)
        hist["top1"].append(float(100 * correct.mean()))
        hist["se"].append(se)
        hist["improved"].append(bool(improved))
        log.info("%s: round %d, held-out top-1 %.2f%%%s", _name(j), r + 1, hist["top1"][-1],
                 "" if best_correct is None else f" ({gain:+.2f} on the best round, standard error {se:.2f})")
        if best_correct is None or gain > 0:  # the best round by held-out top-1: its weights are kept
            best_correct = correct
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        since = 0 if improved else since + 1
        if since >= PATIENCE:
            hist["stopped_by"] = "plateau"
            break
    model.load_state_dict(best_state)
    return model, hist


def improvement(correct: np.ndarray, best: np.ndarray | None) -> tuple[float, float]:
    """The gain in held-out top-1 (points) of a round's per-image outcomes over the best round's, and the standard
    error of that paired difference (sd of the per-image differences / sqrt(n), in points); (nan, nan) for the first
    round."""
    if best is None:
        return float("nan"), float("nan")
    d = correct.astype(np.float64) - best.astype(np.float64)
    se = float(100 * d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("inf")
    return float(100 * d.mean()), se


@torch.no_grad()
def _held_out_correct(model: torch.nn.Module, val: ValSet, device: torch.device) -> np.ndarray:
    """Per held-out image, whether the model's top-1 is right (in val.indices order; unreadable images count
    wrong)."""
    was_training = model.training
    model.eval()
    out = np.zeros(len(val.indices), bool)
    where = {int(i): k for k, i in enumerate(val.indices)}
    for x, y, i, _ in iterate_clean(val.source, val.indices, val.size, val.batch_size, device=device):
        if len(y):
            hit = (model(x).argmax(1).cpu() == y.cpu()).numpy()
            out[[where[int(k)] for k in i]] = hit
    model.train(was_training)
    return out


train_reference.recipe = recipe  # read by the harness for DATASET-A's cache key (bench/built_a.py build_a)
