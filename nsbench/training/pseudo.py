"""Pseudo-labeling: the un-noised teacher labels the unlabeled images; filter by confidence; balance classes.

The store is a folder of Parquet shards (one per rank) with one row per unlabeled image: its source index, the
teacher's top-k classes and probabilities, its hard label and confidence, and the hidden true label (-1 when
unknown; never used for training). `selection.parquet` says how many times each kept image enters the student's
data, and `stats.json`, written last, marks the store complete.
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch import nn
from tqdm.auto import tqdm

from .. import distributed as D
from ..data.loaders import iterate_clean
from ..data.sources import Source
from ..utils import NsbenchError, atomic_path, read_json, write_json

log = logging.getLogger(__name__)


@contextlib.contextmanager
def eval_mode(model: nn.Module):
    """Run `model` un-noised (eval mode: no dropout, no stochastic depth, BN running stats), then restore."""
    was = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was)


@torch.no_grad()
def teacher_probs(model: nn.Module, source: Source, indices: np.ndarray, size: int, device: torch.device,
                  temperature: float = 1.0, batch_size: int = 512, num_workers: int = 0,
                  progress: bool = True) -> tuple[np.ndarray, np.ndarray, int]:
    """Softmax(logits / T) of the un-noised teacher on clean images: (probs [n, C], indices [n], n_skipped)."""
    if temperature <= 0:
        raise NsbenchError(f"pseudo.temperature must be positive, got {temperature}")
    probs, idxs, skipped = [], [], 0
    with eval_mode(model):
        bar = tqdm(total=len(indices), desc="pseudo-labeling", leave=False, disable=not progress, mininterval=2.0)
        for x, _, idx, sk in iterate_clean(source, indices, size, batch_size, num_workers):
            skipped += sk
            bar.update(len(idx) + sk)
            if len(idx) == 0:
                continue
            logits = model(x.to(device, non_blocking=True)).float()
            probs.append(torch.softmax(logits / temperature, dim=1).cpu().numpy())
            idxs.append(idx.numpy())
        bar.close()
    if not probs:
        return np.zeros((0, 0), np.float32), np.zeros(0, np.int64), skipped
    return np.concatenate(probs), np.concatenate(idxs), skipped


def topk_targets(probs: np.ndarray, soft: bool, k: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Compress probabilities to (class indices, values) of the top k; hard labels are one class with value 1."""
    n, c = probs.shape
    if not soft:
        return probs.argmax(1)[:, None].astype(np.int32), np.ones((n, 1), np.float32)
    k = c if k is None and c <= 100 else min(k or 10, c)
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return order.astype(np.int32), np.take_along_axis(probs, order, 1).astype(np.float32)


def dense_targets(cls: np.ndarray, val: np.ndarray, num_classes: int) -> np.ndarray:
    """Top-k rows back to probability vectors, renormalised to sum to one."""
    out = np.zeros((len(cls), num_classes), np.float32)
    np.put_along_axis(out, cls.astype(np.int64), val, 1)
    out /= out.sum(1, keepdims=True)
    return out


class TopKTargets:
    """Soft targets kept as top-k rows (memory stays top-k sized); the batch collate densifies them."""

    def __init__(self, cls: np.ndarray, val: np.ndarray, num_classes: int):
        self.cls, self.val, self.c = cls, val, num_classes

    def __len__(self) -> int:
        return len(self.cls)

    def __getitem__(self, k) -> tuple[np.ndarray, np.ndarray, int]:
        return self.cls[k], self.val[k], self.c

    def dense(self, k: int) -> np.ndarray:
        return dense_targets(self.cls[k : k + 1], self.val[k : k + 1], self.c)[0]


@dataclass
class Selection:
    positions: np.ndarray  # rows of the store, repeated once per use (duplicates for short classes)
    stats: dict


def select(confidence: np.ndarray, hard: np.ndarray, num_classes: int, threshold: float, balance: bool,
           per_class: int | str, true_labels: np.ndarray | None = None) -> Selection:
    """Confidence filter, then per-class balancing to a target count.

    A class with more images than the target keeps its most confident ones (ties: lower row first); a class with
    fewer repeats all of its images as many whole times as fit, then its most confident ones once more, so every
    non-empty class ends with exactly the target.
    """
    n = len(confidence)
    kept = np.flatnonzero(confidence >= threshold)
    counts = np.bincount(hard[kept], minlength=num_classes)
    target = _target(counts, per_class) if balance else None
    pieces, per = [], []
    for c in range(num_classes):
        rows = kept[hard[kept] == c]
        rows = rows[np.lexsort((rows, -confidence[rows]))]  # most confident first, ties by row
        if target is None or len(rows) == 0:
            chosen, dup, dropped = rows, 0, 0
        elif len(rows) >= target:
            chosen, dup, dropped = rows[:target], 0, len(rows) - target
        else:
            reps, rest = divmod(target, len(rows))
            chosen = np.concatenate([np.tile(rows, reps), rows[:rest]])
            dup, dropped = target - len(rows), 0
        pieces.append(chosen)
        per.append({"class": c, "predicted": int((hard == c).sum()), "kept": int(len(rows)),
                    "selected": int(len(chosen)), "duplicated": int(dup), "dropped_by_balance": int(dropped)})
    positions = np.concatenate(pieces) if pieces else np.zeros(0, np.int64)
    stats = {
        "n_unlabeled": int(n), "threshold": threshold, "n_filtered": int(n - len(kept)), "n_kept": int(len(kept)),
        "balance": balance, "per_class_target": None if target is None else int(target),
        "n_selected": int(len(positions)), "n_duplicated": int(sum(p["duplicated"] for p in per)),
        "mean_confidence": float(confidence.mean()) if n else 0.0, "per_class": per,
    }
    if true_labels is not None and n and (true_labels >= 0).all():
        stats["agreement_all"] = float((hard == true_labels).mean())
        stats["agreement_kept"] = float((hard[kept] == true_labels[kept]).mean()) if len(kept) else 0.0
        for p in per:
            rows = kept[hard[kept] == p["class"]]
            p["agreement"] = float((true_labels[rows] == p["class"]).mean()) if len(rows) else None
    return Selection(positions.astype(np.int64), stats)


