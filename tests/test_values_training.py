"""Value tests for what the student trains on: the losses and their weights by value, the confidence filter exactly
at its threshold with the released code's comparison, and the balanced selection down to the images that reach the
student's batches (counted by the model itself, from the image ids written into pixel (0, 0))."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

from nsbench.config import NSConfig, OptimConfig, PseudoConfig, RuntimeConfig, TrainConfig
from nsbench.data.loaders import ImageDataset
from nsbench.data.sources import ArraySource
from nsbench.training import label, selection, store
from nsbench.training.label import LabelConfig
from nsbench.training.stage import StageConfig, soft_cross_entropy, train_stage, unlabeled_weight

C = 4
INF = float("inf")
N_LAB = 10  # ids 0..9 labeled; 10..21 unlabeled
# teacher logits per unlabeled id -> (predicted class, top probability); threshold 0.5
TEACHER = {
    10: [0, 0, -INF, -INF],  # class 0 (tie: the first), 0.5 exactly: kept (>=)
    11: [0, -INF, -INF, -INF],  # class 0, 1.0
    12: [3, 0, 0, 0],  # class 0, e^3 / (e^3 + 3) = 0.870
    13: [2, 0, 0, 0],  # class 0, 0.711
    14: [1, 0, 0, 0],  # class 0, 0.475: filtered
    15: [0, 0, 0, 0],  # class 0, 0.25: filtered
    16: [0, 4, 0, 0],  # class 1, 0.948
    17: [0, 2.5, 0, 0],  # class 1, 0.802
    18: [0, 0, 2, 0],  # class 2, 0.711
    19: [-INF, -INF, 0, 0],  # class 2, 0.5 exactly: kept
    20: [-INF, -INF, -INF, 0],  # class 3, 1.0
    21: [0, 0, 0, 1.5],  # class 3, 0.599
}
# per_class = 5, by hand: a class with k < 5 kept images repeats all of them 5 // k times, then its 5 % k most
# confident once more (filter_unlabel.py's upsampling to a per-class count, made deterministic)
EXPECTED_USES = {10: 1, 11: 2, 12: 1, 13: 1,  # class 0: 4 kept -> all once, the most confident (11) twice
                 16: 3, 17: 2,  # class 1: 2 kept -> both twice, 16 once more
                 18: 3, 19: 2,  # class 2
                 20: 3, 21: 2}  # class 3


class Teacher(nn.Module):
    def forward(self, x):
        ids = (x[:, 0, 0, 0] * 255).round().long()
        table = torch.zeros(32, C)
        for i, row in TEACHER.items():
            table[i] = torch.tensor(row)
        return table[ids]


class Recorder(nn.Module):
    """A linear student that records, per forward, the image ids it was given and the logits it returned."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.lin = nn.Linear(3 * 32 * 32, C)
        with torch.no_grad():
            self.lin.weight.copy_(torch.randn(C, 3 * 32 * 32, generator=g) * 0.05)
            self.lin.bias.copy_(torch.tensor([0.3, -0.2, 0.1, 0.0]))
        self.seen: list[tuple[np.ndarray, np.ndarray]] = []

    def forward(self, x):
        out = self.lin(x.flatten(1))
        self.seen.append(((x[:, 0, 0, 0] * 255).round().long().numpy(), out.detach().double().numpy()))
        return out


@dataclass
class Selection:
    positions: np.ndarray  # rows, repeated once per use (duplicates for short classes)
    stats: dict


