"""Selection: the confidence filter, then per-class balancing, from what the teacher wrote to the store.

`plan_and_select` works from the store's shards without holding them: rank 0 plans the balancing from the merged
per-class histograms of kept confidences alone, then resolves the one boundary bin per class exactly by streaming over
the shards again, and writes each shard's `selection-*.parquet`. The rule: a class with more kept images than the
target keeps its most confident ones (ties: lower row first, so one process or many pick the same rows); a class with
fewer repeats all of its images as many whole times as fit, then its most confident ones once more, so every
non-empty class ends with exactly the target (tests/helpers.py writes the same rule out on arrays in memory and
tests/training/test_pseudo_labels.py checks the two agree).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .. import distributed
from ..config import PseudoConfig
from ..utils import NsbenchError, atomic_path, read_json, write_json
from .label import LabelConfig, label_unlabeled
from .store import (HIST_BINS, column, conf_bins, iter_groups, passes_filter, read_stats, selection_file, shard_paths,
                    stats_file)


def _target(counts: np.ndarray, per_class: int | str) -> int:
    """Images per class after balancing: `per_class` itself, or the mean / median / max / min of the kept counts of
    the classes that have any, rounded (0 when none has)."""
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


@dataclass
class Plan:
    """Per class: every kept image enters `base` times, and its `m` most confident once more. Those `m` are every
    kept row in a confidence bin above `bbin` plus the `need` most confident rows inside bin `bbin`."""

    base: np.ndarray
    m: np.ndarray
    bbin: np.ndarray
    need: np.ndarray


def plan_and_select(store: Path, world: int, num_classes: int, threshold: float, balance: bool,
                    per_class: int | str) -> dict:
    """Rank 0: merge shard statistics, plan balancing, resolve boundary bins, write per-shard selections; returns
    the store's statistics (what stats.json holds, less how the labels were made)."""
    parts = shard_paths(store, world)
    stats = [read_stats(s) for s in parts]
    for s, z in zip(parts, stats):
        if z is None:  # written by another rank a moment ago, then damaged: say which file, never a ValueError
            raise NsbenchError(f"{stats_file(s)}: pseudo-label statistics missing or damaged; rerun with --resume "
                               f"to label the shard again")
    hist = sum(z["hist"] for z in stats)
    counts = hist.sum(1)
    target = _target(counts, per_class) if balance else None
    plan = _plan(hist, counts, target, num_classes)
    _write_selections(parts, threshold, plan, _boundary_rows(parts, threshold, plan))
    return _store_stats(stats, counts, plan, target, threshold, balance, world)


def _plan(hist: np.ndarray, counts: np.ndarray, target: int | None, num_classes: int) -> Plan:
    """The balancing from the merged histograms alone (no row is read)."""
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
    return Plan(base, m, bbin, need)


def _boundary_rows(parts: list[Path], threshold: float, plan: Plan) -> set[int]:
    """Global rows chosen inside each class's boundary bin: the rule's order (most confident first, then
    the lower global row), from one more pass over the shards that keeps only the boundary bins' candidates."""
    cand = {c: [] for c in np.flatnonzero(plan.need)}
    offset = 0
    for s in parts:
        for t in iter_groups(s, ["hard", "confidence"]):
            hard, conf = column(t, "hard").astype(np.int64), column(t, "confidence")
            hit = passes_filter(conf, threshold) & (conf_bins(conf) == plan.bbin[hard]) & (plan.need[hard] > 0)
            for r in np.flatnonzero(hit):
                cand[int(hard[r])].append((-float(conf[r]), offset + int(r)))
            offset += len(hard)
    return {row for c, lst in cand.items() for _, row in sorted(lst)[: plan.need[c]]}


def _write_selections(parts: list[Path], threshold: float, plan: Plan, chosen: set[int]) -> None:
    """Each shard's selection: (row within the shard, source index, count) of every row that enters the student."""
    offset = 0
    for s in parts:
        rows_out, idx_out, cnt_out, local = [], [], [], 0
        for t in iter_groups(s, ["index", "hard", "confidence"]):
            idx, hard, conf = column(t, "index"), column(t, "hard").astype(np.int64), column(t, "confidence")
            kept = passes_filter(conf, threshold)
            bins = conf_bins(conf)
            grow = offset + np.arange(len(idx))
            top = kept & ((bins > plan.bbin[hard]) | np.isin(grow, list(chosen) if chosen else []))
            cnt = np.where(kept, plan.base[hard], 0) + top
            sel = np.flatnonzero(cnt)
            rows_out.append(local + sel)
            idx_out.append(idx[sel])
            cnt_out.append(cnt[sel])
            local += len(idx)
            offset += len(idx)
        table = pa.table({"row": pa.array(np.concatenate(rows_out) if rows_out else np.zeros(0, np.int64)),
                          "index": pa.array(np.concatenate(idx_out) if idx_out else np.zeros(0, np.int64)),
                          "count": pa.array((np.concatenate(cnt_out) if cnt_out else np.zeros(0)).astype(np.int32))})
        with atomic_path(selection_file(s)) as tmp:
            pq.write_table(table, tmp)


def _store_stats(stats: list, counts: np.ndarray, plan: Plan, target: int | None, threshold: float, balance: bool,
                 world: int) -> dict:
    """The store's statistics from the shards' merged counts: per class predicted, kept, selected, duplicated,
    dropped (and agreement with known true labels), their totals, plus skipped images."""
    predicted = sum(z["predicted"] for z in stats)
    correct_kept = sum(z["correct_kept"] for z in stats)
    n, n_correct, n_true, skipped = (int(sum(z["scalars"][i] for z in stats)) for i in range(4))
    selected = counts * plan.base + plan.m
    per = [{"class": c, "predicted": int(predicted[c]), "kept": int(counts[c]), "selected": int(selected[c]),
            "duplicated": int(max(selected[c] - counts[c], 0)), "dropped_by_balance": int(max(counts[c] - selected[c], 0))}
           for c in range(len(counts))]
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


def select_pseudo_labels(store: Path, pc: PseudoConfig, num_classes: int, labeling: dict) -> dict:
    """After every rank labeled its shard: rank 0 filters and balances over the whole store (plan_and_select) and
    writes stats.json, with `labeling` (how the labels were made), last; every rank returns it."""
    if distributed.is_main():
        stats = plan_and_select(store, distributed.world_size(), num_classes, pc.threshold, pc.balance, pc.per_class)
        stats.update(labeling)
        write_json(store / "stats.json", stats)
    distributed.barrier()
    return read_json(store / "stats.json")


def label_and_select(teacher, source, indices: np.ndarray, store: Path, cfg: LabelConfig) -> dict:
    """Pseudo-labeling, both steps (label.label_unlabeled, then select_pseudo_labels), as the driver runs it for every
    student and benchmarks and tests run it; returns the finished store's stats.json."""
    labeling = label_unlabeled(teacher, source, indices, store, cfg)
    return select_pseudo_labels(store, cfg.pseudo, cfg.num_classes, labeling)
