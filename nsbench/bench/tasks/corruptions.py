"""corruptions (-C): top-1 error per corruption and severity on the official ImageNet-C tree or on DATASET-C built
for the evaluation split; CE, relative CE, mCE and relative mCE against the normaliser."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ...reference import ALEXNET_CLEAN_ERR, C_BENCHMARK, C_VALIDATION, alexnet_c_errors
from ...config import check_range
from ...utils import NsbenchError, tqdm
from .. import cache
from .. import calibration_rows
from .. import corruption_sets
from .. import metrics
from .. import onthefly
from ..onthefly.params import scale_for
from ..registry import TaskResult, register
from .clean import clean_correct



@dataclass
class CorruptionTask:
    enabled: bool = True
    limit: int | None = 1000  # images per (corruption, severity) cell for built sets
    corruptions: list[str] = field(default_factory=lambda: list(C_BENCHMARK + C_VALIDATION))
    severities: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])
    root: str | None = None  # official ImageNet-C tree; None: build DATASET-C from the evaluation split
    # built sets: the reference generator's parameters; auto = calibrated for the image size (CIFAR-10-C up to 48 px,
    # Tiny-ImageNet-C up to 128 px, ImageNet-C above)
    calibration: str = "auto"
    # built sets: `cached` corrupts every image once with the reference generators (numpy / OpenCV) and keeps the
    # cells on disk; `on_the_fly` corrupts each batch in torch on the scoring device (bench/onthefly) and stores no
    # image; `auto`: on_the_fly on a GPU, cached on a CPU
    generate: str = "auto"


GENERATE = ("auto", "cached", "on_the_fly")


def validate(t: CorruptionTask) -> None:
    check_range("corruptions.limit", t.limit, lo=1, optional=True)
    if not t.corruptions:
        raise NsbenchError("corruptions.corruptions: must not be empty (or set corruptions.enabled=false)")
    for c in t.corruptions:
        if c not in C_BENCHMARK + C_VALIDATION:
            raise NsbenchError(f"corruptions.corruptions: unknown corruption {c!r}; valid: {', '.join(C_BENCHMARK + C_VALIDATION)}")
    if t.calibration not in ("auto", "cifar-10-c", "tiny-imagenet-c", "imagenet-c"):
        raise NsbenchError(f"corruptions.calibration must be auto, cifar-10-c, tiny-imagenet-c or imagenet-c, got {t.calibration!r}")
    if not t.severities or any(s not in (1, 2, 3, 4, 5) for s in t.severities):
        raise NsbenchError("corruptions.severities must be a non-empty list within 1-5")
    if t.generate not in GENERATE:
        raise NsbenchError(f"corruptions.generate must be {', '.join(GENERATE)}, got {t.generate!r}")


def generation(ctx, t) -> str:
    """How a built -C (or -P: perturbations.generate) set's images come about on this run: `cached` or `on_the_fly`
    (auto: on the fly on a GPU, where the torch generators run beside the model, cached on a CPU)."""
    if t.generate != "auto":
        return t.generate
    return "on_the_fly" if ctx.device.type == "cuda" else "cached"


def _official(ctx, t: CorruptionTask) -> tuple[dict, float, int, dict]:
    outcomes, skipped = {}, {}
    cells = [c for c in corruption_sets.scan_imagenet_c(t.root)
             if c.corruption in t.corruptions and c.severity in t.severities]
    for cell in tqdm(cells, desc=f"{ctx.em.label} -C", leave=False, mininterval=2.0):
        src = corruption_sets.open_official_cell(cell, ctx.em.classes)
        idx = ctx.pick(len(src))
        key = f"official|{cell.folder}|{len(idx)}|calibration"
        # unreadable images are skipped: the cell keeps the indices it scored
        z = ctx.cell("corruptions", key, lambda src=src, idx=idx: calibration_rows.outcomes(ctx, src, idx))
        outcomes[f"{cell.corruption}|{cell.severity}"] = z["correct"], z["index"], calibration_rows.columns(z)
        skipped[f"{cell.corruption}|{cell.severity}"] = int(z["n_asked"]) - len(z["index"])
    clean_err = metrics.error(clean_correct(ctx))
    n = max((len(c) for c, *_ in outcomes.values()), default=0)
    info = {"source": f"official:{t.root}", "calibration": "imagenet-c (official files)",
            "skipped_unreadable": {k: v for k, v in skipped.items() if v}}
    return outcomes, clean_err, n, info


def _built(ctx, t: CorruptionTask) -> tuple[dict, float, int, dict]:
    how = generation(ctx, t)
    cached = how == "cached"  # on the fly, only the clean images (and labels, indices) are built and kept
    folder, manifest = ctx.build(lambda: corruption_sets.build_c(
        ctx.source, ctx.size, t.corruptions if cached else [], t.severities if cached else [], ctx.cap(t.limit),
        ctx.suite.seed, ctx.cache, ctx.workers, t.calibration))
    labels = np.asarray(cache.load_array(folder / "labels.npy"))
    calibration = manifest.get("calibration", "imagenet-c")

    def scored(logits):
        z = calibration_rows.per_image(logits, labels)
        return {"correct": z["correct"], **calibration_rows.columns(z)}

    def run(file):
        return lambda: scored(ctx.logits(cache.load_array(folder / file)))

    def generated(c, s):
        return lambda: scored(_on_the_fly_logits(ctx, folder, c, s, calibration))

    clean = ctx.cell("corruptions", f"{folder.name}|clean.npy|calibration", run("clean.npy"))
    clean_err = metrics.error(clean["correct"])
    outcomes = {}
    for c in tqdm(t.corruptions, desc=f"{ctx.em.label} -C", leave=False, mininterval=2.0):
        for s in t.severities:
            if cached:
                z = ctx.cell("corruptions", f"{folder.name}|{c}-{s}.npy|calibration", run(f"{c}-{s}.npy"))
            else:
                key = f"{folder.name}|{c}-{s}|on_the_fly-r{onthefly.REVISION}|calibration"
                z = ctx.cell("corruptions", key, generated(c, s))
            outcomes[f"{c}|{s}"] = z["correct"], np.arange(len(z["correct"])), calibration_rows.columns(z)
    info = {"folder": folder.name, **{k: manifest[k] for k in ("n", "fingerprint", "seed")},
            "source": folder.name, "calibration": calibration, "generate": how,
            "resolution": corruption_sets.resolution(ctx.size, calibration)}
    if cached:
        if "generator" in manifest:  # ImageNet-C scaled to the image size (onthefly/params.py)
            info["generator"] = manifest["generator"] + " (torch, on the CPU, cached)"
        else:
            info["imagecorruptions"] = manifest["imagecorruptions"]
        info["saved_as"] = manifest.get("saved_as", "lossless (uint8 arrays; the official ImageNet-C files are JPEG "
                                                    "quality 85)")
    else:
        info["generator"] = f"nsbench.bench.onthefly revision {onthefly.REVISION} (torch, on {ctx.device.type})"
    return outcomes, clean_err, len(labels), info


def _on_the_fly_logits(ctx, folder, corruption: str, severity: int, calibration: str) -> np.ndarray:
    """Logits of a built set's clean images corrupted batch by batch on the scoring device, each image with the seed
    the cached path gives it (corruption_sets.build_c: cache.seed_for(seed, corruption, severity, source index))."""
    import torch

    clean = cache.load_array(folder / "clean.npy")
    index = np.asarray(cache.load_array(folder / "indices.npy"))
    seed = int(cache.read_manifest(folder)["seed"])
    scale = scale_for(clean.shape[1], calibration)

    def local(part: np.ndarray) -> dict:
        out = [np.zeros((0, len(ctx.em.classes)), np.float32)]
        for b in range(0, len(part), ctx.bs):
            rows = part[b : b + ctx.bs]
            x = torch.from_numpy(np.array(clean[rows])).to(ctx.device)
            seeds = [cache.seed_for(seed, corruption, severity, int(index[k])) for k in rows]
            x = onthefly.corrupt_batch(x, corruption, severity, seeds, calibration, scale)
            out.append(ctx.forward(x.permute(0, 3, 1, 2).float().div_(255)).numpy())
        return {"logits": np.concatenate(out)}

    return ctx.sharded(np.arange(len(clean)), local)["logits"]


def corruption_errors(ctx, t: CorruptionTask) -> tuple[dict[str, list[float]], float, dict[str, tuple], int, dict]:
    """Top-1 error per corruption over severities, clean error, per-cell (correct, image index), n, set info."""
    outcomes, clean_err, n, info = (_official if t.root else _built)(ctx, t)
    errors = {c: [metrics.error(outcomes[f"{c}|{s}"][0]) for s in t.severities]
              for c in t.corruptions if all(f"{c}|{s}" in outcomes for s in t.severities)}
    return errors, clean_err, outcomes, n, info


def _reference(ctx, t: CorruptionTask, choice, norm):
    if choice.kind == "alexnet":
        table = alexnet_c_errors()  # severities 1..5; pick the ones scored
        return {c: [v[s - 1] for s in t.severities] for c, v in table.items()}, ALEXNET_CLEAN_ERR
    if choice.kind == "none":
        return None

    def compute(ref):
        errors, clean_err, *_ = corruption_errors(ref, t)
        return {c: list(e) for c, e in errors.items()}, clean_err

    return norm.reference(ctx, "corruptions", compute)


def _defined(value: float, what: str) -> tuple[float | None, str | None]:
    """metrics.ce / relative_ce give NaN for a zero denominator: that ratio is undefined, and says why."""
    return (None, f"undefined: {what} (zero denominator)") if np.isnan(value) else (value, None)


def _normalised_rows(ctx, t, errors: dict, clean_err: float, ref, name: str, n: int) -> list[dict]:
    """CE and relative CE per corruption; mCE and relative mCE only over the complete benchmark set with every
    ratio defined, else the `_partial` metrics with their members named."""
    rows, ces, rces = [], {}, {}
    for c, errs in errors.items():
        if c not in ref[0]:
            continue
        ref_errs = ref[0][c]
        ce, note = _defined(metrics.ce(errs, ref_errs), f"the normaliser makes no error on {c}")
        rows.append(ctx.row("corruptions", c, "ce", None if ce is None else 100 * ce, n, normaliser=name, note=note))
        rce, rnote = _defined(metrics.relative_ce(errs, clean_err, ref_errs, ref[1]),
                              f"the normaliser's errors on {c} sum to its clean error")
        rows.append(ctx.row("corruptions", c, "relative_ce", None if rce is None else 100 * rce, n, normaliser=name,
                            note=rnote))
        if c in C_BENCHMARK:
            ces[c], rces[c] = ce, rce
    sev = sorted(t.severities)
    extra = [] if sev == [1, 2, 3, 4, 5] else [f"severities {','.join(map(str, sev))} of 1-5"]
    for metric, vals in (("mce", ces), ("relative_mce", rces)):
        rows.append(ctx.mean_row("corruptions", metric, vals, C_BENCHMARK, "benchmark corruptions", n, normaliser=name,
                                 extra=extra))
    return rows


@register("corruptions", config=CorruptionTask, order=1, validate=validate)
def run(ctx, t: CorruptionTask, norm) -> TaskResult:
    errors, clean_err, outcomes, n, info = corruption_errors(ctx, t)
    rows, per = [], []
    for key, (correct, index, cal) in outcomes.items():
        c, s = key.split("|")
        rows.append(ctx.row("corruptions", c, "top1_err", 100 * metrics.error(correct), len(correct), severity=int(s)))
        rows += calibration_rows.rows(ctx, "corruptions", c, {**cal, "correct": correct}, severity=int(s))
        per.append(pd.DataFrame({"task": "corruptions", "condition": c, "severity": int(s), "eps_255": 0.0,
                                 "image": index, "correct": correct, **cal}))
    rows.append(ctx.row("corruptions", "clean", "top1_err", 100 * clean_err, n))
    for c in errors:
        rows.append(ctx.row("corruptions", c, "mean_err", 100 * metrics.mean_error(errors, [c]), n))
    bench = [c for c in C_BENCHMARK if c in errors]
    if bench:
        partial = len(bench) < len(C_BENCHMARK) or sorted(t.severities) != [1, 2, 3, 4, 5]
        note = f"partial: {len(bench)} of {len(C_BENCHMARK)} benchmark corruptions" if partial else None
        rows.append(ctx.row("corruptions", "all", "mean_err", 100 * metrics.mean_error(errors, bench), n,
                            note=note))
    choice = norm.choose("corruptions", alexnet_holds=bool(t.root), setting="ImageNet-C" if t.root else "a built -C set")
    ref = _reference(ctx, t, choice, norm)
    if ref is not None and bench:
        rows += _normalised_rows(ctx, t, errors, clean_err, ref, choice.name, n)
    return TaskResult(rows, per, {"corruptions": {**info, "normaliser": choice.why}})
