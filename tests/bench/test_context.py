"""bench/context.py by value: the class order a bare class count adopts (ids below N for unnamed sources, the
dataset's own names when the counts agree), which data, crop and interpolation a context uses (the suite's, else the
model's, else the documented defaults), the run's --limit on a task's count, result rows' notes under bf16, true
fp32 scoring (TF32 off only on GPUs, autocast only under bf16, channels_last only on GPUs), the refusals of
check_data / check_outputs / finite with the numbers they name, empty batches, the one-process and one-rank paths of
`sharded`, and a cell's place in the cache (cells/SHA16/TASK/KEY.npz, KEY the first 16 hex of sha256 over the JSON
of "key|precision", a size other than the model's own in the key) with untrusted files recomputed; a class count
adopting the folders' order where named classes keep theirs; a set build waiting for the cache's lock. Models are a few
lines of torch; every expected value is written out by hand."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from torch import nn

from nsbench.bench.context import ClassCountMismatch, EvalContext, adopt_class_order
from nsbench.bench.eval_model import EvalModel
from nsbench.bench.suite import SuiteConfig, SuiteData
from nsbench.data.sources import ArraySource, ParquetSource, Source, UnreadableImage
from nsbench.utils import NsbenchError

SHA = "0123456789abcdef" + "f" * 48
CLASSES = ["a", "b", "c"]


class PixelLinear(nn.Module):
    """Logits = W @ (the RGB of pixel (0, 0)) + b: a linear layer (autocast's kind of op) on three numbers."""

    def __init__(self, n: int = 3):
        super().__init__()
        self.lin = nn.Linear(3, n)
        with torch.no_grad():
            self.lin.weight.copy_(torch.tensor([[1.3, -0.7, 0.1], [0.2, 0.9, -1.1], [-0.4, 0.3, 0.77]][:n]))
            self.lin.bias.copy_(torch.tensor([0.011, -0.3, 0.123][:n]))

    def forward(self, x):
        return self.lin(x[:, :, 0, 0])


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return self.conv(x).mean((2, 3))[:, :3]


def context(tmp_path, model: nn.Module | None = None, *, meta: dict | None = None, device: str = "cpu",
            size: int = 32, **suite) -> EvalContext:
    data = {k: suite.pop(k) for k in ("source", "split", "image_size", "crop_pct", "interpolation") if k in suite}
    em = EvalModel(model or PixelLinear(), "m", SHA, list(CLASSES), size, meta or {})
    return EvalContext(em, SuiteConfig(name="t", data=SuiteData(**data), **suite), tmp_path / "cache",
                       torch.device(device), workers=0)


class Stub(Source):
    """A source of its own labels and classes (named unless told otherwise), images by `load`."""

    def __init__(self, labels, classes, named=None, unreadable=()):
        self.name, self.labels, self.classes = "stub", np.asarray(labels, np.int64), list(classes)
        self.unreadable = set(unreadable)
        if named is not None:
            self.named = named

    def load(self, i):
        if i in self.unreadable:
            raise UnreadableImage(f"image {i} is broken")
        return np.zeros((32, 32, 3), np.uint8)


# ---- adopt_class_order: `--num-classes N` predicts the dataset's classes in its own order


def test_a_named_source_keeps_its_own_class_names_when_the_counts_agree():
    # ArraySource has no `named` attribute: a source names its classes unless it says otherwise
    src = ArraySource("arr", np.zeros((2, 32, 32, 3), np.uint8), [0, 1], ["cat", "dog"])
    assert adopt_class_order(src, 2) == ["cat", "dog"]
    assert adopt_class_order(Stub([0, 1, 2], ["x", "y", "z"], named=True), 3) == ["x", "y", "z"]


def test_a_named_source_with_another_class_count_is_refused():
    with pytest.raises(ClassCountMismatch, match=r"3 classes \(x, y, z\) but --num-classes 2"):
        adopt_class_order(Stub([0, 1, 2], ["x", "y", "z"]), 2)


def test_an_unnamed_source_takes_the_ids_below_n_as_its_classes():
    src = Stub([0, 1, -1, 1], ["0", "1"], named=False)  # ids up to 1, one unknown label
    assert adopt_class_order(src, 4) == ["0", "1", "2", "3"] and src.classes == ["0", "1", "2", "3"]
    assert adopt_class_order(Stub([1, -1], ["0", "1"], named=False), 2) == ["0", "1"]  # max id 1 < 2


def test_an_unnamed_source_with_an_id_at_or_above_n_is_refused():
    with pytest.raises(ClassCountMismatch, match="labels go up to 3 but --num-classes 3"):
        adopt_class_order(Stub([0, 3, 1], ["0", "1", "2", "3"], named=False), 3)
    # the edge at zero: id 0 is not below 0 classes (unknown labels, -1, are left out)
    with pytest.raises(ClassCountMismatch, match="labels go up to 0 but --num-classes 0"):
        adopt_class_order(Stub([0, -1], ["0"], named=False), 0)
    assert adopt_class_order(Stub([-1, -1], [], named=False), 0) == []  # no known label: nothing to refuse


def test_a_parquet_source_is_matched_by_label_ids(tmp_path):
    from helpers import write_parquet

    path = write_parquet(tmp_path / "pq", [0, 1, 1, 0])
    src = ParquetSource("pq", [path], "image", "label", None)
    assert src.classes == ["0", "1"]  # its own: ids up to 1
    assert adopt_class_order(src, 4) == ["0", "1", "2", "3"]


# ---- which data, size, crop and interpolation


def test_the_source_is_the_suites_else_the_models_dataset_else_its_training_config(tmp_path):
    meta = {"dataset": {"source": "folder:/own"}, "config": {"data": {"source": "folder:/cfg"}}}
    assert context(tmp_path, meta=meta, source="folder:/suite").source_spec == "folder:/suite"
    assert context(tmp_path, meta=meta).source_spec == "folder:/own"
    assert context(tmp_path, meta={"config": {"data": {"source": "folder:/cfg"}}}).source_spec == "folder:/cfg"
    assert context(tmp_path).source_spec is None


def test_crop_pct_is_the_suites_else_the_models_own_else_0_875(tmp_path):
    own = {"model": {"crop_pct": 0.95, "interpolation": "bicubic"}}
    assert context(tmp_path, meta=own, crop_pct=0.9).resize["crop_pct"] == 0.9
    assert context(tmp_path, meta=own, crop_pct=None).resize["crop_pct"] == 0.95
    assert context(tmp_path, meta={}, crop_pct=None).resize["crop_pct"] == 0.875  # 224 / 256


def test_interpolation_is_the_suites_unless_model_then_the_models_own_else_bilinear(tmp_path):
    own = {"model": {"interpolation": "bicubic"}}
    assert context(tmp_path, meta=own, interpolation="nearest").resize["interpolation"] == "nearest"
    assert context(tmp_path, meta=own, interpolation="bilinear").resize["interpolation"] == "bilinear"
    assert context(tmp_path, meta=own, interpolation="model").resize["interpolation"] == "bicubic"
    assert context(tmp_path, meta={}, interpolation="model").resize["interpolation"] == "bilinear"
    # a model's own interpolation that torchvision's resize is not given here (timm's "lanczos") falls back to bicubic
    lanczos = {"model": {"interpolation": "lanczos"}}
    assert context(tmp_path, meta=lanczos, interpolation="model").resize["interpolation"] == "bicubic"


def test_the_runs_limit_caps_every_tasks_count(tmp_path):
    ctx = context(tmp_path)
    assert ctx.cap(None) is None and ctx.cap(7) == 7
    ctx.limit = 5
    assert ctx.cap(None) == 5 and ctx.cap(3) == 3 and ctx.cap(7) == 5


# ---- rows under bf16


def test_a_bf16_rows_note_says_so_after_its_own_reason(tmp_path):
    ctx = context(tmp_path, precision="bf16")
    bf16 = "scored under bf16 autocast"
    assert ctx.row("clean", "clean", "top1_err", 12.5, 10)["note"] == bf16
    assert ctx.row("clean", "clean", "top1_err", 12.5, 10, note="partial: 3 of 4")["note"] == f"partial: 3 of 4; {bf16}"
    assert ctx.row("clean", "clean", "top1_err", None, 10)["note"] == f"undefined; {bf16}"  # no value, no reason
    assert ctx.row("clean", "clean", "failed", None, 0)["note"] == bf16  # a failure is not "undefined"
    assert context(tmp_path).row("clean", "clean", "top1_err", None, 10)["note"] is None  # fp32: no note added


# ---- true fp32 scoring


def test_tf32_is_switched_off_while_scoring_on_a_gpu_and_restored_after(tmp_path):
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    before = cudnn.allow_tf32, matmul.allow_tf32
    cudnn.allow_tf32 = matmul.allow_tf32 = True
    try:
        with context(tmp_path, device="cuda").numerics():  # only the device's type is read: no GPU needed
            assert cudnn.allow_tf32 is False and matmul.allow_tf32 is False
        assert cudnn.allow_tf32 is True and matmul.allow_tf32 is True
        with context(tmp_path, device="cpu").numerics():  # on the CPU nothing is touched
            assert cudnn.allow_tf32 is True and matmul.allow_tf32 is True
    finally:
        cudnn.allow_tf32, matmul.allow_tf32 = before


def test_an_fp32_suite_scores_without_autocast_and_bf16_with_it(tmp_path):
    x = torch.tensor([[0.1, 0.52, 0.93], [0.77, 0.05, 0.3]])[:, :, None, None].expand(2, 3, 4, 4).contiguous()
    w = np.array([[1.3, -0.7, 0.1], [0.2, 0.9, -1.1], [-0.4, 0.3, 0.77]])
    want = x[:, :, 0, 0].double().numpy() @ w.T + [0.011, -0.3, 0.123]  # the layer in float64, by hand
    fp32 = context(tmp_path).forward(x)
    assert fp32.dtype == torch.float32
    np.testing.assert_allclose(fp32.numpy(), want, rtol=1e-6, atol=1e-6)
    bf16 = context(tmp_path, precision="bf16").forward(x)  # bf16 keeps 8 bits of mantissa: errors of ~1e-3
    assert bf16.dtype == torch.float32 and np.abs(bf16.numpy() - want).max() > 1e-4


def test_a_contexts_repr_leaves_out_the_opened_source_and_the_model(tmp_path):
    ctx = context(tmp_path)
    ctx._source = Stub([0], ["a"])
    _ = ctx.model
    assert "_source" not in repr(ctx) and "_model" not in repr(ctx) and "limit=None" in repr(ctx)


def test_channels_last_only_on_a_gpu(tmp_path):
    m = context(tmp_path, ConvNet()).model
    assert m.conv.weight.is_contiguous() and not m.conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not m.training


# ---- refusals


def test_outputs_that_are_not_one_logit_per_class_are_refused(tmp_path):
    with pytest.raises(NsbenchError, match=r"outputs of shape \(2, 4\) for 2 images, expected \[2, 3\]"):
        context(tmp_path, WideLinear()).check_outputs()
    with pytest.raises(NsbenchError, match=r"outputs of shape \(2, 3, 1\)"):
        context(tmp_path, Unsqueezed()).check_outputs()
    context(tmp_path).check_outputs()  # [2, 3]: accepted


class WideLinear(nn.Module):
    def forward(self, x):
        return torch.zeros(len(x), 4)


class Unsqueezed(nn.Module):
    def forward(self, x):
        return torch.zeros(len(x), 3, 1)


def test_non_finite_logits_name_how_many_images(tmp_path):
    ctx = context(tmp_path)
    bad = torch.tensor([[0.0, float("nan"), 1.0], [0.0, 1.0, 2.0], [float("inf"), float("nan"), 0.0]])
    with pytest.raises(NsbenchError, match=r"not finite \(NaN or inf\) for 2 of 3 images"):
        ctx.finite(bad)
    with pytest.raises(NsbenchError, match=r"for 1 of 1 images"):  # one scalar output: one image
        ctx.finite(torch.tensor(float("nan")))


def test_check_data_accepts_one_readable_image_and_names_the_first_unreadable_one(tmp_path):
    ctx = context(tmp_path, source="folder:/x")
    ctx._source = Stub([0], ["a"])
    ctx.check_data()  # one image that reads
    ctx._source = Stub([0, 1, 2], ["a", "b"], unreadable={0, 1})
    ctx.check_data()  # stops at image 2
    ctx._source = Stub([0, 1, 2], ["a", "b"], unreadable={0, 1, 2})
    with pytest.raises(NsbenchError, match=r"none of its 3 images can be read \(first: image 0 is broken\)"):
        ctx.check_data()
    ctx._source = Stub([], ["a"])
    with pytest.raises(NsbenchError, match="holds no images"):
        ctx.check_data()


# ---- batches, shards


def test_logits_of_no_images_are_an_empty_batch_of_class_scores(tmp_path):
    out = context(tmp_path).logits(np.zeros((0, 32, 32, 3), np.uint8))
    assert out.shape == (0, 3) and out.dtype == np.float32


def test_logits_of_uint8_images_are_the_model_on_pixels_over_255(tmp_path):
    imgs = np.zeros((3, 32, 32, 3), np.uint8)
    imgs[:, 0, 0] = [[255, 0, 51], [0, 102, 0], [153, 204, 255]]
    ctx = context(tmp_path, batch_size=2)  # two batches: 2 + 1
    w = np.array([[1.3, -0.7, 0.1], [0.2, 0.9, -1.1], [-0.4, 0.3, 0.77]])
    np.testing.assert_allclose(ctx.logits(imgs), imgs[:, 0, 0] / 255 @ w.T + [0.011, -0.3, 0.123], rtol=1e-5,
                               atol=1e-6)


def test_sharded_in_one_process_is_fn_itself(tmp_path):
    mine = {"a": np.arange(3)}
    seen = []
    out = context(tmp_path).sharded(np.arange(3), lambda idx: seen.append(idx) or mine)
    assert out is mine and len(seen) == 1 and list(seen[0]) == [0, 1, 2]  # the whole range, no gather, no copy


def test_sharded_under_a_one_rank_group_gathers_the_one_share(tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'init'}", rank=0, world_size=1)
    try:
        out = context(tmp_path).sharded(np.arange(4), lambda idx: {"i": idx * 10, "j": idx[::-1].copy()})
    finally:
        dist.destroy_process_group()
    assert list(out["i"]) == [0, 10, 20, 30] and list(out["j"]) == [3, 2, 1, 0]


# ---- cells in the cache


def cell_path(tmp_path, task: str, key: str) -> object:
    """cells/<first 16 hex of the model's sha256>/<task>/<first 16 hex of sha256(JSON of key)>.npz, by hand."""
    name = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]
    return tmp_path / "cache" / "cells" / "0123456789abcdef" / task / f"{name}.npz"


