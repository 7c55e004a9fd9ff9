"""clean: top-1 / top-5 accuracy on the evaluation split, overall and per class, and its calibration before and after
temperature scaling (condition `temperature_scaled`: ECE, NLL and Brier of softmax(z / T), and T itself)."""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ...calibration import T_RANGE, cross_fit_folds, fit_temperature
from ...config import check_range
from ...schema import TEMPERATURE, TEMPERATURE_SCALED
from ...utils import NsbenchError
from .. import calibration_rows
from ..metrics import accuracy, error
from ..registry import TaskResult, register

log = logging.getLogger(__name__)


CROSS_FIT, NO_TEMPERATURE = "cross_fit", "none"
CROSS_FIT_FOLDS = 2


@dataclass
class CleanTask:
    enabled: bool = True
    limit: int | None = None  # images of the evaluation split (None: all)
    # where the temperature of the rows after temperature scaling is fitted: `cross_fit` (the scored images in two
    # seeded halves, each scaled by the T fitted on the other half), a held-out SPLIT of the dataset that the model
    # never trained on (e.g. validation), or `none`
    temperature: str = CROSS_FIT
    temperature_limit: int | None = None  # images of that split the temperature is fitted on (None: all)


def validate(t: CleanTask) -> None:
    check_range("clean.limit", t.limit, lo=1, optional=True)
    check_range("clean.temperature_limit", t.temperature_limit, lo=1, optional=True)
    if not isinstance(t.temperature, str) or not t.temperature.strip():
        raise NsbenchError(f"clean.temperature must be {CROSS_FIT}, {NO_TEMPERATURE} or a held-out split's name, "
                           f"got {t.temperature!r}")


