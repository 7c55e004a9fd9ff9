"""On-the-fly -C generation speed: torch (nsbench.bench.onthefly) against the reference generators, per corruption.

    python benchmarks/onthefly_speed.py [--sizes 32 224] [--n 32] [--ref-n 8] [--device cpu] [--json F]

Images: at 32 px the Fashion-MNIST test images as nsbench prepares them (3 channels), at 224 px scikit-image's
sample photographs centre-cropped and resized (cycled to --n). For every corruption both generators have and every
severity 1-5: images/s of the reference (corruption_sets.corrupt_one, one image at a time, as a cached build's
worker runs it: imagecorruptions-imaug at 224 px, nsbench's calibrated numpy generators at 32 px) over --ref-n
images, and of torch's corrupt_batch over one batch of --n images (after one warm-up batch), on --device. Prints a
row per corruption (medians over severities) and the whole set: the 15 benchmark corruptions x 5 severities, the
time to generate one image's 75 cells by each, and the ratio (issue 34's goal: >= 10x at 224 px on 2 CPU cores).
Run it with nothing else on the machine; torch uses all the cores unless OMP_NUM_THREADS says otherwise.
"""
from __future__ import annotations

import argparse
import json
import logging
import statistics
import time

import numpy as np
import torch
from PIL import Image

from nsbench.bench import cache, onthefly
from nsbench.bench.calibrated import calibration_for
from nsbench.bench.corruption_sets import corrupt_one
from nsbench.reference import C_BENCHMARK, C_VALIDATION


def photos(size: int, n: int) -> np.ndarray:
    import skimage.data as d

    out = []
    for name in ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "cat",
                 "colorwheel"):
        img = np.asarray(getattr(d, name)())
        if img.ndim != 3 or img.shape[2] != 3:
            continue
        h, w = img.shape[:2]
        s = min(h, w)
        img = img[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
        out.append(np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR)))
    return np.stack([out[k % len(out)] for k in range(n)])


def fashion(size: int, n: int) -> np.ndarray:
    from nsbench.data import open_source
    from nsbench.data.transforms import prepare

    src = open_source("fashion-mnist", "test")
    return np.stack([prepare(src.load(i), size, src.kind) for i in range(n)])


def per_s(fn, n: int) -> float:
    t = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 224])
    ap.add_argument("--n", type=int, default=32, help="images in torch's batch")
    ap.add_argument("--ref-n", type=int, default=8, help="images the reference corrupts (one at a time)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", help="append the rows to this JSON-lines file")
    args = ap.parse_args()
    logging.disable(logging.INFO)
    device = torch.device(args.device)
    names = [c for c in (*C_BENCHMARK, *C_VALIDATION) if c in onthefly._load()]
    for size in args.sizes:
        imgs = fashion(size, args.n) if size <= 48 else photos(size, args.n)
        calibration = calibration_for(size)
        batch = torch.from_numpy(imgs).to(device)
        rows = []
        for name in names:
            ref, ours = [], []
            for s in range(1, 6):
                seeds = [cache.seed_for(0, name, s, k) for k in range(args.n)]
                ref.append(per_s(lambda: [corrupt_one(imgs[k], name, s, seeds[k], calibration)
                                          for k in range(args.ref_n)], args.ref_n))
                onthefly.corrupt_batch(batch, name, s, seeds, calibration)  # warm-up (kernels, caches)
                if device.type == "cuda":
                    torch.cuda.synchronize()

                def run():
                    onthefly.corrupt_batch(batch, name, s, seeds, calibration)
                    if device.type == "cuda":
                        torch.cuda.synchronize()

                ours.append(per_s(run, args.n))
            row = {"size": size, "corruption": name, "calibration": calibration, "device": device.type,
                   "reference_images_per_s": statistics.median(ref), "torch_images_per_s": statistics.median(ours),
                   "per_severity": {"reference": ref, "torch": ours}}
            row["speedup"] = row["torch_images_per_s"] / row["reference_images_per_s"]
            rows.append(row)
            print(f"{size:4d} px {name:18s} reference {row['reference_images_per_s']:9.1f}/s  torch "
                  f"{row['torch_images_per_s']:9.1f}/s  x{row['speedup']:.1f}", flush=True)
        bench = [r for r in rows if r["corruption"] in C_BENCHMARK]
        if bench:
            t_ref = sum(sum(1 / v for v in r["per_severity"]["reference"]) for r in bench)
            t_ours = sum(sum(1 / v for v in r["per_severity"]["torch"]) for r in bench)
            print(f"{size:4d} px: {len(bench)} of {len(C_BENCHMARK)} benchmark corruptions x 5 severities, per image: "
                  f"reference {t_ref * 1e3:.1f} ms, torch {t_ours * 1e3:.1f} ms -> x{t_ref / t_ours:.1f}")
        if args.json:
            with open(args.json, "a") as f:
                for r in rows:
                    f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
