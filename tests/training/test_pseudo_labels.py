"""Pseudo-labeling (training/label.py, store.py, selection.py): exact labels from an oracle teacher, exact
filter/balance counts, no noise leaks in; by value, the confidence filter exactly at its threshold with the released
code's comparison, and the balanced selection down to the images that reach the student's batches (counted by the
model itself, from the image ids written into pixel (0, 0)); a damaged Parquet row group is skipped."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from helpers import (ID_TEACHER, N_LAB, C, build_store, damage_row_group, id_teacher_probs, id_teacher_store,
    read_store, select, selected, teacher_probs, train_on_store, write_parquet)
from nsbench.config import PseudoConfig
from nsbench.data.augment import to_float
from nsbench.data.loaders import stack_uint8
from nsbench.data.sources import ArraySource
from nsbench.data.targets import dense_targets
from nsbench.data.transforms import prepare_batch
from nsbench.models import ModelSpec, build_model
from nsbench.training import label, selection, store
from nsbench.training.label import LabelConfig, topk_targets, untempered_confidence
from nsbench.training.selection import plan_and_select
from nsbench.training.store import ShardWriter, is_complete, load_selection, shard_name

LOGITS = torch.tensor([[2.0, 1.0, 0.0, -1.0], [0.0, 0.0, 3.0, 0.0], [1.0, 1.2, 0.9, 1.1],
                       [-2.0, 0.0, 0.5, 4.0], [0.3, 0.2, 0.1, 0.0], [5.0, -5.0, 0.0, 0.0]])


def job(size: int = 32, **pseudo) -> LabelConfig:
    """How a teacher labels in these tests: on the CPU, the pseudo section's `pseudo` settings."""
    return LabelConfig(PseudoConfig(**pseudo), C, size, torch.device("cpu"))


class Oracle(nn.Module):
    """Reads the image id written into pixel (0, 0) and returns fixed logits for it."""

    def forward(self, x):
        ids = (x[:, 0, 0, 0] * 255).round().long()
        return LOGITS[ids]


def oracle_source() -> ArraySource:
    n = len(LOGITS)
    images = np.zeros((n, 32, 32, 3), np.uint8)
    images[:, 0, 0, 0] = np.arange(n)
    return ArraySource("oracle", images, np.array([0, 2, 1, 3, 0, 0]), [f"c{i}" for i in range(C)])


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_oracle_soft_labels_are_softmax_of_logits_over_temperature(temperature):
    src = oracle_source()
    probs, idx, skipped = teacher_probs(Oracle(), src, np.arange(len(src)),
                                        job(temperature=temperature, batch_size=4), progress=False)
    expected = torch.softmax(LOGITS / temperature, 1).numpy()
    assert skipped == 0 and idx.tolist() == list(range(len(src)))
    np.testing.assert_allclose(probs, expected, rtol=1e-6, atol=1e-7)
    cls, val = topk_targets(probs, soft=True, k=None)
    np.testing.assert_allclose(dense_targets(cls, val, C), expected, rtol=1e-5, atol=1e-7)


def test_oracle_hard_labels_are_argmax_one_hot():
    src = oracle_source()
    probs, _, _ = teacher_probs(Oracle(), src, np.arange(len(src)), job(), progress=False)
    cls, val = topk_targets(probs, soft=False, k=None)
    assert cls[:, 0].tolist() == [0, 2, 1, 3, 0, 0]
    dense = dense_targets(cls, val, C)
    np.testing.assert_array_equal(dense, np.eye(C, dtype=np.float32)[[0, 2, 1, 3, 0, 0]])


def test_topk_keeps_largest_and_renormalises():
    probs = torch.softmax(LOGITS, 1).numpy()
    cls, val = topk_targets(probs, soft=True, k=2)
    assert cls.shape == (6, 2)
    assert cls[1, 0] == 2 and cls[3, 0] == 3
    dense = dense_targets(cls, val, C)
    np.testing.assert_allclose(dense.sum(1), 1.0, rtol=1e-6)
    assert (dense > 0).sum(1).tolist() == [2] * 6


