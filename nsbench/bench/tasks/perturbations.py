"""perturbations (-P): flip probability and top-5 distance per perturbation on the official ImageNet-P videos or on
DATASET-P; FR, normalised T5D, mFR and mT5D against the normaliser."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ...reference import P_TEST, P_VALIDATION, alexnet_p
from ...config import check_range
from ...utils import NsbenchError, tqdm
from .. import cache
from .. import metrics
from .. import onthefly, perturbation_sets
from ..registry import TaskResult, register
from .corruptions import GENERATE, generation  # -C's rule: on the fly on a GPU, cached on a CPU

log = logging.getLogger(__name__)


@dataclass
class PerturbationTask:
    enabled: bool = True
    limit: int | None = 200  # sequences per perturbation for built sets
    perturbations: list[str] = field(default_factory=lambda: list(P_TEST))
    difficulty: int = 1  # 1, 2 or 3 (official noise difficulties live in <name>_2 / <name>_3 folders)
    root: str | None = None  # official ImageNet-P tree; None: build DATASET-P
    # built sets: the reference generator's parameters; auto = calibrated for the image size (CIFAR-10-P up to 48 px,
    # Tiny-ImageNet-P up to 128 px, ImageNet-P above)
    calibration: str = "auto"
    # built sets: `cached` keeps every sequence on disk (perturbation_sets, numpy / OpenCV); `on_the_fly` makes each
    # batch's sequences in torch on the scoring device (bench/onthefly/perturb.py) and stores none; `auto`: on the
    # fly on a GPU, cached on a CPU
    generate: str = "auto"


def validate(t: PerturbationTask) -> None:
    check_range("perturbations.limit", t.limit, lo=1, optional=True)
    if t.generate not in GENERATE:
        raise NsbenchError(f"perturbations.generate must be {', '.join(GENERATE)}, got {t.generate!r}")
    if t.difficulty not in (1, 2, 3):
        raise NsbenchError("perturbations.difficulty must be 1, 2 or 3")
    if t.calibration not in ("auto", *perturbation_sets.TABLES):
        raise NsbenchError(f"perturbations.calibration: must be auto, {', '.join(perturbation_sets.TABLES)}; "
                           f"got {t.calibration!r}")
    if not t.perturbations:
        raise NsbenchError("perturbations.perturbations: must not be empty (or set perturbations.enabled=false)")
    valid = P_TEST + P_VALIDATION
    for p in t.perturbations:
        if p not in valid:
            raise NsbenchError(f"perturbations.perturbations: unknown perturbation {p!r}; valid: {', '.join(valid)}")
        if p == "spatter" and t.root is None:
            raise NsbenchError("perturbations.perturbations: 'spatter' exists only in the official ImageNet-P "
                               "(set perturbations.root)")


def _official(ctx, t: PerturbationTask) -> tuple[dict, dict]:
    out = {}
    absent = [p for p in t.perturbations if not (Path(t.root) / perturbation_sets.official_folder(p, t.difficulty)).is_dir()]
    if absent:
        log.warning("%s: no folder for %s; scoring the other perturbations (mFR/mT5D become partial)", t.root,
                    ", ".join(perturbation_sets.official_folder(p, t.difficulty) for p in absent))
    if len(absent) == len(t.perturbations):
        raise NsbenchError(f"{t.root}: none of the requested ImageNet-P perturbation folders exist")
    asked = {}  # videos asked for per perturbation (the folders may hold different numbers)
    for p in tqdm([p for p in t.perturbations if p not in absent], desc=f"{ctx.em.label} -P", leave=False, mininterval=2.0):
        videos = perturbation_sets.scan_imagenet_p(t.root, p, t.difficulty, ctx.em.classes)
        videos = [videos[i] for i in ctx.pick(len(videos))]
        asked[p] = len(videos)

        def compute(videos=videos, p=p):
            def local(part):
                fp, t5, ids = [], [], []
                for k in part:
                    try:
                        frames = perturbation_sets.read_video(videos[k][0])
                    except NsbenchError as e:  # a damaged video is skipped and counted, never fatal
                        log.warning("skipping unreadable sequence: %s", e)
                        continue
                    lg = ctx.logits_local(frames)
                    fp.append(metrics.flip_probability(lg.argmax(1)[None], metrics.is_noise(p), t.difficulty)[0])
                    t5.append(metrics.sequence_t5d(lg, metrics.is_noise(p), t.difficulty))
                    ids.append(k)
                return {"fp": np.asarray(fp, float), "t5d": np.asarray(t5, float), "index": np.asarray(ids, np.int64)}

            return ctx.sharded(np.arange(len(videos)), local)

        out[p] = ctx.cell("perturbations", f"official|{t.root}|{p}|{t.difficulty}|{len(videos)}", compute)
    skipped = {p: asked[p] - len(z["fp"]) for p, z in out.items()}
    return out, {"source": f"official:{t.root}", "calibration": "imagenet-p (official files)",
                 "skipped_unreadable": {p: k for p, k in skipped.items() if k}}


def _built(ctx, t: PerturbationTask) -> tuple[dict, dict]:
    how = generation(ctx, t)
    cached = how == "cached"  # on the fly, only the clean images (and labels, indices) are built and kept
    folder, manifest = ctx.build(lambda: perturbation_sets.build_p(
        ctx.source, ctx.size, t.perturbations if cached else [], t.difficulty, ctx.cap(t.limit), ctx.suite.seed,
        ctx.cache, ctx.workers, t.calibration))
    out = {}
    for p in tqdm(t.perturbations, desc=f"{ctx.em.label} -P", leave=False, mininterval=2.0):
        def stats(lg: np.ndarray, p=p) -> dict:
            noise = metrics.is_noise(p)
            return {"fp": metrics.flip_probability(lg.argmax(2), noise, t.difficulty),
                    "t5d": np.asarray([metrics.sequence_t5d(s, noise, t.difficulty) for s in lg])}

        def compute(p=p):
            seqs = cache.load_array(folder / f"{p}-d{t.difficulty}.npy")
            n, f = seqs.shape[:2]
            return stats(ctx.logits(np.asarray(seqs).reshape(n * f, *seqs.shape[2:])).reshape(n, f, -1))

        if cached:
            out[p] = ctx.cell("perturbations", f"{folder.name}|{p}|{t.difficulty}", compute)
        else:
            key = f"{folder.name}|{p}|{t.difficulty}|on_the_fly-r{onthefly.REVISION}"
            out[p] = ctx.cell("perturbations", key,
                              lambda p=p: stats(_on_the_fly_logits(ctx, folder, manifest, p, t.difficulty)))
    info = {"folder": folder.name, "n": manifest["n"], "seed": manifest["seed"], "calibration": manifest["calibration"],
            "calibration_source": manifest["calibration_source"], "generate": how,
            "resolution": perturbation_sets.resolution(ctx.size, manifest["calibration"])}
    if not cached:
        info["generator"] = f"nsbench.bench.onthefly revision {onthefly.REVISION} (torch, on {ctx.device.type})"
    return out, info


def _on_the_fly_logits(ctx, folder, manifest: dict, p: str, difficulty: int) -> np.ndarray:
    """Logits [sequences, frames, classes] of a built set's clean images made into `p` sequences batch by batch on
    the scoring device, each image with the seed the cached path gives it (perturbation_sets._build_one)."""
    import torch

    from ..onthefly.perturb import sequences

    clean = cache.load_array(folder / "clean.npy")
    index = np.asarray(cache.load_array(folder / "indices.npy"))
    seed = int(manifest["seed"])
    frames_per_batch = max(1, ctx.bs // 31)  # about one model batch of frames at a time

    def local(part: np.ndarray) -> dict:
        out = []
        for b in range(0, len(part), frames_per_batch):
            rows = part[b : b + frames_per_batch]
            x = torch.from_numpy(np.array(clean[rows])).to(ctx.device)
            seeds = [cache.seed_for(seed, p, difficulty, int(index[k])) for k in rows]
            seqs = sequences(x, p, difficulty, seeds, manifest["calibration"])  # [B, F, H, W, 3]
            n, f = seqs.shape[:2]
            flat = seqs.reshape(n * f, *seqs.shape[2:]).permute(0, 3, 1, 2).float().div_(255)
            lg = torch.cat([ctx.forward(flat[s : s + ctx.bs]) for s in range(0, len(flat), ctx.bs)])
            out.append(lg.numpy().reshape(n, f, -1))
        if not out:  # an empty share (a rank without images): as many frames deep as the other ranks' sequences
            one = torch.from_numpy(np.array(clean[:1])).to(ctx.device)
            f = sequences(one, p, difficulty, [seed], manifest["calibration"]).shape[1]
            return {"logits": np.zeros((0, f, len(ctx.em.classes)), np.float32)}
        return {"logits": np.concatenate(out)}

    return ctx.sharded(np.arange(len(clean)), local)["logits"]


def perturbation_stats(ctx, t: PerturbationTask) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
    """Per-sequence flip probability and top-5 distance for every perturbation, and the set's description."""
    return (_official if t.root else _built)(ctx, t)


