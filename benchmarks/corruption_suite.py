"""-C suite speed: warm-cache evaluation against bare inference, and the cold build with all cores against one.

    python benchmarks/corruption_suite.py [--limit 500] [--build-limit 400]

1. Warm cache: DATASET-C is built first (not timed); then nsbench's -C evaluation (reading the cached arrays,
   batching, scoring every (corruption, severity) cell) is timed against a bare loop of the same model over the
   same number of in-memory images at the same batch size. Prints images/s of both and the ratio (target >= 0.85).
2. Cold build: building DATASET-C of --build-limit images with one process, then with all cores, into fresh
   folders; prints images/s of each and the speed-up.
"""
from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from nsbench.bench import corruption_sets
from nsbench.bench.eval_model import EvalModel
from nsbench.bench.context import EvalContext
from nsbench.bench.suite import SuiteConfig
from nsbench.bench.tasks.corruptions import corruption_errors
from nsbench.data import open_source
from nsbench.models import ModelSpec, build_model
from nsbench.reference import C_BENCHMARK, C_VALIDATION


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=500, help="images per cell for the warm-cache comparison")
    ap.add_argument("--build-limit", type=int, default=400, help="images per cell for the cold-build comparison")
    ap.add_argument("--batch", type=int, default=500)
    args = ap.parse_args()
    logging.disable(logging.INFO)
    src = open_source("fashion-mnist", "test")
    spec = ModelSpec("test_efficientnet", num_classes=10, kwargs={"channel_multiplier": 1.5})
    model = build_model(spec).eval()
    names = list(C_BENCHMARK + C_VALIDATION)
    with tempfile.TemporaryDirectory() as d:
        cache = Path(d)
        corruption_sets.build_c(src, 32, names, [1, 2, 3, 4, 5], args.limit, 0, cache)  # warm the cache (not timed)
        cfg = SuiteConfig(name="bench", batch_size=args.batch)
        cfg.data.source, cfg.data.split = "fashion-mnist", "test"
        cfg.corruptions.limit = args.limit
        em = EvalModel(model, "bench", "b" * 64, [str(i) for i in range(10)], 32, {})
        n_images = len(names) * 5 * (args.limit + 0) + args.limit  # every cell plus the clean reference cell
        # the same memory layout nsbench feeds the model (uint8 NHWC permuted to NCHW: channels-last strides)
        x = torch.rand(args.batch, 32, 32, 3).permute(0, 3, 1, 2)
        with torch.no_grad():
            model(x)
        bare, ours = [], []
        for r in range(3):
            t = time.perf_counter()
            with torch.no_grad():
                done = 0
                while done < n_images:
                    model(x[: min(args.batch, n_images - done)])
                    done += args.batch
            bare.append(n_images / (time.perf_counter() - t))
            ctx = EvalContext(em, cfg, cache, torch.device("cpu"))
            ctx.cell = lambda task, key, compute: compute()  # score every cell afresh, reading the cached set
            t = time.perf_counter()
            corruption_errors(ctx, cfg.corruptions)
            ours.append(n_images / (time.perf_counter() - t))
        b, o = float(np.median(bare)), float(np.median(ours))
        print(f"warm -C suite: {n_images} images ({len(names)} corruptions x 5 severities x {args.limit} + clean), batch {args.batch}")
        print(f"  bare inference on in-memory tensors: {b:8.1f} images/s")
        print(f"  nsbench -C evaluation (cached set):  {o:8.1f} images/s")
        print(f"  ratio: {o / b:.3f}  (target >= 0.85)")
        cores = os.cpu_count() or 1
        speeds = {}
        for workers in (1, cores):
            with tempfile.TemporaryDirectory() as cold:
                t = time.perf_counter()
                corruption_sets.build_c(src, 32, names, [1, 2, 3, 4, 5], args.build_limit, 0, Path(cold),
                                        workers=workers)
                speeds[workers] = len(names) * 5 * args.build_limit / (time.perf_counter() - t)
        print(f"cold build of DATASET-C, {len(names)} x 5 x {args.build_limit} images:")
        print(f"  1 process:      {speeds[1]:8.1f} images/s")
        print(f"  {cores} processes:    {speeds[cores]:8.1f} images/s")
        print(f"  speed-up: {speeds[cores] / speeds[1]:.2f}x on {cores} cores")


if __name__ == "__main__":
    main()
