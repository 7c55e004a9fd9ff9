"""Recipes and suites (nsbench/config.py, bench/suite.py): unknown and ill-typed keys, bad values refused when the
config loads, exponent floats as numbers."""
from __future__ import annotations

import re

import pytest

from helpers import ROOT
from nsbench.config import load_train_config
from nsbench.utils import NsbenchError


def test_config_rejects_unknown_and_ill_typed_keys():
    with pytest.raises(NsbenchError, match=r"unknown key\(s\) colour; valid: source"):
        load_train_config({"data": {"colour": 1}})
    with pytest.raises(NsbenchError, match="expected an integer"):
        load_train_config({}, ["ns.iterations=three"])
    with pytest.raises(NsbenchError, match="no list item '5'"):
        load_train_config({}, ["students.5.arch=x"])
    cfg = load_train_config({}, ["students.0.kwargs={channel_multiplier: 2.0}", "pseudo.per_class=500"])
    assert cfg.students[0].kwargs == {"channel_multiplier": 2.0} and cfg.pseudo.per_class == 500


# 1e-3 (issue 13, probe 8)

def test_exponent_floats_are_numbers_on_the_cli_and_in_recipes(tmp_path):
    assert load_train_config({}, ["teacher_optim.lr=1e-3"]).teacher_optim.lr == 1e-3
    recipe = tmp_path / "r.yaml"
    recipe.write_text("student_optim:\n  lr: 5E-4\n  weight_decay: 1e-5\n")
    cfg = load_train_config(recipe)
    assert cfg.student_optim.lr == 5e-4 and cfg.student_optim.weight_decay == 1e-5
    assert load_train_config({"teacher_optim": {"lr": "2e-3"}}).teacher_optim.lr == 2e-3


# range checks when the config loads (issue 13, probe 9)

@pytest.mark.parametrize("override,key", [
    ("teacher_optim.batch_size=0", "teacher_optim.batch_size"), ("student_optim.batch_size=-4", "student_optim.batch_size"),
    ("teacher_optim.epochs=0", "teacher_optim.epochs"), ("ns.unlabeled_ratio=0", "ns.unlabeled_ratio"),
    ("teacher_optim.lr=-0.1", "teacher_optim.lr"), ("student_optim.optimizer=lamb", "student_optim.optimizer"),
    ("data.image_size=0", "data.image_size"), ("students=[]", "students"), ("teacher.drop_rate=2", "teacher.drop_rate"),
    ("runtime.device=tpu", "runtime.device"), ("pseudo.threshold=1.5", "pseudo.threshold"),
    ("pseudo.threshold=-1", "pseudo.threshold"), ("pseudo.temperature=0", "pseudo.temperature"),
    ("pseudo.per_class=0", "pseudo.per_class"), ("pseudo.per_class=avg", "pseudo.per_class"),
    ("data.labels_per_class=0", "data.labels_per_class"), ("ns.iterations=-1", "ns.iterations"),
    ("teacher_optim.ema_decay=1", "teacher_optim.ema_decay"),
    ("teacher_optim.ema_reference_batch=-1", "teacher_optim.ema_reference_batch"),
    ("student_optim.ema_warmup=true", "student_optim.ema_warmup"),  # with ema_decay 0: no EMA to shape
    ("student_optim.ema_reference_batch=4096", "student_optim.ema_reference_batch"),
])
def test_bad_train_values_are_refused_when_the_config_loads(override, key):
    with pytest.raises(NsbenchError, match=rf"^recipe: {re.escape(key)}: "):
        load_train_config({}, [override])


@pytest.mark.parametrize("override,key", [
    ("perturbations.perturbations=[blur]", "perturbations.perturbations"), ("fgsm.pgd_steps=0", "fgsm.pgd_steps"),
    ("batch_size=0", "batch_size"), ("clean.limit=0", "clean.limit"), ("corruptions.limit=-1", "corruptions.limit"),
    ("fgsm.eps_255=[300]", "fgsm.eps_255"), ("fgsm.pgd_alpha_255=0", "fgsm.pgd_alpha_255"),
    ("natural_adversarial.ref_epochs=0", "natural_adversarial.ref_epochs"),
    ("perturbations.calibration=cifar-10-c", "perturbations.calibration"),
])
def test_bad_suite_values_are_refused_when_the_suite_loads(override, key):
    from nsbench.bench.suite import load_suite

    with pytest.raises(NsbenchError, match=rf"quick.yaml: {re.escape(key)}: "):
        load_suite(ROOT / "suites" / "quick.yaml", [override])
