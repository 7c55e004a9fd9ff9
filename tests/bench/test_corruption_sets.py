"""bench/corruption_sets.py by value: ImageNet-C cells are imagecorruptions itself (impulse_noise and glass_blur
given their `seed=`, the others drawing from numpy's global generator seeded per image), a grey image coming back
RGB at its own height and width; set building runs in this process for one worker or one task and in a spawned
pool of min(workers, tasks) quiet one-thread processes otherwise (all cores by default, one when the count is
unknown); a built set holding every wanted cell is reused without touching a file, a cell file left by an
interrupted build is adopted with its checksum, a deleted cell file is rebuilt, an intact set raises no warning. The
expected images come from imagecorruptions called here; checksums are sha256 of the file bytes, by hand."""
from __future__ import annotations

import json
import logging
import os
import warnings

import numpy as np
import pytest
import torch
from imagecorruptions import corrupt

from helpers import built_set, sha16
from nsbench.bench import corruption_sets
from nsbench.data.sources import ArraySource


def photo(h: int = 32, w: int = 32, c: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, c), np.uint8)


# ---- one ImageNet-C image: imagecorruptions as its README calls it


def test_impulse_noise_and_glass_blur_are_given_the_seed():
    img = photo()
    for name in ("impulse_noise", "glass_blur"):
        want = corrupt(img, corruption_name=name, severity=3, seed=7)
        np.testing.assert_array_equal(corruption_sets.corrupt_one(img, name, 3, 7, "imagenet-c"), want)


def test_the_other_corruptions_draw_from_numpys_generator_seeded_with_the_seed():
    img = photo()
    for name in ("gaussian_noise", "contrast"):
        np.random.seed(11)
        want = corrupt(img, corruption_name=name, severity=2)
        np.random.seed(0)  # corrupt_one seeds the generator itself
        np.testing.assert_array_equal(corruption_sets.corrupt_one(img, name, 2, 11, "imagenet-c"), want)


def test_a_grey_image_comes_back_rgb_at_its_own_height_and_width():
    grey = photo(32, 45, 1)  # imagecorruptions stacks one channel into three
    out = corruption_sets.corrupt_one(grey, "contrast", 2, 0, "imagenet-c")
    assert out.shape == (32, 45, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, corrupt(grey, corruption_name="contrast", severity=2))


# ---- where the cells are built: this process, or a spawned pool


class FakeContext:
    """multiprocessing's spawn context, its Pool recorded and run in this process."""

    def __init__(self, log: list):
        self.log = log

    def Pool(self, processes, initializer=None):  # noqa: N802 - multiprocessing's name
        self.log.append(processes)
        assert initializer is corruption_sets._quiet_worker
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def imap_unordered(self, fn, tasks):
        return map(fn, tasks)


@pytest.fixture
def pools(monkeypatch):
    """The pool sizes run_tasks asked for (spawn contexts only)."""
    log = []

    def get_context(method):
        assert method == "spawn"
        return FakeContext(log)

    monkeypatch.setattr(corruption_sets.mp, "get_context", get_context)
    return log


def run(tasks, workers):
    return list(corruption_sets.run_tasks(lambda t: t * 10, tasks, workers, "test"))


def test_one_worker_or_one_task_runs_in_this_process_in_order(pools):
    assert run([3, 1, 2], 1) == [30, 10, 20]
    assert run([5], 4) == [50]
    assert run([], 4) == []
    assert pools == []


def test_several_workers_and_tasks_use_a_spawned_pool_of_at_most_one_process_per_task(pools):
    assert sorted(run([1, 2], 2)) == [10, 20]
    assert sorted(run([1, 2, 3], 8)) == [10, 20, 30]
    assert pools == [2, 3]


