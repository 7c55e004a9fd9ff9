"""The Noisy Student iteration driver: the algorithm, one step per call.

    iteration 0: train the teacher on the labeled set                      stage.py
    iteration k: label the unlabeled set with the un-noised teacher        label.py  (into store.py's store)
                 select: confidence filter, per-class balancing            selection.py
                 train the noised student on labeled + pseudo-labeled      stage.py  (batches.py mixes them)
                 the student becomes the next teacher

Every file goes where runs.py says (the run folder's layout); each iteration's checkpoint, summary entry and
history rows are recorded by records.py, which also reconciles an interrupted run on resume.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from .. import distributed
from .. import runs
from ..checkpoint import load_checkpoint, save_checkpoint
from ..config import OptimConfig, TrainConfig, check_choices, load_train_config
from ..data.loaders import ImageDataset, auto_workers
from ..models import ModelSpec
from ..utils import NsbenchError, file_sha256, read_json, resolve_device, seed_everything, write_json
from . import budget, ladder, records
from .label import LabelConfig
from .run_data import RunData, decode_mode, load_data, record_split, split_record, train_augment
from .selection import label_and_select
from .stage import StageConfig, train_stage, unlabeled_weight
from .store import is_complete, load_selection
from .validate import ValSet

log = logging.getLogger(__name__)

# Iteration k reseeds everything with cfg.seed + ITERATION_SEED_STRIDE * k before building its model, and trains
# with that seed: iterations draw independent streams, and a resumed run redraws exactly what it lost.
ITERATION_SEED_STRIDE = 1000


def iteration_seed(cfg: TrainConfig, k: int) -> int:
    return cfg.seed + ITERATION_SEED_STRIDE * k


@dataclass
class Run:
    """What every iteration of one run shares."""

    cfg: TrainConfig
    folder: Path
    device: torch.device
    data: RunData
    ladder: list[tuple[ModelSpec, int]]  # (spec, parameter count) of iteration 0 .. cfg.ns.iterations
    budgets: list[budget.Budget]
    split: dict  # split.json
    workers: int
    labeled: ImageDataset  # the labeled set, noised
    val: ValSet
    summary: dict

    @property
    def num_classes(self) -> int:
        return len(self.data.classes)


def train(cfg: TrainConfig, out_dir: str | Path, resume: bool = False) -> dict:
    """Run (or resume) `cfg.ns.iterations` Noisy Student iterations into `out_dir`; return the summary."""
    run = start(cfg, Path(out_dir), resume)
    parent_sha = None
    for k in range(cfg.ns.iterations + 1):
        if is_done(run, k, parent_sha):
            log.info("iteration %d: done already (%s), skipping", k, runs.checkpoint(run.folder, k).name)
        else:
            train_iteration(run, k, parent_sha)
        parent_sha = records.sha_of(run.summary, k)
    return run.summary


def train_iteration(run: Run, k: int, parent_sha: str | None) -> None:
    """Iteration k: the teacher (k = 0), or label, select and train the noised student; then record it."""
    t0 = time.time()
    cfg, spec, n_params = run.cfg, *run.ladder[k]
    runs.work_dir(run.folder, k).mkdir(parents=True, exist_ok=True)
    seed_everything(iteration_seed(cfg, k))
    model = ladder.build(spec, k, cfg)
    _warn(run, ladder.inert_depth_warning(model, spec, k, cfg))
    log.info(run.budgets[k].describe(len(run.data.labeled_idx)))
    if run.budgets[k].warning:
        log.warning("%s", run.budgets[k].warning)
    if k == 0:
        log.info("iteration 0: supervised teacher %s (%s parameters)", spec.arch, f"{n_params:,}")
        stage = stage_config(run, k, cfg.teacher_optim, pseudo=None, ratio=0)
        stats = None
    else:
        teacher, tmeta = load_checkpoint(_recorded_parent(run, k, parent_sha))
        teacher.to(run.device)
        stats = pseudo_label(run, k, teacher)
        idx, targets = load_selection(runs.pseudo_dir(run.folder, k), run.num_classes)
        pseudo = ImageDataset(run.data.unlabeled, idx, cfg.data.image_size, targets=targets,
                              augment=run.labeled.augment)  # the students' noise, as the labeled set's
        if cfg.ns.init_from_teacher:
            _init_from(model, teacher, spec, tmeta)
        del teacher
        log.info("iteration %d: noised student %s (%s parameters, dropout %.2f, stochastic depth %.2f)",
                 k, spec.arch, f"{n_params:,}", spec.drop_rate, spec.drop_path_rate)
        stage = stage_config(run, k, cfg.student_optim, pseudo=pseudo, ratio=cfg.ns.unlabeled_ratio)
    final, history = train_stage(model, stage)
    record_iteration(run, k, final, history, stats, parent_sha, t0)


def pseudo_label(run: Run, k: int, teacher: torch.nn.Module) -> dict:
    """Label and select iteration k's pseudo-labeled set into its store (reused when complete); its stats.json."""
    cfg, store = run.cfg, runs.pseudo_dir(run.folder, k)
    if is_complete(store):
        stats = read_json(store / "stats.json")
        log.info("iteration %d: pseudo-label store exists, reusing it", k)
    else:
        job = LabelConfig(cfg.pseudo, run.num_classes, cfg.data.image_size, run.device, run.workers,
                          cfg.runtime.amp, decode_mode(cfg, run.device, "label"))
        stats = label_and_select(teacher, run.data.unlabeled, run.data.unlabeled_idx, store, job)
    log.info("iteration %d: pseudo-labels kept %d of %d (threshold %.2f), %d selected after balancing%s", k,
             stats["n_kept"], stats["n_unlabeled"], stats["threshold"], stats["n_selected"],
             f", agreement with hidden labels {100 * stats['agreement_kept']:.1f}%" if "agreement_kept" in stats
             else "")
    return stats


