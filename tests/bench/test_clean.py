"""The clean task's rows (top-1 / top-5 accuracy and error, per-class accuracy), its per-image frame and its count of
unreadable images, against a worked example whose label ranks are chosen by hand. (Its temperature-scaled rows are
tested in test_calibration.py.)"""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from nsbench.bench.context import EvalContext
from nsbench.bench.eval_model import EvalModel
from nsbench.bench.normaliser import Normaliser
from nsbench.bench.suite import SuiteConfig
from nsbench.bench.tasks import clean
from nsbench.utils import NsbenchError

N_CLASSES = 10
# per image, in the folder's order (class folders, then file names): (label, rank of the label in the logits)
TABLE = [(0, 1), (0, 2), (0, 6), (1, 1), (1, 5), (2, 3), (3, 1), (4, 7), (5, 1)]


def _logits(label: int, rank: int) -> torch.Tensor:
    """Logits 10, 9, .., 1 down the class order with `label` moved to position `rank`."""
    order = [c for c in range(N_CLASSES) if c != label]
    order.insert(rank - 1, label)
    z = torch.empty(N_CLASSES)
    z[torch.tensor(order)] = torch.arange(N_CLASSES, 0, -1, dtype=torch.float32)
    return z


class IdModel(torch.nn.Module):
    """The image's id from its grey level (10 x id, lossless PNG), and that image's logits from TABLE."""

    def __init__(self):
        super().__init__()
        self.table = torch.stack([_logits(*t) for t in TABLE])
        self.batches = []

    def forward(self, x):
        self.batches.append(len(x))
        return self.table[(x[:, 0, 0, 0] * 255 / 10).round().long()]


def _ctx(tmp_path, *, unreadable: bool = False, limit=None) -> EvalContext:
    root = tmp_path / "data"
    for k, (label, _) in enumerate(TABLE):
        d = root / "test" / f"class{label}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((16, 16, 3), 10 * k, np.uint8)).save(d / f"{k:02d}.png")
    for c in range(N_CLASSES):
        (root / "test" / f"class{c}").mkdir(parents=True, exist_ok=True)
    if unreadable:
        (root / "test" / "class9" / "zz.png").write_bytes(b"not a png")
    cfg = SuiteConfig(name="t")
    cfg.data.source, cfg.data.split, cfg.data.crop_pct = f"folder:{root}", "test", 1.0
    cfg.clean.temperature, cfg.clean.limit = "none", limit
    em = EvalModel(IdModel(), "ids", "1" * 64, [f"class{c}" for c in range(N_CLASSES)], 16, {})
    return EvalContext(em, cfg, tmp_path / "cache", torch.device("cpu"), workers=0, batch_size=4)


def _rows(res) -> dict:
    return {(r["condition"], r["metric"]): (r["value"], r["n"]) for r in res.rows}


def test_clean_rows_by_hand(tmp_path, caplog):
    """Top-1: the label ranks first on images 0, 3, 6, 8 (4 / 9); top-5: on all but images 2 (6th) and 7 (7th)
    (7 / 9). Per class: class 0 holds images 0, 1, 2 (one right: 1 / 3), class 1 images 3, 4 (1 / 2), classes 2..5 one
    image each (wrong, right, wrong, right); classes 6..9 hold none and have no row. Batches of 4: the last batch
    holds one image, scored like the others."""
    ctx = _ctx(tmp_path)
    with caplog.at_level(logging.WARNING):
        res = clean.run(ctx, ctx.suite.clean, Normaliser("none"))
    got = _rows(res)
    assert got[("clean", "top1_acc")] == (pytest.approx(100 * 4 / 9), 9)
    assert got[("clean", "top5_acc")] == (pytest.approx(100 * 7 / 9), 9)
    assert got[("clean", "top1_err")] == (pytest.approx(100 * 5 / 9), 9)
    assert got[("clean", "top5_err")] == (pytest.approx(100 * 2 / 9), 9)
    classes = {k[0]: v for k, v in got.items() if k[1] == "class_acc"}
    assert classes == {"class:class0": (pytest.approx(100 / 3), 3), "class:class1": (50.0, 2), "class:class2": (0.0, 1),
                       "class:class3": (100.0, 1), "class:class4": (0.0, 1), "class:class5": (100.0, 1)}
    assert ctx.em.model.batches == [4, 4, 1]
    per = res.per_image[0]
    assert len(res.per_image) == 1 and len(per) == 9
    assert set(per.task) == {"clean"} and set(per.condition) == {"clean"}
    assert (per.severity == 0).all() and (per.eps_255 == 0.0).all()
    assert per.image.tolist() == list(range(9))
    assert per.correct.tolist() == [rank == 1 for _, rank in TABLE]
    assert res.sets["clean"] == {"n": 9, "skipped_unreadable": 0}
    assert not [r for r in caplog.records if "unreadable" in r.getMessage()]  # nothing skipped, nothing said


