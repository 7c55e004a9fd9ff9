"""The data path at ImageNet scale on a GPU: student loop, pseudo-labeling and the -C suite, each against bare GPU
throughput (and the student loop against timm's own loader) in the same run.

    python benchmarks/gpu.py --out DIR [--images 4000] [--steps 40] [--sections all]
    python benchmarks/gpu.py --smoke --out DIR      # tiny sizes, runs on a CPU (a test of the script itself)

Data: a folder of real-photo JPEGs (500 x 375, quality 90) cut from scikit-image's sample photos, 10 classes.
Model: EfficientNet-B0 (timm) at 224 px, bf16 autocast, channels-last; batch 128 labeled + 384 pseudo-labeled.

Sections (each prints its table and appends JSON lines to DIR/results.jsonl, so a run cut short keeps the rest):
- train: bare forward+backward+step on tensors already on the GPU; nsbench's `train_stage` with JPEGs decoded on
  the GPU (data.decode=device) and by the workers (cpu); nsbench's data path alone (no model); timm's
  `create_loader` (RandAugment, prefetcher) + the same model step.
- pseudo: `label_and_select` (bf16, channels-last; JPEGs decoded on the GPU and by the workers) against bare bf16
  inference at the same batch size; then the earlier
  stall's setting (fp32 teacher, cudnn.benchmark, 14 workers, batch 512), timed per batch.
- corruptions: the -C suite over a built DATASET-C (cold build timed apart), warm, against bare inference.
- recipe: `nsbench train --recipe default --iterations 3` (the Fashion-MNIST demo recipe), wall time.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import torch

OUT: Path = Path(".")


def emit(section: str, **row) -> None:
    row = {"section": section, **row}
    print(json.dumps(row), flush=True)
    with open(OUT / "results.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


# ------------------------------------------------------------------------------------------------ data
def _photos() -> list[np.ndarray]:
    from skimage import data

    names = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "motorcycle_left",
             "retina", "cat", "colorwheel")
    out = []
    for n in names:
        try:
            im = getattr(data, n)()
        except Exception:  # noqa: BLE001 - a sample missing from this scikit-image
            continue
        if im.ndim == 3 and im.shape[2] == 3 and min(im.shape[:2]) >= 300:
            out.append(im)
    return out


def _make(args) -> None:
    k, root, w, h = args
    from PIL import Image

    rng = np.random.default_rng(k)
    photos = _make.photos
    im = Image.fromarray(photos[k % len(photos)])
    s = rng.uniform(0.5, 1.0)
    cw, ch = int(im.width * s), int(im.height * s)
    x0, y0 = rng.integers(0, im.width - cw + 1), rng.integers(0, im.height - ch + 1)
    im = im.crop((x0, y0, x0 + cw, y0 + ch)).resize((w, h), Image.BICUBIC)
    if rng.random() < 0.5:
        im = im.transpose(Image.FLIP_LEFT_RIGHT)
    d = Path(root) / f"c{k % 10}"
    d.mkdir(parents=True, exist_ok=True)
    im.save(d / f"{k:06d}.jpg", "JPEG", quality=90)


def _init(photos):
    _make.photos = photos


def jpeg_folder(root: Path, n: int, w: int = 500, h: int = 375) -> Path:
    t = time.perf_counter()
    photos = _photos()
    with Pool(min(16, os.cpu_count() or 1), initializer=_init, initargs=(photos,)) as p:
        p.map(_make, [(k, str(root), w, h) for k in range(n)], chunksize=64)
    emit("data", images=n, size=f"{w}x{h}", photos=len(photos), seconds=round(time.perf_counter() - t, 1))
    return root


# ------------------------------------------------------------------------------------------------ train
def bare_train(model, opt, x, y, steps: int, device) -> float:
    from nsbench.models import autocast

    model.train()
    for i in range(steps + 3):
        if i == 3:
            sync(device)
            t = time.perf_counter()
        with autocast(device, True):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync(device)
    return len(x) * steps / (time.perf_counter() - t)


def section_train(args, folder: Path, device) -> None:
    from nsbench.config import OptimConfig, RuntimeConfig
    from nsbench.data.loaders import ImageDataset, auto_workers
    from nsbench.data.sources import scan_folder
    from nsbench.data.transforms import TrainAugment
    from nsbench.models import ModelSpec, build_model
    from nsbench.data.targets import TopKTargets
    from nsbench.training.optim import make_optimizer
    from nsbench.training.stage import StageConfig, train_stage

    size, bl, ratio = args.size, args.batch, 3
    total = bl * (1 + ratio)
    workers = auto_workers("auto")
    spec = ModelSpec(args.arch, num_classes=10, input_size=size, drop_rate=0.2, drop_path_rate=0.2)
    ocfg = OptimConfig(epochs=2, batch_size=bl, optimizer="rmsprop", lr=0.016, momentum=0.9, warmup_epochs=0,
                       ema_decay=0.9999)
    torch.manual_seed(0)
    model = build_model(spec).to(device).to(memory_format=torch.channels_last)
    opt = make_optimizer(model, ocfg)
    x = torch.rand(total, 3, size, size, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (total,), device=device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    bare = bare_train(model, opt, x, y, args.steps, device)
    emit("train", path="bare forward+backward+step, tensors on the device", images_per_s=round(bare, 1), ratio=1.0)

    src = scan_folder(folder, "photos")
    rng = np.random.default_rng(0)
    aug = TrainAugment(size, True, 2, 9, 0.0, ops="tf", natural_crop=True)
    n_u = len(src)
    lab = ImageDataset(src, rng.permutation(len(src)), size, augment=aug)  # every image labeled: 31 steps an epoch
    cls = np.argsort(-rng.random((n_u, 10)), 1)[:, :10].astype(np.int32)
    val = np.sort(rng.random((n_u, 10)), 1)[:, ::-1].astype(np.float32)
    pseudo = ImageDataset(src, np.arange(n_u), size, targets=TopKTargets(cls, val / val.sum(1, keepdims=True), 10),
                          augment=aug)
    res = {}
    for decode in args.decodes:
        with tempfile.TemporaryDirectory() as d:
            m = build_model(spec)
            t = time.perf_counter()
            stage = StageConfig(name=f"bench-{decode}", optim=ocfg, runtime=RuntimeConfig(device=str(device)),
                                labeled=lab, pseudo=pseudo, ratio=ratio, unlabeled_weight=float(ratio),
                                device=device, state_path=Path(d) / "s.pt", seed=0, num_workers=workers,
                                max_steps=args.steps, decode=decode)
            _, hist = train_stage(m, stage)
            sync(device)
            wall = time.perf_counter() - t
        ips = hist[-1]["images_per_s"]  # the second epoch: workers started, shapes tuned
        res[decode] = ips
        emit("train", path=f"nsbench student loop, decode={decode}, {workers} workers", images_per_s=round(ips, 1),
             ratio=round(ips / bare, 3), steps_per_epoch=hist[-1]["steps"], wall_s=round(wall, 1),
             first_epoch_images_per_s=round(hist[0]["images_per_s"], 1), note="second epoch (steady state)")
    # the data path alone: loader + decode + crop + RandAugment + float, no model
    for decode in args.decodes:
        ips = data_path_only(lab, pseudo, bl, ratio, args.steps, workers, device, decode, size)
        emit("train", path=f"nsbench data path alone, decode={decode}, {workers} workers", images_per_s=round(ips, 1))
    if not args.smoke:
        ips = timm_loader(folder, spec, ocfg, total, args.steps, workers, device, size)
        emit("train", path=f"timm create_loader (rand-m9-n2, prefetcher) + the same step, {workers} workers",
             images_per_s=round(ips, 1), ratio=round(ips / bare, 3),
             nsbench_over_timm=round(max(res.values()) / ips, 2))


def data_path_only(lab, pseudo, bl, ratio, steps, workers, device, decode, size) -> float:
    from torch.utils.data import DataLoader

    from nsbench.data.augment import step_generator, to_float
    from nsbench.data.loaders import loader_kwargs
    from nsbench.training.batches import MixedBatchSampler, MixedCollate, MixedDataset

    for ds in (lab, pseudo):
        ds.encoded = decode == "device"
    mixed = MixedDataset(lab, pseudo)
    on_device = device.type == "cuda"
    sampler = MixedBatchSampler(len(lab), len(pseudo), bl, bl * ratio, steps + 3, 0, 0)
    loader = DataLoader(mixed, batch_sampler=sampler, collate_fn=MixedCollate(None if on_device else lab.augment.on_batch, 0),
                        **loader_kwargs(workers, device))
    n = 0
    for k, b in enumerate(loader):
        if k == 3:
            sync(device)
            t, n = time.perf_counter(), 0
        gen = step_generator(0, b.epoch, b.step)
        if b.parts is not None:
            b.decode_on(device, size, gen)
        x = b.x.to(device, non_blocking=True)
        if not b.augmented:
            x = lab.augment.on_batch(x, gen, b.natural)
        x = to_float(x)
        n += len(x)
    sync(device)
    for ds in (lab, pseudo):
        ds.encoded = False
    return n / (time.perf_counter() - t)


def timm_loader(folder, spec, ocfg, batch, steps, workers, device, size) -> float:
    from timm.data import create_dataset, create_loader

    from nsbench.models import build_model
    from nsbench.models import autocast
    from nsbench.training.optim import make_optimizer

    ds = create_dataset("", root=str(folder), is_training=True)
    loader = create_loader(ds, input_size=(3, size, size), batch_size=batch, is_training=True, use_prefetcher=True,
                           auto_augment="rand-m9-n2", num_workers=workers, device=device, pin_memory=True,
                           persistent_workers=False)
    model = build_model(spec).to(device).to(memory_format=torch.channels_last)
    opt = make_optimizer(model, ocfg)
    model.train()
    n, k, t = 0, 0, None
    while k < steps + 3:
        for x, y in loader:
            if k == 3:
                sync(device)
                t, n = time.perf_counter(), 0
            x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device, True):
                # timm's prefetcher normalises already; nsbench's model normalises inside: the cost is the same
                loss = torch.nn.functional.cross_entropy(model(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n += len(x)
            k += 1
            if k >= steps + 3:
                break
    sync(device)
    return n / (time.perf_counter() - t)


# ------------------------------------------------------------------------------------------------ pseudo
def section_pseudo(args, folder: Path, device) -> None:
    from nsbench.data.loaders import auto_workers
    from nsbench.data.sources import scan_folder
    from nsbench.models import ModelSpec, build_model
    from nsbench.config import PseudoConfig
    from nsbench.training.label import LabelConfig
    from nsbench.training.selection import label_and_select

    size, batch = args.size, args.pseudo_batch
    workers = auto_workers("auto")
    src = scan_folder(folder, "photos")
    teacher = build_model(ModelSpec(args.arch, num_classes=10, input_size=size)).to(device).eval()
    teacher.to(memory_format=torch.channels_last)
    x = torch.rand(batch, 3, size, size, device=device).contiguous(memory_format=torch.channels_last)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    n = len(src)
    full = max(batch, n // batch * batch)  # bare: whole batches only (one shape, tuned once)
    with torch.no_grad(), amp:
        for _ in range(3):
            teacher(x)
        sync(device)
        t = time.perf_counter()
        for _ in range(full // batch):
            torch.softmax(teacher(x).float(), 1)
        sync(device)
    bare = full / (time.perf_counter() - t)
    emit("pseudo", path="bare bf16 inference, tensors on the device", images_per_s=round(bare, 1), ratio=1.0)
    for decode in args.decodes:  # JPEGs decoded on the device (data.decode auto on a GPU) and by the workers
        for rep in range(2):
            with tempfile.TemporaryDirectory() as d:
                t = time.perf_counter()
                job = LabelConfig(PseudoConfig(threshold=0.3, batch_size=batch), 10, size, device,
                                  num_workers=workers, decode=decode)
                stats = label_and_select(teacher, src, np.arange(n), Path(d) / "store", job)
                sync(device)
                ips = n / (time.perf_counter() - t)
            emit("pseudo", path=f"nsbench label_and_select ({stats['precision']}, decode={decode}, {workers} workers), "
                 f"run {rep + 1}", images_per_s=round(ips, 1), ratio=round(ips / bare, 3),
                 note="loader start-up included")
    if args.smoke:
        return
    # the setting of the reported stall, with this code: fp32 teacher, cudnn.benchmark, 14 workers, batch 512
    torch.backends.cudnn.benchmark = True
    from nsbench.data.loaders import iterate_clean

    teacher32 = build_model(ModelSpec(args.arch, num_classes=10, input_size=size)).to(device).eval()
    teacher32.to(memory_format=torch.channels_last)
    t0 = time.perf_counter()
    marks = []
    with torch.no_grad():
        for x, _, idx, _ in iterate_clean(src, np.arange(n), size, 512, 14, device=device):
            ta = time.perf_counter() - t0
            teacher32(x)
            sync(device)
            marks.append((len(idx), round(ta, 2), round(time.perf_counter() - t0, 2)))
    emit("pseudo", path="stall setting (fp32, cudnn.benchmark, 14 workers, batch 512), this code",
         seconds=round(time.perf_counter() - t0, 1), batches=marks[:3] + marks[-2:], n_batches=len(marks))


# ------------------------------------------------------------------------------------------------ corruptions
def section_corruptions(args, folder: Path, device) -> None:
    from nsbench.bench import corruption_sets
    from nsbench.bench.context import EvalContext
    from nsbench.bench.eval_model import EvalModel
    from nsbench.bench.suite import SuiteConfig
    from nsbench.bench.tasks.corruptions import corruption_errors
    from nsbench.data.sources import scan_folder
    from nsbench.models import ModelSpec, build_model
    from nsbench.reference import C_BENCHMARK, C_VALIDATION

    size, limit, batch = args.size, args.c_limit, args.pseudo_batch
    src = scan_folder(folder, "photos")
    names = list(C_BENCHMARK + C_VALIDATION)
    model = build_model(ModelSpec(args.arch, num_classes=10, input_size=size)).eval()
    em = EvalModel(model, "bench", "b" * 64, [f"c{i}" for i in range(10)], size, {})
    with tempfile.TemporaryDirectory() as d:
        cache = Path(d)
        t = time.perf_counter()
        corruption_sets.build_c(src, size, names, [1, 2, 3, 4, 5], limit, 0, cache, workers=os.cpu_count())
        build = len(names) * 5 * limit / (time.perf_counter() - t)
        emit("corruptions", path=f"cold DATASET-C build, {len(names)} x 5 x {limit} images at {size} px, "
             f"{os.cpu_count()} processes", images_per_s=round(build, 1))
        cfg = SuiteConfig(name="bench", batch_size=batch)
        cfg.data.source, cfg.data.split = f"folder:{folder}", None
        cfg.corruptions.limit = limit
        n_images = len(names) * 5 * limit + limit
        ctx = EvalContext(em, cfg, cache, device)
        ctx._source = src
        ctx.cell = lambda task, key, compute: compute()
        m = ctx.model
        x = torch.rand(batch, 3, size, size, device=device).contiguous(memory_format=torch.channels_last)
        with torch.no_grad(), ctx.autocast():
            for _ in range(3):
                m(x)
            sync(device)
            t = time.perf_counter()
            done = 0
            while done < n_images:
                m(x[: min(batch, n_images - done)]).float().cpu()
                done += batch
            sync(device)
        bare = n_images / (time.perf_counter() - t)
        emit("corruptions", path=f"bare inference (bf16 on CUDA), tensors on the device, batch {batch}",
             images_per_s=round(bare, 1), ratio=1.0)
        xs = x[:limit]  # a cell's images per batch, as the suite scores them
        with torch.no_grad(), ctx.autocast():
            for _ in range(3):
                m(xs)
            sync(device)
            t = time.perf_counter()
            for _ in range(n_images // limit):
                m(xs).float().cpu()
            sync(device)
        bare_cell = n_images // limit * limit / (time.perf_counter() - t)
        emit("corruptions", path=f"bare inference, batch {limit} (one cell per batch)", images_per_s=round(bare_cell, 1))
        for rep in range(2):
            t = time.perf_counter()
            corruption_errors(ctx, cfg.corruptions)
            sync(device)
            ips = n_images / (time.perf_counter() - t)
            emit("corruptions", path=f"nsbench -C suite over the cached set ({ctx.precision}), run {rep + 1}",
                 images_per_s=round(ips, 1), ratio=round(ips / bare, 3), ratio_same_batch=round(ips / bare_cell, 3),
                 images=n_images)


# ------------------------------------------------------------------------------------------------ recipe
def section_recipe(args, device) -> None:
    with tempfile.TemporaryDirectory() as d:
        cmd = [sys.executable, "-m", "nsbench", "train", "--recipe", "default", "--iterations", str(args.iterations),
               "--out", f"{d}/run", f"runtime.device={device.type}", *args.recipe_overrides]
        t = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t
        if r.returncode:
            emit("recipe", error=r.stderr[-2000:])
            return
        s = json.loads(Path(f"{d}/run/summary.json").read_text())
        its = [{k: e.get(k) for k in ("iteration", "steps", "images", "train_seconds", "wall_seconds", "val_top1")}
               for e in s["iterations"]]
        emit("recipe", command=" ".join(cmd[2:]), wall_s=round(wall, 1), iterations=its)


def main() -> None:
    global OUT
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--images", type=int, default=4000)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=128, help="labeled images per step (x4 with pseudo-labeled)")
    ap.add_argument("--pseudo-batch", type=int, default=512)
    ap.add_argument("--arch", default="efficientnet_b0")
    ap.add_argument("--c-limit", type=int, default=64)
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--recipe-overrides", nargs="*", default=[])
    ap.add_argument("--sections", default="train,pseudo,corruptions,recipe")
    ap.add_argument("--decodes", default="device,cpu")
    ap.add_argument("--folder", help="the JPEG folder to use (made there first if missing)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes on any device (tests the script)")
    args = ap.parse_args()
    args.decodes = args.decodes.split(",")
    if args.smoke:
        args.images, args.steps, args.size, args.batch, args.pseudo_batch, args.arch, args.c_limit = \
            24, 2, 96, 2, 8, "test_efficientnet", 2
    OUT = Path(args.out)
    OUT.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.WARNING)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    import timm
    import torchvision

    shm = os.statvfs("/dev/shm") if os.path.exists("/dev/shm") else None
    emit("env", torch=torch.__version__, torchvision=torchvision.__version__, timm=timm.__version__,
         device=torch.cuda.get_device_name() if device.type == "cuda" else "cpu", cores=os.cpu_count(),
         shm_gib=round(shm.f_bsize * shm.f_blocks / 2**30, 1) if shm else None)
    with tempfile.TemporaryDirectory() as d:
        folder = Path(args.folder) if args.folder else Path(d) / "photos"
        if not folder.exists():
            jpeg_folder(folder, args.images)
        for name in args.sections.split(","):
            fn = {"train": lambda: section_train(args, folder, device),
                  "pseudo": lambda: section_pseudo(args, folder, device),
                  "corruptions": lambda: section_corruptions(args, folder, device),
                  "recipe": lambda: section_recipe(args, device)}[name]
            t = time.perf_counter()
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - a failed section is reported; the others still run
                import traceback

                emit(name, error=f"{type(e).__name__}: {e}", trace=traceback.format_exc()[-3000:])
            emit(name, section_seconds=round(time.perf_counter() - t, 1))


if __name__ == "__main__":
    main()