def select(confidence: np.ndarray, hard: np.ndarray, num_classes: int, threshold: float, balance: bool,
           per_class: int | str, true_labels: np.ndarray | None = None) -> Selection:
    """The selection rule written out on arrays held in memory, the reference that the store's streaming
    `selection.plan_and_select` must reproduce: the confidence filter (`>=`, filter_unlabel.py), then per class a
    target count (an integer, or mean / median / max / min of the kept counts of the predicted classes, rounded); a
    class with more kept images keeps its most confident ones (ties: lower row first), one with fewer repeats all of
    them as many whole times as fit, then its most confident ones once more."""
    n = len(confidence)
    kept = np.flatnonzero(confidence >= threshold)
    counts = np.bincount(hard[kept], minlength=num_classes)
    nonzero = counts[counts > 0]
    if not balance:
        target = None
    elif isinstance(per_class, int):
        target = per_class
    else:
        fns = {"mean": np.mean, "median": np.median, "max": np.max, "min": np.min}
        target = int(round(float(fns[per_class](nonzero)))) if len(nonzero) else 0
    pieces, per = [], []
    for c in range(num_classes):
        rows = kept[hard[kept] == c]
        rows = rows[np.lexsort((rows, -confidence[rows]))]
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
    stats = {"n_unlabeled": int(n), "threshold": threshold, "n_filtered": int(n - len(kept)), "n_kept": int(len(kept)),
             "balance": balance, "per_class_target": target, "n_selected": int(len(positions)),
             "n_duplicated": int(sum(p["duplicated"] for p in per)),
             "mean_confidence": float(confidence.mean()) if n else 0.0, "per_class": per}
    if true_labels is not None and n and (true_labels >= 0).all():
        stats["agreement_all"] = float((hard == true_labels).mean())
        stats["agreement_kept"] = float((hard[kept] == true_labels[kept]).mean()) if len(kept) else 0.0
        for p in per:
            rows = kept[hard[kept] == p["class"]]
            p["agreement"] = float((true_labels[rows] == p["class"]).mean()) if len(rows) else None
    return Selection(positions.astype(np.int64), stats)


def source() -> ArraySource:
    images = np.zeros((22, 32, 32, 3), np.uint8)
    images[:, 0, 0, 0] = np.arange(22)
    images[:, 5:, 5:, :] = (np.arange(22)[:, None, None, None] * 11) % 256  # something for the student to read
    labels = np.arange(22) % C
    return ArraySource("ids", images, labels, [f"c{i}" for i in range(C)])


def teacher_probs(i: int) -> np.ndarray:
    z = np.asarray(TEACHER[i], float)
    p = np.exp(z - z.max())
    return p / p.sum()


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


# ---------------------------------------------------------------- losses by value

def test_soft_cross_entropy_by_hand():
    logits = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    target = torch.tensor([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])
    ls = log_softmax(logits.double().numpy())
    expect = -np.mean([(target[0].numpy() * ls[0]).sum(), math.log(1 / 3)])
    assert float(soft_cross_entropy(logits, target)) == pytest.approx(expect, abs=1e-6)
    # a one-hot target is the plain cross-entropy
    hard = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    assert float(soft_cross_entropy(logits, hard)) == pytest.approx(
        float(nn.functional.cross_entropy(logits, torch.tensor([2, 1]))), abs=1e-6)
    # bf16 logits are scored in float32
    assert soft_cross_entropy(logits.bfloat16(), target).dtype == torch.float32


@pytest.mark.parametrize("loss_weighting,ratio,weight,expect", [("ratio", 3, 1.0, 3.0), ("ratio", 2, 0.5, 1.0),
                                                                ("paper", 3, 2.0, 2.0)])
def test_unlabeled_weight(loss_weighting, ratio, weight, expect):
    cfg = TrainConfig(ns=NSConfig(unlabeled_ratio=ratio, unlabeled_loss_weight=weight, loss_weighting=loss_weighting))
    assert unlabeled_weight(cfg) == expect


def _store(tmp_path, soft: bool):
    src = source()
    cfg = LabelConfig(PseudoConfig(soft=soft, temperature=1.0, topk=None, threshold=0.5, balance=True, per_class=5,
                                   batch_size=5), num_classes=C, size=32, device=torch.device("cpu"))
    stats = selection.label_and_select(Teacher(), src, np.arange(N_LAB, 22), tmp_path / "store", cfg)
    return src, stats


def _train(tmp_path, src, *, smoothing, pseudo_smoothing, weight):
    idx, targets = store.load_selection(tmp_path / "store", C)
    labeled = ImageDataset(src, np.arange(N_LAB), 32)
    pseudo = ImageDataset(src, idx, 32, targets=targets)
    model = Recorder()
    extra = {"pseudo_smoothing": pseudo_smoothing} if pseudo_smoothing else {}  # the default: no smoothing
    _, hist = train_stage(model, StageConfig(name="s", optim=OptimConfig(epochs=1, batch_size=5, lr=0.01, warmup_epochs=0,
                                                                         weight_decay=0.0, label_smoothing=smoothing),
                                             runtime=RuntimeConfig(device="cpu", channels_last=False), labeled=labeled,
                                             pseudo=pseudo, ratio=2, unlabeled_weight=weight, val=None,
                                             device=torch.device("cpu"), state_path=tmp_path / "state.pt", seed=0,
                                             **extra))
    return model.seen, hist[0]


