"""Pseudo-labeling: the un-noised teacher labels the unlabeled images; filter by confidence; balance classes.

The store is a folder of Parquet shards (one per rank) with one row per unlabeled image: its source index, the
teacher's top-k classes and probabilities, its hard label and confidence, and the hidden true label (-1 when
unknown; never used for training). Each shard's `selection-*.parquet` says how many times each kept image enters
the student's data, and `stats.json`, written last, marks the store complete.
"""
from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch import nn
from ..utils import tqdm

from .. import distributed as D
from ..data.loaders import decodes_on_device, iterate_clean
from ..models import inference_precision, padded_forward
from ..data.sources import Source
from ..data.targets import TopKTargets, dense_targets  # noqa: F401 - dense_targets re-exported for the store's users
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
def teacher_batches(model: nn.Module, source: Source, indices: np.ndarray, size: int, device: torch.device,
                    temperature: float = 1.0, batch_size: int = 512, num_workers: int = 0, progress: bool = True,
                    amp: bool = True, decode: str = "cpu"):
    """Yield (softmax(logits / T) [b, C], source indices [b], n_skipped) of the un-noised teacher on clean images:
    eval mode (no dropout, no stochastic depth, BN running statistics) and no augmentation; on CUDA in bf16
    autocast with channels-last weights and inputs (models.inference_precision), the softmax in float32.
    decode="device": JPEGs are decoded, resized and centre-cropped on `device` (loaders.iterate_clean)."""
    if temperature <= 0:
        raise NsbenchError(f"pseudo.temperature must be positive, got {temperature}")
    fast = inference_precision(device, amp) != "fp32"
    if fast:
        model.to(memory_format=torch.channels_last)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if fast else contextlib.nullcontext()
    with eval_mode(model):
        bar = tqdm(total=len(indices), desc="pseudo-labeling", leave=False, disable=not progress, mininterval=2.0)
        for x, _, idx, sk in iterate_clean(source, indices, size, batch_size, num_workers, device=device,
                                           decode=decode):
            if len(idx) == 0:
                bar.update(sk)
                yield np.zeros((0, 0), np.float32), np.zeros(0, np.int64), sk
                continue
            with autocast:
                logits = padded_forward(model, x, batch_size).float()
            bar.update(len(idx) + sk)  # after the forward: the bar counts labeled images
            yield torch.softmax(logits / temperature, dim=1).cpu().numpy(), idx.numpy(), sk
        bar.close()


def teacher_probs(model: nn.Module, source: Source, indices: np.ndarray, size: int, device: torch.device,
                  temperature: float = 1.0, batch_size: int = 512, num_workers: int = 0,
                  progress: bool = True, amp: bool = True) -> tuple[np.ndarray, np.ndarray, int]:
    """All of `teacher_batches` at once: (probs [n, C], indices [n], n_skipped)."""
    probs, idxs, skipped = [], [], 0
    for p, i, sk in teacher_batches(model, source, indices, size, device, temperature, batch_size, num_workers,
                                    progress, amp):
        skipped += sk
        if len(i):
            probs.append(p)
            idxs.append(i)
    if not probs:
        return np.zeros((0, 0), np.float32), np.zeros(0, np.int64), skipped
    return np.concatenate(probs), np.concatenate(idxs), skipped


