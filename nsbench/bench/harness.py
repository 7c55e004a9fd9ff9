"""The harness: `score(em, suite, settings, folder)` scores one resolved model on every task of a suite and writes
the results folder. `nsbench.evaluate` (nsbench/api.py) and `nsbench eval` are the ways in; they resolve the model
here, once (`as_eval_model`), and hand over the settings and the exact folder.

A model is described by a `ModelInfo` (what the harness must know of an nn.Module: `classes`, `input_size`, and
`mean`/`std` unless it takes [0, 1] images; a label; local weights for a hub model), the scoring by a
`ScoreSettings` (how to run the suite). A task that cannot run records a `failed` row with its reason and
the rest of the suite goes on.
"""
from __future__ import annotations

import datetime as _dt
import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd
import torch
from torch import nn

from .. import distributed
from .. import schema
from ..utils import NsbenchError, check_name, library_versions
from . import cache
from .context import ClassCountMismatch, EvalContext
from .inputs import check_input_size, check_out_folder, check_side, check_writable
from .eval_model import EvalModel, from_module, load_eval_model, with_input_size
from .normaliser import resolve_normaliser
from .registry import task_kinds
from .suite import PRECISIONS, SuiteConfig, load_suite, unset_tasks

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelInfo:
    """What the harness must be told about a model beyond the model itself (all optional).

    label: the results' name and folder (default: RUN-iterK for a run's checkpoint, the weights' file name for
      `checkpoint`, else the model's name).
    checkpoint: local weights (.safetensors or a torch state dict) for a timm:/torchvision: model.
    classes: class names in output order, or a count (matched to the dataset's classes in its own order, as
      torchvision's ImageFolder sorts folders); required for an nn.Module.
    input_size: the side the model sees (default: the checkpoint's, a timm model's pretrained config, 224 for
      torchvision); required for an nn.Module.
    mean, std: the normalisation an nn.Module expects (default: none, it takes [0, 1] images).
    """
    label: str | None = None
    checkpoint: str | Path | None = None
    classes: Sequence[str] | int | None = None
    input_size: int | None = None
    mean: Sequence[float] | None = None
    std: Sequence[float] | None = None


@dataclass(frozen=True)
class ScoreSettings:
    """How to score a suite (all optional).

    overrides: dotted KEY=VALUE strings applied to the suite, as on the command line (not to a SuiteConfig given
      as the suite itself).
    limit: score at most this many images per set. device: "auto", "cpu", "cuda", ...
    cache_dir: built sets and per-cell results (default: nsbench's cache folder).
    normaliser: auto | alexnet | none | CHECKPOINT, overriding the suite's.
    workers, batch_size: data-loader processes and images per batch (default: the suite's and the machine's).
    precision: "fp32" or "bf16" (autocast), overriding the suite's (default fp32); recorded in meta.json and in
      every bf16 row's note.
    overwrite: replace another model's results already in the output folder (refused otherwise).
    reference_trainer: trains the reference classifiers of a built -A set (the harness never trains; without one
      a built -A set is a failed row).
    """
    overrides: Sequence[str] = ()
    limit: int | None = None
    device: str = "auto"
    cache_dir: str | Path | None = None
    normaliser: str | None = None
    workers: int | None = None
    batch_size: int | None = None
    precision: str | None = None
    overwrite: bool = False
    reference_trainer: Callable | None = None

    def __post_init__(self):
        object.__setattr__(self, "overrides", tuple(self.overrides))
        if self.limit is not None and self.limit <= 0:
            raise NsbenchError(f"limit must be positive, got {self.limit}")
        if self.batch_size is not None and self.batch_size <= 0:
            raise NsbenchError(f"batch size must be positive, got {self.batch_size}")
        if self.precision is not None and self.precision not in PRECISIONS:
            raise NsbenchError(f"precision must be {' or '.join(PRECISIONS)}, got {self.precision!r}")

    def suite_config(self, suite: str | Path | SuiteConfig) -> SuiteConfig:
        """`suite` as scored: a shipped suite's name or a YAML path loaded with `overrides` (a SuiteConfig as
        given), `precision` applied."""
        from ..resources import resolve

        cfg = suite if isinstance(suite, SuiteConfig) else load_suite(resolve("suite", str(suite)), list(self.overrides))
        return replace(cfg, precision=self.precision) if self.precision is not None else cfg


