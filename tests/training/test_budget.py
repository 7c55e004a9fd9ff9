"""Student budgets follow the teacher (counted in epochs over the labeled set, as the paper and the released code
count them); the default recipe's shape on a folder dataset; pretrained weights or a one-line error."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
import yaml

from nsbench.cli import main
from nsbench.config import load_train_config
from nsbench.resources import resolve
from nsbench.training import driver, ladder
from nsbench.training.budget import plan as plan_budgets, quarter_mark, steps_per_epoch
from nsbench.utils import NsbenchError


def _cfg(overrides=()):
    return load_train_config(resolve("recipe", "default"), list(overrides))


@pytest.mark.parametrize("n_labeled", [200, 1000, 5000])
def test_students_get_at_least_the_teachers_steps_and_images_by_default(n_labeled):
    for extra in ([], ["student_optim.epochs=1"], ["student_optim.batch_size=8", "ns.unlabeled_ratio=1"]):
        plan = plan_budgets(_cfg(["ns.iterations=3", *extra]), n_labeled)
        for teacher, student in zip(plan, plan[1:]):
            assert student.steps >= teacher.steps and student.images >= teacher.images, (extra, student)
            assert student.warning is None
            assert student.teacher_steps == teacher.steps
        # the paper's unit: steps = epochs x ceil(labeled / labeled batch)
        s = plan[1]
        assert s.steps == s.epochs * -(-n_labeled // s.labeled_batch)
        assert s.pseudo_batch == s.labeled_batch * _cfg(extra).ns.unlabeled_ratio


def test_an_explicit_smaller_budget_is_kept_and_warned_about():
    plan = plan_budgets(_cfg(["ns.student_budget=epochs", "student_optim.epochs=2"]), 1000)
    assert plan[1].epochs == 2 and plan[1].steps == 64 < plan[0].steps == 960
    assert "fewer than its teacher's 960 steps" in plan[1].warning
    assert plan[2].warning is None  # iteration 2's teacher is the 64-step student
    with pytest.raises(NsbenchError, match="ns.student_budget: 'more' is not one of"):
        driver.check_choices(_cfg(["ns.student_budget=more"]))


def _folder_recipe(tmp_path, folder, *extra):
    """The default recipe's shape (its ladder, optimisers, pseudo-labeling and noise), shrunk to seconds."""
    cfg = yaml.safe_load(resolve("recipe", "default").read_text())
    cfg["data"].update(source=f"folder:{folder}", labels_per_class=8, val_split="test")
    cfg["teacher_optim"].update(epochs=3, batch_size=16, eval_every=3)
    cfg["student_optim"].update(epochs=1, eval_every=1)
    cfg["pseudo"]["batch_size"] = 64
    cfg["runtime"].update(device="cpu", threads=1)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return ["train", "--recipe", str(path), "--iterations", "2", *extra]


def test_default_recipe_shape_on_a_folder_student_trains_at_least_the_teachers_steps(tiny_folder, tmp_path,
                                                                                      monkeypatch):
    seen = {}
    real = driver.train_stage

    def spy(model, stage):
        seen[stage.name] = stage
        return real(model, stage)

    monkeypatch.setattr(driver, "train_stage", spy)
    out = tmp_path / "run"
    assert main(_folder_recipe(tmp_path, tiny_folder, "--out", str(out), "pseudo.soft=false")) == 0
    summary = json.loads((out / "summary.json").read_text())
    steps = {e["iteration"]: e["steps"] for e in summary["iterations"]}
    images = {e["iteration"]: e["images"] for e in summary["iterations"]}
    assert steps[0] == 3 * 2  # 32 labeled images at batch 16: 2 steps per epoch, 3 epochs
    assert steps[1] >= steps[0] and steps[2] >= steps[1]  # the recipe says 1 student epoch (1 step): raised
    assert images[1] >= images[0] and images[2] >= images[1]
    hist = pd.read_csv(out / "history.csv")
    assert hist.groupby("iteration")["steps"].sum().to_dict() == steps
    assert [w for w in summary["warnings"] if "drop_path_rate" not in w] == []  # no budget warning
    log = (out / "train.log").read_text()
    for k in (1, 2):
        assert f"iteration {k}: student budget {steps[k]} steps" in log and "raised from the configured 1" in log
    # hard pseudo-labels get the code's label smoothing; the recipe's loss weighting (paper) weighs them by 1
    assert seen["iter1"].pseudo_smoothing == pytest.approx(0.1) and seen["iter1"].unlabeled_weight == 1.0
    assert seen["iter0"].optim.epochs == 3


