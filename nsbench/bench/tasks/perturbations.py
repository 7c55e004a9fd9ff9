"""perturbations (-P): flip probability and top-5 distance per perturbation on the official ImageNet-P videos or on
DATASET-P; FR, normalised T5D, mFR and mT5D against the normaliser."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ...reference import P_TEST, P_VALIDATION, alexnet_p
from ...utils import NsbenchError
from .. import cache as K
from .. import metrics as M
from .. import perturbations as P
from ..corruptions import pick_indices
from ..registry import TaskResult, register

BUILDABLE = tuple(p for p in P_TEST + P_VALIDATION if p != "spatter")


@dataclass
class PerturbationTask:
    enabled: bool = True
    limit: int | None = 200  # sequences per perturbation for built sets
    perturbations: list[str] = field(default_factory=lambda: list(P_TEST))
    difficulty: int = 1  # 1, 2 or 3 (official noise difficulties live in <name>_2 / <name>_3 folders)
    root: str | None = None  # official ImageNet-P tree; None: build DATASET-P


def validate(t: PerturbationTask) -> None:
    if t.difficulty not in (1, 2, 3):
        raise NsbenchError("perturbations.difficulty must be 1, 2 or 3")
    valid = P_TEST + P_VALIDATION
    for p in t.perturbations:
        if p not in valid:
            raise NsbenchError(f"unknown perturbation {p!r}; valid: {', '.join(valid)}")


def _official(ctx, t: PerturbationTask) -> tuple[dict, dict]:
    out = {}
    for p in tqdm(t.perturbations, desc=f"{ctx.em.label} -P", leave=False, mininterval=2.0):
        videos = P.scan_imagenet_p(t.root, p, t.difficulty, ctx.em.classes)
        videos = [videos[i] for i in pick_indices(len(videos), ctx.cap(None), ctx.suite.seed)]

        def compute(videos=videos, p=p):
            def local(part):
                fp, t5 = [], []
                for k in part:
                    lg = ctx.logits_local(P.read_video(videos[k][0]))
                    fp.append(M.flip_probability(lg.argmax(1)[None], M.is_noise(p), t.difficulty)[0])
                    t5.append(M.sequence_t5d(lg, M.is_noise(p), t.difficulty))
                return {"fp": np.asarray(fp, float), "t5d": np.asarray(t5, float)}

            return ctx.sharded(np.arange(len(videos)), local)

        out[p] = ctx.cell("perturbations", f"official|{t.root}|{p}|{t.difficulty}|{len(videos)}", compute)
    return out, {"source": f"official:{t.root}"}


def _built(ctx, t: PerturbationTask) -> tuple[dict, dict]:
    folder, manifest = ctx.build(lambda: P.build_p(ctx.source, ctx.size, t.perturbations, t.difficulty,
                                                   ctx.cap(t.limit), ctx.suite.seed, ctx.cache, ctx.workers))
    out = {}
    for p in tqdm(t.perturbations, desc=f"{ctx.em.label} -P", leave=False, mininterval=2.0):
        def compute(p=p):
            seqs = K.load_array(folder / f"{p}-d{t.difficulty}.npy")
            n, f = seqs.shape[:2]
            lg = ctx.logits(np.asarray(seqs).reshape(n * f, *seqs.shape[2:])).reshape(n, f, -1)
            noise = M.is_noise(p)
            return {"fp": M.flip_probability(lg.argmax(2), noise, t.difficulty),
                    "t5d": np.asarray([M.sequence_t5d(s, noise, t.difficulty) for s in lg])}

        out[p] = ctx.cell("perturbations", f"{folder.name}|{p}|{t.difficulty}", compute)
    return out, {"folder": folder.name, "n": manifest["n"], "seed": manifest["seed"]}


def perturbation_stats(ctx, t: PerturbationTask) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
    """Per-sequence flip probability and top-5 distance for every perturbation, and the set's description."""
    return (_official if t.root else _built)(ctx, t)


def _reference(ctx, t: PerturbationTask, norm):
    if norm.kind == "alexnet":
        return {p: {"fp": v["fp"], "t5d": v["t5d"]} for p, v in alexnet_p().items()}

    def compute(ref):
        stats, _ = perturbation_stats(ref, t)
        return {p: {"fp": float(z["fp"].mean()), "t5d": float(z["t5d"].mean())} for p, z in stats.items()}

    return norm.reference(ctx, "perturbations", compute)


@register("perturbations", config=PerturbationTask, order=2, validate=validate)
def run(ctx, t: PerturbationTask, norm) -> TaskResult:
    stats, info = perturbation_stats(ctx, t)
    ref = _reference(ctx, t, norm)
    rows, per, frs, t5s = [], [], [], []
    for p, z in stats.items():
        n = len(z["fp"])
        fp, t5 = float(z["fp"].mean()), float(z["t5d"].mean())
        rows += [ctx.row("perturbations", p, "fp", 100 * fp, n), ctx.row("perturbations", p, "t5d", t5, n)]
        per.append(pd.DataFrame({"task": "perturbations", "condition": p, "severity": 0, "eps_255": 0.0,
                                 "image": np.arange(n), "flip": z["fp"], "t5d": z["t5d"]}))
        if ref is not None and p in ref:
            fr = fp / ref[p]["fp"] if ref[p]["fp"] else float("nan")
            rt5 = t5 / ref[p]["t5d"] if ref[p]["t5d"] else float("nan")
            rows += [ctx.row("perturbations", p, "fr", 100 * fr, n, normaliser=norm.name),
                     ctx.row("perturbations", p, "t5d_rel", 100 * rt5, n, normaliser=norm.name)]
            if p in P_TEST:
                frs.append(fr)
                t5s.append(rt5)
    test = [p for p in P_TEST if p in stats]
    if test:
        n = len(stats[test[0]]["fp"])
        rows.append(ctx.row("perturbations", "all", "mean_fp", 100 * np.mean([stats[p]["fp"].mean() for p in test]), n))
        rows.append(ctx.row("perturbations", "all", "mean_t5d", np.mean([stats[p]["t5d"].mean() for p in test]), n))
        if frs:
            rows.append(ctx.row("perturbations", "all", "mfr", 100 * np.mean(frs), n, normaliser=norm.name))
            rows.append(ctx.row("perturbations", "all", "mt5d", 100 * np.mean(t5s), n, normaliser=norm.name))
    return TaskResult(rows, per, {"perturbations": info})