def _reference(ctx, t: PerturbationTask, choice, norm):
    if choice.kind == "alexnet":
        return {p: {"fp": v["fp"], "t5d": v["t5d"]} for p, v in alexnet_p().items()}
    if choice.kind == "none":
        return None

    def compute(ref):
        stats, _ = perturbation_stats(ref, t)
        return {p: {"fp": metrics.mean(z["fp"]), "t5d": metrics.mean(z["t5d"])} for p, z in stats.items()}

    return norm.reference(ctx, "perturbations", compute)


@register("perturbations", config=PerturbationTask, order=2, validate=validate)
def run(ctx, t: PerturbationTask, norm) -> TaskResult:
    stats, info = perturbation_stats(ctx, t)
    official = bool(t.root)
    choice = norm.choose("perturbations", alexnet_holds=official and t.difficulty == 1,
                         setting=f"{'ImageNet-P' if official else 'a built -P set'} at difficulty {t.difficulty}")
    ref = _reference(ctx, t, choice, norm)
    rows, per, fps, ut5ds, frs, t5s = [], [], {}, {}, {}, {}
    for p, z in stats.items():
        n = len(z["fp"])
        fp, t5 = metrics.mean(z["fp"]), metrics.mean(z["t5d"])  # FP and uT5D: means over the sequences
        fps[p], ut5ds[p] = fp, t5
        rows += [ctx.row("perturbations", p, "fp", 100 * fp, n), ctx.row("perturbations", p, "t5d", t5, n)]
        index = z["index"] if "index" in z else np.arange(n)
        per.append(pd.DataFrame({"task": "perturbations", "condition": p, "severity": 0, "eps_255": 0.0,
                                 "image": index, "flip": z["fp"], "t5d": z["t5d"]}))
        if ref is not None and p in ref:
            fr, rt5 = metrics.fr(fp, ref[p]["fp"]), metrics.t5d_rel(t5, ref[p]["t5d"])  # NaN: a zero denominator
            fr, rt5 = (None if np.isnan(fr) else fr), (None if np.isnan(rt5) else rt5)
            why = "undefined: the normaliser {} on {} (zero denominator)"
            rows += [ctx.row("perturbations", p, "fr", None if fr is None else 100 * fr, n, normaliser=choice.name,
                             note=None if fr is not None else why.format("never flips", p)),
                     ctx.row("perturbations", p, "t5d_rel", None if rt5 is None else 100 * rt5, n, normaliser=choice.name,
                             note=None if rt5 is not None else why.format("has zero top-5 distance", p))]
            if p in P_TEST:
                frs[p], t5s[p] = fr, rt5
    test = [p for p in P_TEST if p in stats]
    if test:
        n = len(stats[test[0]]["fp"])
        note = None if len(test) == len(P_TEST) else f"partial: {len(test)} of {len(P_TEST)} test perturbations"
        mean_fp = 100 * metrics.mean([fps[p] for p in test])
        rows.append(ctx.row("perturbations", "all", "mean_fp", mean_fp, n, note=note))
        rows.append(ctx.row("perturbations", "all", "mean_t5d", metrics.mean([ut5ds[p] for p in test]), n, note=note))
        if ref is not None:
            rows += [ctx.mean_row("perturbations", m, v, P_TEST, "test perturbations", n, normaliser=choice.name)
                     for m, v in (("mfr", frs), ("mt5d", t5s))]
    return TaskResult(rows, per, {"perturbations": {**info, "normaliser": choice.why}})