def stage_config(run: Run, k: int, optim: OptimConfig, pseudo: ImageDataset | None, ratio: int) -> StageConfig:
    """How iteration k trains: its budget's epochs, the recipe's runtime, the noised labeled set (+ pseudo)."""
    cfg = run.cfg
    return StageConfig(
        name=f"iter{k}", optim=run.budgets[k].optim(optim), runtime=cfg.runtime, labeled=run.labeled, pseudo=pseudo,
        ratio=ratio, unlabeled_weight=unlabeled_weight(cfg), val=run.val, device=run.device,
        state_path=runs.state_path(run.folder, k), seed=iteration_seed(cfg, k), num_workers=run.workers,
        # smoothing soft targets would blur what the teacher said; hard labels get the released code's smoothing
        pseudo_smoothing=0.0 if cfg.pseudo.soft else cfg.pseudo.label_smoothing,
        decode=decode_mode(cfg, run.device))


def start(cfg: TrainConfig, folder: Path, resume: bool) -> Run:
    """Everything before iteration 0: devices and seeds, data, the ladder, the recorded split, the budgets."""
    distributed.init_from_env(cfg.runtime.device)
    device = distributed.local_device(resolve_device(cfg.runtime.device))
    if cfg.runtime.threads:
        torch.set_num_threads(cfg.runtime.threads)
    seed_everything(cfg.seed)
    check_choices(cfg)
    data = load_data(cfg)
    models = ladder.check_ladder(cfg, len(data.classes))
    split = split_record(cfg, data)
    record_split(folder, cfg, split, resume, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    log.info("data: %d labeled, %d unlabeled, %d validation images, %d classes", len(data.labeled_idx),
             len(data.unlabeled_idx), len(data.val_idx), len(data.classes))
    size, workers = cfg.data.image_size, auto_workers(cfg.data.num_workers)
    log.info("data: %d loader worker(s) (data.num_workers: %s)", workers, cfg.data.num_workers)
    val = ValSet(data.val, data.val_idx, size, cfg.pseudo.batch_size, workers)
    labeled = ImageDataset(data.train, data.labeled_idx, size, augment=train_augment(cfg))
    summary = records.read_summary(folder)
    budgets = budget.plan(cfg, len(data.labeled_idx), distributed.world_size())
    summary["warnings"] = [b.warning for b in budgets if b.warning]
    # how the data reached the model (this machine's resolution of the recipe's auto settings)
    summary["data_path"] = {"num_workers": workers, "decode": decode_mode(cfg, device),
                            "decode_labeling": decode_mode(cfg, device, "label"), "device": str(device),
                            "precision": "bf16 autocast" if cfg.runtime.amp and device.type == "cuda" else "fp32",
                            "channels_last": cfg.runtime.channels_last}
    ladder.check_pretrained(cfg, models, records.finished(summary))
    return Run(cfg, folder, device, data, models, budgets, split, workers, labeled, val, summary)


def is_done(run: Run, k: int, parent_sha: str | None) -> bool:
    """Whether iteration k is finished: its checkpoint exists and is recorded. A checkpoint written but not
    recorded (killed between the two) is reconciled first: recorded if it is this run's, else moved aside."""
    ckpt = runs.checkpoint(run.folder, k)
    if ckpt.exists() and k not in records.finished(run.summary):
        run.summary = records.reconcile(run.folder, k, run.ladder[k][0], run.summary, parent_sha)
    if not ckpt.exists():
        return False
    if distributed.is_main():
        runs.state_path(run.folder, k).unlink(missing_ok=True)  # killed before this cleanup
    return True


def record_iteration(run: Run, k: int, final, history: list[dict], stats: dict | None, parent_sha: str | None,
                     t0: float) -> None:
    """Rank 0 writes iter{k}.pt, then its summary entry and history rows, then drops the training state; the
    summary then reaches every rank."""
    cfg, (spec, n_params), folder = run.cfg, run.ladder[k], run.folder
    last = history[-1]
    metrics = {"val_top1": last.get("val_top1"), "val_top5": last.get("val_top5"), "val_split": cfg.data.val_split,
               "n_val": int(len(run.data.val_idx)), "train_seconds": float(sum(h["seconds"] for h in history)),
               "steps": int(sum(h["steps"] for h in history)), "images": int(sum(h["images"] for h in history)),
               **records.final_quarter_gain(history)}
    if stats is not None:
        metrics["pseudo"] = {key: stats[key] for key in ("n_kept", "n_selected", "n_duplicated", "agreement_kept",
                                                         "precision") if key in stats}
    for h in history:
        h["iteration"] = k
    if distributed.is_main():
        ckpt = runs.checkpoint(folder, k)
        sha = save_checkpoint(ckpt, final, spec, classes=run.data.classes, iteration=k, parent_sha256=parent_sha,
                              config=cfg.to_dict(), metrics=metrics,
                              extra={"role": "teacher" if k == 0 else "student", "n_params": n_params,
                                     "dataset": {"source": cfg.data.source,
                                                 "fingerprint": run.split["train_fingerprint"],
                                                 "val_split": cfg.data.val_split}})
        entry = {"iteration": k, "arch": spec.arch, "kwargs": spec.kwargs, "n_params": n_params,
                 "checkpoint": ckpt.name, "sha256": sha, "parent_sha256": parent_sha, **metrics,
                 "wall_seconds": time.time() - t0}
        run.summary = records.with_entry(run.summary, entry)
        records.write_history(folder, history)
        write_json(folder / runs.SUMMARY, run.summary)
        runs.state_path(folder, k).unlink(missing_ok=True)
    run.summary = distributed.broadcast_object(run.summary)
    log.info("iteration %d: val top-1 %.2f%% (%s) in %.0fs%s", k, metrics["val_top1"], cfg.data.val_split,
             time.time() - t0, f"; {metrics['final_quarter_gain']:+.2f} points over the last quarter (from epoch "
                               f"{metrics['quarter_epoch']})" if "final_quarter_gain" in metrics else "")
    distributed.barrier()


def _recorded_parent(run: Run, k: int, parent_sha: str | None) -> Path:
    """iter{k-1}.pt, the teacher of iteration k, when its bytes are still those summary.json recorded: a resumed run
    must not label with (and name as parent) a file changed since, however it still loads."""
    path = runs.checkpoint(run.folder, k - 1)
    if path.is_file() and file_sha256(path) != parent_sha:
        raise NsbenchError(f"{path}: its sha256 is not the one summary.json recorded for iteration {k - 1} "
                           f"({str(parent_sha)[:12]}...): the file changed after it was trained; put the recorded file "
                           f"back, or start a new run")
    return path


def _init_from(model, teacher, spec: ModelSpec, tmeta: dict) -> None:
    try:
        model.load_state_dict(teacher.state_dict())
    except RuntimeError:
        raise NsbenchError(f"ns.init_from_teacher: student {spec.arch} cannot take teacher "
                           f"{tmeta['model']['arch']}'s weights (different shapes)") from None


def _warn(run: Run, note: str | None) -> None:
    """A warning for the log and, once, for summary.json."""
    if note:
        log.warning("%s", note)
        if note not in run.summary["warnings"]:
            run.summary["warnings"].append(note)


def resume_config(run: Path, iterations: int | None) -> TrainConfig:
    path = run / runs.CONFIG
    if not path.exists():
        raise NsbenchError(f"{run}: not a run folder (no config.yaml)")
    overrides = [f"ns.iterations={iterations}"] if iterations is not None else []
    return load_train_config(path, overrides)
