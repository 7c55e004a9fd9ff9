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

    from .bench.harness import ModelInfo, ScoreSettings
    from .bench.eval_model import EvalModel
    from .bench.suite import SuiteConfig
    from .config import TrainConfig


log = logging.getLogger("nsbench")


def evaluate(model: str | Path | nn.Module | EvalModel, suite: str | Path | SuiteConfig = "robustness",
             out: str | Path | None = None, *, info: ModelInfo | None = None,
             settings: ScoreSettings | None = None) -> pd.DataFrame:
    """Score `model` on `suite` and write its results to `out/LABEL/`: `out` is the folder that holds one LABEL/
    folder per model, as `nsbench eval --out OUT` lays it out (default: reports/eval-SUITE). Returns the result
    rows (a DataFrame, as results.csv holds them); `rows.attrs["headline"]` holds every measure they hold by its
    nsbench.schema name ({"clean_top1": 82.5, "mce": 101.3, "fgsm@8": 43.5, ...}; None where undefined), the
    numbers `nsbench eval --json` prints.

    model: an nsbench checkpoint path, "timm:NAME" / "torchvision:NAME" (hub weights, or `info.checkpoint` a local
      .safetensors / torch state dict), an EvalModel, or any nn.Module (then `info.classes` and `info.input_size`
      are required, and `info.mean`/`info.std` unless it takes [0, 1] images).
    suite: a shipped suite's name (`nsbench ls`), a YAML path, or a SuiteConfig.
    info: what nsbench must be told about the model (nsbench.ModelInfo: label, checkpoint, classes, input_size,
      mean, std); the model is resolved from it once, here.
    settings: how to score (nsbench.ScoreSettings: overrides, limit, device, cache_dir, normaliser, workers,
      batch_size, precision, overwrite, reference_trainer; default nsbench's -A reference trainer,
      nsbench.training.reference_models.train_reference).

    >>> evaluate("runs/fmnist/iter3.pt", "robustness", "out", settings=ScoreSettings(limit=200))   # doctest: +SKIP
    >>> evaluate(my_module, "quick", "out", info=ModelInfo(classes=10, input_size=32))            # doctest: +SKIP
    """
    import dataclasses

    from .bench.harness import ModelInfo, ScoreSettings, as_eval_model, score
    from .schema import headline_numbers, headline_text

    talk()
    settings = settings or ScoreSettings()
    if settings.reference_trainer is None:
        from .training.reference_models import train_reference

        settings = dataclasses.replace(settings, reference_trainer=train_reference)
    em = as_eval_model(model, info or ModelInfo())
    folder = eval_root(suite, out) / em.label
    rows = score(em, suite, settings, folder)
    rows.attrs["headline"] = headline_numbers(rows)
    log.info("%s: %s", em.label, headline_text(rows.attrs["headline"]))
    log.info("%s: results in %s", em.label, folder)
    return rows


def talk() -> None:
    """Progress for Python callers as the CLI shows it: the `nsbench` logger's lines on stderr at INFO, unless the
    caller configured logging itself (a handler on `nsbench` or on the root logger), which is then left alone."""
    from .utils import setup_logging

    if not logging.getLogger("nsbench").handlers and not logging.getLogger().handlers:
        setup_logging()


def __getattr__(name: str):
    """evaluate's typed options, `nsbench.ModelInfo` and `nsbench.ScoreSettings` (defined with the harness, imported
    when first asked for: `import nsbench` stays light)."""
    if name in ("ModelInfo", "ScoreSettings"):
        from .bench import harness

        return getattr(harness, name)
    raise AttributeError(f"module 'nsbench.api' has no attribute {name!r}")


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

    from . import distributed
    from .config import TrainConfig, load_train_config
    from .resources import resolve
    from .training.driver import resume_config, train as run_driver  # the one way into training
    from .utils import NsbenchError, clean_stale_temps, log_to

    talk()

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
            if not (isinstance(config, (dict, TrainConfig)) or dataclasses.is_dataclass(config)):
                raise NsbenchError(f"config: expected a mapping shaped like a recipe or a TrainConfig, got "
                                   f"{type(config).__name__} {config!r:.60}")
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
    with _run_folder_lock(out, "resume" if resume else "train"), \
            log_to(out / "train.log", enabled=distributed.env_rank() == 0), _tensorboard(cfg, out):
        if distributed.env_rank() == 0:
            for p in clean_stale_temps(out):
                logging.getLogger("nsbench").info("removed %s, left by a killed run", p)
        summary = run_driver(cfg, out, resume=resume)
    return {**summary, "run_dir": str(out)}


def _run_folder_lock(out: Path, verb: str):
    """Rank 0 holds the run folder's lock, so a second `nsbench train` into it is refused in one line; the other
    ranks of a torchrun job run under rank 0's lock."""
    from . import distributed
    from .lock import run_lock

    if distributed.env_rank() != 0:
        return contextlib.nullcontext()
    return run_lock(out, what=f"nsbench train ({verb})")


def _tensorboard(cfg, out: Path):
    """TensorBoard event files under RUN/tensorboard/ when runtime.tensorboard is on (rank 0)."""
    from . import tensorboard

    return tensorboard.session(out, enabled=bool(getattr(cfg.runtime, "tensorboard", False)))
