"""The fgsm task (bench/tasks/attack.py): its rows and per-image frame at each eps, every image counted (a last batch
of one included), its settings' ranges and its documented eps list. The attacks themselves are tested by value in
test_attacks.py."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nsbench.bench.context import EvalContext
from nsbench.bench.eval_model import EvalModel
from nsbench.bench.normaliser import Normaliser
from nsbench.bench.suite import SuiteConfig
from nsbench.bench.tasks import attack
from nsbench.utils import NsbenchError

DOCS = Path(__file__).resolve().parents[2] / "docs" / "evaluation.md"
N_CLASSES = 4
LABELS = [0, 0, 1, 1, 2, 2, 3, 3, 3]
PRED = [0, 1, 1, 1, 0, 2, 3, 0, 3]  # right on images 0, 2, 3, 5, 6, 8: 6 of 9


class IdModel(torch.nn.Module):
    """Predicts PRED[id], the id read from the grey level (30 x id, lossless PNG, read to the
    nearest 30: PGD's random start moves a pixel by at most eps = 8 levels); the input gradient is zero, so no
    attack step moves a pixel (test_attacks.py: pixels without gradient do not move) and every eps scores as clean."""

    def __init__(self):
        super().__init__()
        self.table = torch.nn.functional.one_hot(torch.tensor(PRED), N_CLASSES).float() * 5
        self.batches = []

    def forward(self, x):
        self.batches.append(len(x))
        return self.table[(x[:, 0, 0, 0].detach() * 255 / 30).round().long()] + 0 * x.sum((1, 2, 3))[:, None]


def _ctx(tmp_path, task: attack.FGSMTask) -> EvalContext:
    root = tmp_path / "data"
    for k, label in enumerate(LABELS):
        d = root / "test" / f"class{label}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((8, 8, 3), 30 * k, np.uint8)).save(d / f"{k:02d}.png")
    cfg = SuiteConfig(name="t")
    cfg.data.source, cfg.data.split, cfg.data.crop_pct = f"folder:{root}", "test", 1.0
    cfg.fgsm = task
    em = EvalModel(IdModel(), "ids", "1" * 64, [f"class{c}" for c in range(N_CLASSES)], 8, {})
    return EvalContext(em, cfg, tmp_path / "cache", torch.device("cpu"), workers=0, batch_size=4)


@pytest.mark.parametrize("name", ["fgsm", "pgd"])
def test_rows_and_per_image_frame_at_each_eps(tmp_path, name):
    task = attack.FGSMTask(limit=None, eps_255=[0.0, 8.0], attack=name, pgd_steps=2)
    ctx = _ctx(tmp_path, task)
    res = attack.run(ctx, task, Normaliser("none"))
    acc = [(r["task"], r["condition"], r["eps_255"], r["value"], r["n"]) for r in res.rows if r["metric"] == "top1_acc"]
    assert acc == [(name, name, 0.0, pytest.approx(100 * 6 / 9), 9), (name, name, 8.0, pytest.approx(100 * 6 / 9), 9)]
    assert 1 in ctx.em.model.batches  # batches of 4, 4 and 1: the last image is attacked and scored too (n = 9)
    assert len(res.per_image) == 2
    for per, eps in zip(res.per_image, (0.0, 8.0)):
        assert set(per.task) == {name} and set(per.condition) == {name}
        assert (per.severity == 0).all() and (per.eps_255 == eps).all()
        assert per.image.tolist() == list(range(9))
        assert per.correct.tolist() == [p == y for p, y in zip(PRED, LABELS)]
    assert res.sets == {"attack": {"name": name, "n": 9, "precision": "fp32"}}


def test_the_default_eps_are_the_documented_ones():
    """docs/evaluation.md: "FGSM at eps = 0, 1, 2, 4, 8, 16 grey levels"."""
    said = re.search(r"FGSM at eps = ([\d, ]+) grey levels", DOCS.read_text()).group(1)
    assert attack.FGSMTask().eps_255 == [float(e) for e in said.split(",")]
    assert attack.FGSMTask().attack == "fgsm"
    said = re.search(r"on (\d+) images of the evaluation split \(`fgsm.limit`; `fgsm.attack=pgd`: (\d+) steps of (\d+) "
                     r"grey level", DOCS.read_text())
    t = attack.FGSMTask()
    assert (t.limit, t.pgd_steps, t.pgd_alpha_255) == (int(said.group(1)), int(said.group(2)), float(said.group(3)))


@pytest.mark.parametrize("changes", [{"limit": 1}, {"limit": None}, {"eps_255": [0, 255]}, {"pgd_steps": 1},
                                     {"pgd_alpha_255": 0.01}])
def test_settings_at_the_edge_of_their_range_are_accepted(changes):
    attack.validate(attack.FGSMTask(**changes))


@pytest.mark.parametrize("changes, says", [
    ({"limit": 0}, "fgsm.limit: must be >= 1, got 0"),
    ({"eps_255": [256]}, "fgsm.eps_255: must be >= 0 and <= 255, got 256"),
    ({"eps_255": [-1]}, "fgsm.eps_255: must be >= 0 and <= 255, got -1"),
    ({"eps_255": []}, "must list at least one epsilon"),
    ({"pgd_steps": 0}, "fgsm.pgd_steps: must be >= 1, got 0"),
    ({"pgd_alpha_255": 0.0}, "fgsm.pgd_alpha_255: must be > 0, got 0.0"),
    ({"attack": "cw"}, "fgsm.attack must be one of"),
])
def test_settings_out_of_range_are_refused(changes, says):
    with pytest.raises(NsbenchError, match=re.escape(says)):
        attack.validate(attack.FGSMTask(**changes))
