"""Reference classifiers for building DATASET-A: trained here and handed to the harness as a function
(`nsbench.bench` scores models and never imports training)."""
from __future__ import annotations

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
from .fit import train_stage


def train_reference(*, arch: str, seed: int, kwargs: dict, source: Source, indices: np.ndarray, size: int,
                    epochs: int, batch_size: int, lr: float, workdir: Path, device: torch.device) -> torch.nn.Module:
    """Train (or reload from `workdir`) one reference classifier on `source` at `indices`; eval mode, on `device`.
    Training state lives beside it while it trains, so a killed build resumes."""
    name = f"ref-{arch}-{seed}"
    path, state = Path(workdir) / f"{name}.pt", Path(workdir) / f"{name}.state.pt"
    if path.exists():
        return load_checkpoint(path)[0].to(device)
    seed_everything(seed)
    mean, std = default_mean_std(arch)
    spec = ModelSpec(arch, num_classes=len(source.classes), input_size=size, mean=mean, std=std, kwargs=kwargs)
    model = build_model(spec)
    ds = ImageDataset(source, indices, size, augment=TrainAugment(size, False, 0, 0, 0.0, random_crop_pad=max(1, size // 16)))
    final, _ = train_stage(model, name=name, optim_cfg=OptimConfig(epochs=epochs, batch_size=batch_size, lr=lr, warmup_epochs=0.1),
                           runtime=RuntimeConfig(), labeled=ds, pseudo=None, ratio=0, unlabeled_weight=0.0, val=None,
                           device=device, state_path=state, seed=seed, distributed=False)
    save_checkpoint(path, final, spec, classes=source.classes, iteration=-1, parent_sha256=None,
                    config={"reference": {"arch": arch, "seed": seed, "kwargs": kwargs}}, metrics={},
                    extra={"role": "dataset-a-reference"})
    state.unlink(missing_ok=True)
    return final.eval().to(device)
