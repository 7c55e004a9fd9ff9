"""natural_adversarial (-A): accuracy on the official ImageNet-A / -R folders through their 200-class masks, or on
DATASET-A, the held-out images that independently trained reference classifiers all misclassify."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ...config import check_range
from ...utils import NsbenchError
from .. import cache
from .. import calibration_rows
from .. import built_a
from ..metrics import accuracy, error
from ..registry import TaskResult, register

log = logging.getLogger(__name__)


@dataclass
class ReferenceModel:
    arch: str = "test_resnet"
    seed: int = 0
    kwargs: dict = field(default_factory=dict)


@dataclass
class NaturalAdversarialTask:
    enabled: bool = True
    root: str | None = None  # official ImageNet-A (or -R) folder; None: build DATASET-A
    mask: str = "imagenet-a"  # imagenet-a | imagenet-r: the 200-class logit subset for official folders
    pool_split: str | None = None  # held-out pool for built sets (default: the evaluation split)
    pool_limit: int | None = None
    references: list[ReferenceModel] = field(default_factory=lambda: [ReferenceModel(seed=s) for s in (0, 1, 2)])
    ref_epochs: int = 2  # epochs per training round of a reference model
    ref_max_rounds: int = 4  # rounds until held-out accuracy stops improving beyond noise (reference_models.STOP_RULE)
    ref_min_gain: float = 0.0  # points a round must gain besides beating its standard error
    ref_train_limit: int | None = 20000  # training images for each reference model (seeded subset)
    ref_val_limit: int = 2000  # held-out training images that decide when a reference stops
    ref_batch_size: int = 128
    ref_lr: float = 0.003
    # exclude | keep: the images on which every reference names one and the same wrong class (likely label noise:
    # ambiguous or mislabelled images); excluded from the scored set by default, counted either way (bench/built_a.py)
    consensus: str = "exclude"


def validate(t: NaturalAdversarialTask) -> None:
    if t.mask not in ("imagenet-a", "imagenet-r"):
        raise NsbenchError("natural_adversarial.mask must be imagenet-a or imagenet-r")
    if t.consensus not in ("exclude", "keep"):
        raise NsbenchError(f"natural_adversarial.consensus must be exclude or keep, got {t.consensus!r}")
    if not t.root and not t.references:
        raise NsbenchError("natural_adversarial.references: building DATASET-A needs at least one reference model")
    for key in ("ref_epochs", "ref_max_rounds", "ref_batch_size", "ref_val_limit"):
        check_range(f"natural_adversarial.{key}", getattr(t, key), lo=1)
    for key in ("pool_limit", "ref_train_limit"):
        check_range(f"natural_adversarial.{key}", getattr(t, key), lo=1, optional=True)
    check_range("natural_adversarial.ref_lr", t.ref_lr, lo=0, lo_open=True)
    check_range("natural_adversarial.ref_min_gain", t.ref_min_gain, lo=0)


def _official(ctx, t: NaturalAdversarialTask) -> tuple[dict, str, dict]:
    src, mask, check = built_a.open_official(t.root, t.mask)
    idx = ctx.pick(len(src))

    # unreadable images are skipped (as -C does); predictions and calibration over the 200-class label set
    z = ctx.cell("natural_adversarial", f"official|{t.root}|{t.mask}|{len(idx)}|indexed|calibration",
                 lambda: calibration_rows.outcomes(ctx, src, idx, mask))
    skipped = len(idx) - len(z["index"])
    if skipped:
        log.warning("%s: %d unreadable image(s) skipped and counted", t.root, skipped)
    return z, t.mask, {"source": f"official {t.mask}: {t.root}", "n": int(len(z["index"])),
                       "skipped_unreadable": int(skipped), **check}


def _built(ctx, t: NaturalAdversarialTask) -> tuple[dict, str, dict]:
    if ctx.reference_trainer is None:
        raise NsbenchError("building DATASET-A needs a reference trainer: pass reference_trainer="
                           "nsbench.training.reference_models.train_reference (nsbench eval and nsbench.evaluate do)")
    train = ctx.open(ctx.cfg_data.get("train_split", "train"))
    pool = ctx.source if not t.pool_split else ctx.open(t.pool_split)
    how = built_a.BuildSettings(epochs=t.ref_epochs, max_rounds=t.ref_max_rounds, min_gain=t.ref_min_gain,
                          train_limit=t.ref_train_limit, val_limit=t.ref_val_limit, batch_size=t.ref_batch_size,
                          lr=t.ref_lr, pool_limit=t.pool_limit, seed=ctx.suite.seed, consensus=t.consensus)
    folder, manifest = ctx.build(lambda: built_a.build_a(train, pool, ctx.size, t.references, how,
                                                   train_reference=ctx.reference_trainer, cache_dir=ctx.cache,
                                                   device=ctx.device))
    images = cache.load_array(folder / "images.npy")
    labels = np.asarray(cache.load_array(folder / "labels.npy"))
    sel = ctx.pick(len(labels))
    def score():
        z = calibration_rows.per_image(ctx.logits(np.asarray(images)[sel]), labels[sel])
        return {"correct": z["correct"], **calibration_rows.columns(z)}

    z = ctx.cell("natural_adversarial", f"{folder.name}|{len(sel)}|calibration", score)
    info = {"folder": folder.name, "n": int(len(sel)), "n_pool": manifest["n_pool"], "rule": manifest["rule"],
            "references": manifest["reference_results"], "ref_epochs": manifest["epochs"],
            "ref_train_limit": manifest["train_limit"], "pool": manifest["pool"],
            "reference_training": manifest.get("reference_training"), "ref_max_rounds": manifest.get("max_rounds"),
            **{k: manifest[k] for k in ("consensus", "n_all_wrong", "round_cap_binding", "round_cap_binding_for",
                                        "what_it_measures", "skipped_unreadable") if k in manifest}}
    return {**z, "index": np.arange(len(z["correct"]))}, "built", info


@register("natural_adversarial", config=NaturalAdversarialTask, order=3, validate=validate)
def run(ctx, t: NaturalAdversarialTask, norm) -> TaskResult:
    try:
        z, condition, info = (_official if t.root else _built)(ctx, t)
    except built_a.EmptySet as e:  # nothing to score is not a failed task: the row says why, the exit status is 0
        log.warning("%s", e)
        return TaskResult([ctx.row("natural_adversarial", "built", "skipped", None, 0, note=str(e))], [],
                          {"natural_adversarial": {"n": 0, "note": str(e)}})
    correct = z["correct"]
    n = len(correct)
    if n == 0:
        raise NsbenchError(f"{t.root or 'DATASET-A'}: no readable images to score")
    rows = [ctx.row("natural_adversarial", condition, "top1_acc", 100 * accuracy(correct), n),
            ctx.row("natural_adversarial", condition, "top1_err", 100 * error(correct), n),
            *calibration_rows.rows(ctx, "natural_adversarial", condition, z)]
    per = [pd.DataFrame({"task": "natural_adversarial", "condition": condition, "severity": 0, "eps_255": 0.0,
                         "image": z["index"], "correct": correct, **calibration_rows.columns(z)})]
    return TaskResult(rows, per, {"natural_adversarial": info})
