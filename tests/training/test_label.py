"""Labeling (training/label.py) beyond the pseudo-labels' values (test_pseudo_labels.py): every image reaches the
shard, a batch of one included; images that cannot be read are counted in the shard's statistics and on the progress
bar, a batch of them only; an empty shard has the columns of a hard-label shard; the store's folder is made with its
parents; a temperature of 0 is refused; on the CPU the teacher keeps its weights' memory format (channels-last is
for CUDA's bf16 autocast, docs/training.md); the progress bar only where asked for; what a LabelConfig that names no
workers and no amp records (workers 0; on CUDA bf16 autocast with channels-last, `runtime.amp`'s default); each
batch of probabilities [images, classes], one of unreadable images only too (so batches concatenate)."""
from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from torch import nn

from helpers import C, IdTeacher, damage_row_group, id_source, write_parquet
from nsbench.config import PseudoConfig
from nsbench.data.sources import open_source
from nsbench.training import label
from nsbench.training.label import LabelConfig, label_unlabeled, teacher_batches
from nsbench.training.store import column, read_stats, shard_name
from nsbench.utils import NsbenchError

CPU = torch.device("cpu")


class ConvTeacher(nn.Module):
    """A convolution (a 4-D weight, whose memory format channels-last would change) and a mean over pixels."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, C, 3)

    def forward(self, x):
        return self.conv(x).mean((2, 3))


class Bar:
    """Stands in for the progress bar: what it was asked for and what it counted."""

    def __init__(self, made: list, total=None, **kw):
        self.total, self.kw, self.n, self.closed = total, kw, 0, False
        made.append(self)

    def update(self, k):
        self.n += k

    def close(self):
        self.closed = True


@pytest.fixture
def bars(monkeypatch):
    made = []
    monkeypatch.setattr(label, "tqdm", lambda *a, **kw: Bar(made, *a, **kw))
    return made


def shard(store) -> pq.ParquetFile:
    return pq.ParquetFile(store / shard_name(0, 1))


def damaged_source(tmp_path):
    """12 unlabeled PNGs in row groups of 2; groups 1, 4 and 5 damaged: in batches of 4, images 0 and 1 read beside
    2 skipped, then 4 to 7, then 4 skipped and none read."""
    path = write_parquet(tmp_path / "unl", [None] * 12, group=2)
    for g in (1, 4, 5):
        damage_row_group(path, g)
    return open_source(f"parquet:{tmp_path / 'unl'}", "train")


def test_every_image_reaches_the_shard_a_last_batch_of_one_included_in_a_folder_made_with_its_parents(tmp_path):
    store = tmp_path / "runs" / "r" / "pseudo" / "store"  # none of it exists yet
    cfg = LabelConfig(PseudoConfig(soft=False, batch_size=4), C, 32, CPU)
    label_unlabeled(IdTeacher(), id_source(), np.arange(16, 21), store, cfg)  # batches of 4 and 1
    t = shard(store).read()
    assert column(t, "index").tolist() == [16, 17, 18, 19, 20]
    assert column(t, "hard").tolist() == [1, 1, 2, 2, 3]  # helpers.ID_TEACHER's argmax (19: a tie, the first)
    assert column(t, "true_label").tolist() == [0, 1, 2, 3, 0]  # id_source: id % 4
    assert read_stats(store / shard_name(0, 1))["scalars"].tolist() == [5, 2, 5, 0]  # n, correct, known, skipped


def test_unreadable_images_are_counted_in_the_statistics_and_on_the_progress_bar(tmp_path, bars):
    cfg = LabelConfig(PseudoConfig(soft=False, batch_size=4), C, 32, CPU)
    store = tmp_path / "store"
    label_unlabeled(ConvTeacher(), damaged_source(tmp_path), np.arange(12), store, cfg)
    assert column(shard(store).read(), "index").tolist() == [0, 1, 4, 5, 6, 7]
    assert read_stats(store / shard_name(0, 1))["scalars"].tolist() == [6, 0, 0, 6]  # 6 read, no true labels, 6 skipped
    (bar,) = bars
    assert bar.total == 12 and bar.n == 12 and bar.closed  # every image counted, read or not
    assert bar.kw["disable"] is False  # the main (only) rank shows it


def test_every_batch_of_probabilities_is_images_by_classes_a_batch_of_unreadable_images_too(tmp_path):
    cfg = LabelConfig(PseudoConfig(batch_size=4), C, 32, CPU)
    batches = list(teacher_batches(ConvTeacher(), damaged_source(tmp_path), np.arange(12), cfg, progress=False))
    assert [(p.shape, i.tolist(), sk) for p, i, sk in batches] == [((2, C), [0, 1], 2), ((4, C), [4, 5, 6, 7], 0),
                                                                    ((0, C), [], 4)]
    probs = np.concatenate([p for p, _, _ in batches])  # so the batches join as they come
    assert probs.shape == (6, C) and np.allclose(probs.sum(1), 1)


def test_the_progress_bar_is_shown_unless_asked_not_to(bars):
    src, cfg = id_source(), LabelConfig(PseudoConfig(batch_size=4), C, 32, CPU)
    list(teacher_batches(IdTeacher(), src, np.arange(10, 14), cfg))
    list(teacher_batches(IdTeacher(), src, np.arange(10, 14), cfg, progress=False))
    assert [b.kw["disable"] for b in bars] == [False, True] and [b.n for b in bars] == [4, 4]


def test_a_shard_with_no_image_has_the_columns_of_a_hard_label_shard(tmp_path):
    cfg = LabelConfig(PseudoConfig(soft=False, batch_size=4), C, 32, CPU)
    label_unlabeled(IdTeacher(), id_source(), np.arange(16, 18), tmp_path / "some", cfg)
    label_unlabeled(IdTeacher(), id_source(), np.zeros(0, np.int64), tmp_path / "none", cfg)
    empty = shard(tmp_path / "none")
    assert empty.metadata.num_rows == 0
    assert empty.schema_arrow.equals(shard(tmp_path / "some").schema_arrow)
    assert empty.schema_arrow.field("topk_class").type.list_size == 1  # one class, the hard label
    assert read_stats(tmp_path / "none" / shard_name(0, 1))["scalars"].tolist() == [0, 0, 0, 0]


def test_a_temperature_of_zero_is_refused():
    cfg = LabelConfig(PseudoConfig(temperature=0.0, batch_size=4), C, 32, CPU)
    with pytest.raises(NsbenchError, match="pseudo.temperature must be positive, got 0.0"):
        next(teacher_batches(IdTeacher(), id_source(), np.arange(10, 14), cfg, progress=False))


def test_on_the_cpu_the_teacher_keeps_its_weights_memory_format(tmp_path):
    teacher = ConvTeacher()
    assert teacher.conv.weight.is_contiguous()
    cfg = LabelConfig(PseudoConfig(batch_size=4), C, 32, CPU)
    ran = label_unlabeled(teacher, id_source(), np.arange(10, 14), tmp_path / "store", cfg)
    assert ran["precision"] == "fp32"
    assert teacher.conv.weight.is_contiguous()  # not channels-last (on a [4, 3, 3, 3] weight, a different layout)
    assert not teacher.conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_a_label_config_naming_no_workers_or_amp_loads_in_process_and_on_cuda_labels_in_bf16(tmp_path):
    src, store = id_source(), tmp_path / "store"
    cfg = LabelConfig(PseudoConfig(batch_size=4), C, 32, CPU)
    ran = label_unlabeled(IdTeacher(), src, np.arange(10, 14), store, cfg)
    assert ran["num_workers"] == 0 and ran["precision"] == "fp32"
    # the shard is labeled (a resumed run labels nothing), so what a CUDA device would record needs no GPU
    ran = label_unlabeled(IdTeacher(), src, np.arange(10, 14), store,
                          LabelConfig(PseudoConfig(batch_size=4), C, 32, torch.device("cuda")))
    assert ran["precision"] == "bf16 autocast, channels-last" and ran["num_workers"] == 0
