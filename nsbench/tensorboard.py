"""Training curves in TensorBoard (`runtime.tensorboard: true`; `pip install nsbench[tensorboard]`), off by default.

A session opened around a training run (nsbench.api.train) holds one SummaryWriter writing RUN/tensorboard/; the
training loop hands each finished epoch's history row to `log_epoch`, which does nothing outside a session. Every
numeric column of the row becomes a scalar `STAGE/COLUMN` (train_loss, lr, val_top1, images_per_s, ...) at the
stage's epoch, so the curves are exactly what history.csv holds.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

from .utils import NsbenchError

_writer = None  # the open session's SummaryWriter (rank 0 only)
SKIP = ("stage", "epoch")


@contextlib.contextmanager
def session(run: Path, *, enabled: bool):
    global _writer
    from . import distributed

    if not enabled or distributed.env_rank() != 0:
        yield None
        return
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise NsbenchError("runtime.tensorboard=true needs the tensorboard package: pip install 'nsbench[tensorboard]'"
                           " (or pip install tensorboard)") from None
    writer = SummaryWriter(log_dir=str(Path(run) / "tensorboard"))
    previous, _writer = _writer, writer
    try:
        yield writer
    finally:
        _writer = previous
        writer.close()


def log_epoch(row: dict) -> None:
    """One history row (stage, epoch, and numbers) as scalars; a no-op without an open session."""
    if _writer is None:
        return
    stage, step = str(row.get("stage", "train")), int(row.get("epoch", 0))
    for key, value in row.items():
        if key not in SKIP and isinstance(value, (int, float)) and not isinstance(value, bool):
            _writer.add_scalar(f"{stage}/{key}", float(value), step)
    _writer.flush()
