"""Reference classifiers for building DATASET-A: trained here and handed to the harness as a function
(`nsbench.bench` scores models and never imports training)."""
from __future__ import annotations

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
    ds = ImageDataset(source, indices, size, augment=TrainAugment(size, False, 0, 0, 0.0, random_crop_pad=max(1, size // 16)))
    val = ValSet(source, np.asarray(val_indices), size, batch_size=max(batch_size, 256))
    history, best, best_state = [], -1.0, None
    for r in range(max_rounds):
        state = Path(workdir) / f"{name}.round{r}.state.pt"
        optim = OptimConfig(epochs=epochs, batch_size=batch_size, lr=lr, warmup_epochs=0.1 if r == 0 else 0.0)
        # each round a fresh cosine cycle from the last round's weights, with its own seed
        stage = StageConfig(name=f"{name} round {r + 1}", optim=optim, runtime=RuntimeConfig(), labeled=ds,
                            device=device, state_path=state, seed=seed + SEED_STRIDE * r, distributed=False)
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