def test_an_unreadable_image_is_skipped_and_counted(tmp_path, caplog):
    ctx = _ctx(tmp_path, unreadable=True)
    with caplog.at_level(logging.WARNING):
        res = clean.run(ctx, ctx.suite.clean, Normaliser("none"))
    assert res.sets["clean"] == {"n": 9, "skipped_unreadable": 1}
    assert _rows(res)[("clean", "top1_acc")] == (pytest.approx(100 * 4 / 9), 9)
    assert [r for r in caplog.records if "1 unreadable image(s)" in r.getMessage()]


def test_limit_of_one_image_is_valid_and_zero_is_refused():
    clean.validate(clean.CleanTask(limit=1))
    clean.validate(clean.CleanTask(limit=None))
    with pytest.raises(NsbenchError, match="clean.limit: must be >= 1, got 0"):
        clean.validate(clean.CleanTask(limit=0))


# ---- temperature scaling's edge cases: a held-out split of one image, cross-fitting on two images, fold sizes

def _nll(z: np.ndarray, y: np.ndarray, t: float) -> float:
    """Mean NLL of softmax(z / t), written out (log-sum-exp with the row maximum taken out)."""
    s = np.asarray(z, np.float64) / t
    m = s.max(1)
    return float(np.mean(m + np.log(np.exp(s - m[:, None]).sum(1)) - s[np.arange(len(y)), y]))


def _clipped_nll(z: np.ndarray, y: np.ndarray, t: float) -> float:
    """The rows' NLL (calibration.py's definition, Keras' clip): -log(c_y / sum c), c = clip(softmax(z / t), 1e-7,
    1 - 1e-7)."""
    s = np.asarray(z, np.float64) / t
    p = np.exp(s - s.max(1, keepdims=True))
    c = np.clip(p / p.sum(1, keepdims=True), 1e-7, 1 - 1e-7)
    return float(np.mean(-np.log(c[np.arange(len(y)), y] / c.sum(1))))


def _t_by_scipy(z: np.ndarray, y: np.ndarray) -> float:
    """The T in [0.01, 100] minimising the (unclipped) NLL; when every label ranks first the NLL rises with T, so the
    search stops at its lower bound (where scipy's bounded search is not exact: the NLL is flat there)."""
    from scipy.optimize import minimize_scalar

    if (z.argmax(1) == y).all():
        return 0.01
    return minimize_scalar(lambda t: _nll(z, y, t), bounds=(0.01, 100), method="bounded",
                           options={"xatol": 1e-9}).x


def _table_logits(ids) -> tuple[np.ndarray, np.ndarray]:
    ids = np.asarray(ids)
    return torch.stack([_logits(*TABLE[k]) for k in ids]).numpy(), np.array([TABLE[k][0] for k in ids])


def _temperature_ctx(tmp_path, temperature: str, limit=None, val_ids=()) -> EvalContext:
    """_ctx with clean.temperature set and a split `val` holding TABLE's images `val_ids` (same grey levels and
    labels as in `test`)."""
    ctx = _ctx(tmp_path, limit=limit)
    for k in val_ids:
        d = tmp_path / "data" / "val" / f"class{TABLE[k][0]}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((16, 16, 3), 10 * k, np.uint8)).save(d / f"{k:02d}.png")
    ctx.suite.clean.temperature = temperature
    return ctx


