"""The pseudo-label store: a folder of Parquet shards (one per rank) with one row per unlabeled image.

Each row: the image's source index, the teacher's top-k classes and probabilities, its hard label and confidence,
and the hidden true label (-1 when unknown; never used for training). Beside each shard `labels-R-of-W.parquet`:
`stats-R-of-W.npz` (its histograms, written when the shard is whole) and `selection-R-of-W.parquet` (how many times
each kept row enters the student's data, selection.py); `stats.json`, written last, marks the store complete.

Memory stays flat as the unlabeled set grows: each rank streams its shard to Parquet in row groups while it
accumulates per-class histograms of the kept confidences (selection.py plans the balancing from them).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..data.targets import TopKTargets
from ..utils import NsbenchError, atomic_path, read_json

HIST_BINS = 4096  # confidence histogram bins per class (the balancing plan resolves one bin exactly)
ROW_GROUP = 65536


def shard_name(rank: int, world: int) -> str:
    return f"labels-{rank:05d}-of-{world:05d}.parquet"


def stats_file(shard: Path) -> Path:
    """A shard's statistics (`stats-*.npz`), written once the shard is whole: its presence marks the shard done."""
    return shard.with_name(shard.name.replace("labels-", "stats-").replace(".parquet", ".npz"))


STATS_KEYS = ("hist", "predicted", "correct_kept", "scalars", "conf_sum")


def read_stats(shard: Path) -> dict[str, np.ndarray] | None:
    """A shard's statistics as numeric arrays, or None when the file is missing or damaged (unreadable, pickled
    objects, a key missing, not numbers): such a shard is not done, and is labeled again."""
    path = stats_file(shard)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {k: np.asarray(z[k]) for k in STATS_KEYS}
    except Exception:  # noqa: BLE001 - a damaged statistics file of any kind is never trusted
        return None
    if not all(np.issubdtype(v.dtype, np.number) for v in out.values()):
        return None
    return out


def selection_file(shard: Path) -> Path:
    return shard.with_name(shard.name.replace("labels-", "selection-"))


def passes_filter(conf: np.ndarray, threshold: float) -> np.ndarray:
    """The confidence filter: which pseudo-labels the student may see (pseudo.threshold; label.filter_confidence
    says which probability `conf` is). Applied as shards are written, so the histograms count kept rows only, and
    again by selection.py on every pass over the rows."""
    return conf >= threshold


def conf_bins(conf: np.ndarray) -> np.ndarray:
    """Histogram bin of each confidence (HIST_BINS equal bins over [0, 1]; 1.0 falls in the last)."""
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
        kept = passes_filter(conf, self.threshold)
        codes = hard[kept] * HIST_BINS + conf_bins(conf[kept])
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
        with atomic_path(stats_file(self.path)) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, hist=self.hist, predicted=self.predicted, correct_kept=self.correct_kept,
                         scalars=np.array([self.n, self.n_correct, self.n_true, skipped], np.int64),
                         conf_sum=np.array([self.conf_sum]))


def shard_paths(store: Path, world: int) -> list[Path]:
    return sorted(store.glob(f"labels-*-of-{world:05d}.parquet"))


def iter_groups(path: Path, columns: list[str]):
    f = pq.ParquetFile(path)
    for g in range(f.num_row_groups):
        yield f.read_row_group(g, columns=columns)


def column(table: pa.Table, name: str) -> np.ndarray:
    col = table.column(name).combine_chunks()
    if pa.types.is_fixed_size_list(col.type):
        return col.flatten().to_numpy().reshape(len(col), col.type.list_size)
    return col.to_numpy()


def is_complete(store: Path) -> bool:
    return (store / "stats.json").exists()


def load_selection(store: Path, num_classes: int) -> tuple[np.ndarray, TopKTargets]:
    """(source indices, repeated once per use, and their soft targets) of the selected pseudo-labeled set."""
    world = read_json(store / "stats.json")["world_size"]
    idx_all, cls_all, val_all = [], [], []
    for s in shard_paths(store, world):
        sel = pq.read_table(selection_file(s))
        rows = sel.column("row").to_numpy()
        if not len(rows):
            continue
        t = pq.read_table(s, columns=["index", "topk_class", "topk_prob"]).take(pa.array(rows))
        reps = sel.column("count").to_numpy().astype(np.int64)
        idx_all.append(np.repeat(column(t, "index"), reps))
        cls_all.append(np.repeat(column(t, "topk_class"), reps, axis=0))
        val_all.append(np.repeat(column(t, "topk_prob"), reps, axis=0))
    if not idx_all:
        raise NsbenchError(f"{store}: no pseudo-labeled image passed the confidence filter; lower pseudo.threshold")
    return np.concatenate(idx_all), TopKTargets(np.concatenate(cls_all), np.concatenate(val_all), num_classes)
