"""The registry of evaluation tasks. A task kind is one module under `nsbench/bench/tasks/` that registers itself:
its suite section (a dataclass of settings), its position in a suite, an optional validator, and a function
`run(ctx, cfg, norm) -> TaskResult`. Adding a task is adding one file; suites pick it up by its section name."""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable

import pandas as pd


@dataclass
class TaskResult:
    rows: list[dict]
    per_image: list[pd.DataFrame] = field(default_factory=list)
    sets: dict = field(default_factory=dict)  # what the task was scored on, for meta.json


@dataclass(frozen=True)
class TaskKind:
    name: str  # the suite section and the default `task` column
    config: type  # dataclass of the section's settings (must have `enabled: bool`)
    run: Callable[..., TaskResult]
    order: int
    validate: Callable[[Any], None] | None = None  # raises NsbenchError naming the bad key


_TASKS: dict[str, TaskKind] = {}
_LOADED = False


def register(name: str, *, config: type, order: int, validate: Callable[[Any], None] | None = None):
    def deco(fn):
        if name in _TASKS and _TASKS[name].run is not fn:
            raise ValueError(f"task {name!r} registered twice")
        _TASKS[name] = TaskKind(name, config, fn, order, validate)
        return fn

    return deco


def task_kinds() -> dict[str, TaskKind]:
    """Every registered task kind, in suite order (importing the modules of nsbench.bench.tasks once)."""
    global _LOADED
    if not _LOADED:
        from . import tasks

        for mod in pkgutil.iter_modules(tasks.__path__):
            importlib.import_module(f"{tasks.__name__}.{mod.name}")
        _LOADED = True
    return dict(sorted(_TASKS.items(), key=lambda kv: kv[1].order))
