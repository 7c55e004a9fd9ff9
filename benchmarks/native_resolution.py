"""Native resolution (issue 34, item 3): three ways to make ImageNet-C for a model that runs at S != 224 px, each
measured against the released 224-px definition on the same photographs.

    python benchmarks/native_resolution.py [--sizes 300 380] [--n 18] [--json F]

The definition D: the photograph prepared at 224 px, corrupted at 224 px with imagecorruptions' parameters (the
released ImageNet-C; torch's corrupt_batch, which matches imagecorruptions-imaug within one grey level). At S px:
  - resized  (B): D resized to S (what a model at S px sees of the released files when its input is resized;
                  antialiased bilinear, and as "resized_bicubic" bicubic)
  - scaled   (A): the photograph prepared at S px, corrupted at S px with every length in pixels scaled by S / 224
                  (corrupt_batch's `scale`: nsbench/bench/onthefly/params.py lists what scales and what has no size)
  - unscaled (N): the photograph prepared at S px, corrupted at S px with the 224-px parameters as they are
                  (imagecorruptions at another size; nsbench's built sets above 128 px before this measurement)
Each is compared with D:
  - strength at the model's input: RMS(corrupted - its clean) at S px over RMS(D - clean) at 224 px, on every
    image's pixels (1: the corruption adds or removes as much per pixel as the definition does; noise, blur and
    weather alike). The clean counterpart of "resized" is the clean 224-px image resized to S the same way;
  - agreement with D's pixels: each corrupted image brought back to 224 px (antialiased bilinear, torch) against
    D, mean |difference| in grey levels, next to the same for the clean images (the resize's own floor): for
    "resized" on every cell (same random numbers), for the others on the 30 deterministic cells.
Images: scikit-image's colour photographs, up to three square crops each (cycled to --n). One thread, CPU.
"""
from __future__ import annotations

import argparse
import json
import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from nsbench.bench import onthefly
from nsbench.bench.onthefly.params import REFERENCE_SIZE as REF
from nsbench.bench.onthefly.params import scale_for
from nsbench.reference import C_BENCHMARK

DETERMINISTIC = {"defocus_blur", "zoom_blur", "brightness", "contrast", "pixelate", "jpeg_compression"}


def crops(n: int) -> list[np.ndarray]:
    """Square crops (left / centre / right, or top / centre / bottom) of scikit-image's colour photographs."""
    import skimage.data as d

    out = []
    for name in ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "cat",
                 "motorcycle_left", "colorwheel"):
        try:
            img = np.asarray(getattr(d, name)())
        except Exception:  # noqa: BLE001 - a sample this scikit-image lacks
            continue
        if img.ndim != 3 or img.shape[2] != 3:
            continue
        h, w = img.shape[:2]
        s = min(h, w)
        starts = sorted({0, (max(h, w) - s) // 2, max(h, w) - s})
        for a in starts:
            out.append(img[a : a + s] if h > w else img[:, a : a + s])
    return [out[k % len(out)] for k in range(n)]


def at(images: list[np.ndarray], size: int) -> torch.Tensor:
    """The square crops resized to size x size (PIL bilinear, as prepare's resize), uint8 [N, S, S, 3]."""
    return torch.from_numpy(np.stack([np.asarray(Image.fromarray(i).resize((size, size), Image.BILINEAR))
                                      for i in images]))


def resize(x: torch.Tensor, size: int, mode: str = "bilinear") -> torch.Tensor:
    """uint8 [N, H, W, 3] -> uint8 [N, size, size, 3], antialiased bilinear (or bicubic)."""
    y = F.interpolate(x.permute(0, 3, 1, 2).double(), size=(size, size), mode=mode, antialias=True,
                      align_corners=False)
    return y.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1)


def rms(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a.double() - b.double()) ** 2).mean().sqrt())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[300, 380])
    ap.add_argument("--n", type=int, default=18)
    ap.add_argument("--corruptions", nargs="+", default=list(C_BENCHMARK))
    ap.add_argument("--json", help="write the rows to this JSON file")
    args = ap.parse_args()
    torch.set_num_threads(1)
    images = crops(args.n)
    seeds = np.arange(len(images), dtype=np.int64) * 7919 + 11
    clean = at(images, REF)
    rows = []
    for name in args.corruptions:
        for sev in range(1, 6):
            d = onthefly.corrupt_batch(clean, name, sev, seeds)
            base = rms(d, clean)
            row = {"corruption": name, "severity": sev, "definition_rms": base}
            for size in args.sizes:
                clean_s = at(images, size)
                variants = {"resized": (resize(d, size), resize(clean, size)),
                            "resized_bicubic": (resize(d, size, "bicubic"), resize(clean, size, "bicubic")),
                            "unscaled": (onthefly.corrupt_batch(clean_s, name, sev, seeds), clean_s)}
                scaled = onthefly.corrupt_batch(clean_s, name, sev, seeds, scale=scale_for(size, "imagenet-c"))
                variants["scaled"] = (scaled, clean_s)
                for how, (y, c) in variants.items():
                    row[f"{how}@{size}"] = rms(y, c) / base if base > 0 else float("nan")
                    if how.startswith("resized") or name in DETERMINISTIC:
                        row[f"{how}@{size}_mad"] = float((resize(y, REF).double() - d.double()).abs().mean())
                        row[f"{how}@{size}_floor"] = float((resize(c, REF).double() - clean.double()).abs().mean())
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    print("\nstrength at the model's input: median |log ratio| over the cells (0 = as strong as the definition), cells "
          "within 10% of it; agreement with D's pixels:")
    for size in args.sizes:
        for how in ("resized", "resized_bicubic", "scaled", "unscaled"):
            v = np.array([abs(math.log(r[f"{how}@{size}"])) for r in rows if r[f"{how}@{size}"] > 0])
            within = int((np.exp(v) <= 1.1).sum())
            mad = [r[f"{how}@{size}_mad"] for r in rows if f"{how}@{size}_mad" in r and r["corruption"] in DETERMINISTIC]
            floor = [r[f"{how}@{size}_floor"] for r in rows if f"{how}@{size}_floor" in r and r["corruption"] in DETERMINISTIC]
            print(f"  {size} px {how:15s}: median |log r| {np.median(v):.3f}, {within} / {len(v)} cells within 10%; "
                  f"deterministic cells at 224 px: mean |x - D| {np.mean(mad):.2f} grey levels (clean: {np.mean(floor):.2f})")


if __name__ == "__main__":
    main()
