"""corruptions (-C): top-1 error per corruption and severity on the official ImageNet-C tree or on DATASET-C built
for the evaluation split; CE, relative CE, mCE and relative mCE against the normaliser."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ...reference import ALEXNET_CLEAN_ERR, C_BENCHMARK, C_VALIDATION, alexnet_c_errors
from ...utils import NsbenchError
from .. import cache as K
from .. import corruptions as C
from .. import metrics as M
from ..registry import TaskResult, register
from .clean import clean_correct


@dataclass
class CorruptionTask:
    enabled: bool = True
    limit: int | None = 1000  # images per (corruption, severity) cell for built sets
    corruptions: list[str] = field(default_factory=lambda: list(C_BENCHMARK + C_VALIDATION))
    severities: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])
    root: str | None = None  # official ImageNet-C tree; None: build DATASET-C from the evaluation split


def validate(t: CorruptionTask) -> None:
    for c in t.corruptions:
        if c not in C_BENCHMARK + C_VALIDATION:
            raise NsbenchError(f"unknown corruption {c!r}; valid: {', '.join(C_BENCHMARK + C_VALIDATION)}")
    if not t.severities or any(s not in (1, 2, 3, 4, 5) for s in t.severities):
        raise NsbenchError("corruptions.severities must be a non-empty list within 1-5")


def _official(ctx, t: CorruptionTask) -> tuple[dict, float, int, dict]:
    outcomes = {}
    cells = [c for c in C.scan_imagenet_c(t.root) if c.corruption in t.corruptions and c.severity in t.severities]
    for cell in tqdm(cells, desc=f"{ctx.em.label} -C", leave=False, mininterval=2.0):
        src = C.open_official_cell(cell, ctx.em.classes)
        idx = C.pick_indices(len(src), ctx.cap(None), ctx.suite.seed)

        def compute(src=src, idx=idx):
            def local(part):
                preds = [ctx.forward(x).numpy().argmax(1) for x, *_ in ctx.batches(src, part)]
                return {"pred": np.concatenate(preds) if preds else np.zeros(0, np.int64)}

            return {"correct": ctx.sharded(idx, local)["pred"] == src.labels[idx], "index": idx}

        key = f"official|{cell.folder}|{len(idx)}"
        outcomes[f"{cell.corruption}|{cell.severity}"] = ctx.cell("corruptions", key, compute)["correct"]
    clean_err = 1 - clean_correct(ctx).mean()
    n = len(next(iter(outcomes.values()))) if outcomes else 0
    return outcomes, float(clean_err), n, {"source": f"official:{t.root}"}


def _built(ctx, t: CorruptionTask) -> tuple[dict, float, int, dict]:
    folder, manifest = ctx.build(lambda: C.build_c(ctx.source, ctx.size, t.corruptions, t.severities,
                                                   ctx.cap(t.limit), ctx.suite.seed, ctx.cache, ctx.workers))
    labels = np.asarray(K.load_array(folder / "labels.npy"))

    def run(file):
        return lambda: {"correct": ctx.logits(K.load_array(folder / file)).argmax(1) == labels}

    clean_err = 1 - ctx.cell("corruptions", f"{folder.name}|clean.npy", run("clean.npy"))["correct"].mean()
    outcomes = {}
    for c in tqdm(t.corruptions, desc=f"{ctx.em.label} -C", leave=False, mininterval=2.0):
        for s in t.severities:
            outcomes[f"{c}|{s}"] = ctx.cell("corruptions", f"{folder.name}|{c}-{s}.npy", run(f"{c}-{s}.npy"))["correct"]
    info = {"folder": folder.name, **{k: manifest[k] for k in ("n", "fingerprint", "seed", "imagecorruptions")},
            "source": folder.name}
    return outcomes, float(clean_err), len(labels), info


def corruption_errors(ctx, t: CorruptionTask) -> tuple[dict[str, list[float]], float, dict[str, np.ndarray], int, dict]:
    """Top-1 error per corruption over severities, clean error on the same images, per-image outcomes, n, set info."""
    outcomes, clean_err, n, info = (_official if t.root else _built)(ctx, t)
    errors = {c: [float(1 - outcomes[f"{c}|{s}"].mean()) for s in t.severities]
              for c in t.corruptions if all(f"{c}|{s}" in outcomes for s in t.severities)}
    return errors, clean_err, outcomes, n, info


def _reference(ctx, t: CorruptionTask, norm):
    if norm.kind == "alexnet":
        return alexnet_c_errors(), ALEXNET_CLEAN_ERR

    def compute(ref):
        errors, clean_err, *_ = corruption_errors(ref, t)
        return {c: list(e) for c, e in errors.items()}, clean_err

    return norm.reference(ctx, "corruptions", compute)


@register("corruptions", config=CorruptionTask, order=1, validate=validate)
def run(ctx, t: CorruptionTask, norm) -> TaskResult:
    errors, clean_err, outcomes, n, info = corruption_errors(ctx, t)
    rows, per = [], []
    for key, correct in outcomes.items():
        c, s = key.split("|")
        rows.append(ctx.row("corruptions", c, "top1_err", 100 * (1 - correct.mean()), len(correct), severity=int(s)))
        per.append(pd.DataFrame({"task": "corruptions", "condition": c, "severity": int(s), "eps_255": 0.0,
                                 "image": np.arange(len(correct)), "correct": correct}))
    rows.append(ctx.row("corruptions", "clean", "top1_err", 100 * clean_err, n))
    ref = _reference(ctx, t, norm)
    bench = [c for c in C_BENCHMARK if c in errors]
    for c, errs in errors.items():
        rows.append(ctx.row("corruptions", c, "mean_err", 100 * np.mean(errs), n))
        if ref is not None and c in ref[0]:
            ref_errs, ref_clean = ref[0][c], ref[1]
            rows.append(ctx.row("corruptions", c, "ce", 100 * M.ce(errs, ref_errs), n, normaliser=norm.name))
            rows.append(ctx.row("corruptions", c, "relative_ce", 100 * M.relative_ce(errs, clean_err, ref_errs, ref_clean),
                                n, normaliser=norm.name))
    if bench:
        rows.append(ctx.row("corruptions", "all", "mean_err", 100 * np.mean([np.mean(errors[c]) for c in bench]), n))
        if ref is not None:
            rows.append(ctx.row("corruptions", "all", "mce", M.mce(errors, ref[0], bench), n, normaliser=norm.name))
            rows.append(ctx.row("corruptions", "all", "relative_mce",
                                M.relative_mce(errors, clean_err, ref[0], ref[1], bench), n, normaliser=norm.name))
    return TaskResult(rows, per, {"corruptions": info})