def untempered_confidence(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Top probability of softmax(logits) from rows of softmax(logits / T): p_j^T renormalised (exact, in logs)."""
    if temperature == 1.0:
        return probs.max(1)
    with np.errstate(divide="ignore"):
        logp = np.log(probs.astype(np.float64))
    z = temperature * (logp - logp.max(1, keepdims=True))
    return (1.0 / np.exp(z).sum(1)).astype(np.float32)


def topk_targets(probs: np.ndarray, soft: bool, k: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Compress probabilities to (class indices, values) of the top k; hard labels are one class with value 1."""
    n, c = probs.shape
    if not soft:
        return probs.argmax(1)[:, None].astype(np.int32), np.ones((n, 1), np.float32)
    k = c if k is None and c <= 100 else min(k or 10, c)
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return order.astype(np.int32), np.take_along_axis(probs, order, 1).astype(np.float32)


@dataclass
class Selection:
    positions: np.ndarray  # rows of the store, repeated once per use (duplicates for short classes)
    stats: dict


def select(confidence: np.ndarray, hard: np.ndarray, num_classes: int, threshold: float, balance: bool,
           per_class: int | str, true_labels: np.ndarray | None = None) -> Selection:
    """Confidence filter, then per-class balancing to a target count, on arrays held in memory: the definition that
    the streaming `plan_and_select` reproduces (tests check the two agree).

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
#
# Memory stays flat as the unlabeled set grows: each rank streams its shard to Parquet in row groups while it
# accumulates per-class histograms of the kept confidences; rank 0 plans the balancing from the merged histograms
# alone, then resolves the one boundary bin per class exactly by streaming over the shards again. The result is
# identical to `select` on the whole store held in memory (same order: most confident first, ties by row).

HIST_BINS = 4096
ROW_GROUP = 65536


def shard_name(rank: int, world: int) -> str:
    return f"labels-{rank:05d}-of-{world:05d}.parquet"


def _bins(conf: np.ndarray) -> np.ndarray:
    return np.minimum((conf.astype(np.float64) * HIST_BINS).astype(np.int64), HIST_BINS - 1)


def _table(idx, cls, val, conf, true) -> pa.Table:
    return pa.table({
        "index": pa.array(idx.astype(np.int64)),
        "hard": pa.array(cls[:, 0].astype(np.int32)),
        "confidence": pa.array(conf.astype(np.float32)),
        "topk_class": pa.FixedSizeListArray.from_arrays(pa.array(cls.reshape(-1).astype(np.int32)), cls.shape[1]),
        "topk_prob": pa.FixedSizeListArray.from_arrays(pa.array(val.reshape(-1).astype(np.float32)), val.shape[1]),
        "true_label": pa.array(true.astype(np.int64)),
    })


class ShardWriter:
    """Append prediction batches to one Parquet shard (atomically renamed on close) and keep its statistics."""

    def __init__(self, path: Path, num_classes: int, threshold: float):
        self.path, self.c, self.threshold = path, num_classes, threshold
        self.tmp = path.with_name(f".{path.name}.tmp")
        self.writer = None
        self.pending: list[pa.Table] = []
        self.n_pending = 0
        self.hist = np.zeros((num_classes, HIST_BINS), np.int64)  # kept rows only
        self.predicted = np.zeros(num_classes, np.int64)
        self.correct_kept = np.zeros(num_classes, np.int64)
        self.n = self.n_correct = self.n_true = 0
        self.conf_sum = 0.0

    def add(self, idx, cls, val, conf, true) -> None:
        self.pending.append((idx, cls, val, conf, true))
        self.n_pending += len(idx)
        if self.n_pending >= ROW_GROUP:
            self._flush()

    def _flush(self) -> None:
        """Statistics and one Parquet row group for everything added since the last flush."""
        if not self.pending:
            return
        idx, cls, val, conf, true = (np.concatenate(parts) for parts in zip(*self.pending))
        hard = cls[:, 0].astype(np.int64)
        kept = conf >= self.threshold
        codes = hard[kept] * HIST_BINS + _bins(conf[kept])
        self.hist += np.bincount(codes, minlength=self.c * HIST_BINS).reshape(self.c, HIST_BINS)
        self.predicted += np.bincount(hard, minlength=self.c)
        known = true >= 0
        self.n_true += int(known.sum())
        self.n_correct += int((hard[known] == true[known]).sum())
        self.correct_kept += np.bincount(hard[kept & known & (hard == true)], minlength=self.c)
        self.n += len(idx)
        self.conf_sum += float(conf.astype(np.float64).sum())
        table = _table(idx, cls, val, conf, true)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.tmp, table.schema)
        self.writer.write_table(table, row_group_size=ROW_GROUP)
        self.pending, self.n_pending = [], 0

    def close(self, skipped: int, num_topk: int) -> None:
        self._flush()
        if self.writer is None:  # an empty shard still gets a schema
            empty = np.zeros(0)
            pq.write_table(_table(empty, np.zeros((0, num_topk), np.int32), np.zeros((0, num_topk), np.float32),
                                  empty, empty.astype(np.int64)), self.tmp)
        else:
            self.writer.close()
        os.replace(self.tmp, self.path)
        stats = self.path.with_name(self.path.name.replace("labels-", "stats-").replace(".parquet", ".npz"))
        with atomic_path(stats) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, hist=self.hist, predicted=self.predicted, correct_kept=self.correct_kept,
                         scalars=np.array([self.n, self.n_correct, self.n_true, skipped], np.int64),
                         conf_sum=np.array([self.conf_sum]))


def _shards(store: Path, world: int) -> list[Path]:
    return sorted(store.glob(f"labels-*-of-{world:05d}.parquet"))


def _iter_groups(path: Path, columns: list[str]):
    f = pq.ParquetFile(path)
    for g in range(f.num_row_groups):
        yield f.read_row_group(g, columns=columns)


def _col(table: pa.Table, name: str) -> np.ndarray:
    col = table.column(name).combine_chunks()
    if pa.types.is_fixed_size_list(col.type):
        return col.flatten().to_numpy().reshape(len(col), col.type.list_size)
    return col.to_numpy()


def read_store(store: Path, columns: list[str] | None = None, world: int | None = None) -> dict[str, np.ndarray]:
    """Concatenate a store's shards (only `columns`). For inspection and tests: it holds the whole store in memory."""
    world = world or read_json(store / "stats.json")["world_size"]
    shards = _shards(store, world)
    if not shards:
        raise NsbenchError(f"{store}: no pseudo-label shards")
    table = pa.concat_tables([pq.read_table(s, columns=columns) for s in shards])
    return {name: _col(table, name) for name in table.column_names}


def is_complete(store: Path) -> bool:
    return (store / "stats.json").exists()


def plan_and_select(store: Path, world: int, num_classes: int, threshold: float, balance: bool,
                    per_class: int | str) -> dict:
    """Rank 0: merge shard statistics, plan balancing, resolve boundary bins, write per-shard selections."""
    shards = _shards(store, world)
    stats = [np.load(s.with_name(s.name.replace("labels-", "stats-").replace(".parquet", ".npz"))) for s in shards]
    hist = sum(z["hist"] for z in stats)
    predicted = sum(z["predicted"] for z in stats)
    correct_kept = sum(z["correct_kept"] for z in stats)
    n, n_correct, n_true, skipped = (int(sum(z["scalars"][i] for z in stats)) for i in range(4))
    counts = hist.sum(1)
    target = _target(counts, per_class) if balance else None
    # per class: every kept image enters `base` times, and its `m` most confident once more
    base = np.ones(num_classes, np.int64) if target is None else np.where(counts >= target, 0, target // np.maximum(counts, 1))
    m = np.zeros(num_classes, np.int64) if target is None else np.where(counts >= target, target, target % np.maximum(counts, 1))
    m[counts == 0] = 0
    cum = np.cumsum(hist[:, ::-1], axis=1)[:, ::-1]  # cum[c, b] = kept rows of class c in bins >= b
    bbin = np.full(num_classes, HIST_BINS, np.int64)  # boundary bin; rows in higher bins are inside the top m
    need = np.zeros(num_classes, np.int64)
    for c in np.flatnonzero(m):
        b = int(np.flatnonzero(cum[c] >= m[c]).max())
        bbin[c] = b
        need[c] = m[c] - (cum[c, b + 1] if b + 1 < HIST_BINS else 0)
    # exact tie resolution inside each class's boundary bin: most confident first, then lower global row
    cand = {c: [] for c in np.flatnonzero(need)}
    offset = 0
    for s in shards:
        for t in _iter_groups(s, ["hard", "confidence"]):
            hard, conf = _col(t, "hard").astype(np.int64), _col(t, "confidence")
            hit = (conf >= threshold) & (_bins(conf) == bbin[hard]) & (need[hard] > 0)
            for r in np.flatnonzero(hit):
                cand[int(hard[r])].append((-float(conf[r]), offset + int(r)))
            offset += len(hard)
    chosen = {row for c, lst in cand.items() for _, row in sorted(lst)[: need[c]]}
    # per-shard selections: (row within the shard, source index, count)
    offset = 0
    for s in shards:
        rows_out, idx_out, cnt_out, local = [], [], [], 0
        for t in _iter_groups(s, ["index", "hard", "confidence"]):
            idx, hard, conf = _col(t, "index"), _col(t, "hard").astype(np.int64), _col(t, "confidence")
            kept = conf >= threshold
            bins = _bins(conf)
            grow = offset + np.arange(len(idx))
            top = kept & ((bins > bbin[hard]) | np.isin(grow, list(chosen) if chosen else []))
            cnt = np.where(kept, base[hard], 0) + top
            sel = np.flatnonzero(cnt)
            rows_out.append(local + sel)
            idx_out.append(idx[sel])
            cnt_out.append(cnt[sel])
            local += len(idx)
            offset += len(idx)
        table = pa.table({"row": pa.array(np.concatenate(rows_out) if rows_out else np.zeros(0, np.int64)),
                          "index": pa.array(np.concatenate(idx_out) if idx_out else np.zeros(0, np.int64)),
                          "count": pa.array((np.concatenate(cnt_out) if cnt_out else np.zeros(0)).astype(np.int32))})
        with atomic_path(s.with_name(s.name.replace("labels-", "selection-"))) as tmp:
            pq.write_table(table, tmp)
    selected = counts * base + m
    per = [{"class": c, "predicted": int(predicted[c]), "kept": int(counts[c]), "selected": int(selected[c]),
            "duplicated": int(max(selected[c] - counts[c], 0)), "dropped_by_balance": int(max(counts[c] - selected[c], 0))}
           for c in range(num_classes)]
    out = {"n_unlabeled": n, "threshold": threshold, "n_filtered": int(n - counts.sum()), "n_kept": int(counts.sum()),
           "balance": balance, "per_class_target": None if target is None else int(target),
           "n_selected": int(selected.sum()), "n_duplicated": int(sum(p["duplicated"] for p in per)),
           "mean_confidence": float(sum(z["conf_sum"][0] for z in stats) / n) if n else 0.0, "per_class": per,
           "n_skipped": skipped, "world_size": world}
    if n and n_true == n:
        out["agreement_all"] = n_correct / n
        out["agreement_kept"] = float(correct_kept.sum() / counts.sum()) if counts.sum() else 0.0
        for p in per:
            p["agreement"] = float(correct_kept[p["class"]] / counts[p["class"]]) if counts[p["class"]] else None
    return out


def build_store(teacher: nn.Module, source: Source, indices: np.ndarray, store: Path, *, num_classes: int,
                size: int, device: torch.device, soft: bool, temperature: float, topk: int | None,
                threshold: float, balance: bool, per_class: int | str, batch_size: int = 512,
                num_workers: int = 0, filter_on: str = "untempered", amp: bool = True, decode: str = "cpu") -> dict:
    """Label `indices` of `source` with the un-noised teacher, sharded over ranks (each writes its own shard),
    then filter and balance globally on rank 0 from the shards' statistics. The filter reads the top probability of
    softmax(logits) (filter_on="untempered", the released code) or of softmax(logits / temperature) ("tempered").
    decode="device" decodes JPEGs on `device` (recorded in stats.json with the precision)."""
    store.mkdir(parents=True, exist_ok=True)
    rank, world = D.rank(), D.world_size()
    shard = store / shard_name(rank, world)
    done_marker = shard.with_name(shard.name.replace("labels-", "stats-").replace(".parquet", ".npz"))
    if not done_marker.exists():
        writer = ShardWriter(shard, num_classes, threshold)
        k_out, skipped = 1, 0
        mine = indices[D.shard(len(indices))]
        for probs, idx, sk in teacher_batches(teacher, source, mine, size, device, temperature, batch_size,
                                              num_workers, progress=D.is_main(), amp=amp, decode=decode):
            skipped += sk
            if len(idx) == 0:
                continue
            cls, val = topk_targets(probs, soft, topk)
            k_out = cls.shape[1]
            # the filter always uses the teacher's top probability, for hard labels too
            conf = untempered_confidence(probs, temperature) if filter_on == "untempered" else probs.max(1)
            writer.add(idx, cls, val, conf, source.labels[idx])
        writer.close(skipped, k_out)
    D.barrier()
    if D.is_main():
        stats = plan_and_select(store, world, num_classes, threshold, balance, per_class)
        stats.update(soft=soft, temperature=temperature, topk=topk, filter_on=filter_on,
                     precision=inference_precision(device, amp), num_workers=num_workers,
                     decode="device" if decodes_on_device(source, size, decode) else "cpu")  # what ran
        write_json(store / "stats.json", stats)
    D.barrier()
    return read_json(store / "stats.json")


def load_selection(store: Path, num_classes: int) -> tuple[np.ndarray, TopKTargets]:
    """(source indices, repeated once per use, and their soft targets) of the selected pseudo-labeled set."""
    world = read_json(store / "stats.json")["world_size"]
    idx_all, cls_all, val_all = [], [], []
    for s in _shards(store, world):
        sel = pq.read_table(s.with_name(s.name.replace("labels-", "selection-")))
        rows = sel.column("row").to_numpy()
        if not len(rows):
            continue
        t = pq.read_table(s, columns=["index", "topk_class", "topk_prob"]).take(pa.array(rows))
        reps = sel.column("count").to_numpy().astype(np.int64)
        idx_all.append(np.repeat(_col(t, "index"), reps))
        cls_all.append(np.repeat(_col(t, "topk_class"), reps, axis=0))
        val_all.append(np.repeat(_col(t, "topk_prob"), reps, axis=0))
    if not idx_all:
        raise NsbenchError(f"{store}: no pseudo-labeled image passed the confidence filter; lower pseudo.threshold")
    return np.concatenate(idx_all), TopKTargets(np.concatenate(cls_all), np.concatenate(val_all), num_classes)
