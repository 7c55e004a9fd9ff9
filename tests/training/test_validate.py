"""The history's val columns (training/validate.py evaluate): top-1 / top-5 accuracy in percent, the image count and
the images with non-finite logits, against a worked example whose ranks are chosen by hand."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from nsbench.data.sources import ArraySource
from nsbench.training.validate import ValSet, evaluate

N_CLASSES = 10
# per image: (label, rank of the label in the model's logits (1 = top), a -inf logit on a class other than the label)
TABLE = [(0, 1, False), (0, 2, False), (0, 6, False), (1, 1, True), (1, 5, False), (2, 3, True), (3, 1, False),
         (4, 7, False), (5, 2, False)]


def _logits(label: int, rank: int, non_finite: bool) -> torch.Tensor:
    """Logits 10, 9, .., 1 down the class order with `label` moved to position `rank`."""
    order = [c for c in range(N_CLASSES) if c != label]
    order.insert(rank - 1, label)
    z = torch.empty(N_CLASSES)
    z[torch.tensor(order)] = torch.arange(N_CLASSES, 0, -1, dtype=torch.float32)
    if non_finite:
        z[order[-1]] = -float("inf")  # the last-ranked class: the ranking above it is unchanged
    return z


class IdModel(nn.Module):
    """Reads the image's id from the red level of pixel (0, 0) and returns that image's logits from TABLE."""

    def __init__(self, table):
        super().__init__()
        self.table = torch.stack([_logits(*t) for t in table])
        self.batches = []

    def forward(self, x):
        self.batches.append(len(x))
        k = (x[:, 0, 0, 0] * 255).round().long()
        return self.table[k]


def _source(table) -> ArraySource:
    images = np.zeros((len(table), 8, 8, 3), np.uint8)
    images[:, 0, 0, 0] = np.arange(len(table))
    return ArraySource("ids", images, np.array([t[0] for t in table]), [f"c{i}" for i in range(N_CLASSES)])


def test_top1_top5_n_and_non_finite_by_hand():
    """9 images: the label ranks 1 on images 0, 3, 6 (top-1: 3 / 9), at most 5 on 0, 1, 3, 4, 5, 6, 8 (top-5: 7 / 9;
    image 2's label ranks 6th, image 7's 7th); images 3 and 5 hold a -inf logit. Batches of 4: 4, 4 and a last batch
    of one image, which counts like the others."""
    model = IdModel(TABLE)
    model.train()
    m = evaluate(model, ValSet(_source(TABLE), np.arange(len(TABLE)), 8, batch_size=4), torch.device("cpu"))
    assert m == {"top1": pytest.approx(100 * 3 / 9), "top5": pytest.approx(100 * 7 / 9), "n": 9, "non_finite": 2}
    assert model.batches == [4, 4, 1]
    assert model.training  # the model's mode is given back


def test_one_image():
    """n = 1: 100% or 0%, never a share of a larger denominator."""
    table = [(3, 1, False)]
    m = evaluate(IdModel(table), ValSet(_source(table), np.arange(1), 8, batch_size=4), torch.device("cpu"))
    assert m == {"top1": 100.0, "top5": 100.0, "n": 1, "non_finite": 0}
    table = [(3, 2, True)]
    m = evaluate(IdModel(table), ValSet(_source(table), np.arange(1), 8, batch_size=4), torch.device("cpu"))
    assert m == {"top1": 0.0, "top5": 100.0, "n": 1, "non_finite": 1}


def test_fewer_than_five_classes_take_top_k_over_all_of_them():
    table = [(0, 3, False), (1, 1, False)]

    class Three(IdModel):
        def forward(self, x):
            return super().forward(x)[:, :3]

    src = _source(table)
    m = evaluate(Three(table), ValSet(src, np.arange(2), 8, batch_size=4), torch.device("cpu"))
    # image 0 keeps logits 8, 10, 9 on classes 0, 1, 2: its label is 3rd of 3, inside the top min(5, 3); image 1's
    # label 1 holds the top logit
    assert m["top5"] == 100.0 and m["top1"] == 50.0


def test_the_model_sees_plain_nchw_tensors_by_default():
    """Without channels_last the model gets contiguous NCHW batches: a model that flattens with .view works."""

    class Flat(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3 * 8 * 8, N_CLASSES)

        def forward(self, x):
            return self.fc(x.view(len(x), -1))

    src = _source(TABLE)
    m = evaluate(Flat(), ValSet(src, np.arange(len(TABLE)), 8, batch_size=4), torch.device("cpu"))
    assert m["n"] == 9
