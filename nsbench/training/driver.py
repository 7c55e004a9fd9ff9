"""The Noisy Student iteration driver: teacher -> pseudo-labels -> noised student -> next teacher.

Run folder layout (everything written atomically; see README "Run folder"):
    config.yaml        the resolved configuration
    split.json         labeled / unlabeled split (seeded) and counts
    train.log          the log
    iter0.pt ...       one checkpoint per iteration (iteration 0 is the supervised teacher)
    iter{k}/state.pt   training state while iteration k trains (removed once iter{k}.pt exists)
    iter{k}/pseudo/    pseudo-label store of iteration k (labels-*/stats-*/selection-* per shard, stats.json)
    history.csv        one row per epoch of every iteration
    summary.json       one entry per finished iteration
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
import yaml

from .. import distributed as D
from ..checkpoint import load_checkpoint, save_checkpoint
from ..config import ModelConfig, TrainConfig, check_choices, load_train_config
from ..data import labeled_split, open_source, subsample
from ..data.loaders import auto_workers
from ..data.loaders import ImageDataset
from ..data.sources import Source
from ..data.transforms import SMALL_IMAGE_MAX, TrainAugment
from ..models import ModelSpec, build_model, count_params, default_mean_std, inert_stochastic_depth
from ..utils import NsbenchError, atomic_path, read_json, resolve_device, seed_everything, write_json, write_text
from . import budget as Bud
from . import pseudo as P
from .fit import ValSet, train_stage

log = logging.getLogger(__name__)


@dataclass
class RunData:
    train: Source
    val: Source
    unlabeled: Source
    labeled_idx: np.ndarray
    unlabeled_idx: np.ndarray
    val_idx: np.ndarray
    classes: list[str]


def model_spec(m: ModelConfig, num_classes: int, size: int) -> ModelSpec:
    mean, std = default_mean_std(m.arch)
    return ModelSpec(arch=m.arch, num_classes=num_classes, input_size=size, mean=mean, std=std,
                     drop_rate=m.drop_rate, drop_path_rate=m.drop_path_rate, kwargs=dict(m.kwargs))


def check_ladder(cfg: TrainConfig, num_classes: int) -> list[tuple[ModelSpec, int]]:
    """Specs and parameter counts of teacher and students; refuse a student smaller than its teacher."""
    size = cfg.data.image_size
    ladder = [model_spec(cfg.teacher, num_classes, size)] + [
        model_spec(cfg.student_for(k), num_classes, size) for k in range(1, cfg.ns.iterations + 1)]
    out = [(s, count_params(build_model(s))) for s in ladder]
    for k in range(1, len(out)):
        (t, nt), (s, ns) = out[k - 1], out[k]
        if ns < nt and not cfg.ns.allow_smaller_student:
            raise NsbenchError(
                f"iteration {k}: student {s.arch} ({ns:,} parameters) is smaller than its teacher {t.arch} "
                f"({nt:,}); Noisy Student needs an equal-or-larger student (set ns.allow_smaller_student=true "
                f"to allow it)")
    return out


def load_data(cfg: TrainConfig) -> RunData:
    d = cfg.data
    train = open_source(d.source, d.train_split, d.image_column, d.label_column)
    val = open_source(d.source, d.val_split, d.image_column, d.label_column, classes=train.classes)
    labeled_idx, rest = labeled_split(train.labels, d.labels_per_class, cfg.seed, train.name)
    if d.unlabeled:
        unl = open_source(d.unlabeled, "train", d.image_column, d.label_column)
        if unl.classes != train.classes:  # labels of another taxonomy are meaningless here: hide them
            unl.labels = np.full(len(unl), -1, dtype=np.int64)
        unl_idx = np.arange(len(unl))
    else:
        unl, unl_idx = train, rest
    unl_idx = subsample(unl_idx, d.unlabeled_limit, cfg.seed + 1)
    val_idx = subsample(np.arange(len(val)), d.val_limit, cfg.seed + 2)
    if len(unl_idx) == 0:
        raise NsbenchError(f"{d.source}: no unlabeled images (labels_per_class={d.labels_per_class} labels all of "
                           f"them); lower labels_per_class or set data.unlabeled")
    return RunData(train, val, unl, labeled_idx, unl_idx, val_idx, train.classes)


def _augment(cfg: TrainConfig) -> TrainAugment:
    n = cfg.noise
    return TrainAugment(cfg.data.image_size, n.randaugment, n.ra_layers, n.ra_magnitude, n.ra_magnitude_std,
                        n.flip, n.random_crop_pad, ops=n.ra_ops, translate_const=n.ra_translate_const,
                        natural_crop=n.natural_crop == "inception")


def decode_mode(cfg: TrainConfig, device: torch.device, stage: Literal["train", "label"] = "train") -> str:
    """data.decode resolved for training (stage "train") or pseudo-labeling ("label"): auto decodes JPEGs on the GPU
    when running there on natural images (targets larger than SMALL_IMAGE_MAX); training also needs random-resized
    crops (its centre crops stay with the workers). Small images gain nothing from it."""
    if stage not in ("train", "label"):
        raise ValueError(f"stage must be train or label, got {stage!r}")
    if cfg.data.decode != "auto":
        return cfg.data.decode
    natural = cfg.data.image_size > SMALL_IMAGE_MAX and (stage == "label" or cfg.noise.natural_crop == "inception")
    return "device" if device.type == "cuda" and natural else "cpu"


def _model_key(k: int, cfg: TrainConfig) -> str:
    return "teacher" if k == 0 else f"students.{min(k - 1, len(cfg.students) - 1)}"


def _build(spec: ModelSpec, k: int, cfg: TrainConfig):
    """The model of iteration k; timm's pretrained weights when its ModelConfig says so (one-line error if not)."""
    m = cfg.teacher if k == 0 else cfg.student_for(k)
    try:
        return build_model(spec, pretrained=m.pretrained)
    except NsbenchError as e:
        raise NsbenchError(f"{_model_key(k, cfg)}.pretrained: {e}") from None