def clean_cell(ctx) -> dict[str, np.ndarray]:
    """Per-image predictions on the clean split: index, pred, label, correct5 and the calibration columns
    (confidence, nll, brier), and after temperature scaling (`temperature` per image, the columns with `_ts`); cached
    per model."""
    src = ctx.source
    cfg = ctx.suite.clean
    idx = ctx.pick(len(src), cfg.limit)
    held_out = _held_out_split(ctx, cfg)
    n_classes = len(ctx.em.classes)

    def local(part):
        preds, c5, ids, labels = [np.zeros(0, np.int64)], [np.zeros(0, bool)], [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
        logits = [np.zeros((0, n_classes), np.float32)]
        cal = {k: [np.zeros(0)] for k in calibration_rows.PER_IMAGE}
        for x, y, i, _ in ctx.batches(src, part):
            if len(y) == 0:
                continue
            lg = ctx.forward(x)
            top = lg.topk(min(5, lg.shape[1]), 1).indices
            preds.append(top[:, 0].numpy())
            c5.append((top == y[:, None]).any(1).numpy())
            ids.append(i.numpy())
            labels.append(y.numpy())
            logits.append(lg.numpy())
            for k, v in calibration_rows.columns(calibration_rows.per_image(lg.numpy(), y.numpy())).items():
                cal[k].append(v)
        return {"index": np.concatenate(ids), "pred": np.concatenate(preds), "label": np.concatenate(labels),
                "correct5": np.concatenate(c5), "logits": np.concatenate(logits),
                **{k: np.concatenate(v) for k, v in cal.items()}}

    def compute():
        z = ctx.sharded(idx, local)
        return {**z, **_scaled(ctx, cfg, z.pop("logits"), z["label"], held_out)}

    ts = cfg.temperature if held_out is None else f"{held_out.name}|{held_out.fingerprint()}|{cfg.temperature_limit}"
    return ctx.cell("clean", f"{src.name}|{src.fingerprint()}|{ctx.size}|{idx.tolist()}|calibration|ts={ts}", compute)


def _held_out_split(ctx, cfg: CleanTask):
    """The source the temperature is fitted on, when clean.temperature names a split; refused (before any scoring)
    when it is the evaluation split or the model's training split, whose images are not held out."""
    if cfg.temperature in (CROSS_FIT, NO_TEMPERATURE):
        return None
    own = {ctx.split: "the evaluation split", ctx.cfg_data.get("train_split"): "the split the model trained on"}
    if cfg.temperature in own:
        raise NsbenchError(f"clean.temperature={cfg.temperature} is {own[cfg.temperature]}: the temperature must be "
                           f"fitted on held-out images (another split, or clean.temperature={CROSS_FIT})")
    try:
        src = ctx.open(cfg.temperature)
    except NsbenchError as e:
        raise NsbenchError(f"clean.temperature={cfg.temperature}: {e}") from None
    if len(src) == 0:
        raise NsbenchError(f"clean.temperature={cfg.temperature}: {src.name} holds no images")
    return src


def _scaled(ctx, cfg: CleanTask, logits: np.ndarray, labels: np.ndarray, held_out) -> dict[str, np.ndarray]:
    """The per-image temperature and the calibration columns of softmax(logits / T) (`confidence_ts`, `nll_ts`,
    `brier_ts`); nothing with clean.temperature=none or fewer than two images to cross-fit on."""
    n = len(labels)
    if cfg.temperature == NO_TEMPERATURE or n == 0 or (held_out is None and n < CROSS_FIT_FOLDS):
        return {}
    if held_out is None:
        fold = cross_fit_folds(n, ctx.suite.seed, CROSS_FIT_FOLDS)
        fitted = [fit_temperature(logits[fold != k], labels[fold != k]) for k in range(CROSS_FIT_FOLDS)]
        fit_n = np.asarray([int((fold != k).sum()) for k in range(CROSS_FIT_FOLDS)])  # fold k's T: the other images
    else:
        hx = ctx.pick(len(held_out), cfg.temperature_limit)

        def local(part):
            out = {"logits": [np.zeros((0, logits.shape[1]), np.float32)], "label": [np.zeros(0, np.int64)]}
            for x, y, _, _ in ctx.batches(held_out, part):
                if len(y):
                    out["logits"].append(ctx.forward(x).numpy())
                    out["label"].append(y.numpy())
            return {k: np.concatenate(v) for k, v in out.items()}

        h = ctx.sharded(hx, local)
        if len(h["label"]) == 0:
            raise NsbenchError(f"clean.temperature={cfg.temperature}: none of {held_out.name}'s images can be read")
        fold = np.zeros(n, np.int64)
        fitted, fit_n = [fit_temperature(h["logits"], h["label"])], np.asarray([len(h["label"])])
    t = np.asarray(fitted)[fold]
    z = calibration_rows.per_image(np.asarray(logits, np.float64) / t[:, None], labels)
    return {"temperature": t, "temperature_fitted": np.asarray(fitted), "temperature_fit_n": fit_n,
            **{f"{k}_ts": v for k, v in calibration_rows.columns(z).items()}}


def _scaled_rows(ctx, cfg: CleanTask, z: dict, correct: np.ndarray) -> tuple[list[dict], list[pd.DataFrame]]:
    """The rows after temperature scaling (ece / nll / brier and `temperature`, condition temperature_scaled), their
    note saying where T was fitted, and their per-image frame."""
    if "temperature" not in z:
        return [], []
    fitted, fit_n = np.asarray(z["temperature_fitted"], np.float64), np.asarray(z["temperature_fit_n"], np.int64)
    value = float(np.mean(fitted))
    if len(fitted) > 1:
        how = (f"T fitted to minimise NLL by {len(fitted)}-fold cross-fitting on the scored images (each half "
               f"scaled by the T fitted on the other half, {' and '.join(str(int(x)) for x in fit_n)} images): "
               f"T = {', '.join(f'{v:.3f}' for v in fitted)}; the row's value is their mean")
    else:
        how = f"T = {value:.3f} fitted to minimise NLL on {int(fit_n[0])} images of split {cfg.temperature!r}"
    bounds = [b for b in T_RANGE if np.isclose(fitted, b).any()]
    if bounds:
        how += f"; at the search bound {bounds[0]:g}"
    n = len(correct)
    scaled = {"confidence": z["confidence_ts"], "nll": z["nll_ts"], "brier": z["brier_ts"], "correct": correct}
    rows = [ctx.row("clean", TEMPERATURE_SCALED, TEMPERATURE, value, n, note=how)]
    rows += [{**r, "note": "; ".join(x for x in (r.get("note"), how) if x)}
             for r in calibration_rows.rows(ctx, "clean", TEMPERATURE_SCALED, scaled)]
    per = pd.DataFrame({"task": "clean", "condition": TEMPERATURE_SCALED, "severity": 0, "eps_255": 0.0,
                        "image": z["index"], "correct": correct, **calibration_rows.columns(scaled)})
    return rows, [per]


def clean_correct(ctx) -> np.ndarray:
    z = clean_cell(ctx)
    return z["pred"] == z["label"]


@register("clean", config=CleanTask, order=0, validate=validate)
def run(ctx, cfg: CleanTask, norm) -> TaskResult:
    z = clean_cell(ctx)
    correct = z["pred"] == z["label"]
    n = len(correct)
    rows = [ctx.row("clean", "clean", "top1_acc", 100 * accuracy(correct), n),
            ctx.row("clean", "clean", "top5_acc", 100 * accuracy(z["correct5"]), n),
            ctx.row("clean", "clean", "top1_err", 100 * error(correct), n),
            ctx.row("clean", "clean", "top5_err", 100 * error(z["correct5"]), n)]
    for c, name in enumerate(ctx.em.classes):
        m = z["label"] == c
        if m.any():
            rows.append(ctx.row("clean", f"class:{name}", "class_acc", 100 * correct[m].mean(), m.sum()))
    rows += calibration_rows.rows(ctx, "clean", "clean", {**z, "correct": correct})
    per = pd.DataFrame({"task": "clean", "condition": "clean", "severity": 0, "eps_255": 0.0,
                        "image": z["index"], "correct": correct, **calibration_rows.columns(z)})
    scaled_rows, scaled_per = _scaled_rows(ctx, cfg, z, correct)
    rows += scaled_rows
    asked = len(ctx.pick(len(ctx.source), cfg.limit))
    if asked > n:  # unreadable images are skipped by the loader: counted, as every other task counts them
        log.warning("%s: %d unreadable image(s) of the evaluation split skipped and counted", ctx.source.name, asked - n)
    meta = {"n": int(n), "skipped_unreadable": int(asked - n)}
    if "temperature" in z:
        meta["temperature"] = {"fitted_on": cfg.temperature, "t": [float(x) for x in z["temperature_fitted"]],
                               "images": [int(x) for x in z["temperature_fit_n"]]}
    return TaskResult(rows, [per, *scaled_per], {"clean": meta})
