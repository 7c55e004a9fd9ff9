"""-A: natural adversarial examples.

Official ImageNet-A / ImageNet-R folders are scored through their 200-class logit masks (the reference rule:
argmax over the 1000-way logits at the 200 indices, compared with the folder's class, wnids in sorted order).

For any other dataset nsbench builds DATASET-A the way ImageNet-A was built: from a held-out pool, keep the images
that every one of a set of independently trained reference classifiers gets wrong. The reference recipe (archs,
seeds, epochs, training subset) is fixed by the suite and recorded; the kept indices are frozen in a manifest.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..data.loaders import iterate_clean
from ..data.sources import Source, scan_folder
from ..reference import imagenet_a_classes, imagenet_r_classes
from ..utils import NsbenchError
from . import cache as K
from .corruptions import clean_images

log = logging.getLogger(__name__)


def mask_for(name: str) -> tuple[tuple[int, ...], tuple[str, ...]]:
    return imagenet_a_classes() if name == "imagenet-a" else imagenet_r_classes()


def open_official(root: str | Path, mask: str) -> tuple[Source, np.ndarray, dict]:
    """The folder as a source labelled by position in the mask's wnid list, the mask indices, and a wnid check."""
    root = Path(root)
    if not root.is_dir():
        raise NsbenchError(f"{root}: {mask} folder not found")
    indices, wnids = mask_for(mask)
    folders = sorted(p.name for p in root.iterdir() if p.is_dir())
    extra = sorted(set(folders) - set(wnids))
    missing = sorted(set(wnids) - set(folders))
    if extra:
        raise NsbenchError(f"{root}: {len(extra)} class folder(s) not in the {mask} class list: {', '.join(extra[:5])}")
    if missing:
        log.warning("%s: %d of the %d %s classes have no folder (e.g. %s)", root, len(missing), len(wnids), mask,
                    ", ".join(missing[:3]))
    src = scan_folder(root, mask, list(wnids))
    return src, np.asarray(indices), {"folder_wnids": len(folders), "missing_wnids": missing, "extra_wnids": extra}


def masked_predictions(logits: torch.Tensor, mask_indices: np.ndarray) -> torch.Tensor:
    """Argmax among the masked logits: an index into the 200-class list."""
    return logits[:, torch.as_tensor(mask_indices, dtype=torch.long)].argmax(1)


def build_a(train: Source, pool: Source, size: int, references: list, *, train_reference: Callable, epochs: int,
            max_rounds: int, min_gain: float, train_limit: int | None, val_limit: int, batch_size: int, lr: float,
            pool_limit: int | None, seed: int, cache_dir: Path, device: torch.device) -> tuple[Path, dict]:
    """Build (or reuse) DATASET-A from `pool` with reference models trained on `train` by `train_reference` (keyword
    arguments arch, seed, kwargs, source, indices, val_indices, size, epochs, max_rounds, min_gain, batch_size, lr,
    workdir, device; returns an eval-mode model taking [0, 1] images and what it reached). Each reference trains
    until its accuracy on held-out training images stops improving. The harness never trains: the caller passes
    the trainer in."""
    from .corruptions import pick_indices

    refs = [{"arch": r.arch, "seed": r.seed, "kwargs": dict(r.kwargs)} for r in references]
    if not refs:
        raise NsbenchError("natural_adversarial.references: at least one reference model is needed")
    spec = {"kind": "A", "train": train.name, "train_fingerprint": train.fingerprint(), "pool": pool.name,
            "pool_fingerprint": pool.fingerprint(), "size": size, "references": refs, "epochs": epochs,
            "train_limit": train_limit, "batch_size": batch_size, "lr": lr, "pool_limit": pool_limit, "seed": seed,
            "max_rounds": max_rounds, "min_gain": min_gain, "val_limit": val_limit,
            "trainer": _trainer_recipe(train_reference)}
    folder = cache_dir / "sets" / f"A-{K.key_of(spec)}"
    manifest = K.read_manifest(folder)
    if manifest and not K.damaged(folder, {"images.npy": manifest.get("images_sha256"),
                                           "labels.npy": manifest.get("labels_sha256")}):
        return folder, manifest
    if manifest:
        log.warning("%s: damaged DATASET-A files; rebuilding the set (trained references are reused)", folder)
    folder.mkdir(parents=True, exist_ok=True)
    pool_idx = pick_indices(len(pool), pool_limit, seed)
    wrong = np.ones(len(pool_idx), bool)
    ref_stats = []
    for r in refs:
        idx, val_idx = _train_val(len(train), train_limit, val_limit, r["seed"])
        model, reached = train_reference(arch=r["arch"], seed=r["seed"], kwargs=r["kwargs"], source=train, indices=idx,
                                         val_indices=val_idx, size=size, epochs=epochs, max_rounds=max_rounds,
                                         min_gain=min_gain, batch_size=batch_size, lr=lr, workdir=folder, device=device)
        preds = []
        with torch.no_grad():
            for x, _, _, _ in iterate_clean(pool, pool_idx, size, 500):
                preds.append(model(x.to(device)).argmax(1).cpu().numpy())
        preds = np.concatenate(preds)
        ok = preds == pool.labels[pool_idx]
        wrong &= ~ok
        ref_stats.append({**r, "pool_top1": float(ok.mean() * 100), **reached})
        log.info("DATASET-A reference %s seed %d: held-out top-1 %.2f%% after %d round(s), pool top-1 %.2f%%",
                 r["arch"], r["seed"], reached["val_top1"], reached["rounds"], ok.mean() * 100)
    kept = pool_idx[wrong]
    if len(kept) == 0:
        raise NsbenchError("DATASET-A: the reference models got every pool image right; nothing to keep")
    imgs, labels, kept = clean_images(pool, kept, size)
    K.save_array(folder / "images.npy", imgs)
    K.save_array(folder / "labels.npy", labels)
    K.save_array(folder / "indices.npy", kept)
    manifest = {**spec, "n_pool": int(len(pool_idx)), "n": int(len(kept)), "reference_results": ref_stats,
                "per_class": np.bincount(labels, minlength=len(pool.classes)).tolist(),
                "rule": "kept: pool images that every reference model misclassifies",
                "reference_training": f"rounds of {epochs} epoch(s), at most {max_rounds}, until held-out top-1 gains "
                                      f"less than {min_gain} points; best round kept",
                "images_sha256": K.array_sha(folder / "images.npy"), "labels_sha256": K.array_sha(folder / "labels.npy")}
    K.write_manifest(folder, manifest)
    return folder, manifest


def _trainer_recipe(train_reference: Callable) -> dict | str:
    """What decides the references beyond build_a's arguments, for the cache key: the trainer's own recipe when it
    describes it (`train_reference.recipe()`, as nsbench's does), else the trainer's qualified name."""
    recipe = getattr(train_reference, "recipe", None)
    if callable(recipe):
        return recipe()
    return f"{getattr(train_reference, '__module__', '?')}.{getattr(train_reference, '__qualname__', repr(train_reference))}"


def _train_val(n: int, train_limit: int | None, val_limit: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A reference's training indices and disjoint held-out indices of the training split (seeded)."""
    perm = np.random.default_rng([seed, 17]).permutation(n)
    n_val = min(val_limit, max(1, n // 10))
    val, rest = np.sort(perm[:n_val]), perm[n_val:]
    train = rest if train_limit is None or train_limit >= len(rest) else rest[:train_limit]
    return np.sort(train), val