def test_the_filter_keeps_a_confidence_exactly_at_the_threshold_as_the_released_code_does(tmp_path):
    """filter_unlabel.py (google-research/noisystudent c5ae652, get_keep_image_idx) keeps an image when
    `prob >= selected_threshold`: equality is kept, the next float below is not."""
    src, stats = _store(tmp_path, soft=True)
    assert stats["n_kept"] == 10 and stats["n_filtered"] == 2  # ids 14 and 15
    idx, _ = store.load_selection(tmp_path / "store", C)
    assert {10, 19} <= set(idx.tolist()) and not {14, 15} & set(idx.tolist())
    # one float below the threshold is out, in the store (float32 confidences, bins of width 1/4096) as in the rule
    below = np.nextafter(np.float32(0.5), np.float32(0))
    conf = np.array([0.5, below, 0.9], np.float32)
    out, rows = selected(tmp_path / "s", conf, np.array([0, 1, 1]), np.array([0, 1, 1]), 2, False, "mean")
    assert rows == [0, 2] and out["n_kept"] == 2 and out["n_filtered"] == 1
    assert rows == sorted(select(conf, np.array([0, 1, 1]), 2, 0.5, False, "mean").positions.tolist())


def test_untempered_confidence_by_hand():
    z = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    plain = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    for t in (0.5, 2.0, 3.0):
        tempered = np.exp(z / t) / np.exp(z / t).sum(1, keepdims=True)
        np.testing.assert_allclose(label.untempered_confidence(tempered, t), plain.max(1), rtol=1e-6)
    np.testing.assert_array_equal(label.untempered_confidence(plain, 1.0), plain.max(1))


def test_topk_targets_by_hand():
    probs = np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]], np.float32)
    cls, val = label.topk_targets(probs, soft=False, k=None)
    assert cls.tolist() == [[1], [0]] and val.tolist() == [[1.0], [1.0]]
    cls, val = label.topk_targets(probs, soft=True, k=2)
    assert cls.tolist() == [[1, 2], [0, 2]]
    np.testing.assert_array_equal(val, np.array([[0.6, 0.3], [0.5, 0.3]], np.float32))
    cls, val = label.topk_targets(probs, soft=True, k=None)  # <= 100 classes: all of them
    assert cls.shape == (2, 3) and cls.tolist()[0] == [1, 2, 0]
    wide = np.tile(np.linspace(1, 2, 150, dtype=np.float32), (1, 1))
    assert label.topk_targets(wide, soft=True, k=None)[0].shape == (1, 10)  # > 100 classes: the top 10
    assert label.topk_targets(probs, soft=True, k=7)[0].shape == (2, 3)  # k beyond the classes: all of them


@pytest.mark.parametrize("per_class,target", [("mean", 3), ("median", 2), ("max", 6), ("min", 1), (4, 4)])
def test_balance_targets_by_hand(tmp_path, per_class, target):
    hard = np.array([0] * 6 + [1] * 2 + [2] * 1 + [3] * 2)  # kept counts 6, 2, 1, 2 -> mean 2.75, median 2
    stats, _ = selected(tmp_path, np.full(len(hard), 0.9), hard, np.full(len(hard), -1), 5, True, per_class)
    assert stats["per_class_target"] == target
    assert [p["selected"] for p in stats["per_class"]] == [target] * 4 + [0]  # class 4 never predicted
    assert stats["n_selected"] == 4 * target
    assert stats["n_duplicated"] == sum(max(target - k, 0) for k in (6, 2, 1, 2))
    assert sum(p["dropped_by_balance"] for p in stats["per_class"]) == sum(max(k - target, 0) for k in (6, 2, 1, 2))


