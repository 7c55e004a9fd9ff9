"""-C: DATASET-C built with imagecorruptions for any dataset, and the official ImageNet-C tree.

Built sets: the evaluation split's first `limit` images (a seeded subset), prepared exactly as the model sees
them (uint8, >= 32x32), corrupted once per (corruption, severity) with a per-image seed, cached as .npy arrays.
Cells are built in parallel over processes; impulse_noise and glass_blur take their `seed=` argument, the others
draw from numpy's global generator, which is re-seeded per image.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.sources import FileSource, Source, scan_folder
from ..data.splits import subsample
from ..data.transforms import prepare
from ..utils import NsbenchError, tqdm
from . import cache

log = logging.getLogger(__name__)

SEEDED_KWARG = {"impulse_noise", "glass_blur"}  # these take seed= (imagecorruptions-imaug)
SCALED_BATCH = 16  # images corrupted together by the torch generators when a cached build scales (memory: float64)
CATEGORIES = ("noise", "blur", "weather", "digital", "extra")  # optional level in unpacked ImageNet-C copies


def corrupt_one(img: np.ndarray, name: str, severity: int, seed: int, calibration: str = "imagenet-c") -> np.ndarray:
    """One corrupted image; `calibration` picks the reference generator's parameters (see bench/calibrated.py)."""
    np.random.seed(seed)
    if calibration != "imagenet-c":
        from .calibrated import as_saved, corrupt_calibrated

        return as_saved(corrupt_calibrated(img, name, severity, calibration, seed), calibration)
    from imagecorruptions import corrupt

    kwargs = {"seed": seed} if name in SEEDED_KWARG else {}
    out = corrupt(img, corruption_name=name, severity=severity, **kwargs)
    if out.shape != img.shape:  # some corruptions return a cropped/resized frame on odd sizes
        from PIL import Image

        out = np.asarray(Image.fromarray(out).resize((img.shape[1], img.shape[0]), Image.BILINEAR))
    return out.astype(np.uint8)


def _build_cell(args) -> tuple[str, int, str]:
    folder, clean_path, name, severity, base_seed, indices, calibration, scale = args
    clean = cache.load_array(Path(clean_path))
    out = np.empty_like(clean)
    seeds = [cache.seed_for(base_seed, name, severity, int(i)) for i in indices]
    if scale != 1:  # ImageNet-C at another size: only the torch generators scale their parameters
        import torch

        from . import onthefly

        for b in range(0, len(clean), SCALED_BATCH):
            x = torch.from_numpy(np.array(clean[b : b + SCALED_BATCH]))
            out[b : b + SCALED_BATCH] = onthefly.corrupt_batch(x, name, severity, seeds[b : b + SCALED_BATCH],
                                                               calibration, scale).numpy()
    else:
        for k in range(len(clean)):
            out[k] = corrupt_one(np.asarray(clean[k]), name, severity, seeds[k], calibration)
    path = Path(folder) / f"{name}-{severity}.npy"
    cache.save_array(path, out)
    return name, severity, cache.array_sha(path)


def clean_images(source: Source, indices: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The prepared uint8 images (n, size, size, 3), labels and source indices; unreadable ones dropped."""
    imgs, keep = [], []
    for i in indices:
        try:
            imgs.append(prepare(source.load(int(i)), size, source.kind))
            keep.append(int(i))
        except Exception as e:  # noqa: BLE001 - UnreadableImage and decoder errors alike
            log.warning("skipping unreadable image %s", e)
    keep = np.asarray(keep, np.int64)
    if not imgs:
        raise NsbenchError(f"{source.name}: no readable images to build from")
    return np.stack(imgs), source.labels[keep], keep


def write_clean_set(folder: Path, source: Source, idx: np.ndarray, size: int) -> np.ndarray:
    """Write a built set's clean images, labels and source indices once; return the indices kept (readable)."""
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "labels.npy").exists():
        imgs, labels, kept = clean_images(source, idx, size)
        cache.save_array(folder / "clean.npy", imgs)
        cache.save_array(folder / "indices.npy", kept)
        cache.save_array(folder / "labels.npy", labels)
    return np.asarray(cache.load_array(folder / "indices.npy"))


