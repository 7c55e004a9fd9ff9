"""training/batches.py by value, on small in-memory arrays (no training): MixedDataset puts the pseudo-labeled items
after the labeled ones (index n_labeled is the first pseudo-labeled item; its length is the two sets' sizes added);
a step whose two sets pad to different shapes falls back to item-by-item collation; collate_mixed puts the labeled
rows first, counts unreadable items as skipped and densifies top-k soft targets renormalised to sum to one (worked
by hand); a Batch starts at epoch 0, step 0, not augmented, MixedCollate's default seed is 0 and its noise comes from
the step's generator; `pin_memory` pins the tensors a Batch holds and nothing else; `decode_on` drops the images
that fail to decode with their targets and adds them to `skipped`. MixedBatchSampler, against its docstring: each
epoch's labeled indices are one seeded permutation repeated as needed, the pseudo-labeled ones their own (offset
by n_labeled), a set of size 0 or a batch of 0 contributes nothing, the default is one process (rank 0 of 1), and
ranks r of N together see exactly the batches of one process with N times the batch size."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nsbench.data.augment import step_generator
from nsbench.data.loaders import ImageDataset, pack_parts
from nsbench.data.sources import ArraySource
from nsbench.data.targets import TopKTargets
from nsbench.training.batches import Batch, MixedBatchSampler, MixedCollate, MixedDataset, collate_mixed


def source(n: int, channels: int = 3, start: int = 0) -> ArraySource:
    """n small images whose pixels all equal start + their index (so each image says which it is)."""
    shape = (n, 4, 4) if channels == 1 else (n, 4, 4, channels)
    images = (start + np.arange(n, dtype=np.uint8)).reshape(-1, *[1] * (len(shape) - 1)) * np.ones(shape, np.uint8)
    return ArraySource("t", images.astype(np.uint8), np.arange(n) % 3, ["a", "b", "c"])


def mixed(n_lab: int = 3, n_pseudo: int = 2, channels_pseudo: int = 3, targets=None) -> MixedDataset:
    lab = ImageDataset(source(n_lab), np.arange(n_lab), 4)
    if n_pseudo is None:
        return MixedDataset(lab, None)
    soft = targets if targets is not None else np.eye(3, dtype=np.float32)[np.arange(n_pseudo) % 3]
    pseudo = ImageDataset(source(n_pseudo, channels_pseudo, start=100), np.arange(n_pseudo), 4, targets=soft)
    return MixedDataset(lab, pseudo)


# ---- MixedDataset

def test_the_dataset_holds_the_labeled_then_the_pseudo_labeled_items():
    assert len(mixed(3, 2)) == 5
    assert len(mixed(3, None)) == 3  # the teacher's: no pseudo-labeled part
    ds = mixed(3, 2)
    last_labeled, first_pseudo = ds[2], ds[3]
    assert last_labeled[4] is True and int(last_labeled[0][0, 0, 0]) == 2 and last_labeled[2] == 2
    assert first_pseudo[4] is False and int(first_pseudo[0][0, 0, 0]) == 100 and first_pseudo[2] == 0
    assert ds[4][2] == 1


def test_a_step_of_grey_labeled_and_rgb_pseudo_images_is_collated_item_by_item():
    """The labeled images keep one channel when padded, the pseudo-labeled three: no one array holds both, so the
    step goes item by item and the grey rows are expanded to three equal channels at batching."""
    lab = ImageDataset(source(3, channels=1), np.arange(3), 4)
    pseudo = ImageDataset(source(2, 3, start=100), np.arange(2), 4, targets=np.eye(3, dtype=np.float32)[[0, 1]])
    ds = MixedDataset(lab, pseudo)
    epoch, step, items = ds.__getitems__((1, 2, [4, 0]))
    assert (epoch, step) == (1, 2) and isinstance(items, list) and len(items) == 2
    b = MixedCollate()((epoch, step, items))
    assert b.x.shape == (2, 3, 4, 4)
    assert b.x[0].unique().tolist() == [0] and b.x[1].unique().tolist() == [101]  # labeled row first
    assert b.y.tolist() == [0] and b.soft.tolist() == [[0.0, 1.0, 0.0]]


def test_a_step_of_same_shaped_in_memory_images_is_one_array_step_as_collate_would_build_it():
    ds = mixed(3, 2)
    _, _, b = ds.__getitems__((0, 0, [1, 4, 2, 3]))
    assert isinstance(b, Batch)
    assert [int(v) for v in b.x[:, 0, 0, 0]] == [1, 2, 101, 100]
    assert b.y.tolist() == [1, 2] and b.n_labeled == 2 and b.skipped == 0
    assert b.soft.tolist() == [[0, 1, 0], [1, 0, 0]]


# ---- collate_mixed, Batch, MixedCollate

def test_collate_puts_labeled_rows_first_and_counts_unreadable_items():
    ds = mixed(3, 2)
    b = collate_mixed([ds[3], None, ds[1], None, ds[0]])
    assert b.skipped == 2 and b.n_labeled == 2
    assert [int(v) for v in b.x[:, 0, 0, 0]] == [1, 0, 100]
    assert b.y.tolist() == [1, 0] and b.soft.tolist() == [[1.0, 0.0, 0.0]]
    assert b.natural.tolist() == [False, False, False] and b.parts is None


def test_one_top_k_pseudo_labeled_item_is_densified_and_renormalised():
    """Top-2 row (classes 2, 0; probabilities 0.6, 0.2) of 4 classes -> [0.2, 0, 0.6, 0] / 0.8 = [0.25, 0, 0.75, 0]."""
    targets = TopKTargets(np.array([[2, 0]]), np.array([[0.6, 0.2]], np.float32), 4)
    ds = mixed(2, 1, targets=targets)
    b = collate_mixed([ds[0], ds[2]])
    assert b.soft.shape == (1, 4)
    assert b.soft[0].tolist() == pytest.approx([0.25, 0.0, 0.75, 0.0])


def test_one_dense_pseudo_labeled_item_keeps_its_row():
    ds = mixed(2, 1, targets=np.array([[0.5, 0.25, 0.25]], np.float32))
    b = collate_mixed([ds[2]])
    assert b.soft.tolist() == [[0.5, 0.25, 0.25]] and b.y.tolist() == [] and b.n_labeled == 0


def test_a_new_batch_is_at_epoch_0_step_0_and_not_augmented():
    ds = mixed(2, None)
    b = collate_mixed([ds[0]])
    assert (b.epoch, b.step, b.augmented) == (0, 0, False)
    b = MixedCollate()((3, 5, [ds[0], ds[1]]))  # no noise in the loader (a GPU run): the device applies it
    assert (b.epoch, b.step, b.augmented) == (3, 5, False)


def test_the_loaders_noise_draws_from_the_steps_generator_with_seed_0_by_default():
    seen = []

    def augment(x, gen, natural):
        seen.append(torch.rand(4, generator=gen))
        return x + 1

    ds = mixed(2, None)
    b = MixedCollate(augment)((3, 5, [ds[0], ds[1]]))
    assert b.augmented and b.x[:, 0, 0, 0].tolist() == [1, 2]
    assert torch.equal(seen[0], torch.rand(4, generator=step_generator(0, 3, 5)))
    MixedCollate(augment, seed=7)((3, 5, [ds[0]]))
    assert torch.equal(seen[1], torch.rand(4, generator=step_generator(7, 3, 5)))


class Pinned:
    def __init__(self, of):
        self.of = of


@pytest.fixture
def pinning(monkeypatch):
    """Tensor.pin_memory as a recorder (the real one needs a CUDA build): a pinned tensor comes back wrapped."""
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self: Pinned(self))


def test_pin_memory_pins_x_labels_and_soft_targets(pinning):
    x, y, soft = torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.tensor([1]), torch.ones(1, 3)
    b = Batch(x, y, soft, 1, 0, torch.zeros(2, dtype=torch.bool)).pin_memory()
    assert b.x.of is x and b.y.of is y and b.soft.of is soft and b.parts is None


def test_pin_memory_pins_the_packed_bytes_of_parts_and_keeps_their_layout(pinning):
    parts = pack_parts([np.zeros((2, 2, 3), np.uint8), torch.arange(5, dtype=torch.uint8)])
    b = Batch(None, torch.tensor([1, 2]), None, 2, 0, torch.zeros(2, dtype=torch.bool), parts).pin_memory()
    assert b.x is None and b.soft is None and b.y.of is not None
    assert len(b.parts) == 3 and b.parts[0].of is parts[0]
    assert b.parts[1] == [12, 5] and b.parts[2] == [(2, 2, 3), None]


def test_decode_on_drops_failed_images_with_their_targets_and_counts_them(monkeypatch):
    """Labeled rows 0, 1 and pseudo-labeled rows 2, 3; rows 1 and 2 fail to decode; 3 were skipped earlier."""
    from nsbench.data import decode

    monkeypatch.setattr(decode, "device_crops",
                        lambda parts, natural, size, device, gen: (torch.zeros(len(parts) - 2, 3, size, size), [1, 2]))
    parts = pack_parts([torch.arange(3, dtype=torch.uint8)] * 4)
    soft = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = Batch(None, torch.tensor([5, 6]), soft, 2, 3, torch.zeros(4, dtype=torch.bool), parts)
    assert b.decode_on(torch.device("cpu"), 8, torch.Generator()) == 2
    assert b.skipped == 5 and b.n_labeled == 1 and b.parts is None
    assert b.y.tolist() == [5] and b.soft.tolist() == [[0.0, 1.0]]
    assert b.x.shape == (2, 3, 8, 8) and b.natural.tolist() == [True, True]


# ---- MixedBatchSampler

def steps(sampler) -> list[list[int]]:
    return [idx for _, _, idx in sampler]


def test_each_epoch_draws_one_permutation_of_each_set_repeated_as_needed():
    """6 labeled, 2 per step, 3 steps: the epoch's labeled indices are one permutation of 0..5; 4 pseudo-labeled,
    4 per step: every step's pseudo-labeled indices are a permutation of 6..9 (the set repeats)."""
    s = MixedBatchSampler(6, 4, 2, 4, 3, seed=1, epoch=2)
    out = list(s)
    assert [(e, k) for e, k, _ in out] == [(2, 0), (2, 1), (2, 2)] and len(s) == 3
    assert sorted(i for _, _, idx in out for i in idx[:2]) == list(range(6))
    for _, _, idx in out:
        assert len(idx) == 6 and sorted(idx[2:]) == [6, 7, 8, 9]