def as_eval_model(model, info: ModelInfo = ModelInfo()) -> EvalModel:
    """The one place a model becomes an EvalModel: an nsbench checkpoint path, "timm:NAME" / "torchvision:NAME",
    an nn.Module (then `info.classes` and `info.input_size` are required), or an EvalModel (relabelled and resized
    when `info` says so). Its label is a name, never a path (utils.check_name)."""
    em = _as_eval_model(model, info)
    check_name(em.label, "label")
    return em


def _as_eval_model(model, info: ModelInfo) -> EvalModel:
    if info.label is not None:
        check_name(info.label, "label")
    check_side(info.input_size)
    if isinstance(model, EvalModel):
        if info.label:
            model.label = info.label
        return with_input_size(model, info.input_size)
    if isinstance(model, nn.Module):
        if info.classes is None or info.input_size is None:
            raise NsbenchError("an nn.Module needs classes= (names or a count) and input_size= (and mean=/std= "
                               "unless it takes [0, 1] images)")
        return from_module(model, classes=info.classes, input_size=info.input_size, mean=info.mean, std=info.std,
                           label=info.label)
    if isinstance(model, (str, Path)):
        return load_eval_model(str(model), info.label, checkpoint=info.checkpoint, classes=info.classes,
                               input_size=info.input_size)
    raise NsbenchError(f"cannot evaluate a {type(model).__name__}: pass a checkpoint path, timm:NAME, "
                       f"torchvision:NAME or an nn.Module")


def score(em: EvalModel, suite: str | Path | SuiteConfig, settings: ScoreSettings, folder: str | Path) -> pd.DataFrame:
    """Score `em` on `suite` (a shipped suite's name, a YAML path or a SuiteConfig), write results.csv / results.parquet / per_image.parquet / meta.json in
    `folder` itself, and return the result rows. A folder holding another model's results is refused unless
    `settings.overwrite`; data that cannot be opened or matched to the model is refused before any work
    (EvalContext.check_data); a model input size nobody chose that is far larger than the data's images is refused
    with the fix named (bench/inputs.py)."""
    from ..utils import resolve_device

    s = settings
    distributed.init_from_env(s.device)
    dev = distributed.local_device(resolve_device(s.device))
    cfg = s.suite_config(suite)
    out = Path(folder)
    if out.exists() and not out.is_dir():
        raise NsbenchError(f"{out}: exists and is not a folder")
    check_out_folder(out, em.sha256, em.label, overwrite=s.overwrite, path=em.path)
    cache_dir = Path(s.cache_dir) if s.cache_dir else cache.default_cache_dir()
    check_writable(cache_dir, "--cache")  # every task writes its cells there: one line now, not a failed row each
    ctx = EvalContext(em, cfg, cache_dir, dev, limit=s.limit,
                      workers=s.workers, batch_size=s.batch_size, reference_trainer=s.reference_trainer)
    ctx.check_data()
    ctx.check_outputs()
    sizes = _check_size(ctx)
    norm = resolve_normaliser(s.normaliser or cfg.normaliser, em, cfg)
    rows, per, sets, timings, t_all = [], [], {}, {}, time.time()
    kinds = task_kinds()
    unset = unset_tasks(cfg)
    for name in cfg.tasks():
        t0 = time.time()
        if name in unset:  # its data is named by an unset variable: a skipped row saying what to type
            log.info("%s: %s skipped: %s", em.label, name, unset[name])
            rows.append(ctx.row(name, "all", "skipped", None, 0, note=unset[name]))
            sets[name] = {"skipped": unset[name]}
            continue
        log.info("%s: %s", em.label, name)
        try:
            with ctx.numerics():  # fp32 means fp32 on GPUs too (no TF32)
                res = kinds[name].run(ctx, getattr(cfg, name), norm)
        except Exception as e:  # noqa: BLE001 - a failed task is a row, as in timm's bulk runner
            reason = (str(e).splitlines() or [""])[0] or type(e).__name__
            if not isinstance(e, NsbenchError):
                reason = f"{type(e).__name__}: {reason}"
            log.error("%s: task %s failed: %s; going on with the rest of the suite", em.label, name, reason,
                      exc_info=not isinstance(e, NsbenchError))
            rows.append(ctx.row(name, "all", "failed", None, 0, note=reason))
        else:
            rows += res.rows
            per += res.per_image
            sets.update(res.sets)
        timings[name] = time.time() - t0
    if rows and all(r["metric"] == schema.SKIPPED for r in rows):  # nothing was scored: say what to set
        notes = "; ".join(dict.fromkeys(f"{r['task']}: {r['note']}" for r in rows))
        raise NsbenchError(f"nothing to score: every task of suite {cfg.name} was skipped ({notes})")
    df = schema.frame(rows)
    if distributed.is_main():
        meta = _meta(ctx, norm, sets, {**timings, "total": time.time() - t_all}, s.limit)
        meta["preprocessing"].update(sizes)
        schema.write_results(out, df, pd.concat(per, ignore_index=True) if per else pd.DataFrame(), meta)
        log.info("%s: results written to %s", em.label, out)
    distributed.barrier()
    return df