def run_tasks(fn, tasks: list, workers: int | None, desc: str):
    """Yield fn(task) for every task, over a pool of `workers` spawned processes (all cores by default)."""
    workers = workers or os.cpu_count() or 1
    bar = tqdm(total=len(tasks), desc=desc, leave=False, mininterval=2.0)
    if workers > 1 and len(tasks) > 1:
        with mp.get_context("spawn").Pool(min(workers, len(tasks)), initializer=_quiet_worker) as pool:
            for r in pool.imap_unordered(fn, tasks):
                bar.update()
                yield r
    else:
        for t in tasks:
            r = fn(t)
            bar.update()
            yield r
    bar.close()


def build_c(source: Source, size: int, corruptions: list[str], severities: list[int], limit: int | None, seed: int,
            cache_dir: Path, workers: int | None = None, calibration: str = "auto") -> tuple[Path, dict]:
    """Build (or reuse) DATASET-C; return its folder and manifest. `calibration` auto picks the reference generator
    calibrated for the image size: CIFAR-10-C (~32 px), Tiny-ImageNet-C (~64 px) or ImageNet-C."""
    import importlib.metadata as md

    from .calibrated import REVISION, SAVED_AS, calibration_for
    from .onthefly.params import scale_for

    calibration = calibration_for(size) if calibration == "auto" else calibration
    scale = scale_for(size, calibration)
    idx = subsample(len(source), limit, seed)
    spec = {"kind": "C", "source": source.name, "fingerprint": source.fingerprint(), "size": size, "seed": seed,
            "n": len(idx), "imagecorruptions": md.version("imagecorruptions-imaug")}
    if scale != 1:  # ImageNet-C's lengths scaled to the image size, by the torch generators (onthefly/params.py)
        from .onthefly import REVISION as TORCH_REVISION

        spec["spatial_scale"] = scale
        spec["generator"] = f"nsbench.bench.onthefly revision {TORCH_REVISION}"
    if calibration != "imagenet-c":  # sets built before calibrations existed keep their key
        spec["calibration"] = calibration
        spec["calibrated_revision"] = REVISION
        quality = SAVED_AS.get(calibration)
        spec["saved_as"] = f"JPEG quality {quality}, as the reference's files" if quality else "lossless (uint8 arrays)"
    folder = cache_dir / "sets" / f"C-{cache.key_of(spec)}"
    manifest = verify_set(folder, cache.read_manifest(folder), "cells")
    want = {(c, s) for c in corruptions for s in severities}
    if manifest and want <= {(c["corruption"], c["severity"]) for c in manifest["cells"]}:
        return folder, manifest
    kept = write_clean_set(folder, source, idx, size)
    done = {(c["corruption"], c["severity"]): c for c in (manifest or {}).get("cells", [])}
    todo = [(str(folder), str(folder / "clean.npy"), c, s, seed, kept, calibration, scale) for c, s in sorted(want - set(done))
            if not (folder / f"{c}-{s}.npy").exists()]
    for c, s in sorted(want - set(done)):
        if (folder / f"{c}-{s}.npy").exists():  # finished by an interrupted build
            done[(c, s)] = {"corruption": c, "severity": s, "file": f"{c}-{s}.npy", "sha256": cache.array_sha(folder / f"{c}-{s}.npy")}
    log.info("building %d DATASET-C cells of %d images in %s", len(todo), len(kept), folder)
    for c, s, sha in run_tasks(_build_cell, todo, workers, "building -C"):
        done[(c, s)] = {"corruption": c, "severity": s, "file": f"{c}-{s}.npy", "sha256": sha}
    manifest = {**spec, "calibration": calibration, "resolution": resolution(size, calibration),
                **base_checksums(folder), "n": int(len(kept)),
                "cells": sorted(done.values(), key=lambda d: (d["corruption"], d["severity"]))}
    cache.write_manifest(folder, manifest)
    return folder, manifest