def test_a_cell_is_kept_under_the_models_sha_and_its_key_with_the_precision(tmp_path):
    calls = []
    ctx = context(tmp_path)
    out = ctx.cell("clean", "k", lambda: calls.append(1) or {"correct": np.array([True, False])})
    assert cell_path(tmp_path, "clean", "k|fp32").exists() and list(out["correct"]) == [True, False]
    again = ctx.cell("clean", "k", lambda: calls.append(1) or {"correct": np.array([False, False])})
    assert len(calls) == 1 and list(again["correct"]) == [True, False]  # reused


def test_a_cell_scored_at_a_size_other_than_the_models_own_is_another_cell(tmp_path):
    calls = []
    own = {"model": {"own_input_size": 32}}

    def run(image_size, value):
        ctx = context(tmp_path, meta=own, image_size=image_size)
        return ctx.cell("clean", "k", lambda: calls.append(image_size) or {"correct": np.array([value])})["correct"][0]

    assert run(48, True) and not run(64, False) and run(48, False)  # 48 reused, 64 its own
    assert calls == [48, 64]
    assert cell_path(tmp_path, "clean", "k|size=48|fp32").exists() and cell_path(tmp_path, "clean",
                                                                                   "k|size=64|fp32").exists()
    assert not run(None, False) and cell_path(tmp_path, "clean", "k|fp32").exists()  # its own size: no size in key


