"""Are the on-the-fly fog layers drawn from the reference's distribution? Fog of one grey image at each seed the
cached path would give images 0..N-1, made by the calibrated numpy generator (the cached path) and by the torch one
(on the fly), which draw independently; the mean and the spread of the grey levels over the draws, with the mean's
standard error.

    python benchmarks/fog_draws.py [--draws 3000] [--calibration cifar-10-c] [--size 32]
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from nsbench.bench import cache, calibrated
from nsbench.bench.onthefly import corrupt_batch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--draws", type=int, default=3000)
    ap.add_argument("--calibration", default="cifar-10-c")
    ap.add_argument("--size", type=int, default=32)
    args = ap.parse_args()
    img = np.full((args.size, args.size, 3), 128, np.uint8)
    print("severity | cached: mean [se], spread | on the fly: mean [se], spread | difference (standard errors)")
    for sev in range(1, 6):
        seeds = [cache.seed_for(0, "fog", sev, k) for k in range(args.draws)]
        ref = np.stack([calibrated.corrupt_calibrated(img, "fog", sev, args.calibration, s) for s in seeds]).astype(float)
        ours = corrupt_batch(torch.from_numpy(np.stack([img] * args.draws)), "fog", sev, seeds,
                             args.calibration).numpy().astype(float)
        (ma, sa), (mb, sb) = ((x.mean(axis=(1, 2, 3)), x.std(axis=(1, 2, 3))) for x in (ref, ours))
        se_a, se_b = ma.std(ddof=1) / np.sqrt(len(ma)), mb.std(ddof=1) / np.sqrt(len(mb))
        z = (mb.mean() - ma.mean()) / np.hypot(se_a, se_b)
        print(f"{sev} | {ma.mean():.2f} [{se_a:.2f}], {sa.mean():.2f} | {mb.mean():.2f} [{se_b:.2f}], {sb.mean():.2f} | "
              f"{mb.mean() - ma.mean():+.2f} ({z:+.1f})")


if __name__ == "__main__":
    main()