def test_balanced_selection_reaches_the_students_batches_image_by_image(tmp_path):
    src, stats = _store(tmp_path, soft=True)
    assert stats["per_class_target"] == 5 and stats["n_selected"] == 20 and stats["n_duplicated"] == 10
    seen, _ = _train(tmp_path, src, smoothing=0.0, pseudo_smoothing=0.0, weight=1.0)
    # one epoch: 2 steps of 5 labeled + 10 pseudo-labeled = the whole selection once
    assert [len(ids) for ids, _ in seen] == [15, 15]
    ids = np.concatenate([i for i, _ in seen])
    uses = {int(i): int(n) for i, n in zip(*np.unique(ids[ids >= N_LAB], return_counts=True))}
    assert uses == EXPECTED_USES
    assert sorted(ids[ids < N_LAB].tolist()) == list(range(N_LAB))  # every labeled image once
    for step_ids, _ in seen:  # labeled rows first in every batch
        assert (step_ids[:5] < N_LAB).all() and (step_ids[5:] >= N_LAB).all()


@pytest.mark.parametrize("soft", [True, False])
def test_the_training_loss_is_the_weighted_sum_by_value(tmp_path, soft):
    """Epoch loss = mean over steps (weighted by batch size) of CE_smoothed(labeled) + w x softCE(pseudo), each
    recomputed here from the logits the student returned and the ids it was given."""
    src, _ = _store(tmp_path, soft=soft)
    ls, ps, w = 0.1, 0.0 if soft else 0.2, 3.0
    seen, row = _train(tmp_path, src, smoothing=ls, pseudo_smoothing=ps, weight=w)
    labels = src.labels
    total, count = 0.0, 0
    for ids, z in seen:
        lab, uns = ids < N_LAB, ids >= N_LAB
        lsm = log_softmax(z)
        # torch's label smoothing: (1 - e) CE(y) + e mean_j(-log p_j)
        ce_l = np.mean((1 - ls) * -lsm[lab, labels[ids[lab]]] + ls * -lsm[lab].mean(1))
        if soft:
            t = np.stack([teacher_probs(i) for i in ids[uns]])
        else:
            t = np.eye(C)[[int(np.argmax(TEACHER[i])) for i in ids[uns]]]
        t = t * (1 - ps) + ps / C
        ce_u = np.mean(-(t * lsm[uns]).sum(1))
        total += (ce_l + w * ce_u) * len(ids)
        count += len(ids)
    assert row["train_loss"] == pytest.approx(total / count, rel=1e-5)
    assert row["skipped"] == 0 and row["steps"] == 2
    assert row["images"] == 30 and row["images_per_s"] == pytest.approx(row["images"] / row["seconds"], rel=1e-6)


def test_the_loss_of_a_one_image_epoch(tmp_path):
    """One labeled image, no pseudo-labels: the epoch's loss is that image's cross-entropy (seen = 1)."""
    src = source()
    model = Recorder()
    _, hist = train_stage(model, StageConfig(name="one", optim=OptimConfig(epochs=1, batch_size=1, warmup_epochs=0),
                                             runtime=RuntimeConfig(device="cpu", channels_last=False),
                                             labeled=ImageDataset(src, np.array([3]), 32), unlabeled_weight=1.0,
                                             device=torch.device("cpu"), state_path=tmp_path / "state.pt", seed=0))
    (ids, z), = model.seen
    assert ids.tolist() == [3]
    assert hist[0]["train_loss"] == pytest.approx(-log_softmax(z)[0, src.labels[3]], rel=1e-5)


def test_store_statistics_by_hand(tmp_path):
    _, stats = _store(tmp_path, soft=True)
    # predicted classes: ids 10-15 -> 0, 16-17 -> 1, 18-19 -> 2, 20-21 -> 3; true labels are id % 4
    assert [p["predicted"] for p in stats["per_class"]] == [6, 2, 2, 2]
    assert [p["kept"] for p in stats["per_class"]] == [4, 2, 2, 2]
    pred = {i: int(np.argmax(TEACHER[i])) for i in TEACHER}
    right = [i for i in TEACHER if pred[i] == i % C]
    assert stats["agreement_all"] == pytest.approx(len(right) / 12)
    kept = [i for i in TEACHER if i not in (14, 15)]
    assert stats["agreement_kept"] == pytest.approx(sum(pred[i] == i % C for i in kept) / 10)
    assert 0 < len(right) < 12  # the fixture has right and wrong pseudo-labels
    assert stats["mean_confidence"] == pytest.approx(np.mean([teacher_probs(i).max() for i in TEACHER]), rel=1e-6)


