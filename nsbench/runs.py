"""The run folder's layout, in one place: every module that reads or writes a training run names its files here.

```
RUN/config.yaml           the resolved configuration
RUN/split.json            the seeded labeled / unlabeled split
RUN/train.log             the log
RUN/iter{k}.pt            one self-describing checkpoint per finished iteration (0 = the supervised teacher)
RUN/iter{k}.pt.damaged    a checkpoint found unrecorded and unusable on resume, moved aside
RUN/iter{k}/state.pt      training state while iteration k trains
RUN/iter{k}/pseudo/       iteration k's pseudo-label store (stats.json written last)
RUN/history.csv           one row per epoch of every iteration
RUN/summary.json          one entry per finished iteration
```
"""
from __future__ import annotations

import re
from pathlib import Path

CONFIG = "config.yaml"
SPLIT = "split.json"
LOG = "train.log"
HISTORY = "history.csv"
SUMMARY = "summary.json"

_CHECKPOINT = re.compile(r"^iter(\d+)\.pt$")


def checkpoint(run: str | Path, iteration: int) -> Path:
    return Path(run) / f"iter{iteration}.pt"


def work_dir(run: str | Path, iteration: int) -> Path:
    return Path(run) / f"iter{iteration}"


def state_path(run: str | Path, iteration: int) -> Path:
    return work_dir(run, iteration) / "state.pt"


def pseudo_dir(run: str | Path, iteration: int) -> Path:
    return work_dir(run, iteration) / "pseudo"


def damaged(checkpoint_path: str | Path) -> Path:
    """Where a checkpoint that cannot be this run's is moved aside on resume (iter{k}.pt.damaged)."""
    p = Path(checkpoint_path)
    return p.with_name(p.name + ".damaged")


def pseudo_stats_files(run: str | Path) -> dict[int, Path]:
    """iteration -> its pseudo-label store's stats.json, for the stores that finished."""
    out = {}
    for p in Path(run).glob("iter*/pseudo/stats.json"):
        m = re.fullmatch(r"iter(\d+)", p.parent.parent.name)
        if m:
            out[int(m.group(1))] = p
    return dict(sorted(out.items()))


def iteration_of(path: str | Path) -> int | None:
    """k for a file named iter{k}.pt, else None."""
    m = _CHECKPOINT.match(Path(path).name)
    return int(m.group(1)) if m else None


def is_run(folder: str | Path) -> bool:
    """A training run folder: it holds the resolved config (summary.json appears after the first iteration)."""
    return (Path(folder) / CONFIG).is_file()


def is_finished_run(folder: str | Path) -> bool:
    return is_run(folder) and (Path(folder) / SUMMARY).is_file()


def model_label(path: str | Path) -> str:
    """The default label of a checkpoint: `RUN-iterK` for a run's checkpoint (two runs' iter3 never collide),
    else the file name without its suffix."""
    path = Path(path)
    if iteration_of(path) is not None and is_run(path.parent):
        run = path.resolve().parent.name
        return f"{run}-{path.stem}"
    return path.stem
