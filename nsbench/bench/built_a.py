"""-A: natural adversarial examples.

Official ImageNet-A / ImageNet-R folders are scored through their 200-class logit masks (the reference rule:
argmax over the 1000-way logits at the 200 indices, compared with the folder's class, wnids in sorted order).

For any other dataset nsbench builds DATASET-A the way ImageNet-A was filtered: from a held-out pool, keep the images
that every one of a set of independently trained reference classifiers gets wrong. ImageNet-A then had humans
check every label; a built set cannot, and on a dataset like Fashion-MNIST most images that all references get wrong
are ones where they all name the same wrong class: ambiguous or mislabelled images (in one demo, 85% of the set, a
third of them shirts), on which a model that learns the same data scores worse the better it fits. So by default
(`natural_adversarial.consensus: exclude`) those consensus images are left out of the scored set, and their number,
rate and make-up by class are recorded. What a built set measures is errors shared with reference models of this
dataset, not ImageNet-A's robustness to natural adversarial examples; reports say so. The reference recipe (archs,
seeds, epochs, rounds, training subset) is fixed by the suite and recorded with how many rounds each reference took
and whether the round cap stopped it while it was still improving; the kept indices are frozen in a manifest.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..data.loaders import iterate_clean
from ..data.sources import Source, scan_folder
from ..data.splits import subsample
from ..reference import imagenet_a_classes, imagenet_r_classes
from ..utils import NsbenchError
from . import cache
from .corruption_sets import clean_images

log = logging.getLogger(__name__)


class EmptySet(NsbenchError):
    """The built set holds no image (small or easy data): a result to record, not a failure of the task."""


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


@dataclass(frozen=True)
class BuildSettings:
    """How a DATASET-A is built, beyond its sources, image size and reference models (the suite's
    natural_adversarial section and seed): each reference trains in rounds of `epochs` epochs, at most
    `max_rounds`, until its held-out top-1 stops improving beyond noise (the trainer's rule; nsbench's: no round
    beats the best by more than its standard error, and by `min_gain` points, twice in a row), on `train_limit` training images
    (None: all) with `val_limit` held out, at `batch_size` and `lr`; `pool_limit` pool images (None: all) are
    screened, subsampled with `seed`; `consensus`: exclude (default) or keep the images on which every reference
    names one and the same wrong class (see the module's docstring)."""
    epochs: int
    max_rounds: int
    min_gain: float
    train_limit: int | None
    val_limit: int
    batch_size: int
    lr: float
    pool_limit: int | None
    seed: int
    consensus: str = "exclude"


def build_a(train: Source, pool: Source, size: int, references: list, settings: BuildSettings, *,
            train_reference: Callable, cache_dir: Path, device: torch.device) -> tuple[Path, dict]:
    """Build (or reuse) DATASET-A from `pool` with reference models trained on `train` by `train_reference` (keyword
    arguments arch, seed, kwargs, source, indices, val_indices, size, epochs, max_rounds, min_gain, batch_size, lr,
    workdir, device; returns an eval-mode model taking [0, 1] images and what it reached), as `settings` say. Each
    reference trains until its accuracy on held-out training images stops improving. The harness never trains: the
    caller passes the trainer in."""
    s = settings
    refs = [{"arch": r.arch, "seed": r.seed, "kwargs": dict(r.kwargs)} for r in references]
    if not refs:
        raise NsbenchError("natural_adversarial.references: at least one reference model is needed")
    spec = {"kind": "A", "train": train.name, "train_fingerprint": train.fingerprint(), "pool": pool.name,
            "pool_fingerprint": pool.fingerprint(), "size": size, "references": refs, "epochs": s.epochs,
            "train_limit": s.train_limit, "batch_size": s.batch_size, "lr": s.lr, "pool_limit": s.pool_limit,
            "seed": s.seed, "max_rounds": s.max_rounds, "min_gain": s.min_gain, "val_limit": s.val_limit,
            "trainer": _trainer_recipe(train_reference)}
    if s.consensus != "keep":  # sets built before the consensus rule keep their key
        spec["consensus"] = s.consensus
    folder = cache_dir / "sets" / f"A-{cache.key_of(spec)}"
    manifest = cache.read_manifest(folder)
    if manifest and not cache.damaged(folder, {"images.npy": manifest.get("images_sha256"),
                                           "labels.npy": manifest.get("labels_sha256")}):
        return folder, manifest
    if manifest:
        log.warning("%s: damaged DATASET-A files; rebuilding the set (trained references are reused)", folder)
    folder.mkdir(parents=True, exist_ok=True)
    pool_idx = subsample(len(pool), s.pool_limit, s.seed)
    preds, ref_stats = [], []
    for r in refs:
        idx, val_idx = _train_val(len(train), s.train_limit, s.val_limit, r["seed"])
        model, reached = train_reference(arch=r["arch"], seed=r["seed"], kwargs=r["kwargs"], source=train, indices=idx,
                                         val_indices=val_idx, size=size, epochs=s.epochs, max_rounds=s.max_rounds,
                                         min_gain=s.min_gain, batch_size=s.batch_size, lr=s.lr, workdir=folder,
                                         device=device)
        pred = _predict(model, pool, pool_idx, size, device)
        ok = pred[pred >= 0] == pool.labels[pool_idx][pred >= 0]
        preds.append(pred)
        cap = round_cap(reached, s.max_rounds, s.min_gain)
        ref_stats.append({**r, "pool_top1": float(ok.mean() * 100) if len(ok) else None, **reached, **cap})
        log.info("DATASET-A reference %s seed %d: held-out top-1 %.2f%% after %d round(s)%s, pool top-1 %.2f%%",
                 r["arch"], r["seed"], reached["val_top1"], reached["rounds"],
                 " (the round cap stopped it while still improving)" if cap["cap_binding"] else "", ok.mean() * 100)
    preds = np.stack(preds)
    truth = pool.labels[pool_idx]
    readable = (preds >= 0).all(0)
    wrong = readable & (preds != truth).all(0)
    agree = wrong & (preds == preds[0]).all(0) if len(refs) >= 2 else np.zeros_like(wrong)
    kept = pool_idx[wrong & ~agree] if s.consensus == "exclude" else pool_idx[wrong]
    if len(kept) == 0:
        raise EmptySet("DATASET-A: no pool image is misclassified by every reference model"
                           + (" without their agreeing on the wrong class" if wrong.any() else "") + "; nothing to keep")
    imgs, labels, kept = clean_images(pool, kept, size)
    cache.save_array(folder / "images.npy", imgs)
    cache.save_array(folder / "labels.npy", labels)
    cache.save_array(folder / "indices.npy", kept)
    binding = [f"{x['arch']} seed {x['seed']}" for x in ref_stats if x["cap_binding"]]
    rule = "kept: pool images that every reference model misclassifies"
    if s.consensus == "exclude" and len(refs) >= 2:
        rule += ", except those on which all of them name the same wrong class (likely label noise)"
    manifest = {**spec, "n_pool": int(len(pool_idx)), "n": int(len(kept)), "reference_results": ref_stats,
                "skipped_unreadable": int((~readable).sum()), "n_all_wrong": int(wrong.sum()),
                "consensus": consensus_summary(preds[0], truth, wrong, agree, pool.classes, s.consensus, len(refs)),
                "round_cap_binding": bool(binding), "round_cap_binding_for": binding,
                "per_class": np.bincount(labels, minlength=len(pool.classes)).tolist(), "rule": rule,
                "what_it_measures": WHAT_IT_MEASURES,
                "reference_training": f"rounds of {s.epochs} epoch(s), at most {s.max_rounds}, until held-out "
                                      f"top-1 stops improving ({_stop_rule(train_reference, s.min_gain)}); best round kept"
                                      + (f"; the cap of {s.max_rounds} rounds stopped {', '.join(binding)} while still "
                                         f"improving" if binding else ""),
                "images_sha256": cache.array_sha(folder / "images.npy"), "labels_sha256": cache.array_sha(folder / "labels.npy")}
    cache.write_manifest(folder, manifest)
    return folder, manifest


WHAT_IT_MEASURES = ("a built -A set: images of this dataset that reference classifiers trained on it all get wrong, "
                    "with no human relabelling; it measures errors shared with those models, not ImageNet-A's "
                    "robustness to natural adversarial examples")


def round_cap(reached: dict, max_rounds: int, min_gain: float) -> dict:
    """Whether the round cap, not a plateau, stopped a reference. A trainer that says what stopped it (`stopped_by`:
    "plateau" or "cap", as nsbench's does under its noise-aware rule) is taken at its word; otherwise: it used every
    round and its last round still gained at least `min_gain` points on its best before (a single round is never
    evidence of a plateau)."""
    hist = [float(v) for v in reached.get("val_top1_per_round") or []]
    rounds = int(reached.get("rounds", len(hist)))
    last_gain = hist[-1] - max(hist[:-1]) if len(hist) >= 2 else None
    if reached.get("stopped_by") in ("plateau", "cap"):
        binding = reached["stopped_by"] == "cap" and rounds >= max_rounds
    else:
        binding = rounds >= max_rounds and (last_gain is None or last_gain >= min_gain)
    return {"max_rounds": int(max_rounds), "last_gain": last_gain, "cap_binding": bool(binding)}


def consensus_summary(pred: np.ndarray, truth: np.ndarray, wrong: np.ndarray, agree: np.ndarray, classes: list[str],
                      rule: str, n_refs: int) -> dict:
    """How many of the images every reference gets wrong have all references agreeing on one wrong class, and
    their make-up: by true class and by the class the references agree on."""
    def by_class(labels):
        counts = np.bincount(labels, minlength=len(classes))
        return {classes[k]: int(counts[k]) for k in np.argsort(-counts, kind="stable") if counts[k]}

    n_wrong = int(wrong.sum())
    return {"rule": rule if n_refs >= 2 else "not applicable (one reference model)", "n_references": int(n_refs),
            "n": int(agree.sum()), "rate": float(agree.sum() / n_wrong) if n_wrong else None,
            "by_true_class": by_class(truth[agree]), "by_agreed_class": by_class(pred[agree])}


def _predict(model: torch.nn.Module, pool: Source, pool_idx: np.ndarray, size: int, device) -> np.ndarray:
    """Top-1 of every pool image in pool_idx order; -1 for an image that could not be read (skipped and counted)."""
    out = np.full(len(pool_idx), -1, np.int64)
    where = {int(i): k for k, i in enumerate(pool_idx)}
    with torch.no_grad():
        for x, _, i, _ in iterate_clean(pool, pool_idx, size, 500):
            if len(i):
                out[[where[int(j)] for j in i]] = model(x.to(device)).argmax(1).cpu().numpy()
    return out


def _stop_rule(train_reference: Callable, min_gain: float) -> str:
    """The trainer's stop rule as its recipe states it, else the plain rule on min_gain."""
    recipe = _trainer_recipe(train_reference)
    if isinstance(recipe, dict) and recipe.get("stop"):
        return f"{recipe['stop']}; min_gain {min_gain}"
    return f"a round gaining less than {min_gain} points"


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
