"""The cache of built sets (bench/cache.py): a damaged file is found by its checksum and rebuilt, never scored
(docs/evaluation.md); set folders are named by a key that ignores the spec's key order; cached arrays never hold
pickled objects."""
from __future__ import annotations

import hashlib
import os
import pickle

import numpy as np
import pytest

from helpers import built_set
from nsbench.bench import cache, corruption_sets


def flip_last_byte(path) -> None:
    """Damage a file without changing its size (a bit flip on disk), and give it a new mtime."""
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    st = path.stat()
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_a_cell_whose_bytes_changed_is_dropped_and_deleted_to_be_rebuilt(tmp_path):
    folder = tmp_path / "C-set"
    manifest = built_set(folder)
    flip_last_byte(folder / "fog-2.npy")  # never verified in this process: the checksum must be computed
    kept = corruption_sets.verify_set(folder, manifest, "cells")
    assert [c["file"] for c in kept["cells"]] == ["fog-1.npy"]
    assert not (folder / "fog-2.npy").exists() and (folder / "fog-1.npy").exists()


def test_a_file_rewritten_after_it_was_verified_is_checked_again(tmp_path):
    folder = tmp_path / "C-set"
    manifest = built_set(folder)
    assert cache.damaged(folder, {"fog-1.npy": manifest["cells"][0]["sha256"]}) == []
    flip_last_byte(folder / "fog-1.npy")
    assert cache.damaged(folder, {"fog-1.npy": manifest["cells"][0]["sha256"]}) == ["fog-1.npy"]


def test_a_changed_base_file_discards_the_whole_set(tmp_path):
    folder = tmp_path / "C-set"
    manifest = built_set(folder)
    flip_last_byte(folder / "labels.npy")
    assert corruption_sets.verify_set(folder, manifest, "cells") is None
    assert not list(folder.glob("*.npy"))


def test_a_file_without_a_recorded_checksum_is_only_required_to_exist(tmp_path):
    """A manifest without a checksum for a file (None: unchecked) keeps the set as long as the file is there."""
    folder = tmp_path / "C-set"
    manifest = built_set(folder)
    del manifest["labels_sha256"]
    kept = corruption_sets.verify_set(folder, manifest, "cells")
    assert kept is not None and len(kept["cells"]) == 2
    assert cache.damaged(folder, {"labels.npy": None, "missing.npy": None}) == ["missing.npy"]


def test_set_key_is_16_hex_digits_of_the_sha256_of_the_sorted_json_spec():
    """A folder built by an earlier run is found again: its name is C-/P-/A- and this key, which ignores the order
    in which the spec's keys were written."""
    spec = {"kind": "C", "size": 32, "seed": 0, "source": "folder:/x", "n": 8}
    by_hand = hashlib.sha256(b'{"kind": "C", "n": 8, "seed": 0, "size": 32, "source": "folder:/x"}').hexdigest()[:16]
    assert cache.key_of(spec) == by_hand
    reordered = dict(reversed(list(spec.items())))
    assert cache.key_of(reordered) == by_hand


def test_cached_arrays_never_hold_pickles(tmp_path):
    with pytest.raises(ValueError, match="allow_pickle"):
        cache.save_array(tmp_path / "objects.npy", np.array([{"a": 1}, None], dtype=object))
    assert list(tmp_path.iterdir()) == []  # nothing written, no temporary left
    # a cache file replaced by a pickle is refused, not unpickled
    (tmp_path / "clean.npy").write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(ValueError, match="allow_pickle"):
        cache.load_array(tmp_path / "clean.npy")