def test_the_default_is_every_core_and_one_when_the_count_is_unknown(pools, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    assert sorted(run([1, 2, 3, 4, 5], None)) == [10, 20, 30, 40, 50]
    assert sorted(run([1, 2, 3, 4, 5], 0)) == [10, 20, 30, 40, 50]  # 0 means the default too
    assert pools == [3, 3]
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert run([1, 2], None) == [10, 20] and pools == [3, 3]  # one worker: no pool


def test_a_pool_worker_scores_on_one_thread_quietly():
    threads = torch.get_num_threads()
    try:
        with warnings.catch_warnings():
            corruption_sets._quiet_worker()
            assert torch.get_num_threads() == 1
            warnings.warn("not shown", UserWarning)  # ignored: raises nothing under -W error either
    finally:
        torch.set_num_threads(threads)


# ---- a built set's files


def test_an_intact_set_is_kept_whole_without_a_warning(tmp_path, caplog):
    manifest = built_set(tmp_path / "C")
    with caplog.at_level(logging.WARNING):
        assert corruption_sets.verify_set(tmp_path / "C", manifest, "cells") == manifest
    assert caplog.records == []


def test_a_missing_cell_file_is_dropped_from_the_manifest(tmp_path):
    manifest = built_set(tmp_path / "C")
    (tmp_path / "C" / "fog-2.npy").unlink()
    kept = corruption_sets.verify_set(tmp_path / "C", manifest, "cells")
    assert [c["file"] for c in kept["cells"]] == ["fog-1.npy"]


def test_damaged_base_files_discard_the_set_whether_or_not_its_manifest_file_is_there(tmp_path):
    manifest = built_set(tmp_path / "C")  # no manifest.json
    (tmp_path / "C" / "labels.npy").unlink()
    assert corruption_sets.verify_set(tmp_path / "C", manifest, "cells") is None
    assert not list((tmp_path / "C").iterdir())


def source() -> ArraySource:
    return ArraySource("two", np.stack([photo(seed=1), photo(seed=2)]), np.array([0, 1]), ["a", "b"])


def build(tmp_path, severities):
    return corruption_sets.build_c(source(), 32, ["brightness"], severities, None, 0, tmp_path, workers=1)


def test_a_set_holding_every_wanted_cell_is_reused_without_building(tmp_path, monkeypatch):
    folder, manifest = build(tmp_path, [1, 2])

    def refuse(*a, **k):
        raise AssertionError("a complete set was built again")

    monkeypatch.setattr(corruption_sets, "write_clean_set", refuse)
    monkeypatch.setattr(corruption_sets, "run_tasks", refuse)
    monkeypatch.setattr(corruption_sets.cache, "write_manifest", refuse)
    assert build(tmp_path, [1, 2]) == (folder, manifest)
    assert build(tmp_path, [2]) == (folder, manifest)  # a subset of the cells too


def test_a_cell_file_left_by_an_interrupted_build_is_adopted_with_its_checksum(tmp_path, monkeypatch):
    folder, manifest = build(tmp_path, [1, 2])
    left = {**manifest, "cells": [c for c in manifest["cells"] if c["severity"] == 1]}
    (folder / "manifest.json").write_text(json.dumps(left))  # brightness-2.npy written, its entry not yet
    built = []
    real = corruption_sets.run_tasks
    monkeypatch.setattr(corruption_sets, "run_tasks", lambda fn, todo, *a: built.extend(todo) or real(fn, todo, *a))
    _, again = build(tmp_path, [1, 2])
    assert built == []  # nothing recomputed
    assert again["cells"][1] == {"corruption": "brightness", "severity": 2, "file": "brightness-2.npy",
                                 "sha256": sha16(folder / "brightness-2.npy")}
    assert again == manifest


def test_a_deleted_cell_file_is_built_again(tmp_path):
    folder, manifest = build(tmp_path, [1])
    first = (folder / "brightness-1.npy").read_bytes()
    (folder / "brightness-1.npy").unlink()  # docs/install.md: deleting cached files is always safe
    _, again = build(tmp_path, [1])
    assert (folder / "brightness-1.npy").read_bytes() == first and again == manifest