def resolution(size: int, calibration: str) -> dict:
    """How a built -C set meets the model's input size (meta.json; issue 34, item 3): always corrupted at that size;
    ImageNet-C's 224-px lengths scaled to it (onthefly/params.py), the small-image calibrations' sizes following it."""
    from .onthefly.params import REFERENCE_SIZE, scale_for

    if calibration != "imagenet-c":
        how = f"{calibration}'s parameters; the sizes its reference hard-codes follow the image (bench/calibrated.py)"
    elif size == REFERENCE_SIZE:
        how = "ImageNet-C's own size and parameters"
    else:
        how = (f"ImageNet-C's lengths in pixels times {size} / {REFERENCE_SIZE} by nsbench's torch generators "
               "(bench/onthefly/params.py; benchmarks/native_resolution.py)")
    return {"corrupted_at": size, "spatial_scale": scale_for(size, calibration), "parameters": how}


BASE_FILES = {"indices.npy": "indices_sha256", "clean.npy": "clean_sha256", "labels.npy": "labels_sha256"}


def base_checksums(folder: Path) -> dict:
    return {key: cache.array_sha(folder / name) for name, key in BASE_FILES.items()}


def verify_set(folder: Path, manifest: dict | None, parts: str) -> dict | None:
    """A built set's manifest once its files match their checksums: damaged parts (manifest[parts] entries) are
    dropped, to be rebuilt; damaged base files (clean images, labels, indices) discard the whole set."""
    if not manifest:
        return None
    if cache.damaged(folder, {name: manifest.get(key) for name, key in BASE_FILES.items()}):
        log.warning("%s: damaged clean images / labels / indices; rebuilding the set", folder)
        for p in folder.glob("*.npy"):
            p.unlink()
        (folder / "manifest.json").unlink(missing_ok=True)
        return None
    good = [c for c in manifest[parts] if not cache.damaged(folder, {c["file"]: c["sha256"]})]
    if len(good) < len(manifest[parts]):
        bad = [c["file"] for c in manifest[parts] if c not in good]
        log.warning("%s: damaged %s; rebuilding them", folder, ", ".join(bad))
        for f in bad:
            (folder / f).unlink(missing_ok=True)
    return {**manifest, parts: good}


def _quiet_worker() -> None:
    import warnings

    warnings.filterwarnings("ignore")
    import torch

    torch.set_num_threads(1)


# --------------------------------------------------------------------------------------- official ImageNet-C

@dataclass
class OfficialCell:
    corruption: str
    severity: int
    folder: Path


def scan_imagenet_c(root: str | Path) -> list[OfficialCell]:
    """Find <corruption>/<severity>/<wnid>/*.JPEG, with or without a category level above the corruption."""
    root = Path(root)
    if not root.is_dir():
        raise NsbenchError(f"{root}: ImageNet-C root not found")
    cells = []
    bases = [root] + [root / c for c in CATEGORIES if (root / c).is_dir()]
    for base in bases:
        for cdir in sorted(p for p in base.iterdir() if p.is_dir()):
            for sdir in sorted(p for p in cdir.iterdir() if p.is_dir() and p.name.isdigit()):
                cells.append(OfficialCell(cdir.name, int(sdir.name), sdir))
    if not cells:
        raise NsbenchError(f"{root}: no <corruption>/<severity>/<wnid>/ folders found (ImageNet-C layout)")
    return cells


def open_official_cell(cell: OfficialCell, classes: list[str]) -> FileSource:
    src = scan_folder(cell.folder, f"imagenet-c/{cell.corruption}/{cell.severity}", classes)
    return src.as_shipped()  # ImageNet-C is evaluated without resizing