def _unlabeled_weight(cfg: TrainConfig) -> float:
    """Weight of the pseudo-labeled mean in the loss (the labeled mean has weight 1)."""
    ratio = cfg.ns.unlabeled_ratio if cfg.ns.loss_weighting == "ratio" else 1
    return cfg.ns.unlabeled_loss_weight * ratio


def _write_history(run: Path, rows: list[dict]) -> None:
    if not D.is_main():
        return
    path = run / "history.csv"
    old = pd.read_csv(path) if path.exists() else pd.DataFrame()
    new = pd.DataFrame(rows)
    if len(old) and len(new):
        old = old[~old["iteration"].isin(new["iteration"].unique())]
    df = pd.concat([old, new], ignore_index=True).sort_values(["iteration", "epoch"])
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")


def train(cfg: TrainConfig, out_dir: str | Path, resume: bool = False) -> dict:
    """Run (or resume) `cfg.ns.iterations` Noisy Student iterations into `out_dir`; return the summary."""
    run = Path(out_dir)
    D.init_from_env(cfg.runtime.device)
    device = D.local_device(resolve_device(cfg.runtime.device))
    if cfg.runtime.threads:
        torch.set_num_threads(cfg.runtime.threads)
    seed_everything(cfg.seed)
    check_choices(cfg)

    data = load_data(cfg)
    num_classes = len(data.classes)
    ladder = check_ladder(cfg, num_classes)
    split = {"seed": cfg.seed, "labels_per_class": cfg.data.labels_per_class, "n_labeled": int(len(data.labeled_idx)),
             "n_unlabeled": int(len(data.unlabeled_idx)), "n_val": int(len(data.val_idx)),
             "labeled_indices": data.labeled_idx.tolist(), "unlabeled_source": cfg.data.unlabeled or cfg.data.source,
             "train_fingerprint": data.train.fingerprint()}
    if D.is_main():
        run.mkdir(parents=True, exist_ok=True)
        if resume and (run / "split.json").exists():
            old = read_json(run / "split.json")
            if old["labeled_indices"] != split["labeled_indices"] or old["train_fingerprint"] != split["train_fingerprint"]:
                raise NsbenchError(f"{run / 'split.json'}: the data or split changed since this run started; "
                                   f"resume needs the same data")
        write_text(run / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        write_json(run / "split.json", split)
    D.barrier()
    log.info("data: %d labeled, %d unlabeled, %d validation images, %d classes", len(data.labeled_idx),
             len(data.unlabeled_idx), len(data.val_idx), num_classes)

    size, workers = cfg.data.image_size, auto_workers(cfg.data.num_workers)
    log.info("data: %d loader worker(s) (data.num_workers: %s)", workers, cfg.data.num_workers)
    val = ValSet(data.val, data.val_idx, size, cfg.pseudo.batch_size, workers)
    augment = _augment(cfg)
    labeled = ImageDataset(data.train, data.labeled_idx, size, augment=augment)
    summary = read_json(run / "summary.json") if (run / "summary.json").exists() else {"iterations": []}
    done = {e["iteration"] for e in summary["iterations"]}
    parent_sha = None
    budgets = Bud.plan(cfg, len(data.labeled_idx), D.world_size())
    summary["warnings"] = [b.warning for b in budgets if b.warning]
    # how the data reached the model (this machine's resolution of the recipe's auto settings)
    summary["data_path"] = {"num_workers": workers, "decode": decode_mode(cfg, device),
                            "decode_labeling": decode_mode(cfg, device, "label"), "device": str(device),
                            "precision": "bf16 autocast" if cfg.runtime.amp and device.type == "cuda" else "fp32",
                            "channels_last": cfg.runtime.channels_last}
    for k in range(cfg.ns.iterations + 1):  # a missing pretrained checkpoint fails now, not iterations later
        m = cfg.teacher if k == 0 else cfg.student_for(k)
        if m.pretrained and k not in done and not (k and cfg.ns.init_from_teacher):
            _build(ladder[k][0], k, cfg)

    for k in range(0, cfg.ns.iterations + 1):
        ckpt = run / f"iter{k}.pt"
        spec, n_params = ladder[k]
        if ckpt.exists() and k not in done:  # killed between writing iterK.pt and recording it: reconcile
            summary = _reconcile(run, k, spec, summary, parent_sha)
            done = {e["iteration"] for e in summary["iterations"]}
        if ckpt.exists():
            parent_sha = next(e["sha256"] for e in summary["iterations"] if e["iteration"] == k)
            if D.is_main():
                (run / f"iter{k}" / "state.pt").unlink(missing_ok=True)  # killed before this cleanup
            log.info("iteration %d: done already (%s), skipping", k, ckpt.name)
            continue
        t0 = time.time()
        work = run / f"iter{k}"
        work.mkdir(parents=True, exist_ok=True)
        seed_everything(cfg.seed + 1000 * k)
        model = _build(spec, k, cfg)
        if spec.drop_path_rate and inert_stochastic_depth(model):
            note = (f"{_model_key(k, cfg)}.drop_path_rate={spec.drop_path_rate} has no effect: none of {spec.arch}'s "
                    f"blocks has a residual connection, where timm applies stochastic depth")
            log.warning("%s", note)
            if note not in summary["warnings"]:
                summary["warnings"].append(note)
        pseudo_ds, stats = None, None
        log.info(budgets[k].describe(len(data.labeled_idx)))
        if budgets[k].warning:
            log.warning("%s", budgets[k].warning)
        if k == 0:
            optim, ratio = budgets[0].optim(cfg.teacher_optim), 0
            log.info("iteration 0: supervised teacher %s (%s parameters)", spec.arch, f"{n_params:,}")
        else:
            optim, ratio = budgets[k].optim(cfg.student_optim), cfg.ns.unlabeled_ratio
            teacher, tmeta = load_checkpoint(run / f"iter{k - 1}.pt")
            teacher.to(device)
            store = work / "pseudo"
            if P.is_complete(store):
                stats = read_json(store / "stats.json")
                log.info("iteration %d: pseudo-label store exists, reusing it", k)
            else:
                pc = cfg.pseudo
                stats = P.build_store(teacher, data.unlabeled, data.unlabeled_idx, store, num_classes=num_classes,
                                      size=size, device=device, soft=pc.soft, temperature=pc.temperature,
                                      topk=pc.topk, threshold=pc.threshold, balance=pc.balance,
                                      per_class=pc.per_class, batch_size=pc.batch_size, num_workers=workers,
                                      filter_on=pc.filter_on, amp=cfg.runtime.amp,
                                      decode=decode_mode(cfg, device, "label"))
            log.info("iteration %d: pseudo-labels kept %d of %d (threshold %.2f), %d selected after balancing%s", k,
                     stats["n_kept"], stats["n_unlabeled"], stats["threshold"], stats["n_selected"],
                     f", agreement with hidden labels {100 * stats['agreement_kept']:.1f}%" if "agreement_kept" in stats else "")
            idx, targets = P.load_selection(store, num_classes)
            pseudo_ds = ImageDataset(data.unlabeled, idx, size, targets=targets, augment=augment)
            if cfg.ns.init_from_teacher:
                try:
                    model.load_state_dict(teacher.state_dict())
                except RuntimeError:
                    raise NsbenchError(f"ns.init_from_teacher: student {spec.arch} cannot take teacher "
                                       f"{tmeta['model']['arch']}'s weights (different shapes)") from None
            del teacher
            log.info("iteration %d: noised student %s (%s parameters, dropout %.2f, stochastic depth %.2f)",
                     k, spec.arch, f"{n_params:,}", spec.drop_rate, spec.drop_path_rate)
        final, history = train_stage(
            model, name=f"iter{k}", optim_cfg=optim, runtime=cfg.runtime, labeled=labeled, pseudo=pseudo_ds,
            ratio=ratio, unlabeled_weight=_unlabeled_weight(cfg), val=val, device=device,
            state_path=work / "state.pt", seed=cfg.seed + 1000 * k, num_workers=workers,
            pseudo_smoothing=0.0 if cfg.pseudo.soft else cfg.pseudo.label_smoothing,
            decode=decode_mode(cfg, device))
        last = history[-1]
        metrics = {"val_top1": last.get("val_top1"), "val_top5": last.get("val_top5"), "val_split": cfg.data.val_split,
                   "n_val": int(len(data.val_idx)), "train_seconds": float(sum(h["seconds"] for h in history)),
                   "steps": int(sum(h["steps"] for h in history)), "images": int(sum(h["images"] for h in history))}
        if stats is not None:
            metrics["pseudo"] = {k2: stats[k2] for k2 in ("n_kept", "n_selected", "n_duplicated", "agreement_kept",
                                                          "precision") if k2 in stats}
        for h in history:
            h["iteration"] = k
        if D.is_main():
            sha = save_checkpoint(ckpt, final, spec, classes=data.classes, iteration=k, parent_sha256=parent_sha,
                                  config=cfg.to_dict(), metrics=metrics,
                                  extra={"role": "teacher" if k == 0 else "student", "n_params": n_params,
                                         "dataset": {"source": cfg.data.source, "fingerprint": split["train_fingerprint"],
                                                     "val_split": cfg.data.val_split}})
            entry = {"iteration": k, "arch": spec.arch, "kwargs": spec.kwargs, "n_params": n_params,
                     "checkpoint": ckpt.name, "sha256": sha, "parent_sha256": parent_sha, **metrics,
                     "wall_seconds": time.time() - t0}
            summary["iterations"] = [e for e in summary["iterations"] if e["iteration"] != k] + [entry]
            _write_history(run, history)
            write_json(run / "summary.json", summary)
            (work / "state.pt").unlink(missing_ok=True)
        summary = D.broadcast_object(summary)
        parent_sha = next(e["sha256"] for e in summary["iterations"] if e["iteration"] == k)
        log.info("iteration %d: val top-1 %.2f%% (%s) in %.0fs", k, metrics["val_top1"], cfg.data.val_split, time.time() - t0)
        D.barrier()
    return summary


def _reconcile(run: Path, k: int, spec: ModelSpec, summary: dict, parent_sha: str | None) -> dict:
    """iter{k}.pt exists but summary.json lacks it (a kill between the two writes). If the checkpoint loads and is
    this run's iteration k (its arch, its parent's sha256), record it from its own metadata and the state's history;
    otherwise move it aside as iter{k}.pt.damaged so that iteration k trains again from its saved state."""
    from ..checkpoint import read_checkpoint
    from ..utils import file_sha256

    ckpt = run / f"iter{k}.pt"
    try:
        meta, _ = read_checkpoint(ckpt)
        problem = None
        if meta.get("iteration") != k or meta["model"]["arch"] != spec.arch:
            problem = f"it holds iteration {meta.get('iteration')} ({meta['model']['arch']}), not {k} ({spec.arch})"
        elif k > 0 and meta.get("parent_sha256") != parent_sha:
            problem = "its parent sha256 is not iteration {}'s".format(k - 1)
    except NsbenchError as e:
        problem = str(e)
    D.barrier()
    if problem is not None:
        log.warning("%s: not recorded in summary.json and unusable (%s); moving it aside and training iteration %d "
                    "again", ckpt, problem, k)
        if D.is_main():
            ckpt.replace(ckpt.with_name(ckpt.name + ".damaged"))
        D.barrier()
        return summary
    metrics = dict(meta.get("metrics") or {})
    entry = {"iteration": k, "arch": spec.arch, "kwargs": spec.kwargs, "n_params": meta.get("n_params"),
             "checkpoint": ckpt.name, "sha256": file_sha256(ckpt), "parent_sha256": meta.get("parent_sha256"),
             **metrics, "wall_seconds": metrics.get("train_seconds")}
    summary = {**summary, "iterations": [e for e in summary["iterations"] if e["iteration"] != k] + [entry]}
    if D.is_main():
        state = run / f"iter{k}" / "state.pt"
        if state.exists():  # the history rows may not have reached history.csv either
            from ..checkpoint import load_state

            try:
                rows = [{**h, "iteration": k} for h in load_state(state)["history"]]
                _write_history(run, rows)
            except (NsbenchError, KeyError, TypeError) as e:
                log.warning("%s: could not recover iteration %d's history rows (%s)", state, k, e)
        write_json(run / "summary.json", summary)
    log.info("iteration %d: %s was in the folder but not in summary.json (an interrupted run, or a teacher placed "
             "there by nsbench study); checked and recorded it now", k, ckpt.name)
    D.barrier()
    return summary


def resume_config(run: Path, iterations: int | None) -> TrainConfig:
    path = run / "config.yaml"
    if not path.exists():
        raise NsbenchError(f"{run}: not a run folder (no config.yaml)")
    overrides = [f"ns.iterations={iterations}"] if iterations is not None else []
    return load_train_config(path, overrides)