def test_select_statistics_and_targets_at_their_edges(tmp_path):
    hard, unknown = np.array([0, 0, 1, 1, 1]), np.full(5, -1)
    stats, _ = selected(tmp_path / "a", np.full(5, 0.9), hard, unknown, 3, True, 2)
    assert [p["predicted"] for p in stats["per_class"]] == [2, 3, 0]
    one, _ = selected(tmp_path / "b", np.full(5, 0.9), np.zeros(5, int), unknown, 2, True, "mean")
    assert one["per_class_target"] == 5  # a single predicted class: its own count
    none, _ = selected(tmp_path / "c", np.full(5, 0.1), hard, unknown, 2, True, "mean")
    assert none["per_class_target"] == 0 and none["n_selected"] == 0
    with pytest.raises(Exception, match="must be positive"):
        selected(tmp_path / "d", np.full(5, 0.9), hard, unknown, 2, True, 0)


@pytest.mark.parametrize("classes,expect", [(100, 100), (101, 10)])
def test_topk_keeps_every_class_up_to_100(classes, expect):
    probs = np.full((1, classes), 1 / classes, np.float32)
    assert label.topk_targets(probs, soft=True, k=None)[0].shape == (1, expect)


def test_an_empty_shard_selects_nothing(tmp_path):
    import pyarrow.parquet as pq

    store.ShardWriter(tmp_path / store.shard_name(0, 2), 2, 0.5).close(0, 1)
    w = store.ShardWriter(tmp_path / store.shard_name(1, 2), 2, 0.5)
    w.add(np.arange(3), np.array([[0], [1], [1]], np.int32), np.ones((3, 1), np.float32),
          np.array([0.9, 0.8, 0.7], np.float32), np.array([0, 1, 0]))
    w.close(0, 1)
    stats = selection.plan_and_select(tmp_path, 2, 2, 0.5, False, "mean")
    assert stats["n_selected"] == 3 and stats["agreement_all"] == pytest.approx(2 / 3)
    empty = pq.read_table(tmp_path / store.shard_name(0, 2).replace("labels-", "selection-"))
    assert empty.num_rows == 0
    full = pq.read_table(tmp_path / store.shard_name(1, 2).replace("labels-", "selection-")).to_pydict()
    assert full["row"] == [0, 1, 2] and full["count"] == [1, 1, 1]


