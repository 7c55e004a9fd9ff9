"""`evaluate(model, suite, out)`: score one model on every task of a suite and write a results folder.

The model is an nsbench checkpoint path, `timm:NAME` / `torchvision:NAME`, an EvalModel, or any nn.Module (then
say what the harness must know: `classes`, `input_size`, and `mean`/`std` unless it takes [0, 1] images). A task
that cannot run records a `failed` row with its reason and the rest of the suite goes on.
"""
from __future__ import annotations

import datetime as _dt
import logging
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
from torch import nn

from .. import distributed as D
from .. import schema
from ..utils import NsbenchError, library_versions
from . import cache as K
from .context import ClassCountMismatch, EvalContext
from .inputs import check_input_size, check_out_folder
from .models import EvalModel, from_module, load_eval_model, with_input_size
from .normaliser import resolve_normaliser
from .registry import task_kinds
from .suite import PRECISIONS, SuiteConfig, load_suite

log = logging.getLogger(__name__)


def as_eval_model(model, *, label: str | None = None, checkpoint=None, classes=None, input_size: int | None = None,
                  mean=None, std=None) -> EvalModel:
    if isinstance(model, EvalModel):
        if label:
            model.label = label
        return with_input_size(model, input_size)
    if isinstance(model, nn.Module):
        if classes is None or input_size is None:
            raise NsbenchError("an nn.Module needs classes= (names or a count) and input_size= (and mean=/std= "
                               "unless it takes [0, 1] images)")
        return from_module(model, classes=classes, input_size=input_size, mean=mean, std=std, label=label)
    if isinstance(model, (str, Path)):
        return load_eval_model(str(model), label, checkpoint=checkpoint, classes=classes, input_size=input_size)
    raise NsbenchError(f"cannot evaluate a {type(model).__name__}: pass a checkpoint path, timm:NAME, "
                       f"torchvision:NAME or an nn.Module")


def evaluate(model: str | Path | EvalModel | nn.Module, suite: str | Path | SuiteConfig = "robustness",
             out: str | Path | None = None, *, overrides: list[str] = (), label: str | None = None,
             checkpoint: str | Path | None = None, classes: list[str] | int | None = None,
             input_size: int | None = None, mean=None, std=None, limit: int | None = None, device: str = "auto",
             cache_dir: str | Path | None = None, normaliser: str | None = None, workers: int | None = None,
             batch_size: int | None = None, reference_trainer: Callable | None = None,
             precision: str | None = None, overwrite: bool = False) -> pd.DataFrame:
    """Score `model` on `suite`, write results.csv / results.parquet / per_image.parquet / meta.json in the folder
    `out` itself (default reports/eval-LABEL-SUITE), and return the result rows. `precision` "fp32" / "bf16"
    overrides the suite's (default fp32). A folder holding another model's results is refused unless `overwrite`;
    data that cannot be opened or matched to the model is refused before any work (EvalContext.check_data); a model
    input size nobody chose that is far larger than the data's images is refused with the fix named
    (bench/inputs.py)."""
    from ..resources import resolve
    from ..utils import resolve_device

    if limit is not None and limit <= 0:
        raise NsbenchError(f"limit must be positive, got {limit}")
    if batch_size is not None and batch_size <= 0:
        raise NsbenchError(f"batch size must be positive, got {batch_size}")
    D.init_from_env(device)
    dev = D.local_device(resolve_device(device))
    cfg = suite if isinstance(suite, SuiteConfig) else load_suite(resolve("suite", str(suite)), list(overrides))
    if precision is not None:
        if precision not in PRECISIONS:
            raise NsbenchError(f"precision must be {' or '.join(PRECISIONS)}, got {precision!r}")
        cfg = replace(cfg, precision=precision)
    em = as_eval_model(model, label=label, checkpoint=checkpoint, classes=classes, input_size=input_size, mean=mean, std=std)
    out = Path(out or f"reports/eval-{em.label}-{cfg.name}")
    if out.exists() and not out.is_dir():
        raise NsbenchError(f"{out}: exists and is not a folder")
    check_out_folder(out, em.sha256, em.label, overwrite=overwrite)
    ctx = EvalContext(em, cfg, Path(cache_dir) if cache_dir else K.default_cache_dir(), dev, limit=limit,
                      workers=workers, batch_size=batch_size, reference_trainer=reference_trainer)
    ctx.check_data()
    sizes = _check_size(ctx)
    norm = resolve_normaliser(normaliser or cfg.normaliser, em, cfg)
    rows, per, sets, timings, t_all = [], [], {}, {}, time.time()
    kinds = task_kinds()
    for name in cfg.tasks():
        t0 = time.time()
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
    df = schema.frame(rows)
    if D.is_main():
        meta = _meta(ctx, norm, sets, {**timings, "total": time.time() - t_all}, limit)
        meta["preprocessing"].update(sizes)
        schema.write_results(out, df, pd.concat(per, ignore_index=True) if per else pd.DataFrame(), meta)
        log.info("%s: results written to %s", em.label, out)
    D.barrier()
    return df


def check_data(model: EvalModel, suite: str | Path | SuiteConfig = "robustness", *, overrides: list[str] = ()) -> None:
    """The check `evaluate` makes before any work (EvalContext.check_data), for a caller about to score several
    models: every model's data is opened and matched before the first one is scored."""
    from ..resources import resolve

    cfg = suite if isinstance(suite, SuiteConfig) else load_suite(resolve("suite", str(suite)), list(overrides))
    EvalContext(model, cfg, K.default_cache_dir(), torch.device("cpu")).check_data()


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


__all__ = ["evaluate", "as_eval_model", "EvalModel"]