def test_an_empty_pseudo_labeled_set_or_batch_adds_nothing_to_a_step():
    for n_pseudo, bu in ((0, 2), (5, 0)):
        out = steps(MixedBatchSampler(4, n_pseudo, 2, bu, 2, seed=0, epoch=0))
        assert [len(idx) for idx in out] == [2, 2] and sorted(out[0] + out[1]) == [0, 1, 2, 3]
    assert MixedBatchSampler._stream(0, 5, np.random.default_rng(0)).tolist() == []
    assert MixedBatchSampler._stream(5, 0, np.random.default_rng(0)).tolist() == []


def test_the_default_is_one_process():
    assert steps(MixedBatchSampler(7, 5, 2, 3, 4, seed=3, epoch=1)) == \
        steps(MixedBatchSampler(7, 5, 2, 3, 4, seed=3, epoch=1, rank=0, world=1))


@pytest.mark.parametrize("world", [2, 3])
def test_ranks_together_see_the_batches_of_one_process_with_world_times_the_batch(world):
    """The docstring: rank r takes the r-th share of every global batch (labeled share, then pseudo-labeled)."""
    bl, bu = 2, 3
    one = steps(MixedBatchSampler(7, 5, bl * world, bu * world, 4, seed=3, epoch=1))
    ranks = [steps(MixedBatchSampler(7, 5, bl, bu, 4, seed=3, epoch=1, rank=r, world=world)) for r in range(world)]
    for s, global_batch in enumerate(one):
        lab, uns = global_batch[: bl * world], global_batch[bl * world:]
        for r in range(world):
            assert ranks[r][s] == lab[r * bl:(r + 1) * bl] + uns[r * bu:(r + 1) * bu], (s, r)