def selected(tmp_path, conf, hard, true, classes, balance, per_class, threshold=0.5):
    """The store's selection of one shard holding rows 0..n-1 (`conf`, `hard`, `true`), as the driver makes it
    (selection.plan_and_select): its statistics and the selected rows, sorted, each repeated once per use."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    w = store.ShardWriter(tmp_path / store.shard_name(0, 1), classes, threshold)
    n = len(conf)
    w.add(np.arange(n), hard[:, None].astype(np.int32), np.ones((n, 1), np.float32), conf.astype(np.float32), true)
    w.close(0, 1)
    import pyarrow.parquet as pq

    stats = selection.plan_and_select(tmp_path, 1, classes, threshold, balance, per_class)
    sel = pq.read_table(tmp_path / store.shard_name(0, 1).replace("labels-", "selection-")).to_pydict()
    return stats, sorted(i for i, k in zip(sel["index"], sel["count"]) for _ in range(k))


def test_streaming_balance_keeps_the_most_confident_inside_one_histogram_bin(tmp_path):
    # class 0: four confidences inside one bin of width 1/4096 ([0.89990, 0.90015)); target 2: the two highest
    conf = np.array([0.90001, 0.90014, 0.90008, 0.90012, 0.95, 0.6], np.float32)
    hard = np.array([0, 0, 0, 0, 1, 1])
    assert len(set(store.conf_bins(conf[:4]).tolist())) == 1
    stats, rows = selected(tmp_path, conf, hard, np.array([0, 0, 1, 0, 1, 0]), 2, True, 2)
    assert rows == [1, 3, 4, 5]
    assert rows == sorted(select(conf, hard, 2, 0.5, True, 2).positions.tolist())
    per = stats["per_class"]
    assert [p["dropped_by_balance"] for p in per] == [2, 0] and [p["duplicated"] for p in per] == [0, 0]
    assert [p["agreement"] for p in per] == [pytest.approx(3 / 4), pytest.approx(1 / 2)]


def test_per_class_one_and_per_class_agreement(tmp_path):
    conf = np.array([0.9, 0.8, 0.7, 0.95], np.float32)
    hard, true = np.array([0, 0, 0, 1]), np.array([0, 1, 0, 0])
    stats, rows = selected(tmp_path, conf, hard, true, 2, True, 1)
    assert rows == [0, 3] and stats["per_class_target"] == 1
    assert [p["agreement"] for p in stats["per_class"]] == [pytest.approx(2 / 3), 0.0]
    assert [p["dropped_by_balance"] for p in stats["per_class"]] == [2, 0]
    assert rows == sorted(select(conf, hard, 2, 0.5, True, 1, true_labels=true).positions.tolist())


def test_streaming_balance_at_adjacent_bins_and_the_top_bin(tmp_path):
    """The boundary bin's quota subtracts the rows above it: a row in the next bin up (class 0) and in the very top
    bin (class 1, confidence >= 4095 / 4096) must not be counted twice; class 2 has one kept row, repeated."""
    conf = np.array([0.9003, 0.90001, 0.90008, 0.99999, 0.9996, 0.99961, 0.7], np.float32)
    hard = np.array([0, 0, 0, 1, 1, 1, 2])
    assert store.conf_bins(conf).tolist() == [3687, 3686, 3686, 4095, 4094, 4094, 2867]
    stats, rows = selected(tmp_path, conf, hard, np.full(7, -1), 3, True, 2)
    assert rows == [0, 2, 3, 5, 6, 6]
    assert rows == sorted(select(conf, hard, 3, 0.5, True, 2).positions.tolist())
    assert "agreement_all" not in stats  # unknown true labels (-1): no agreement reported
    _, rows3 = selected(tmp_path / "three", conf, hard, np.full(7, -1), 3, True, 3)
    assert rows3 == sorted(select(conf, hard, 3, 0.5, True, 3).positions.tolist()) == [0, 1, 2, 3, 4, 5, 6, 6, 6]


def test_selected_rows_point_at_their_own_targets_across_row_groups(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "ROW_GROUP", 2)
    n = 7
    conf = np.linspace(0.95, 0.6, n).astype(np.float32)
    hard = np.arange(n) % 2
    cls = np.stack([hard, 1 - hard], 1).astype(np.int32)
    val = np.stack([conf, 1 - conf], 1).astype(np.float32)  # each row's own target
    (tmp_path / "st").mkdir()
    w = store.ShardWriter(tmp_path / "st" / store.shard_name(0, 1), 2, 0.5)
    for s in range(0, n, 2):
        w.add(np.arange(s, min(s + 2, n)) + 100, cls[s:s + 2], val[s:s + 2], conf[s:s + 2], np.full(len(conf[s:s + 2]), -1))
    w.close(0, 2)
    from nsbench.utils import write_json

    stats = selection.plan_and_select(tmp_path / "st", 1, 2, 0.5, True, 5)
    write_json(tmp_path / "st" / "stats.json", stats)
    idx, targets = store.load_selection(tmp_path / "st", 2)
    assert sorted(idx.tolist()) == sorted(select(conf, hard, 2, 0.5, True, 5).positions + 100)
    for k, i in enumerate(idx):
        r = i - 100
        np.testing.assert_allclose(targets.dense(k)[[hard[r], 1 - hard[r]]], [conf[r], 1 - conf[r]], rtol=1e-6)


def test_empty_and_all_filtered_sets_report_zero(tmp_path):
    stats, rows = selected(tmp_path, np.full(3, 0.2), np.array([0, 1, 1]), np.array([0, 1, 1]), 2, True, "mean")
    assert rows == [] and stats["agreement_kept"] == 0.0 and stats["agreement_all"] == 1.0
    (tmp_path / "none").mkdir()
    store.ShardWriter(tmp_path / "none" / store.shard_name(0, 1), 2, 0.5).close(0, 1)
    none = selection.plan_and_select(tmp_path / "none", 1, 2, 0.5, True, "mean")
    assert none["n_unlabeled"] == 0 and none["mean_confidence"] == 0.0 and "agreement_all" not in none
    assert none["n_selected"] == 0