def check_data(em: EvalModel, suite: str | Path | SuiteConfig, settings: ScoreSettings) -> None:
    """The check `score` makes before any work (EvalContext.check_data), for a caller about to score several
    models: every model's data is opened and matched before the first one is scored."""
    EvalContext(em, settings.suite_config(suite), cache.default_cache_dir(), torch.device("cpu")).check_data()


def _check_size(ctx: EvalContext) -> dict:
    """The input size's origin and the data's image size (meta.json); refuses an unchosen size far too large."""
    own = ctx.em.meta.get("model", {})
    size_from = "the suite's data.image_size" if ctx.suite.data.image_size else own.get("input_size_from", "the model")
    explicit = bool(ctx.suite.data.image_size) or not any(w in size_from for w in ("pretrained", "torchvision's"))
    seen = {"image_size_from": size_from}
    try:
        source = ctx.source
    except ClassCountMismatch:  # the model's outputs cannot be matched to the data's classes at all
        raise
    except NsbenchError:  # no dataset or an unusable one: the tasks say so, each as a failed row
        return seen
    return {**seen, **check_input_size(source, ctx.size, explicit=explicit, model=ctx.em.label, size_from=size_from)}


def _meta(ctx: EvalContext, norm, sets: dict, timings: dict, limit) -> dict:
    em, cfg = ctx.em, ctx.suite
    model = em.meta.get("model", {})
    try:
        fingerprint = ctx.source.fingerprint() if ctx.source_spec else None
    except NsbenchError:
        fingerprint = None
    return {
        "model": {"label": em.label, "sha256": em.sha256, "path": str(em.path) if em.path else None,
                  "arch": model.get("arch"), "iteration": em.meta.get("iteration"),
                  "parent_sha256": em.meta.get("parent_sha256"), "role": em.meta.get("role"),
                  "n_params": em.meta.get("n_params"), "train_metrics": em.meta.get("metrics"),
                  "train_seed": (em.meta.get("config") or {}).get("seed")},
        "suite": {"name": cfg.name, "config": asdict(cfg)},
        "dataset": {"source": ctx.source_spec, "split": ctx.split, "fingerprint": fingerprint},
        "preprocessing": {"image_size": ctx.size, "inputs": "float [0,1] NCHW, normalised inside the model",
                          "mean": model.get("mean"), "std": model.get("std"),
                          "small_images": "zero-padded to image_size",
                          "natural_images": "resize shorter side to floor(image_size / crop_pct), centre crop",
                          **ctx.resize},
        "normaliser": norm.describe(), "sets": sets, "timings_s": timings, "limit": limit,
        "device": str(ctx.device), "precision": ctx.precision, "batch_size": ctx.bs, "workers": ctx.loader_workers,
        "versions": library_versions(), "seed": cfg.seed,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


__all__ = ["ModelInfo", "ScoreSettings", "as_eval_model", "score", "check_data", "EvalModel"]
