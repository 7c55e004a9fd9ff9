"""The natural_adversarial task (bench/tasks/natural.py) by value: on a built -A set its top-1 accuracy and error rows
and the per-image frame (severity 0, eps 0) by hand; a single scored image is a result; an empty built set is a
skipped row with n 0 and its reason, not a failure; the section's ranges at their bounds; the documented defaults
(docs/evaluation.md) and the task's place in a suite. The built set comes from tiny_folder's test split and one
stand-in reference that always says class 3, so the set is that split's 30 images of classes 0-2."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from nsbench.bench.context import EvalContext
from nsbench.bench.eval_model import from_module
from nsbench.bench.registry import task_kinds
from nsbench.bench.suite import SuiteConfig
from nsbench.bench.tasks import natural
from nsbench.utils import NsbenchError

DOCS = Path(__file__).resolve().parents[2] / "docs" / "evaluation.md"


class Always(torch.nn.Module):
    """Logits that name class `k` for every image."""

    def __init__(self, k: int):
        super().__init__()
        self.k = k

    def forward(self, x):
        return torch.nn.functional.one_hot(torch.full((len(x),), self.k), 4).float()


class RedQuadrants(torch.nn.Module):
    """Right on every tiny_folder image: class c lights quadrant c in red (as in test_attacks_by_name)."""

    def forward(self, x):
        return 10 * torch.nn.functional.adaptive_avg_pool2d(x[:, :1], 2).flatten(1)


def reference(model: torch.nn.Module):
    def train(**_):
        return model.eval(), {"rounds": 1, "val_top1_per_round": [50.0], "val_top1": 50.0}

    return train


def context(tmp_path, tiny_folder, scored: torch.nn.Module, ref: torch.nn.Module, limit: int | None = None):
    em = from_module(scored, classes=[f"class{c}" for c in range(4)], input_size=32, label="tiny")
    cfg = SuiteConfig(name="t")
    cfg.data.source, cfg.data.split = f"folder:{tiny_folder}", "test"
    t = cfg.natural_adversarial
    t.references = [natural.ReferenceModel(seed=0)]
    t.ref_train_limit, t.ref_val_limit = 8, 4
    ctx = EvalContext(em, cfg, tmp_path / "cache", torch.device("cpu"), limit=limit, workers=0,
                      reference_trainer=reference(ref))
    return ctx, t


def test_built_set_rows_and_frame_by_hand(tmp_path, tiny_folder):
    """The set: 10 test images of each of classes 0, 1, 2 (the reference gets class 3 right). A model that always
    says class 0 is right on 10 of the 30: top-1 accuracy 100 * 10 / 30, error 100 * 20 / 30."""
    ctx, t = context(tmp_path, tiny_folder, Always(0), Always(3))
    res = natural.run(ctx, t, None)
    rows = {r["metric"]: r for r in res.rows}
    assert rows["top1_acc"]["value"] == pytest.approx(100 * 10 / 30) and rows["top1_acc"]["n"] == 30
    assert rows["top1_err"]["value"] == pytest.approx(100 * 20 / 30) and rows["top1_err"]["n"] == 30
    assert {r["task"] for r in res.rows} == {"natural_adversarial"} and {r["condition"] for r in res.rows} == {"built"}
    (per,) = res.per_image
    assert (per.severity == 0).all() and (per.eps_255 == 0.0).all() and set(per.condition) == {"built"}
    assert per.image.tolist() == list(range(30)) and int(per.correct.sum()) == 10
    assert res.sets["natural_adversarial"]["n"] == 30 and res.sets["natural_adversarial"]["n_all_wrong"] == 30


def test_one_scored_image_is_a_result(tmp_path, tiny_folder):
    ctx, t = context(tmp_path, tiny_folder, Always(0), Always(3), limit=1)
    res = natural.run(ctx, t, None)
    acc = next(r for r in res.rows if r["metric"] == "top1_acc")
    assert acc["n"] == 1 and acc["value"] in (0.0, 100.0)


def test_an_empty_built_set_is_a_skipped_row_with_n_zero(tmp_path, tiny_folder):
    """A reference right on every pool image leaves nothing to keep: one row saying why, n 0, nothing per image."""
    ctx, t = context(tmp_path, tiny_folder, Always(0), RedQuadrants())
    res = natural.run(ctx, t, None)
    (row,) = res.rows
    assert (row["task"], row["condition"], row["metric"], row["value"], row["n"]) == \
        ("natural_adversarial", "built", "skipped", None, 0)
    assert "no pool image is misclassified by every reference model" in row["note"]
    assert res.per_image == [] and res.sets == {"natural_adversarial": {"n": 0, "note": row["note"]}}


@pytest.mark.parametrize("changes", [{"pool_limit": 1}, {"ref_train_limit": 1}, {"pool_limit": None},
                                     {"ref_train_limit": None}, {"ref_lr": 1e-9}, {"ref_min_gain": 0.0},
                                     {"references": [], "root": "/data/imagenet-a"}])
def test_settings_at_the_edge_of_their_range_are_accepted(changes):
    natural.validate(natural.NaturalAdversarialTask(**changes))


@pytest.mark.parametrize("changes, says", [
    ({"references": []}, "building DATASET-A needs at least one reference model"),
    ({"pool_limit": 0}, "natural_adversarial.pool_limit: must be >= 1, got 0"),
    ({"ref_train_limit": 0}, "natural_adversarial.ref_train_limit: must be >= 1, got 0"),
    ({"ref_lr": 0.0}, "natural_adversarial.ref_lr: must be > 0, got 0.0"),
    ({"ref_min_gain": -0.5}, "natural_adversarial.ref_min_gain: must be >= 0, got -0.5"),
    ({"consensus": "drop"}, "consensus must be exclude or keep"),
])
def test_settings_out_of_range_are_refused(changes, says):
    with pytest.raises(NsbenchError, match=re.escape(says)):
        natural.validate(natural.NaturalAdversarialTask(**changes))


def test_the_documented_defaults():
    """docs/evaluation.md: each reference stops on "2,000 held-out training images", `ref_min_gain` is "0 by
    default", the images on which every reference names the same wrong class are left out unless
    `natural_adversarial.consensus: keep`."""
    text = " ".join(DOCS.read_text().split())
    t = natural.NaturalAdversarialTask()
    held_out = re.search(r"accuracy on ([\d,]+) held-out training images", text).group(1)
    assert t.ref_val_limit == int(held_out.replace(",", ""))
    assert "`ref_min_gain` points, 0 by default" in text and t.ref_min_gain == 0.0
    assert "`natural_adversarial.consensus: keep` keeps them" in text and t.consensus == "exclude"


def test_the_default_reference_recipe_is_the_documented_one():
    """docs/evaluation.md: for the keys a suite leaves out, three test_resnet references of seeds 0, 1 and 2 (a
    reference listed without a seed: 0), 20,000 training images, rounds of 2 epochs, at most 4 rounds, batches of 128,
    learning rate 0.003. (Every built -A set's images and cache key depend on them.)"""
    text = " ".join(DOCS.read_text().split())
    said = re.search(r"the references \(`natural_adversarial.references`\) are three `(\w+)`s of seeds (\d+), (\d+) and "
                     r"(\d+) \(a reference listed without a seed: (\d+)\), each trained on ([\d,]+) training images "
                     r"\(`ref_train_limit`\) in rounds of (\d+) epochs \(`ref_epochs`\), at most (\d+) rounds "
                     r"\(`ref_max_rounds`\), batches of (\d+) \(`ref_batch_size`\), learning rate ([\d.]+)", text)
    arch, *seeds, unseeded, train, epochs, rounds, batch, lr = said.groups()
    t = natural.NaturalAdversarialTask()
    assert [(r.arch, r.seed, r.kwargs) for r in t.references] == [(arch, int(s), {}) for s in seeds]
    assert natural.ReferenceModel(arch=arch).seed == int(unseeded)
    assert (t.ref_train_limit, t.ref_epochs, t.ref_max_rounds, t.ref_batch_size, t.ref_lr) == \
        (int(train.replace(",", "")), int(epochs), int(rounds), int(batch), float(lr))


def test_natural_adversarial_comes_after_perturbations_and_before_fgsm():
    """docs/evaluation.md (How the harness is built): task kinds clean, corruptions, perturbations,
    natural_adversarial, fgsm, in that order."""
    text = " ".join(DOCS.read_text().split())
    said = re.search(r"Each task kind \(([a-z_, ]+)\)", text).group(1).split(", ")
    order = list(task_kinds())
    assert [k for k in order if k in said] == said