def test_the_temperature_setting_must_name_something_and_its_limit_may_be_one():
    clean.validate(clean.CleanTask(temperature_limit=1))
    with pytest.raises(NsbenchError, match="clean.temperature_limit: must be >= 1, got 0"):
        clean.validate(clean.CleanTask(temperature_limit=0))
    for bad in ("  ", "", 5, None):
        with pytest.raises(NsbenchError, match="clean.temperature must be cross_fit, none or a held-out split"):
            clean.validate(clean.CleanTask(temperature=bad))


def test_a_held_out_split_of_one_image_scales_one_scored_image(tmp_path):
    """val holds image 0 alone (label ranked first): its NLL falls as T falls, so T stops at the search bound 0.01.
    The one scored image is scaled by it; its rows and per-image row say so (severity 0, eps 0)."""
    ctx = _temperature_ctx(tmp_path, "val", limit=1, val_ids=[0])
    res = clean.run(ctx, ctx.suite.clean, Normaliser("none"))
    got = {(r["condition"], r["metric"]): r for r in res.rows}
    t = got[("temperature_scaled", "temperature")]
    assert t["value"] == 0.01 and t["n"] == 1
    assert t["note"] == "T = 0.010 fitted to minimise NLL on 1 images of split 'val'; at the search bound 0.01"
    assert res.sets["clean"]["temperature"] == {"fitted_on": "val", "t": [0.01], "images": [1]}
    (i,) = res.per_image[0].image.tolist()
    z, y = _table_logits([i])
    assert got[("temperature_scaled", "nll")]["value"] == pytest.approx(_clipped_nll(z, y, 0.01), rel=1e-9)
    per = res.per_image[1]
    assert per.image.tolist() == [i] and set(per.condition) == {"temperature_scaled"}
    assert per.severity.tolist() == [0] and per.eps_255.tolist() == [0.0]


def test_an_empty_held_out_split_is_refused(tmp_path):
    ctx = _temperature_ctx(tmp_path, "val")
    (tmp_path / "data" / "val" / "class0").mkdir(parents=True)
    with pytest.raises(NsbenchError, match="clean.temperature=val: .*val: no images found"):
        clean.run(ctx, ctx.suite.clean, Normaliser("none"))


def test_cross_fitting_on_two_images_scales_each_by_the_t_of_the_other(tmp_path):
    ctx = _temperature_ctx(tmp_path, "cross_fit", limit=2)
    res = clean.run(ctx, ctx.suite.clean, Normaliser("none"))
    a, b = res.per_image[0].image.tolist()
    meta = res.sets["clean"]["temperature"]
    assert meta["images"] == [1, 1]
    # the seeded permutation of the two images dealt round-robin: fold 0 holds order[0], fold k's T is fitted on
    # the other fold's image
    order = np.random.default_rng(ctx.suite.seed).permutation(2)
    ids = np.array([a, b])
    want = [_t_by_scipy(*_table_logits([ids[order[1 - k]]])) for k in range(2)]
    assert meta["t"] == pytest.approx(want, abs=1e-6)
    got = {(r["condition"], r["metric"]): r for r in res.rows}
    assert got[("temperature_scaled", "nll")]["n"] == 2


def test_cross_fitting_records_each_folds_t_with_the_count_of_images_it_was_fitted_on(tmp_path):
    """Nine images dealt round-robin over a seeded permutation: fold 0 holds 5, fold 1 holds 4; fold 0's T is
    fitted on fold 1's 4 images and fold 1's on fold 0's 5."""
    ctx = _temperature_ctx(tmp_path, "cross_fit")
    res = clean.run(ctx, ctx.suite.clean, Normaliser("none"))
    order = np.random.default_rng(ctx.suite.seed).permutation(9)
    halves = [np.sort(order[k::2]) for k in range(2)]
    meta = res.sets["clean"]["temperature"]
    assert meta["images"] == [4, 5]
    assert meta["t"] == pytest.approx([_t_by_scipy(*_table_logits(halves[1])), _t_by_scipy(*_table_logits(halves[0]))],
                                      abs=1e-6)
    note = {(r["condition"], r["metric"]): r for r in res.rows}[("temperature_scaled", "temperature")]["note"]
    assert "(each half scaled by the T fitted on the other half, 4 and 5 images)" in note