def test_a_cached_cell_holding_pickled_objects_is_recomputed_not_loaded(tmp_path):
    path = cell_path(tmp_path, "clean", "k|fp32")
    path.parent.mkdir(parents=True)
    np.savez(path, correct=np.array([{"x": 1}], dtype=object))  # loading it would unpickle: never trusted
    out = context(tmp_path).cell("clean", "k", lambda: {"correct": np.array([True])})
    assert out["correct"].dtype == bool and list(out["correct"]) == [True]
    with np.load(path, allow_pickle=False) as z:
        assert list(z["correct"]) == [True]  # rewritten


# ---- opening the data: a class count adopts the data's order; named classes keep theirs


def test_a_models_class_count_adopts_the_folders_order_its_named_classes_are_kept(tmp_path):
    """meta classes_from == "count" (`--num-classes N`): output k is the k-th sorted class folder, so the model's
    classes become the folder names; a model that names its classes keeps its own order, the data matched to it."""
    from helpers import write_folder

    data = write_folder(tmp_path / "data", 3, {"test": 1})
    counted = context(tmp_path, meta={"classes_from": "count"}, source=f"folder:{data}", split="test")
    counted.em.classes = ["0", "1", "2"]
    assert counted.source.classes == ["class0", "class1", "class2"]
    assert counted.em.classes == ["class0", "class1", "class2"]
    named = context(tmp_path, source=f"folder:{data}", split="test")
    named.em.classes = ["class2", "class0", "class1"]
    src = named.source
    assert named.em.classes == ["class2", "class0", "class1"] and src.classes == ["class2", "class0", "class1"]
    assert sorted(src.labels.tolist()) == [0, 1, 2] and src.labels[0] == 1  # class0's image: the model's output 1


# ---- building a cached set waits for another holder of the cache's lock


def test_a_set_build_waits_for_another_process_holding_the_caches_lock(tmp_path, monkeypatch):
    """A live holder of cache/sets/.nsbench.lock (this very process, so alive, on this host): the build waits
    (polls) until the holder lets go, then builds, instead of refusing with "in use by"."""
    import os
    import socket

    from nsbench import lock as lock_module

    ctx = context(tmp_path)
    held = tmp_path / "cache" / "sets" / lock_module.LOCK_NAME
    held.parent.mkdir(parents=True)
    held.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "what": "another build"}))
    waits = []

    def holder_finishes(seconds):  # the poll's sleep: the other build ends meanwhile
        waits.append(seconds)
        held.unlink()

    monkeypatch.setattr(lock_module.time, "sleep", holder_finishes)
    assert ctx.build(lambda: "built") == "built"
    assert waits == [1.0] and not held.exists()  # one poll (1 s), and our own lock released afterwards
