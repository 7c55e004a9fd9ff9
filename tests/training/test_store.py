"""The pseudo-label store (training/store.py) beyond the filter, histograms and shards of test_pseudo_labels.py: a
shard's statistics file holding pickled objects is never unpickled (read_stats: such a shard is not done, and
unpickling would run whatever the pickle names)."""
from __future__ import annotations

import os

import numpy as np

from nsbench.training.store import read_stats, shard_name, stats_file


class Planted:
    """Unpickling this makes a folder: the sign that a pickle was loaded."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return os.mkdir, (self.path,)


def test_statistics_holding_pickled_objects_are_damaged_and_never_unpickled(tmp_path):
    shard = tmp_path / shard_name(0, 1)
    planted = tmp_path / "unpickled"
    hist = np.empty(1, object)
    hist[0] = Planted(planted)
    with open(stats_file(shard), "wb") as f:
        np.savez(f, hist=hist, predicted=np.zeros(4, np.int64), correct_kept=np.zeros(4, np.int64),
                 scalars=np.zeros(4, np.int64), conf_sum=np.zeros(1))
    assert read_stats(shard) is None
    assert not planted.exists()
    # the same file with numbers in place of the object: read
    with open(stats_file(shard), "wb") as f:
        np.savez(f, hist=np.ones((4, 3), np.int64), predicted=np.zeros(4, np.int64),
                 correct_kept=np.zeros(4, np.int64), scalars=np.array([3, 1, 2, 0]), conf_sum=np.array([1.5]))
    got = read_stats(shard)
    assert got["scalars"].tolist() == [3, 1, 2, 0] and got["hist"].sum() == 12 and got["conf_sum"].tolist() == [1.5]
