"""The Python entry points, wired the way the CLI wires them (the CLI calls these): `evaluate` and `train`.

Both lay out their outputs as the CLI does: `evaluate(model, suite, out)` writes `out/LABEL/` (as
`nsbench eval --out OUT` does for each model), `train(recipe, out)` writes the run folder `out/`.
"""
from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:  # kept out of `import nsbench`, which stays light
    import pandas as pd
    from torch import nn

    from .bench.models import EvalModel
    from .bench.suite import SuiteConfig
    from .config import TrainConfig


def evaluate(model: str | Path | nn.Module | EvalModel, suite: str | Path | SuiteConfig = "robustness",
             out: str | Path | None = None, *, overrides: Sequence[str] = (), label: str | None = None,
             checkpoint: str | Path | None = None, classes: list[str] | int | None = None,
             input_size: int | None = None, mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
             limit: int | None = None, device: str = "auto", cache_dir: str | Path | None = None,
             normaliser: str | None = None, workers: int | None = None, batch_size: int | None = None,
             precision: str | None = None, overwrite: bool = False) -> pd.DataFrame:
    """Score `model` on `suite` and write its results to `out/LABEL/` (default out: reports/eval-SUITE), the
    layout of `nsbench eval --out OUT`. Returns the result rows (a DataFrame).

    model: an nsbench checkpoint path, "timm:NAME" / "torchvision:NAME" (hub weights, or `checkpoint=` a local
      .safetensors / torch state dict), or any nn.Module (then `classes` and `input_size` are required, and
      `mean`/`std` unless it takes [0, 1] images).
    label: the results' name and folder (default: RUN-iterK for a run's checkpoint, the weights' file name for
      `checkpoint=`, else the model's name).
    classes: class names in output order, or a count (matched to the dataset's classes in its own order, as
      torchvision's ImageFolder sorts folders).
    input_size: the side the model sees (default: the checkpoint's, a timm model's pretrained config, 224 for
      torchvision); images far smaller than an unchosen default are refused with this fix named.
    precision: "fp32" or "bf16" (autocast), overriding the suite's (default fp32); recorded in meta.json and in
      every bf16 row's note.
    overwrite: replace another model's results already in `out/LABEL/` (refused otherwise).
    Built -A sets train their reference classifiers with nsbench.training.reference.train_reference.

    >>> evaluate("runs/fmnist/iter3.pt", "robustness", "out")                        # doctest: +SKIP
    >>> evaluate(my_module, "quick", "out", classes=10, input_size=32)               # doctest: +SKIP
    """
    from .bench.api import as_eval_model
    from .bench.api import evaluate as _evaluate
    from .training.reference import train_reference

    em = as_eval_model(model, label=label, checkpoint=checkpoint, classes=classes, input_size=input_size,
                       mean=mean, std=std)
    folder = eval_root(suite, out) / em.label
    return _evaluate(em, suite, folder, overrides=list(overrides), limit=limit, device=device, cache_dir=cache_dir,
                     normaliser=normaliser, workers=workers, batch_size=batch_size, reference_trainer=train_reference,
                     precision=precision, overwrite=overwrite)


def eval_root(suite, out: str | Path | None) -> Path:
    """The folder that holds one LABEL/ folder per model: `out`, or reports/eval-SUITE."""
    if out is not None:
        return Path(out)
    name = getattr(suite, "name", None) or Path(str(suite)).stem
    return Path(f"reports/eval-{name}")


def train(recipe: str | Path = "default", out: str | Path | None = None, *,
          config: dict | TrainConfig | None = None, overrides: Sequence[str] = (), iterations: int | None = None,
          device: str | None = None, seed: int | None = None, resume: bool = False) -> dict:
    """Train a teacher and `iterations` noised students into the run folder `out` (default runs/RECIPE), as
    `nsbench train` does, and return the run's summary (summary.json: one entry per finished iteration with its
    checkpoint, val top-1 and sha256; `warnings`), with `run_dir` added.

    recipe: a shipped recipe's name (`nsbench ls`) or a YAML path; or give `config` (a dict shaped like a recipe,
      or a TrainConfig) instead. overrides: dotted KEY=VALUE strings, as on the command line.
    resume: continue the run in `out` from its last finished epoch (only `iterations` and `device` may change).

    >>> nsbench.train("default", "runs/a", overrides=["pseudo.soft=false"], iterations=1)   # doctest: +SKIP
    """
    import dataclasses

    from . import distributed as D
    from .config import TrainConfig, load_train_config
    from .resources import resolve
    from .training.driver import resume_config, train as run_driver  # the one way into training
    from .utils import NsbenchError, clean_stale_temps, log_to

    if resume:
        if out is None or overrides or seed is not None or config is not None:
            raise NsbenchError("resume takes the run's own config: give out=RUN_DIR, and only iterations/device")
        out = Path(out)
        cfg = resume_config(out, iterations)
        if device:
            cfg.runtime.device = device
    else:
        extra = list(overrides)
        extra += [f"ns.iterations={iterations}"] if iterations is not None else []
        extra += [f"runtime.device={device}"] if device else []
        extra += [f"seed={seed}"] if seed is not None else []
        if config is not None:
            base = config.to_dict() if isinstance(config, TrainConfig) else dataclasses.asdict(config) \
                if dataclasses.is_dataclass(config) else dict(config)
            cfg, name = load_train_config(base, extra), "config"
        else:
            path = resolve("recipe", str(recipe))
            cfg, name = load_train_config(path, extra), path.stem
        out = Path(out or f"runs/{name}")
        if out.exists() and not out.is_dir():
            raise NsbenchError(f"--out {out}: exists and is not a folder")
        if (out / "config.yaml").exists():
            raise NsbenchError(f"{out}: already holds a run; use --resume {out} (resume=True) or choose another --out")
    if cfg.ns.iterations < 0:
        raise NsbenchError(f"iterations must be >= 0, got {cfg.ns.iterations}")
    with _run_folder_lock(out, "resume" if resume else "train"), log_to(out / "train.log", enabled=D.env_rank() == 0), \
            _tensorboard(cfg, out):
        if D.env_rank() == 0:
            for p in clean_stale_temps(out):
                logging.getLogger("nsbench").info("removed %s, left by a killed run", p)
        summary = run_driver(cfg, out, resume=resume)
    return {**summary, "run_dir": str(out)}


def _run_folder_lock(out: Path, verb: str):
    """Rank 0 holds the run folder's lock, so a second `nsbench train` into it is refused in one line; the other
    ranks of a torchrun job run under rank 0's lock."""
    from . import distributed as D
    from .lock import run_lock

    if D.env_rank() != 0:
        return contextlib.nullcontext()
    return run_lock(out, what=f"nsbench train ({verb})")


def _tensorboard(cfg, out: Path):
    """TensorBoard event files under RUN/tensorboard/ when runtime.tensorboard is on (rank 0)."""
    from . import tensorboard

    return tensorboard.session(out, enabled=bool(getattr(cfg.runtime, "tensorboard", False)))
