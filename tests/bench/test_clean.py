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