def test_filter_and_balance_give_exact_per_class_counts(tmp_path):
    # class 0: 6 images, class 1: 2 images, class 2: 3 images (one below threshold), class 3: none
    hard = np.array([0, 0, 0, 0, 0, 0, 1, 1, 2, 2, 2])
    conf = np.array([.9, .8, .7, .6, .5, .95, .6, .4, .9, .2, .7])
    stats, rows = selected(tmp_path, conf, hard, np.full(len(hard), -1), 4, True, 4, threshold=0.3)
    positions = np.array(rows)
    per = {p["class"]: p for p in stats["per_class"]}
    assert stats["n_filtered"] == 1 and stats["n_kept"] == 10
    assert [per[c]["selected"] for c in range(4)] == [4, 4, 4, 0]
    assert [per[c]["duplicated"] for c in range(4)] == [0, 2, 2, 0]
    assert per[0]["dropped_by_balance"] == 2
    # class 0 keeps its four most confident: rows 5 (.95), 0 (.9), 1 (.8), 2 (.7)
    assert sorted(positions[np.isin(positions, np.arange(6))].tolist()) == [0, 1, 2, 5]
    # class 1 (two images) repeats both twice; class 2 (two kept) repeats both twice
    assert sorted(positions[hard[positions] == 1].tolist()) == [6, 6, 7, 7]
    assert sorted(positions[hard[positions] == 2].tolist()) == [8, 8, 10, 10]
    assert 9 not in positions  # below the threshold


def test_balance_target_mean_and_uneven_duplication(tmp_path):
    hard = np.array([0] * 5 + [1] * 2)
    conf = np.array([.9, .9, .9, .9, .9, .8, .7])
    stats, rows = selected(tmp_path / "mean", conf, hard, np.full(7, -1), 2, True, "mean", threshold=0.3)
    assert stats["per_class_target"] == 4  # round(mean(5, 2)) = round(3.5) = 4
    per = stats["per_class"]
    assert per[1]["selected"] == 4 and [r for r in rows if r >= 5] == [5, 5, 6, 6]
    _, rows5 = selected(tmp_path / "five", conf, hard, np.full(7, -1), 2, True, 5, threshold=0.3)
    # 5 = 2 whole repeats + the single most confident once more
    assert [r for r in rows5 if r >= 5] == [5, 5, 5, 6, 6]


def test_no_balance_keeps_filtered_set_and_reports_agreement(tmp_path):
    hard = np.array([0, 1, 1, 2])
    conf = np.array([.9, .2, .8, .5])
    stats, rows = selected(tmp_path, conf, hard, np.array([0, 1, 2, 2]), 3, False, "mean", threshold=0.3)
    assert rows == [0, 2, 3]
    assert stats["agreement_all"] == pytest.approx(0.75)
    assert stats["agreement_kept"] == pytest.approx(2 / 3)


def test_noise_does_not_leak_into_pseudo_labeling():
    """A noisy teacher (dropout 0.5, stochastic depth 0.5) left in train mode must still label un-noised."""
    spec = ModelSpec("test_efficientnet", num_classes=C, drop_rate=0.5, drop_path_rate=0.5)
    teacher = build_model(spec).train()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (24, 28, 28, 1), dtype=np.uint8)
    src = ArraySource("noise", images, np.zeros(24, np.int64), [str(i) for i in range(C)])
    a, _, _ = teacher_probs(teacher, src, np.arange(24), job(batch_size=8), progress=False)
    b, _, _ = teacher_probs(teacher, src, np.arange(24), job(batch_size=8), progress=False)
    np.testing.assert_array_equal(a, b)  # dropout or stochastic depth would make two passes differ
    assert teacher.training  # the caller's mode is restored
    with torch.no_grad():  # the same numbers as eval mode on the clean, un-augmented images
        clean = to_float(stack_uint8(prepare_batch(images, 32)))
        ref = torch.softmax(teacher.eval()(clean), 1).numpy()
    np.testing.assert_allclose(a, ref, rtol=1e-5, atol=1e-6)
    import copy

    noisy = torch.softmax(copy.deepcopy(teacher).train()(clean), 1).detach().numpy()  # a copy: BN stats would move
    assert not np.allclose(noisy, ref, atol=1e-4)  # the noise is real, so the check above means something
    # the production path: the store written by build_store holds the same un-noised probabilities
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        build_store(teacher.train(), src, np.arange(24), Path(d), num_classes=C, size=32, device=torch.device("cpu"),
                      soft=True, temperature=1.0, topk=None, threshold=0.0, balance=False, per_class="mean", batch_size=8)
        store = read_store(Path(d))
    dense = dense_targets(store["topk_class"], store["topk_prob"], C)
    np.testing.assert_allclose(dense[np.argsort(store["index"])], ref, rtol=1e-5, atol=1e-6)


