"""Student training loop throughput against a bare forward+backward+step loop, in one run.

    python benchmarks/train_loop.py [--steps 100] [--rounds 5] [--batch 32] [--ratio 3]

The bare loop trains the same model (channels-last, as nsbench does) with the same optimiser (nsbench's
`make_optimizer`) on the same batch size from in-memory tensors; the student loop is nsbench's `train_stage` on
Fashion-MNIST with the default recipe's noise (RandAugment, pad-crop, dropout, stochastic depth), labeled and
pseudo-labeled batches mixed, timed over its second epoch of --steps steps (the first pays the fresh model's and
loader's start-up once a stage, as the bare loop's warm-up steps do). Bare and student alternate for --rounds rounds; each
round's ratio compares neighbours in time (this machine's speed drifts by 20 % between rounds), and the median of
those ratios is the figure (target >= 0.90). The data path alone (the loader with its noise, no model) is timed too.
"""
from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional

from nsbench.config import OptimConfig, RuntimeConfig, load_train_config
from nsbench.data import open_source
from nsbench.data.loaders import ImageDataset
from nsbench.resources import resolve
from nsbench.data.targets import TopKTargets
from nsbench.models import build_model
from nsbench.training.ladder import model_spec
from nsbench.training.optim import make_optimizer
from nsbench.training.run_data import train_augment
from nsbench.training.stage import StageConfig, train_stage


def bare(model, opt, x, y, steps: int) -> float:
    model.train()
    t = time.perf_counter()
    for _ in range(steps):
        loss = functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return len(x) * steps / (time.perf_counter() - t)


def data_only(lab, pseudo, args, seed: int) -> float:
    """ms per step of the student loop's loader (sampling, batching, noise) without a model, 0 workers."""
    from torch.utils.data import DataLoader

    from nsbench.training.batches import MixedBatchSampler, MixedCollate, MixedDataset

    sampler = MixedBatchSampler(len(lab), len(pseudo), args.batch, args.batch * args.ratio, args.steps, seed, 0)
    batches = DataLoader(MixedDataset(lab, pseudo), batch_sampler=sampler,
                         collate_fn=MixedCollate(lab.augment.on_batch, seed))
    t = time.perf_counter()
    for _ in batches:
        pass
    return (time.perf_counter() - t) / args.steps * 1e3


def loop(spec, lab, pseudo, args, seed: int, workers: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        stage = StageConfig(name="bench", optim=OptimConfig(epochs=2, batch_size=args.batch, warmup_epochs=0),
                            runtime=RuntimeConfig(device="cpu"), labeled=lab, pseudo=pseudo, ratio=args.ratio,
                            unlabeled_weight=1.0, device=torch.device("cpu"), state_path=Path(d) / "s.pt", seed=seed,
                            num_workers=workers, max_steps=args.steps)
        _, hist = train_stage(build_model(spec), stage)
    return hist[1]["images_per_s"]  # the second epoch: warm, as every epoch of a stage but its first


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--ratio", type=int, default=3)
    args = ap.parse_args()
    logging.disable(logging.INFO)
    cfg = load_train_config(resolve("recipe", "default"))
    spec = model_spec(cfg.student_for(3), 10, 32)
    src = open_source("fashion-mnist", "train")
    total = args.batch * (1 + args.ratio)
    n_u = args.batch * args.ratio * args.steps
    rng = np.random.default_rng(0)
    lab = ImageDataset(src, rng.choice(len(src), args.batch * args.steps, replace=False), 32, augment=train_augment(cfg))  # one epoch = --steps
    cls = np.argsort(-rng.random((n_u, 10)), 1).astype(np.int32)
    val = np.sort(rng.random((n_u, 10)), 1)[:, ::-1].astype(np.float32)
    pseudo = ImageDataset(src, rng.choice(len(src), n_u, replace=False), 32,
                          targets=TopKTargets(cls, val / val.sum(1, keepdims=True), 10), augment=train_augment(cfg))
    torch.manual_seed(0)
    model = build_model(spec).to(memory_format=torch.channels_last)  # the layout nsbench trains in
    opt = make_optimizer(model, OptimConfig(optimizer="adamw", lr=1e-3))  # the optimiser train_stage builds
    x, y = torch.rand(total, 3, 32, 32).contiguous(memory_format=torch.channels_last), torch.randint(0, 10, (total,))
    bare(model, opt, x, y, 5)  # warm-up
    res = {"bare": [], "student loop, 0 workers": [], "student loop, 1 worker": []}
    ratios = {k: [] for k in res if k != "bare"}
    data_ms = []
    for r in range(args.rounds):
        for k in ratios:
            res["bare"].append(bare(model, opt, x, y, args.steps))
            res[k].append(loop(spec, lab, pseudo, args, r, 0 if "0" in k else 1))
            ratios[k].append(res[k][-1] / res["bare"][-1])
        data_ms.append(data_only(lab, pseudo, args, r))
    med = {k: float(np.median(v)) for k, v in res.items()}
    step_ms = total / med["bare"] * 1e3
    print(f"model {spec.arch} {spec.kwargs}; batch {args.batch} labeled + {args.batch * args.ratio} pseudo-labeled; "
          f"{args.steps} steps x {args.rounds} rounds; {torch.get_num_threads()} threads")
    for k, v in res.items():
        print(f"{k:<24} median {med[k]:8.1f} images/s   rounds: {' '.join(f'{x:.0f}' for x in v)}")
    d = float(np.median(data_ms))
    print(f"data path alone (0 workers): {d:.1f} ms a step against {step_ms:.1f} ms for the bare step: in series, "
          f"at most {step_ms / (step_ms + d):.3f} of bare")
    for k, v in ratios.items():
        print(f"ratio {k} / bare: median {np.median(v):.3f} over rounds {' '.join(f'{x:.3f}' for x in v)}  "
              f"(target >= 0.90)")

if __name__ == "__main__":
    main()
