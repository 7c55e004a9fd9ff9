"""Pseudo-labeling: exact labels from an oracle teacher, exact filter/balance counts, no noise leaks in."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nsbench.config import PseudoConfig
from nsbench.data.augment import to_float
from nsbench.data.loaders import stack_uint8
from nsbench.data.sources import ArraySource
from nsbench.data.targets import dense_targets
from nsbench.data.transforms import prepare_batch
from nsbench.models import ModelSpec, build_model
from nsbench.training.label import LabelConfig, label_unlabeled, teacher_batches, topk_targets, untempered_confidence
from nsbench.training.selection import plan_and_select, select_pseudo_labels
from nsbench.training.store import ShardWriter, column, is_complete, load_selection, shard_name, shard_paths
from nsbench.utils import read_json
from test_values_training import select, selected

C = 4
LOGITS = torch.tensor([[2.0, 1.0, 0.0, -1.0], [0.0, 0.0, 3.0, 0.0], [1.0, 1.2, 0.9, 1.1],
                       [-2.0, 0.0, 0.5, 4.0], [0.3, 0.2, 0.1, 0.0], [5.0, -5.0, 0.0, 0.0]])


def teacher_probs(model: nn.Module, source, indices: np.ndarray, cfg: LabelConfig,
                  progress: bool = True) -> tuple[np.ndarray, np.ndarray, int]:
    """All of label.teacher_batches at once: (probs [n, C], indices [n], n_skipped)."""
    probs, idxs, skipped = [], [], 0
    for p, i, sk in teacher_batches(model, source, indices, cfg, progress):
        skipped += sk
        if len(i):
            probs.append(p)
            idxs.append(i)
    if not probs:
        return np.zeros((0, 0), np.float32), np.zeros(0, np.int64), skipped
    return np.concatenate(probs), np.concatenate(idxs), skipped


def read_store(store: Path, columns: list[str] | None = None) -> dict[str, np.ndarray]:
    """A store's shards concatenated (only `columns`), the whole store in memory."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    shards = shard_paths(store, read_json(store / "stats.json")["world_size"])
    table = pa.concat_tables([pq.read_table(s, columns=columns) for s in shards])
    return {name: column(table, name) for name in table.column_names}


def job(size: int = 32, **pseudo) -> LabelConfig:
    """How a teacher labels in these tests: on the CPU, the pseudo section's `pseudo` settings."""
    return LabelConfig(PseudoConfig(**pseudo), C, size, torch.device("cpu"))


def build_store(teacher, src, indices, store, *, num_classes, size, device, **pseudo):
    """Label, then select, as the driver does (label.py, then selection.py); the store's stats.json."""
    job = LabelConfig(PseudoConfig(**pseudo), num_classes, size, device)
    return select_pseudo_labels(store, job.pseudo, num_classes, label_unlabeled(teacher, src, indices, store, job))


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