def test_store_round_trip(tmp_path):
    src = oracle_source()
    stats = build_store(Oracle(), src, np.arange(len(src)), tmp_path / "store", num_classes=C, size=32,
                          device=torch.device("cpu"), soft=True, temperature=1.0, topk=None, threshold=0.3,
                          balance=False, per_class="mean", batch_size=4)
    assert is_complete(tmp_path / "store")
    probs = torch.softmax(LOGITS, 1).numpy()
    expected_rows = np.flatnonzero(probs.max(1) >= 0.3)
    assert stats["n_kept"] == len(expected_rows)
    idx, targets = load_selection(tmp_path / "store", C)
    assert sorted(idx.tolist()) == expected_rows.tolist()
    for k, i in enumerate(idx):
        np.testing.assert_allclose(targets.dense(k), probs[i], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("balance,per_class,threshold", [(True, "mean", 0.3), (True, 7, 0.5), (False, "mean", 0.2),
                                                          (True, "max", 0.0)])
def test_streaming_balance_from_shard_statistics_equals_in_memory_select(tmp_path, monkeypatch, balance, per_class, threshold):
    """Three shards with small row groups and many exact ties: the histogram plan must match `select` exactly."""
    import nsbench.training.store as pseudo_store

    monkeypatch.setattr(pseudo_store, "ROW_GROUP", 16)
    rng = np.random.default_rng(0)
    n, c = 300, 5
    conf = np.round(rng.random(n).astype(np.float32), 2)  # coarse values: ties within and across bins
    hard = rng.choice(c, n, p=[0.5, 0.2, 0.15, 0.1, 0.05])
    true = np.where(rng.random(n) < 0.8, hard, (hard + 1) % c)
    bounds = [0, 90, 200, n]
    for r in range(3):
        w = ShardWriter(tmp_path / shard_name(r, 3), c, threshold)
        for s in range(bounds[r], bounds[r + 1], 25):
            e = min(s + 25, bounds[r + 1])
            cls = np.stack([hard[s:e], (hard[s:e] + 1) % c], 1).astype(np.int32)
            val = np.stack([conf[s:e], 1 - conf[s:e]], 1).astype(np.float32)
            w.add(np.arange(s, e) + 1000, cls, val, conf[s:e], true[s:e])
        w.close(0, 2)
    stats = plan_and_select(tmp_path, 3, c, threshold, balance, per_class)
    ref = select(conf, hard, c, threshold, balance, per_class, true)
    got = []
    for r in range(3):
        import pyarrow.parquet as pq

        sel = pq.read_table(tmp_path / shard_name(r, 3).replace("labels-", "selection-")).to_pydict()
        got += [i - 1000 for i, k in zip(sel["index"], sel["count"]) for _ in range(k)]
    assert sorted(got) == sorted(ref.positions.tolist())
    for key in ("n_kept", "n_filtered", "n_selected", "n_duplicated", "per_class_target"):
        assert stats[key] == ref.stats[key], key
    assert [p["selected"] for p in stats["per_class"]] == [p["selected"] for p in ref.stats["per_class"]]
    assert stats["agreement_kept"] == pytest.approx(ref.stats["agreement_kept"])


@pytest.mark.parametrize("filter_on", ["untempered", "tempered"])
def test_filter_reads_the_probabilities_the_released_code_uses(tmp_path, filter_on):
    """At temperature 2 the targets are softmax(logits / 2); the filter reads softmax(logits) (the code's
    predict_label.py / filter_unlabel.py) unless filter_on=tempered."""
    src, T, thr = oracle_source(), 2.0, 0.5
    stats = build_store(Oracle(), src, np.arange(len(src)), tmp_path / "store", num_classes=C, size=32,
                          device=torch.device("cpu"), soft=True, temperature=T, topk=None, threshold=thr,
                          balance=False, per_class="mean", batch_size=4, filter_on=filter_on)
    plain, tempered = torch.softmax(LOGITS, 1).numpy(), torch.softmax(LOGITS / T, 1).numpy()
    expected = np.flatnonzero((plain if filter_on == "untempered" else tempered).max(1) >= thr)
    other = np.flatnonzero((tempered if filter_on == "untempered" else plain).max(1) >= thr)
    assert expected.tolist() != other.tolist()  # the two filters disagree on these logits, so the check bites
    idx, targets = load_selection(tmp_path / "store", C)
    assert stats["n_kept"] == len(expected) and sorted(idx.tolist()) == expected.tolist()
    for k, i in enumerate(idx):  # targets stay tempered either way
        np.testing.assert_allclose(targets.dense(k), tempered[i], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(untempered_confidence(tempered, T), plain.max(1), rtol=1e-5)


# per_class = 5, by hand: a class with k < 5 kept images repeats all of them 5 // k times, then its 5 % k most
# confident once more (filter_unlabel.py's upsampling to a per-class count, made deterministic)
EXPECTED_USES = {10: 1, 11: 2, 12: 1, 13: 1,  # class 0: 4 kept -> all once, the most confident (11) twice
                 16: 3, 17: 2,  # class 1: 2 kept -> both twice, 16 once more
                 18: 3, 19: 2,  # class 2
                 20: 3, 21: 2}  # class 3


def test_the_filter_keeps_a_confidence_exactly_at_the_threshold_as_the_released_code_does(tmp_path):
    """filter_unlabel.py (google-research/noisystudent c5ae652, get_keep_image_idx) keeps an image when
    `prob >= selected_threshold`: equality is kept, the next float below is not."""
    src, stats = id_teacher_store(tmp_path, soft=True)
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
    src, stats = id_teacher_store(tmp_path, soft=True)
    assert stats["per_class_target"] == 5 and stats["n_selected"] == 20 and stats["n_duplicated"] == 10
    seen, _ = train_on_store(tmp_path, src, smoothing=0.0, pseudo_smoothing=0.0, weight=1.0)
    # one epoch: 2 steps of 5 labeled + 10 pseudo-labeled = the whole selection once
    assert [len(ids) for ids, _ in seen] == [15, 15]
    ids = np.concatenate([i for i, _ in seen])
    uses = {int(i): int(n) for i, n in zip(*np.unique(ids[ids >= N_LAB], return_counts=True))}
    assert uses == EXPECTED_USES
    assert sorted(ids[ids < N_LAB].tolist()) == list(range(N_LAB))  # every labeled image once
    for step_ids, _ in seen:  # labeled rows first in every batch
        assert (step_ids[:5] < N_LAB).all() and (step_ids[5:] >= N_LAB).all()


def test_store_statistics_by_hand(tmp_path):
    _, stats = id_teacher_store(tmp_path, soft=True)
    # predicted classes: ids 10-15 -> 0, 16-17 -> 1, 18-19 -> 2, 20-21 -> 3; true labels are id % 4
    assert [p["predicted"] for p in stats["per_class"]] == [6, 2, 2, 2]
    assert [p["kept"] for p in stats["per_class"]] == [4, 2, 2, 2]
    pred = {i: int(np.argmax(ID_TEACHER[i])) for i in ID_TEACHER}
    right = [i for i in ID_TEACHER if pred[i] == i % C]
    assert stats["agreement_all"] == pytest.approx(len(right) / 12)
    kept = [i for i in ID_TEACHER if i not in (14, 15)]
    assert stats["agreement_kept"] == pytest.approx(sum(pred[i] == i % C for i in kept) / 10)
    assert 0 < len(right) < 12  # the fixture has right and wrong pseudo-labels
    assert stats["mean_confidence"] == pytest.approx(np.mean([id_teacher_probs(i).max() for i in ID_TEACHER]), rel=1e-6)


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


@pytest.mark.usefixtures("fresh_log_handlers")
def test_pseudo_labeling_an_unlabeled_parquet_source_skips_a_damaged_row_group(tmp_path):
    from nsbench.data.sources import open_source
    from nsbench.config import PseudoConfig
    from nsbench.training.label import LabelConfig

    path = write_parquet(tmp_path / "unl", [None] * 12)  # unlabeled
    damage_row_group(path, 2)
    src = open_source(f"parquet:{tmp_path / 'unl'}", "train")
    cfg = LabelConfig(PseudoConfig(batch_size=4), num_classes=4, size=32, device=torch.device("cpu"))
    probs, idx, skipped = teacher_probs(build_model(ModelSpec("test_resnet", num_classes=4)), src, np.arange(12), cfg,
                                        progress=False)
    assert idx.tolist() == list(range(8)) and skipped == 4 and probs.shape == (8, 4)
