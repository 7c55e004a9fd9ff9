"""Top-1 / top-5 accuracy of a model on a clean held-out set, during training (the history's val columns)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .. import distributed
from ..data.loaders import iterate_clean
from ..data.sources import Source
from ..models import autocast, padded_forward


@dataclass
class ValSet:
    source: Source
    indices: np.ndarray
    size: int
    batch_size: int = 512
    num_workers: int = 0


@torch.no_grad()
def evaluate(model: nn.Module, val: ValSet, device: torch.device, channels_last: bool = False,
             amp: bool = False) -> dict:
    """Top-1 / top-5 accuracy over a clean set; shards over ranks and sums counts exactly once."""
    was_training = model.training
    model.eval()
    idx = val.indices[distributed.shard(len(val.indices))]
    counts = torch.zeros(4, dtype=torch.float64)  # correct@1, correct@5, n, images with non-finite logits
    for x, y, _, _ in iterate_clean(val.source, idx, val.size, val.batch_size, val.num_workers, device=device,
                                    channels_last=channels_last):
        if len(y) == 0:
            continue
        with autocast(device, amp):
            logits = padded_forward(model, x, val.batch_size).float().cpu()
        k = min(5, logits.shape[1])
        top = logits.topk(k, dim=1).indices
        counts += torch.tensor([(top[:, 0] == y).sum().item(), (top == y[:, None]).any(1).sum().item(), len(y),
                                (~torch.isfinite(logits)).any(1).sum().item()], dtype=torch.float64)
    model.train(was_training)
    on = device if device.type == "cuda" and distributed.is_dist() else "cpu"  # where the process group reduces
    counts = distributed.all_reduce_sum(counts.to(on)).cpu()
    n = max(counts[2].item(), 1)
    return {"top1": 100 * counts[0].item() / n, "top5": 100 * counts[1].item() / n, "n": int(counts[2].item()),
            "non_finite": int(counts[3].item())}