def test_a_student_budget_below_the_teachers_is_warned_in_the_log_and_summary(tiny_folder, tmp_path, monkeypatch):
    seen = {}
    real = driver.train_stage
    monkeypatch.setattr(driver, "train_stage", lambda model, stage: (seen.update({stage.name: stage}), real(model, stage))[1])
    out = tmp_path / "run"
    args = _folder_recipe(tmp_path, tiny_folder, "--out", str(out), "--iterations", "1", "ns.student_budget=epochs",
                          "ns.loss_weighting=ratio")
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [e["steps"] for e in summary["iterations"]] == [6, 1]
    budget = [w for w in summary["warnings"] if "drop_path_rate" not in w]
    assert len(budget) == 1 and "fewer than its teacher's 6 steps" in budget[0]
    assert "WARNING" in (out / "train.log").read_text() and summary["warnings"][0] in (out / "train.log").read_text()
    assert seen["iter1"].unlabeled_weight == 3.0  # main.py: unlabeled_ratio x the pseudo-labeled mean
    assert seen["iter1"].pseudo_smoothing == 0.0  # soft targets are never smoothed


def test_pretrained_weights_load_from_timm_or_fail_in_one_line(tiny_folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "run"
    assert main(_folder_recipe(tmp_path, tiny_folder, "--out", str(out), "teacher.pretrained=true")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    msg = [line for line in err if "pretrained" in line]
    assert len(msg) == 1 and "teacher.pretrained: test_efficientnet: cannot fetch pretrained weights" in msg[0]
    assert not (out / "iter0.pt").exists()
    # when timm has the weights, they are what the model starts from
    from nsbench import models

    real = models.timm.create_model

    def fake(arch, pretrained=False, **kw):
        net = real(arch, pretrained=False, **kw)
        if pretrained:
            with torch.no_grad():
                net.classifier.weight.fill_(0.25)
        return net

    monkeypatch.setattr(models.timm, "create_model", fake)
    cfg = load_train_config(resolve("recipe", "default"), ["teacher.pretrained=true"])
    spec = ladder.model_spec(cfg.teacher, 4, 32)
    assert (ladder.build(spec, 0, cfg).net.classifier.weight == 0.25).all()
    assert not (ladder.build(ladder.model_spec(cfg.students[0], 4, 32), 1, cfg).net.classifier.weight == 0.25).all()


# ---- issue 31: the budget's counts by hand (an epoch is ceil(labeled / (batch x ranks)) steps)


def test_steps_per_epoch_counts_the_partial_batch_and_every_rank():
    assert steps_per_epoch(100, 10) == 10  # one process unless told: 100 / 10
    assert steps_per_epoch(101, 10) == 11  # the last, partial batch is a step
    assert steps_per_epoch(1000, 10, 4) == 25  # 4 ranks of 10: 40 images a step
    assert steps_per_epoch(1000, 10, world=3) == 34  # ceil(1000 / 30)
    assert steps_per_epoch(0, 10) == 1


@pytest.mark.parametrize("epochs, mark", [(1, None), (3, None), (4, 3), (5, 4), (7, 6), (8, 6), (9, 7), (12, 9)])
def test_quarter_mark_is_epochs_minus_floor_of_a_quarter(epochs, mark):
    assert quarter_mark(epochs) == mark  # epochs - floor(epochs / 4), None below 4 epochs


def test_plan_on_two_ranks_by_hand():
    """1,000 labeled images on 2 ranks. Teacher: 4 epochs at batch 50 per rank -> global batch 100, 10 steps an
    epoch, 40 steps, 4,000 images. Student: batch 25 per rank, unlabeled_ratio 3 -> 50 labeled + 150 pseudo-labeled
    a step, 20 steps an epoch; 1 epoch asked, at least the teacher's 40 steps and 4,000 images needed:
    max(40, ceil(4000 / 200)) = 40 steps = 2 epochs (8,000 images); iteration 2 likewise needs 40 steps."""
    cfg = _cfg(["ns.iterations=2", "teacher_optim.epochs=4", "teacher_optim.batch_size=50",
                "student_optim.epochs=1", "student_optim.batch_size=25", "ns.unlabeled_ratio=3"])
    plan = plan_budgets(cfg, 1000, world=2)
    got = [(b.iteration, b.epochs, b.steps_per_epoch, b.labeled_batch, b.pseudo_batch, b.configured_epochs,
            b.steps, b.images) for b in plan]
    assert got == [(0, 4, 10, 100, 0, 4, 40, 4000),
                   (1, 2, 20, 50, 150, 1, 40, 8000),
                   (2, 2, 20, 50, 150, 1, 40, 8000)]
    assert (plan[1].teacher_steps, plan[1].teacher_images) == (40, 4000)
    assert (plan[2].teacher_steps, plan[2].teacher_images) == (40, 8000)
    assert "raised from the configured 1 epochs" in plan[1].describe(1000)