def _target(counts: np.ndarray, per_class: int | str) -> int:
    nonzero = counts[counts > 0]
    if isinstance(per_class, int):
        if per_class <= 0:
            raise NsbenchError(f"pseudo.per_class must be positive, got {per_class}")
        return per_class
    if len(nonzero) == 0:
        return 0
    fns = {"mean": np.mean, "median": np.median, "max": np.max, "min": np.min}
    if per_class not in fns:
        raise NsbenchError(f"pseudo.per_class {per_class!r}: expected an integer or one of {', '.join(fns)}")
    return int(round(float(fns[per_class](nonzero))))


# ----------------------------------------------------------------------------------------------- the store

def shard_name(rank: int, world: int) -> str:
    return f"labels-{rank:05d}-of-{world:05d}.parquet"


def write_shard(path: Path, idx: np.ndarray, cls: np.ndarray, val: np.ndarray, conf: np.ndarray,
                true: np.ndarray) -> None:
    table = pa.table({
        "index": pa.array(idx.astype(np.int64)),
        "hard": pa.array(cls[:, 0].astype(np.int32)),
        "confidence": pa.array(conf.astype(np.float32)),
        "topk_class": pa.FixedSizeListArray.from_arrays(pa.array(cls.reshape(-1).astype(np.int32)), cls.shape[1]),
        "topk_prob": pa.FixedSizeListArray.from_arrays(pa.array(val.reshape(-1).astype(np.float32)), val.shape[1]),
        "true_label": pa.array(true.astype(np.int64)),
    })
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_store(store: Path, columns: list[str] | None = None) -> dict[str, np.ndarray]:
    """Concatenate the store's shards (only `columns`, to keep memory small when balancing)."""
    shards = sorted(store.glob("labels-*.parquet"))
    if not shards:
        raise NsbenchError(f"{store}: no pseudo-label shards")
    tables = [pq.read_table(s, columns=columns) for s in shards]
    table = pa.concat_tables(tables)
    out = {}
    for name in table.column_names:
        col = table.column(name).combine_chunks()
        if pa.types.is_fixed_size_list(col.type):
            out[name] = col.flatten().to_numpy().reshape(len(col), col.type.list_size)
        else:
            out[name] = col.to_numpy()
    return out


def is_complete(store: Path) -> bool:
    return (store / "stats.json").exists()


def build_store(teacher: nn.Module, source: Source, indices: np.ndarray, store: Path, *, num_classes: int,
                size: int, device: torch.device, soft: bool, temperature: float, topk: int | None,
                threshold: float, balance: bool, per_class: int | str, batch_size: int = 512,
                num_workers: int = 0) -> dict:
    """Label `indices` of `source` with the teacher (sharded over ranks), then filter and balance on rank 0."""
    store.mkdir(parents=True, exist_ok=True)
    sl = D.shard(len(indices))
    shard = store / shard_name(D.rank(), D.world_size())
    if not shard.exists():
        probs, idx, skipped = teacher_probs(teacher, source, indices[sl], size, device, temperature, batch_size,
                                            num_workers, progress=D.is_main())
        if len(idx):
            cls, val = topk_targets(probs, soft, topk)
            # the filter always uses the teacher's top probability, for hard labels too
            write_shard(shard, idx, cls, val, probs.max(1), source.labels[idx])
        else:
            empty = np.zeros((0, 1))
            write_shard(shard, idx, empty.astype(np.int32), empty.astype(np.float32), np.zeros(0), np.zeros(0, np.int64))
        write_json(store / f"skipped-{D.rank():05d}.json", {"skipped": skipped})
    D.barrier()
    if D.is_main():
        cols = read_store(store, ["index", "hard", "confidence", "true_label"])
        sel = select(cols["confidence"], cols["hard"].astype(np.int64), num_classes, threshold, balance, per_class,
                     cols["true_label"])
        skipped = sum(read_json(p)["skipped"] for p in store.glob("skipped-*.json"))
        sel.stats.update(n_skipped=int(skipped), soft=soft, temperature=temperature, topk=topk)
        counts = np.bincount(sel.positions, minlength=len(cols["index"]))
        keep = np.flatnonzero(counts)
        table = pa.table({"row": pa.array(keep.astype(np.int64)), "index": pa.array(cols["index"][keep]),
                          "count": pa.array(counts[keep].astype(np.int32))})
        with atomic_path(store / "selection.parquet") as tmp:
            pq.write_table(table, tmp)
        write_json(store / "stats.json", sel.stats)
    D.barrier()
    return read_json(store / "stats.json")


def load_selection(store: Path, num_classes: int) -> tuple[np.ndarray, TopKTargets]:
    """(source indices, repeated once per use, and their soft targets) of the selected pseudo-labeled set."""
    cols = read_store(store, ["index", "topk_class", "topk_prob"])
    sel = pq.read_table(store / "selection.parquet")
    rows = np.repeat(sel.column("row").to_numpy(), sel.column("count").to_numpy())
    return cols["index"][rows], TopKTargets(cols["topk_class"][rows], cols["topk_prob"][rows], num_classes)
