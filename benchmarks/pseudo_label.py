"""Pseudo-labeling: throughput against bare inference, and peak memory at 1x and 10x unlabeled images.

    python benchmarks/pseudo_label.py [--n 3000] [--batch 512]

1. Throughput: nsbench's `label_and_select` (un-noised teacher, softmax, top-k, streaming Parquet shard, histogram
   statistics, global filter and balancing) over Fashion-MNIST's 60,000 training images, against bare inference of
   the same model at the same batch size on in-memory tensors. Target >= 0.95.
2. Memory: `label_and_select` over Parquet image shards (PNG bytes, the streaming source) of N and 10 N images, each
   in a fresh process; prints the peak resident memory of each and their ratio. Target < 1.2.
"""
from __future__ import annotations

import argparse
import io
import json
import logging
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from nsbench.data import open_source
from nsbench.models import ModelSpec, build_model
from nsbench.config import PseudoConfig
from nsbench.training.label import LabelConfig
from nsbench.training.selection import label_and_select

SPEC = ModelSpec("test_efficientnet", num_classes=10, kwargs={"channel_multiplier": 1.5})


def make_shards(root: Path, n: int, per_file: int = 5000) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    src = open_source("fashion-mnist", "train")
    root.mkdir(parents=True, exist_ok=True)
    for f, s in enumerate(range(0, n, per_file)):
        blobs = []
        for i in range(s, min(s + per_file, n)):
            buf = io.BytesIO()
            Image.fromarray(src.images[i % len(src), ..., 0]).save(buf, format="PNG")
            blobs.append(buf.getvalue())
        pq.write_table(pa.table({"image": pa.array(blobs, pa.binary())}), root / f"part-{f:04d}.parquet", row_group_size=2048)


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024


def child(shards: str, store: str, batch: int) -> None:
    """Run in a fresh process: pseudo-label a Parquet source while a thread samples the resident memory every
    10 ms; print the peak during the call and the baseline just before it (MiB) as JSON."""
    import threading

    logging.disable(logging.INFO)
    torch.manual_seed(0)
    teacher = build_model(SPEC).eval()
    src = open_source(f"parquet:{shards}", "train")
    with torch.no_grad():  # warm the model so one-time allocations are in the baseline, not the measurement
        teacher(torch.rand(batch, 3, 32, 32))
    base = rss_mib()
    peak = [base]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_mib())
            time.sleep(0.01)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    t = time.perf_counter()
    job = LabelConfig(PseudoConfig(threshold=0.0, batch_size=batch), 10, 32, torch.device("cpu"))
    label_and_select(teacher, src, np.arange(len(src)), Path(store), job)
    secs = time.perf_counter() - t
    stop.set()
    th.join()
    print(json.dumps({"n": len(src), "peak_rss_mib": max(peak[0], rss_mib()), "baseline_mib": base, "seconds": secs}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--child", nargs=2)
    args = ap.parse_args()
    if args.child:
        return child(*args.child, args.batch)
    logging.disable(logging.INFO)
    torch.manual_seed(0)
    teacher = build_model(SPEC).eval()
    src = open_source("fashion-mnist", "train")
    n = len(src)
    x = torch.rand(args.batch, 32, 32, 3).permute(0, 3, 1, 2)  # the layout nsbench feeds the model (channels-last)
    bare, ours = [], []
    with tempfile.TemporaryDirectory() as d:
        for r in range(3):
            t = time.perf_counter()
            with torch.no_grad():
                for s in range(0, n, args.batch):
                    teacher(x[: min(args.batch, n - s)])
            bare.append(n / (time.perf_counter() - t))
            t = time.perf_counter()
            job = LabelConfig(PseudoConfig(threshold=0.3, batch_size=args.batch), 10, 32, torch.device("cpu"))
            label_and_select(teacher, src, np.arange(n), Path(d) / f"s{r}", job)
            ours.append(n / (time.perf_counter() - t))
    b, o = float(np.median(bare)), float(np.median(ours))
    print(f"pseudo-labeling {n} Fashion-MNIST images, {SPEC.arch} {SPEC.kwargs}, batch {args.batch}, {torch.get_num_threads()} threads")
    print(f"  bare inference on in-memory tensors:           {b:8.1f} images/s")
    print(f"  nsbench label_and_select (labels, shard, balance):   {o:8.1f} images/s")
    print(f"  ratio: {o / b:.3f}  (target >= 0.95)")
    peaks = {}
    with tempfile.TemporaryDirectory() as d:
        for mult in (1, 10):
            shards = Path(d) / f"x{mult}"
            make_shards(shards, args.n * mult)
            out = subprocess.run([sys.executable, __file__, "--batch", str(args.batch), "--child", str(shards),
                                  str(Path(d) / f"store{mult}")], capture_output=True, text=True, check=True)
            peaks[mult] = json.loads(out.stdout.strip().splitlines()[-1])
    print("peak memory while pseudo-labeling Parquet image shards (fresh process each, sampled every 10 ms):")
    for mult, p in peaks.items():
        print(f"  {p['n']:>7} images: peak RSS {p['peak_rss_mib']:7.1f} MiB, of which {p['peak_rss_mib'] - p['baseline_mib']:6.1f} "
              f"MiB above the process before the call  ({p['n'] / p['seconds']:.0f} images/s)")
    print(f"  ratio 10x / 1x, peak RSS: {peaks[10]['peak_rss_mib'] / peaks[1]['peak_rss_mib']:.3f}  (target < 1.2)")
    g1, g10 = (peaks[m]["peak_rss_mib"] - peaks[m]["baseline_mib"] for m in (1, 10))
    print(f"  ratio 10x / 1x, growth during the call: {g10 / max(g1, 1e-9):.3f}")


if __name__ == "__main__":
    main()
